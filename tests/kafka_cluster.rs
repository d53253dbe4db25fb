//! Cluster members on a real broker (tansu): input spread over partitions with no regard to
//! identity, hits repartitioned by identity through the hits topic, credential links shared
//! through the lineage topic; the alert topic holds the alert ids `replay` gives.

mod broker;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use broker::service::*;

const INPUT_PARTITIONS: i32 = 6;
const HIT_PARTITIONS: i32 = 4;

struct ClusterTopics {
    base: Topics,
    hits: String,
    lineage: String,
}

fn cluster_topics(name: &str, addr: &str) -> ClusterTopics {
    let base = Topics {
        input: broker::unique(&format!("{name}-in")),
        alerts: broker::unique(&format!("{name}-alerts")),
        dead: broker::unique(&format!("{name}-dead")),
        checkpoints: broker::unique(&format!("{name}-checkpoints")),
        group: broker::unique(&format!("{name}-group")),
    };
    let t = ClusterTopics {
        hits: broker::unique(&format!("{name}-hits")),
        lineage: broker::unique(&format!("{name}-lineage")),
        base,
    };
    broker::create_topics(
        addr,
        &[
            (&t.base.input, INPUT_PARTITIONS),
            (&t.base.alerts, 1),
            (&t.base.dead, 1),
            (&t.base.checkpoints, 1),
            (&t.hits, HIT_PARTITIONS),
            (&t.lineage, 1),
        ],
    );
    t
}

fn cluster_config(addr: &str, t: &ClusterTopics) -> credtrail::config::ServiceConfig {
    let extra = format!(
        "[cluster]\nenabled = true\nhits_topic = \"{}\"\nlineage_topic = \"{}\"\n",
        t.hits, t.lineage
    );
    let mut c = service_config_with(addr, &t.base, &extra);
    // tansu serves a fetch from inside a record batch from the next batch: one record per
    // batch, so a stage that resumes mid-topic misses nothing.
    c.kafka.producer.insert(
        "batch.num.messages".into(),
        credtrail::config::PropertyValue::Plain("1".into()),
    );
    c
}

/// The demo's lines round-robin over the input partitions, then one tick per partition past
/// the data (as the end of a file moves a replay's clock).
fn round_robin(lines: &[Vec<u8>]) -> Vec<(i32, Vec<u8>)> {
    let mut out: Vec<(i32, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| ((i % INPUT_PARTITIONS as usize) as i32, l.clone()))
        .collect();
    for p in 0..INPUT_PARTITIONS {
        let e = format!(
            r#"{{"eventVersion":"1.08","eventSource":"credtrail.test","eventName":"Tick","eventTime":"2026-11-03T00:00:00Z","eventID":"tick-{p}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/tick"}}}}"#
        );
        out.push((p, e.into_bytes()));
    }
    out
}

fn replay_ids(lines: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    std::fs::write(&file, text).unwrap();
    let (alerts, _, _d) = common::replay_per_finding(&common::pack(), &[file], 2, "5m");
    multiset(common::alerts(&alerts).iter().map(uid))
}

fn uid(a: &serde_json::Value) -> String {
    a["finding_info"]["uid"].as_str().unwrap_or("").to_string()
}

fn multiset(ids: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

fn alert_ids(reads: &[broker::Read]) -> BTreeMap<String, usize> {
    multiset(reads.iter().map(|r| {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("alert is JSON");
        uid(&v)
    }))
}

#[test]
fn one_member_alone_gives_the_alerts_of_replay_through_the_hits_topic() {
    let b = broker::broker();
    let t = cluster_topics("cluster1", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    assert_eq!(expected.values().sum::<usize>(), 7, "the demo's alerts");
    broker::produce(&b.addr, &t.base.input, &round_robin(&lines));

    let running = start(cluster_config(&b.addr, &t));
    let mut alerts = broker::Reader::new(&b.addr, &t.base.alerts, 1);
    alerts.read(7, Duration::from_secs(120), Duration::from_secs(3));
    let report = running.stop();
    assert_eq!(alert_ids(&alerts.seen), expected, "alert ids = replay's");
    assert_eq!(report.alerts_delivered, 7);
    let mut hits = broker::Reader::new(&b.addr, &t.hits, HIT_PARTITIONS);
    hits.read(1, Duration::from_secs(10), Duration::from_secs(1));
    let partitions: std::collections::BTreeSet<i32> =
        hits.seen.iter().map(|r| r.partition).collect();
    assert!(partitions.len() >= 2, "hits spread by identity: {partitions:?}");
}

#[test]
fn three_members_give_the_alerts_of_replay() {
    let b = broker::broker();
    let t = cluster_topics("cluster3", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    broker::produce(&b.addr, &t.base.input, &round_robin(&lines));

    let members: Vec<Running> = (0..3).map(|_| start(cluster_config(&b.addr, &t))).collect();
    let mut alerts = broker::Reader::new(&b.addr, &t.base.alerts, 1);
    alerts.read(7, Duration::from_secs(180), Duration::from_secs(5));
    for m in members {
        m.stop();
    }
    assert_eq!(alert_ids(&alerts.seen), expected, "alert ids = replay's");
}
