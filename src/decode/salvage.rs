//! Salvage: an event over a decode limit, reduced until it decodes, so that the limits are not
//! an evasion. An attacker who writes part of an event (an AI agent's `tool.arguments`, a
//! command line, a request body) could otherwise push the whole event over the size, depth or
//! value-count limit, or slip in a number JSON cannot hold in 64 bits, and have it
//! dead-lettered, chain and all.
//!
//! The event is rewritten member by member: a value that fits the budgets is copied as it is;
//! an object that does not is entered and its members judged the same way; any other value
//! that does not fit is replaced by a marker string naming what was removed, and a number out
//! of range is kept as its raw text in a string. The profile's own fields (event name,
//! identity, time) are small and shallow, so they survive. The rewritten event carries a
//! top-level [`SALVAGED_FIELD`] saying why it was rewritten.
//!
//! The scan is iterative (a hostile nesting depth costs no stack) and linear in the event.

use super::DecodeLimits;

/// The top-level member added to a salvaged event: the reason code of the limit it was over.
pub const SALVAGED_FIELD: &str = "credtrail_salvaged";

/// What one value holds: its bytes, JSON values (as the tape counts them), nesting depth, and
/// whether some number in it is out of range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    bytes: usize,
    values: usize,
    depth: usize,
    bad_number: bool,
}

/// Budgets per kept value, tried from the most generous until the result decodes.
const CAPS: [(usize, usize); 3] = [(64 << 10, 1000), (4 << 10, 100), (256, 10)];

/// The rewritten event (see the module doc), or `None` when `raw` is not a JSON object this
/// scanner can read (then the original decode error stands). `reason` is the limit it was
/// over; `attempt` picks the budgets (0 = most generous); `None` as well past the last.
pub fn salvage(raw: &[u8], limits: &DecodeLimits, reason: &str, attempt: usize) -> Option<Vec<u8>> {
    let &(max_bytes, max_values) = CAPS.get(attempt)?;
    let mut s = Salvager {
        raw,
        out: Vec::with_capacity(raw.len().min(limits.max_event_bytes)),
        max_bytes,
        max_values,
        max_depth: limits.max_depth.saturating_sub(1).max(1),
    };
    let start = skip_ws(raw, 0);
    if raw.get(start) != Some(&b'{') {
        return None;
    }
    let end = s.object(start, 1, Some(reason))?;
    if skip_ws(raw, end) != raw.len() {
        return None;
    }
    Some(s.out)
}

struct Salvager<'a> {
    raw: &'a [u8],
    out: Vec<u8>,
    max_bytes: usize,
    max_values: usize,
    max_depth: usize,
}

impl Salvager<'_> {
    /// Rewrites the object at `at` (depth `depth`); returns the position after it. `mark`: add
    /// the salvage marker member (the top level only).
    fn object(&mut self, at: usize, depth: usize, mark: Option<&str>) -> Option<usize> {
        let raw = self.raw;
        self.out.push(b'{');
        let mut pos = skip_ws(raw, at + 1);
        let mut first = true;
        if raw.get(pos) == Some(&b'}') {
            pos += 1;
        } else {
            loop {
                let key_end = skip_string(raw, pos)?;
                let colon = skip_ws(raw, key_end);
                if raw.get(colon) != Some(&b':') {
                    return None;
                }
                let value = skip_ws(raw, colon + 1);
                let (value_end, stats) = scan(raw, value)?;
                if !first {
                    self.out.push(b',');
                }
                first = false;
                self.out.extend_from_slice(&raw[pos..key_end]);
                self.out.push(b':');
                self.value(value, value_end, stats, depth)?;
                pos = skip_ws(raw, value_end);
                match raw.get(pos) {
                    Some(b',') => pos = skip_ws(raw, pos + 1),
                    Some(b'}') => {
                        pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if let Some(reason) = mark {
            if !first {
                self.out.push(b',');
            }
            self.out
                .extend_from_slice(format!("\"{SALVAGED_FIELD}\":\"{reason}\"").as_bytes());
        }
        self.out.push(b'}');
        Some(pos)
    }

    /// Writes the value at `at..end` (inside an object at `depth`): as it is, entered, or
    /// replaced.
    fn value(&mut self, at: usize, end: usize, stats: Stats, depth: usize) -> Option<()> {
        let raw = self.raw;
        let fits = !stats.bad_number
            && stats.bytes <= self.max_bytes
            && stats.values <= self.max_values
            && depth + stats.depth <= self.max_depth;
        if fits {
            self.out.extend_from_slice(&raw[at..end]);
            return Some(());
        }
        match raw[at] {
            b'{' if depth + 1 < self.max_depth => {
                self.object(at, depth + 1, None)?;
            }
            b'-' | b'0'..=b'9' if stats.bytes <= 64 => {
                // A number out of range, kept as its text.
                self.out.push(b'"');
                self.out.extend_from_slice(&raw[at..end]);
                self.out.push(b'"');
            }
            _ => {
                let why = if depth + stats.depth > self.max_depth {
                    "too deep"
                } else if stats.values > self.max_values {
                    "too many values"
                } else if stats.bytes > self.max_bytes {
                    "too large"
                } else {
                    "a number out of range"
                };
                self.out.extend_from_slice(
                    format!(
                        "\"[credtrail: value removed, {why}: {} bytes, {} values]\"",
                        stats.bytes, stats.values
                    )
                    .as_bytes(),
                );
            }
        }
        Some(())
    }
}

fn skip_ws(raw: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = raw.get(pos) {
        pos += 1;
    }
    pos
}

/// The position after the string starting at `at`.
fn skip_string(raw: &[u8], at: usize) -> Option<usize> {
    if raw.get(at) != Some(&b'"') {
        return None;
    }
    let mut pos = at + 1;
    loop {
        let i = memchr::memchr2(b'"', b'\\', raw.get(pos..)?)?;
        pos += i;
        if raw[pos] == b'\\' {
            pos += 2;
        } else {
            return Some(pos + 1);
        }
    }
}

/// Scans the value at `at` without recursion: (position after it, what it holds).
fn scan(raw: &[u8], at: usize) -> Option<(usize, Stats)> {
    let mut stats = Stats::default();
    let mut depth = 0usize;
    let mut pos = at;
    loop {
        pos = skip_ws(raw, pos);
        match *raw.get(pos)? {
            b'{' | b'[' => {
                stats.values += 1;
                depth += 1;
                stats.depth = stats.depth.max(depth);
                pos += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                pos += 1;
            }
            b',' | b':' => {
                pos += 1;
                continue;
            }
            b'"' => {
                stats.values += 1;
                pos = skip_string(raw, pos)?;
                // Keys are not values on the tape; the `:` after one tells.
                if depth > 0 && raw.get(skip_ws(raw, pos)) == Some(&b':') {
                    stats.values -= 1;
                }
            }
            b't' | b'f' | b'n' => {
                stats.values += 1;
                while raw.get(pos).is_some_and(u8::is_ascii_alphabetic) {
                    pos += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                stats.values += 1;
                let start = pos;
                while raw
                    .get(pos)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    pos += 1;
                }
                stats.bad_number |= !number_in_range(&raw[start..pos]);
            }
            _ => return None,
        }
        if depth == 0 {
            stats.bytes = pos - at;
            return Some((pos, stats));
        }
    }
}

/// Whether JSON number text fits what the decoder holds: an integer in i64 or u64, a float
/// that stays finite.
fn number_in_range(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok()
    } else {
        text.parse::<f64>().is_ok_and(f64::is_finite)
    }
}

#[cfg(test)]
mod tests;
