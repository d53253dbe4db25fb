//! Metrics: the service's counters and gauges, rendered in the Prometheus text format, and the
//! HTTP endpoint serving them with `/livez` and `/readyz`.
//!
//! Counters are atomics written by the thread that owns the event (no lock on the hot path);
//! labelled series with a handful of labels (dead-letter reasons, partitions) sit behind a mutex
//! touched once per batch or per statistics report. The endpoint runs hyper on a single-threaded
//! tokio runtime on its own thread: hyper is the maintained HTTP implementation of the tokio
//! stack, and a current-thread runtime keeps the service's thread model (dedicated OS threads for
//! the pipeline) untouched.
//!
//! `/metrics` is sensitive: it names every rule and how often it matched, an oracle of which
//! detections exist and whether an attacker's own actions tripped them. Serve it only where
//! the scraper can reach it (a loopback or pod address, a NetworkPolicy); probes can have a
//! listener of their own ([`Paths::Probes`]).

mod endpoint;
mod render;

pub use endpoint::{EndpointLimits, Paths, bind, respond, serve};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Upper bounds of the event-to-alert latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0,
];

/// The heartbeats of the pipeline threads. A thread beats each time it handles a message; in
/// the service every thread handles one at least every commit interval (the commit barrier
/// travels through all of them), so a thread silent for the liveness timeout is stuck and
/// `/livez` fails naming it. A timeout of zero (a replay) checks nothing.
#[derive(Debug, Default)]
pub struct Heartbeats {
    threads: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    /// Milliseconds of silence after which a thread counts as stuck; 0: never.
    pub timeout_ms: AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
}

/// One thread's heartbeat; cheap to beat (one relaxed store).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    last_ms: Arc<AtomicU64>,
    epoch: std::time::Instant,
}

impl Heartbeat {
    pub fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl Heartbeats {
    fn epoch(&self) -> std::time::Instant {
        *self.epoch.get_or_init(std::time::Instant::now)
    }

    /// Registers thread `name` (beating now).
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let epoch = self.epoch();
        let last_ms = Arc::new(AtomicU64::new(epoch.elapsed().as_millis() as u64));
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.into(), last_ms.clone()));
        Heartbeat { last_ms, epoch }
    }

    /// Beats for thread `name` from code that has no [`Heartbeat`] at hand: a wait that is
    /// progress, not a hang (the output thread waiting for room in the producer's queue while
    /// the broker is away must not be called stuck).
    pub fn beat_named(&self, name: &str) {
        let now = self.epoch().elapsed().as_millis() as u64;
        for (n, last) in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if n == name {
                last.store(now, Ordering::Relaxed);
            }
        }
    }

    /// The threads silent for longer than the timeout.
    pub fn stuck(&self) -> Vec<String> {
        let timeout = self.timeout_ms.load(Ordering::Relaxed);
        if timeout == 0 {
            return Vec::new();
        }
        let now = self.epoch().elapsed().as_millis() as u64;
        (self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter())
        .filter(|(_, last)| now.saturating_sub(last.load(Ordering::Relaxed)) > timeout)
        .map(|(name, _)| name.clone())
        .collect()
    }
}

/// Every series the service exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_in: AtomicU64,
    pub late_events: AtomicU64,
    /// Events too far ahead of their reference (wall clock, recent median), dead-lettered.
    pub future_events: AtomicU64,
    pub alerts_delivered: AtomicU64,
    /// Alerts decided again by a replay after a restart and not produced a second time.
    pub alerts_suppressed: AtomicU64,
    pub produce_retries: AtomicU64,
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    pub rule_reloads: AtomicU64,
    pub rule_reload_failures: AtomicU64,
    /// A cluster's stage 1: hits written to the hits topic.
    pub cluster_hits_out: AtomicU64,
    /// A cluster's stage 2: records read from the hits topic (not counted as events).
    pub cluster_records_in: AtomicU64,
    /// A cluster's stage 2: hits dropped as copies a restarted stage 1 wrote again.
    pub cluster_copies: AtomicU64,
    /// Stage 2's changelog: state records and tombstones written, markers written.
    pub changelog_records: AtomicU64,
    pub changelog_markers: AtomicU64,
    /// Hits partitions restored from their changelog on assignment, their states, and the
    /// hit records the restore spared replaying.
    pub changelog_restores: AtomicU64,
    pub changelog_restored_states: AtomicU64,
    pub changelog_skipped_records: AtomicU64,
    /// Hits partitions whose changelog could not be restored from (replayed from the commit).
    pub changelog_unusable: AtomicU64,
    /// Endpoint connections closed to make room under the connection cap.
    pub http_connections_evicted: AtomicU64,
    /// Long texts of fields without a skip the workers' scan memos answered, and walked.
    pub scan_memo_hits: AtomicU64,
    pub scan_memo_walks: AtomicU64,
    /// Correlation states evicted under the memory budget (cumulative, from the shards).
    pub state_evicted: AtomicU64,
    /// Credential lineage links evicted under the memory budget (cumulative).
    pub lineage_evicted: AtomicU64,
    /// When evictions were last logged (ms since the epoch) and the totals then.
    evictions_logged: Mutex<(u64, u64, u64)>,
    /// Inventory records applied from the inventory topic, and refused.
    pub inventory_records: AtomicU64,
    pub inventory_rejected: AtomicU64,
    /// Inventory versions published to the shards (1 at start).
    pub inventory_versions: AtomicU64,
    /// The gauges of the engine reading the input topics (the one engine, or a cluster's
    /// stage 1).
    pub input: Gauges,
    /// The gauges of a cluster's stage 2, the engine correlating the hits topic.
    pub correlate: Gauges,
    /// Set when this instance runs a cluster's two engines: gauges are exported per stage.
    pub cluster: AtomicBool,
    /// Set when the service found its engine or a client dead: `/livez` fails from then on.
    pub failed: AtomicBool,
    /// The pipeline threads' heartbeats, for `/livez`.
    pub heartbeats: Heartbeats,
    latency_counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    labelled: Mutex<Labelled>,
}

#[derive(Debug, Default)]
struct Labelled {
    dead_letters: BTreeMap<String, u64>,
    rule_matches: BTreeMap<String, u64>,
    alerts_by_rule: BTreeMap<String, u64>,
    consumer_lag: BTreeMap<(String, i32), i64>,
}

/// Which engine of an instance a gauge describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Part {
    /// The engine reading the input topics: the one engine, or a cluster's stage 1.
    #[default]
    Input,
    /// A cluster's stage 2, correlating the hits topic.
    Correlate,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Input => "input",
            Part::Correlate => "correlate",
        }
    }
}

/// What one engine of the instance stands at. A cluster member runs two engines, each
/// writing its own set: with one set for both, whichever wrote last won (stage 1's forwarder
/// reported no state and hid stage 2's, their watermarks alternated).
#[derive(Debug, Default)]
pub struct Gauges {
    pub state_groups: AtomicU64,
    pub state_bytes: AtomicU64,
    pub partitions_assigned: AtomicI64,
    pub partitions_paused: AtomicI64,
    /// Engine watermark, milliseconds since the epoch (0 before the first event).
    pub watermark_ms: AtomicI64,
    pub ready: AtomicBool,
    pub draining: AtomicBool,
    /// Partitions whose watermark is engine time (what holds event time back).
    time_holders: Mutex<Vec<(String, i32)>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes the cumulative eviction totals of a completed commit barrier into the counters,
    /// and logs a warning when they grew: at most once a minute, with what was evicted since
    /// the last line (a flood evicts millions; the log says so once, the counters say how
    /// many).
    pub fn note_evictions(&self, states: u64, links: u64) {
        self.state_evicted.store(states, Ordering::Relaxed);
        self.lineage_evicted.store(links, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let Ok(mut logged) = self.evictions_logged.lock() else {
            return;
        };
        let (at, s0, l0) = *logged;
        if (states > s0 || links > l0) && now.saturating_sub(at) >= 60_000 {
            tracing::warn!(
                states_evicted = states - s0,
                links_evicted = links - l0,
                "memory budget reached: evicting correlation states (lowest rank of the rule holding the most) and unused lineage links; raise engine.memory_budget if this persists"
            );
            *logged = (now, states, links);
        }
    }

    /// Records one event-to-alert latency.
    pub fn observe_latency(&self, seconds: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_counts[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn with_labels(&self, f: impl FnOnce(&mut Labelled)) {
        // A poisoned lock only means another thread panicked mid-update of a counter map; the
        // counts are still usable.
        let mut g = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
    }

    pub fn dead_letter(&self, reason: &str) {
        self.with_labels(|l| *l.dead_letters.entry(reason.to_string()).or_insert(0) += 1);
    }

    pub fn rule_matches(&self, rule: &str, n: u64) {
        self.with_labels(|l| *l.rule_matches.entry(rule.to_string()).or_insert(0) += n);
    }

    pub fn alert_delivered(&self, rule: &str) {
        Metrics::add(&self.alerts_delivered, 1);
        self.with_labels(|l| *l.alerts_by_rule.entry(rule.to_string()).or_insert(0) += 1);
    }

    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.with_labels(|l| {
            l.consumer_lag.insert((topic.to_string(), partition), lag);
        });
    }

    /// The gauges of one engine of the instance.
    pub fn gauges(&self, part: Part) -> &Gauges {
        match part {
            Part::Input => &self.input,
            Part::Correlate => &self.correlate,
        }
    }

    /// The partitions that now hold `part`'s event time back (their watermark is its own).
    pub fn set_time_holders(&self, part: Part, holders: Vec<(String, i32)>) {
        let mut h = self
            .gauges(part)
            .time_holders
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *h = holders;
    }

    pub fn forget_partition(&self, topic: &str, partition: i32) {
        self.with_labels(|l| {
            l.consumer_lag.remove(&(topic.to_string(), partition));
        });
    }

    /// Live: what `/livez` answers 200 for (the service has not failed, no pipeline thread is
    /// stuck); exported as `credtrail_live` so an alert can see a failure the kubelet restarts.
    pub fn is_live(&self) -> bool {
        !self.failed.load(Ordering::Relaxed) && self.heartbeats.stuck().is_empty()
    }

    /// Ready: input partitions assigned, neither engine draining, not failed.
    pub fn is_ready(&self) -> bool {
        self.input.ready.load(Ordering::Relaxed)
            && !self.input.draining.load(Ordering::Relaxed)
            && !self.correlate.draining.load(Ordering::Relaxed)
            && !self.failed.load(Ordering::Relaxed)
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline thread that stopped handling messages is named by `/livez`, which fails.
    #[test]
    fn livez_fails_naming_a_thread_whose_heartbeat_stopped() {
        let m = Metrics::default();
        let shard = m.heartbeats.register("shard-0");
        let output = m.heartbeats.register("output");
        assert_eq!(respond(&m, "/livez").0, 200, "no timeout: nothing checked");
        m.heartbeats.timeout_ms.store(1, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(20));
        output.beat();
        let (code, _, body) = respond(&m, "/livez");
        assert_eq!(code, 503);
        assert!(
            body.contains("shard-0") && !body.contains("output"),
            "{body}"
        );
        assert!(m.render().contains("credtrail_live 0"));
        shard.beat();
        assert_eq!(respond(&m, "/livez").0, 200);
        assert!(m.render().contains("credtrail_live 1"));
    }

    #[test]
    fn render_is_prometheus_text_with_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_latency(0.004);
        m.observe_latency(0.015);
        m.observe_latency(1000.0);
        m.dead_letter("invalid_json");
        m.consumer_lag("ct", 0, 12);
        let text = m.render();
        assert!(
            text.contains("credtrail_event_to_alert_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("credtrail_event_to_alert_seconds_bucket{le=\"0.02\"} 2"));
        assert!(text.contains("credtrail_event_to_alert_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("credtrail_event_to_alert_seconds_count 3"));
        assert!(text.contains("credtrail_dead_letters_total{reason=\"invalid_json\"} 1"));
        assert!(text.contains("credtrail_consumer_lag{topic=\"ct\",partition=\"0\"} 12"));
    }

    /// Regression: a cluster member's two engines wrote one set of gauges, so the forwarder's
    /// empty state report hid stage 2's states and the watermarks alternated.
    #[test]
    fn a_cluster_members_gauges_are_exported_per_stage() {
        let m = Metrics::default();
        m.cluster.store(true, Ordering::Relaxed);
        m.input.partitions_assigned.store(6, Ordering::Relaxed);
        m.correlate.partitions_assigned.store(4, Ordering::Relaxed);
        m.correlate.state_groups.store(5, Ordering::Relaxed);
        m.set_time_holders(Part::Correlate, vec![("hits".into(), 2)]);
        let text = m.render();
        assert!(
            text.contains("credtrail_partitions_assigned{stage=\"input\"} 6\n"),
            "{text}"
        );
        assert!(text.contains("credtrail_partitions_assigned{stage=\"correlate\"} 4\n"));
        assert!(text.contains("credtrail_state_groups{stage=\"input\"} 0\n"));
        assert!(text.contains("credtrail_state_groups{stage=\"correlate\"} 5\n"));
        assert!(text.contains(
            "credtrail_partition_holds_event_time{topic=\"hits\",partition=\"2\",stage=\"correlate\"} 1"
        ));
        // Each family once: one HELP line per metric name.
        assert_eq!(text.matches("# HELP credtrail_state_groups ").count(), 1);
        // One engine: no label.
        let one = Metrics::default();
        one.input.partitions_assigned.store(3, Ordering::Relaxed);
        assert!(one.render().contains("\ncredtrail_partitions_assigned 3\n"));
    }

    #[test]
    fn readyz_follows_assignment_and_draining() {
        let m = Metrics::default();
        assert_eq!(respond(&m, "/readyz").0, 503);
        m.input.ready.store(true, Ordering::Relaxed);
        assert_eq!(respond(&m, "/readyz").0, 200);
        m.input.draining.store(true, Ordering::Relaxed);
        assert_eq!(respond(&m, "/readyz").0, 503);
        assert_eq!(respond(&m, "/livez").0, 200);
        assert_eq!(respond(&m, "/nope").0, 404);
    }

    #[test]
    fn evictions_are_counted_and_logged_at_most_once_a_minute() {
        let m = Metrics::default();
        m.note_evictions(0, 0);
        assert_eq!(
            *m.evictions_logged.lock().unwrap(),
            (0, 0, 0),
            "nothing to say"
        );
        m.note_evictions(1_000, 7);
        let (at, states, links) = *m.evictions_logged.lock().unwrap();
        assert!(at > 0 && states == 1_000 && links == 7, "logged once");
        m.note_evictions(5_000, 9);
        assert_eq!(
            m.evictions_logged.lock().unwrap().1,
            1_000,
            "not again within the minute"
        );
        let text = m.render();
        assert!(
            text.contains("credtrail_state_evicted_total 5000"),
            "{text}"
        );
        assert!(
            text.contains("credtrail_lineage_links_evicted_total 9"),
            "{text}"
        );
    }
}
