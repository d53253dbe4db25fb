//! Evidence that speaks (issue 11): an alert shows, per contributing event, who acted, what
//! was called, from where, on which host with which command line, and on what, without the
//! analyst opening the raw log; and every alert line stays within its bounds.

mod common;

use std::path::PathBuf;

use common::{alerts, pack, replay, shared};
use serde_json::Value;

/// The evidence of an alert whose API operation is `operation`.
fn evidence_of<'a>(alert: &'a Value, operation: &str) -> Option<&'a Value> {
    alert["evidences"]
        .as_array()?
        .iter()
        .find(|e| e["api"]["operation"] == operation)
}

#[test]
fn an_invictus_ami_share_shows_the_image_the_external_account_the_ip_and_the_user_agent() {
    let input = shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let (text, _, _dir) = replay(&pack(), &[input], 2, "5m");
    let all = alerts(&text);
    let share = all
        .iter()
        .filter(|a| {
            a["metadata"]["correlation_uid"]
                .as_str()
                .is_some_and(|g| g.ends_with("user/bert-jan"))
        })
        .find_map(|a| evidence_of(a, "ModifyImageAttribute").map(|e| (a, e)));
    let Some((alert, e)) = share else {
        panic!("no bert-jan alert holds the AMI share: {text}");
    };
    let image = e["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["type"] == "image"))
        .unwrap_or_else(|| panic!("no image resource: {e}"));
    assert_eq!(image["uid"], "ami-0aa1d83d0b0985c86");
    assert_eq!(image["data"]["shared_with_accounts"][0], "012345678901");
    assert_eq!(e["src_endpoint"]["ip"], "192.168.10.20");
    assert!(
        e["http_request"]["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("stratus-red-team_")),
        "{e}"
    );
    assert_eq!(e["actor"]["user"]["name"], "bert-jan");
    assert_eq!(e["actor"]["user"]["credential_uid"], "AKIATFQR7NSC8Q4X20BJ");
    assert_eq!(e["api"]["service"]["name"], "ec2.amazonaws.com");
    // The alert's own resources are what its chain touched, and the image is observable.
    let resources = alert["resources"].as_array().expect("resources");
    assert!(
        resources
            .iter()
            .any(|r| r["uid"] == "ami-0aa1d83d0b0985c86")
    );
    let observables = alert["observables"].as_array().expect("observables");
    assert!(
        observables
            .iter()
            .any(|o| o["type_id"] == 2 && o["value"] == "192.168.10.20")
    );
}

#[test]
fn a_windows_alert_shows_the_host_and_the_command_line() {
    let (text, _, _dir) = replay(
        &pack(),
        &[PathBuf::from("datasets/demo/events.jsonl")],
        2,
        "5m",
    );
    let windows: Vec<Value> = alerts(&text)
        .into_iter()
        .filter(|a| {
            a["finding_info"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Windows chain"))
        })
        .collect();
    assert!(!windows.is_empty(), "{text}");
    for a in &windows {
        let first = &a["evidences"][0];
        assert_eq!(
            first["device"]["hostname"], "WKS12.contoso.local",
            "{first}"
        );
        assert!(
            first["process"]["cmd_line"]
                .as_str()
                .is_some_and(|c| c.contains("comsvcs.dll, MiniDump")),
            "{first}"
        );
        assert!(
            a["observables"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["type_id"] == 1)),
            "no hostname observable"
        );
    }
}

/// Regression (issue 11): demo alert 1 listed in `resources` two secrets its chain never read
/// (the identity's whole footprint); resources now come from the chain's own events.
#[test]
fn resources_are_what_the_chain_itself_touched() {
    let (text, _, _dir) = replay(
        &pack(),
        &[PathBuf::from("datasets/demo/events.jsonl")],
        2,
        "5m",
    );
    for a in alerts(&text) {
        let from_evidence: Vec<&Value> = a["evidences"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["resources"].as_array().into_iter().flatten())
            .map(|r| &r["uid"])
            .collect();
        for r in a["resources"].as_array().into_iter().flatten() {
            assert!(
                from_evidence.contains(&&r["uid"]),
                "{r} not in {from_evidence:?}"
            );
        }
    }
}

#[test]
fn alerts_show_at_most_the_bounded_evidences_and_count_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(common::root()).unwrap();
    let mut opts = common::options(
        &[PathBuf::from("datasets/demo/events.jsonl")],
        dir.path(),
        2,
        "5m",
    );
    opts.alert = credtrail::alert::AlertOptions {
        max_evidences: 2,
        max_bytes: 9000,
        ..Default::default()
    };
    credtrail::pipeline::replay(pack(), &opts).unwrap();
    let text = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    let mut omitted = 0;
    for (line, a) in text.lines().zip(alerts(&text)) {
        let shown = a["evidences"].as_array().unwrap();
        let count = a["count"].as_u64().unwrap() as usize;
        assert_eq!(shown.len(), count.min(2));
        let skipped = a["unmapped"]["credtrail"]["evidences_omitted"]
            .as_u64()
            .unwrap_or(0) as usize;
        assert_eq!(shown.len() + skipped, count);
        omitted += skipped;
        // The first and the last stage are always shown.
        let stages: Vec<u64> = shown
            .iter()
            .map(|e| e["data"]["stage"].as_u64().unwrap())
            .collect();
        assert_eq!(stages[0], 0);
        assert_eq!(
            *stages.last().unwrap(),
            a["unmapped"]["credtrail"]["stage"][0].as_u64().unwrap() - 1
        );
        assert!(line.len() <= 9000, "{} bytes", line.len());
    }
    assert!(omitted > 0);
}

/// Issue 13: an alert with 10,000 evidences must never stop delivery. A brute-force count
/// of 10,000 `GetObject` calls by one identity decides one alert whose line shows the bounded
/// evidences (first and last always), counts the rest, and stays under the byte bound the
/// service derives from the producer's `message.max.bytes`.
#[test]
fn an_alert_of_ten_thousand_events_shows_its_bound_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("count.yml");
    std::fs::write(
        &rules,
        "title: get object\nname: get_object\nlogsource: {product: aws, service: cloudtrail}\n\
         detection: {s: {eventName: GetObject}, condition: s}\n---\n\
         title: ten thousand reads\ncorrelation: {type: event_count, rules: [get_object], \
         group-by: [credtrail.identity], timespan: 1h, condition: {gte: 10000}}\n",
    )
    .unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "{{\"eventVersion\":\"1.08\",\"eventTime\":\"2026-11-02T09:{:02}:{:02}.{:03}Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\",\"eventID\":\"e{i}\",\"sourceIPAddress\":\"203.0.113.7\",\"userAgent\":\"aws-cli/2\",\"userIdentity\":{{\"type\":\"IAMUser\",\"arn\":\"arn:aws:iam::1:user/mallory\",\"accountId\":\"1\"}},\"requestParameters\":{{\"bucketName\":\"b\",\"key\":\"k{i}\"}}}}\n",
            i / 200,
            (i / 4) % 50,
            (i % 4) * 250
        ));
    }
    std::fs::write(&input, text).unwrap();
    for max_bytes in [256 * 1024, 20_000] {
        let out = tempfile::tempdir().unwrap();
        let mut opts = common::options(std::slice::from_ref(&input), out.path(), 2, "5m");
        opts.alert = credtrail::alert::AlertOptions {
            max_bytes,
            incidents: None,
            ..Default::default()
        };
        credtrail::pipeline::replay(common::rules(&[rules.clone()]), &opts).unwrap();
        let text = std::fs::read_to_string(out.path().join("alerts.jsonl")).unwrap();
        let all = alerts(&text);
        assert_eq!(all.len(), 1, "{text}");
        let a = &all[0];
        let shown = a["evidences"].as_array().unwrap().len();
        let omitted = a["unmapped"]["credtrail"]["evidences_omitted"]
            .as_u64()
            .unwrap_or(0) as usize;
        assert!((2..=10).contains(&shown), "{shown} shown");
        assert_eq!(
            shown + omitted,
            a["count"].as_u64().unwrap() as usize,
            "every event shown or counted"
        );
        assert!(a["count"].as_u64().unwrap() >= 10_000);
        let line = text.lines().next().unwrap();
        assert!(
            line.len() <= max_bytes,
            "{} bytes over {max_bytes}",
            line.len()
        );
    }
}
