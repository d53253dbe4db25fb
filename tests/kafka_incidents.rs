//! Incidents on the alert topic (issue 11): with `[alerts] incidents = true`, `credtrail run`
//! writes the incidents `replay` writes for the same events: the same `finding_info.uid`s and,
//! per uid, the same Create/Update/Close sequence, Create first. Incident state lives only in
//! the output thread, so these tests stop the service while incidents are open and start it
//! again on the same group: the held input rebuilds them, and no uid gets a second Create.

mod broker;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use broker::service::*;
use serde_json::Value;

/// The service config of these tests: the Kafka test config with incidents on.
fn incidents_config(addr: &str, t: &Topics) -> credtrail::config::ServiceConfig {
    incidents_config_window(addr, t, "1h")
}

fn incidents_config_window(
    addr: &str,
    t: &Topics,
    window: &str,
) -> credtrail::config::ServiceConfig {
    let extra = format!("[alerts]\nincidents = true\nincident_window = \"{window}\"\n");
    service_config_with(addr, t, &extra)
}

/// Per incident uid, its lines' activities in the order they were written.
type Sequences = BTreeMap<String, Vec<String>>;

fn sequences<'a>(alerts: impl Iterator<Item = &'a Value>) -> Sequences {
    let mut out = Sequences::new();
    for a in alerts {
        let uid = a["finding_info"]["uid"].as_str().unwrap_or("").to_string();
        let activity = a["activity_name"].as_str().unwrap_or("").to_string();
        out.entry(uid).or_default().push(activity);
    }
    out
}

fn topic_alerts(reads: &[broker::Read]) -> Vec<Value> {
    reads
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("alert is JSON"))
        .collect()
}

/// What `replay` (incidents on, its default window of 1 h) writes for these event lines.
fn replay_sequences(lines: &[Vec<u8>]) -> Sequences {
    replay_sequences_window(lines, "1h")
}

/// What `replay --incident-window WINDOW` writes for these event lines.
fn replay_sequences_window(lines: &[Vec<u8>], window: &str) -> Sequences {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    std::fs::write(&file, text).unwrap();
    std::env::set_current_dir(common::root()).unwrap();
    let mut opts = common::options(&[file], dir.path(), 2, "5m");
    opts.alert.incidents = Some(credtrail::alert::incident::IncidentOptions {
        window: credtrail::time::Span::parse(window).unwrap(),
        ..Default::default()
    });
    credtrail::pipeline::replay(common::pack(), &opts).unwrap_or_else(|e| panic!("{e}"));
    let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    sequences(common::alerts(&alerts).iter())
}

/// Every uid starts with its one Create; Updates follow; a Close, if any, is last.
fn assert_lifecycles(found: &Sequences) {
    for (uid, activities) in found {
        assert_eq!(activities[0], "Create", "{uid}: {activities:?}");
        let creates = activities.iter().filter(|a| *a == "Create").count();
        assert_eq!(creates, 1, "{uid} created twice: {activities:?}");
        let closes = activities.iter().position(|a| a == "Close");
        assert!(
            closes.is_none_or(|i| i + 1 == activities.len()),
            "{uid}: {activities:?}"
        );
    }
}

fn lines_in(s: &Sequences) -> usize {
    s.values().map(Vec::len).sum()
}

/// Each line names its incident in `credtrail.incident_id` and itself in `credtrail.alert_id`.
fn assert_headers(reads: &[broker::Read]) {
    for r in reads {
        let a: Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(
            r.header("credtrail.incident_id"),
            a["finding_info"]["uid"].as_str()
        );
        let own = a["unmapped"]["credtrail"]["incident"]["finding_uid"]
            .as_str()
            .unwrap_or("");
        let alert_id = r.header("credtrail.alert_id").unwrap_or("");
        assert!(alert_id.starts_with(own), "{alert_id} vs {own}");
    }
}

#[test]
fn the_alert_topic_carries_the_incidents_replay_writes() {
    let b = broker::broker();
    let t = topics("incidents", &b.addr);
    let lines = dataset();
    let expected = replay_sequences(&lines);
    assert_eq!(expected.len(), 3, "the demo's incidents: {expected:?}");
    assert_eq!(lines_in(&expected), 10);
    let mut messages = spread(&lines, 0);
    messages.extend(ticks());
    broker::produce(&b.addr, &t.input, &messages);

    let running = start(incidents_config(&b.addr, &t));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(10, Duration::from_secs(90), Duration::from_secs(2));
    running.wait_events(messages.len() as u64, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(600));
    let report = running.stop();

    let found = sequences(topic_alerts(&alerts.seen).iter());
    assert_eq!(found, expected, "uids and activity sequences = replay's");
    assert_lifecycles(&found);
    assert_headers(&alerts.seen);
    assert_eq!(report.alerts_delivered, 10);
    // Every incident closed (the ticks moved event time past them): nothing holds the commit.
    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    let offsets: Vec<i64> = committed.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, produced_per_partition(&messages));
}

#[test]
fn a_restart_with_incidents_open_writes_no_second_create() {
    let b = broker::broker();
    let t = topics("incidents-restart", &b.addr);
    let lines = dataset();
    let expected = replay_sequences(&lines);
    let split = 640;
    let first = spread(&lines[..split], 0);
    let mut second = spread(&lines[split..], split);
    second.extend(ticks());

    // First run: svc-reporting's three chains are delivered (one incident: Create, two
    // Updates); nothing after the split moves event time far enough to close it.
    broker::produce(&b.addr, &t.input, &first);
    let running = start(incidents_config(&b.addr, &t));
    running.wait_events(first.len() as u64, Duration::from_secs(60));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(3, Duration::from_secs(30), Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(600));
    let report_a = running.stop();
    let before = sequences(topic_alerts(&alerts.seen).iter());
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before.values().all(|a| !a.contains(&"Close".to_string())),
        "the incident is open at the stop: {before:?}"
    );
    assert_eq!(report_a.alerts_delivered, 3);
    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    let ends = produced_per_partition(&first);
    assert!(
        committed.iter().zip(&ends).any(|((c, _), e)| c < e),
        "the open incident holds a commit back: {committed:?} vs {ends:?}"
    );

    // Second run, same group: the rest of the data, then time moves past every incident.
    broker::produce(&b.addr, &t.input, &second);
    let running = start(incidents_config(&b.addr, &t));
    alerts.read(10, Duration::from_secs(90), Duration::from_secs(3));
    running.wait_events(second.len() as u64, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let report_b = running.stop();

    let found = sequences(topic_alerts(&alerts.seen).iter());
    assert_lifecycles(&found);
    assert_eq!(
        found, expected,
        "replay's incidents, each line once, across the restart"
    );
    assert!(
        report_b.alerts_suppressed >= 3,
        "the replay rebuilt the open incident without writing its lines again ({report_b:?})"
    );
}

/// Bug guarded: with incident state only in memory, a restart would open a new incident (a
/// second Create, another uid) for a finding that joins one created before the stop. Here the
/// first chain's correlation state has expired at the stop, so nothing but the open incident
/// holds its events: without that hold the restart would not replay them.
#[test]
fn an_incident_created_before_a_restart_is_updated_and_closed_after_it() {
    let b = broker::broker();
    let t = topics("incidents-update", &b.addr);
    let frank = |at, id, source, name| (0, event(at, id, source, name, "frank"));
    // A 3 h window: the incident outlives its first chain's 1 h timespan by far.
    let window = "3h";
    // First run: frank reads a secret, lists users and creates a key (the persistence chain,
    // one incident: Create). Time moves to 11:30 on both partitions: the chain's state is past
    // its timespan, the incident (open until its last event + 3 h window + 1 h longest
    // timespan) is not.
    let first = vec![
        frank("10:00", "s1", "secretsmanager", "GetSecretValue"),
        frank("10:01", "e1", "iam", "ListUsers"),
        frank("10:02", "p1", "iam", "CreateAccessKey"),
        tick(0, "11:30"),
        tick(1, "11:30"),
    ];
    // Second run: the same chain again from 12:00, within the window of the incident's last
    // event, so it joins it (Update); then time moves past the incident's end.
    let second = vec![
        frank("12:00", "s2", "secretsmanager", "GetSecretValue"),
        frank("12:01", "e2", "iam", "ListUsers"),
        frank("12:02", "p2", "iam", "CreateAccessKey"),
        tick(0, "23:00"),
        tick(1, "23:00"),
    ];
    let all: Vec<Vec<u8>> = first
        .iter()
        .chain(&second)
        .map(|(_, e)| e.clone())
        .collect();
    let expected = replay_sequences_window(&all, window);
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert_eq!(
        expected.values().next().unwrap(),
        &["Create", "Update", "Close"],
        "{expected:?}"
    );

    broker::produce(&b.addr, &t.input, &first);
    let running = start(incidents_config_window(&b.addr, &t, window));
    running.wait_events(first.len() as u64, Duration::from_secs(60));
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(1, Duration::from_secs(30), Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(600));
    running.stop();
    assert_eq!(
        sequences(topic_alerts(&alerts.seen).iter())
            .into_values()
            .collect::<Vec<_>>(),
        vec![vec!["Create".to_string()]]
    );
    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    assert_eq!(committed[0].0, 0, "the open incident holds its first event");

    broker::produce(&b.addr, &t.input, &second);
    let running = start(incidents_config_window(&b.addr, &t, window));
    alerts.read(3, Duration::from_secs(60), Duration::from_secs(3));
    let report = running.stop();
    let found = sequences(topic_alerts(&alerts.seen).iter());
    assert_lifecycles(&found);
    assert_eq!(
        found, expected,
        "the same uid, Create once, then the Update and the Close"
    );
    assert_eq!(
        report.alerts_suppressed, 1,
        "the Create decided again, not written"
    );
    assert_headers(&alerts.seen);
    // Closed and delivered: nothing holds the commit any more.
    let committed = broker::committed(&b.addr, &t.group, &t.input, PARTITIONS);
    let offsets: Vec<i64> = committed.iter().map(|(o, _)| *o).collect();
    let mut input = first.clone();
    input.extend(second);
    assert_eq!(offsets, produced_per_partition(&input));
}

/// A CloudTrail record of `who` at `hh:mm` on 2024-07-01 (`tick`: a user no rule follows,
/// with an event no rule matches).
fn event(at: &str, id: &str, source: &str, name: &str, who: &str) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-07-01T{at}:00Z","eventSource":"{source}.amazonaws.com","eventName":"{name}","eventID":"{id}","sourceIPAddress":"203.0.113.9","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/{who}","accountId":"111111111111","accessKeyId":"AKIA{id}","userName":"{who}"}},"requestParameters":{{"secretId":"prod/db","bucketName":"exports"}}}}"#
    )
    .into_bytes()
}

fn tick(partition: i32, at: &str) -> (i32, Vec<u8>) {
    let id = format!("tick{partition}{}", at.replace(':', ""));
    (partition, event(at, &id, "x", "Tick", "tick"))
}
