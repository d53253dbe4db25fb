//! Assignment and revocation: what the rebalance callback does through the intake state.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{BATCH_BYTES, Intake, PartitionIntake};
use crate::cluster::changelog::{Replica, Unusable};
use crate::input::{Batch, SourceInfo};
use crate::metrics::Metrics;
use crate::pipeline::ChangelogRead;
use crate::service::Signal;
use crate::service::changelog;
use crate::service::consumer::InputConsumer;

impl Intake {
    /// Registers newly assigned partitions and returns where each must start reading.
    pub(in crate::service) fn assign(
        &mut self,
        consumer: &InputConsumer,
        tpl: &TopicPartitionList,
    ) -> Vec<(String, i32, i64)> {
        let mut starts = Vec::new();
        let committed = match consumer.committed_offsets(tpl.clone(), self.io_limit) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets; starting without replay metadata");
                tpl.clone()
            }
        };
        let wanted: Vec<(String, i32)> = committed
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let mut checkpoints = match self.committer.checkpoints().read(&wanted, self.io_limit) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read checkpoints; replaying without them (alerts may be re-emitted with their same ids)");
                HashMap::new()
            }
        };
        let mut replicas = self.read_changelog(&committed);
        for el in committed.elements() {
            let topic = el.topic().to_string();
            let partition = el.partition();
            let Some(input) = self.inputs.iter().find(|i| i.topic == topic) else {
                continue;
            };
            let source = self
                .sources
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .register(SourceInfo::Kafka {
                    topic: topic.clone(),
                    partition,
                });
            let committed_at = match el.offset() {
                Offset::Offset(o) if o >= 0 => Some(o as u64),
                _ => None,
            };
            let mut start = committed_at;
            let mut resume = match checkpoints.remove(&(topic.clone(), partition)) {
                Some(c) if Some(c.offset) == start => Some(c.resume),
                Some(c) => {
                    tracing::warn!(
                        topic,
                        partition,
                        checkpoint = c.offset,
                        ?start,
                        "checkpoint does not match the committed offset; replaying without it (alerts may be re-emitted with their same ids)"
                    );
                    None
                }
                None => None,
            };
            let read = replicas
                .remove(&partition)
                .map(|replica| self.restore(source, partition, committed_at, replica));
            let mut read = read;
            if let Some(read) = read.as_mut()
                && let Some(r) = &read.restored
            {
                start = Some(r.marker.end);
                // A marker older than the last alerts acknowledged (one was unsettled at the
                // drain) decides them again: the checkpoint's ids keep suppressing them.
                if let Some(c) = resume.take() {
                    read.suppress = c.suppress;
                    read.suppress_end = c.end;
                }
                resume = Some(super::super::ledger::Resume {
                    end: r.marker.end,
                    clock: Some(r.marker.clock),
                    ..Default::default()
                });
            }
            let cut_at = resume.as_ref().map(|r| r.end);
            if let Some(s) = start {
                starts.push((topic.clone(), partition, s as i64));
            }
            tracing::info!(topic, partition, ?start, replay_to = ?cut_at, "partition assigned");
            let mut batch = Batch {
                source,
                ..Batch::default()
            };
            batch.buf.reserve(BATCH_BYTES);
            self.parts.insert(
                source,
                PartitionIntake {
                    topic,
                    partition,
                    format: if input.records {
                        crate::pipeline::Format::Records
                    } else {
                        crate::pipeline::Format::Events(input.profile)
                    },
                    batch,
                    cut_at,
                    last_message: Instant::now(),
                    idle: false,
                },
            );
            self.signal(Signal::Assign {
                source,
                time: if input.records {
                    crate::pipeline::SourceTime::stamped()
                } else {
                    crate::pipeline::SourceTime {
                        lateness: input.lateness,
                        max_future: input.max_future_skew,
                        stamped: false,
                    }
                },
                start,
                resume,
            });
            if let Some(read) = read {
                self.signal(Signal::ChangelogRead(Box::new(read)));
            }
        }
        self.publish_assignment();
        starts
    }

    /// Stage 2 with a changelog: the assigned partitions' changelogs, read to their end; none
    /// when it cannot be read (the partitions are replayed from their commits).
    fn read_changelog(&self, tpl: &TopicPartitionList) -> HashMap<i32, Replica> {
        let Some(c) = &self.changelog else {
            return HashMap::new();
        };
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        if parts.is_empty() {
            return HashMap::new();
        }
        let started = Instant::now();
        match changelog::read(&self.config, &c.topic, &parts, c.limit, c.read_limit) {
            Ok(r) => {
                tracing::info!(
                    partitions = parts.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "changelog read"
                );
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the changelog; replaying the assigned partitions from their commits");
                HashMap::new()
            }
        }
    }

    /// What a partition's changelog gives: its state at the last marker when that is usable
    /// and not behind the commit (then reading resumes at the marker's end), and its keys.
    fn restore(
        &self,
        source: u32,
        partition: i32,
        committed: Option<u64>,
        replica: Replica,
    ) -> ChangelogRead {
        let keys = replica.keys();
        let restored = match replica.restore(&self.rules, source) {
            Ok(r) if committed.is_none_or(|c| r.marker.end >= c) => Some(r),
            Ok(r) => {
                tracing::info!(
                    partition,
                    marker = r.marker.end,
                    ?committed,
                    "changelog marker behind the commit; replaying from the commit"
                );
                None
            }
            Err(why) => {
                if why != Unusable::NoMarker || !keys.is_empty() {
                    Metrics::add(&self.metrics.changelog_unusable, 1);
                    tracing::warn!(partition, reason = %why, "changelog not restored from; replaying from the commit");
                }
                None
            }
        };
        if let Some(r) = &restored {
            let skipped = r.marker.end.saturating_sub(committed.unwrap_or(0));
            Metrics::add(&self.metrics.changelog_restores, 1);
            Metrics::add(
                &self.metrics.changelog_restored_states,
                r.snapshot.states.len() as u64,
            );
            Metrics::add(&self.metrics.changelog_skipped_records, skipped);
            tracing::info!(
                partition,
                states = r.snapshot.states.len(),
                waiting = r.snapshot.pending.len(),
                ?committed,
                resume_at = r.marker.end,
                skipped,
                "partition restored from the changelog"
            );
        }
        ChangelogRead {
            suppress: Vec::new(),
            suppress_end: 0,
            source,
            committed,
            restored,
            keys,
        }
    }

    /// The assignment gauges: partitions held, and ready while any is.
    fn publish_assignment(&self) {
        let n = self.parts.len();
        self.gauges()
            .partitions_assigned
            .store(n as i64, Ordering::Relaxed);
        self.gauges().ready.store(n > 0, Ordering::Relaxed);
    }

    pub(in crate::service) fn revoke(
        &mut self,
        consumer: &InputConsumer,
        tpl: &TopicPartitionList,
    ) {
        let sources: Vec<u32> = tpl
            .elements()
            .iter()
            .filter_map(|el| self.source_of(el.topic(), el.partition()))
            .collect();
        if sources.is_empty() {
            return;
        }
        tracing::info!(partitions = sources.len(), "draining revoked partitions");
        self.gauges().draining.store(true, Ordering::Relaxed);
        let points = self.drain();
        self.commit(consumer, points, CommitMode::Sync);
        self.signal(Signal::Revoke {
            sources: sources.clone(),
        });
        for s in &sources {
            if let Some(p) = self.parts.remove(s) {
                self.metrics.forget_partition(&p.topic, p.partition);
            }
        }
        self.publish_assignment();
        self.gauges().draining.store(false, Ordering::Relaxed);
    }
}
