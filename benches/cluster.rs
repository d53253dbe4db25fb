//! Several instances through a real broker (tansu, in-memory): how long the same pre-produced
//! events take to be decided by one engine (`[cluster]` off), by one cluster member and by two,
//! each in-process on this machine, fresh groups and topics per run.
//!
//! The input: CloudTrail lines of the demo dataset re-stamped with fresh ids and times,
//! round-robin over 6 partitions, then one event per partition past the end so the tail is
//! decided without waiting for the idle timeout. Two figures per run: steady events/s (read
//! between 20 % and 90 % of the input: past the group joins, before the tail) and end-to-end
//! events/s (from the first event read to the last alert delivered). Also the records the hop
//! carried and the alerts delivered, which must be the same in every run.
//!
//! The input is produced one record per batch: tansu 0.6 answers a fetch that resumes inside a
//! record batch with the next batch (see `tests/broker/mod.rs`), and the service pauses and
//! resumes partitions under backpressure, so batched input would lose events on this broker.
//!
//! `cargo bench --bench cluster` (BENCH_EVENTS for the size, default 200,000; BENCH_RUNS,
//! default 3). Needs `tansu` (as the Kafka tests do).

#[path = "../tests/broker/mod.rs"]
mod broker;
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use credtrail::metrics::Metrics;
use credtrail::service::{self, Control};

const PARTITIONS: i32 = 6;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn produce(addr: &str, topic: &str, n: usize) {
    let text = std::fs::read_to_string("datasets/demo/events.jsonl").expect("demo dataset");
    let templates: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("eventSource").is_some())
        .collect();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    let base = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..n {
        let mut v = templates[i % templates.len()].clone();
        let ms = (base + Duration::from_millis(i as u64))
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0) as i64;
        v["eventTime"] = credtrail::time::EventTime::from_millis(ms)
            .to_string()
            .into();
        v["eventID"] = format!("ev-{i}").into();
        let payload = serde_json::to_vec(&v).expect("json");
        let partition = (i % PARTITIONS as usize) as i32;
        while p
            .send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(partition)
                    .payload(&payload),
            )
            .is_err()
        {
            p.poll(Duration::from_millis(5));
        }
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    // One event per partition ten minutes past the input and matching no rule: it moves
    // every partition's clock past the last chain, so the tail is decided at once in every
    // mode instead of after the idle timeout.
    p.flush(Duration::from_secs(120)).expect("flush");
    let end = base + Duration::from_millis(n as u64) + Duration::from_secs(600);
    let ms = end
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0) as i64;
    for partition in 0..PARTITIONS {
        let v = serde_json::json!({
            "eventVersion": "1.08", "eventSource": "sts.amazonaws.com", "eventName": "Clock",
            "eventTime": credtrail::time::EventTime::from_millis(ms).to_string(),
            "eventID": format!("clock-{partition}"), "awsRegion": "us-east-1",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/clock"},
        });
        let payload = serde_json::to_vec(&v).expect("json");
        let record = BaseRecord::<(), [u8]>::to(topic)
            .partition(partition)
            .payload(&payload);
        p.send(record).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(120)).expect("flush");
}

fn config(addr: &str, input: &str, run: &str, cluster: bool) -> credtrail::config::ServiceConfig {
    let text = format!(
        r#"
[kafka]
brokers = "{addr}"
group = "{run}-group"
alert_topic = "{run}-alerts"
dead_letter_topic = "{run}-dead"
checkpoint_topic = "{run}-checkpoints"
commit_interval = "1s"
[kafka.consumer]
"session.timeout.ms" = 6000
"fetch.wait.max.ms" = 5
[[input]]
topic = "{input}"
profile = "cloudtrail"
lateness = "1s"
[rules]
paths = ["rules"]
watch = false
[engine]
shards = 1
workers = 1
[metrics]
listen = ""
[cluster]
enabled = {cluster}
hits_topic = "{run}-hits"
lineage_topic = "{run}-lineage"
changelog_topic = "{run}-changelog"
"#
    );
    credtrail::config::load_str(
        &text,
        &std::env::current_dir().unwrap().join("b.toml"),
        Vec::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .0
}

/// One run: `instances` services (a cluster when `cluster`) on the input.
fn run(addr: &str, input: &str, n: usize, instances: usize, cluster: bool) -> Outcome {
    let run = broker::unique("bench-cluster");
    broker::create_topics(
        addr,
        &[
            (&format!("{run}-alerts"), 1),
            (&format!("{run}-dead"), 1),
            (&format!("{run}-checkpoints"), 1),
            (&format!("{run}-hits"), PARTITIONS),
            (&format!("{run}-lineage"), 1),
            (&format!("{run}-changelog"), PARTITIONS),
        ],
    );
    let rules = common::pack();
    let members: Vec<_> = (0..instances)
        .map(|_| {
            let c = config(addr, input, &run, cluster);
            let (control, metrics) = (Control::new(), Metrics::new());
            let (cc, mm, rules) = (control.clone(), metrics.clone(), rules.clone());
            let h =
                std::thread::spawn(move || service::run(&c, rules, Default::default(), mm, &cc));
            (control, metrics, h)
        })
        .collect();
    let sum = |f: fn(&Metrics) -> &AtomicU64| -> u64 {
        members
            .iter()
            .map(|(_, m, _)| f(m).load(Ordering::Relaxed))
            .sum()
    };
    while sum(|m| &m.events_in) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Steady throughput: events read between 20 % and 90 % of the input, past joins and
    // before the tail. End to end: from the first event read to the last alert delivered.
    let started = Instant::now();
    let total = n + PARTITIONS as usize;
    let (mut t20, mut t90) = (None, None);
    while (sum(|m| &m.events_in) as usize) < total {
        let read = sum(|m| &m.events_in) as usize;
        if t20.is_none() && read * 5 >= n {
            t20 = Some((started.elapsed(), read));
        }
        if t90.is_none() && read * 10 >= n * 9 {
            t90 = Some((started.elapsed(), read));
        }
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{read} of {total} events read after 10 minutes"
        );
    }
    let mut done = started.elapsed();
    // Everything is decided when neither alerts nor records have moved for three seconds.
    let moving = || (sum(|m| &m.alerts_delivered), sum(|m| &m.cluster_records_in));
    let (mut last, mut since) = (moving(), Instant::now());
    while since.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(2));
        let now = moving();
        if now != last {
            (last, since) = (now, Instant::now());
            done = started.elapsed();
        }
    }
    let ((a, ra), (b, rb)) = (t20.expect("20 %"), t90.expect("90 %"));
    let steady = (rb - ra) as f64 / (b - a).as_secs_f64().max(1e-3);
    let records = sum(|m| &m.cluster_records_in);
    let alerts = sum(|m| &m.alerts_delivered);
    for (control, _, h) in members {
        control.stop();
        h.join().expect("thread").expect("service");
    }
    // Distinct alert ids on the topic: a partition that moved may deliver an alert again,
    // with its same id.
    let mut reader = broker::Reader::new(addr, &format!("{run}-alerts"), 1);
    reader.read(
        alerts as usize,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    let ids: std::collections::BTreeSet<String> = reader
        .seen
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
        .filter_map(|v| v["finding_info"]["uid"].as_str().map(str::to_string))
        .collect();
    Outcome {
        steady,
        end_to_end: n as f64 / done.as_secs_f64(),
        records,
        alerts: ids.len(),
        again: alerts.saturating_sub(ids.len() as u64),
    }
}

struct Outcome {
    /// Events/s read between 20 % and 90 % of the input.
    steady: f64,
    /// Events/s from the first event read to the last alert delivered.
    end_to_end: f64,
    records: u64,
    /// Distinct alert ids on the alert topic.
    alerts: usize,
    /// Alerts delivered again (same id).
    again: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("BENCH_EVENTS", 200_000);
    let runs = env_usize("BENCH_RUNS", 3);
    let b = broker::broker();
    let input = broker::unique("bench-cluster-in");
    broker::create_topics(&b.addr, &[(&input, PARTITIONS)]);
    produce(&b.addr, &input, n);
    eprintln!("produced {n} events over {PARTITIONS} partitions");
    let modes = [
        ("one engine ([cluster] off)", 1, false),
        ("cluster, 1 member", 1, true),
        ("cluster, 2 members", 2, true),
    ];
    let mut steady = vec![Vec::new(); modes.len()];
    let mut whole = vec![Vec::new(); modes.len()];
    let mut alerts = Vec::new();
    for round in 0..runs {
        for (i, (name, instances, cluster)) in modes.iter().enumerate() {
            let o = run(&b.addr, &input, n, *instances, *cluster);
            eprintln!(
                "round {}: {name}: steady {:.0} events/s, end to end {:.0} events/s, {} records, {} alert ids, {} delivered again",
                round + 1,
                o.steady,
                o.end_to_end,
                o.records,
                o.alerts,
                o.again
            );
            steady[i].push(o.steady);
            whole[i].push(o.end_to_end);
            alerts.push(o.alerts);
        }
    }
    let (one, one_whole) = (median(steady[0].clone()), median(whole[0].clone()));
    for (i, (name, _, _)) in modes.iter().enumerate() {
        let (m, w) = (median(steady[i].clone()), median(whole[i].clone()));
        println!(
            "{name}: steady {m:.0} events/s ({:.2}x one engine), end to end {w:.0} events/s ({:.2}x), medians of {runs}",
            m / one,
            w / one_whole
        );
    }
    alerts.sort_unstable();
    alerts.dedup();
    assert_eq!(
        alerts.len(),
        1,
        "every run gives the same alert ids: {alerts:?}"
    );
    println!("alert ids in every run: {}", alerts[0]);
}
