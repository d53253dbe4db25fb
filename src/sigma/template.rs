//! A rule's message template (`credtrail: {message: "{actor} read {resource} from {src_ip}"}`):
//! text with named placeholders, parsed when the rule loads so a misspelt placeholder is a load
//! error, never a literal `{actr}` in an alert.

/// What a placeholder stands for; the alert fills it from the finding and its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// The group key's values (the identity, usually).
    Actor,
    /// The first resource the chain's events name.
    Resource,
    SrcIp,
    Host,
    CmdLine,
    UserAgent,
    /// The last event's operation.
    Operation,
    /// The rule's title.
    Rule,
    /// The number of contributing events.
    Count,
    /// Stages reached, as `3/4`.
    Stages,
}

impl Placeholder {
    pub const ALL: [(&'static str, Placeholder); 10] = [
        ("actor", Placeholder::Actor),
        ("resource", Placeholder::Resource),
        ("src_ip", Placeholder::SrcIp),
        ("host", Placeholder::Host),
        ("cmd_line", Placeholder::CmdLine),
        ("user_agent", Placeholder::UserAgent),
        ("operation", Placeholder::Operation),
        ("rule", Placeholder::Rule),
        ("count", Placeholder::Count),
        ("stages", Placeholder::Stages),
    ];
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Value(Placeholder),
}

/// A parsed message template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageTemplate(pub Vec<Piece>);

impl MessageTemplate {
    /// Parses `text`; `{{` and `}}` are literal braces. The error says what is wrong.
    pub fn parse(text: &str) -> Result<MessageTemplate, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let Some((_, p)) = Placeholder::ALL.iter().find(|(n, _)| *n == name) else {
                        let known: Vec<&str> = Placeholder::ALL.iter().map(|(n, _)| *n).collect();
                        return Err(format!(
                            "unknown placeholder `{{{name}}}` (known: {})",
                            known.join(", ")
                        ));
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Value(*p));
                }
                '}' => return Err("a lone `}` (write `}}` for a brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(MessageTemplate(pieces))
    }

    /// The template filled by `value` (a placeholder with no value reads `unknown`).
    pub fn fill(&self, mut value: impl FnMut(Placeholder) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Value(v) => out.push_str(value(*v).as_deref().unwrap_or("unknown")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_parsed_and_misspelt_ones_are_errors() {
        let t = MessageTemplate::parse("{actor} read {resource} from {src_ip} {{x}}").unwrap();
        let s = t.fill(|p| match p {
            Placeholder::Actor => Some("eve".into()),
            Placeholder::Resource => Some("prod/db".into()),
            _ => None,
        });
        assert_eq!(s, "eve read prod/db from unknown {x}");
        let e = MessageTemplate::parse("{actr} did it").unwrap_err();
        assert!(e.contains("`{actr}`") && e.contains("actor"), "{e}");
        assert!(MessageTemplate::parse("a } b").is_err());
    }
}
