//! Snapshots of a shard's state: what a restarted process, or the next owner of a partition,
//! needs to go on where the last one stopped without replaying the input behind it.
//!
//! A [`Snapshot`] holds group states as [`StateImage`]s (the machine with its evidence, the
//! timer, what the group touched, its announcement and eviction rank; no process-local id)
//! and the hits still waiting in the reorder buffer. [`ShardEngine::export`] takes the states
//! and hits a predicate selects (in a cluster, one hits partition's);
//! [`ShardEngine::import`] validates every image against the rule set in force before it
//! adopts any, so a snapshot of other rules or of a hostile writer is refused whole, with the
//! reason.
//!
//! With tracking on ([`ShardEngine::track_changes`]), [`ShardEngine::take_changes`] gives
//! what changed since its last call: the images of states that changed and the keys of states
//! that ended; what a compacted changelog keyed by state needs (a record per change, a
//! tombstone per end). Tracking is bounded: past a state budget's worth of ends between two
//! calls it stops counting and the next call gives every state, marked whole.
//!
//! The machines are written with serde, in postcard behind a version byte
//! ([`StateImage::to_bytes`], [`Snapshot::to_bytes`]); [`crate::vocab::EventDetails`] are read
//! back through their bounded constructor.

use std::cmp::Reverse;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use super::Dedupe;
use super::store::{Slot, bucket_of};
use super::{Entry, ShardEngine};
use crate::correlate::eviction::Rank;
use crate::correlate::footprint::Footprint;
use crate::correlate::{Decision, Hit, Machine, Target};
use crate::matcher::RuleSet;
use crate::time::EventTime;

/// One group's state, as it is written out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateImage {
    /// The correlation's index in the rule set.
    pub target: u32,
    pub group: Box<str>,
    machine: Machine,
    expires: EventTime,
    awaiting: Vec<(EventTime, Decision)>,
    timer: Option<EventTime>,
    footprint: Footprint,
    announced: Option<(u32, u32, u32)>,
    rank: Rank,
}

/// States and waiting hits of a shard, or of the part of it a predicate selected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The shard's event time when the snapshot was taken.
    pub watermark: EventTime,
    pub states: Vec<StateImage>,
    /// Hits waiting for the watermark, in no particular order; their shard keys are not
    /// written (they are keyed per process): the importer keys them again.
    pub pending: Vec<Hit>,
    /// The last hit processed, so its duplicate is still dropped after the restore.
    pub last: Option<Dedupe>,
}

/// What changed since the last [`ShardEngine::take_changes`].
#[derive(Debug, Default)]
pub struct Changes {
    /// The states are every state of the shard: whoever keeps a copy drops what it holds
    /// first (tracking lost count, or the rules were reloaded).
    pub whole: bool,
    pub states: Vec<StateImage>,
    /// (correlation, group) of states that ended: expired, decided, evicted.
    pub ended: Vec<(u32, Box<str>)>,
}

impl Changes {
    /// Applies these changes to `table`, a copy of the shard's states by (correlation,
    /// group): what a reader of a compacted changelog holds.
    pub fn apply_to(self, table: &mut std::collections::BTreeMap<(u32, Box<str>), StateImage>) {
        if self.whole {
            table.clear();
        }
        for key in self.ended {
            table.remove(&key);
        }
        for s in self.states {
            table.insert((s.target, s.group.clone()), s);
        }
    }
}

/// The version byte that opens a state record; a reader refuses others.
pub const STATE_FORMAT: u8 = 1;

/// `value` as a record: [`STATE_FORMAT`], then postcard (serde's compact binary form: a million
/// chains in flight write about 500 bytes each, a third of JSON).
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Only strings, numbers, vectors and enums: writing to a vector cannot fail.
    postcard::to_extend::<_, Vec<u8>>(value, vec![STATE_FORMAT]).unwrap_or_default()
}

/// Reads a record [`encode`] wrote (a `what`, for the error); nothing is checked against the
/// rules yet (see [`Snapshot::check`]).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ImportError> {
    match bytes.split_first() {
        Some((&STATE_FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|e| ImportError::Malformed(e.to_string()))
        }
        Some((v, _)) => Err(ImportError::Malformed(format!(
            "{what} version {v}, this build reads version {STATE_FORMAT}"
        ))),
        None => Err(ImportError::Malformed(format!("an empty {what}"))),
    }
}

impl StateImage {
    /// One state's record (a changelog's value).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<StateImage, ImportError> {
        decode(bytes, "state record")
    }

    /// Every event the state holds (its evidence, and that of decisions awaiting their
    /// deadline), for a reader that checks where they come from.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&crate::vocab::EventRef)) {
        self.machine.for_each_event(f);
        for (_, d) in &self.awaiting {
            d.events.iter().for_each(|(e, _)| e.visit(f));
        }
    }
}

impl Snapshot {
    /// The whole snapshot in one record (a suspended replay's file).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, ImportError> {
        decode(bytes, "snapshot")
    }

    /// Checks every state and waiting hit against `rules`, as [`ShardEngine::import`] does
    /// before it adopts anything.
    pub fn check(&self, rules: &RuleSet) -> Result<(), ImportError> {
        for s in &self.states {
            let Some(corr) = rules.correlations.get(s.target as usize) else {
                return Err(ImportError::NoSuchTarget {
                    target: s.target,
                    group: s.group.clone(),
                });
            };
            if !s.machine.fits(corr) {
                return Err(ImportError::Shape {
                    target: s.target,
                    group: s.group.clone(),
                });
            }
        }
        match self.pending.iter().find(|h| !rules.has_target(h.target)) {
            Some(h) => Err(ImportError::NoSuchHitTarget(h.target)),
            None => Ok(()),
        }
    }

    /// Adds `other`'s states and waiting hits to these (the parts of several shards).
    pub fn merge(&mut self, other: Snapshot) {
        self.watermark = self.watermark.max(other.watermark);
        self.states.extend(other.states);
        self.pending.extend(other.pending);
        self.last = self.last.take().or(other.last);
    }
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error(
        "state of group {group:?} names correlation {target}, which the rule set does not have"
    )]
    NoSuchTarget { target: u32, group: Box<str> },
    #[error("state of group {group:?} does not fit correlation {target} of the rule set")]
    Shape { target: u32, group: Box<str> },
    #[error("a waiting hit names {0:?}, which the rule set does not have")]
    NoSuchHitTarget(Target),
    #[error("not a state record: {0}")]
    Malformed(String),
}

/// What tracking has seen since the last [`ShardEngine::take_changes`].
#[derive(Debug, Default)]
pub(super) struct Tracker {
    changed: HashSet<u128>,
    ended: Vec<(u32, Box<str>)>,
    /// More ended than a state budget's worth, or ids were reassigned: the next call gives
    /// every state.
    lost: bool,
}

impl ShardEngine {
    /// Starts keeping what changes, for [`take_changes`](Self::take_changes): call it before
    /// the shard holds states. States adopted by [`import`](Self::import) are not changes
    /// (they come from where a changelog's reader found them).
    pub fn track_changes(&mut self) {
        self.tracker.get_or_insert_with(Tracker::default);
    }

    /// Called by the store after a state changed.
    pub(super) fn note_changed(&mut self, id: u128) {
        if let Some(t) = &mut self.tracker
            && !t.lost
        {
            t.changed.insert(id);
        }
    }

    /// Called by the store when a state ends.
    pub(super) fn note_ended(&mut self, id: u128, target: u32, group: &str) {
        let limit = self.limits.max_states;
        if let Some(t) = &mut self.tracker
            && !t.lost
        {
            t.changed.remove(&id);
            if t.ended.len() >= limit {
                t.lost = true;
                t.changed = HashSet::new();
                t.ended = Vec::new();
            } else {
                t.ended.push((target, group.into()));
            }
        }
    }

    /// Called when every id changes (a rule reload).
    pub(super) fn note_all_changed(&mut self) {
        if let Some(t) = &mut self.tracker {
            *t = Tracker {
                lost: true,
                ..Tracker::default()
            };
        }
    }

    /// What changed since the last call; `None` when tracking is off.
    pub fn take_changes(&mut self) -> Option<Changes> {
        let t = std::mem::take(self.tracker.as_mut()?);
        if t.lost {
            return Some(Changes {
                whole: true,
                states: self.states.values().map(image).collect(),
                ended: Vec::new(),
            });
        }
        let mut ids: Vec<u128> = t.changed.into_iter().collect();
        ids.sort_unstable();
        Some(Changes {
            whole: false,
            states: ids
                .iter()
                .filter_map(|id| self.states.get(id))
                .map(image)
                .collect(),
            ended: t.ended,
        })
    }

    /// Drops the states and waiting hits `gone(target, group)` selects (a revoked partition's:
    /// its next owner restores them), untracked. Returns how many states.
    pub fn forget(&mut self, gone: impl Fn(Target, &str) -> bool) -> usize {
        let ids: Vec<u128> = (self.states.iter())
            .filter(|(_, e)| gone(Target::Correlation(e.target), &e.group))
            .map(|(id, _)| *id)
            .collect();
        // Not ends: the partition's next owner keeps its changelog (tombstones written here
        // would delete states a restore brings back).
        let tracker = self.tracker.take();
        for id in &ids {
            self.drop_state(*id);
        }
        self.tracker = tracker;
        let pending = std::mem::take(&mut self.pending);
        self.pending = pending
            .into_iter()
            .filter(|Reverse(p)| !gone(p.hit.0.target, &p.hit.0.group))
            .collect();
        ids.len()
    }

    /// The hits waiting for the watermark (a changelog marker carries them).
    pub fn waiting_hits(&self) -> Vec<Hit> {
        self.pending
            .iter()
            .map(|Reverse(p)| p.hit.0.clone())
            .collect()
    }

    /// The states and waiting hits `keep(target, group)` selects.
    pub fn export(&self, keep: impl Fn(Target, &str) -> bool) -> Snapshot {
        let mut states: Vec<StateImage> = self
            .states
            .values()
            .filter(|e| keep(Target::Correlation(e.target), &e.group))
            .map(image)
            .collect();
        states.sort_unstable_by(|a, b| (a.target, &a.group).cmp(&(b.target, &b.group)));
        Snapshot {
            watermark: self.watermark,
            states,
            pending: self
                .pending
                .iter()
                .map(|Reverse(p)| &p.hit.0)
                .filter(|h| keep(h.target, &h.group))
                .cloned()
                .collect(),
            last: self.last.clone(),
        }
    }

    /// Adopts a snapshot's states and waiting hits, after checking every one of them against
    /// the rule set: all or nothing. States this shard holds already for the same group are
    /// kept and the image's copy dropped (counted in the return). The shard's watermark does
    /// not move: the caller's clock does. Returns (states adopted, states already held).
    pub fn import(&mut self, snap: Snapshot) -> Result<(usize, usize), ImportError> {
        snap.check(&self.rules)?;
        let (mut adopted, mut held) = (0, 0);
        for s in snap.states {
            if self.adopt_image(s) {
                adopted += 1;
            } else {
                held += 1;
            }
        }
        for hit in snap.pending {
            self.enqueue(hit);
        }
        if self.last.is_none() {
            self.last = snap.last;
        }
        Ok((adopted, held))
    }

    /// Files one image as a live state; false when the group's state is held already (or no
    /// id is free for it).
    fn adopt_image(&mut self, s: StateImage) -> bool {
        let (id, displaced) = match self.locate(s.target, &s.group) {
            Slot::Vacant(id, displaced) => (id, displaced),
            Slot::Found(_) | Slot::Full => return false,
        };
        while self.states.len() >= self.limits.max_states {
            if !self.evict_one() {
                break;
            }
            self.stats.evicted += 1;
        }
        let mut entry = Entry {
            target: s.target,
            group: s.group,
            machine: s.machine,
            expires: s.expires,
            bucket: bucket_of(s.expires),
            awaiting: s.awaiting,
            timer: s.timer,
            footprint: s.footprint,
            announced: s.announced,
            rank: s.rank,
            bytes: 0,
        };
        entry.bytes = entry.approx_bytes();
        self.adopt(id, displaced, entry);
        true
    }
}

fn image(e: &Entry) -> StateImage {
    StateImage {
        target: e.target,
        group: e.group.clone(),
        machine: e.machine.clone(),
        expires: e.expires,
        awaiting: e.awaiting.clone(),
        timer: e.timer,
        footprint: e.footprint.clone(),
        announced: e.announced,
        rank: e.rank,
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
pub(crate) mod tests;
