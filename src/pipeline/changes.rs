//! What stage 2 of a cluster hands its changelog and takes back from it (see
//! [`crate::cluster::changelog`]): a partition's changelog as read on assignment, each shard's
//! changes per hits partition at a barrier, and the sequencer's part of a partition's marker.

use crate::vocab::Hit;

/// See [`Signal::ChangelogRead`].
#[derive(Clone, Debug)]
pub struct ChangelogRead {
    pub source: u32,
    pub committed: Option<u64>,
    pub restored: Option<crate::cluster::changelog::Restored>,
    pub keys: Vec<crate::cluster::changelog::StateKey>,
    /// With `restored`: the short ids of alerts acknowledged before the commit that reading
    /// on from the marker may decide again (the checkpoint's, see the ledger), and the end
    /// past which they cannot recur.
    pub suppress: Vec<u64>,
    pub suppress_end: u64,
}

/// One hits partition's changes in one shard since the last barrier.
#[derive(Debug, Default)]
pub struct PartChanges {
    pub states: Vec<crate::correlate::engine::StateImage>,
    pub ended: Vec<crate::cluster::changelog::StateKey>,
    /// Hits waiting in the shard for its watermark.
    pub pending: Vec<Hit>,
}

/// A shard's changes at a barrier, per hits partition (stage 2 with a changelog).
#[derive(Debug, Default)]
pub struct ShardChanges {
    pub shard: usize,
    /// The states are every state of the shard (its first barrier, or tracking lost count):
    /// any other key this shard wrote before has ended.
    pub whole: bool,
    pub parts: std::collections::BTreeMap<i32, PartChanges>,
}

/// What the sequence thread adds to a barrier for a hits partition's changelog marker.
#[derive(Debug)]
pub struct SourceMark {
    pub source: u32,
    /// The stamps read in it: input topic, partition, frontier.
    pub stamps: Vec<(String, i32, i64)>,
    /// Its hits waiting in the sequencer for engine time.
    pub pending: Vec<Hit>,
}
