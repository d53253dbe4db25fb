//! Hostile time in a replay: one forged timestamp cannot move an input's clock, and a real
//! jump in time is followed, not thrown away.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The demo's lines with `extra` inserted before line `at` (1-based).
fn demo_with(at: usize, extra: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("datasets/demo/events.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(at - 1, extra);
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A CloudTrail record dated 2099 that matches no rule of the pack.
pub const FORGED: &str = r#"{"eventVersion":"1.08","eventTime":"2099-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"forged-2099","awsRegion":"eu-west-1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/forger","accountId":"111122223333"}}"#;

fn uids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = alerts(text)
        .iter()
        .map(|a| a["finding_info"]["uid"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Bug: one CloudTrail event dated 2099 at line 101 of the demo moved the input's clock to
/// 2099: 1,160 of 1,261 events were dead-lettered as late and no alert came out instead of 7.
#[test]
fn a_forged_2099_event_is_a_future_dead_letter_and_the_demo_keeps_its_seven_alerts() {
    let clean = root().join("datasets/demo/events.jsonl");
    let (clean_alerts, clean_summary, _d1) = replay(&pack(), &[clean], 2, "5m");
    let dir = tempfile::tempdir().unwrap();
    let poisoned = demo_with(101, FORGED, dir.path());
    let (alerts_text, summary, out) = replay(&pack(), &[poisoned], 2, "5m");
    assert!(!uids(&clean_alerts).is_empty(), "the demo alerts");
    assert_eq!(
        uids(&alerts_text),
        uids(&clean_alerts),
        "the same alerts as the clean demo"
    );
    assert_eq!(summary.sequencer.future, 1);
    assert_eq!(summary.sequencer.late, clean_summary.sequencer.late);
    assert_eq!(
        summary.sequencer.dead_letters,
        clean_summary.sequencer.dead_letters + 1
    );
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(out.path().join("dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let future: Vec<&serde_json::Value> = dead.iter().filter(|d| d["kind"] == "future").collect();
    assert_eq!(future.len(), 1, "{dead:?}");
    assert_eq!(future[0]["line"], 101);
    assert!(future[0]["raw"].as_str().unwrap().contains("forged-2099"));
    assert!(
        future[0]["reason"].as_str().unwrap().contains("median"),
        "{}",
        future[0]["reason"]
    );
}

fn event(i: u32, t: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{t}","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"e{i}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"}}}}"#
    )
}

/// A file whose events jump a day ahead (a night without logs) is not an attack: the events
/// after the jump are held until the recent median confirms them, then processed, none lost.
#[test]
fn a_real_jump_of_a_day_is_followed_and_nothing_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(event(i, &format!("2024-06-01T10:{:02}:00Z", i)));
    }
    for i in 0..40 {
        lines.push(event(100 + i, &format!("2024-06-02T10:{:02}:00Z", i)));
    }
    let input = dir.path().join("jump.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (_, summary, _out) = replay(&pack(), &[input], 1, "5m");
    assert_eq!(summary.sequencer.events, 80);
    assert_eq!(summary.sequencer.dead_letters, 0, "{:?}", summary.sequencer);
}
