//! The input consumer: one consumer group (cooperative-sticky) over the input topics, with a
//! librdkafka context that forwards statistics to metrics and runs rebalances through the
//! [`Intake`] state (librdkafka calls back from inside `poll`, so the state lives here).

use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::ServiceError;
use super::intake::Intake;
use crate::config::ServiceConfig;
use crate::metrics::Metrics;

/// The consumer's context: forwards statistics to metrics and runs rebalances through the
/// intake state (which lives here because librdkafka calls back from inside `poll`).
pub struct IntakeContext {
    metrics: Arc<Metrics>,
    pub(super) intake: Mutex<Option<Intake>>,
    /// Offset commits the broker answered, in the order of their callbacks: an offset counts
    /// as committed only from here (an asynchronous commit is merely queued when it returns).
    pub(super) commit_results: Mutex<Vec<CommitResult>>,
}

/// What the broker answered to one offset commit: the result and (topic, partition, offset).
pub type CommitResult = (
    Result<(), rdkafka::error::KafkaError>,
    Vec<(String, i32, i64)>,
);

impl ClientContext for IntakeContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, s) in &t.partitions {
                if *p >= 0 && s.consumer_lag >= 0 {
                    self.metrics.consumer_lag(topic, *p, s.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for IntakeContext {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        let offsets = (offsets.elements().iter())
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o)),
                _ => None,
            })
            .collect();
        self.commit_results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((result, offsets));
    }

    /// Replaces librdkafka's default handling to start every assigned partition at the offset
    /// the intake decided (its committed offset, read with the checkpoint that goes with it)
    /// instead of letting the client look it up again, and to drain revoked partitions before
    /// giving them up.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut guard = self.intake.lock().unwrap_or_else(|e| e.into_inner());
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(intake) = guard.as_mut() {
                    for (topic, partition, offset) in intake.assign(consumer, tpl) {
                        let _ = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset));
                    }
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Some(intake) = guard.as_mut() {
                    intake.revoke(consumer, tpl);
                }
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; giving up the assignment");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot apply the rebalance");
        }
    }
}

pub type InputConsumer = BaseConsumer<IntakeContext>;

/// The settings of an assign-only reader of a side topic (checkpoints, inventory) called
/// `role`: the user's consumer properties, and a group id librdkafka requires but that is never
/// joined or committed to.
pub fn side_reader_config(config: &ServiceConfig, role: &str, eof: bool) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("client.id", format!("credtrail-{role}"));
    for (k, v) in &config.kafka.consumer {
        c.set(k, v.expose());
    }
    c.set("group.id", format!("{}-{role}", config.kafka.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" });
    c
}

/// Creates the consumer (not yet subscribed).
pub fn create_consumer(
    config: &ServiceConfig,
    metrics: Arc<Metrics>,
) -> Result<InputConsumer, ServiceError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("client.id", "credtrail-consumer")
        .set("auto.offset.reset", "earliest")
        // Throughput: keep a deep local queue, back off briefly when it is full, and let a
        // fetch wait for data rather than spin.
        .set("queued.min.messages", "100000")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100")
        .set("statistics.interval.ms", "5000");
    for (k, v) in &config.kafka.consumer {
        c.set(k, v.expose());
    }
    c.set("group.id", &config.kafka.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "false");
    c.create_with_context(IntakeContext {
        metrics,
        intake: Mutex::new(None),
        commit_results: Mutex::new(Vec::new()),
    })
    .map_err(|source| ServiceError::Client {
        role: "consumer",
        source,
    })
}
