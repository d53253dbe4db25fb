//! Compiled predicates: what one `field|modifiers: values` item tests, in a form that runs
//! without looking at rule text. Case-insensitive comparisons fold ASCII case on the fly
//! against pre-lowered patterns (events are never lowercased); non-ASCII case-insensitive
//! patterns go through the regex engine, which folds Unicode case.

use crate::decode::{EventView, Scalar, Slot};
use crate::sigma::value::{Cidr, NumOp, TimePart, parse_ip};
use crate::time::EventTime;

/// How a string pattern compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrKind {
    Exact,
    Prefix,
    Suffix,
    /// Answered by the prefilter's literal hit when case-insensitive.
    Contains,
}

/// A compiled string comparison without wildcards in the middle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrTest {
    pub kind: StrKind,
    /// ASCII-lowercased unless `cased`.
    pub text: Box<str>,
    pub cased: bool,
    /// The global literal id of the text (lowercased), in the field's prefilter automaton. Its
    /// hit answers a case-insensitive `Contains` outright, and its absence answers every kind
    /// (an exact, prefix or suffix match contains the text): an `endswith` list of thirty
    /// binaries asks the per-event bitmap thirty times instead of comparing every value thirty
    /// times.
    pub literal: Option<u32>,
}

/// A wildcard value whose wildcards are all `*` (`contains|all` pieces, `a*b*c`): literal
/// pieces found left to right, each after the previous one, with memchr. Linear in the text
/// and independent of how many rules the set holds: no automaton is built per event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobTest {
    /// The value must start with the first piece (no leading `*`).
    pub anchored_start: bool,
    /// The value must end with the last piece (no trailing `*`).
    pub anchored_end: bool,
    /// The literal pieces between the stars, in order, none empty; ASCII-lowercased unless
    /// `cased`.
    pub pieces: Vec<Box<str>>,
    pub cased: bool,
    /// The prefilter literal of each piece (field globs; none for keywords): a piece that does
    /// not occur in the field answers `false` without reading the text.
    pub literals: Vec<u32>,
}

/// One compiled value test.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    Str(StrTest),
    Glob(GlobTest),
    /// Index of a pattern in [`RuleSet::regexes`](super::RuleSet) (`re`, and wildcards that
    /// need one: `?`, non-ASCII case-insensitive text).
    Regex(u32),
    Cidr(Cidr),
    Num(NumOp, f64),
    Exists(bool),
    Null,
    FieldRef {
        other: Slot,
        before: bool,
        after: bool,
        cased: bool,
    },
    Time(TimePart, i64),
}

/// A compiled field item.
#[derive(Clone, Debug, PartialEq)]
pub struct Pred {
    /// `None` for keyword searches over every value of the event.
    pub slot: Option<Slot>,
    pub tests: Vec<Test>,
    /// For each test, the literal (id) any matching value must contain, for the prefilter.
    pub needles: Vec<Option<u32>>,
    pub all: bool,
    pub negate: bool,
}

/// Per-event answers the predicates consult: literal hits from the prefilter and regex-set
/// results, computed once per event and slot.
pub trait EventFacts {
    /// Whether the literal occurs in its field (scanning the field first if the prefilter left
    /// it for later).
    fn literal_hit(&mut self, view: &EventView<'_, '_>, literal: u32) -> bool;
    /// Whether regex `regex` matches a value of its field (every scalar for keywords); asked
    /// only of candidate rules, answered once per event.
    fn regex_hit(&mut self, view: &EventView<'_, '_>, regex: u32) -> bool;
}

impl Pred {
    pub fn eval(
        &self,
        view: &EventView<'_, '_>,
        facts: &mut dyn EventFacts,
        scratch: &mut String,
    ) -> bool {
        let mut any = false;
        let mut every = true;
        for t in &self.tests {
            let hit = self.test(t, view, facts, scratch);
            any |= hit;
            every &= hit;
            if !self.all && hit || self.all && !hit {
                break;
            }
        }
        let matched = if self.all { every } else { any };
        matched != self.negate
    }

    fn test(
        &self,
        t: &Test,
        view: &EventView<'_, '_>,
        facts: &mut dyn EventFacts,
        scratch: &mut String,
    ) -> bool {
        let Some(slot) = self.slot else {
            return keyword_test(t, view, facts, scratch);
        };
        match t {
            Test::Exists(want) => view.exists(slot) == *want,
            Test::Null => view.values(slot).all(|v| v == Scalar::Null),
            Test::Str(s) => {
                if let Some(answer) = s.by_literal(view, facts) {
                    return answer;
                }
                view.values(slot)
                    .any(|v| with_text(v, scratch, |text| s.matches(text)))
            }
            Test::Glob(g) => {
                g.literals.iter().all(|&l| facts.literal_hit(view, l))
                    && view
                        .values(slot)
                        .any(|v| with_text(v, scratch, |text| g.matches(text)))
            }
            Test::Regex(r) => facts.regex_hit(view, *r),
            Test::Cidr(net) => view.values(slot).any(|v| match v {
                Scalar::Str(s) => parse_ip(s).is_some_and(|ip| net.contains(ip)),
                _ => false,
            }),
            Test::Num(op, n) => view
                .values(slot)
                .any(|v| v.number().is_some_and(|x| op.test(x, *n))),
            Test::FieldRef {
                other,
                before,
                after,
                cased,
            } => {
                let kind = match (before, after) {
                    (true, true) => StrKind::Contains,
                    (false, true) => StrKind::Prefix,
                    (true, false) => StrKind::Suffix,
                    (false, false) => StrKind::Exact,
                };
                view.values(slot).any(|v| {
                    let Some(a) = v.text() else { return false };
                    view.values(*other)
                        .any(|w| w.text().is_some_and(|b| matches_kind(kind, *cased, &a, &b)))
                })
            }
            Test::Time(part, want) => view
                .values(slot)
                .any(|v| time_part(v).is_some_and(|t| part_of(t, *part) == *want)),
        }
    }
}

/// Keyword searches look at every scalar of the event (object keys excluded).
fn keyword_test(
    t: &Test,
    view: &EventView<'_, '_>,
    facts: &mut dyn EventFacts,
    scratch: &mut String,
) -> bool {
    match t {
        Test::Str(s) => {
            if let Some(answer) = s.by_literal(view, facts) {
                return answer;
            }
            view.all_scalars()
                .any(|v| with_text(v, scratch, |text| s.matches(text)))
        }
        Test::Glob(g) => {
            g.literals.iter().all(|&l| facts.literal_hit(view, l))
                && view
                    .all_scalars()
                    .any(|v| with_text(v, scratch, |text| g.matches(text)))
        }
        // A keyword regex runs over every scalar (see `KEYWORD_SLOT`).
        Test::Regex(r) => facts.regex_hit(view, *r),
        _ => false,
    }
}

/// Calls `f` with the value's text. Integers are spelled into a stack buffer (the common case:
/// Windows `EventID`, ports, codes), floats into `scratch` (no allocation once it has grown).
pub fn with_text(v: Scalar<'_>, scratch: &mut String, f: impl FnOnce(&str) -> bool) -> bool {
    use std::fmt::Write;
    let mut digits = [0u8; 20];
    match v {
        Scalar::Str(s) => f(s),
        Scalar::Null => false,
        Scalar::Bool(b) => f(if b { "true" } else { "false" }),
        Scalar::I64(i) if i < 0 => {
            scratch.clear();
            scratch.push('-');
            scratch.push_str(spell(i.unsigned_abs(), &mut digits));
            f(scratch)
        }
        Scalar::I64(i) => f(spell(i as u64, &mut digits)),
        Scalar::U64(u) => f(spell(u, &mut digits)),
        Scalar::F64(x) => {
            scratch.clear();
            let _ = write!(scratch, "{x}");
            f(scratch)
        }
    }
}

/// The decimal spelling of `n`, written from the end of `buf`: the formatting machinery costs
/// ten times more and runs once per numeric field per event.
fn spell(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

impl StrTest {
    pub fn matches(&self, value: &str) -> bool {
        matches_kind(self.kind, self.cased, value, &self.text)
    }

    /// What the per-event literal bitmap alone decides: `Some(false)` when the text occurs
    /// nowhere in the field (no kind can match then), `Some(true)` for a case-insensitive
    /// `contains` that occurs, `None` when the values must be compared.
    fn by_literal(&self, view: &EventView<'_, '_>, facts: &mut dyn EventFacts) -> Option<bool> {
        let present = facts.literal_hit(view, self.literal?);
        (!present || (self.kind == StrKind::Contains && !self.cased)).then_some(present)
    }
}

/// Compares `value` with `pattern`, folding ASCII case unless `cased`.
pub fn matches_kind(kind: StrKind, cased: bool, value: &str, pattern: &str) -> bool {
    let (v, p) = (value.as_bytes(), pattern.as_bytes());
    {
        if cased {
            return match kind {
                StrKind::Exact => v == p,
                StrKind::Prefix => v.starts_with(p),
                StrKind::Suffix => v.ends_with(p),
                StrKind::Contains => memchr::memmem::find(v, p).is_some(),
            };
        }
        match kind {
            StrKind::Exact => v.eq_ignore_ascii_case(p),
            StrKind::Prefix => v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p),
            StrKind::Suffix => v.len() >= p.len() && v[v.len() - p.len()..].eq_ignore_ascii_case(p),
            StrKind::Contains => contains_ignore_ascii_case(v, p),
        }
    }
}

impl GlobTest {
    pub fn matches(&self, value: &str) -> bool {
        let mut v = value.as_bytes();
        let mut pieces = &self.pieces[..];
        let eq = |a: &[u8], b: &[u8]| {
            if self.cased {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        if self.anchored_start {
            let Some((first, rest)) = pieces.split_first() else {
                return v.is_empty();
            };
            let first = first.as_bytes();
            if v.len() < first.len() || !eq(&v[..first.len()], first) {
                return false;
            }
            v = &v[first.len()..];
            pieces = rest;
        }
        if self.anchored_end {
            let Some((last, rest)) = pieces.split_last() else {
                // The pattern was one anchored piece, already consumed: nothing may follow.
                return v.is_empty();
            };
            let last = last.as_bytes();
            if v.len() < last.len() || !eq(&v[v.len() - last.len()..], last) {
                return false;
            }
            v = &v[..v.len() - last.len()];
            pieces = rest;
        }
        // Leftmost first is enough for `*`: an earlier match never leaves less room.
        for piece in pieces {
            let p = piece.as_bytes();
            let found = if self.cased {
                memchr::memmem::find(v, p)
            } else {
                find_ignore_ascii_case(v, p)
            };
            match found {
                Some(at) => v = &v[at + p.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Whether `hay` contains `needle`, folding ASCII case.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    find_ignore_ascii_case(hay, needle).is_some()
}

/// Where `needle` first occurs in `hay`, folding ASCII case.
fn find_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if hay.len() < needle.len() {
        return None;
    }
    let first = needle[0].to_ascii_lowercase();
    let upper = needle[0].to_ascii_uppercase();
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        let found = if first == upper {
            memchr::memchr(first, &hay[i..=last_start])
        } else {
            memchr::memchr2(first, upper, &hay[i..=last_start])
        };
        let off = found?;
        let at = i + off;
        if hay[at..at + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

fn time_part(v: Scalar<'_>) -> Option<EventTime> {
    match v {
        Scalar::Str(s) => EventTime::parse(s),
        other => other.number().and_then(EventTime::from_epoch_number),
    }
}

fn part_of(t: EventTime, part: TimePart) -> i64 {
    let secs = t.0.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    match part {
        TimePart::Minute => (sod / 60) % 60,
        TimePart::Hour => sod / 3600,
        // Day of the month, month, year in UTC; weeks are ISO weeks.
        TimePart::Day | TimePart::Month | TimePart::Year => {
            let s = t.to_string();
            let field = match part {
                TimePart::Year => &s[0..4],
                TimePart::Month => &s[5..7],
                _ => &s[8..10],
            };
            field.parse().unwrap_or(-1)
        }
        TimePart::Week => {
            // ISO week number: Thursday decides the year.
            let weekday = (days + 3).rem_euclid(7); // 0 = Monday
            let thursday = days - weekday + 3;
            let year_start = {
                let s = EventTime(thursday * 86_400 * 1_000_000_000).to_string();
                let y: i64 = s[0..4].parse().unwrap_or(1970);
                days_from_year(y)
            };
            (thursday - year_start) / 7 + 1
        }
    }
}

fn days_from_year(y: i64) -> i64 {
    EventTime::parse(&format!("{y:04}-01-01"))
        .map(|t| t.0.div_euclid(86_400_000_000_000))
        .unwrap_or(0)
}

/// Whether a pattern literal can use the fast ASCII paths: case-sensitive patterns always can;
/// case-insensitive ones when every character beyond ASCII has no case (an emoji, a CJK
/// character, a symbol: it matches only itself, byte for byte). Text with cased letters beyond
/// ASCII (`é`, `Ä`, `ß`) needs Unicode case folding, which goes to the regex engine.
///
/// SigmaHQ's four "Emoji Usage In CommandLine" rules hold about 3,600 emoji values between
/// them; as regexes they were run on every process creation's command line (none has an ASCII
/// needle), about 6 ms for a 4 KB command line and the whole of the Windows slice's p99.9.
pub fn ascii_foldable(text: &str, cased: bool) -> bool {
    cased || text.chars().all(|c| c.is_ascii() || !has_case(c))
}

/// Whether `c` has another case: a lowercase or uppercase mapping other than itself.
fn has_case(c: char) -> bool {
    !c.to_lowercase().eq(std::iter::once(c)) || !c.to_uppercase().eq(std::iter::once(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: StrKind, text: &str, cased: bool) -> StrTest {
        StrTest {
            kind,
            text: text.into(),
            cased,
            literal: None,
        }
    }

    #[test]
    fn caseless_characters_take_the_ascii_path_and_cased_ones_do_not() {
        assert!(
            ascii_foldable("cmd \u{1F600} x", false),
            "an emoji has no case"
        );
        assert!(ascii_foldable("\u{4E2D}\u{6587}", false), "nor has CJK");
        assert!(!ascii_foldable("caf\u{E9}", false), "é folds to É");
        assert!(!ascii_foldable("stra\u{DF}e", false), "ß uppercases to SS");
        assert!(!ascii_foldable("\u{17F}", false), "ſ uppercases to S");
        assert!(ascii_foldable("caf\u{E9}", true));
        // The emoji test compares bytes: only the same emoji matches, in any ASCII case around it.
        let emoji = t(StrKind::Contains, "\u{1F600}", false);
        assert!(emoji.matches("POWERSHELL \u{1F600} -enc"));
        assert!(!emoji.matches("powershell \u{1F601} -enc"));
    }

    #[test]
    fn ascii_case_folding_without_lowercasing_the_event() {
        assert!(t(StrKind::Exact, "getsecretvalue", false).matches("GetSecretValue"));
        assert!(!t(StrKind::Exact, "getsecretvalue", true).matches("GetSecretValue"));
        assert!(t(StrKind::Suffix, "\\net.exe", false).matches("C:\\Windows\\System32\\NET.EXE"));
        assert!(t(StrKind::Prefix, "c:\\", false).matches("C:\\x"));
        assert!(t(StrKind::Contains, "sekurlsa", false).matches("x SekurLSA::logonpasswords"));
        assert!(!t(StrKind::Contains, "sekurlsa", false).matches("sekurls"));
        assert!(t(StrKind::Contains, "", false).matches(""));
        assert!(t(StrKind::Contains, "Ab", true).matches("xAbx"));
        assert!(!t(StrKind::Contains, "Ab", true).matches("xabx"));
    }

    #[test]
    fn numbers_are_spelled_as_json_writes_them() {
        let mut scratch = String::new();
        let text = |v: Scalar<'_>, scratch: &mut String| {
            let mut out = String::new();
            with_text(v, scratch, |t| {
                out = t.to_string();
                true
            });
            out
        };
        assert_eq!(text(Scalar::I64(0), &mut scratch), "0");
        assert_eq!(text(Scalar::I64(4688), &mut scratch), "4688");
        assert_eq!(text(Scalar::I64(-17), &mut scratch), "-17");
        assert_eq!(
            text(Scalar::I64(i64::MIN), &mut scratch),
            i64::MIN.to_string()
        );
        assert_eq!(
            text(Scalar::U64(u64::MAX), &mut scratch),
            u64::MAX.to_string()
        );
        assert_eq!(text(Scalar::F64(1.5), &mut scratch), "1.5");
    }

    #[test]
    fn time_parts_in_utc() {
        let ts = EventTime::parse("2023-07-10T11:42:18Z").unwrap();
        assert_eq!(part_of(ts, TimePart::Hour), 11);
        assert_eq!(part_of(ts, TimePart::Minute), 42);
        assert_eq!(part_of(ts, TimePart::Day), 10);
        assert_eq!(part_of(ts, TimePart::Month), 7);
        assert_eq!(part_of(ts, TimePart::Year), 2023);
        assert_eq!(part_of(ts, TimePart::Week), 28);
        // 2021-01-01 is a Friday: ISO week 53 of 2020.
        assert_eq!(
            part_of(
                EventTime::parse("2021-01-01T00:00:00Z").unwrap(),
                TimePart::Week
            ),
            53
        );
    }
}
