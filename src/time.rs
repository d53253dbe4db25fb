//! Event time: the instant an event says it happened, parsed from the formats security sources
//! write, and the durations rules and configs use (`5m`, `1h30m`).
//!
//! Times are nanoseconds since the Unix epoch in an `i64` (years 1677 to 2262). Parsing is
//! hand-written because it runs once per event on the hot path and must not allocate.

use std::fmt;

/// An event-time instant, in nanoseconds since 1970-01-01T00:00:00Z.
#[derive(
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
pub struct EventTime(pub i64);

impl EventTime {
    /// Earlier than any event: the watermark of a source that has seen nothing yet.
    pub const MIN: EventTime = EventTime(i64::MIN);
    /// Later than any event: the watermark of a finished source.
    pub const MAX: EventTime = EventTime(i64::MAX);

    /// Milliseconds since the epoch (OCSF's `timestamp_t`), rounded toward negative infinity.
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn from_millis(ms: i64) -> EventTime {
        EventTime(ms.saturating_mul(1_000_000))
    }

    /// `self + d`, saturating at the ends of the range.
    pub fn plus(self, d: Span) -> EventTime {
        EventTime(self.0.saturating_add(d.0))
    }

    /// `self - d`, saturating at the ends of the range.
    pub fn minus(self, d: Span) -> EventTime {
        EventTime(self.0.saturating_sub(d.0))
    }

    /// The span from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: EventTime) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// Parses the textual timestamps sources write: RFC 3339 with `T` or a space between date
    /// and time, optional fraction, `Z`, `±hh:mm` or no zone (read as UTC).
    pub fn parse(s: &str) -> Option<EventTime> {
        parse_datetime(s.as_bytes())
    }

    /// Interprets a number as epoch seconds, milliseconds, microseconds or nanoseconds,
    /// chosen by magnitude (OCSF writes milliseconds; some exporters seconds).
    pub fn from_epoch_number(n: f64) -> Option<EventTime> {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let nanos = if n < 1e11 {
            n * 1e9
        } else if n < 1e14 {
            n * 1e6
        } else if n < 1e17 {
            n * 1e3
        } else {
            n
        };
        if nanos >= i64::MAX as f64 {
            return None;
        }
        Some(EventTime(nanos as i64))
    }
}

impl fmt::Display for EventTime {
    /// RFC 3339 in UTC with milliseconds, e.g. `2023-07-10T11:42:18.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == EventTime::MIN {
            return f.write_str("-inf");
        }
        if *self == EventTime::MAX {
            return f.write_str("+inf");
        }
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            nanos / 1_000_000
        )
    }
}

/// A signed length of event time, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn from_secs(s: i64) -> Span {
        Span(s.saturating_mul(1_000_000_000))
    }

    pub fn from_millis(ms: i64) -> Span {
        Span(ms.saturating_mul(1_000_000))
    }

    pub fn as_millis(self) -> i64 {
        self.0 / 1_000_000
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Parses durations such as `500ms`, `30s`, `5m`, `1h30m`, `2d`, `1w`. A bare number is
    /// rejected: a unit is always required so that `5` is never read as seconds by one tool and
    /// minutes by another.
    pub fn parse(s: &str) -> Result<Span, SpanError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(SpanError::Empty);
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut total: i64 = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(SpanError::Invalid(s.to_string()));
            }
            let n: i64 = text[start..i]
                .parse()
                .map_err(|_| SpanError::Invalid(s.to_string()))?;
            // `10 m` and `1h 30m` read as written; `10 mins` then names its unit.
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit_nanos: i64 = match &text[unit_start..i] {
                "ns" => 1,
                "us" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "d" => 86_400_000_000_000,
                "w" => 604_800_000_000_000,
                "" => return Err(SpanError::MissingUnit(s.to_string())),
                other => {
                    return Err(SpanError::UnknownUnit {
                        unit: other.to_string(),
                        input: s.to_string(),
                        hint: unit_hint(other),
                    });
                }
            };
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let part = n
                .checked_mul(unit_nanos)
                .ok_or_else(|| SpanError::Invalid(s.to_string()))?;
            total = total
                .checked_add(part)
                .ok_or_else(|| SpanError::Invalid(s.to_string()))?;
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    /// The shortest exact form among `ms`, `s`, `m`, `h`, `d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [
            ("d", 86_400_000_000_000i64),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
        ] {
            if n != 0 && n % size == 0 {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}ns")
    }
}

/// Why a duration did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpanError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration `{0}` (expected e.g. `30s`, `5m`, `1h30m`)")]
    Invalid(String),
    #[error("duration `{0}` has no unit (write e.g. `30s` or `5m`)")]
    MissingUnit(String),
    #[error("unknown unit `{unit}` in duration `{input}` (known: ns, us, ms, s, m, h, d, w){hint}")]
    UnknownUnit {
        unit: String,
        input: String,
        /// `; did you mean `m`?` when the unit is a spelled-out one, else empty.
        hint: String,
    },
}

/// The suggestion for a spelled-out unit (`mins`, `seconds`, `hr`), as a message suffix.
fn unit_hint(unit: &str) -> String {
    let known = match unit.to_ascii_lowercase().as_str() {
        // Units are case-sensitive (`M` is not `m` everywhere): an upper-case one gets a hint.
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "w" | "wk" | "wks" | "week" | "weeks" => "w",
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        _ => return String::new(),
    };
    format!("; did you mean `{known}`?")
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    let mut v = 0i64;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn parse_datetime(b: &[u8]) -> Option<EventTime> {
    // YYYY-MM-DD[T ]hh:mm[:ss[.fff...]][Z|±hh[:]mm]
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs_of_day = 0i64;
    let mut nanos = 0i64;
    let mut i = 10;
    if matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        let hour = digits(b, 11, 2)?;
        if b.get(13) != Some(&b':') {
            return None;
        }
        let minute = digits(b, 14, 2)?;
        i = 16;
        let mut second = 0;
        if b.get(16) == Some(&b':') {
            second = digits(b, 17, 2)?;
            i = 19;
        }
        // A leap second (60) is folded into the next second's start by clamping.
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        secs_of_day = hour * 3600 + minute * 60 + second.min(59);
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            let mut scale = 100_000_000i64;
            while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                nanos += i64::from(c - b'0') * scale;
                scale /= 10;
                i += 1;
            }
            if i == start {
                return None;
            }
        }
    }
    let mut offset_secs = 0i64;
    match b.get(i) {
        None => {}
        Some(b'Z' | b'z') if i + 1 == b.len() => {}
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let om = if b.get(i + 3) == Some(&b':') {
                digits(b, i + 4, 2)?
            } else {
                digits(b, i + 3, 2).unwrap_or(0)
            };
            let consumed = if b.get(i + 3) == Some(&b':') {
                6
            } else if digits(b, i + 3, 2).is_some() {
                5
            } else {
                3
            };
            if i + consumed != b.len() || oh > 23 || om > 59 {
                return None;
            }
            offset_secs = (oh * 3600 + om * 60) * if sign == b'+' { 1 } else { -1 };
        }
        Some(_) => return None,
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + secs_of_day - offset_secs;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .map(EventTime)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_formats_sources_write() {
        let z = EventTime::parse("2023-07-10T11:42:18Z").unwrap();
        assert_eq!(z.to_string(), "2023-07-10T11:42:18.000Z");
        let ms = EventTime::parse("2020-09-14T00:44:23.123Z").unwrap();
        assert_eq!(ms.to_string(), "2020-09-14T00:44:23.123Z");
        // OTRF's space-separated form has no zone: it is UTC.
        let space = EventTime::parse("2020-10-19 12:28:23.942").unwrap();
        assert_eq!(space.to_string(), "2020-10-19T12:28:23.942Z");
        let offset = EventTime::parse("2020-10-19T14:28:23+02:00").unwrap();
        assert_eq!(offset.to_string(), "2020-10-19T12:28:23.000Z");
        let nano = EventTime::parse("2020-12-19T06:59:28.4101234Z").unwrap();
        assert_eq!(nano.0 % 1_000_000_000, 410_123_400);
        assert_eq!(EventTime::parse("1970-01-01").unwrap(), EventTime(0));
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-02-30T00:00:00Z",
            "2023-07-10T25:00:00Z",
            "2023-07-10T11:42:18Zjunk",
            "2023-07-10T11:42:18.Z",
            "2023-07-10X11:42:18Z",
        ] {
            assert_eq!(EventTime::parse(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn epoch_numbers_by_magnitude() {
        let s = EventTime::from_epoch_number(1_688_989_338.0).unwrap();
        let ms = EventTime::from_epoch_number(1_688_989_338_000.0).unwrap();
        assert_eq!(s, ms);
        assert_eq!(s.to_string(), "2023-07-10T11:42:18.000Z");
        assert_eq!(EventTime::from_epoch_number(-1.0), None);
        assert_eq!(EventTime::from_epoch_number(f64::NAN), None);
    }

    #[test]
    fn spans_parse_and_print() {
        assert_eq!(Span::parse("5m").unwrap(), Span::from_secs(300));
        assert_eq!(Span::parse("1h30m").unwrap(), Span::from_secs(5400));
        assert_eq!(Span::parse("250ms").unwrap(), Span::from_millis(250));
        assert_eq!(Span::parse("2d").unwrap().to_string(), "2d");
        assert_eq!(Span::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(Span::parse("5"), Err(SpanError::MissingUnit("5".into())));
        assert!(matches!(
            Span::parse("5y"),
            Err(SpanError::UnknownUnit { .. })
        ));
        assert!(matches!(Span::parse("m"), Err(SpanError::Invalid(_))));
        assert!(matches!(
            Span::parse("99999999999999d"),
            Err(SpanError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -800_000i64..800_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn display_then_parse_is_identity_to_the_millisecond(ms in 0i64..8_000_000_000_000) {
            let t = EventTime::from_millis(ms);
            prop_assert_eq!(EventTime::parse(&t.to_string()), Some(t));
        }
    }

    /// Regression (issue 10, item 4): `10 mins` said "has no unit"; it names the unit it does
    /// not know and suggests the one meant.
    #[test]
    fn spelled_out_units_are_named_with_a_suggestion() {
        let e = Span::parse("10 mins").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown unit `mins` in duration `10 mins` (known: ns, us, ms, s, m, h, d, w); did you mean `m`?"
        );
        assert_eq!(
            Span::parse("2 hours").unwrap_err().to_string(),
            "unknown unit `hours` in duration `2 hours` (known: ns, us, ms, s, m, h, d, w); did you mean `h`?"
        );
        assert_eq!(
            Span::parse("5y").unwrap_err().to_string(),
            "unknown unit `y` in duration `5y` (known: ns, us, ms, s, m, h, d, w)"
        );
        assert_eq!(Span::parse("10 m"), Ok(Span::from_secs(600)));
        assert_eq!(Span::parse("1h 30m"), Ok(Span::from_secs(5400)));
    }
}
