//! The committer: turns commit points into checkpoint records and offset commits, in that order.
//!
//! An offset is committed only after the checkpoint describing it was acknowledged by the
//! broker. In steady state that wait must not stall the consumer thread (it would hold every
//! event behind it for a produce round trip at each commit interval), so a commit goes through
//! two states:
//!
//! ```text
//!   idle --commit points--> checkpoints in flight --all acknowledged--> offsets committed, idle
//!                                     |--a delivery failed or the deadline passed--> idle
//!                                        (nothing committed; the next barrier tries again)
//! ```
//!
//! While records are in flight, new commit points are left for the next barrier, which
//! computes them again from the ledger (they only move forward). A synchronous commit (a
//! revocation, a graceful stop) first waits for what is in flight, then writes and commits
//! with both waits bounded by the commit step's timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoint::{Checkpoint, Checkpoints};
use super::consumer::InputConsumer;
use super::ledger::CommitPoint;
use crate::metrics::Metrics;

/// A partition as the committer names it: topic and partition number.
pub type PartitionName<'a> = (&'a str, i32);

/// Checkpoint records sent and the offsets that wait for their acknowledgement.
struct InFlight {
    tpl: TopicPartitionList,
    offsets: Vec<(u32, i64)>,
    /// Delivery failures counted before these records were sent.
    failures: u64,
    deadline: Instant,
}

pub struct Committer {
    checkpoints: Checkpoints,
    /// Bound of one checkpoint write or offset commit.
    io_limit: Duration,
    metrics: Arc<Metrics>,
    /// The last committed offset of each source, as the broker confirmed it.
    pub committed: HashMap<u32, i64>,
    in_flight: Option<InFlight>,
    /// Commits sent and not yet answered: (topic, partition, offset) to source.
    awaiting: HashMap<(String, i32, i64), u32>,
}

impl Committer {
    pub fn new(checkpoints: Checkpoints, io_limit: Duration, metrics: Arc<Metrics>) -> Committer {
        Committer {
            checkpoints,
            io_limit,
            metrics,
            committed: HashMap::new(),
            in_flight: None,
            awaiting: HashMap::new(),
        }
    }

    /// Applies the broker's answers to earlier commits (the consumer's commit callback): only
    /// a confirmed offset counts as committed; a refused one is counted as a failure and the
    /// next barrier commits again.
    pub fn confirm(&mut self, consumer: &InputConsumer) {
        let results = std::mem::take(
            &mut *consumer
                .context()
                .commit_results
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (result, offsets) in results {
            match result {
                Ok(()) => {
                    for key in offsets {
                        if let Some(source) = self.awaiting.remove(&key) {
                            let c = self.committed.entry(source).or_insert(key.2);
                            *c = (*c).max(key.2);
                        }
                    }
                }
                Err(e) => {
                    Metrics::add(&self.metrics.commit_failures, 1);
                    tracing::warn!(error = %e, "the broker refused an offset commit; the next barrier commits again");
                    for key in offsets {
                        self.awaiting.remove(&key);
                    }
                }
            }
        }
    }

    pub fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// Commits `points` (sources named by `name`): asynchronously in steady state, waiting for
    /// everything with [`CommitMode::Sync`]. Call it often: it also completes what is in flight.
    pub fn commit<'a>(
        &mut self,
        consumer: &InputConsumer,
        points: Vec<CommitPoint>,
        mode: CommitMode,
        name: impl Fn(u32) -> Option<PartitionName<'a>>,
    ) {
        let sync = matches!(mode, CommitMode::Sync);
        self.confirm(consumer);
        self.settle(consumer, sync);
        if self.in_flight.is_some() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        let (mut records, mut offsets) = (Vec::new(), Vec::new());
        for p in &points {
            let Some((topic, partition)) = name(p.source) else {
                continue;
            };
            if self.committed.get(&p.source) == Some(&(p.offset as i64)) && !sync {
                continue;
            }
            if tpl
                .add_partition_offset(topic, partition, Offset::Offset(p.offset as i64))
                .is_err()
            {
                continue;
            }
            offsets.push((p.source, p.offset as i64));
            records.push(Checkpoint {
                topic: topic.to_string(),
                partition,
                offset: p.offset,
                resume: p.resume.clone(),
            });
        }
        if records.is_empty() {
            return;
        }
        Metrics::add(&self.metrics.commits, 1);
        // The checkpoint first: an offset is never committed without the metadata a replay
        // from it needs.
        let failures = self.checkpoints.failures();
        if let Err(e) = self.checkpoints.send(&records) {
            Metrics::add(&self.metrics.commit_failures, 1);
            tracing::warn!(error = %e, "cannot write checkpoints; not committing, the next barrier tries again");
            return;
        }
        self.in_flight = Some(InFlight {
            tpl,
            offsets,
            failures,
            deadline: Instant::now() + self.io_limit,
        });
        self.settle(consumer, sync);
    }

    /// Commits the in-flight offsets once their checkpoints are acknowledged (waiting for them
    /// with `wait`), or gives them up on a failed delivery or a passed deadline.
    fn settle(&mut self, consumer: &InputConsumer, wait: bool) {
        let Some(f) = &self.in_flight else {
            return;
        };
        let acked = if wait {
            self.checkpoints
                .wait(f.deadline.saturating_duration_since(Instant::now()))
        } else {
            self.checkpoints.acknowledged()
        };
        if !acked && Instant::now() < f.deadline {
            return;
        }
        let Some(f) = self.in_flight.take() else {
            return;
        };
        if !acked || self.checkpoints.failures() != f.failures {
            Metrics::add(&self.metrics.commit_failures, 1);
            tracing::warn!(
                acknowledged = acked,
                "checkpoints not delivered; not committing, the next barrier tries again"
            );
            return;
        }
        let mode = if wait {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        // `offsets` was built in the order of the list's elements, one per partition.
        for (e, (s, o)) in f.tpl.elements().iter().zip(&f.offsets) {
            // An answer to an older commit of the partition no longer matters: bounded.
            self.awaiting.retain(|_, source| source != s);
            self.awaiting
                .insert((e.topic().to_string(), e.partition(), *o), *s);
        }
        match consumer.commit(&f.tpl, mode) {
            // A synchronous commit returns the broker's answer; an asynchronous one only
            // queues the request, confirmed later by the callback (`confirm`).
            Ok(()) if wait => {
                for (s, o) in f.offsets {
                    let c = self.committed.entry(s).or_insert(o);
                    *c = (*c).max(o);
                }
            }
            Ok(()) => {}
            Err(e) => {
                Metrics::add(&self.metrics.commit_failures, 1);
                tracing::warn!(error = %e, "offset commit failed; the next barrier commits again");
            }
        }
    }
}
