//! Assignment and revocation: what the rebalance callback does through the intake state.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{BATCH_BYTES, Intake, PartitionIntake};
use crate::input::{Batch, SourceInfo};
use crate::service::Signal;
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
            let start = match el.offset() {
                Offset::Offset(o) if o >= 0 => Some(o as u64),
                _ => None,
            };
            let resume = match checkpoints.remove(&(topic.clone(), partition)) {
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
        }
        self.publish_assignment();
        starts
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
