//! The alert producer: its settings, the context that queues its acknowledgements for the
//! delivery thread, and what it can never send (the size bound, the errors retrying cannot fix).

use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, ProducerContext};

use super::ServiceError;
use crate::config::ServiceConfig;

/// The producer's context: acknowledgements are queued for the delivery thread, which polls.
#[derive(Default)]
pub struct Acks {
    queue: Mutex<Vec<(usize, Result<(), KafkaError>)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, token: usize) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // Runs inside `poll` on the delivery thread; the lock is never contended.
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((token, r));
    }
}

impl Acks {
    pub(super) fn take(&self) -> Vec<(usize, Result<(), KafkaError>)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub type AlertProducer = BaseProducer<Acks>;

/// Creates the idempotent alert producer (`acks=all`, lz4 unless configured otherwise).
pub fn create_producer(config: &ServiceConfig) -> Result<AlertProducer, ServiceError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set("client.id", "credtrail-producer");
    for (k, v) in &config.kafka.producer {
        c.set(k, v.expose());
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    c.create_with_context(Acks::default())
        .map_err(|source| ServiceError::Client {
            role: "producer",
            source,
        })
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Room left in a message for a dead letter's headers (reason, source position).
const HEADER_ROOM: usize = crate::config::MESSAGE_HEADER_ROOM;

/// The most raw bytes a dead letter may carry so that it fits the producer's
/// `message.max.bytes` (librdkafka refuses a larger message locally, for good): an event as
/// large as `max_event_bytes` would otherwise stop delivery.
pub fn dead_letter_limit(config: &ServiceConfig) -> usize {
    let max = (config.kafka.producer.get("message.max.bytes"))
        .and_then(|v| v.expose().parse::<usize>().ok())
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    // The configuration refused anything below MIN_MESSAGE_MAX_BYTES at start-up.
    max.saturating_sub(HEADER_ROOM)
}

/// Delivery errors retrying cannot fix: the broker refuses the message itself (too large for
/// the topic, invalid) or the credentials (authorization).
pub(super) fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Fatal
        )
    )
}
