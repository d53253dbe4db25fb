//! Service: `credtrail run`, the Kafka consumer group that feeds the engine and produces alerts.
//!
//! ```text
//!  intake ──items──> workers (N) ──decoded──> sequence ──hits, watermarks, reports──> shards (N)
//!  (consumer,        decode+match             input order, one clock                  state
//!   batches per      per topic profile        per partition, idle,                      │
//!   partition,                                replay decisions                          │
//!   pause/resume) <── commit points ── delivery <── dead letters, barriers ────────┘ findings,
//!                                      (merge, OCSF, producer, ledger)  <──── holds ───┘ progress
//! ```
//!
//! Threads, not tasks: the consumer is polled in batches on its own thread, workers and shards are
//! the replay's, and one delivery thread owns the producer, its acknowledgements and the
//! [`ledger::Ledger`] that decides commits. Every channel is bounded; when the engine falls
//! behind, the intake pauses its partitions instead of queueing without bound.
//!
//! Controls travel in the same ordered stream as batches (`seq`), so an assignment, a revocation
//! or a commit barrier is seen by the sequencer exactly between the batches it separates. A
//! barrier makes every shard report the oldest input it still needs and the delivery thread turn
//! that into commit points (see [`ledger`] for the rule and what a restart replays).
//!
//! A rule reload ([`reload`]) is such a control too: batches cut before it are matched with the
//! old rule set, batches after it with the new one, and the sequencer and shards carry over the
//! buffered hits and state of the rules that did not change. The live inventory ([`inventory`])
//! swaps the shards' scorer between two messages.

pub mod checkpoint;
pub mod commit;
pub mod consumer;
pub mod delivery;
pub mod intake;
pub mod inventory;
pub mod ledger;
pub mod reload;
pub mod sequence;
pub mod shard;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::config::ServiceConfig;
use crate::correlate::{Finding, ShardLimits};
use crate::deadletter::DeadLetter;
use crate::decode::{MintLifetimes, ProfileKind};
use crate::identity::{LineageLimits, Resolver};
use crate::input::{Batch, Sources};
use crate::matcher::{RuleSet, TargetMap};
use crate::metrics::Metrics;
use crate::pipeline::worker::{DecodedBatch, Worker};
use crate::score::Assessor;
use crate::time::{EventTime, Span};
use ledger::{CommitPoint, Resume, SequencedEnd};

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot create the Kafka {role}: {source}")]
    Client {
        role: &'static str,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe {
        topics: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("the alert producer failed fatally: {0}")]
    ProducerFatal(String),
    #[error("cannot render an alert: {0}")]
    Render(#[from] serde_json::Error),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error("shutdown step `{step}` did not finish within {limit:?}")]
    Timeout { step: &'static str, limit: Duration },
}

/// A handle to ask a running service to stop or reload its rules; cheap to clone.
#[derive(Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    /// A compiled rule set waiting for the intake to swap it in (the latest offer wins).
    rules: Arc<Mutex<Option<Arc<RuleSet>>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stopping", &self.stopping())
            .finish_non_exhaustive()
    }
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// Asks for a graceful stop (what SIGTERM does).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Offers a new rule set (what SIGHUP does once it compiled); the intake swaps it in.
    pub fn offer_rules(&self, rules: Arc<RuleSet>) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = Some(rules);
    }

    /// The rule set offered since the last call, if any.
    pub fn take_rules(&self) -> Option<Arc<RuleSet>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What a finished run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub events: u64,
    pub alerts_delivered: u64,
    pub alerts_suppressed: u64,
    pub dead_letters: u64,
    /// The last offsets committed, per (topic, partition).
    pub committed: Vec<(String, i32, i64)>,
}

/// A change in the assignment or a request, ordered with the batches around it.
#[derive(Clone, Debug)]
pub enum Signal {
    /// A partition was assigned; its batches follow. `start` is the committed offset (where
    /// reading resumes), if any.
    Assign {
        source: u32,
        lateness: Span,
        start: Option<u64>,
        resume: Option<Resume>,
    },
    /// Partitions were revoked; none of their batches follow.
    Revoke { sources: Vec<u32> },
    /// A partition went quiet for the idle timeout (`true`) or spoke again (`false`).
    Idle { source: u32, idle: bool },
    /// Report what may be committed; `drain`: wait for every produced message's acknowledgement
    /// first (rebalance, shutdown).
    Barrier { epoch: u64, drain: bool },
    /// Batches after this one are matched with this rule set; shards carry state over.
    Reload(NewRules),
}

/// A reloaded rule set travelling with the stream.
#[derive(Clone)]
pub struct NewRules(pub Arc<RuleSet>);

impl std::fmt::Debug for NewRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NewRules({} detections, {} correlations)",
            self.0.detections.len(),
            self.0.correlations.len()
        )
    }
}

/// What the intake hands to workers.
pub enum Item {
    Batch {
        seq: u64,
        batch: Batch,
        profile: Option<ProfileKind>,
        /// The rule set in force when the batch was cut.
        rules: Arc<RuleSet>,
        arrived: Instant,
    },
    Signal {
        seq: u64,
        signal: Signal,
    },
}

/// What workers hand to the sequencer.
pub enum Decoded {
    Batch {
        seq: u64,
        decoded: DecodedBatch,
        arrived: Instant,
    },
    Signal {
        seq: u64,
        signal: Signal,
    },
}

impl Decoded {
    fn seq(&self) -> u64 {
        match self {
            Decoded::Batch { seq, .. } | Decoded::Signal { seq, .. } => *seq,
        }
    }
}

/// What shards receive.
pub enum ShardMsg {
    Hits(Vec<crate::correlate::Hit>),
    Watermark(EventTime),
    /// Report held positions for a barrier.
    Report(u64),
    /// Swap in a reloaded rule set, carrying over the state `map` says continues.
    Reload(Arc<RuleSet>, Arc<TargetMap>),
}

/// What the delivery thread receives.
pub enum DeliveryMsg {
    /// A shard's findings and the rule set that decided them.
    Findings(usize, Arc<RuleSet>, Vec<Finding>),
    Progress(usize, EventTime),
    DeadLetter {
        letter: DeadLetter,
        /// The event is replayed after a restart: its dead letter was produced before.
        replayed: bool,
    },
    Assign {
        source: u32,
        committed: Option<u64>,
        resume: Option<Resume>,
    },
    Revoke(Vec<u32>),
    /// A barrier's sequenced ends; `shards` reports follow.
    Barrier {
        epoch: u64,
        drain: bool,
        ends: Vec<SequencedEnd>,
    },
    Holds {
        epoch: u64,
        holds: std::collections::HashMap<u32, u64>,
        states: u64,
        state_bytes: u64,
    },
    /// When the last event of a batch was read, for the latency histogram.
    Arrival {
        source: u32,
        last_offset: u64,
        arrived: Instant,
    },
}

/// Commit points posted by the delivery thread for the intake; never blocks the poster (latest
/// point per partition wins, offsets only grow).
#[derive(Debug, Default)]
pub struct Mailbox {
    inner: Mutex<MailboxInner>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct MailboxInner {
    points: std::collections::BTreeMap<u32, CommitPoint>,
    done_epoch: Option<u64>,
}

impl Mailbox {
    pub fn post(&self, epoch: u64, points: Vec<CommitPoint>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for p in points {
            g.points.insert(p.source, p);
        }
        g.done_epoch = Some(g.done_epoch.map_or(epoch, |e| e.max(epoch)));
        self.ready.notify_all();
    }

    /// Takes the posted points.
    pub fn take(&self) -> Vec<CommitPoint> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut g.points).into_values().collect()
    }

    /// Waits until `epoch` is answered or `limit` passes; returns whether it was answered.
    pub fn wait(&self, epoch: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if g.done_epoch.is_some_and(|e| e >= epoch) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = match self.ready.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// Runs the service until `control` asks it to stop (or a fatal error). Blocks.
pub fn run(
    config: &ServiceConfig,
    rules: Arc<RuleSet>,
    assessor: Arc<Assessor>,
    metrics: Arc<Metrics>,
    control: &Control,
) -> Result<RunReport, ServiceError> {
    let shards = config.engine.shards;
    let workers = config.engine.workers;
    let sources = Arc::new(RwLock::new(Sources::new()));
    let mailbox = Arc::new(Mailbox::default());
    let (item_tx, item_rx) = bounded::<Item>(config.engine.queue_batches);
    let (decoded_tx, decoded_rx) = bounded::<Decoded>(workers * 2 + 2);
    let (recycle_tx, recycle_rx) = bounded::<Batch>(config.engine.queue_batches + workers * 2);
    let (delivery_tx, delivery_rx) = bounded::<DeliveryMsg>(1024);
    let shard_channels: Vec<_> = (0..shards).map(|_| bounded::<ShardMsg>(256)).collect();

    let live = Arc::new(inventory::LiveAssessor::new(assessor));
    Metrics::add(&metrics.inventory_versions, 1);
    let feed = match &config.scoring.inventory_topic {
        None => None,
        Some(topic) => {
            let mut feed =
                inventory::InventoryFeed::new(config, topic, live.clone(), metrics.clone())?;
            feed.catch_up(inventory::CATCH_UP_LIMIT);
            Some(feed)
        }
    };
    let feed_stop = AtomicBool::new(false);
    let producer = delivery::create_producer(config)?;
    let consumer = consumer::create_consumer(config, metrics.clone())?;
    let checkpoints = checkpoint::Checkpoints::new(config)?;

    thread::scope(|s| -> Result<RunReport, ServiceError> {
        let worker_handles: Vec<_> = (0..workers)
            .map(|i| {
                let (rules, rx, tx, metrics) = (
                    rules.clone(),
                    item_rx.clone(),
                    decoded_tx.clone(),
                    metrics.clone(),
                );
                thread::Builder::new()
                    .name(format!("credtrail-worker-{i}"))
                    .spawn_scoped(s, move || run_worker(rules, rx, tx, &metrics))
            })
            .collect::<Result<_, _>>()
            .map_err(|_| ServiceError::Panicked("worker"))?;
        drop(decoded_tx);
        drop(item_rx);

        let shard_handles: Vec<_> = shard_channels
            .iter()
            .enumerate()
            .map(|(i, (_, rx))| {
                let (rules, rx, tx) = (rules.clone(), rx.clone(), delivery_tx.clone());
                let assessor = live.clone();
                thread::Builder::new()
                    .name(format!("credtrail-shard-{i}"))
                    .spawn_scoped(s, move || {
                        shard::run(i, rules, ShardLimits::default(), assessor, rx, tx)
                    })
            })
            .collect::<Result<_, _>>()
            .map_err(|_| ServiceError::Panicked("shard"))?;

        let sequence_handle = {
            let senders: Vec<_> = shard_channels.iter().map(|(tx, _)| tx.clone()).collect();
            let (tx, metrics) = (delivery_tx.clone(), metrics.clone());
            // Credentials minted in one partition are followed in the others this instance
            // reads; hits are routed to shards once their identity is resolved.
            let routes = rules.correlations.iter().map(|c| c.route.clone()).collect();
            let rules = rules.clone();
            let resolver = Resolver::new(
                LineageLimits::default(),
                ShardLimits::default().max_pending,
                routes,
            );
            thread::Builder::new()
                .name("credtrail-sequence".into())
                .spawn_scoped(s, move || {
                    sequence::run(
                        decoded_rx,
                        senders,
                        tx,
                        recycle_tx,
                        rules,
                        resolver,
                        Span::from_millis(config.kafka.lineage_hold.as_millis() as i64),
                        &metrics,
                    )
                })
                .map_err(|_| ServiceError::Panicked("sequence"))?
        };
        drop(shard_channels);
        drop(delivery_tx);

        let delivery_handle = {
            let ctx = delivery::Context {
                config,
                sources: sources.clone(),
                metrics: metrics.clone(),
                mailbox: mailbox.clone(),
                shards,
            };
            thread::Builder::new()
                .name("credtrail-delivery".into())
                .spawn_scoped(s, move || delivery::run(ctx, &producer, delivery_rx))
                .map_err(|_| ServiceError::Panicked("delivery"))?
        };

        let feed_handle = match feed {
            None => None,
            Some(feed) => Some(
                thread::Builder::new()
                    .name("credtrail-inventory".into())
                    .spawn_scoped(s, || feed.run(&feed_stop))
                    .map_err(|_| ServiceError::Panicked("inventory"))?,
            ),
        };

        // The intake runs on this thread; it returns after the final drain and commit and
        // drops `item_tx`, which winds the other threads down in order.
        let intake_result = intake::run(intake::Context {
            config,
            consumer,
            items: item_tx,
            recycle: recycle_rx,
            sources: sources.clone(),
            mailbox: mailbox.clone(),
            metrics: metrics.clone(),
            control,
            checkpoints,
            rules: rules.clone(),
        });

        let deadline = Instant::now() + config.shutdown.step(crate::config::ShutdownStep::Close);
        feed_stop.store(true, Ordering::Release);
        if let Some(h) = feed_handle {
            join_by(h, deadline, "inventory")?;
        }
        for h in worker_handles {
            join_by(h, deadline, "worker")?;
        }
        join_by(sequence_handle, deadline, "sequence")?;
        for h in shard_handles {
            join_by(h, deadline, "shard")?;
        }
        let delivered = join_by(delivery_handle, deadline, "delivery")??;
        let committed = intake_result?;
        Ok(RunReport {
            events: metrics.events_in.load(Ordering::Relaxed),
            alerts_delivered: delivered.alerts,
            alerts_suppressed: delivered.suppressed,
            dead_letters: delivered.dead_letters,
            committed,
        })
    })
}

/// Joins a scoped thread, giving up (with an error) at `deadline`.
fn join_by<T>(
    h: thread::ScopedJoinHandle<'_, T>,
    deadline: Instant,
    name: &'static str,
) -> Result<T, ServiceError> {
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return Err(ServiceError::Timeout {
                step: name,
                limit: Duration::ZERO,
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
    h.join().map_err(|_| ServiceError::Panicked(name))
}

/// A worker: batches decoded and matched with their topic's profile; signals passed through.
fn run_worker(
    rules: Arc<RuleSet>,
    rx: crossbeam_channel::Receiver<Item>,
    tx: crossbeam_channel::Sender<Decoded>,
    metrics: &Metrics,
) {
    let mut rules = rules;
    let mut w = Worker::new(rules.clone(), MintLifetimes::default());
    let mut reported = vec![0u64; rules.detections.len()];
    for item in rx.iter() {
        let out = match item {
            Item::Batch {
                seq,
                batch,
                profile,
                rules: batch_rules,
                arrived,
            } => {
                if !Arc::ptr_eq(&batch_rules, &rules) {
                    // A reload: this batch and the next ones use the new set.
                    rules = batch_rules;
                    w = Worker::new(rules.clone(), MintLifetimes::default());
                    reported = vec![0u64; rules.detections.len()];
                }
                let decoded = w.process_as(batch, profile);
                for (d, n) in w.stats.matches.iter().enumerate() {
                    if *n > reported[d] {
                        metrics
                            .rule_matches(&rules.detection_meta(d as u32).title, n - reported[d]);
                        reported[d] = *n;
                    }
                }
                Decoded::Batch {
                    seq,
                    decoded,
                    arrived,
                }
            }
            Item::Signal { seq, signal } => Decoded::Signal { seq, signal },
        };
        if tx.send(out).is_err() {
            break;
        }
    }
}
