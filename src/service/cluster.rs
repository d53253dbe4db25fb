//! The service as a member of a cluster (`[cluster] enabled = true`): both stages of
//! [`crate::cluster`] in one process, each an engine with its own consumer group.
//!
//! - Stage 1 reads the input topics in the configured group, forwards resolved hits and stamps
//!   to the hits topic ([`KafkaHits`]) and its credential links and their stamps to the lineage
//!   topic, and follows the lineage topic whole ([`LineageFeed`]), so every instance resolves a
//!   session to its caller whoever read the `AssumeRole`.
//! - Stage 2 reads the hits topic in group `<group>-correlate`, with a clock from the stamps
//!   of every input partition, and correlates and alerts as one engine does.
//!
//! Each stage commits its own offsets: stage 1 once the records an offset produced are
//! stored, stage 2 once the alerts are (the ledger, as always). Both stop together.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::ServiceError;
use super::consumer::side_reader_config;
use crate::cluster::frontier::{Frontier, Inputs};
use crate::cluster::record::Record;
use crate::config::ServiceConfig;
use crate::identity::Link;
use crate::pipeline::forward::{HitSink, SinkError};
use crate::time::EventTime;

/// How long a metadata lookup, a flush, or a full producer queue may take.
const IO_LIMIT: Duration = Duration::from_secs(30);

/// Counts failed deliveries (the sink's flush reports them).
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    last: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl Deliveries {
    /// Failed deliveries since the last call.
    pub fn take_failed(&self) -> u64 {
        self.failed.swap(0, Ordering::Relaxed)
    }

    /// The last failure's reason, if any since the last call.
    pub fn take_last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
    }
}

/// A topic of the cluster as a [`HitSink`]: records to explicit partitions, idempotent.
pub struct KafkaHits {
    topic: String,
    producer: BaseProducer<Deliveries>,
    partitions: u32,
}

/// The partition count of `topic`; an error naming it when it does not exist.
pub fn partition_count(config: &ServiceConfig, topic: &str) -> Result<u32, ServiceError> {
    let client: BaseConsumer = side_reader_config(config, "metadata", false)
        .create()
        .map_err(|source| ServiceError::Client {
            role: "metadata reader",
            source,
        })?;
    let md = client
        .fetch_metadata(Some(topic), IO_LIMIT)
        .map_err(|source| ServiceError::Subscribe {
            topics: topic.to_string(),
            source,
        })?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len() as u32);
    if n == 0 {
        return Err(ServiceError::Cluster(format!(
            "topic `{topic}` does not exist or has no partitions: create it before starting the cluster (deploy/ creates every topic)"
        )));
    }
    Ok(n)
}

/// An idempotent producer (acks from every in-sync replica) for the cluster's own topics,
/// with the operator's producer settings.
pub fn idempotent_producer(
    config: &ServiceConfig,
    client_id: &str,
    role: &'static str,
) -> Result<BaseProducer<Deliveries>, ServiceError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("client.id", client_id);
    for (k, v) in &config.kafka.producer {
        c.set(k, v.expose());
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    c.create_with_context(Deliveries::default())
        .map_err(|source| ServiceError::Client { role, source })
}

/// Hands one record (`value` `None`: a tombstone) to `producer` for an explicit partition,
/// waiting while its queue is full, up to [`IO_LIMIT`].
pub fn send_to(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    partition: i32,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + IO_LIMIT;
    loop {
        let mut r = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .key(key);
        if let Some(v) = value {
            r = r.payload(v);
        }
        match producer.send(r) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                if Instant::now() < deadline =>
            {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

impl KafkaHits {
    pub fn new(config: &ServiceConfig, topic: &str) -> Result<KafkaHits, ServiceError> {
        let partitions = partition_count(config, topic)?;
        let producer =
            idempotent_producer(config, &format!("credtrail-{topic}"), "cluster producer")?;
        Ok(KafkaHits {
            topic: topic.to_string(),
            producer,
            partitions,
        })
    }

    fn err(&self, reason: String) -> SinkError {
        SinkError {
            target: self.topic.clone(),
            reason,
        }
    }
}

impl HitSink for KafkaHits {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn send(&mut self, partition: i32, key: &str, record: &[u8]) -> Result<(), SinkError> {
        send_to(
            &self.producer,
            &self.topic,
            partition,
            key.as_bytes(),
            Some(record),
        )
        .map_err(|e| self.err(e.to_string()))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.producer
            .flush(IO_LIMIT)
            .map_err(|e| self.err(e.to_string()))?;
        let ctx = self.producer.context();
        let failed = ctx.take_failed();
        if failed > 0 {
            let last = ctx.take_last();
            return Err(self.err(format!(
                "{failed} record(s) not delivered, last: {}",
                last.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

/// What the lineage topic said since the last update.
#[derive(Debug)]
pub struct LineageUpdate {
    pub links: Vec<Link>,
    /// How far every input partition's links are in: the minimum over the lineage partitions.
    pub frontier: EventTime,
}

/// Follows every partition of the lineage topic from its beginning.
pub struct LineageFeed {
    consumer: BaseConsumer,
    frontiers: Vec<Frontier>,
    topic: String,
}

impl LineageFeed {
    pub fn new(config: &ServiceConfig, inputs: Arc<Inputs>) -> Result<LineageFeed, ServiceError> {
        let topic = config.cluster.lineage_topic.clone();
        let n = partition_count(config, &topic)?;
        let consumer: BaseConsumer = side_reader_config(config, "lineage", false)
            .create()
            .map_err(|source| ServiceError::Client {
                role: "lineage reader",
                source,
            })?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..n as i32 {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .map_err(|source| ServiceError::Subscribe {
                    topics: topic.clone(),
                    source,
                })?;
        }
        consumer
            .assign(&tpl)
            .map_err(|source| ServiceError::Subscribe {
                topics: topic.clone(),
                source,
            })?;
        Ok(LineageFeed {
            consumer,
            frontiers: (0..n).map(|_| Frontier::new(inputs.clone())).collect(),
            topic,
        })
    }

    /// Reads until `stop`, handing updates to `tx` (bounded: waits while the engine is busy).
    pub fn run(mut self, tx: Sender<LineageUpdate>, stop: &AtomicBool) {
        let mut sent = EventTime::MIN;
        let mut refused = 0u64;
        while !stop.load(Ordering::Acquire) {
            let mut links = Vec::new();
            let started = Instant::now();
            while links.len() < 4096 && started.elapsed() < Duration::from_millis(50) {
                let Some(m) = self.consumer.poll(Duration::from_millis(20)) else {
                    break;
                };
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "lineage read failed; retrying");
                        continue;
                    }
                };
                let read = Record::parse(m.payload().unwrap_or(&[])).and_then(|r| match r {
                    Record::Link(l) => l.into_link(None).map(Some),
                    Record::Stamp(s) => {
                        if let Some(f) = self.frontiers.get_mut(m.partition() as usize)
                            && let Err(e) = f.stamp(&s)
                        {
                            tracing::warn!(topic = %self.topic, error = %e, "lineage stamp ignored");
                        }
                        Ok(None)
                    }
                    Record::Hit(_) => Err(crate::cluster::record::RecordError::Malformed(
                        "a hit in the lineage topic".into(),
                    )),
                });
                match read {
                    Ok(Some(link)) => links.push(link),
                    Ok(None) => {}
                    Err(e) => {
                        refused += 1;
                        tracing::warn!(topic = %self.topic, partition = m.partition(), offset = m.offset(), error = %e, refused, "lineage record refused");
                    }
                }
            }
            let frontier = self
                .frontiers
                .iter()
                .map(Frontier::time)
                .min()
                .unwrap_or(EventTime::MIN);
            if links.is_empty() && frontier == sent {
                continue;
            }
            let mut update = LineageUpdate { links, frontier };
            loop {
                match tx.send_timeout(update, Duration::from_millis(100)) {
                    Ok(()) => break,
                    Err(crossbeam_channel::SendTimeoutError::Timeout(u)) => {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        update = u;
                    }
                    Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
                }
            }
            sent = frontier;
        }
    }
}

/// The input partitions of the cluster, from the broker.
pub fn cluster_inputs(config: &ServiceConfig) -> Result<Arc<Inputs>, ServiceError> {
    let mut topics = Vec::new();
    for input in &config.inputs {
        topics.push((
            input.topic.clone(),
            partition_count(config, &input.topic)? as i32,
        ));
    }
    Ok(Arc::new(Inputs::new(topics)))
}

/// Stage 2's config: the hits topic as its one input, in its own group.
pub fn correlate_config(config: &ServiceConfig) -> ServiceConfig {
    let mut c = config.clone();
    c.kafka.group = format!("{}-correlate", config.kafka.group);
    c.inputs = vec![crate::config::InputTopic {
        topic: config.cluster.hits_topic.clone(),
        profile: None,
        lateness: crate::time::Span::ZERO,
        max_future_skew: crate::time::Span(i64::MAX),
        records: true,
    }];
    c
}

/// A bounded channel for lineage updates.
pub fn lineage_channel() -> (Sender<LineageUpdate>, Receiver<LineageUpdate>) {
    bounded(64)
}
