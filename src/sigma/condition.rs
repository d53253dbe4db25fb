//! The Sigma condition grammar, with the specification's precedence (`not` binds tighter than
//! `and`, which binds tighter than `or`):
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | primary
//! primary := "(" expr ")" | ("1" | "all") "of" (pattern | "them") | identifier
//! ```
//!
//! Identifiers are resolved against the rule's search identifiers at parse time, and
//! `1 of sel_*` is expanded, so evaluation never looks at names.

/// A parsed condition over search identifiers (by index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Sel(usize),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    /// Every search identifier the condition uses.
    pub fn selections(&self, out: &mut Vec<usize>) {
        match self {
            Cond::Sel(i) => out.push(*i),
            Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| c.selections(out)),
            Cond::Not(c) => c.selections(out),
        }
    }
}

/// Why a condition does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondError {
    Syntax(String),
    UnknownIdentifier(String),
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Of,
    One,
    All,
    Them,
    Ident(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, CondError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        match c {
            '(' => {
                out.push(Token::Open);
                chars.next();
            }
            ')' => {
                out.push(Token::Close);
                chars.next();
            }
            _ if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.') => {
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || matches!(d, '_' | '*' | '-' | '.') {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &text[i..end];
                out.push(match word.to_ascii_lowercase().as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "of" => Token::Of,
                    "all" => Token::All,
                    "them" => Token::Them,
                    "1" => Token::One,
                    _ => Token::Ident(word.to_string()),
                });
            }
            _ => return Err(CondError::Syntax(format!("unexpected character `{c}`"))),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a [String],
}

/// Parses `text` against the rule's search identifiers `names`.
pub fn parse(text: &str, names: &[String]) -> Result<Cond, CondError> {
    // Checked on the text: what follows a pipe is not condition syntax at all.
    if text.contains('|') {
        return Err(CondError::Unsupported(
            "aggregation after `|` in a condition (Sigma v1); write a correlation rule instead"
                .into(),
        ));
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(CondError::Syntax("empty condition".into()));
    }
    let mut p = Parser {
        tokens,
        at: 0,
        names,
    };
    let c = p.expr(0)?;
    if p.at != p.tokens.len() {
        return Err(CondError::Syntax(format!(
            "unexpected `{}`",
            p.describe(p.at)
        )));
    }
    Ok(c)
}

/// Deepest parenthesis and `not` nesting accepted: conditions come from untrusted files.
const MAX_NESTING: usize = 64;

impl Parser<'_> {
    fn describe(&self, at: usize) -> String {
        match self.tokens.get(at) {
            None => "end of condition".into(),
            Some(Token::Ident(s)) => s.clone(),
            Some(t) => format!("{t:?}").to_lowercase(),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn expr(&mut self, depth: usize) -> Result<Cond, CondError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Cond, CondError> {
        let mut parts = vec![self.unary(depth)?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            parts.push(self.unary(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Cond, CondError> {
        if depth > MAX_NESTING {
            return Err(CondError::Syntax(format!(
                "nested deeper than {MAX_NESTING}"
            )));
        }
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Ok(Cond::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Cond, CondError> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Open) => {
                self.at += 1;
                let c = self.expr(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(CondError::Syntax(format!(
                        "expected `)` before {}",
                        self.describe(self.at)
                    )));
                }
                self.at += 1;
                Ok(c)
            }
            Some(Token::One) | Some(Token::All) => {
                let all = self.peek() == Some(&Token::All);
                self.at += 1;
                if self.peek() != Some(&Token::Of) {
                    return Err(CondError::Syntax(format!(
                        "expected `of` before {}",
                        self.describe(self.at)
                    )));
                }
                self.at += 1;
                let chosen = match self.tokens.get(self.at).cloned() {
                    Some(Token::Them) => {
                        self.at += 1;
                        (0..self.names.len())
                            .filter(|&i| !self.names[i].starts_with('_'))
                            .collect::<Vec<_>>()
                    }
                    Some(Token::Ident(pattern)) => {
                        self.at += 1;
                        let m: Vec<usize> = (0..self.names.len())
                            .filter(|&i| glob_match(&pattern, &self.names[i]))
                            .collect();
                        if m.is_empty() {
                            return Err(CondError::UnknownIdentifier(pattern));
                        }
                        m
                    }
                    _ => {
                        return Err(CondError::Syntax(format!(
                            "expected a search identifier pattern or `them` before {}",
                            self.describe(self.at)
                        )));
                    }
                };
                if chosen.is_empty() {
                    return Err(CondError::Syntax(
                        "`of them` with no search identifiers".into(),
                    ));
                }
                let sels: Vec<Cond> = chosen.into_iter().map(Cond::Sel).collect();
                Ok(if sels.len() == 1 {
                    sels.into_iter().next().unwrap_or(Cond::Or(Vec::new()))
                } else if all {
                    Cond::And(sels)
                } else {
                    Cond::Or(sels)
                })
            }
            Some(Token::Ident(name)) => {
                self.at += 1;
                if let Ok(n) = name.parse::<u32>() {
                    return Err(CondError::Unsupported(format!(
                        "`{n} of` (only `1 of` and `all of` are Sigma)"
                    )));
                }
                self.names
                    .iter()
                    .position(|n| *n == name)
                    .map(Cond::Sel)
                    .ok_or(CondError::UnknownIdentifier(name))
            }
            _ => Err(CondError::Syntax(format!(
                "unexpected {}",
                self.describe(self.at)
            ))),
        }
    }
}

/// `*`-only glob used by `1 of sel_*`.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else {
                return false;
            };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let n = names(&["a", "b", "c"]);
        assert_eq!(
            parse("a or b and not c", &n).unwrap(),
            Cond::Or(vec![
                Cond::Sel(0),
                Cond::And(vec![Cond::Sel(1), Cond::Not(Box::new(Cond::Sel(2)))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c", &n).unwrap(),
            Cond::And(vec![
                Cond::Or(vec![Cond::Sel(0), Cond::Sel(1)]),
                Cond::Sel(2)
            ])
        );
    }

    #[test]
    fn of_patterns_expand_in_file_order() {
        let n = names(&[
            "selection_img",
            "selection_cli_1",
            "selection_cli_2",
            "filter_main",
            "_helper",
        ]);
        assert_eq!(
            parse("1 of selection_cli_*", &n).unwrap(),
            Cond::Or(vec![Cond::Sel(1), Cond::Sel(2)])
        );
        assert_eq!(
            parse("all of selection* and not 1 of filter*", &n).unwrap(),
            Cond::And(vec![
                Cond::And(vec![Cond::Sel(0), Cond::Sel(1), Cond::Sel(2)]),
                Cond::Not(Box::new(Cond::Sel(3)))
            ])
        );
        // `them` leaves out identifiers that start with an underscore.
        assert_eq!(
            parse("all of them", &n).unwrap(),
            Cond::And(vec![Cond::Sel(0), Cond::Sel(1), Cond::Sel(2), Cond::Sel(3)])
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let n = names(&["a"]);
        assert_eq!(
            parse("b", &n),
            Err(CondError::UnknownIdentifier("b".into()))
        );
        assert_eq!(
            parse("1 of x*", &n),
            Err(CondError::UnknownIdentifier("x*".into()))
        );
        assert!(matches!(parse("a and", &n), Err(CondError::Syntax(_))));
        assert!(matches!(parse("(a", &n), Err(CondError::Syntax(_))));
        assert!(matches!(
            parse("a | count() > 5", &n),
            Err(CondError::Unsupported(_))
        ));
        assert!(matches!(
            parse("2 of a", &n),
            Err(CondError::Unsupported(_))
        ));
        assert!(matches!(parse("a $ b", &n), Err(CondError::Syntax(_))));
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(matches!(parse(&deep, &n), Err(CondError::Syntax(_))));
    }
}
