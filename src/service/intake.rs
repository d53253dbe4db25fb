//! Intake: the consumer thread. Polls the input topics in one consumer group
//! (cooperative-sticky), cuts messages into per-partition batches, announces assignments,
//! revocations and idle partitions in the same ordered stream, pauses partitions when the engine
//! falls behind, and commits what the delivery thread says may be committed.
//!
//! Rebalance: a revocation is drained inside librdkafka's rebalance callback, before the
//! partitions are given up: their partial batches are sent, a draining barrier waits for every
//! alert and dead letter to be acknowledged, and the resulting offsets are committed
//! synchronously. A graceful stop does the same for every partition, then leaves the group.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;

use super::checkpoint::Checkpoints;
use super::commit::Committer;
use super::consumer::InputConsumer;
use super::ledger::CommitPoint;
use super::{Control, Item, Mailbox, NewRules, ServiceError, Signal};

mod rebalance;
use crate::config::{InputTopic, ServiceConfig, ShutdownStep};
use crate::input::{Batch, Sources};
use crate::matcher::RuleSet;
use crate::metrics::Metrics;

/// Bytes of a batch beyond which it is sent even if it has fewer than `batch_events` events.
const BATCH_BYTES: usize = 1 << 20;

/// How often the engine is told the wall clock while every partition is idle.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// What the intake thread needs.
pub struct Context<'a> {
    pub config: &'a ServiceConfig,
    pub consumer: InputConsumer,
    pub items: Sender<Item>,
    pub recycle: Receiver<Batch>,
    pub sources: Arc<RwLock<Sources>>,
    pub mailbox: Arc<Mailbox>,
    pub metrics: Arc<Metrics>,
    pub control: &'a Control,
    pub checkpoints: Checkpoints,
    /// The rule set batches are matched with until a reload.
    pub rules: Arc<RuleSet>,
    /// Stage 1 sharing its lineage: what the lineage topic says, to pass on in order.
    pub lineage: Option<crossbeam_channel::Receiver<super::cluster::LineageUpdate>>,
    /// Which of the instance's gauges this engine writes.
    pub part: crate::metrics::Part,
    /// Stage 2 with a changelog: where assigned partitions are restored from.
    pub changelog: Option<ChangelogSource>,
}

/// Stage 2's changelog as the intake reads it on assignment.
#[derive(Clone, Debug)]
pub struct ChangelogSource {
    pub topic: String,
    /// Most bytes of state one partition's changelog may hold to be restored.
    pub limit: u64,
    /// How long reading the assigned partitions' changelogs may take.
    pub read_limit: Duration,
}

struct PartitionIntake {
    topic: String,
    partition: i32,
    format: crate::pipeline::Format,
    batch: Batch,
    /// Cut the batch before this offset (the restored sequenced end).
    cut_at: Option<u64>,
    last_message: Instant,
    idle: bool,
}

/// The intake's mutable state, shared with the rebalance callback.
pub struct Intake {
    items: Sender<Item>,
    recycle: Receiver<Batch>,
    sources: Arc<RwLock<Sources>>,
    mailbox: Arc<Mailbox>,
    metrics: Arc<Metrics>,
    inputs: Vec<InputTopic>,
    batch_events: usize,
    idle_timeout: Duration,
    drain_limit: Duration,
    parts: HashMap<u32, PartitionIntake>,
    /// Items that did not fit the queue, in order; while non-empty, partitions are paused.
    held: VecDeque<Item>,
    paused: bool,
    seq: u64,
    epoch: u64,
    committer: Committer,
    /// Bound of one checkpoint read or committed-offsets lookup.
    io_limit: Duration,
    rules: Arc<RuleSet>,
    /// When the engine was last told the wall clock while every partition was idle.
    last_tick: Instant,
    /// The engine's queue closed under us.
    gone: bool,
    /// Which of the instance's gauges this engine writes.
    part: crate::metrics::Part,
    changelog: Option<ChangelogSource>,
    config: ServiceConfig,
}

impl Intake {
    /// The gauges of the engine this intake feeds.
    fn gauges(&self) -> &crate::metrics::Gauges {
        self.metrics.gauges(self.part)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }

    /// Queues an item after anything held; pauses input if the queue is full.
    fn push(&mut self, item: Item) {
        self.held.push_back(item);
        self.send_held();
    }

    /// Sends held items without blocking; returns whether nothing is held any more.
    fn send_held(&mut self) -> bool {
        while let Some(item) = self.held.pop_front() {
            match self.items.try_send(item) {
                Ok(()) => {}
                Err(TrySendError::Full(item)) => {
                    self.held.push_front(item);
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.engine_gone();
                    return true;
                }
            }
        }
        true
    }

    /// Sends held items, blocking up to `limit`.
    fn send_held_blocking(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(item) = self.held.pop_front() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.items.send_timeout(item, left) {
                Ok(()) => {}
                Err(crossbeam_channel::SendTimeoutError::Timeout(item)) => {
                    self.held.push_front(item);
                    return false;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                    self.engine_gone();
                    return true;
                }
            }
        }
        true
    }

    /// The engine's queue is closed: a pipeline thread ended. Nothing read from here on could
    /// be processed, so the service must stop, loudly, instead of polling and discarding.
    fn engine_gone(&mut self) {
        self.held.clear();
        if !self.gone {
            self.gone = true;
            self.metrics.failed.store(true, Ordering::Relaxed);
            tracing::error!("the engine stopped (a pipeline thread ended): stopping the service");
        }
    }

    fn signal(&mut self, signal: Signal) {
        let seq = self.next_seq();
        self.push(Item::Signal { seq, signal });
    }

    fn flush(&mut self, source: u32) {
        let Some(p) = self.parts.get_mut(&source) else {
            return;
        };
        if p.batch.lines.is_empty() {
            return;
        }
        let mut fresh = self.recycle.try_recv().unwrap_or_default();
        fresh.buf.clear();
        fresh.lines.clear();
        fresh.source = source;
        fresh.source_done = false;
        let mut batch = std::mem::replace(&mut p.batch, fresh);
        batch.seal();
        let format = p.format;
        let seq = self.next_seq();
        let rules = self.rules.clone();
        self.push(Item::Batch {
            seq,
            batch,
            format,
            rules,
            arrived: Instant::now(),
        });
    }

    /// Swaps in a reloaded rule set at this point of the stream: what was read before is
    /// matched with the old set, what is read after with the new one.
    fn reload(&mut self, rules: Arc<RuleSet>) {
        self.flush_all();
        self.rules = rules.clone();
        self.signal(Signal::Reload(NewRules(rules)));
    }

    fn flush_all(&mut self) {
        let mut ids: Vec<u32> = self.parts.keys().copied().collect();
        ids.sort_unstable();
        for s in ids {
            self.flush(s);
        }
    }

    /// Sends every partial batch and a draining barrier, and waits for its commit points.
    fn drain(&mut self) -> Vec<CommitPoint> {
        self.flush_all();
        self.epoch += 1;
        let epoch = self.epoch;
        self.signal(Signal::Barrier { epoch, drain: true });
        if !self.send_held_blocking(self.drain_limit) {
            tracing::error!(limit = ?self.drain_limit, "drain: the engine did not take the remaining batches in time");
        }
        if !self.mailbox.wait(epoch, self.drain_limit) {
            tracing::error!(limit = ?self.drain_limit, "drain: no commit point in time; committing what is known");
        }
        self.mailbox.take()
    }

    fn source_of(&self, topic: &str, partition: i32) -> Option<u32> {
        self.parts
            .iter()
            .find(|(_, p)| p.topic == topic && p.partition == partition)
            .map(|(s, _)| *s)
    }

    /// Commits the points of partitions still assigned, with their replay metadata.
    fn commit(&mut self, consumer: &InputConsumer, points: Vec<CommitPoint>, mode: CommitMode) {
        let parts = &self.parts;
        self.committer.commit(consumer, points, mode, |s| {
            parts.get(&s).map(|p| (p.topic.as_str(), p.partition))
        });
    }

    fn set_paused(&mut self, consumer: &InputConsumer, paused: bool) {
        if self.paused == paused {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for p in self.parts.values() {
            tpl.add_partition(&p.topic, p.partition);
        }
        let result = if paused {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        match result {
            Ok(()) => {
                self.paused = paused;
                let n = if paused { self.parts.len() as i64 } else { 0 };
                self.gauges().partitions_paused.store(n, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, paused, "cannot pause or resume partitions"),
        }
    }

    fn message(&mut self, topic: &str, partition: i32, offset: i64, payload: &[u8]) {
        let Some(source) = self.source_of(topic, partition) else {
            return;
        };
        let Ok(offset) = u64::try_from(offset) else {
            return;
        };
        let resumed = {
            let Some(p) = self.parts.get_mut(&source) else {
                return;
            };
            p.last_message = Instant::now();
            std::mem::replace(&mut p.idle, false)
        };
        if resumed {
            self.signal(Signal::Idle {
                source,
                idle: false,
            });
        }
        let cut = self
            .parts
            .get(&source)
            .and_then(|p| p.cut_at)
            .is_some_and(|c| offset >= c);
        if cut {
            self.flush(source);
            if let Some(p) = self.parts.get_mut(&source) {
                p.cut_at = None;
            }
        }
        let full = {
            let Some(p) = self.parts.get_mut(&source) else {
                return;
            };
            p.batch.push_event(payload, offset);
            p.batch.lines.len() >= self.batch_events || p.batch.buf.len() >= BATCH_BYTES
        };
        if full {
            self.flush(source);
        }
    }

    fn check_idle(&mut self) {
        let now = Instant::now();
        let quiet: Vec<u32> = self
            .parts
            .iter()
            .filter(|(_, p)| !p.idle && now.duration_since(p.last_message) >= self.idle_timeout)
            .map(|(s, _)| *s)
            .collect();
        for s in quiet {
            if let Some(p) = self.parts.get_mut(&s) {
                p.idle = true;
            }
            self.signal(Signal::Idle {
                source: s,
                idle: true,
            });
        }
        // Every partition quiet for the idle timeout: event time follows the wall clock, so
        // the chains of a quiet stream are decided (README, "Event time").
        if !self.parts.is_empty()
            && self.parts.values().all(|p| p.idle)
            && now.duration_since(self.last_tick) >= TICK_EVERY
        {
            self.last_tick = now;
            self.signal(Signal::Tick {
                wall: crate::pipeline::clock::wall_now(),
            });
        }
    }
}

/// Runs the consumer loop until `control` asks for a stop, then drains, commits and leaves the
/// group. Returns the last committed offsets.
pub fn run(ctx: Context<'_>) -> Result<Vec<(String, i32, i64)>, ServiceError> {
    let config = ctx.config;
    let consumer = ctx.consumer;
    *consumer
        .context()
        .intake
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(Intake {
        items: ctx.items,
        recycle: ctx.recycle,
        sources: ctx.sources,
        mailbox: ctx.mailbox,
        metrics: ctx.metrics.clone(),
        inputs: config.inputs.clone(),
        batch_events: config.engine.batch_events,
        idle_timeout: config.kafka.idle_timeout,
        drain_limit: config.shutdown.step(ShutdownStep::Drain)
            + config.shutdown.step(ShutdownStep::Flush),
        parts: HashMap::new(),
        held: VecDeque::new(),
        paused: false,
        seq: 0,
        epoch: 0,
        committer: Committer::new(
            ctx.checkpoints,
            config.shutdown.step(ShutdownStep::Commit),
            ctx.metrics.clone(),
        ),
        io_limit: config.shutdown.step(ShutdownStep::Commit),
        rules: ctx.rules,
        last_tick: Instant::now(),
        gone: false,
        part: ctx.part,
        changelog: ctx.changelog,
        config: config.clone(),
    });
    let topics: Vec<&str> = config.inputs.iter().map(|i| i.topic.as_str()).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| ServiceError::Subscribe {
            topics: topics.join(", "),
            source,
        })?;
    tracing::info!(topics = topics.join(", "), group = %config.kafka.group, "consuming");
    let with = |f: &mut dyn FnMut(&mut Intake)| {
        let mut g = consumer
            .context()
            .intake
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = g.as_mut() {
            f(i);
        }
    };
    let mut next_barrier = Instant::now() + config.kafka.commit_interval;
    let mut partial = false;
    let mut errors = super::errorlog::ErrorLog::default();
    let mut failure: Option<ServiceError> = None;
    let heartbeat = ctx.metrics.heartbeats.register("intake");
    while !ctx.control.stopping() {
        heartbeat.beat();
        let mut blocked = false;
        let mut gone = false;
        let reloaded = ctx.control.take_rules();
        let fault = ctx.control.take_fault();
        with(&mut |i| {
            if fault {
                i.signal(Signal::StopShardForTest);
            }
            // Lineage updates only while the engine keeps up: the held queue stays bounded by
            // the pause, and the lineage reader waits on its bounded channel meanwhile.
            if let Some(rx) = &ctx.lineage {
                for _ in 0..8 {
                    if !i.held.is_empty() {
                        break;
                    }
                    let Ok(u) = rx.try_recv() else { break };
                    i.signal(Signal::Lineage {
                        links: u.links,
                        frontier: u.frontier,
                    });
                }
            }
            if let Some(rules) = &reloaded {
                i.reload(rules.clone());
            }
            blocked = !i.send_held();
            i.set_paused(&consumer, blocked);
            let points = i.mailbox.take();
            i.commit(&consumer, points, CommitMode::Async);
            i.check_idle();
            if Instant::now() >= next_barrier {
                i.epoch += 1;
                let epoch = i.epoch;
                i.signal(Signal::Barrier {
                    epoch,
                    drain: false,
                });
            }
            gone = i.gone;
        });
        if gone {
            failure = Some(ServiceError::EngineStopped);
            break;
        }
        if Instant::now() >= next_barrier {
            next_barrier = Instant::now() + config.kafka.commit_interval;
        }
        let timeout = if partial && !blocked {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        match consumer.poll(timeout) {
            None => {
                if partial {
                    with(&mut |i| i.flush_all());
                    partial = false;
                }
            }
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or(&[]);
                let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
                with(&mut |i| i.message(topic, partition, offset, payload));
                partial = true;
            }
            Some(Err(e)) => {
                if is_permanent(&e) {
                    ctx.metrics.failed.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, "permanent consumer error: stopping the service");
                    failure = Some(ServiceError::ConsumerFatal { source: e });
                    break;
                }
                if let Some(repeated) = errors.due() {
                    tracing::warn!(error = %e, repeated, "consumer error (transient; retrying)");
                }
            }
        }
    }
    if let Some(failure) = failure {
        // Nothing can be drained into a dead engine or read from a dead client: commit what
        // the ledger already allowed, leave the group and report.
        with(&mut |i| {
            let points = i.mailbox.take();
            i.commit(&consumer, points, CommitMode::Sync);
        });
        consumer.unsubscribe();
        *consumer
            .context()
            .intake
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        return Err(failure);
    }
    // Graceful stop: drain everything, commit synchronously, leave the group.
    tracing::info!("stopping: draining");
    ctx.metrics
        .gauges(ctx.part)
        .draining
        .store(true, Ordering::Relaxed);
    let mut committed = Vec::new();
    with(&mut |i| {
        let points = i.drain();
        i.commit(&consumer, points, CommitMode::Sync);
        for (s, o) in &i.committer.committed {
            if let Some(p) = i.parts.get(s) {
                committed.push((p.topic.clone(), p.partition, *o));
            }
        }
    });
    committed.sort();
    consumer.unsubscribe();
    let close_by = Instant::now() + config.shutdown.step(ShutdownStep::Close);
    while Instant::now() < close_by {
        let _ = consumer.poll(Duration::from_millis(20));
        if consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
        {
            break;
        }
    }
    // Dropping the intake state closes the item channel, which winds the pipeline down.
    *consumer
        .context()
        .intake
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = None;
    Ok(committed)
}

/// Consumer errors that retrying cannot fix: librdkafka's fatal errors and refused credentials
/// or authorizations.
fn is_permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::Fatal
                | C::Authentication
                | C::SaslAuthenticationFailed
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
        )
    )
}
