//! Changelog: stage 2's correlation state per partition of the hits topic, kept in a compacted
//! topic with as many partitions, so that the next owner of a hits partition (after a restart,
//! a SIGKILL or a rebalance) goes on from the state instead of replaying the hits behind it.
//!
//! The owner of hits partition `P` writes to changelog partition `P`, at each commit barrier:
//!
//! 1. a **state record** per group state of `P` that changed since the last barrier (key:
//!    [`state_key`], value: the [`StateImage`]), and a tombstone (no value) per state that
//!    ended;
//! 2. then a **marker** ([`Marker`], key [`MARKER_KEY`]): the barrier's sequenced end `D` of
//!    `P`, its clock and stamps, the hits of `P` still waiting for event time, and how many
//!    states `P` holds. The marker is written only when nothing decided before the barrier is
//!    still unacknowledged in `P` (an alert in the merge or in flight, a dead letter): resuming
//!    at `D` replays nothing before `D`, so such an alert would be lost. It is written again
//!    at the next settled barrier that would restore something else ([`LastMarkers`]).
//!
//! A reader ([`Replica`]) applies the records in order. The table is `P`'s state at the
//! marker's barrier when the marker is the last record: records after it are a barrier whose
//! marker was never written (its owner died first, or an alert was unacknowledged), and
//! compaction may already have removed what they overwrote. The marker's count must equal the
//! keys read, which catches a table that lost records (retention, a truncated read). Anything
//! else, and the reader falls back to replaying from the committed offset, as without a
//! changelog. Fences (key [`FENCE_KEY`], see the service's reader) are skipped.
//!
//! Positions in the states are the writer's source ids; stage 2 registers the hits partitions
//! in order before reading, so a source id is its partition number in every process, and a
//! reader refuses a state holding an event of another partition.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hasher};

use serde::{Deserialize, Serialize};

use crate::correlate::engine::{ImportError, Snapshot, StateImage};
use crate::matcher::RuleSet;
use crate::time::EventTime;
use crate::vocab::Hit;

/// The key of a partition's marker.
pub const MARKER_KEY: &[u8] = b"m";
/// The key of a reader's fence: records a reader wrote to find the end; skipped.
pub const FENCE_KEY: &[u8] = b"f";
/// State keys open with this byte, then the correlation (4 bytes, big-endian), then the group.
const STATE_TAG: u8 = b's';

/// A state of correlation `target` for `group`, as a changelog key.
pub type StateKey = (u32, Box<str>);

/// The record key of a state.
pub fn state_key(target: u32, group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + group.len());
    k.push(STATE_TAG);
    k.extend_from_slice(&target.to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    k
}

/// Reads a state key back; `None` for a key that is not one.
pub fn parse_state_key(key: &[u8]) -> Option<StateKey> {
    let (&tag, rest) = key.split_first()?;
    if tag != STATE_TAG || rest.len() < 4 {
        return None;
    }
    let (t, g) = rest.split_at(4);
    let target = u32::from_be_bytes(t.try_into().ok()?);
    Some((target, std::str::from_utf8(g).ok()?.into()))
}

/// What a partition's state was at a barrier, besides its states.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// The sequenced end `D`: the first offset of the hits partition not in the state.
    pub end: u64,
    /// The partition's clock at `D` (its stamps' frontier).
    pub clock: EventTime,
    /// The engine's event time at the barrier.
    pub watermark: EventTime,
    /// The stamps read in the partition up to `D`: input topic, partition, frontier.
    pub stamps: Vec<(String, i32, i64)>,
    /// Hits of the partition read before `D` and still waiting for event time.
    pub pending: Vec<Hit>,
    /// How many states the partition holds: the keys a reader must find.
    pub live: u64,
}

impl Marker {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::correlate::engine::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Marker, ImportError> {
        crate::correlate::engine::decode(bytes, "changelog marker")
    }
}

/// What the last marker written for each partition said, so that the next one is written
/// when a restore would find something else, and only then:
///
/// - state records were written since it (a reader refuses records after the last marker);
/// - or what a restore takes from it changed: the end, the clock, the stamps, the waiting
///   hits, the count of states.
///
/// The end alone is not enough. Waiting hits decided when event time passed them change
/// nothing but the marker's `pending` (their states may begin and end between two barriers),
/// and a barrier with such an alert unacknowledged writes no marker: the next one must,
/// though nothing new was read. A stale marker there gave the next owner the decided hits
/// again, and it alerted again. The watermark alone does not make a marker due: a restore
/// takes it as a floor, and event time that moved without changing the partition's hits or
/// states decided nothing in it.
#[derive(Debug, Default)]
pub struct LastMarkers {
    digests: HashMap<u32, MarkerDigest>,
    records_since: HashSet<u32>,
}

/// A hash of what a restore takes from a marker, its watermark left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkerDigest(u64);

impl LastMarkers {
    /// State records of `source` were written.
    pub fn records_written(&mut self, source: u32) {
        self.records_since.insert(source);
    }

    /// The digest of `marker` when it must be written for `source` (hand it to
    /// [`LastMarkers::written`] once it is); `None` when a restore would find nothing new.
    pub fn due(&self, source: u32, marker: &Marker) -> Option<MarkerDigest> {
        let digest = MarkerDigest::of(marker);
        (self.records_since.contains(&source) || self.digests.get(&source) != Some(&digest))
            .then_some(digest)
    }

    /// The marker of `digest` was written for `source`.
    pub fn written(&mut self, source: u32, digest: MarkerDigest) {
        self.records_since.remove(&source);
        self.digests.insert(source, digest);
    }

    /// `source` is no longer owned: its next owner starts afresh.
    pub fn forget(&mut self, source: u32) {
        self.records_since.remove(&source);
        self.digests.remove(&source);
    }
}

impl MarkerDigest {
    /// Serialises the marker's restored content straight into a hasher: no buffer the size of
    /// its waiting hits.
    fn of(m: &Marker) -> MarkerDigest {
        #[derive(Serialize)]
        struct Content<'a> {
            end: u64,
            clock: EventTime,
            stamps: &'a [(String, i32, i64)],
            pending: &'a [Hit],
            live: u64,
        }
        struct Hashing(DefaultHasher);
        impl postcard::ser_flavors::Flavor for Hashing {
            type Output = u64;
            fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
                self.0.write_u8(byte);
                Ok(())
            }
            fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
                self.0.write(bytes);
                Ok(())
            }
            fn finalize(self) -> postcard::Result<u64> {
                Ok(self.0.finish())
            }
        }
        let content = Content {
            end: m.end,
            clock: m.clock,
            stamps: &m.stamps,
            pending: &m.pending,
            live: m.live,
        };
        // Hashing cannot fail; a serialisation error leaves a digest no marker has, so the
        // marker is written rather than skipped.
        MarkerDigest(
            postcard::serialize_with_flavor(&content, Hashing(DefaultHasher::new()))
                .unwrap_or(u64::MAX),
        )
    }
}

/// One record to write: key and value (`None`: a tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

/// What the writer of one partition has written: the keys alive in the changelog. Turns a
/// barrier's changes into records, and tells the marker's count.
#[derive(Debug, Default)]
pub struct Book {
    live: BTreeSet<StateKey>,
}

impl Book {
    /// A book for a changelog that holds `keys` (what the reader found on assignment).
    pub fn with_keys(keys: impl IntoIterator<Item = StateKey>) -> Book {
        Book {
            live: keys.into_iter().collect(),
        }
    }

    /// The records for one barrier's changes of this partition. `whole`: `states` are every
    /// state of the partition, so every other key written before gets a tombstone.
    pub fn records(
        &mut self,
        whole: bool,
        states: &[StateImage],
        ended: &[StateKey],
        out: &mut Vec<Record>,
    ) {
        if whole {
            let now: BTreeSet<(u32, &str)> = states.iter().map(|s| (s.target, &*s.group)).collect();
            let gone: Vec<StateKey> = (self.live.iter())
                .filter(|(t, g)| !now.contains(&(*t, &**g)))
                .cloned()
                .collect();
            for k in gone {
                out.push((state_key(k.0, &k.1), None));
                self.live.remove(&k);
            }
        }
        for (t, g) in ended {
            // A state that changed after it ended (the same group began again) is in `states`
            // and written after this tombstone.
            if self.live.remove(&(*t, g.clone())) {
                out.push((state_key(*t, g), None));
            }
        }
        for s in states {
            out.push((state_key(s.target, &s.group), Some(s.to_bytes())));
            self.live.insert((s.target, s.group.clone()));
        }
    }

    pub fn live(&self) -> u64 {
        self.live.len() as u64
    }
}

/// Why a changelog partition cannot be restored from (the reader replays from the commit).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Unusable {
    #[error("no marker")]
    NoMarker,
    #[error("{0} record(s) after the last marker (a barrier whose marker was not written)")]
    AfterMarker(u64),
    #[error("the marker counts {marker} states, the changelog holds {found}")]
    Count { marker: u64, found: u64 },
    #[error("more than {0} bytes of state")]
    TooLarge(u64),
    #[error("a record of another kind (key {0:?})")]
    UnknownKey(String),
    #[error("state {key:?}: {reason}")]
    State { key: String, reason: String },
    #[error("marker: {0}")]
    Marker(String),
}

/// A changelog partition as read so far.
#[derive(Debug)]
pub struct Replica {
    table: BTreeMap<StateKey, Vec<u8>>,
    bytes: u64,
    limit: u64,
    marker: Option<Vec<u8>>,
    after_marker: u64,
    broken: Option<Unusable>,
}

/// A partition's state at its last marker, ready for the engine.
#[derive(Clone, Debug)]
pub struct Restored {
    pub marker: Marker,
    /// The states and waiting hits (shard keys not set: the importer keys them).
    pub snapshot: Snapshot,
}

impl Replica {
    /// `limit`: the most bytes of state records kept (the state budget); beyond it the replica
    /// is unusable, and only its keys are kept.
    pub fn new(limit: u64) -> Replica {
        Replica {
            table: BTreeMap::new(),
            bytes: 0,
            limit,
            marker: None,
            after_marker: 0,
            broken: None,
        }
    }

    /// Applies the next record of the partition.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        if key == FENCE_KEY {
            return;
        }
        if key == MARKER_KEY {
            self.marker = value.map(<[u8]>::to_vec);
            self.after_marker = 0;
            return;
        }
        let Some(k) = parse_state_key(key) else {
            self.broken
                .get_or_insert(Unusable::UnknownKey(String::from_utf8_lossy(key).into()));
            return;
        };
        self.after_marker += 1;
        if let Some(old) = self.table.remove(&k) {
            self.bytes -= old.len() as u64;
        }
        if let Some(v) = value {
            self.bytes += v.len() as u64;
            // Over the budget only the key is kept: the writer tombstones what it no longer holds.
            let v = if self.bytes > self.limit {
                self.broken.get_or_insert(Unusable::TooLarge(self.limit));
                Vec::new()
            } else {
                v.to_vec()
            };
            self.table.insert(k, v);
        }
    }

    /// The keys the changelog holds (a writer's [`Book`] starts from them).
    pub fn keys(&self) -> Vec<StateKey> {
        self.table.keys().cloned().collect()
    }

    /// The state at the last marker, checked against `rules` and against the partition:
    /// every event in it must have been read from `source`.
    pub fn restore(self, rules: &RuleSet, source: u32) -> Result<Restored, Unusable> {
        if let Some(why) = self.broken {
            return Err(why);
        }
        let Some(m) = self.marker else {
            return Err(Unusable::NoMarker);
        };
        if self.after_marker > 0 {
            return Err(Unusable::AfterMarker(self.after_marker));
        }
        let mut marker = Marker::from_bytes(&m).map_err(|e| Unusable::Marker(e.to_string()))?;
        let found = self.table.len() as u64;
        if marker.live != found {
            return Err(Unusable::Count {
                marker: marker.live,
                found,
            });
        }
        let mut states = Vec::with_capacity(self.table.len());
        for ((target, group), v) in self.table {
            let shown = || format!("{target}/{group}");
            let s = StateImage::from_bytes(&v).map_err(|e| Unusable::State {
                key: shown(),
                reason: e.to_string(),
            })?;
            if s.target != target || s.group != group {
                return Err(Unusable::State {
                    key: shown(),
                    reason: "its image is of another state".into(),
                });
            }
            let mut foreign = false;
            s.for_each_event(&mut |e| foreign |= e.pos.source != source);
            if foreign {
                return Err(Unusable::State {
                    key: shown(),
                    reason: format!("holds an event of another partition than {source}"),
                });
            }
            states.push(s);
        }
        let mut foreign = false;
        for h in &marker.pending {
            h.event.visit(&mut |e| foreign |= e.pos.source != source);
        }
        if foreign {
            return Err(Unusable::Marker(format!(
                "a waiting hit of another partition than {source}"
            )));
        }
        let snapshot = Snapshot {
            watermark: marker.watermark,
            states,
            pending: std::mem::take(&mut marker.pending),
            last: None,
        };
        snapshot
            .check(rules)
            .map_err(|e| Unusable::Marker(e.to_string()))?;
        Ok(Restored { marker, snapshot })
    }
}

#[cfg(test)]
#[path = "changelog_tests.rs"]
mod tests;
