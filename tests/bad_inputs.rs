//! Inputs that cannot stop a replay: a damaged compressed file among good ones is reported
//! (a dead letter with its reason, a summary line, exit code 2) and the next file is read; bad
//! paths and numbers are refused before any input is read.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

mod common;

fn credtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn uids(stdout: &[u8]) -> Vec<String> {
    let mut ids: Vec<String> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["finding_info"]["uid"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// The demo cut in two good files.
fn good_halves(dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(common::root().join("datasets/demo/events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = (dir.join("a.jsonl"), dir.join("c.jsonl"));
    std::fs::write(&a, lines[..640].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[640..].join("\n") + "\n").unwrap();
    (a.display().to_string(), b.display().to_string())
}

/// What is done to a good gzip file.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// A gzip file of events that match nothing, damaged by `damage`.
fn damaged_gz(dir: &Path, name: &str, damage: impl Fn(&mut Vec<u8>)) -> String {
    let text = common::noise_events(4000);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    let mut bytes = gz.finish().unwrap();
    damage(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Bug: a truncated `.gz` among several inputs ended the replay with exit 1; later files were
/// never read and there was no summary. Also a CRC error and trailing garbage.
#[test]
fn a_damaged_gzip_between_two_good_files_gives_the_alerts_of_both_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = good_halves(dir.path());
    let clean = credtrail(&["replay", &a, &c, "--rules", "rules", "--quiet"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    let expected = uids(&clean.stdout);
    assert!(!expected.is_empty(), "the demo alerts");
    let damages: [(&str, Damage); 3] = [
        ("truncated.gz", Box::new(|b| b.truncate(b.len() / 2))),
        (
            "crc.gz",
            Box::new(|b| {
                let n = b.len();
                b[n - 6] ^= 0xff;
            }),
        ),
        (
            "garbage.gz",
            Box::new(|b| b.extend_from_slice(b"not gzip at all")),
        ),
    ];
    for (name, damage) in damages {
        let bad = damaged_gz(dir.path(), name, damage);
        let dead = dir.path().join(format!("{name}.dead.jsonl"));
        let o = credtrail(&[
            "replay",
            &a,
            &bad,
            &c,
            "--rules",
            "rules",
            "--dead-letter",
            dead.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(uids(&o.stdout), expected, "{name}: {err}");
        assert!(err.contains("input errors: 1"), "{name}: {err}");
        assert!(err.contains("completed with input errors"), "{name}: {err}");
        assert!(err.contains(name), "{name}: the file is named: {err}");
        let letters = std::fs::read_to_string(&dead).unwrap();
        let input_errors: Vec<serde_json::Value> = letters
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "input_error")
            .collect();
        assert_eq!(input_errors.len(), 1, "{name}: {letters}");
        assert!(
            input_errors[0]["source"].as_str().unwrap().ends_with(name),
            "{name}: {letters}"
        );
        assert!(!input_errors[0]["reason"].as_str().unwrap().is_empty());
    }
}

/// Bug: an unwritable dead-letter path failed only at the first bad line, after reading input.
#[test]
fn an_unwritable_dead_letter_path_is_refused_before_any_input_is_read() {
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--dead-letter",
        "/nonexistent-dir/dead.jsonl",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("/nonexistent-dir/dead.jsonl"), "{err}");
    assert!(o.stdout.is_empty(), "nothing was replayed");
    assert!(!err.contains("events/s"), "no summary: nothing ran: {err}");
}

/// Bug: `--shards 1000` panicked ("failed to spawn thread", exit 101) and `--max-depth 0` was
/// accepted, dead-lettering every event with exit 0.
#[test]
fn out_of_range_numbers_are_refused_with_the_flag_named() {
    for (flag, value) in [
        ("--shards", "1000"),
        ("--shards", "0"),
        ("--workers", "100000"),
        ("--max-depth", "0"),
        ("--max-fields", "0"),
        ("--max-event-bytes", "0"),
        ("--max-future-skew", "0s"),
        ("--memory-budget", "1MiB"),
        ("--memory-budget", "4 parsecs"),
    ] {
        let o = credtrail(&[
            "replay",
            "datasets/demo/events.jsonl",
            "--rules",
            "rules",
            flag,
            value,
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

/// The memory budget is split once and said: the summary names each part's share.
#[test]
fn the_memory_budget_split_is_printed_and_bounds_a_small_replay() {
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--shards",
        "2",
        "--memory-budget",
        "256MiB",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("memory budget 256 MiB (configured): state 64 MiB"),
        "{err}"
    );
    assert_eq!(
        uids(&o.stdout).len(),
        uids(
            &credtrail(&[
                "replay",
                "datasets/demo/events.jsonl",
                "--rules",
                "rules",
                "--quiet"
            ])
            .stdout
        )
        .len()
    );
}
