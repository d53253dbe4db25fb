//! JSON that every reader can take: serde_json escapes the control characters JSON requires,
//! but writes U+2028 and U+2029 (line terminators in JavaScript before ES2019, and line breaks
//! for some line-splitting readers), DEL and the C1 controls raw. This formatter escapes those
//! too, in every string of an alert; and [`printable`] makes text safe to print on a terminal.

use std::borrow::Cow;
use std::io::{self, Write};

use serde_json::ser::Formatter;

/// A compact JSON formatter that also escapes U+2028, U+2029, DEL and the C1 controls.
#[derive(Clone, Copy, Debug, Default)]
pub struct SafeFormatter;

fn needs_escape(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

impl Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Every character to escape starts with one of these bytes (U+007F itself, the lead
        // byte of U+0080..U+009F, that of U+2028 and U+2029); none of them is a continuation
        // byte, so the first one found starts a character. Most strings have none at all.
        let bytes = fragment.as_bytes();
        let Some(first) = memchr::memchr3(0x7f, 0xc2, 0xe2, bytes) else {
            return writer.write_all(bytes);
        };
        let mut start = 0;
        for (i, c) in fragment[first..].char_indices() {
            if needs_escape(c) {
                let i = first + i;
                writer.write_all(&bytes[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&bytes[start..])
    }
}

impl SafeFormatter {
    /// Serializes `value` as one compact JSON line into `out`.
    pub fn write<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
        // The trait's default methods write compact JSON; only string fragments differ.
        let mut ser = serde_json::Serializer::with_formatter(out, SafeFormatter);
        value.serialize(&mut ser)
    }
}

/// `s` with every control character, U+2028 and U+2029 shown as an escape (`\n`, `\u{0}`), so
/// a rule title or an event value can never break a terminal line or a summary.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() || needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 11): U+2028/U+2029 and C1 controls were written raw into alert lines.
    #[test]
    fn line_separators_and_controls_are_escaped_and_still_json() {
        let s = "a\u{2028}b\u{2029}c\u{85}d\n\u{0}e\u{7f}";
        let mut out = Vec::new();
        SafeFormatter::write(&mut out, &s).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}'));
        assert!(!text.contains('\u{85}') && !text.contains('\n') && !text.contains('\u{7f}'));
        assert!(text.contains("\\u2028") && text.contains("\\u0085"));
        let back: String = serde_json::from_str(text).unwrap();
        assert_eq!(back, s);
    }

    proptest::proptest! {
        /// Any text, the characters to escape mixed in anywhere (also next to other multi-byte
        /// characters that share their lead bytes, like U+00E9 or U+2014): none is written raw,
        /// and the JSON reads back to the text.
        #[test]
        fn any_text_is_escaped_and_reads_back(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<String>(),
                    proptest::strategy::Just("\u{2028}".to_string()),
                    proptest::strategy::Just("\u{9f}\u{e9}\u{2014}\u{7f}".to_string()),
                ],
                0..6,
            )
        ) {
            let s = parts.concat();
            let mut out = Vec::new();
            SafeFormatter::write(&mut out, &s).unwrap();
            let text = std::str::from_utf8(&out).unwrap();
            proptest::prop_assert!(!text.chars().any(needs_escape));
            let back: String = serde_json::from_str(text).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn printable_text_never_holds_a_newline_or_nul() {
        let p = printable("Title\nwith NUL\u{0} and \u{2028}");
        assert!(!p.contains('\n') && !p.contains('\u{0}') && !p.contains('\u{2028}'));
        assert!(p.contains("\\n"));
        assert_eq!(printable("plain"), "plain");
    }
}
