//! Stage 2's changelog through Kafka (see [`crate::cluster::changelog`] for the records and
//! the rule that makes a partition restorable).
//!
//! - [`ChangelogWriter`], owned by the delivery thread: at each completed barrier it writes
//!   each owned hits partition's changed states and ended ones, then its marker when nothing
//!   decided in the partition is unacknowledged. A drain barrier (rebalance, shutdown) waits
//!   for the writes before the commit, so the next owner reads them.
//! - [`read`], on the intake thread at assignment: reads the assigned partitions of the
//!   changelog to their end (a fence per partition, as the checkpoint reader does) into
//!   [`Replica`]s.
//!
//! What is not fenced: an owner cut off from the group that keeps writing (a zombie). Kafka
//! Streams fences one with transactions; here its records would land after the new owner's,
//! the new owner's next marker covers them only for the keys it writes again, and a restore
//! after that could adopt a stale state. A revoked owner stops writing the partition at the
//! revocation, and the drain before it waits for what it wrote (within the flush limit).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::ServiceError;
use super::cluster::{Deliveries, idempotent_producer, send_to};
use super::consumer::side_reader_config;
use crate::cluster::changelog::{
    Book, FENCE_KEY, LastMarkers, MARKER_KEY, Marker, Record, Replica, StateKey, state_key,
};
use crate::config::ServiceConfig;
use crate::metrics::Metrics;
use crate::pipeline::{SequencedEnd, ShardChanges, SourceMark};
use crate::time::EventTime;

fn producer(config: &ServiceConfig, id: &str) -> Result<BaseProducer<Deliveries>, ServiceError> {
    // A changelog is always read from its beginning, never resumed inside a record batch, so
    // its records are batched whatever the operator's producer settings say for the topics a
    // consumer resumes in (one record per batch there, against brokers that answer a fetch
    // from inside a batch with the next one, made a 100,000-state changelog take minutes to
    // read).
    let mut config = config.clone();
    for (k, v) in [("batch.num.messages", "10000"), ("linger.ms", "20")] {
        config
            .kafka
            .producer
            .insert(k.into(), crate::config::PropertyValue::Plain(v.into()));
    }
    idempotent_producer(&config, id, "changelog producer")
}

/// What one barrier hands the writer.
pub struct BarrierState<'a> {
    pub ends: &'a [SequencedEnd],
    pub marks: Vec<SourceMark>,
    pub changes: Vec<ShardChanges>,
    pub watermark: EventTime,
    /// Sources with something decided and not yet acknowledged: no marker for them.
    pub unsettled: &'a HashSet<u32>,
}

/// Writes the changelog of the partitions this instance owns.
pub struct ChangelogWriter {
    topic: String,
    producer: BaseProducer<Deliveries>,
    /// Per owned source: its partition number, and one book per shard.
    owned: HashMap<u32, (i32, Vec<Book>)>,
    /// What the last marker of each owned source said (a marker is written again only when
    /// a restore would find something else).
    marked: LastMarkers,
    /// Owned sources with a state record too large for the producer: no marker for them
    /// while they are owned (their changelog lacks that state).
    oversize: HashSet<u32>,
    /// The largest record the producer takes (`message.max.bytes` less header room).
    max_record: usize,
    metrics: Arc<Metrics>,
    /// A write failed: no marker is written again by this process (a restore would trust
    /// a table with a hole).
    broken: bool,
}

impl ChangelogWriter {
    pub fn new(
        config: &ServiceConfig,
        topic: &str,
        metrics: Arc<Metrics>,
    ) -> Result<ChangelogWriter, ServiceError> {
        Ok(ChangelogWriter {
            topic: topic.to_string(),
            producer: producer(config, "credtrail-changelog")?,
            owned: HashMap::new(),
            marked: LastMarkers::default(),
            oversize: HashSet::new(),
            max_record: super::producer::dead_letter_limit(config),
            metrics,
            broken: false,
        })
    }

    /// A partition was assigned and its changelog read: it holds `keys` (per shard).
    /// `restored`: the shards hold those states now; otherwise they rebuild theirs by replay,
    /// so every key goes (tombstones, before anything the replay changes is written).
    pub fn assigned(
        &mut self,
        source: u32,
        partition: i32,
        keys: Vec<Vec<StateKey>>,
        restored: bool,
    ) -> Result<(), ServiceError> {
        let shards = keys.len();
        let books = if restored {
            keys.into_iter().map(Book::with_keys).collect()
        } else {
            for (t, g) in keys.into_iter().flatten() {
                if let Err(e) = self.send(partition, &state_key(t, &g), None) {
                    self.broken = true;
                    return Err(e);
                }
                Metrics::add(&self.metrics.changelog_records, 1);
            }
            (0..shards).map(|_| Book::default()).collect()
        };
        self.owned.insert(source, (partition, books));
        Ok(())
    }

    /// A partition was revoked: nothing more is written to it.
    pub fn revoked(&mut self, source: u32) {
        self.owned.remove(&source);
        self.marked.forget(source);
        self.oversize.remove(&source);
    }

    /// Writes a barrier's changes and, for each owned partition that is settled, its marker.
    pub fn barrier(&mut self, b: BarrierState<'_>) -> Result<(), ServiceError> {
        self.check_failures();
        let mut pending: HashMap<u32, Vec<crate::vocab::Hit>> = HashMap::new();
        let mut records: HashMap<u32, (i32, Vec<Record>)> = HashMap::new();
        for mut c in b.changes {
            for (&source, (partition, books)) in &mut self.owned {
                let part = c.parts.remove(partition).unwrap_or_default();
                let Some(book) = books.get_mut(c.shard) else {
                    continue;
                };
                if c.whole || !part.states.is_empty() || !part.ended.is_empty() {
                    let out = &mut records.entry(source).or_insert((*partition, Vec::new())).1;
                    book.records(c.whole, &part.states, &part.ended, out);
                }
                pending.entry(source).or_default().extend(part.pending);
            }
            // What is left is of partitions this instance does not own (revoked since).
        }
        for (&source, (partition, recs)) in &records {
            self.marked.records_written(source);
            for (k, v) in recs {
                if v.as_ref()
                    .is_some_and(|v| k.len() + v.len() > self.max_record)
                {
                    if self.oversize.insert(source) {
                        tracing::warn!(
                            partition,
                            bytes = v.as_ref().map_or(0, Vec::len),
                            limit = self.max_record,
                            "a state is larger than the producer's message.max.bytes: no changelog marker for its partition while it is owned here (its next owner replays)"
                        );
                    }
                    continue;
                }
                self.send(*partition, k, v.as_deref())?;
                Metrics::add(&self.metrics.changelog_records, 1);
            }
        }
        if self.broken {
            return Ok(());
        }
        for mark in b.marks {
            let Some((partition, books)) = self.owned.get(&mark.source) else {
                continue;
            };
            let Some(end) = b.ends.iter().find(|e| e.source == mark.source) else {
                continue;
            };
            if b.unsettled.contains(&mark.source) || self.oversize.contains(&mark.source) {
                continue;
            }
            let mut waiting = mark.pending;
            waiting.extend(pending.remove(&mark.source).unwrap_or_default());
            let marker = Marker {
                end: end.end,
                clock: end.clock,
                watermark: b.watermark,
                stamps: mark.stamps,
                pending: waiting,
                live: books.iter().map(Book::live).sum(),
            };
            let Some(digest) = self.marked.due(mark.source, &marker) else {
                continue;
            };
            let partition = *partition;
            let bytes = marker.to_bytes();
            if bytes.len() > self.max_record {
                tracing::debug!(
                    partition,
                    bytes = bytes.len(),
                    "marker larger than a record may be: not written this barrier"
                );
                continue;
            }
            self.send(partition, MARKER_KEY, Some(&bytes))?;
            self.marked.written(mark.source, digest);
            Metrics::add(&self.metrics.changelog_markers, 1);
        }
        Ok(())
    }

    /// Waits up to `limit` for every write so far; false when one failed or is still out.
    pub fn flush(&mut self, limit: Duration) -> bool {
        let flushed = self.producer.flush(limit).is_ok();
        self.check_failures();
        flushed && !self.broken
    }

    fn check_failures(&mut self) {
        let ctx = self.producer.context();
        if ctx.take_failed() > 0 && !self.broken {
            self.broken = true;
            tracing::error!(
                topic = %self.topic,
                last = ?ctx.take_last(),
                "a changelog write failed: no more markers from this process (the next owner of its partitions replays from the commit)"
            );
        }
    }

    fn send(&self, partition: i32, key: &[u8], value: Option<&[u8]>) -> Result<(), ServiceError> {
        send_to(&self.producer, &self.topic, partition, key, value).map_err(|source| {
            ServiceError::ProduceRefused {
                topic: self.topic.clone(),
                source,
            }
        })
    }
}

/// Reads `partitions` of the changelog `topic` to their end, each into a [`Replica`] that
/// keeps at most `limit` bytes of state.
pub fn read(
    config: &ServiceConfig,
    topic: &str,
    partitions: &[i32],
    limit: u64,
    within: Duration,
) -> Result<HashMap<i32, Replica>, ServiceError> {
    let err = |source| ServiceError::Subscribe {
        topics: topic.to_string(),
        source,
    };
    let mut out: HashMap<i32, Replica> = partitions
        .iter()
        .map(|p| (*p, Replica::new(limit)))
        .collect();
    if partitions.is_empty() {
        return Ok(out);
    }
    let deadline = Instant::now() + within;
    let fence = super::checkpoint::fence_token();
    let fencer = producer(config, "credtrail-changelog-fence")?;
    for p in partitions {
        let r = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(*p)
            .key(FENCE_KEY)
            .payload(fence.as_bytes());
        fencer.send(r).map_err(|(e, _)| err(e))?;
    }
    fencer.flush(within).map_err(err)?;
    let consumer: BaseConsumer = side_reader_config(config, "changelog-reader", false)
        .create()
        .map_err(|source| ServiceError::Client {
            role: "changelog reader",
            source,
        })?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(err)?;
    }
    consumer.assign(&tpl).map_err(err)?;
    let mut open: HashSet<i32> = partitions.iter().copied().collect();
    while !open.is_empty() {
        if Instant::now() >= deadline {
            return Err(ServiceError::Cluster(format!(
                "changelog topic `{topic}`: partitions {open:?} not read to their end within {within:?}"
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m.map_err(err)?;
        let (p, key) = (m.partition(), m.key().unwrap_or(&[]));
        if key == FENCE_KEY {
            if m.payload() == Some(fence.as_bytes()) {
                open.remove(&p);
            }
            continue;
        }
        if let Some(r) = out.get_mut(&p)
            && open.contains(&p)
        {
            r.apply(key, m.payload());
        }
    }
    Ok(out)
}
