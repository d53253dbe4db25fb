//! Pipeline: the one dataflow of the engine, driven by every front end.
//!
//! ```text
//!  front end ──items──> workers (N) ──decoded──> sequence ──hits, watermarks──> shards (N)
//!  (replay's reader,    decode+match             input order, one clock per       state
//!   the service's       per source profile       source, lateness, signals          │
//!   Kafka intake)                                     │                  findings, progress
//!                                                     v                              v
//!                           output: merge by event time, render OCSF, hand to the [`Sink`]
//!                           (replay: alert and dead-letter files; service: the producer)
//! ```
//!
//! A front end sends [`Item`]s: batches of raw lines and [`Signal`]s (a source assigned or
//! revoked, idle, a commit barrier, a rule reload, the end of input), each numbered so the
//! sequence thread handles them exactly in the order the front end cut them, whatever worker
//! finished first. [`start`] spawns every thread of the engine in the caller's scope;
//! [`Engine::join`] waits for them, each within a deadline, once the front end has dropped its
//! sender. The loops exist once: [`replay()`] drives them from files, `service` from Kafka.
//!
//! Stage 1 of a cluster ([`Stage::Route`]) puts a [`forward`]er in place of the shards: resolved
//! hits and stamps go out to the hits topic (or record files). Stage 2 reads those records as
//! sources of [`Format::Records`] ([`carried`]), whose clock is their stamps' frontier; it can
//! be suspended into a snapshot ([`suspend`]), and keeps a changelog per partition ([`changes`]).
//!
//! Every channel is bounded: a slow stage blocks the one before it, back to the front end, and
//! nothing is dropped. Each shard is the only owner of its state; a hit goes to the shard that
//! owns its group key (a hash), so no lock is taken on the hot path.

pub mod budget;
pub mod carried;
pub mod changes;
pub mod clock;
pub mod forward;
pub mod replay;
pub mod sequence;
pub mod sequencer;
pub mod shard;
pub mod suspend;
pub mod worker;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

pub use changes::{ChangelogRead, PartChanges, ShardChanges, SourceMark};
pub use replay::{
    ClusterReplay, PipelineError, ReplayOptions, SignedOutput, Summary, Suspension, replay,
};
pub use writer::Sink;

use crate::correlate::{Finding, Hit, ShardLimits};
use crate::deadletter::DeadLetter;
use crate::decode::{MintLifetimes, ProfileKind};
use crate::identity::{LineageLimits, LineageStats, Link, Resolver};
use crate::input::{Batch, Sources};
use crate::matcher::{RuleSet, TargetMap};
use crate::metrics::Metrics;
use crate::score::LiveAssessor;
use crate::time::{EventTime, Span};
pub use clock::{Reference, SourceTime};
use sequencer::SequencerStats;
use shard::ShardReport;
use worker::{DecodedBatch, WorkerStats};

/// What a restarted source replays: the state of the previous run at its last commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// The sequenced end when committed: offsets below it were processed before.
    pub end: u64,
    /// The source's largest event time seen at `end`.
    pub clock: Option<EventTime>,
    /// Offsets in `[committed, end)` that were dead-lettered as late.
    pub late: Vec<u64>,
    /// Short ids of alerts already delivered that the replay will decide again.
    pub suppress: Vec<u64>,
}

/// Where the sequence thread stands on one source at a barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencedEnd {
    pub source: u32,
    /// First offset not yet sequenced.
    pub end: u64,
    /// Largest event time seen.
    pub clock: EventTime,
    /// The oldest offset the sequencer itself still needs replayed after a restart (hits and
    /// credential links waiting for event time, recent credential links).
    pub hold: Option<u64>,
}

/// A change in the sources or a request, ordered with the batches around it.
#[derive(Clone, Debug)]
pub enum Signal {
    /// A source was assigned; its batches follow. `start` is the committed offset (where
    /// reading resumes), if any.
    Assign {
        source: u32,
        /// Its allowed lateness and future skew.
        time: SourceTime,
        start: Option<u64>,
        resume: Option<Resume>,
    },
    /// Sources were revoked; none of their batches follow.
    Revoke { sources: Vec<u32> },
    /// A source went quiet for the idle timeout (`true`) or spoke again (`false`). A quiet
    /// source does not hold engine time back; one that speaks again joins at engine time (its
    /// events older than engine time are late).
    Idle { source: u32, idle: bool },
    /// Every source has been quiet for the idle timeout, at wall time `wall`: engine time
    /// follows the wall clock (`wall` minus the largest lateness), so a quiet stream's chains
    /// are decided. Sent periodically by a live front end; a replay never sends it.
    Tick { wall: EventTime },
    /// Report what may be committed; `drain`: wait for every produced message's acknowledgement
    /// first (rebalance, shutdown).
    Barrier { epoch: u64, drain: bool },
    /// Batches after this one are matched with this rule set; shards carry state over.
    Reload(NewRules),
    /// A source cannot be read to its end (a file that cannot be opened, a truncated or corrupt
    /// compressed stream): `letter` (kind `input_error`) says why, and the source holds event
    /// time back no more. What was read of it before stands.
    SourceFailed { source: u32, letter: DeadLetter },
    /// Stage 1 with a shared lineage: links other instances (and this one) wrote to the
    /// lineage topic, and the frontier of every input partition's links there. Engine time
    /// waits for that frontier, so a hit resolves through every link older than it.
    Lineage {
        links: Vec<Link>,
        frontier: EventTime,
    },
    /// Stage 2 (records): states and waiting hits a suspended run wrote out, to go on from;
    /// sent before any batch. Checked against the rules by the front end.
    Restore(Box<crate::correlate::engine::Snapshot>),
    /// Stage 2 (records): the input stops here but nothing is decided to its end: the shards
    /// write their states out ([`shard::ShardReport::snapshot`]) for a later run to restore.
    Suspend,
    /// Stage 2 with a changelog: what the changelog of the partition just assigned held
    /// (sent right after its `Assign`). `restored`: its state at the last marker, when usable;
    /// reading then resumes at the marker's end (the `Assign`'s start). `committed`: the
    /// offset committed for the partition, which commits stay behind while the state holds
    /// events before it (should the next owner find the changelog unusable, it replays from
    /// there). `keys`: the states the changelog holds, which the writer goes on from.
    ChangelogRead(Box<ChangelogRead>),
    /// Test hook: shard 0 ends at once, as a crashed shard thread would, so that tests can show
    /// a front end noticing a dead engine.
    #[doc(hidden)]
    StopShardForTest,
    /// The input ended (a replay): every hit waiting for event time is processed, every state
    /// decided to the end of time. A service stops without it, keeping state for the restart.
    EndOfInput,
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

/// What the lines of a source are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Security events of this profile (`None`: recognised per event).
    Events(Option<ProfileKind>),
    /// Cluster records from stage 1 (hits and stamps, see [`crate::cluster`]).
    Records,
}

/// Which part of the work this engine does (see [`crate::cluster`]).
pub enum Stage {
    /// Everything: events in, alerts out.
    Whole,
    /// Stage 1 of a cluster: events in, resolved hits and stamps out to `hits`, in place of
    /// the shards (see [`forward`]); the credential links this instance reads, and how far
    /// they are complete, out to `lineage` when instances share it.
    Route {
        hits: Box<dyn forward::HitSink>,
        lineage: Option<Box<dyn forward::HitSink>>,
    },
}

impl Stage {
    /// The shard threads an engine of this stage runs for `configured`: stage 1 forwards
    /// through one thread, so its stamps follow every hit it wrote.
    pub fn shards(&self, configured: usize) -> usize {
        match self {
            Stage::Whole => configured.max(1),
            Stage::Route { .. } => 1,
        }
    }
}

/// What a front end hands to the workers.
pub enum Item {
    Batch {
        seq: u64,
        batch: Batch,
        format: Format,
        /// The rule set in force when the batch was cut.
        rules: Arc<RuleSet>,
        arrived: Instant,
    },
    Signal {
        seq: u64,
        signal: Signal,
    },
}

/// What workers hand to the sequence thread.
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
    Hits(Vec<Hit>),
    /// The input sources this instance owns now (a forwarder stamps them; shards ignore it).
    Owned(Vec<u32>),
    /// Stage 1 with a shared lineage: the links its sources minted since the last message,
    /// then each owned source's lineage frontier (the forwarder writes them out).
    Lineage {
        links: Vec<Link>,
        stamps: Vec<(u32, EventTime)>,
    },
    Watermark(EventTime),
    /// Report held positions for a barrier.
    Report(u64),
    /// Swap in a reloaded rule set, carrying over the state `map` says continues.
    Reload(Arc<RuleSet>, Arc<TargetMap>),
    /// The input ended: note the live state, then decide everything to the end of time.
    Finish,
    /// Adopt these states and waiting hits (this shard's part of a snapshot).
    Restore(crate::correlate::engine::Snapshot),
    /// Stage 2 with a changelog: drop the states and waiting hits of these hits partitions
    /// (revoked: their next owner restores them).
    Forget(Vec<i32>),
    /// Write every state and waiting hit out into the report, decide nothing more, end.
    Suspend,
    /// Test hook ([`Signal::StopShardForTest`]): end the thread now.
    #[doc(hidden)]
    Stop,
}

/// What the output thread receives.
pub enum OutputMsg {
    /// A shard's findings and the rule set that decided them.
    Findings(usize, Arc<RuleSet>, Vec<Finding>),
    Progress(usize, EventTime),
    DeadLetter {
        letter: DeadLetter,
        /// The event is replayed after a restart: its dead letter was produced before.
        replayed: bool,
    },
    /// What only a sink that commits cares about (assignments, barriers, arrival times).
    Bookkeeping(Bookkeeping),
}

/// Delivery bookkeeping the sequence thread and shards send to the sink, in stream order.
pub enum Bookkeeping {
    Assign {
        source: u32,
        committed: Option<u64>,
        resume: Option<Resume>,
    },
    Revoke(Vec<u32>),
    /// A barrier's sequenced ends; `shards` [`Bookkeeping::Holds`] reports follow.
    Barrier {
        epoch: u64,
        drain: bool,
        ends: Vec<SequencedEnd>,
        /// Lineage links evicted under the budget since the start (cumulative).
        links_evicted: u64,
        /// Stage 2 with a changelog: per assigned partition, what its marker needs from the
        /// sequencer, and the engine time the shards were given.
        marks: Vec<SourceMark>,
        watermark: EventTime,
    },
    Holds {
        epoch: u64,
        holds: HashMap<u32, u64>,
        states: u64,
        state_bytes: u64,
        /// States the shard evicted under its budgets since the start (cumulative).
        evicted: u64,
        /// Stage 2 with a changelog: what changed in the shard since the last barrier.
        changes: Option<Box<ShardChanges>>,
        /// Sources with findings of this shard still waiting in the output's merge (filled in
        /// by the output thread).
        unsent: Vec<u32>,
    },
    /// Stage 2 with a changelog: a partition was assigned and its changelog read; `keys` per
    /// shard (the shard keys are this process's).
    ChangelogKeys {
        source: u32,
        committed: Option<u64>,
        keys: Vec<Vec<crate::cluster::changelog::StateKey>>,
        /// The states were restored (else the shards rebuild them by replay).
        restored: bool,
        /// See [`ChangelogRead::suppress`].
        suppress: Vec<u64>,
        suppress_end: u64,
    },
    /// When the last event of a batch was read, for the latency histogram.
    Arrival {
        source: u32,
        last_offset: u64,
        arrived: Instant,
    },
}

/// How the engine is built: threads, bounds, identity lineage.
#[derive(Clone, Debug)]
pub struct Setup {
    pub shards: usize,
    pub workers: usize,
    pub shard_limits: ShardLimits,
    /// How long credentials minted by `AssumeRole` and friends are followed.
    pub mint: MintLifetimes,
    pub lineage: LineageLimits,
    /// Credential links minted within this much of engine time hold offsets back (service).
    pub lineage_hold: Span,
    /// What an event's future skew is measured against: the wall clock (service) or its
    /// source's recent median (replay).
    pub reference: Reference,
    /// How much of a chain an alert shows, and its size bound.
    pub alert: crate::alert::AlertOptions,
    /// Stage 2 of a cluster: the input partitions whose stamps stamped sources wait for
    /// (`None`: learnt from the stamps, for record files).
    pub cluster_inputs: Option<Arc<crate::cluster::frontier::Inputs>>,
    /// Stage 1 with a shared lineage: engine time also waits for the lineage frontier.
    pub shared_lineage: bool,
    /// Which of the instance's gauges this engine writes (a cluster member runs two engines).
    pub part: crate::metrics::Part,
    /// Stage 2 with a changelog: the hits topic's partition count. Shards track what changes
    /// and report it per partition at each barrier; a revoked partition's state is dropped.
    pub changelog: Option<u32>,
}

/// The most shard threads, and the most worker threads, an engine starts: far more than cores
/// help nothing, and each thread costs a stack and channel buffers.
pub const MAX_THREADS: usize = 256;

/// Why the engine could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what} = {n}: at most {MAX_THREADS} threads")]
    TooManyThreads { what: &'static str, n: usize },
    #[error("cannot start the {thread} thread: {source}")]
    Spawn {
        thread: &'static str,
        source: std::io::Error,
    },
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error("the {thread} thread did not finish by the shutdown deadline")]
    Timeout { thread: &'static str },
}

/// The channels a front end feeds.
pub struct Inputs {
    pub items: Sender<Item>,
    /// Batch buffers handed back for reuse (a front end may ignore it).
    pub recycle: Receiver<Batch>,
}

/// The running threads of one engine.
pub struct Engine<'scope, R> {
    workers: Vec<ScopedJoinHandle<'scope, WorkerStats>>,
    sequence: ScopedJoinHandle<'scope, sequence::SequenceReport>,
    shards: Vec<ScopedJoinHandle<'scope, ShardReport>>,
    output: ScopedJoinHandle<'scope, R>,
}

/// What the engine's threads reported when they ended.
pub struct Joined<R> {
    pub workers: WorkerStats,
    pub sequencer: SequencerStats,
    pub lineage: LineageStats,
    pub shards: Vec<ShardReport>,
    pub output: R,
}

/// Starts every thread of the engine in scope `s`: workers, the sequence thread, shards and
/// the output thread driving `sink`. `queue` bounds the front end's item queue. The front end
/// then sends items and drops [`Inputs::items`] when it is done; the threads wind down in
/// order behind it.
#[allow(clippy::too_many_arguments)] // each is one part of the engine, given once
pub fn start<'scope, K>(
    s: &'scope Scope<'scope, '_>,
    setup: &Setup,
    queue: usize,
    rules: Arc<RuleSet>,
    assessor: Arc<LiveAssessor>,
    sources: Arc<RwLock<Sources>>,
    metrics: Arc<Metrics>,
    stage: Stage,
    sink: K,
) -> Result<(Inputs, Engine<'scope, Result<K::Report, K::Error>>), EngineError>
where
    K: Sink + Send + 'scope,
    K::Report: Send + 'scope,
    K::Error: Send + 'scope,
{
    let shards = stage.shards(setup.shards);
    let workers = setup.workers.max(1);
    for (what, n) in [("shards", shards), ("workers", workers)] {
        if n > MAX_THREADS {
            return Err(EngineError::TooManyThreads { what, n });
        }
    }
    let (item_tx, item_rx) = bounded::<Item>(queue.max(1));
    let (decoded_tx, decoded_rx) = bounded::<Decoded>(workers * 2 + 2);
    let (recycle_tx, recycle_rx) = bounded::<Batch>(queue.max(1) + workers * 4 + 8);
    let (output_tx, output_rx) = bounded::<OutputMsg>(1024);
    let shard_channels: Vec<_> = (0..shards).map(|_| bounded::<ShardMsg>(256)).collect();
    let spawn_err = |thread| move |source| EngineError::Spawn { thread, source };

    let worker_handles = (0..workers)
        .map(|i| {
            let (rules, rx, tx, metrics) = (
                rules.clone(),
                item_rx.clone(),
                decoded_tx.clone(),
                metrics.clone(),
            );
            let mint = setup.mint;
            let heartbeat = metrics.heartbeats.register(format!("worker-{i}"));
            thread::Builder::new()
                .name(format!("credtrail-worker-{i}"))
                .spawn_scoped(s, move || {
                    worker::run(rules, mint, rx, tx, &metrics, heartbeat)
                })
                .map_err(spawn_err("worker"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(decoded_tx);
    drop(item_rx);

    let routing = matches!(stage, Stage::Route { .. });
    let mut forward_sink = match stage {
        Stage::Whole => None,
        Stage::Route { hits, lineage } => Some((hits, lineage)),
    };
    let shard_handles = shard_channels
        .iter()
        .enumerate()
        .map(|(i, (_, rx))| {
            if let Some(hits) = forward_sink.take() {
                let (rules, rx, tx) = (rules.clone(), rx.clone(), output_tx.clone());
                let (sources, heartbeat) =
                    (sources.clone(), metrics.heartbeats.register("forward"));
                let metrics = metrics.clone();
                return thread::Builder::new()
                    .name("credtrail-forward".into())
                    .spawn_scoped(s, move || {
                        forward::run(rules, hits.0, hits.1, sources, rx, tx, metrics, heartbeat)
                    })
                    .map_err(spawn_err("forward"));
            }
            let (rules, rx, tx) = (rules.clone(), rx.clone(), output_tx.clone());
            let (assessor, limits) = (assessor.clone(), setup.shard_limits);
            let changelog = setup.changelog;
            let heartbeat = metrics.heartbeats.register(format!("shard-{i}"));
            thread::Builder::new()
                .name(format!("credtrail-shard-{i}"))
                .spawn_scoped(s, move || {
                    shard::run(i, rules, limits, changelog, assessor, rx, tx, heartbeat)
                })
                .map_err(spawn_err("shard"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let sequence_handle = {
        let senders: Vec<_> = shard_channels.iter().map(|(tx, _)| tx.clone()).collect();
        let (tx, metrics) = (output_tx.clone(), metrics.clone());
        // Credentials minted in one source are followed in the others; hits are routed to
        // shards once their identity is resolved.
        let routes = rules.correlations.iter().map(|c| c.route.clone()).collect();
        let resolver = Resolver::new(setup.lineage, setup.shard_limits.max_pending, routes);
        let cluster = sequence::Cluster {
            inputs: setup.cluster_inputs.clone(),
            shared_lineage: setup.shared_lineage,
            routing,
            part: setup.part,
            changelog: setup.changelog,
        };
        let (rules, hold, reference) = (rules.clone(), setup.lineage_hold, setup.reference);
        let names = sources.clone();
        thread::Builder::new()
            .name("credtrail-sequence".into())
            .spawn_scoped(s, move || {
                sequence::run(sequence::Context {
                    rx: decoded_rx,
                    shards: senders,
                    output: tx,
                    recycle: recycle_tx,
                    rules,
                    resolver,
                    lineage_hold: hold,
                    reference,
                    sources: names,
                    cluster,
                    heartbeat: metrics.heartbeats.register("sequence"),
                    metrics: &metrics,
                })
            })
            .map_err(spawn_err("sequence"))?
    };
    drop(shard_channels);
    drop(output_tx);

    let heartbeat = metrics.heartbeats.register("output");
    let alert_options = setup.alert;
    let output_handle = thread::Builder::new()
        .name("credtrail-output".into())
        .spawn_scoped(s, move || {
            writer::run(sink, shards, sources, alert_options, output_rx, heartbeat)
        })
        .map_err(spawn_err("output"))?;

    Ok((
        Inputs {
            items: item_tx,
            recycle: recycle_rx,
        },
        Engine {
            workers: worker_handles,
            sequence: sequence_handle,
            shards: shard_handles,
            output: output_handle,
        },
    ))
}

impl<'scope, R> Engine<'scope, R> {
    /// Waits for every thread, in dataflow order, each until `deadline` (`None`: as long as it
    /// takes, for a replay whose input has ended). Call after dropping the front end's sender.
    pub fn join(self, deadline: Option<Instant>) -> Result<Joined<R>, EngineError> {
        let mut workers: Option<WorkerStats> = None;
        for h in self.workers {
            let w = join_by(h, deadline, "worker")?;
            match &mut workers {
                Some(all) => all.merge(&w),
                None => workers = Some(w),
            }
        }
        let sequence = join_by(self.sequence, deadline, "sequence")?;
        let mut shards = Vec::new();
        for h in self.shards {
            shards.push(join_by(h, deadline, "shard")?);
        }
        let output = join_by(self.output, deadline, "output")?;
        Ok(Joined {
            workers: workers.unwrap_or_else(|| WorkerStats::new(&sequence.rules)),
            sequencer: sequence.stats,
            lineage: sequence.lineage,
            shards,
            output,
        })
    }
}

/// Joins a scoped thread, giving up (with an error) at `deadline` (`None`: waits).
pub fn join_by<T>(
    h: ScopedJoinHandle<'_, T>,
    deadline: Option<Instant>,
    thread: &'static str,
) -> Result<T, EngineError> {
    if let Some(deadline) = deadline {
        while !h.is_finished() {
            if Instant::now() >= deadline {
                return Err(EngineError::Timeout { thread });
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    h.join().map_err(|_| EngineError::Panicked(thread))
}
