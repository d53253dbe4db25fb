//! Sigma strings: literal text with `*` and `?` wildcards, parsed from rule values with their
//! escapes, and the pieces the prefilter and pattern compiler take from them.

/// A Sigma string: literal text with `*` (any run) and `?` (any one character) wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SigmaString(pub Vec<Part>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Lit(String),
    Star,
    One,
}

impl SigmaString {
    /// Parses a plain Sigma value: `*` and `?` are wildcards, `\*`, `\?` and `\\` escape them
    /// and the backslash; any other backslash is literal (as in `C:\Windows\`).
    pub fn parse(s: &str) -> SigmaString {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                    lit.extend(chars.next());
                }
                '*' | '?' => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(if c == '*' { Part::Star } else { Part::One });
                }
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        SigmaString(parts)
    }

    pub fn literal(s: &str) -> SigmaString {
        if s.is_empty() {
            SigmaString(Vec::new())
        } else {
            SigmaString(vec![Part::Lit(s.to_string())])
        }
    }

    pub fn has_wildcards(&self) -> bool {
        self.0.iter().any(|p| !matches!(p, Part::Lit(_)))
    }

    /// The text, when there are no wildcards.
    pub fn plain(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                _ => return None,
            }
        }
        Some(out)
    }

    pub(super) fn starts_with_star(&self) -> bool {
        matches!(self.0.first(), Some(Part::Star))
    }

    pub(super) fn ends_with_star(&self) -> bool {
        matches!(self.0.last(), Some(Part::Star))
    }

    pub(super) fn wrap(mut self, before: bool, after: bool) -> SigmaString {
        if before && !self.starts_with_star() {
            self.0.insert(0, Part::Star);
        }
        if after && !self.ends_with_star() {
            self.0.push(Part::Star);
        }
        self
    }

    /// The literal pieces, for prefilter needles.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Lit(s) => Some(s.as_str()),
            _ => None,
        })
    }
}
