//! The line reader's tests: the cases met in real files, and a model it must agree with on
//! any bytes, any limits and any pattern of short reads.

use super::*;
use crate::input::{BATCH_PADDING, open};
use proptest::prelude::*;
use std::io::{self, Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

fn batches(text: &[u8], limits: ReadLimits) -> Vec<Vec<(u64, String, bool)>> {
    let mut b = LineBatcher::new(Cursor::new(text.to_vec()), 0, "t".into(), limits);
    let mut out = Vec::new();
    let mut batch = Batch::default();
    while b.next_batch(&mut batch).unwrap() {
        out.push(
            (0..batch.lines.len())
                .map(|i| {
                    let l = batch.lines[i];
                    (
                        l.offset,
                        String::from_utf8_lossy(batch.line(i)).into_owned(),
                        l.truncated(),
                    )
                })
                .collect(),
        );
        assert!(batch.buf.len() >= BATCH_PADDING);
    }
    out
}

#[test]
fn lines_keep_their_numbers_across_blank_lines_and_crlf() {
    let got = batches(
        b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}",
        ReadLimits::default(),
    );
    assert_eq!(
        got,
        vec![vec![
            (1, "{\"a\":1}".to_string(), false),
            (4, "{\"b\":2}".to_string(), false),
            (5, "{\"c\":3}".to_string(), false)
        ]]
    );
}

/// Bug: a UTF-8 byte order mark made line 1, and the first line of every concatenated
/// file, invalid JSON.
#[test]
fn byte_order_marks_are_dropped_at_the_start_of_any_line() {
    let got = batches(
        b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n\xEF\xBB\xBF{\"c\":3}\n",
        ReadLimits::default(),
    );
    let lines: Vec<&str> = got[0].iter().map(|(_, l, _)| l.as_str()).collect();
    assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
}

/// Bug: a truncated gzip file ended the whole replay; the lines before the damage were
/// lost with it.
#[test]
fn a_truncated_gzip_keeps_the_lines_before_the_damage_and_reports_the_error() {
    use std::io::Write;
    let mut text = Vec::new();
    for i in 0..5000 {
        writeln!(text, "{{\"n\":{i},\"pad\":\"{}\"}}", i * 7919 % 1000003).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.jsonl.gz");
    std::fs::write(&path, bytes).unwrap();
    let reader = open(&path, Arc::new(AtomicU64::new(0))).unwrap();
    let mut lines = LineBatcher::new(reader, 0, path.clone(), ReadLimits::default());
    let mut batch = Batch::default();
    let mut read = Vec::new();
    while lines.next_batch(&mut batch).unwrap() {
        read.extend((0..batch.lines.len()).map(|i| batch.line(i).to_vec()));
        if batch.source_done {
            break;
        }
    }
    assert!(read.len() > 100 && read.len() < 5000, "{}", read.len());
    for (i, l) in read.iter().enumerate() {
        assert!(l.starts_with(format!("{{\"n\":{i},").as_bytes()));
        assert!(l.ends_with(b"}"), "whole lines only");
    }
    let err = lines.take_error().expect("the damage is reported");
    assert!(err.to_string().contains("cut.jsonl.gz"), "{err}");
}

#[test]
fn batches_split_by_event_count() {
    let limits = ReadLimits {
        batch_events: 2,
        ..ReadLimits::default()
    };
    let got = batches(b"1\n2\n3\n", limits);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].len(), 2);
    assert_eq!(got[1][0].0, 3);
}

#[test]
fn an_overlong_line_is_cut_and_flagged_and_the_next_line_survives() {
    let limits = ReadLimits {
        max_line_kept: 4,
        ..ReadLimits::default()
    };
    let got = batches(b"0123456789\nok\n", limits);
    assert_eq!(got[0][0], (1, "0123".to_string(), true));
    assert_eq!(got[0][1], (2, "ok".to_string(), false));
}

/// A reader that hands out its bytes in pieces of the given sizes (cycled), is interrupted
/// before every third piece, and fails after `fail_at` bytes if set.
struct Chunky {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    calls: usize,
    fail_at: Option<usize>,
}

impl Read for Chunky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let end = self.fail_at.unwrap_or(self.bytes.len());
        if self.at >= end && self.fail_at.is_some() {
            return Err(io::Error::other("damaged"));
        }
        let size = self.sizes[self.calls % self.sizes.len()].max(1);
        let n = size.min(buf.len()).min(end - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What the reader must give for `text`: (line number, kept bytes, full length) per event
/// line, as the line-at-a-time reader it replaced gave them. With `fail_at`, only the lines
/// whose newline came before the damage.
fn model(text: &[u8], max_kept: usize, fail_at: Option<usize>) -> Vec<(u64, Vec<u8>, usize)> {
    let readable = &text[..fail_at.unwrap_or(text.len()).min(text.len())];
    let mut segments: Vec<&[u8]> = readable.split(|b| *b == b'\n').collect();
    let last = segments.pop().unwrap_or_default();
    if fail_at.is_none() && !last.is_empty() {
        segments.push(last);
    }
    let mut out = Vec::new();
    for (i, seg) in segments.into_iter().enumerate() {
        let mut kept = &seg[..seg.len().min(max_kept)];
        let mut seen = seg.len();
        if kept.starts_with(b"\xEF\xBB\xBF") {
            kept = &kept[3..];
            seen -= 3;
        }
        if kept.last() == Some(&b'\r') {
            kept = &kept[..kept.len() - 1];
            seen -= 1;
        }
        if kept.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push((i as u64 + 1, kept.to_vec(), seen));
    }
    out
}

fn read_all(
    r: Chunky,
    limits: ReadLimits,
) -> (Vec<(u64, Vec<u8>, usize)>, Vec<usize>, Option<InputError>) {
    let mut lines = LineBatcher::new(r, 0, "t".into(), limits);
    let (mut got, mut sizes) = (Vec::new(), Vec::new());
    let mut batch = Batch::default();
    while lines.next_batch(&mut batch).unwrap() {
        assert!(batch.buf.len() >= BATCH_PADDING);
        for (i, l) in batch.lines.iter().enumerate() {
            got.push((l.offset, batch.line(i).to_vec(), l.full_len));
        }
        sizes.push(batch.lines.len());
        if batch.source_done {
            break;
        }
    }
    (got, sizes, lines.take_error())
}

/// Text made of the pieces real files have: JSON-ish lines of any length, blank lines,
/// carriage returns, byte order marks and a missing final newline.
fn text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::collection::vec(b'a'..=b'z', 0..40).prop_map(|mut v| {
            v.push(b'\n');
            v
        }),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"  \t\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\xEF\xBB\xBF".to_vec()),
        1 => proptest::collection::vec(b'a'..=b'c', 100..300),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

proptest! {
    /// The batches hold exactly the model's lines, in order, each batch within its event
    /// bound, however the bytes arrive and wherever the limits cut.
    #[test]
    fn the_batches_hold_the_lines_of_the_text_whatever_the_reads_and_limits(
        text in text(),
        sizes in proptest::collection::vec(1usize..9000, 1..8),
        batch_bytes in 1usize..5000,
        batch_events in 1usize..50,
        max_line_kept in 1usize..400,
    ) {
        let limits = ReadLimits { batch_bytes, batch_events, max_line_kept };
        let r = Chunky { bytes: text.clone(), at: 0, sizes, calls: 0, fail_at: None };
        let (got, batch_sizes, err) = read_all(r, limits);
        prop_assert!(err.is_none());
        prop_assert_eq!(got, model(&text, max_line_kept, None));
        prop_assert!(batch_sizes.iter().all(|n| *n <= batch_events));
    }

    /// A read that fails keeps the whole lines before it, drops the line it cut, and is
    /// reported once.
    #[test]
    fn a_failed_read_keeps_the_whole_lines_before_it(
        text in text(),
        sizes in proptest::collection::vec(1usize..700, 1..8),
        cut in 0.0f64..1.0,
        batch_events in 1usize..50,
    ) {
        let fail_at = (text.len() as f64 * cut) as usize;
        let limits = ReadLimits { batch_bytes: 1000, batch_events, max_line_kept: 1 << 20 };
        let r = Chunky { bytes: text.clone(), at: 0, sizes, calls: 0, fail_at: Some(fail_at) };
        let (got, _, err) = read_all(r, limits);
        prop_assert_eq!(got, model(&text, 1 << 20, Some(fail_at)));
        prop_assert!(err.is_some_and(|e| e.to_string().contains("damaged")));
    }
}

/// A line longer than a whole batch is read to its end in one batch, and the lines after it
/// follow; no byte of the line after it is lost to the skip.
#[test]
fn a_line_longer_than_the_batch_is_read_whole() {
    let long = "x".repeat(300_000);
    let text = format!("{long}\r\n{{\"after\":1}}\n");
    let limits = ReadLimits {
        batch_bytes: 4096,
        ..ReadLimits::default()
    };
    let got = batches(text.as_bytes(), limits);
    let all: Vec<_> = got.concat();
    assert_eq!(all[0], (1, long, false));
    assert_eq!(all[1], (2, "{\"after\":1}".to_string(), false));
}

/// Bug: blank lines are not events, so a batch of nothing but blank lines never filled, and
/// the reader kept every byte of them: 64 MiB of newlines made a 64 MiB batch. Now they are
/// dropped as the reader goes, and the line after them keeps its number.
#[test]
fn a_file_of_blank_lines_does_not_grow_the_batch() {
    let blank = 64usize << 20;
    let mut text = Vec::with_capacity(blank + 16);
    text.extend(std::iter::repeat_n(b'\n', blank / 2));
    text.extend(b" \r\n".repeat(blank / 6));
    text.extend_from_slice(b"{\"x\":1}\n");
    let mut lines = LineBatcher::new(Cursor::new(text), 0, "t".into(), ReadLimits::default());
    let mut batch = Batch::default();
    assert!(lines.next_batch(&mut batch).unwrap());
    assert_eq!(batch.lines.len(), 1);
    assert_eq!(batch.line(0), b"{\"x\":1}");
    assert_eq!(batch.lines[0].offset, (blank / 2 + blank / 6 + 1) as u64);
    assert!(
        batch.buf.capacity() < 4 << 20,
        "{} bytes held",
        batch.buf.capacity()
    );
}

/// A batch's buffer is sized once for a batch of ordinary lines, so the reader never moves it
/// to fresh memory as it fills (grown by doubling, each new buffer moved several times, and on a
/// machine where fresh memory faults slowly those moves stalled the reader and starved the
/// workers). Lines of every length up to a few KiB, cut at every point of a batch.
#[test]
fn a_batch_buffer_is_allocated_once_for_ordinary_lines() {
    let mut text = Vec::new();
    for i in 0..20_000usize {
        let pad = "p".repeat(i * 37 % 3000);
        text.extend_from_slice(format!("{{\"n\":{i},\"pad\":\"{pad}\"}}\n").as_bytes());
    }
    let limits = ReadLimits::default();
    let mut lines = LineBatcher::new(Cursor::new(text), 0, "t".into(), limits);
    let mut batch = Batch::default();
    let (mut events, mut batches) = (0, 0);
    let mut first: Option<(*const u8, usize)> = None;
    while lines.next_batch(&mut batch).unwrap() {
        let now = (batch.buf.as_ptr(), batch.buf.capacity());
        assert_eq!(
            *first.get_or_insert(now),
            now,
            "batch {batches} moved the buffer"
        );
        events += batch.lines.len();
        batches += 1;
    }
    assert_eq!(events, 20_000);
    assert!(batches > 50, "{batches} batches");
    assert!(first.unwrap().1 <= limits.batch_bytes + MIN_READ + BATCH_PADDING);
}
