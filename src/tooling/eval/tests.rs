use std::collections::BTreeSet;

use super::*;
use crate::tooling::generator::labels::{ChainLabel, Expect, Speed};

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
        product: None,
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

#[test]
fn sources_count_chains_by_label_and_alerts_by_rule_product_else_chain() {
    let mut linux = label("l", Expect::Alert, "linux", &[], &["e1"]);
    linux.source = "linux".into();
    let truth = Truth::new(
        vec![
            label("a", Expect::Alert, "aws", &[], &["e2"]),
            linux,
            label("n", Expect::None, "aws", &[], &["e3"]),
        ],
        "test".into(),
    );
    let with = |product: Option<&str>, a: AlertFacts| AlertFacts {
        product: product.map(str::to_string),
        ..a
    };
    let alerts = vec![
        // No product known: counted under the chain it hit.
        alert("r_linux", 1, &["e1"]),
        with(Some("aws"), alert("r_aws", 2, &["bg1"])),
        with(Some("aws"), alert("r_aws", 3, &["e3"])),
        // No product and no chain.
        alert("r_other", 4, &["bg2"]),
    ];
    let products: BTreeSet<String> = ["aws".to_string(), "linux".to_string()].into();
    assert_eq!(canonical_product("K8s"), "kubernetes");
    let r = score(&truth, &alerts, &products);
    let by = |p: &str| r.sources.iter().find(|s| s.product == p).unwrap().clone();
    let aws = by("aws");
    assert_eq!(
        (aws.attack_chains, aws.detected_chains, aws.recall()),
        (1, 0, Some(0.0))
    );
    assert_eq!((aws.near_misses, aws.alerted_near_misses), (1, 1));
    assert_eq!(
        (aws.alerts, aws.true_positives, aws.false_positives),
        (2, 0, 1)
    );
    assert_eq!((aws.false_chain_alerts, aws.precision()), (1, Some(0.0)));
    let lnx = by("linux");
    assert_eq!(
        (lnx.attack_chains, lnx.detected_chains, lnx.alerts),
        (1, 1, 1)
    );
    assert_eq!((lnx.recall(), lnx.precision()), (Some(1.0), Some(1.0)));
    let unknown = by("-");
    assert_eq!((unknown.alerts, unknown.false_positives), (1, 1));
    assert_eq!(unknown.recall(), None);
    assert!(r.to_string().contains("per source"));
}

/// A correlation takes its product from its first stage rule, through a correlation of
/// correlations.
#[test]
fn rule_products_follow_correlation_stages() {
    let text = "title: a\nname: a\nlogsource: {product: Linux}\ndetection: {s: {x: 1}, condition: s}\n---\n\
                title: b\nname: b\nlogsource: {product: linux}\ndetection: {s: {x: 2}, condition: s}\n---\n\
                title: inner\nname: inner\ncorrelation: {type: temporal, rules: [a, b], group-by: [g], timespan: 1h}\n---\n\
                title: outer\nname: outer\ncorrelation: {type: event_count, rules: [inner], group-by: [g], timespan: 1h, condition: {gte: 2}}\n";
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    crate::sigma::parse_text(
        std::path::Path::new("t.yml"),
        text,
        &crate::sigma::LoadOptions::default(),
        &mut parsed,
        &mut errors,
    );
    let catalog = crate::sigma::resolve(parsed, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let rules =
        crate::matcher::compile(&catalog, &crate::matcher::CompileOptions::default()).unwrap();
    let products = rule_products(&rules);
    let named = |n: &str| {
        rules
            .meta
            .iter()
            .position(|m| m.name.as_deref() == Some(n))
            .unwrap() as u32
    };
    for n in ["a", "b", "inner", "outer"] {
        assert_eq!(
            products.get(&named(n)).map(String::as_str),
            Some("linux"),
            "{n}"
        );
    }
}
