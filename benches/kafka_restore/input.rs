//! The bench's input and configs: the CloudTrail events, the topics of a run, a process's config.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::producer::BaseRecord;
use rdkafka::producer::{BaseProducer, Producer};

use super::{
    COMMIT_INTERVAL, PRODUCER_QUEUE, SESSION_TIMEOUT, broker, hit_partitions, input_partitions,
};

/// `benches/restore.rs`'s rules (`benches/data/restore_chain.yml`): every identity with a
/// GetSecretValue and a ListUsers holds a live state two steps into the chain.
pub(super) const RULES: &str = include_str!("../data/restore_chain.yml");

// The series read from `/metrics` (src/metrics/render.rs).
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One CloudTrail line of identity `i`: step 0 reads a secret, step 1 lists users.
pub(super) fn event(i: usize, step: u8, ms: i64) -> Vec<u8> {
    let time = credtrail::time::EventTime::from_millis(ms);
    let (source, name, parameters) = if step == 0 {
        (
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            format!(r#"{{"secretId":"prod/db/{}"}}"#, i % 97),
        )
    } else {
        ("iam.amazonaws.com", "ListUsers", "null".to_string())
    };
    format!(
        r#"{{"awsRegion":"eu-west-1","eventID":"ev-{i}-{step}","eventName":"{name}","eventSource":"{source}","eventTime":"{time}","eventType":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":true,"recipientAccountId":"111122223333","requestID":"req-{i}-{step}","requestParameters":{parameters},"responseElements":null,"sourceIPAddress":"203.0.113.{}","userAgent":"aws-cli/2.15.0 Python/3.11.8 Linux/6.5.0","userIdentity":{{"accessKeyId":"AKIA{i:016X}","accountId":"111122223333","arn":"arn:aws:iam::111122223333:user/u{i:07}","principalId":"AIDA{i:016X}","type":"IAMUser","userName":"u{i:07}"}}}}"#,
        i % 250 + 1
    )
    .into_bytes()
}

/// Produces two events per identity in time order, round-robin over the input partitions,
/// then one event per partition a minute past the data. The data spans up to 40 minutes
/// (2 ms per identity), starting 55 minutes ago: nothing is in the future and no chain's hour
/// ends before the last event.
pub(super) fn produce(addr: &str, topic: &str, n: usize) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .set(
            "batch.num.messages",
            if batched() == Some("all") {
                "10000"
            } else {
                "1"
            },
        )
        .create()
        .expect("producer");
    let send = |k: usize, payload: &[u8]| {
        let partition = (k % input_partitions() as usize) as i32;
        while p
            .send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(partition)
                    .payload(payload),
            )
            .is_err()
        {
            p.poll(Duration::from_millis(5));
        }
        if k.is_multiple_of(1000) {
            p.poll(Duration::ZERO);
        }
    };
    let span_ms = (2 * n as i64).min(40 * 60 * 1000);
    let base = now_ms() - 55 * 60 * 1000;
    let first = |i: usize| base + (i as i64 * span_ms) / n.max(1) as i64;
    // Merge the two steps by time: identity i's second step is 1 s after its first.
    let (mut a, mut b, mut k) = (0, 0, 0);
    while a < n || b < n {
        let take_first = a < n && first(a) <= first(b) + 1000;
        let payload = if take_first {
            a += 1;
            event(a - 1, 0, first(a - 1))
        } else {
            b += 1;
            event(b - 1, 1, first(b - 1) + 1000)
        };
        send(k, &payload);
        k += 1;
    }
    let end = base + span_ms + 1000 + 60_000;
    for partition in 0..input_partitions() {
        let e = format!(
            r#"{{"awsRegion":"eu-west-1","eventID":"clock-{partition}","eventName":"GetCallerIdentity","eventSource":"sts.amazonaws.com","eventTime":"{}","eventType":"AwsApiCall","eventVersion":"1.08","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","accountId":"111122223333","arn":"arn:aws:iam::111122223333:user/clock"}}}}"#,
            credtrail::time::EventTime::from_millis(end)
        );
        send(partition as usize, e.as_bytes());
    }
    p.flush(Duration::from_secs(600)).expect("flush");
}

/// BENCH_BATCHED=services: the services' records (hits, alerts, checkpoints) in batches
/// (librdkafka's defaults), not one record per batch; BENCH_BATCHED=all: the input too. tansu
/// 0.6 stores a batch as an object and lists a partition's objects on every fetch, so
/// one-record batches make a partition slower to read the longer it is. The price: tansu
/// answers a fetch that resumes inside a batch with the next batch, so a consumer that pauses
/// and resumes mid-batch loses records (at 1M identities, `all` lost 10,694 input events to
/// stage 1's backpressure pauses); the bench then never sees its N states and fails, it does
/// not report a wrong figure.
pub(super) fn batched() -> Option<&'static str> {
    match std::env::var("BENCH_BATCHED").as_deref() {
        Ok("all") => Some("all"),
        Ok(_) => Some("services"),
        Err(_) => None,
    }
}

/// The topics and group of one run.
pub(super) struct Names {
    pub(super) input: String,
    pub(super) group: String,
    pub(super) alerts: String,
    pub(super) dead: String,
    pub(super) checkpoints: String,
    pub(super) hits: String,
    pub(super) lineage: String,
    pub(super) changelog: String,
}

impl Names {
    pub(super) fn new() -> Names {
        let name = |what: &str| broker::unique(&format!("kafka-restore-{what}"));
        Names {
            input: name("in"),
            group: name("group"),
            alerts: name("alerts"),
            dead: name("dead"),
            checkpoints: name("checkpoints"),
            hits: name("hits"),
            lineage: name("lineage"),
            changelog: name("changelog"),
        }
    }

    pub(super) fn create(&self, addr: &str) {
        broker::create_topics(
            addr,
            &[
                (&self.input, input_partitions()),
                (&self.alerts, 1),
                (&self.dead, 1),
                (&self.checkpoints, 1),
                (&self.hits, hit_partitions()),
                (&self.lineage, 1),
                (&self.changelog, hit_partitions()),
            ],
        );
    }
}

/// A process's config: the same for every process of a run but for its metrics port, and
/// `changelog = false` for the replay-only one.
pub(super) fn config_text(
    addr: &str,
    t: &Names,
    rules: &Path,
    port: u16,
    changelog: bool,
) -> String {
    let debug = |line: &'static str| match std::env::var_os("BENCH_DEBUG_KAFKA") {
        Some(_) => line,
        None => "",
    };
    format!(
        r#"[kafka]
brokers = "{addr}"
group = "{group}"
alert_topic = "{alerts}"
dead_letter_topic = "{dead}"
checkpoint_topic = "{checkpoints}"
commit_interval = "{commit}ms"
idle_timeout = "1h"
[kafka.consumer]
"session.timeout.ms" = {session}
"heartbeat.interval.ms" = 500
{debug_consumer}[kafka.producer]
"linger.ms" = 5
{batches}"queue.buffering.max.messages" = {queue}
{debug_producer}[[input]]
topic = "{input}"
profile = "cloudtrail"
lateness = "1s"
[rules]
paths = ["{rules}"]
watch = false
[engine]
shards = 1
workers = 1
[metrics]
listen = "127.0.0.1:{port}"
[log]
format = "json"
{debug_log}[cluster]
enabled = true
hits_topic = "{hits}"
lineage_topic = "{lineage}"
changelog_topic = "{changelog_topic}"
changelog = {changelog}
"#,
        group = t.group,
        alerts = t.alerts,
        dead = t.dead,
        checkpoints = t.checkpoints,
        commit = COMMIT_INTERVAL.as_millis(),
        input = t.input,
        rules = rules.display(),
        hits = t.hits,
        lineage = t.lineage,
        changelog_topic = t.changelog,
        queue = PRODUCER_QUEUE,
        batches = if batched().is_some() {
            ""
        } else {
            "\"batch.num.messages\" = 1\n"
        },
        session = SESSION_TIMEOUT.as_millis(),
        debug_consumer = debug("\"debug\" = \"cgrp\"\n"),
        debug_producer = debug("\"debug\" = \"eos,broker\"\n"),
        debug_log = debug("level = \"info,librdkafka=debug,rdkafka=debug\"\n"),
    )
}
