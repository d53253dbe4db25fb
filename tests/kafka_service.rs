//! `credtrail run` against a real broker (tansu): the alerts on the alert topic are the ones
//! `replay` gives for the same data, offsets are committed to the end, bad events land on the
//! dead-letter topic with their reasons, a graceful stop and restart neither loses nor
//! duplicates an alert, credential lineage survives a restart, inventory topic updates reach
//! the scores of the alerts decided after them, and a rule reload keeps open chains.

mod broker;
mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use broker::service::*;

#[test]
fn alerts_match_replay_offsets_reach_the_end_and_bad_events_are_dead_lettered() {
    let b = broker::broker();
    let t = topics("match", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    assert_eq!(expected.values().sum::<usize>(), 7, "the demo's alerts");
    let mut messages = spread(&lines, 0);
    messages.extend(ticks());
    broker::produce(&b.addr, &t.input, &messages);

    let running = start(service_config(&b.addr, &t));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(7, Duration::from_secs(90), Duration::from_secs(2));
    running.wait_events(messages.len() as u64, Duration::from_secs(30));
    // Let a periodic commit pass the ticks, then stop (which commits once more).
    std::thread::sleep(Duration::from_millis(600));
    let report = running.stop();

    assert_eq!(
        alert_ids(&alerts.seen),
        expected,
        "alert ids on the topic = replay's"
    );
    for r in &alerts.seen {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(r.header("credtrail.alert_id"), Some(uid(&v).as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("credtrail.schema_version"), Some("ocsf-1.4.0"));
        assert_eq!(
            r.header("credtrail.rule_id"),
            v["finding_info"]["analytic"]["uid"].as_str()
        );
        assert_eq!(
            r.key.as_deref(),
            v["metadata"]["correlation_uid"].as_str().map(str::as_bytes),
            "alerts are keyed by the group key"
        );
        for e in v["evidences"].as_array().unwrap() {
            let src = &e["data"]["source"];
            assert_eq!(src["topic"].as_str(), Some(t.input.as_str()), "{src}");
            assert!(src["offset"].is_u64() && src["partition"].is_i64());
        }
    }
    assert_eq!(report.alerts_delivered, 7);

    let ends = produced_per_partition(&messages);
    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    let offsets: Vec<i64> = committed.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets, ends,
        "every event is processed and nothing holds the commit back"
    );

    let mut dead = broker::Reader::new(&b.addr, &t.dead, 1);
    dead.read(2, Duration::from_secs(20), Duration::from_millis(500));
    let mut got: Vec<(Vec<u8>, String, String, String)> = dead
        .seen
        .iter()
        .map(|r| {
            (
                r.payload.clone(),
                r.header("credtrail.reason").unwrap_or("").to_string(),
                r.header("credtrail.source_topic").unwrap_or("").to_string(),
                r.header("credtrail.source_offset")
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, b"this is not json".to_vec());
    assert_eq!(got[1].0, b"{\"eventName\": ".to_vec());
    for (_, reason, topic, offset) in &got {
        assert!(!reason.is_empty());
        assert_eq!(topic, &t.input);
        assert!(offset.parse::<u64>().is_ok());
    }
    // Line 100 went to partition 0 at offset 50, line 700 to partition 0 at offset 350.
    let positions: Vec<(&str, &str)> = dead
        .seen
        .iter()
        .map(|r| {
            (
                r.header("credtrail.source_partition").unwrap_or(""),
                r.header("credtrail.source_offset").unwrap_or(""),
            )
        })
        .collect();
    assert!(
        positions.contains(&("0", "50")) && positions.contains(&("0", "350")),
        "{positions:?}"
    );
}

#[test]
fn a_graceful_stop_and_restart_neither_loses_nor_duplicates_an_alert() {
    let b = broker::broker();
    let t = topics("restart", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    let split = 640;
    let first = spread(&lines[..split], 0);
    let mut second = spread(&lines[split..], split);
    second.extend(ticks());

    // First run: half the data. The three early AWS chains complete and are delivered; the
    // chain of dana (lines 167, 488, 965) is still open when the service stops.
    broker::produce(&b.addr, &t.input, &first);
    let running = start(service_config(&b.addr, &t));
    running.wait_events(first.len() as u64, Duration::from_secs(60));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(3, Duration::from_secs(30), Duration::from_millis(500));
    let report_a = running.stop();
    let before = alerts.seen.len();
    assert_eq!(before, 3, "the chains complete before the split");
    assert_eq!(report_a.alerts_delivered, 3);

    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    let ends = produced_per_partition(&first);
    assert!(
        committed.iter().zip(&ends).any(|((c, _), e)| c < e),
        "the open chain holds a commit back: {committed:?} vs {ends:?}"
    );

    // Second run, same group: the rest of the data.
    broker::produce(&b.addr, &t.input, &second);
    let running = start(service_config(&b.addr, &t));
    alerts.read(7, Duration::from_secs(90), Duration::from_secs(3));
    running.wait_events(second.len() as u64, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let report_b = running.stop();

    assert_eq!(
        alert_ids(&alerts.seen),
        expected,
        "each of replay's alerts exactly once across the restart"
    );
    assert!(
        report_b.alerts_suppressed >= 3,
        "the replay decided the delivered chains again and did not re-emit them ({report_b:?})"
    );
}

fn score(a: &serde_json::Value) -> &serde_json::Value {
    &a["unmapped"]["credtrail"]["score"]
}

#[test]
fn inventory_topic_entries_score_alerts_from_start_and_live_updates_from_their_publication() {
    let b = broker::broker();
    let t = topics("inventory", &b.addr);
    let inventory = broker::unique("inventory-entries");
    broker::create_topics(&b.addr, &[(&inventory, 1)]);
    let svc = "arn:aws:iam::111122223333:user/svc-reporting";
    let dana = "arn:aws:iam::111122223333:user/dana";
    let entry = |arn: &str| {
        format!(r#"{{"identity": {{"match": "{arn}", "privilege": "admin", "reach": {{"secrets": 200, "accounts": 5, "data_stores": 50}}}}}}"#)
            .into_bytes()
    };
    // Before the start: svc-reporting is an admin; eve is added then deleted; one bad record.
    broker::produce_keyed(
        &b.addr,
        &inventory,
        &[
            (b"svc".to_vec(), Some(entry(svc))),
            (b"eve".to_vec(), Some(entry("contoso\\\\eve"))),
            (b"eve".to_vec(), None),
            (b"bad".to_vec(), Some(b"{not json".to_vec())),
        ],
    );
    let lines = dataset();
    let split = 640;
    let config = service_config_with(
        &b.addr,
        &t,
        &format!("[scoring]\ninventory_topic = \"{inventory}\""),
    );
    let running = start(config);
    broker::produce(&b.addr, &t.input, &spread(&lines[..split], 0));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(3, Duration::from_secs(60), Duration::from_millis(500));
    assert_eq!(
        alerts.seen.len(),
        3,
        "svc-reporting's chains complete before the split"
    );
    for r in &alerts.seen {
        let a: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(a["metadata"]["correlation_uid"], svc);
        assert_eq!(
            score(&a)["in_inventory"],
            true,
            "the entry read at start applies: {a}"
        );
    }
    let m = running.metrics.clone();
    assert_eq!(m.inventory_rejected.load(Ordering::Relaxed), 1);
    let versions = m.inventory_versions.load(Ordering::Relaxed);

    // Dana becomes an admin while her chain is open; its last step comes after the update.
    broker::produce_keyed(
        &b.addr,
        &inventory,
        &[(b"dana".to_vec(), Some(entry(dana)))],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.inventory_versions.load(Ordering::Relaxed) <= versions {
        assert!(
            Instant::now() < deadline,
            "the inventory update was not published"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = spread(&lines[split..], split);
    rest.extend(ticks());
    broker::produce(&b.addr, &t.input, &rest);
    alerts.read(7, Duration::from_secs(60), Duration::from_secs(2));
    running.stop();
    assert_eq!(m.inventory_records.load(Ordering::Relaxed), 4);
    let later: Vec<serde_json::Value> = alerts.seen[3..]
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(later.len(), 4, "dana's chain and eve's three");
    for a in &later {
        let who = a["metadata"]["correlation_uid"].as_str().unwrap_or("");
        let want = who == dana;
        assert_eq!(score(a)["in_inventory"], want, "{who}: {a}");
        if want {
            let reach = &score(a)["factors"][0];
            assert_eq!(reach["name"], "reach");
            assert!(
                reach["detail"]
                    .as_str()
                    .is_some_and(|d| !d.contains("not in the inventory"))
            );
        }
    }
}

#[test]
fn a_rule_reload_mid_stream_keeps_open_chains_and_applies_new_rules_from_its_point_on() {
    let b = broker::broker();
    let t = topics("reload", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    let split = 640;
    let running = start(service_config(&b.addr, &t));
    broker::produce(&b.addr, &t.input, &spread(&lines[..split], 0));
    running.wait_events(split as u64, Duration::from_secs(60));

    // The pack again, plus a standalone rule; dana's chain (lines 167, 488 | 965) is open.
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.yml");
    std::fs::write(
        &probe,
        "title: reload probe\nid: 5e1f0ad0-0000-4000-8000-000000000001\nlevel: low\n\
         logsource: {product: aws, service: cloudtrail}\n\
         detection: {sel: {eventName: GetSecretValue}, condition: sel}\n",
    )
    .unwrap();
    let root = common::root();
    running
        .control
        .offer_rules(common::rules(&[root.join("rules"), probe]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while running.metrics.rule_reloads.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the reload was not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = spread(&lines[split..], split);
    rest.extend(ticks());
    broker::produce(&b.addr, &t.input, &rest);
    let probes_after = lines[split..]
        .iter()
        .filter(|l| String::from_utf8_lossy(l).contains("\"eventName\":\"GetSecretValue\""))
        .count();
    assert!(
        probes_after > 0,
        "the dataset has secret reads after the split"
    );
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(
        7 + probes_after,
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    running.stop();

    let (probe_alerts, pack_alerts): (Vec<serde_json::Value>, Vec<serde_json::Value>) = alerts
        .seen
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap())
        .partition(|a| a["finding_info"]["title"] == "reload probe");
    assert_eq!(
        multiset(pack_alerts.iter().map(uid)),
        expected,
        "the pack's alerts, dana's chain included: its state survived the reload"
    );
    assert_eq!(
        probe_alerts.len(),
        probes_after,
        "the new rule matched the events after the reload point and none before"
    );
}

/// A CloudTrail record at `minute` past 10:00 by the `ops` role session that mallory's
/// `AssumeRole` minted, or (`session` false) by mallory herself.
fn lineage_event(minute: u32, id: &str, source: &str, name: &str, session: bool) -> Vec<u8> {
    let (who, response) = if session {
        (
            r#"{"type":"AssumedRole","arn":"arn:aws:sts::111111111111:assumed-role/ops/mal-1","accountId":"111111111111","accessKeyId":"ASIAOPS1","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111111111111:role/ops"}}}"#,
            "null",
        )
    } else {
        (
            r#"{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/mallory","accountId":"111111111111","accessKeyId":"AKIAMALLORY1","userName":"mallory"}"#,
            r#"{"credentials":{"accessKeyId":"ASIAOPS1"},"assumedRoleUser":{"arn":"arn:aws:sts::111111111111:assumed-role/ops/mal-1"}}"#,
        )
    };
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-07-01T10:{minute:02}:00Z","eventSource":"{source}.amazonaws.com","eventName":"{name}","eventID":"{id}","userIdentity":{who},"requestParameters":{{"secretId":"prod/db","roleArn":"arn:aws:iam::111111111111:role/ops","durationSeconds":3600}},"responseElements":{response}}}"#
    )
    .into_bytes()
}

/// Bug: nothing held the commit back for a credential link, so after a restart the role
/// session's events no longer joined the chain of the user who assumed the role.
#[test]
fn a_credential_link_minted_before_a_restart_still_joins_the_chain_after_it() {
    let (b, mallory) = (broker::broker(), "arn:aws:iam::111111111111:user/mallory");
    let t = topics("lineage", &b.addr);
    let tick = |p: i32| (p, lineage_event(10, &format!("t{p}"), "x", "Tick", false));
    // First run: the AssumeRole alone, then time moves past it on both partitions.
    let assume = (0, lineage_event(0, "ar", "sts", "AssumeRole", false));
    broker::produce(&b.addr, &t.input, &[assume, tick(0), tick(1)]);
    let running = start(service_config(&b.addr, &t));
    running.wait_events(3, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    running.stop();
    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    assert_eq!(
        committed[0].0, 0,
        "the AssumeRole holds its partition: {committed:?}"
    );
    // Second run: the session reads a secret, enumerates and creates a key.
    let steps = [
        (11, "secretsmanager", "GetSecretValue"),
        (12, "iam", "ListUsers"),
    ];
    let second: Vec<_> = [steps[0], steps[1], (13, "iam", "CreateAccessKey")]
        .iter()
        .map(|(m, src, name)| (0, lineage_event(*m, name, src, name, true)))
        .chain(ticks())
        .collect();
    broker::produce(&b.addr, &t.input, &second);
    let running = start(service_config(&b.addr, &t));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(1, Duration::from_secs(60), Duration::from_secs(2));
    running.stop();
    let groups: Vec<serde_json::Value> = (alerts.seen.iter())
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
        .map(|a| a["metadata"]["correlation_uid"].clone())
        .collect();
    assert!(groups.contains(&serde_json::json!(mallory)), "{groups:?}");
}

/// Issue 15: alerts on the topic carried no integrity. With `signing.keys_file` set, every
/// alert carries the signature headers, and a dump of the topic in `kcat -C -J`'s shape passes
/// `credtrail alert verify`; the same dump with one payload byte changed does not.
#[test]
fn alerts_on_the_topic_are_signed_and_a_topic_dump_verifies() {
    let b = broker::broker();
    let t = topics("signed", &b.addr);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("signing-keys");
    std::fs::write(
        &keys,
        "2026-12 whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=\n\
         2026-06 whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
    )
    .unwrap();
    let lines = dataset();
    let mut messages = spread(&lines, 0);
    messages.extend(ticks());
    broker::produce(&b.addr, &t.input, &messages);
    let extra = format!("[signing]\nkeys_file = {:?}\n", keys.to_str().unwrap());
    let running = start(service_config_with(&b.addr, &t, &extra));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(7, Duration::from_secs(90), Duration::from_secs(2));
    running.stop();
    assert_eq!(alerts.seen.len(), 7);
    let dump: Vec<String> = alerts
        .seen
        .iter()
        .map(|r| {
            assert_eq!(r.header("credtrail.signing_key"), Some("2026-12"));
            assert_eq!(r.header("webhook-id"), r.header("credtrail.alert_id"));
            assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));
            let headers: Vec<&str> = r
                .headers
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()])
                .collect();
            serde_json::json!({
                "topic": t.alerts,
                "partition": r.partition,
                "offset": r.offset,
                "headers": headers,
                "key": r.key.as_deref().map(|k| String::from_utf8(k.to_vec()).unwrap()),
                "payload": String::from_utf8(r.payload.clone()).unwrap(),
            })
            .to_string()
        })
        .collect();
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, dump.join("\n") + "\n").unwrap();
    let verify = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_credtrail"))
            .args(["alert", "verify", file.to_str().unwrap(), "--keys"])
            .arg(&keys)
            .output()
            .unwrap()
    };
    let o = verify(&file);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("7 alert(s) verified (7 by key 2026-12)"),
        "{out}"
    );
    let tampered = dir.path().join("tampered.jsonl");
    let changed = dump[0].replacen("Detection Finding", "Detection Findinh", 1);
    assert_ne!(changed, dump[0]);
    std::fs::write(&tampered, changed + "\n").unwrap();
    assert_eq!(verify(&tampered).status.code(), Some(1));
}
