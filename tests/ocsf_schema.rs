//! Every alert line is a valid OCSF 1.4 Detection Finding (class 2004). No schema file is
//! available offline, so this is a compact hand-written check of the class's required
//! attributes, their types and enumerations, the attributes a Detection Finding may carry at
//! the top level, and the objects credtrail fills (evidences, resources, observables,
//! remediation, finding_info): the subset of the schema credtrail writes.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use credtrail::score::Assessor;
use serde_json::Value;

/// Top-level attributes of `detection_finding` (1.4: the base event, the finding profile and
/// the class's own).
const ALLOWED: &[&str] = &[
    "activity_id",
    "activity_name",
    "category_name",
    "category_uid",
    "class_name",
    "class_uid",
    "comment",
    "confidence",
    "confidence_id",
    "confidence_score",
    "count",
    "duration",
    "end_time",
    "end_time_dt",
    "enrichments",
    "evidences",
    "finding_info",
    "impact",
    "impact_id",
    "impact_score",
    "is_alert",
    "malware",
    "message",
    "metadata",
    "observables",
    "raw_data",
    "remediation",
    "resources",
    "risk_details",
    "risk_level",
    "risk_level_id",
    "risk_score",
    "severity",
    "severity_id",
    "start_time",
    "start_time_dt",
    "status",
    "status_code",
    "status_detail",
    "status_id",
    "time",
    "time_dt",
    "timezone_offset",
    "type_name",
    "type_uid",
    "unmapped",
    "vulnerabilities",
];

/// Attributes of an `evidences` (Evidence Artifacts) object.
const EVIDENCE: &[&str] = &[
    "actor",
    "api",
    "connection_info",
    "container",
    "data",
    "database",
    "databucket",
    "device",
    "dst_endpoint",
    "email",
    "file",
    "http_request",
    "http_response",
    "ja4_fingerprint_list",
    "job",
    "name",
    "process",
    "query",
    "reg_key",
    "reg_value",
    "resources",
    "script",
    "src_endpoint",
    "tls",
    "uid",
    "url",
    "user",
    "verdict",
    "verdict_id",
];

fn int(a: &Value, path: &str) -> i64 {
    let v = pointer(a, path);
    v.as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer: {v}"))
}

fn string<'a>(a: &'a Value, path: &str) -> &'a str {
    let v = pointer(a, path);
    v.as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {v}"))
}

fn pointer<'a>(a: &'a Value, path: &str) -> &'a Value {
    a.pointer(&format!("/{}", path.replace('.', "/")))
        .unwrap_or_else(|| panic!("required {path} is missing"))
}

fn enum_in(a: &Value, path: &str, allowed: &[i64]) {
    let v = int(a, path);
    assert!(allowed.contains(&v), "{path} = {v} not in {allowed:?}");
}

/// Checks one alert against the class.
fn check(a: &Value) {
    let obj = a.as_object().expect("an object");
    for k in obj.keys() {
        assert!(ALLOWED.contains(&k.as_str()), "unknown attribute {k}");
    }
    // Required by the class and the base event.
    assert_eq!(int(a, "class_uid"), 2004);
    assert_eq!(int(a, "category_uid"), 2);
    enum_in(a, "activity_id", &[0, 1, 2, 3, 99]);
    assert_eq!(int(a, "type_uid"), 2004 * 100 + int(a, "activity_id"));
    enum_in(a, "severity_id", &[0, 1, 2, 3, 4, 5, 6, 99]);
    int(a, "time");
    string(a, "finding_info.uid");
    string(a, "finding_info.title");
    string(a, "metadata.version").starts_with("1.4");
    string(a, "metadata.product.name");
    // Recommended and optional attributes credtrail writes: their types and enumerations.
    enum_in(a, "status_id", &[0, 1, 2, 3, 4, 5, 6, 99]);
    enum_in(a, "confidence_id", &[0, 1, 2, 3, 99]);
    enum_in(a, "risk_level_id", &[0, 1, 2, 3, 4, 99]);
    let risk = int(a, "risk_score");
    assert!((0..=100).contains(&risk));
    assert!(pointer(a, "is_alert").is_boolean());
    string(a, "message");
    string(a, "risk_details");
    string(a, "remediation.desc");
    // Severity agrees with risk (issue 11).
    assert_eq!(int(a, "severity_id"), int(a, "risk_level_id") + 1);
    for e in a["evidences"].as_array().expect("evidences is an array") {
        let e = e.as_object().expect("an evidence is an object");
        assert!(!e.is_empty());
        for k in e.keys() {
            assert!(
                EVIDENCE.contains(&k.as_str()),
                "unknown evidence attribute {k}"
            );
        }
        let e = Value::Object(e.clone());
        if e.get("api").is_some() {
            string(&e, "api.operation");
        }
        if e.get("device").is_some() {
            int(&e, "device.type_id");
        }
        if let Some(f) = e.pointer("/process/file") {
            int(f, "type_id");
            string(f, "name");
        }
        if let Some(ip) = e.pointer("/src_endpoint/ip") {
            assert!(
                ip.as_str()
                    .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok() || !ip.is_empty())
            );
        }
        for r in e["resources"].as_array().into_iter().flatten() {
            string(r, "uid");
        }
    }
    for r in a["resources"].as_array().into_iter().flatten() {
        string(r, "uid");
    }
    for o in a["observables"].as_array().into_iter().flatten() {
        string(o, "name");
        enum_in(o, "type_id", &[0, 1, 2, 4, 10, 13, 16, 19, 99]);
    }
    for r in a["finding_info"]["related_analytics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        string(r, "name");
        int(r, "type_id");
    }
    for r in a["finding_info"]["related_events"]
        .as_array()
        .into_iter()
        .flatten()
    {
        string(r, "uid");
    }
    // No string holds a raw line separator (issue 11).
    let line = serde_json::to_string(a).unwrap();
    assert!(!line.contains('\n'));
}

#[test]
fn every_alert_of_the_demo_invictus_and_the_golden_cases_is_a_detection_finding() {
    let mut n = 0;
    let (demo, ..) = replay(
        &pack(),
        &[PathBuf::from("datasets/demo/events.jsonl")],
        2,
        "5m",
    );
    let invictus = shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let escalate = Arc::new(Assessor {
        escalate_at: Some(1),
        ..Assessor::default()
    });
    let (early, ..) = replay_scored(&pack(), &[invictus], 2, "5m", escalate);
    for text in [demo, early] {
        for a in alerts(&text) {
            check(&a);
            n += 1;
        }
    }
    for case in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let file = case.unwrap().path().join("expected_alerts.jsonl");
        if let Ok(text) = std::fs::read_to_string(&file) {
            for a in alerts(&text) {
                check(&a);
                n += 1;
            }
        }
    }
    assert!(n > 100, "{n} alerts checked");
}
