//! Suspending a stage 2 replay and going on from it: at the end of its records the shards
//! write their states and waiting hits out instead of deciding them to the end of time
//! ([`Signal::Suspend`](super::Signal::Suspend)), and a later run on the records that follow
//! restores them first ([`Signal::Restore`](super::Signal::Restore)). The same snapshot a
//! cluster's changelog will carry, through one file.

use std::path::{Path, PathBuf};

use super::replay::PipelineError;
use super::shard::ShardReport;
use crate::correlate::engine::Snapshot;
use crate::matcher::RuleSet;

/// Where a stage 2 replay starts from and stops at: a snapshot a suspended run wrote, and
/// whether this run suspends at the end of its input (writes its states out instead of
/// deciding them to the end of time), so that a later run, on the records that follow, goes
/// on as if the input had not stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suspension {
    pub restore: Option<PathBuf>,
    pub suspend_to: Option<PathBuf>,
}

/// Reads the snapshot at `path` and checks it against `rules`: a file that is not a
/// snapshot, one of other rules, or one larger than `limit` bytes (what the run's state budget
/// holds: a snapshot is smaller than the state it was taken of) stops the replay naming it.
pub fn read(path: &Path, rules: &RuleSet, limit: u64) -> Result<Snapshot, PipelineError> {
    let shown = path.display().to_string();
    let read_err = |source| PipelineError::SnapshotRead {
        path: shown.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > limit {
        return Err(PipelineError::SnapshotTooLarge {
            path: shown,
            size,
            limit,
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    Snapshot::from_bytes(&bytes)
        .and_then(|s| s.check(rules).map(|()| s))
        .map_err(|source| PipelineError::Snapshot {
            path: shown,
            source,
        })
}

/// Writes the shards' parts of a suspended run to `path`, as one snapshot.
pub fn write(path: &Path, shards: &mut [ShardReport]) -> Result<(), PipelineError> {
    let mut whole = Snapshot::default();
    for r in shards {
        if let Some(part) = r.snapshot.take() {
            whole.merge(part);
        }
    }
    std::fs::write(path, whole.to_bytes()).map_err(|source| PipelineError::SnapshotWrite {
        path: path.display().to_string(),
        source,
    })
}
