//! Who cuts the input into batches (`replay --cutting`): the replay's own thread reading ahead
//! of the workers, or each worker cutting its next batch itself. The batches are the same,
//! so everything a replay writes must be too, whatever the inputs hold and however many
//! workers share them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use credtrail::pipeline::{self, Cutting};

mod common;
use common::{options, pack, root};

/// Everything a replay wrote, and the counts its summary gives.
#[derive(Debug, PartialEq)]
struct Written {
    alerts: String,
    dead: String,
    events: u64,
    dead_letters: u64,
}

fn replay(inputs: &[PathBuf], workers: usize, cutting: Cutting, batch_events: usize) -> Written {
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(inputs, out.path(), 2, "5m");
    opts.workers = workers;
    opts.cutting = cutting;
    opts.read.batch_events = batch_events;
    let summary = pipeline::replay(pack(), &opts).unwrap_or_else(|e| panic!("{e}"));
    Written {
        alerts: std::fs::read_to_string(out.path().join("alerts.jsonl")).unwrap(),
        dead: std::fs::read_to_string(out.path().join("dead.jsonl")).unwrap_or_default(),
        events: summary.sequencer.events,
        dead_letters: summary.sequencer.dead_letters,
    }
}

/// The demo in two halves around a gzip file cut short in its middle, and a file of what real
/// exports also hold: blank lines, CRLF, a byte order mark, lines that are not JSON, and one
/// line longer than a batch.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root().join("datasets/demo/events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    std::fs::write(&a, lines[..640].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[640..].join("\r\n") + "\r\n").unwrap();

    let noise = common::noise_events(3000);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&noise).unwrap();
    let mut packed = gz.finish().unwrap();
    packed.truncate(packed.len() / 2);
    let cut = dir.join("cut.gz");
    std::fs::write(&cut, packed).unwrap();

    let mut odd = String::from("\u{feff}");
    odd += lines[3];
    odd += "\n\n   \n{\"not\": \"an event\"}\nnot json at all\r\n";
    odd += &format!("{{\"pad\":\"{}\"}}\n", "x".repeat(300_000));
    odd += lines[5];
    odd += "\n";
    let odd_path = dir.join("odd.jsonl");
    std::fs::write(&odd_path, odd).unwrap();
    vec![a, cut, odd_path, b]
}

#[test]
fn workers_that_cut_their_own_batches_write_what_the_reader_thread_writes() {
    std::env::set_current_dir(root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let expected = replay(&inputs, 1, Cutting::Reader, 7);
    assert!(expected.alerts.lines().count() > 3, "{}", expected.alerts);
    assert!(expected.dead.contains("input_error"), "{}", expected.dead);
    assert!(expected.dead_letters >= 3, "{}", expected.dead);
    for (workers, batch_events) in [(1, 7), (2, 7), (2, 1), (3, 100), (2, 1 << 20)] {
        let got = replay(&inputs, workers, Cutting::Workers, batch_events);
        assert!(
            got == expected,
            "{workers} workers cutting batches of {batch_events}: {got:#?}"
        );
    }
    assert!(replay(&inputs, 2, Cutting::Reader, 7) == expected);
}

/// The engine stopping mid-input (here its alert output fails: the device is full) ends a
/// replay whose workers were cutting, with the error; nothing waits for a cut that will never
/// come.
#[test]
fn a_failed_output_ends_a_replay_whose_workers_cut() {
    std::env::set_current_dir(root()).unwrap();
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("datasets/demo/events.jsonl")).unwrap();
    let input = dir.path().join("many.jsonl");
    std::fs::write(&input, text.repeat(30)).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut opts = options(std::slice::from_ref(&input), dir.path(), 2, "5m");
        opts.cutting = Cutting::Workers;
        opts.read.batch_events = 3;
        opts.out = Some(PathBuf::from("/dev/full"));
        let _ = tx.send(pipeline::replay(pack(), &opts).map(|s| s.sequencer.events));
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the replay ended");
    assert!(outcome.is_err(), "{outcome:?}");
}
