//! Hostile input: every bad event is dead-lettered with its reason, the run goes on, nothing
//! panics, and the good events around them still alert.

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::*;

#[test]
fn hostile_events_are_dead_lettered_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hostile.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    let good = |i: u32, t: &str| {
        format!(
            r#"{{"eventTime":"{t}","eventSource":"iam.amazonaws.com","eventName":"ListUsers","eventID":"g{i}","userIdentity":{{"arn":"arn:aws:iam::1:user/u"}}}}"#
        )
    };
    writeln!(f, "{}", good(1, "2024-06-01T10:00:00Z")).unwrap();
    // 1: deep nesting (100,000 levels), far past the depth limit, never recursed into.
    writeln!(f, "{}{}", "[".repeat(100_000), "]".repeat(100_000)).unwrap();
    // 2: a 10 MB line, past the 1 MiB event limit.
    let big = format!(
        r#"{{"eventTime":"2024-06-01T10:00:01Z","pad":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    writeln!(f, "{big}").unwrap();
    // 3: invalid UTF-8.
    f.write_all(b"{\"eventName\":\"\xc3\x28\",\"eventSource\":\"x\",\"eventTime\":\"2024-06-01T10:00:02Z\"}\n").unwrap();
    // 4: truncated JSON.
    writeln!(
        f,
        r#"{{"eventTime":"2024-06-01T10:00:03Z","eventSource":"iam.amazonaws.com","eventNa"#
    )
    .unwrap();
    // 5: a wrong type where a string is expected (the event time).
    writeln!(
        f,
        r#"{{"eventTime":[1,2],"eventSource":"iam.amazonaws.com","eventName":"ListUsers"}}"#
    )
    .unwrap();
    // 6: a wrong type in a matched field: no match, no error (Sigma compares scalars only).
    writeln!(
        f,
        r#"{{"eventTime":"2024-06-01T10:00:04Z","eventSource":"iam.amazonaws.com","eventName":{{"not":"a string"}},"eventID":"w"}}"#
    )
    .unwrap();
    writeln!(f, "{}", good(2, "2024-06-01T10:00:05Z")).unwrap();
    drop(f);

    let rules = rules(&[PathBuf::from("tests/golden/bad_and_late_events/rules")]);
    let (alerts_text, summary, out) = replay(&rules, &[input], 2, "5m");
    let ids: Vec<String> = alerts(&alerts_text)
        .iter()
        // An incident's Close repeats its highest finding.
        .filter(|a| a["activity_name"] != "Close")
        .map(|a| {
            a["evidences"][0]["data"]["event_uid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        vec!["g1", "g2"],
        "good events around the bad ones still alert"
    );
    assert_eq!(summary.sequencer.events, 8);
    assert_eq!(summary.sequencer.dead_letters, 5);
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(out.path().join("dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(u64, &str)> = dead
        .iter()
        .map(|d| (d["line"].as_u64().unwrap(), d["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (2, "too_deep"),
            (3, "too_large"),
            (4, "invalid_utf8"),
            (5, "invalid_json"),
            (6, "bad_time")
        ]
    );
    // The oversize lines are kept in full up to the reader's limit, with their true length.
    assert_eq!(dead[1]["bytes"].as_u64().unwrap() as usize, big.len());
    // Invalid UTF-8 is kept byte for byte.
    assert!(dead[2]["raw_base64"].is_string());
    assert!(dead[4]["reason"].as_str().unwrap().contains("eventTime"));
}
