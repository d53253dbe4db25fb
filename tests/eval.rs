//! `credtrail gen` and `credtrail eval` end to end: reproducible bytes, labels that let the
//! shipped pack reach full recall with no false chain alert on the default preset, the W500
//! rule set against its own chains, and the invictus labels.

use std::path::Path;
use std::process::{Command, Output};

mod common;

fn credtrail(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "credtrail {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["eval", "--json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&credtrail(&all).stdout).unwrap()
}

fn rule<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == name)
        .unwrap_or_else(|| panic!("no rule {name} in the report"))
}

#[test]
fn default_preset_is_reproducible_and_its_labels_give_full_recall_and_no_false_alert() {
    let dir = tempfile::tempdir().unwrap();
    let (events, labels) = (dir.path().join("e.jsonl"), dir.path().join("l.jsonl"));
    let (again, zst) = (dir.path().join("e2.jsonl"), dir.path().join("e.jsonl.zst"));
    credtrail(&[
        "gen",
        "--seed",
        "11",
        "--out",
        s(&events),
        "--labels",
        s(&labels),
    ]);
    credtrail(&["gen", "--seed", "11", "--out", s(&again), "--zstd"]);
    let _ = std::fs::rename(&again, &zst);
    let plain = std::fs::read(&events).unwrap();
    let unpacked = zstd::decode_all(std::fs::File::open(&zst).unwrap()).unwrap();
    assert!(plain == unpacked, "same seed, same bytes (zstd or not)");

    let dead = dir.path().join("dead.jsonl");
    let report = eval_json(&[
        s(&events),
        "--rules",
        "rules",
        "--labels",
        s(&labels),
        "--dead-letter",
        s(&dead),
    ]);
    assert!(report["attack_chains"].as_u64().unwrap() >= 18, "{report}");
    assert_eq!(
        report["detected_chains"], report["attack_chains"],
        "100 % recall"
    );
    assert_eq!(report["false_chain_alerts"], 0, "no alert on a near miss");
    assert_eq!(report["false_positives"], 0, "no alert on background");
    assert!(report["near_misses"].as_u64().unwrap() >= 14);
    assert_eq!(
        report["not_covered"], 0,
        "the pack covers every source the generator writes"
    );
    // Every source on its own: its attack chains all detected, its near misses all silent.
    let sources = report["sources"].as_array().unwrap();
    for product in ["aws", "windows", "linux", "kubernetes", "ai_agent"] {
        let sc = sources
            .iter()
            .find(|x| x["product"] == product)
            .unwrap_or_else(|| panic!("no source {product} in {report}"));
        assert!(sc["attack_chains"].as_u64().unwrap() >= 2, "{sc}");
        assert_eq!(sc["detected_chains"], sc["attack_chains"], "{sc}");
        assert!(sc["near_misses"].as_u64().unwrap() >= 2, "{sc}");
        assert_eq!(sc["alerted_near_misses"], 0, "{sc}");
        assert_eq!(sc["false_positives"], 0, "{sc}");
        assert_eq!(sc["true_positives"], sc["alerts"], "{sc}");
    }
    for name in [
        "ct_chain_full",
        "ct_chain_secret_to_persistence",
        "ct_chain_secret_to_exfiltration",
        "ct_chain_instance_credentials_s3",
        "win_chain_full",
        "win_chain_credential_to_persistence",
        "win_chain_credential_to_exfiltration",
        "lnx_chain_credential_to_exfiltration",
        "k8s_chain_secret_to_exec",
        "agent_chain_secret_to_new_destination",
    ] {
        let r = rule(&report, name);
        assert!(
            r["expected"].as_u64().unwrap() > 0,
            "{name} is expected somewhere"
        );
        assert_eq!(r["found"], r["expected"], "{name}: recall");
    }
    // Machine-speed chains are decided within a minute of their first event, human-speed ones
    // within the hour.
    for sc in report["scenarios"].as_array().unwrap() {
        let worst = sc["detect_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .max();
        match (sc["scenario"].as_str().unwrap(), worst) {
            (name, Some(ms)) if name.contains("machine") => assert!(ms < 60_000, "{name}: {ms} ms"),
            (name, Some(ms)) => assert!(ms < 3_600_000, "{name}: {ms} ms"),
            _ => {}
        }
    }
}

#[test]
fn w500_rule_set_loads_and_catches_every_w500_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (events, labels, rules) = (
        dir.path().join("e.jsonl"),
        dir.path().join("l.jsonl"),
        dir.path().join("rules"),
    );
    credtrail(&[
        "gen",
        "--preset",
        "w500",
        "--events",
        "120000",
        "--out",
        s(&events),
        "--labels",
        s(&labels),
        "--rules-out",
        s(&rules),
    ]);
    let dead = dir.path().join("dead.jsonl");
    let report = eval_json(&[
        s(&events),
        "--rules",
        s(&rules),
        "--labels",
        s(&labels),
        "--dead-letter",
        s(&dead),
    ]);
    assert!(report["attack_chains"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["detected_chains"], report["attack_chains"]);
    assert_eq!(report["false_chain_alerts"], 0);
    assert_eq!(report["dead_letters"], 0);
    for r in report["rules"].as_array().unwrap() {
        if r["rule"].as_str().unwrap().starts_with("w500_corr_") {
            assert_eq!(r["false_positives"], 0, "{r}");
        }
    }
}

#[test]
fn invictus_labels_score_alerts_by_stratus_technique() {
    let dir = tempfile::tempdir().unwrap();
    let events = common::shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let labels = common::shared("cloudtrail/invictus-stratus/labels_derived.csv");
    let report = eval_json(&[
        s(&events),
        "--rules",
        "rules",
        "--labels",
        s(&labels),
        "--lateness",
        "15m",
        "--dead-letter",
        s(&dir.path().join("dead.jsonl")),
    ]);
    assert_eq!(report["events"], 2900);
    assert_eq!(
        report["attack_chains"], 25,
        "one per Stratus technique detonated"
    );
    assert!(report["detected_chains"].as_u64().unwrap() >= 1);
    let shared_ami = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scenario"] == "aws.exfiltration.ec2-share-ami")
        .unwrap();
    assert_eq!(
        shared_ami["detected"], 1,
        "the AMI share ends the bert-jan chain"
    );
}
