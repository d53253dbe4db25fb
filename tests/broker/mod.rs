//! A Kafka broker for integration tests: the one named by `CREDTRAIL_TEST_BROKER` (what
//! `.ci/run` and `deploy/local-broker.sh` start), or else a tansu broker with in-memory storage
//! started for this test on a free loopback port and killed when the guard drops.
//!
//! Every test uses its own topic names and consumer group, so tests share a broker safely.

#![allow(dead_code)]

pub mod service;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

pub struct Broker {
    pub addr: String,
    child: Option<Child>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tansu_binary() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = PathBuf::from(home).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        return cargo_bin;
    }
    "tansu".into()
}

/// The test broker; panics with instructions when there is none.
pub fn broker() -> Broker {
    if let Ok(addr) = std::env::var("CREDTRAIL_TEST_BROKER") {
        return Broker { addr, child: None };
    }
    private()
}

/// A tansu broker of this test's own, even when `CREDTRAIL_TEST_BROKER` names a shared one: for
/// tests that use the fixed topic names of a shipped config.
pub fn private() -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_binary())
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "no test broker: set CREDTRAIL_TEST_BROKER=host:port or install tansu \
                 (`cargo install tansu --locked --features dynostore`): {e}"
            )
        });
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker {
        addr,
        child: Some(child),
    }
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub fn create_topics(addr: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// Produces `(partition, payload)` messages and waits for every acknowledgement.
///
/// One message per record batch: tansu (0.6) answers a fetch from an offset inside a batch with
/// the next batch, skipping the rest of it, so a consumer resuming mid-batch would miss
/// messages. Apache Kafka serves the whole batch and the client skips to the offset.
pub fn produce(addr: &str, topic: &str, messages: &[(i32, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    for (partition, payload) in messages {
        loop {
            match p.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(*partition)
                    .payload(&payload[..]),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    p.poll(Duration::from_millis(20));
                    let _ = e;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// An event larger than every size limit that cannot be salvaged (not JSON: its closing brace
/// is missing), `mib` MiB of padding: it can only be dead-lettered, cut to fit.
pub fn huge_event(mib: usize) -> Vec<u8> {
    format!(
        r#"{{"eventTime":"2026-11-02T09:05:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","pad":"{}""#,
        "x".repeat(mib << 20)
    )
    .into_bytes()
}

/// Produces `messages` as [`produce`] does, with a producer that accepts messages of up to
/// 10 MB (for [`huge_event`]s).
pub fn produce_large(addr: &str, topic: &str, messages: &[(i32, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("message.max.bytes", "10000000")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for (partition, payload) in messages {
        while p
            .send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(*partition)
                    .payload(&payload[..]),
            )
            .is_err()
        {
            p.poll(Duration::from_millis(20));
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces keyed records to partition 0 (`None`: a tombstone), one per batch as [`produce`].
pub fn produce_keyed(addr: &str, topic: &str, records: &[(Vec<u8>, Option<Vec<u8>>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .key(&key[..]);
        if let Some(v) = value {
            record = record.payload(&v[..]);
        }
        p.send(record).map_err(|(e, _)| e).expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// One message read back, with its headers.
#[derive(Clone, Debug)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An independent reader (no consumer group) of every partition of `topic` from the beginning.
pub struct Reader {
    consumer: BaseConsumer,
    pub seen: Vec<Read>,
}

impl Reader {
    pub fn new(addr: &str, topic: &str, partitions: i32) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        Reader {
            consumer,
            seen: Vec::new(),
        }
    }

    /// Reads until `n` messages were seen in all (or `limit` passes), then keeps reading for
    /// `settle` to catch extras. Returns how many were seen.
    pub fn read(&mut self, n: usize, limit: Duration, settle: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut settle_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if self.seen.len() >= n && settle_until.is_none() {
                settle_until = Some(now + settle);
            }
            if settle_until.is_some_and(|s| now >= s) || now >= deadline {
                return self.seen.len();
            }
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(50)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or(&[])).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.seen.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or(&[]).to_vec(),
                    headers,
                });
            }
        }
    }
}

/// The committed offsets (and metadata) of `group` for `topic`'s partitions.
pub fn committed(addr: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    c.elements()
        .iter()
        .map(|e| (e.offset().to_raw().unwrap_or(-1), e.metadata().to_string()))
        .collect()
}

/// The end offset (high watermark) of each partition.
pub fn end_offsets(addr: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}
