//! The messages of the pipeline: what a front end sends ([`Item`], [`Signal`]), what the workers
//! hand on ([`Decoded`]), what a shard is told ([`ShardMsg`]) and what reaches the output thread
//! ([`OutputMsg`], [`Bookkeeping`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::changes::{ChangelogRead, ShardChanges, SourceMark};
use super::clock::SourceTime;
use super::forward;
use super::worker::DecodedBatch;
use crate::correlate::{Finding, Hit};
use crate::deadletter::DeadLetter;
use crate::decode::ProfileKind;
use crate::identity::Link;
use crate::input::Batch;
use crate::matcher::{RuleSet, TargetMap};
use crate::time::EventTime;

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
    /// The end of what is decided: `end`, or, while a replay has not reached the end its
    /// checkpoint restored, that end. A checkpoint names it; `clock` is the clock there.
    pub decided: u64,
    /// Largest event time seen up to `decided`.
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
    /// Cut and decode the batches of this source until it ends ([`feed`](super::feed)).
    Pull(Arc<dyn Pull>),
}

/// A source whose batches the workers cut themselves, one at a time.
pub trait Pull: Send + Sync {
    /// The next batch, as an [`Item::Batch`] numbered in the front end's order; `None` once
    /// the source has ended.
    fn next(&self) -> Option<Item>;
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
    pub(super) fn seq(&self) -> u64 {
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
