//! Blast radius on real data: with an inventory that marks bert-jan as an admin with a
//! long-lived key, his chains outscore anything benjamin does, and every breakdown adds up.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use credtrail::inventory::Inventory;
use credtrail::score::Assessor;

fn scores_by_group(text: &str) -> Vec<(String, u64, bool)> {
    alerts(text)
        .iter()
        .map(|a| {
            // The breakdown adds up to the score, in the OCSF fields and in the detail.
            let factors = a["unmapped"]["credtrail"]["score"]["factors"]
                .as_array()
                .unwrap();
            let points: u64 = factors.iter().map(|f| f["points"].as_u64().unwrap()).sum();
            let score = a["risk_score"].as_u64().unwrap();
            assert_eq!(points, score, "{}", a["risk_details"]);
            let weights: u64 = factors.iter().map(|f| f["weight"].as_u64().unwrap()).sum();
            assert_eq!(weights, 100);
            for f in factors {
                let exact = f["value"].as_f64().unwrap() * f["weight"].as_f64().unwrap();
                assert!((exact - f["points"].as_f64().unwrap()).abs() <= 1.0, "{f}");
            }
            (
                a["metadata"]["correlation_uid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                score,
                a["is_alert"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn bert_jan_outscores_benjamin_with_the_inventory() {
    let inventory =
        Inventory::load(&root().join("datasets/inventory/invictus-stratus.yaml")).unwrap();
    // Announce chains from their first stage, so that benjamin's partial chains are scored too.
    let assessor = Assessor {
        inventory: Some(Arc::new(inventory)),
        escalate_at: Some(1),
        ..Assessor::default()
    };
    let input = shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let (text, _summary, _dir) = replay_scored(&pack(), &[input], 2, "5m", Arc::new(assessor));
    let found = scores_by_group(&text);
    let best = |who: &str| {
        found
            .iter()
            .filter(|(g, ..)| g.ends_with(who))
            .map(|(_, s, _)| *s)
            .max()
    };
    let bert = best("user/bert-jan").expect("bert-jan is scored");
    let benjamin = best("user/benjamin").expect("benjamin's partial chains are scored too");
    assert!(bert > benjamin, "bert-jan {bert} vs benjamin {benjamin}");
    assert!(
        found
            .iter()
            .any(|(g, _, alert)| g.ends_with("user/bert-jan") && *alert),
        "bert-jan's chain alerts"
    );
    assert!(
        !found
            .iter()
            .any(|(g, _, alert)| g.ends_with("user/benjamin") && *alert),
        "benjamin only has early findings"
    );
    // The inventory decides: without it, the gap narrows.
    let (plain, ..) = replay_scored(
        &pack(),
        &[shared(
            "cloudtrail/invictus-stratus/cloudtrail_records.jsonl",
        )],
        2,
        "5m",
        Arc::new(Assessor {
            escalate_at: Some(1),
            ..Assessor::default()
        }),
    );
    let plain = scores_by_group(&plain);
    let plain_bert = plain
        .iter()
        .filter(|(g, ..)| g.ends_with("user/bert-jan"))
        .map(|(_, s, _)| *s)
        .max()
        .unwrap();
    assert!(
        bert > plain_bert,
        "the admin entry raises bert-jan's score ({bert} vs {plain_bert} without inventory)"
    );
}

#[test]
fn identities_missing_from_the_inventory_say_so() {
    let (text, ..) = replay(
        &pack(),
        &[PathBuf::from("datasets/demo/events.jsonl")],
        2,
        "5m",
    );
    for a in alerts(&text) {
        assert_eq!(a["unmapped"]["credtrail"]["score"]["in_inventory"], false);
        assert!(
            a["risk_details"]
                .as_str()
                .unwrap()
                .contains("not in the inventory")
        );
    }
}

/// Issue 11: "how bad" contradicted itself on the demo: severity High where risk said
/// Critical, and the full 4-stage chain (80) below its own 3-stage part (81).
#[test]
fn the_demo_severity_follows_risk_and_longer_chains_never_score_below_their_parts() {
    let (text, _, _dir) = replay(
        &pack(),
        &[PathBuf::from("datasets/demo/events.jsonl")],
        2,
        "5m",
    );
    let all = alerts(&text);
    assert!(!all.is_empty());
    for a in &all {
        assert_eq!(
            a["severity_id"].as_u64().unwrap(),
            a["risk_level_id"].as_u64().unwrap() + 1,
            "{}",
            a["risk_details"]
        );
        assert!(a["risk_details"].as_str().unwrap().contains(" risk ("));
        assert!(
            a["remediation"]["desc"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    let score_of = |title: &str, group_end: &str| {
        all.iter()
            .find(|a| {
                a["finding_info"]["title"] == title
                    && a["metadata"]["correlation_uid"]
                        .as_str()
                        .is_some_and(|g| g.ends_with(group_end))
            })
            .map(|a| a["risk_score"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("no {title} for {group_end}"))
    };
    let full = score_of(
        "AWS chain: secret read, enumeration, persistence, data shared out",
        "user/svc-reporting",
    );
    for part in [
        "AWS chain: secret read, enumeration, persistence",
        "AWS chain: secret read, enumeration, data shared out",
    ] {
        assert!(full >= score_of(part, "user/svc-reporting"), "{part}");
    }
    let windows_full = score_of(
        "Windows chain: credential access, discovery, scheduled task, upload",
        "eve",
    );
    assert!(
        windows_full
            >= score_of(
                "Windows chain: credential access, discovery, scheduled-task persistence",
                "eve"
            )
    );
    // The rule's template fills the message, its runbook the remediation.
    let persistence = all
        .iter()
        .find(|a| a["finding_info"]["title"] == "AWS chain: secret read, enumeration, persistence")
        .unwrap();
    assert!(
        persistence["message"]
            .as_str()
            .is_some_and(|m| m.contains(" read prod/") && m.contains(" from 203.0.113.")),
        "{}",
        persistence["message"]
    );
    assert!(
        persistence["remediation"]["desc"]
            .as_str()
            .is_some_and(|d| d.starts_with("Deactivate the access keys"))
    );
}
