//! Required literals of a regular expression, for the prefilter.
//!
//! A `re` pattern with no literal needle would make its rule a candidate for every event of its
//! profile. Most real patterns contain a fixed piece every match must include
//! (`\\AppData\\Roaming\\[a-z]{8}\.exe` needs `\appdata\roaming\`); this finds the longest such
//! ASCII piece, so the rule is only evaluated when the prefilter saw it. The analysis is
//! conservative: alternations, optional repetitions and character classes end a piece, and a
//! case-insensitive letter counts only when its class is exactly its two ASCII cases.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The longest ASCII literal (lowercased) that every match of `pattern` contains, if any.
pub fn required_literal(pattern: &str) -> Option<String> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    let mut best = String::new();
    let mut run = String::new();
    walk(&hir, &mut run, &mut best);
    keep(&mut run, &mut best);
    (!best.is_empty()).then_some(best)
}

fn keep(run: &mut String, best: &mut String) {
    if run.len() > best.len() {
        *best = run.clone();
    }
    run.clear();
}

/// Appends to `run` the literal characters `hir` always matches in sequence; ends the run (into
/// `best`) where the match may vary.
fn walk(hir: &Hir, run: &mut String, best: &mut String) {
    match hir.kind() {
        HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
            Ok(s) if s.is_ascii() => run.push_str(&s.to_ascii_lowercase()),
            _ => keep(run, best),
        },
        HirKind::Class(class) => match ascii_letter_either_case(class) {
            Some(c) => run.push(c),
            None => keep(run, best),
        },
        HirKind::Capture(c) => walk(&c.sub, run, best),
        HirKind::Concat(parts) => parts.iter().for_each(|p| walk(p, run, best)),
        HirKind::Repetition(r) if r.min >= 1 => {
            // The first copy is required; what follows it may vary.
            walk(&r.sub, run, best);
            if r.max != Some(r.min) || r.min > 1 {
                keep(run, best);
            }
        }
        // Look-arounds match no characters: the run goes on.
        HirKind::Look(_) | HirKind::Empty => {}
        _ => keep(run, best),
    }
}

/// `[aA]` (what `(?i)a` becomes) as `a`; a single ASCII character class as itself.
fn ascii_letter_either_case(class: &Class) -> Option<char> {
    let chars: Vec<char> = match class {
        Class::Unicode(u) => {
            let mut v = Vec::new();
            for r in u.ranges() {
                if (r.end() as u32) - (r.start() as u32) > 1 || v.len() > 2 {
                    return None;
                }
                v.extend(r.start()..=r.end());
            }
            v
        }
        Class::Bytes(b) => {
            let mut v = Vec::new();
            for r in b.ranges() {
                if r.end() - r.start() > 1 || v.len() > 2 {
                    return None;
                }
                v.extend((r.start()..=r.end()).map(char::from));
            }
            v
        }
    };
    match chars.as_slice() {
        [c] if c.is_ascii() => Some(c.to_ascii_lowercase()),
        [a, b] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b) => {
            Some(a.to_ascii_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::required_literal as lit;

    #[test]
    fn finds_the_longest_piece_every_match_contains() {
        assert_eq!(
            lit(r"\\AppData\\Roaming\\[a-z]{8}\.exe").as_deref(),
            Some(r"\appdata\roaming\")
        );
        assert_eq!(
            lit(r"^(tmp|test)-[a-z0-9-]+-4821$").as_deref(),
            Some("-4821")
        );
        assert_eq!(lit(r"(?i)mimidrv").as_deref(), Some("mimidrv"));
        // (?i)k also matches the Kelvin sign U+212A, which ASCII folding would miss: the piece
        // stops there.
        assert_eq!(lit(r"(?i)mimikatz").as_deref(), Some("mimi"));
        assert_eq!(lit(r"(ab)+cd").as_deref(), Some("ab"));
        assert_eq!(lit(r"x(ab){2}cdef").as_deref(), Some("cdef"));
        assert_eq!(lit(r"\bnet\s+user\b").as_deref(), Some("user"));
    }

    #[test]
    fn gives_nothing_when_no_piece_is_required() {
        assert_eq!(lit(r"a|b"), None);
        assert_eq!(lit(r"(foo)?bar|baz"), None);
        assert_eq!(lit(r"[0-9]+"), None);
        assert_eq!(lit(r"x*"), None);
        // (?i)s also matches U+017F: not a plain ASCII letter class, so the run breaks there.
        assert_eq!(lit(r"(?i)pass").as_deref(), Some("pa"));
    }
}
