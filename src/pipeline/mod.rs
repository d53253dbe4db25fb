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
//! finished first. Once the workers have every core, replay's front end hands them a
//! [`Pull`] instead and each worker cuts its next batch itself, numbered the same way
//! ([`front`], [`feed`]). [`start`] spawns every thread of the engine in the caller's scope;
//! [`Engine::join`] waits for them, each within a deadline, once the front end has dropped its
//! sender. The loops exist once: [`replay()`] drives them from files, `service` from Kafka.
//!
//! Stage 1 of a cluster ([`Stage::Route`]) puts a [`forward`]er in place of the shards: resolved
//! hits and stamps go out to the hits topic (or record files). Stage 2 reads those records as
//! sources of [`Format::Records`] ([`carried`]), whose clock is their stamps' frontier; it can
//! be suspended into a snapshot ([`suspend`]), and keeps a changelog per partition ([`changes`]).
//!
//! The messages between the threads are in [`message`]; hits reach the shards through the
//! [`outbox`], in messages of bounded size.
//!
//! Every channel is bounded: a slow stage blocks the one before it, back to the front end, and
//! nothing is dropped. Each shard is the only owner of its state; a hit goes to the shard that
//! owns its group key (a hash), so no lock is taken on the hot path.

pub mod budget;
pub mod carried;
pub mod changes;
pub mod clock;
pub mod feed;
pub mod forward;
pub mod front;
pub mod message;
pub mod outbox;
pub mod replay;
pub mod sequence;
pub mod sequencer;
pub mod shard;
pub mod suspend;
pub mod worker;
pub mod writer;

use std::sync::{Arc, RwLock};
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

pub use changes::{ChangelogRead, PartChanges, ShardChanges, SourceMark};
pub use front::Cutting;
pub use message::*;
pub use replay::{
    ClusterReplay, PipelineError, ReplayOptions, SignedOutput, Summary, Suspension, replay,
};
pub use writer::Sink;

use crate::correlate::ShardLimits;
use crate::decode::MintLifetimes;
use crate::identity::{LineageLimits, LineageStats, Resolver};
use crate::input::{Batch, Sources};
use crate::matcher::RuleSet;
use crate::metrics::Metrics;
use crate::score::LiveAssessor;
use crate::time::Span;
pub use clock::{Reference, SourceTime};
use sequencer::SequencerStats;
use shard::ShardReport;
use worker::WorkerStats;

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
    /// Whether any worker thread is still running.
    pub fn working(&self) -> bool {
        self.workers.iter().any(|w| !w.is_finished())
    }

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
