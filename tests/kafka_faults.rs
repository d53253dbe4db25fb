//! `credtrail run` under faults, against librdkafka's in-process mock cluster: produce errors,
//! commit errors, a broker down and up, a slow broker (request timeouts), leader changes.
//! Checked: no alert is lost, every duplicate carries the same id, and the commits reach the
//! end only once everything is delivered (a commit never passes an undelivered alert: the
//! ledger's property test checks that invariant step by step; here the end state is checked).

mod broker;
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use credtrail::config::{self, ServiceConfig};
use credtrail::metrics::Metrics;
use credtrail::service::{self, Control, RunReport, ServiceError};

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
            format!(r#"{{"eventVersion":"1.08","eventSource":"credtrail.test","eventName":"Tick","eventTime":"2026-11-03T00:00:00Z","eventID":"tick-{p}","userIdentity":{{"arn":"arn:aws:iam::1:user/tick"}}}}"#).into_bytes(),
        ));
    }
    out
}

/// A mock cluster of `brokers` brokers holding the topics of these tests (`in` with
/// [`PARTITIONS`] partitions; `alerts`, `dead`, `checkpoints`), and its bootstrap address.
fn mock_cluster(brokers: i32) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::<DefaultProducerContext>::new(brokers).expect("mock cluster");
    let addr = cluster.bootstrap_servers();
    for (t, p) in [
        ("in", PARTITIONS),
        ("alerts", 1),
        ("dead", 1),
        ("checkpoints", 1),
    ] {
        cluster.create_topic(t, p, brokers).expect("topic");
    }
    (cluster, addr)
}

/// The service config of these tests on `addr`: consumer group `group`, `kafka_extra` (TOML
/// tables of librdkafka properties, after `[kafka]`) and the shutdown deadline.
fn mock_config(addr: &str, group: &str, kafka_extra: &str, deadline: &str) -> ServiceConfig {
    let text = format!(
        r#"
[kafka]
brokers = "{addr}"
group = "{group}"
alert_topic = "alerts"
dead_letter_topic = "dead"
checkpoint_topic = "checkpoints"
commit_interval = "200ms"
{kafka_extra}
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
deadline = "{deadline}"
[metrics]
listen = ""
"#
    );
    config::load_str(&text, &common::root().join("t.toml"), Vec::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// The service with the shipped pack on a thread of its own.
fn spawn(
    config: ServiceConfig,
) -> (
    Control,
    Arc<Metrics>,
    JoinHandle<Result<RunReport, ServiceError>>,
) {
    let (control, metrics) = (Control::new(), Metrics::new());
    let (c, m) = (control.clone(), metrics.clone());
    let handle = std::thread::spawn(move || {
        service::run(&config, common::pack(), Default::default(), m, &c)
    });
    (control, metrics, handle)
}

#[test]
fn under_broker_faults_no_alert_is_lost_and_duplicates_share_their_id() {
    let (cluster, addr) = mock_cluster(3);
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

    let config = mock_config(
        &addr,
        "faults",
        r#"
[kafka.consumer]
"session.timeout.ms" = 6000
[kafka.producer]
"message.timeout.ms" = 3000
"#,
        "30s",
    );
    let (control, metrics, handle) = spawn(config);

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

/// Bug: when a pipeline thread ended, the intake took the closed queue for "nothing held",
/// kept polling and discarding, `/livez` stayed 200, and the error appeared only at shutdown.
/// Now the service stops on its own with an error, `/livez` failing, within the deadline.
#[test]
fn a_shard_thread_that_ends_stops_the_service_with_an_error_and_livez_fails() {
    let (_cluster, addr) = mock_cluster(1);
    let messages = events();
    broker::produce(&addr, "in", &messages[..400]);
    let config = mock_config(&addr, "dead-engine", "", "10s");
    let (control, metrics, handle) = spawn(config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.events_in.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(credtrail::metrics::respond(&metrics, "/livez").0, 200);
    let killed = Instant::now();
    control.stop_shard_for_test();
    // Input keeps arriving: the service must not swallow it.
    broker::produce(&addr, "in", &messages[400..]);
    while !handle.is_finished() {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the service did not stop by itself (nobody asked it to)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = handle.join().expect("service thread");
    assert!(
        matches!(result, Err(service::ServiceError::EngineStopped)),
        "{result:?}"
    );
    assert_eq!(credtrail::metrics::respond(&metrics, "/livez").0, 503);
    assert_eq!(credtrail::metrics::respond(&metrics, "/readyz").0, 503);
}

/// Bug: a permanent broker rejection of an alert (here: topic authorization refused) was
/// retried every 500 ms forever with a warning per message. Now the service stops with the
/// reason, `/livez` failing.
#[test]
fn a_permanent_produce_error_stops_the_service_with_the_reason() {
    let (cluster, addr) = mock_cluster(1);
    broker::produce(&addr, "in", &events());
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1000],
    );
    let config = mock_config(&addr, "refused", "", "10s");
    let started = Instant::now();
    let (_control, metrics, handle) = spawn(config);
    while !handle.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the service kept retrying a refused message"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = handle.join().expect("service thread");
    let err = result.expect_err("the service fails");
    assert!(
        matches!(
            err,
            service::ServiceError::ProducePermanent { .. }
                | service::ServiceError::ProduceRefused { .. }
                | service::ServiceError::ProducerFatal { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().to_lowercase().contains("authoriz"), "{err}");
    assert_eq!(credtrail::metrics::respond(&metrics, "/livez").0, 503);
}

/// Bug: an offset was marked committed when the asynchronous commit was queued, not when the
/// broker confirmed it. With every commit refused, nothing may count as committed.
#[test]
fn a_refused_offset_commit_is_not_counted_as_committed() {
    let (cluster, addr) = mock_cluster(1);
    let messages = events();
    broker::produce(&addr, "in", &messages);
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 10_000],
    );
    let config = mock_config(&addr, "refused-commits", "", "10s");
    let (control, metrics, handle) = spawn(config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.events_in.load(Ordering::Relaxed) < messages.len() as u64 {
        assert!(Instant::now() < deadline, "no progress");
        assert!(!handle.is_finished(), "the service stopped early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Several commit intervals: asynchronous commits are sent and refused.
    std::thread::sleep(Duration::from_secs(2));
    control.stop();
    let report = handle
        .join()
        .expect("service thread")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(metrics.commit_failures.load(Ordering::Relaxed) > 0);
    assert!(
        report.committed.is_empty(),
        "refused commits counted as committed: {:?}",
        report.committed
    );
}

/// Bug: a dead letter carried the whole raw payload, so an event larger than the producer's
/// `message.max.bytes` (1,000,000 by default, below the default `max_event_bytes`) was refused
/// locally for good and stopped delivery. Now the dead letter is cut to fit and flagged.
#[test]
fn a_two_mib_event_is_dead_lettered_cut_to_fit_and_delivery_goes_on() {
    let (_cluster, addr) = mock_cluster(1);
    let mut messages = events();
    let huge = broker::huge_event(2);
    messages.insert(100, (0, huge.clone()));
    broker::produce_large(&addr, "in", &messages);
    let config = mock_config(
        &addr,
        "huge",
        r#"
[kafka.consumer]
"fetch.message.max.bytes" = 10000000
"#,
        "10s",
    );
    let (control, metrics, handle) = spawn(config);
    let mut alerts = broker::Reader::new(&addr, "alerts", 1);
    alerts.read(7, Duration::from_secs(90), Duration::from_secs(1));
    assert!(!handle.is_finished(), "delivery stopped");
    let read = metrics.events_in.load(Ordering::Relaxed);
    control.stop();
    let report = handle
        .join()
        .expect("service thread")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        alerts.seen.len(),
        7,
        "the demo's alerts ({read} of {} events read; {report:?})",
        messages.len()
    );
    assert!(report.dead_letters >= 1);
    let mut dead = broker::Reader::new(&addr, "dead", 1);
    dead.read(1, Duration::from_secs(20), Duration::from_secs(1));
    let big: Vec<&broker::Read> = dead
        .seen
        .iter()
        .filter(|r| r.header("credtrail.truncated") == Some("true"))
        .collect();
    assert_eq!(big.len(), 1, "{:?}", dead.seen.len());
    assert_eq!(big[0].header("credtrail.truncated"), Some("true"));
    assert!(big[0].payload.len() < 1_000_000);
    assert!(huge.starts_with(&big[0].payload));
}

/// Bug: an alert larger than the producer's `message.max.bytes` was refused by librdkafka for
/// good and stopped delivery (and a restart replayed into the same failure). Now it goes to the
/// dead-letter topic, cut to fit, with its id and reason, and the other alerts flow.
#[test]
fn an_alert_too_large_for_the_producer_is_dead_lettered_and_delivery_goes_on() {
    let (_cluster, addr) = mock_cluster(1);
    broker::produce(&addr, "in", &events());
    // 20,500 bytes less 16 KiB of header room: the demo's alerts (about 4 KB and more) do not
    // fit.
    let config = mock_config(
        &addr,
        "large-alerts",
        r#"
[kafka.producer]
"message.max.bytes" = 20500
"#,
        "10s",
    );
    let (control, _metrics, handle) = spawn(config);
    let mut alerts = broker::Reader::new(&addr, "alerts", 1);
    let mut dead = broker::Reader::new(&addr, "dead", 1);
    let deadline = Instant::now() + Duration::from_secs(90);
    let too_large = |d: &broker::Reader| {
        d.seen
            .iter()
            .filter(|r| r.header("credtrail.reason") == Some("alert_too_large"))
            .count()
    };
    while alerts.seen.len() + too_large(&dead) < 7 {
        assert!(Instant::now() < deadline, "alerts stalled");
        assert!(!handle.is_finished(), "delivery stopped");
        alerts.read(7, Duration::from_millis(300), Duration::ZERO);
        dead.read(7, Duration::from_millis(300), Duration::ZERO);
    }
    control.stop();
    handle
        .join()
        .expect("service thread")
        .unwrap_or_else(|e| panic!("{e}"));
    // Every one of the 7 findings was handled (delivered, or dead-lettered as too large) and
    // the service kept running meanwhile.
    assert!(too_large(&dead) >= 1, "the large ones are dead-lettered");
    for r in dead
        .seen
        .iter()
        .filter(|r| r.header("credtrail.reason") == Some("alert_too_large"))
    {
        assert!(
            r.header("credtrail.alert_id")
                .is_some_and(|id| !id.is_empty())
        );
        assert_eq!(r.header("credtrail.truncated"), Some("true"));
        assert!(r.payload.len() <= 20_500 - 16 * 1024);
    }
}
