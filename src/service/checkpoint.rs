//! Checkpoints: each partition's replay metadata ([`Resume`]) next to its committed offset, in a
//! compacted topic keyed by consumer group, topic and partition.
//!
//! Why a topic and not the offset commit's own metadata field: some Kafka-protocol brokers do not
//! keep commit metadata (tansu returns it empty), and Apache Kafka bounds it to 4 KiB. A record
//! is written (and acknowledged) before the offset it describes is committed; on assignment the
//! latest record of the partition is used only if its offset equals the committed offset, so a
//! crash between the two steps never pairs an offset with metadata of another one (the replay
//! then runs without suppression, and may re-emit alerts with their same ids).
//!
//! The topic is read to its end by writing a fence record and reading until it comes back, which
//! works on brokers whose offset listing is unreliable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::side_reader_config;
use super::ledger::Resume;
use crate::config::ServiceConfig;

/// One partition's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    pub offset: u64,
    pub resume: Resume,
}

/// Why checkpoints could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint topic {topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("checkpoint topic {topic}: not read to its end within {limit:?}")]
    Timeout { topic: String, limit: Duration },
}

/// The checkpoint producer's context: counts records the broker did not take.
#[derive(Default)]
pub struct Failures(AtomicU64);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes and reads the checkpoints of one consumer group.
pub struct Checkpoints {
    topic: String,
    group: String,
    producer: BaseProducer<Failures>,
    reader_config: ClientConfig,
}

/// A value no other reader writes: this process and the time, for a fence record that says
/// the topic was read to its end when it comes back.
pub(super) fn fence_token() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

fn key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}\u{1f}{topic}\u{1f}{partition}")
}

impl Checkpoints {
    pub fn new(config: &ServiceConfig) -> Result<Checkpoints, CheckpointError> {
        let topic = config.kafka.checkpoint_topic.clone();
        let err = |source| CheckpointError::Kafka {
            topic: topic.clone(),
            source,
        };
        let mut p = ClientConfig::new();
        p.set("bootstrap.servers", &config.kafka.brokers)
            .set("client.id", "credtrail-checkpoints")
            .set("linger.ms", "0");
        for (k, v) in &config.kafka.producer {
            p.set(k, v.expose());
        }
        p.set("enable.idempotence", "true").set("acks", "all");
        let producer = p.create_with_context(Failures::default()).map_err(err)?;
        let r = side_reader_config(config, "checkpoint-reader", false);
        Ok(Checkpoints {
            topic,
            group: config.kafka.group.clone(),
            producer,
            reader_config: r,
        })
    }

    fn err(&self, source: KafkaError) -> CheckpointError {
        CheckpointError::Kafka {
            topic: self.topic.clone(),
            source,
        }
    }

    /// Hands `points` to the producer without waiting; see [`acknowledged`](Self::acknowledged)
    /// and [`failures`](Self::failures).
    pub fn send(&self, points: &[Checkpoint]) -> Result<(), CheckpointError> {
        for c in points {
            let k = key(&self.group, &c.topic, c.partition);
            let v = format!("{} {}", c.offset, c.resume.encode());
            self.producer
                .send(BaseRecord::to(&self.topic).key(&k).payload(&v))
                .map_err(|(e, _)| self.err(e))?;
        }
        Ok(())
    }

    /// Whether every record sent so far was answered by the broker (serves its callbacks).
    pub fn acknowledged(&self) -> bool {
        self.producer.poll(Duration::ZERO);
        self.producer.in_flight_count() == 0
    }

    /// Waits up to `limit` until every record sent so far was answered.
    pub fn wait(&self, limit: Duration) -> bool {
        self.producer.flush(limit).is_ok() && self.producer.in_flight_count() == 0
    }

    /// Records the broker refused so far.
    pub fn failures(&self) -> u64 {
        self.producer.context().0.load(Ordering::Relaxed)
    }

    /// Reads the topic to its end and returns the latest checkpoint of each wanted partition.
    pub fn read(
        &self,
        wanted: &[(String, i32)],
        limit: Duration,
    ) -> Result<HashMap<(String, i32), Checkpoint>, CheckpointError> {
        let deadline = Instant::now() + limit;
        let fence_key = format!("{}\u{1f}fence", self.group);
        let fence = fence_token();
        let consumer: BaseConsumer = self.reader_config.create().map_err(|e| self.err(e))?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), limit)
            .map_err(|e| self.err(e))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&self.topic, *p, Offset::Beginning)
                .map_err(|e| self.err(e))?;
        }
        // One fence per partition: the topic is read to its end when every fence came back.
        for p in &partitions {
            self.producer
                .send(
                    BaseRecord::to(&self.topic)
                        .partition(*p)
                        .key(&fence_key)
                        .payload(&fence),
                )
                .map_err(|(e, _)| self.err(e))?;
        }
        self.producer.flush(limit).map_err(|e| self.err(e))?;
        consumer.assign(&tpl).map_err(|e| self.err(e))?;
        let mut fences_left = partitions.len();
        let mut out = HashMap::new();
        let wanted_keys: HashMap<String, &(String, i32)> = wanted
            .iter()
            .map(|w| (key(&self.group, &w.0, w.1), w))
            .collect();
        loop {
            if Instant::now() >= deadline {
                return Err(CheckpointError::Timeout {
                    topic: self.topic.clone(),
                    limit,
                });
            }
            let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let m = m.map_err(|e| self.err(e))?;
            let (Some(k), Some(v)) = (m.key(), m.payload()) else {
                continue;
            };
            let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) else {
                continue;
            };
            if k == fence_key {
                if v == fence {
                    fences_left -= 1;
                    if fences_left == 0 {
                        return Ok(out);
                    }
                }
                continue;
            }
            let Some(w) = wanted_keys.get(k) else {
                continue;
            };
            let Some((offset, rest)) = v.split_once(' ') else {
                continue;
            };
            let (Ok(offset), Ok(Some(resume))) = (offset.parse::<u64>(), Resume::decode(rest))
            else {
                tracing::warn!(key = k, "checkpoint record not understood; ignored");
                continue;
            };
            out.insert(
                (*w).clone(),
                Checkpoint {
                    topic: w.0.clone(),
                    partition: w.1,
                    offset,
                    resume,
                },
            );
        }
    }
}
