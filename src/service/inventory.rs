//! The live inventory: the scorer the shards use, replaced while the service runs when the
//! inventory topic (`scoring.inventory_topic`, compacted) brings new identity or secret entries.
//!
//! At start the topic is read to its end (every partition at end of partition, bounded by
//! [`CATCH_UP_LIMIT`]) before any input is consumed, so the first alerts already see it. Then a
//! thread keeps reading; changes are batched and published at most every [`PUBLISH_EVERY`]: the
//! overlay is rebuilt into a new [`Inventory`] and a new [`Assessor`] swapped in. Shards pick it
//! up between two messages. An update applies from the moment it is published, in wall-clock
//! time: a replay of the same events after an inventory change may score differently, which is
//! the point (the alert says what the identity could reach when it was decided).
//!
//! The reader is assign-only (no group, no commits): every start reads the whole topic, which a
//! compacted topic keeps small.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::ServiceError;
use super::consumer::side_reader_config;
use crate::config::ServiceConfig;
use crate::inventory::Inventory;
use crate::inventory::overlay::Overlay;
use crate::metrics::Metrics;
use crate::score::{Assessor, LiveAssessor};

/// Longest wait for the topic to be read to its end at start.
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);
/// Changes are published at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Most entries the topic may add (keys); more are refused and counted.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Reads the inventory topic and publishes what it says.
pub struct InventoryFeed {
    consumer: BaseConsumer,
    topic: String,
    partitions: Vec<i32>,
    overlay: Overlay,
    template: Arc<Assessor>,
    live: Arc<LiveAssessor>,
    metrics: Arc<Metrics>,
    dirty: bool,
    published: Instant,
}

impl InventoryFeed {
    /// Connects to `topic` and assigns every partition from the beginning; `base` is the
    /// scorer built from the config (its inventory file is the overlay's base).
    pub fn new(
        config: &ServiceConfig,
        topic: &str,
        live: Arc<LiveAssessor>,
        metrics: Arc<Metrics>,
    ) -> Result<InventoryFeed, ServiceError> {
        let err = |source| ServiceError::Client {
            role: "inventory reader",
            source,
        };
        let consumer: BaseConsumer = side_reader_config(config, "inventory-reader", true)
            .create()
            .map_err(err)?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(err)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(err)?;
        }
        consumer.assign(&tpl).map_err(err)?;
        let (_, template) = live.current();
        Ok(InventoryFeed {
            consumer,
            topic: topic.to_string(),
            partitions,
            overlay: Overlay::new(template.inventory.clone(), MAX_ENTRIES),
            template,
            live,
            metrics,
            dirty: false,
            published: Instant::now(),
        })
    }

    /// Reads until every partition reached its end (or `limit`), then publishes. Returns
    /// whether the end was reached.
    pub fn catch_up(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut at_end: HashSet<i32> = HashSet::new();
        while at_end.len() < self.partitions.len() && Instant::now() < deadline {
            if let Some(p) = self.poll(Duration::from_millis(100)) {
                at_end.insert(p);
            }
        }
        let done = at_end.len() >= self.partitions.len();
        if !done {
            tracing::warn!(
                topic = %self.topic,
                limit = ?limit,
                "inventory topic not read to its end at start; the rest applies as it arrives"
            );
        }
        self.publish();
        done
    }

    /// Keeps reading until `stop` is set, publishing changes at most every [`PUBLISH_EVERY`].
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            self.poll(Duration::from_millis(100));
            if self.dirty && self.published.elapsed() >= PUBLISH_EVERY {
                self.publish();
            }
        }
        if self.dirty {
            self.publish();
        }
    }

    /// Polls once and applies what came; returns the partition that reached its end, if any.
    fn poll(&mut self, timeout: Duration) -> Option<i32> {
        match self.consumer.poll(timeout)? {
            Ok(m) => {
                match self.overlay.apply(m.key(), m.payload()) {
                    Ok(changed) => {
                        self.dirty |= changed;
                        Metrics::add(&self.metrics.inventory_records, 1);
                    }
                    Err(e) => {
                        Metrics::add(&self.metrics.inventory_rejected, 1);
                        tracing::warn!(
                            topic = %self.topic,
                            partition = m.partition(),
                            offset = m.offset(),
                            error = %e,
                            "inventory record refused"
                        );
                    }
                }
                None
            }
            Err(KafkaError::PartitionEOF(p)) => Some(p),
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "inventory topic read error");
                None
            }
        }
    }

    fn publish(&mut self) {
        self.dirty = false;
        self.published = Instant::now();
        let inventory = match self.overlay.build() {
            Ok(i) => i,
            Err(e) => {
                // Each entry was checked alone; a combined failure keeps the last good one.
                tracing::error!(error = %e, "inventory not rebuilt; the previous one stays");
                return;
            }
        };
        let entries = inventory.len();
        self.live
            .publish(Arc::new(with_inventory(&self.template, inventory)));
        Metrics::add(&self.metrics.inventory_versions, 1);
        tracing::info!(topic = %self.topic, entries, updates = self.overlay.len(), "inventory published");
    }
}

/// `template`'s settings with another inventory.
fn with_inventory(template: &Assessor, inventory: Inventory) -> Assessor {
    Assessor {
        inventory: Some(Arc::new(inventory)),
        config: template.config.clone(),
        escalate_at: template.escalate_at,
    }
}
