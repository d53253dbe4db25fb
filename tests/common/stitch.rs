//! The stitched OTRF Windows timeline of `pgustavo`, shared by the tests that replay it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::{root, shared};

/// The OTRF Windows recordings are separate captures weeks apart. This helper STITCHES three
/// of them into one timeline: each recording's times (`@timestamp`, and Sysmon's `UtcTime` and
/// `TimeCreated`, which the Windows profile prefers) are shifted by one amount so that it starts
/// one minute after the previous one ended (credential theft, then discovery, then the
/// scheduled task), everything else unchanged. The chain is a reconstruction, not a capture.
pub fn stitch_pgustavo(dir: &Path) -> PathBuf {
    let parts = [
        "windows/otrf-shire-empire/empire_mimikatz_logonpasswords_2020-08-07103224.jsonl.gz",
        "windows/otrf-shire-empire/empire_shell_net_local_users_2020-09-21192606.jsonl",
        "windows/otrf-shire-empire/empire_schtasks_creation_standard_user_2020-09-21031526.jsonl",
    ];
    let mut cursor = credtrail::time::EventTime::parse("2024-01-15T10:00:00Z").unwrap();
    let out_path = dir.join("stitched.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&out_path).unwrap());
    for part in parts {
        let path = root().join(shared(part));
        let file = std::fs::File::open(&path).unwrap();
        let reader: Box<dyn BufRead> = if part.ends_with(".gz") {
            Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                file,
            )))
        } else {
            Box::new(std::io::BufReader::new(file))
        };
        let mut events: Vec<serde_json::Value> = reader
            .lines()
            .map(|l| l.unwrap())
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect();
        let time = |e: &serde_json::Value| {
            credtrail::time::EventTime::parse(e["@timestamp"].as_str().unwrap()).unwrap()
        };
        let first = events.iter().map(time).min().unwrap();
        let last = events.iter().map(time).max().unwrap();
        let shift = cursor.since(first);
        for e in &mut events {
            for field in ["@timestamp", "UtcTime", "TimeCreated"] {
                let Some(t) = e[field]
                    .as_str()
                    .and_then(credtrail::time::EventTime::parse)
                else {
                    continue;
                };
                e[field] = serde_json::Value::String(t.plus(shift).to_string());
            }
            serde_json::to_writer(&mut out, e).unwrap();
            out.write_all(b"\n").unwrap();
        }
        cursor = last.plus(shift).plus(credtrail::time::Span::from_secs(60));
    }
    out.flush().unwrap();
    out_path
}
