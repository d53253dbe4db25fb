use std::collections::BTreeSet;

use super::*;
use crate::generator::labels::{ChainLabel, Expect, Speed};

fn label(
    chain: &str,
    expect: Expect,
    product: &str,
    rules: &[&str],
    events: &[&str],
) -> ChainLabel {
    ChainLabel {
        chain: chain.into(),
        scenario: format!("s_{chain}"),
        source: "cloudtrail".into(),
        product: product.into(),
        speed: Speed::Machine,
        expect,
        expected_rules: rules.iter().map(|r| r.to_string()).collect(),
        identity: "who".into(),
        start: "2026-11-02T09:00:00Z".into(),
        end: "2026-11-02T09:01:00Z".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

fn alert(rule: &str, secs: i64, events: &[&str]) -> AlertFacts {
    AlertFacts {
        rule: rule.into(),
        time_ms: EventTime::parse("2026-11-02T09:00:00Z")
            .unwrap()
            .as_millis()
            + secs * 1000,
        group: "who".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

fn aws() -> BTreeSet<String> {
    ["aws".to_string()].into()
}

#[test]
fn alerts_are_true_false_or_false_chain_by_their_evidence() {
    let truth = Truth::new(
        vec![
            label("a", Expect::Alert, "aws", &["r1", "r2"], &["e1", "e2"]),
            label("b", Expect::None, "aws", &[], &["e3"]),
            label("c", Expect::Alert, "aws", &["r1"], &["e4"]),
        ],
        "test".into(),
    );
    let alerts = vec![
        alert("r1", 30, &["e1", "bg1"]),
        alert("r1", 40, &["e3", "e1"]),
        alert("r3", 50, &["bg2"]),
    ];
    let r = score(&truth, &alerts, &aws());
    assert_eq!(
        (r.true_positives, r.false_chain_alerts, r.false_positives),
        (1, 1, 1)
    );
    assert_eq!(
        (r.attack_chains, r.detected_chains, r.near_misses),
        (2, 1, 1)
    );
    assert_eq!(r.recall(), 0.5);
    let r1 = r.rules.iter().find(|x| x.rule == "r1").unwrap();
    assert_eq!((r1.alerts, r1.expected, r1.found), (2, 2, 1));
    assert_eq!(r1.detect_ms, vec![30_000]);
    let r2 = r.rules.iter().find(|x| x.rule == "r2").unwrap();
    assert_eq!(
        (r2.alerts, r2.expected, r2.found, r2.recall()),
        (0, 1, 0, Some(0.0))
    );
    let b = r.scenarios.iter().find(|s| s.scenario == "s_b").unwrap();
    assert_eq!((b.alerted_near_misses, b.false_chain_alerts), (1, 1));
}

#[test]
fn chains_of_sources_without_rules_are_not_covered_rather_than_missed() {
    let truth = Truth::new(
        vec![
            label("a", Expect::Alert, "aws", &[], &["e1"]),
            label("l", Expect::Alert, "linux", &[], &["e2"]),
        ],
        "test".into(),
    );
    let r = score(&truth, &[alert("r", 1, &["e1"])], &aws());
    assert_eq!(
        (r.attack_chains, r.detected_chains, r.not_covered),
        (1, 1, 1)
    );
    assert_eq!(r.recall(), 1.0);
    let text = r.to_string();
    assert!(text.contains("1 not covered"), "{text}");
}
