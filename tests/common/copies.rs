//! The public captures' events, read once for every test and bench that needs them whole, and
//! copies of them for runs longer than the captures themselves (the corpus harness and the
//! tests of its shape): every event ordered by its own time, copies shifted past each other
//! with their record ids made unique, so a copy is new events, not late ones.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use credtrail::time::EventTime;
use serde_json::Value;

/// Every non-empty line of every capture under `dirs` (plain or gzipped JSON lines, in the
/// folders or one level below), files in path order.
pub fn capture_lines(dirs: &[PathBuf]) -> Vec<String> {
    let mut files = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).expect("captures").flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(
                    std::fs::read_dir(&p)
                        .expect("captures")
                        .flatten()
                        .map(|e| e.path()),
                );
            } else {
                files.push(p);
            }
        }
    }
    files.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".jsonl") || n.ends_with(".jsonl.gz")
    });
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let f = std::fs::File::open(&p).expect("capture");
        let r: Box<dyn BufRead> = if p.to_string_lossy().ends_with(".gz") {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
        } else {
            Box::new(BufReader::new(f))
        };
        out.extend(
            r.lines()
                .map(|l| l.unwrap_or_else(|e| panic!("{}: {e}", p.display())))
                .filter(|l| !l.is_empty()),
        );
    }
    out
}

/// The JSON events of every capture under `dirs` (lines that are no JSON are left out).
pub fn captures(dirs: &[PathBuf]) -> Vec<Value> {
    capture_lines(dirs)
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// The time fields the profiles read, in the order they prefer them.
pub const TIME_FIELDS: [&str; 4] = ["eventTime", "UtcTime", "TimeCreated", "@timestamp"];
/// Record ids made unique per copy.
const ID_FIELDS: [&str; 3] = ["eventID", "EventRecordID", "RecordNumber"];

fn own_time(e: &Value) -> Option<EventTime> {
    TIME_FIELDS
        .iter()
        .find_map(|f| e[*f].as_str().and_then(EventTime::parse))
}

/// How many bytes [`write_copies`] writes at a time: as a download or a copy does. The kernel
/// caches a file in pages as large as the writes that made it, and a file written 8 KiB at a
/// time (`BufWriter`'s default) is read back from the cache at under half the speed (on this
/// project's VM, 8-9 GB/s against 19-24). That copy is the reader thread's in 1 + 1 but the
/// workers' in 2 + 2, so the harness's way of writing would skew the scaling it measures
/// (BENCHMARKS.md shows both).
pub const WRITE_PIECE: usize = 1 << 20;

/// Writes copies of `events` (ordered by their own time) until `at_least` lines, each copy
/// shifted past the previous one; returns the number written.
pub fn write_copies(events: Vec<Value>, at_least: usize, path: &Path) -> usize {
    write_copies_in(events, at_least, path, WRITE_PIECE)
}

/// [`write_copies`], writing `piece` bytes at a time.
pub fn write_copies_in(
    mut events: Vec<Value>,
    at_least: usize,
    path: &Path,
    piece: usize,
) -> usize {
    events.retain(|e| own_time(e).is_some());
    events.sort_by_key(|e| own_time(e).map(|t| t.as_millis()));
    let (Some(first), Some(last)) = (
        events.first().and_then(own_time),
        events.last().and_then(own_time),
    ) else {
        panic!("no timed events");
    };
    let span = last.since(first).as_millis() + 60_000;
    let copies = at_least.div_ceil(events.len()).max(1);
    let file = std::fs::File::create(path).expect("events file");
    let mut out = BufWriter::with_capacity(piece.max(1), file);
    for k in 0..copies {
        for e in &events {
            let mut e = e.clone();
            for f in TIME_FIELDS {
                if let Some(t) = e[f].as_str().and_then(EventTime::parse) {
                    let shifted = EventTime::from_millis(t.as_millis() + span * k as i64);
                    e[f] = Value::String(shifted.to_string());
                }
            }
            for f in ID_FIELDS {
                if !e[f].is_null() {
                    e[f] = Value::String(format!(
                        "{k}-{}",
                        e[f].as_str()
                            .map_or_else(|| e[f].to_string(), str::to_string)
                    ));
                }
            }
            serde_json::to_writer(&mut out, &e).expect("write");
            out.write_all(b"\n").expect("write");
        }
    }
    out.flush().expect("flush");
    copies * events.len()
}
