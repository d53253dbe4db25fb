//! `credtrail run` in-process against the test broker: topics of its own per test, the test
//! config (with extra TOML appended), starting and stopping the service, and the demo data
//! spread over the input partitions. Shared by the Kafka service tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use credtrail::config::{self, ServiceConfig};
use credtrail::metrics::Metrics;
use credtrail::service::{self, Control, RunReport, ServiceError};

pub const PARTITIONS: i32 = 2;

pub struct Topics {
    pub input: String,
    pub alerts: String,
    pub dead: String,
    pub checkpoints: String,
    pub group: String,
}

pub fn topics(name: &str, addr: &str) -> Topics {
    let t = Topics {
        input: super::unique(&format!("{name}-in")),
        alerts: super::unique(&format!("{name}-alerts")),
        dead: super::unique(&format!("{name}-dead")),
        checkpoints: super::unique(&format!("{name}-checkpoints")),
        group: super::unique(&format!("{name}-group")),
    };
    super::create_topics(
        addr,
        &[
            (&t.input, PARTITIONS),
            (&t.alerts, 1),
            (&t.dead, 1),
            (&t.checkpoints, 1),
        ],
    );
    t
}

pub fn service_config(addr: &str, t: &Topics) -> ServiceConfig {
    service_config_with(addr, t, "")
}

/// The test config with `extra` TOML appended.
pub fn service_config_with(addr: &str, t: &Topics, extra: &str) -> ServiceConfig {
    let text = format!(
        r#"
[kafka]
brokers = "{addr}"
group = "{group}"
alert_topic = "{alerts}"
dead_letter_topic = "{dead}"
checkpoint_topic = "{checkpoints}"
commit_interval = "200ms"
idle_timeout = "30s"
[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
[kafka.producer]
"linger.ms" = 1
[[input]]
topic = "{input}"
profile = "auto"
lateness = "5m"
[rules]
paths = ["rules"]
watch = false
[engine]
shards = 2
workers = 2
batch_events = 64
[shutdown]
deadline = "20s"
[metrics]
listen = ""
{extra}
"#,
        group = t.group,
        alerts = t.alerts,
        dead = t.dead,
        checkpoints = t.checkpoints,
        input = t.input,
    );
    let root = crate::common::root();
    config::load_str(&text, &root.join("test.toml"), Vec::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

pub struct Running {
    pub control: Control,
    pub metrics: Arc<Metrics>,
    pub handle: JoinHandle<Result<RunReport, ServiceError>>,
}

pub fn start(config: ServiceConfig) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("credtrail=info")
        .with_test_writer()
        .with_thread_ids(true)
        .with_thread_names(true)
        .try_init();
    let control = Control::new();
    let metrics = Metrics::new();
    let rules = crate::common::pack();
    let (c, m) = (control.clone(), metrics.clone());
    let handle =
        std::thread::spawn(move || service::run(&config, rules, Default::default(), m, &c));
    Running {
        control,
        metrics,
        handle,
    }
}

impl Running {
    pub fn wait_events(&self, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.metrics.events_in.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the service read {} of {n} events in {limit:?}",
                self.metrics.events_in.load(Ordering::Relaxed)
            );
            assert!(!self.handle.is_finished(), "the service stopped early");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(self) -> RunReport {
        self.control.stop();
        self.handle
            .join()
            .expect("service thread")
            .unwrap_or_else(|e| panic!("service failed: {e}"))
    }
}

/// The demo dataset's lines, with two undecodable lines slipped in.
pub fn dataset() -> Vec<Vec<u8>> {
    let text =
        std::fs::read_to_string(crate::common::root().join("datasets/demo/events.jsonl")).unwrap();
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    lines.insert(100, b"this is not json".to_vec());
    lines.insert(700, b"{\"eventName\": ".to_vec());
    lines
}

/// An event per partition after the data (and before the wall clock, or it would be a
/// `future` dead letter), matching no rule: it moves every partition's watermark past the data,
/// as the end of a file does in replay.
pub fn ticks() -> Vec<(i32, Vec<u8>)> {
    (0..PARTITIONS)
        .map(|p| {
            let e = format!(
                r#"{{"eventVersion":"1.08","eventSource":"credtrail.test","eventName":"Tick","eventTime":"2026-11-03T00:00:00Z","eventID":"tick-{p}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/tick"}}}}"#
            );
            (p, e.into_bytes())
        })
        .collect()
}

/// Events spread over the partitions in file order.
pub fn spread(lines: &[Vec<u8>], from: usize) -> Vec<(i32, Vec<u8>)> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| (((i + from) % PARTITIONS as usize) as i32, l.clone()))
        .collect()
}

/// Messages per partition: the end offsets (tansu's offset listing is not reliable).
pub fn produced_per_partition(messages: &[(i32, Vec<u8>)]) -> Vec<i64> {
    (0..PARTITIONS)
        .map(|p| messages.iter().filter(|(q, _)| *q == p).count() as i64)
        .collect()
}

/// The alert ids `replay` gives for the dataset, as a multiset.
pub fn replay_ids(lines: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    std::fs::write(&file, text).unwrap();
    let (alerts, _, _d) =
        crate::common::replay_per_finding(&crate::common::pack(), &[file], 2, "5m");
    multiset(crate::common::alerts(&alerts).iter().map(uid))
}

pub fn uid(a: &serde_json::Value) -> String {
    a["finding_info"]["uid"].as_str().unwrap_or("").to_string()
}

pub fn multiset(ids: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

pub fn alert_ids(reads: &[super::Read]) -> BTreeMap<String, usize> {
    multiset(reads.iter().map(|r| {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("alert is JSON");
        uid(&v)
    }))
}
