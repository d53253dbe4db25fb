//! `credtrail run` under faults, against librdkafka's in-process mock cluster: produce errors,
//! commit errors, a broker down and up, a slow broker (request timeouts), leader changes.
//! Checked: no alert is lost, every duplicate carries the same id, and the commits reach the
//! end only once everything is delivered (a commit never passes an undelivered alert: the
//! ledger's property test checks that invariant step by step; here the end state is checked).

mod broker;
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use credtrail::config;
use credtrail::metrics::Metrics;
use credtrail::service::{self, Control};

const PARTITIONS: i32 = 2;

fn events() -> Vec<(i32, Vec<u8>)> {
    let text = std::fs::read_to_string(common::root().join("datasets/demo/events.jsonl")).unwrap();
    let mut out: Vec<(i32, Vec<u8>)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| ((i % 2) as i32, l.as_bytes().to_vec()))
        .collect();
    for p in 0..PARTITIONS {
        out.push((
            p,
            format!(r#"{{"eventVersion":"1.08","eventSource":"credtrail.test","eventName":"Tick","eventTime":"2027-01-01T00:00:00Z","eventID":"tick-{p}","userIdentity":{{"arn":"arn:aws:iam::1:user/tick"}}}}"#).into_bytes(),
        ));
    }
    out
}

#[test]
fn under_broker_faults_no_alert_is_lost_and_duplicates_share_their_id() {
    let cluster = MockCluster::<DefaultProducerContext>::new(3).expect("mock cluster");
    let addr = cluster.bootstrap_servers();
    for (t, p) in [
        ("in", PARTITIONS),
        ("alerts", 1),
        ("dead", 1),
        ("checkpoints", 1),
    ] {
        cluster.create_topic(t, p, 3).expect("topic");
    }
    let messages = events();
    broker::produce(&addr, "in", &messages);
    let expected: BTreeSet<String> = {
        let (text, _, _d) = common::replay_per_finding(
            &common::pack(),
            &[common::root().join("datasets/demo/events.jsonl")],
            2,
            "5m",
        );
        common::alerts(&text)
            .iter()
            .map(|a| a["finding_info"]["uid"].as_str().unwrap().to_string())
            .collect()
    };

    // Faults before the service starts: the first produce and commit requests fail.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3],
    );
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 2],
    );

    let text = format!(
        r#"
[kafka]
brokers = "{addr}"
group = "faults"
alert_topic = "alerts"
dead_letter_topic = "dead"
checkpoint_topic = "checkpoints"
commit_interval = "200ms"
[kafka.consumer]
"session.timeout.ms" = 6000
[kafka.producer]
"message.timeout.ms" = 3000
[[input]]
topic = "in"
lateness = "5m"
[rules]
paths = ["rules"]
watch = false
[engine]
shards = 2
workers = 1
batch_events = 50
[shutdown]
deadline = "30s"
[metrics]
listen = ""
"#
    );
    let config = config::load_str(&text, &common::root().join("t.toml"), Vec::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .0;
    let control = Control::new();
    let metrics = Metrics::new();
    let (c, m, rules) = (control.clone(), metrics.clone(), common::pack());
    let handle =
        std::thread::spawn(move || service::run(&config, rules, Default::default(), m, &c));

    // Faults while it runs: a broker goes down and comes back, a slow broker, leaders move.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.events_in.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.broker_down(2).expect("broker down");
    cluster
        .partition_leader("alerts", 0, Some(3))
        .expect("leader");
    cluster
        .broker_round_trip_time(1, Duration::from_millis(400))
        .expect("rtt");
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker_up(2).expect("broker up");
    cluster
        .broker_round_trip_time(1, Duration::from_millis(0))
        .expect("rtt");
    cluster.partition_leader("in", 1, Some(2)).expect("leader");

    let mut alerts = broker::Reader::new(&addr, "alerts", 1);
    alerts.read(
        expected.len(),
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    while metrics.events_in.load(Ordering::Relaxed) < messages.len() as u64 {
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "events not all read"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    control.stop();
    let report = handle
        .join()
        .expect("service thread")
        .unwrap_or_else(|e| panic!("service failed under faults: {e}"));

    let got: Vec<(String, String)> = alerts
        .seen
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            (
                v["finding_info"]["uid"].as_str().unwrap().to_string(),
                r.header("credtrail.alert_id").unwrap_or("").to_string(),
            )
        })
        .collect();
    let ids: BTreeSet<String> = got.iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(ids, expected, "no alert lost, none invented");
    assert!(got.iter().all(|(u, h)| u == h), "every copy carries its id");
    assert!(report.alerts_delivered >= expected.len() as u64);
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| messages.iter().filter(|(q, _)| *q == p).count() as i64)
        .collect();
    let committed: Vec<i64> = broker::committed(&addr, "faults", "in", PARTITIONS)
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(
        committed, ends,
        "commits reach the end once everything is delivered"
    );
}
