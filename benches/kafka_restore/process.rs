//! The bench's view of a `credtrail run` process (its `/metrics`, its log, SIGKILL) and of the
//! changelog topic it leaves.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{
    ASSIGNED, EVENTS, MARKERS, RECORDS_IN, STATES, WATERMARK, broker, common, hit_partitions,
};

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One `/metrics` answer: every sample by its series (name and labels).
pub(super) struct Sample(HashMap<String, f64>);

impl Sample {
    pub(super) fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The sum of a labelled family (`name{...}`).
    pub(super) fn sum(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        (self.0.iter())
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

/// GET /metrics over plain HTTP/1.0 (no chunked body); `None` while nothing listens.
pub(super) fn scrape(port: u16) -> Option<Sample> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return None;
    }
    let samples = (body.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect();
    Some(Sample(samples))
}

/// A `credtrail run` process, its output in a log file; killed when dropped (a panicking
/// bench leaves no process behind).
pub(super) struct Process {
    pub(super) child: Child,
    pub(super) name: String,
    pub(super) log: PathBuf,
    pub(super) port: u16,
    pub(super) spawned: Instant,
}

impl Process {
    pub(super) fn spawn(config: &str, dir: &Path, name: &str, port: u16) -> Process {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("write config");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let spawned = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_credtrail"))
            .args(["run", "--config"])
            .arg(&path)
            .current_dir(common::root())
            .env("RUST_LOG", "credtrail=info")
            // The bench's own setting: the service warns about CREDTRAIL_ variables it does not know.
            .env_remove("CREDTRAIL_TEST_BROKER")
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawn credtrail run");
        Process {
            child,
            name: name.to_string(),
            log,
            port,
            spawned,
        }
    }

    /// The process's metrics now; panics with its log's tail when it has exited.
    pub(super) fn sample(&mut self) -> Option<Sample> {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log's tail:\n{}",
                self.name,
                self.tail(30)
            );
        }
        scrape(self.port)
    }

    /// Polls until `done` holds for a sample; the time from spawn and that sample. Panics
    /// after `limit` (from now) with the last sample's figures and the log's tail.
    pub(super) fn wait(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Sample) -> bool,
    ) -> (Duration, Sample) {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Some(s) = self.sample() {
                if done(&s) {
                    return (self.spawned.elapsed(), s);
                }
                last = Some(s);
            }
            if Instant::now() > deadline {
                let shown = last.map_or("no metrics answered".to_string(), |s| {
                    [STATES, WATERMARK, ASSIGNED, EVENTS, RECORDS_IN, MARKERS]
                        .iter()
                        .map(|k| format!("{k} = {}", s.get(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                panic!(
                    "{}: not {what} within {limit:?}: {shown}\nlog tail:\n{}",
                    self.name,
                    self.tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub(super) fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// The log's messages carrying `message`, as JSON objects.
    pub(super) fn log_events(&self, message: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        (text.lines())
            .filter(|l| l.contains(message))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .collect()
    }

    pub(super) fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGKILL: no drain, no commit, no last changelog write.
    pub(super) fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The resident memory of the tansu broker listening on `addr`, in MiB, if this machine runs it.
pub(super) fn broker_rss_mib(addr: &str) -> Option<f64> {
    let url = format!("tcp://{addr}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("tansu") && cmdline.split('\0').any(|a| a == url) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            return Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0);
        }
    }
    None
}

/// What the changelog topic holds, read as a new owner reads it: from the beginning of each
/// partition up to a fence record of this read's own (tansu 0.6 reports the end of a
/// partition written in multi-record batches as the last batch's first offset, so its end
/// offsets cannot say when a reader is done).
#[derive(Clone, Debug, Default)]
pub(super) struct ChangelogTopic {
    /// State records and tombstones.
    pub(super) records: u64,
    pub(super) markers: u64,
    pub(super) state_bytes: u64,
    pub(super) largest_marker: usize,
    /// Partitions whose last record (fences aside) is a marker: restorable.
    pub(super) ending_in_marker: usize,
    pub(super) read: Duration,
}

pub(super) fn read_changelog(addr: &str, topic: &str, limit: Duration) -> ChangelogTopic {
    use credtrail::cluster::changelog::{FENCE_KEY, MARKER_KEY};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let started = Instant::now();
    let token = broker::unique("bench-fence");
    let fencer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("fence producer");
    for p in 0..hit_partitions() {
        let r = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(p)
            .key(FENCE_KEY)
            .payload(token.as_bytes());
        fencer.send(r).map_err(|(e, _)| e).expect("fence");
    }
    fencer.flush(Duration::from_secs(30)).expect("fence flush");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", broker::unique("bench-changelog"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..hit_partitions() {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut open = vec![true; hit_partitions() as usize];
    let mut last_is_marker = vec![false; hit_partitions() as usize];
    let mut c = ChangelogTopic::default();
    let deadline = Instant::now() + limit;
    while open.iter().any(|o| *o) {
        assert!(
            Instant::now() < deadline,
            "the changelog not read to its fences within {limit:?}: {c:?}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("changelog read");
        let p = m.partition() as usize;
        match m.key() {
            Some(FENCE_KEY) => {
                if m.payload() == Some(token.as_bytes()) {
                    open[p] = false;
                }
            }
            _ if !open[p] => {}
            Some(MARKER_KEY) => {
                c.markers += 1;
                c.largest_marker = c.largest_marker.max(m.payload_len());
                last_is_marker[p] = true;
            }
            _ => {
                c.records += 1;
                c.state_bytes += m.payload_len() as u64;
                last_is_marker[p] = false;
            }
        }
    }
    c.ending_in_marker = last_is_marker.iter().filter(|m| **m).count();
    c.read = started.elapsed();
    c
}
