//! A 5 MiB event on a real broker (tansu) never stops delivery (issue 13): the service reads it,
//! dead-letters it cut to what the producer's `message.max.bytes` takes (flagged
//! `credtrail.truncated`), and the demo's alerts around it all arrive. (`tests/kafka_faults.rs`
//! covers 2 MiB on librdkafka's mock cluster, whose fetch handler never returned a 5 MiB record
//! batch to the consumer.)

mod broker;
mod common;

use std::time::Duration;

use broker::service::*;

#[test]
fn a_five_mib_event_is_dead_lettered_cut_to_fit_and_the_alerts_around_it_arrive() {
    let b = broker::broker();
    let t = topics("five-mib", &b.addr);
    let mut messages = spread(&dataset(), 0);
    messages.extend(ticks());
    let huge = broker::huge_event(5);
    messages.insert(100, (0, huge.clone()));
    broker::produce_large(&b.addr, &t.input, &messages);

    let mut config = service_config(&b.addr, &t);
    config.kafka.consumer.insert(
        "fetch.message.max.bytes".into(),
        credtrail::config::PropertyValue::Plain("10000000".into()),
    );
    let running = start(config);
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(7, Duration::from_secs(90), Duration::from_secs(1));
    assert!(!running.handle.is_finished(), "delivery stopped");
    running.wait_events(messages.len() as u64, Duration::from_secs(60));
    let report = running.stop();
    assert_eq!(alerts.seen.len(), 7, "the demo's alerts ({report:?})");
    let mut dead = broker::Reader::new(&b.addr, &t.dead, 1);
    dead.read(1, Duration::from_secs(30), Duration::from_secs(1));
    let cut: Vec<&broker::Read> = dead
        .seen
        .iter()
        .filter(|r| r.header("credtrail.truncated") == Some("true"))
        .collect();
    assert_eq!(cut.len(), 1, "{} dead letters", dead.seen.len());
    assert!(cut[0].payload.len() < 1_000_000, "{}", cut[0].payload.len());
    assert!(huge.starts_with(&cut[0].payload));
}
