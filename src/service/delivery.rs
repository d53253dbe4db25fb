//! Delivery: the service's [`Sink`], run on the engine's output thread: it produces alerts and
//! dead letters, handles their acknowledgements, and decides commits (through the [`Ledger`]).
//! With incidents on, each line joins its incident's unit in the ledger, so a restart replays
//! every open incident whole and suppresses the lines already on the topic (see [`super::ledger`]).
//!
//! Acknowledgements are handled before new input on every turn ([`Sink::poll`]). A message whose delivery failed
//! (after librdkafka's own retries) is produced again with a backoff, never dropped; its offsets
//! stay held meanwhile (a repeated failure is logged at most every ten seconds). A permanent error
//! (a fatal idempotence error, a message too large for the topic, a refused authorization)
//! stops the service with that error rather than retry forever, stall or lose.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use super::ledger::{Ledger, Owner, UnitId, short_id, spans_of};
use super::producer::is_permanent;
pub use super::producer::{AlertProducer, create_producer, dead_letter_limit};
use super::{Mailbox, ServiceError};
use crate::alert::OCSF_VERSION;
use crate::alert::incident::Activity;
use crate::config::{ServiceConfig, ShutdownStep};
use crate::correlate::Target;
use crate::deadletter::DeadLetter;
use crate::input::{SourceInfo, Sources};
use crate::metrics::Metrics;
use crate::pipeline::writer::{Rendered, Sink};
use crate::pipeline::{Bookkeeping, SequencedEnd};

mod bookkeeping;

/// Pause before producing a failed message again.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// Arrival times kept per partition for the latency histogram.
const ARRIVALS_KEPT: usize = 4096;

/// What the delivery thread needs.
pub struct Context<'a> {
    pub config: &'a ServiceConfig,
    pub sources: Arc<RwLock<Sources>>,
    pub metrics: Arc<Metrics>,
    pub mailbox: Arc<Mailbox>,
    pub shards: usize,
    /// Which of the instance's gauges this engine writes.
    pub part: crate::metrics::Part,
}

/// What the delivery thread did.
#[derive(Clone, Debug, Default)]
pub struct DeliveryReport {
    pub alerts: u64,
    pub suppressed: u64,
    pub dead_letters: u64,
}

enum What {
    Alert {
        unit: UnitId,
        rule: String,
        last: (u32, u64),
    },
    DeadLetter {
        source: u32,
        offset: u64,
    },
}

struct Outgoing {
    topic_is_alert: bool,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
    what: What,
}

struct Barrier {
    epoch: u64,
    drain: bool,
    ends: Vec<SequencedEnd>,
    holds: HashMap<u32, u64>,
    reports: usize,
    states: u64,
    state_bytes: u64,
    evicted: u64,
    links_evicted: u64,
    started: Instant,
    /// Stage 2 with a changelog: what the sequencer and the shards gave for it.
    marks: Vec<crate::pipeline::SourceMark>,
    watermark: crate::time::EventTime,
    changes: Vec<crate::pipeline::ShardChanges>,
    /// Sources with findings waiting in the output's merge when a shard reported.
    unsent: std::collections::HashSet<u32>,
}

/// The service's sink: the producer, what it has in flight, and the ledger.
pub struct Delivery<'a> {
    ctx: Context<'a>,
    producer: &'a AlertProducer,
    ledger: Ledger,
    inflight: HashMap<usize, Outgoing>,
    retry: VecDeque<(Instant, Outgoing)>,
    next_token: usize,
    barriers: VecDeque<Barrier>,
    arrivals: HashMap<u32, VecDeque<(u64, Instant)>>,
    report: DeliveryReport,
    /// Retried deliveries are logged at most every ten seconds.
    errors: super::errorlog::ErrorLog,
    /// Most bytes of an event's raw payload a dead letter carries (see [`dead_letter_limit`]).
    dead_letter_limit: usize,
    /// Stage 2 with a changelog.
    changelog: Option<super::changelog::ChangelogWriter>,
}

impl<'a> Delivery<'a> {
    pub fn new(ctx: Context<'a>, producer: &'a AlertProducer) -> Delivery<'a> {
        Delivery {
            producer,
            ledger: Ledger::new(),
            inflight: HashMap::new(),
            retry: VecDeque::new(),
            next_token: 0,
            barriers: VecDeque::new(),
            arrivals: HashMap::new(),
            report: DeliveryReport::default(),
            errors: Default::default(),
            dead_letter_limit: dead_letter_limit(ctx.config),
            changelog: None,
            ctx,
        }
    }

    /// Stage 2 with a changelog: writes it at each barrier.
    pub fn with_changelog(mut self, writer: super::changelog::ChangelogWriter) -> Self {
        self.changelog = Some(writer);
        self
    }
}

impl Sink for Delivery<'_> {
    type Report = DeliveryReport;
    type Error = ServiceError;

    fn poll(&mut self) -> Result<(), ServiceError> {
        self.handle_acks()?;
        self.complete_barriers()
    }

    fn alert(&mut self, a: Rendered<'_>) -> Result<(), ServiceError> {
        self.produce_alert(a)
    }

    fn dead_letter(&mut self, letter: DeadLetter, replayed: bool) -> Result<(), ServiceError> {
        // A restart's replay must drop these again: a late verdict depends on the clock
        // restored at the replay's end, a future one on the wall clock, which has moved on.
        if letter.kind == "late" || letter.kind == "future" {
            self.ledger.late(letter.pos.source, letter.pos.offset);
        }
        if !replayed {
            self.produce_dead_letter(letter)?;
        }
        Ok(())
    }

    fn control(&mut self, msg: Bookkeeping) -> Result<(), ServiceError> {
        self.bookkeeping(msg);
        Ok(())
    }

    /// Flushes the producer within the flush deadline.
    fn finish(mut self) -> Result<DeliveryReport, ServiceError> {
        let deadline = Instant::now() + self.ctx.config.shutdown.step(ShutdownStep::Flush);
        while (!self.inflight.is_empty() || !self.retry.is_empty()) && Instant::now() < deadline {
            self.handle_acks()?;
        }
        Ok(self.report)
    }
}

impl Delivery<'_> {
    fn produce_alert(&mut self, a: Rendered<'_>) -> Result<(), ServiceError> {
        let (f, rules, uid) = (a.finding, a.rules, a.uid);
        let spans = spans_of(f.events.iter().map(|(e, _)| (e.pos.source, e.pos.offset)));
        let id = short_id(uid);
        let owner = match a.incident {
            None => Owner::Alone,
            Some(i) => Owner::Incident {
                id: short_id(&i.uid),
                closes: i.activity == Activity::Close,
            },
        };
        let meta = match f.target {
            Target::Correlation(c) => &rules.meta[rules.correlations[c as usize].rule as usize],
            Target::Detection(d) => rules.detection_meta(d),
        };
        if self.ledger.take_restored(id, &spans) {
            let unit = self.ledger.line(owner, id, spans);
            self.ledger.delivered(unit);
            self.report.suppressed += 1;
            Metrics::add(&self.ctx.metrics.alerts_suppressed, 1);
            return Ok(());
        }
        let unit = self.ledger.line(owner, id, spans);
        let rule_id = meta.id.clone().unwrap_or_else(|| meta.title.clone());
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "credtrail.rule_id",
                value: Some(rule_id.as_str()),
            })
            .insert(Header {
                key: "credtrail.alert_id",
                value: Some(uid),
            })
            .insert(Header {
                key: "credtrail.schema_version",
                value: Some(&format!("ocsf-{OCSF_VERSION}")),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            });
        // The line's own id is `credtrail.alert_id`; its incident's id (`finding_info.uid`)
        // lets a consumer route lines without parsing them.
        let headers = match a.incident {
            Some(i) => headers.insert(Header {
                key: "credtrail.incident_id",
                value: Some(i.uid.as_str()),
            }),
            None => headers,
        };
        let key = f.group.as_bytes().to_vec();
        let headers = match &self.ctx.config.signing.keys {
            Some(keys) => {
                // Signed once, when decided: a retried send carries the same signature.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let signature = keys.sign(uid, now, &key, a.line);
                signature
                    .headers()
                    .iter()
                    .fold(headers, |h, (name, value)| {
                        h.insert(Header {
                            key: name,
                            value: Some(value.as_str()),
                        })
                    })
            }
            None => headers,
        };
        let last = f
            .events
            .last()
            .map_or((0, 0), |(e, _)| (e.pos.source, e.pos.offset));
        if a.line.len() > self.dead_letter_limit {
            // The producer would refuse it for good and stop delivery: the alert goes to the
            // dead-letter topic instead, cut to fit, with its id and why (its acknowledgement
            // settles the alert in the ledger like a delivery would).
            tracing::warn!(
                alert_id = uid,
                bytes = a.line.len(),
                limit = self.dead_letter_limit,
                "alert larger than the producer's message.max.bytes: dead-lettered"
            );
            let reason = format!(
                "alert {uid} is {} bytes, more than the producer's message.max.bytes allows ({} with headers)",
                a.line.len(),
                self.dead_letter_limit
            );
            let headers = headers
                .insert(Header {
                    key: "credtrail.reason",
                    value: Some("alert_too_large"),
                })
                .insert(Header {
                    key: "credtrail.reason_detail",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "credtrail.truncated",
                    value: Some("true"),
                });
            return self.send(Outgoing {
                topic_is_alert: false,
                key: Some(f.group.as_bytes().to_vec()),
                payload: a.line[..self.dead_letter_limit].to_vec(),
                headers,
                what: What::Alert {
                    unit,
                    rule: meta.title.clone(),
                    last,
                },
            });
        }
        self.send(Outgoing {
            topic_is_alert: true,
            key: Some(key),
            payload: a.line.to_vec(),
            headers,
            what: What::Alert {
                unit,
                rule: meta.title.clone(),
                last,
            },
        })
    }

    fn produce_dead_letter(&mut self, mut d: DeadLetter) -> Result<(), ServiceError> {
        // Cut to what the producer accepts; `credtrail.truncated` and the reason say so.
        if d.raw.len() > self.dead_letter_limit {
            d.raw.truncate(self.dead_letter_limit);
        }
        if d.reason.len() > 4096 {
            let mut cut = 4096;
            while !d.reason.is_char_boundary(cut) {
                cut -= 1;
            }
            d.reason.truncate(cut);
        }
        let (topic, partition) = {
            let sources = self.ctx.sources.read().unwrap_or_else(|e| e.into_inner());
            match sources.get(d.pos.source) {
                Some(SourceInfo::Kafka { topic, partition }) => (topic.clone(), *partition),
                _ => (String::new(), -1),
            }
        };
        let offset = d.pos.offset.to_string();
        let partition_text = partition.to_string();
        let headers = OwnedHeaders::new_with_capacity(6)
            .insert(Header {
                key: "credtrail.reason",
                value: Some(d.kind),
            })
            .insert(Header {
                key: "credtrail.reason_detail",
                value: Some(d.reason.as_str()),
            })
            .insert(Header {
                key: "credtrail.source_topic",
                value: Some(topic.as_str()),
            })
            .insert(Header {
                key: "credtrail.source_partition",
                value: Some(partition_text.as_str()),
            })
            .insert(Header {
                key: "credtrail.source_offset",
                value: Some(offset.as_str()),
            })
            .insert(Header {
                key: "credtrail.truncated",
                value: Some(if d.truncated() { "true" } else { "false" }),
            });
        self.ledger.dead_letter_sent(d.pos.source, d.pos.offset);
        self.report.dead_letters += 1;
        self.send(Outgoing {
            topic_is_alert: false,
            key: None,
            payload: d.raw,
            headers,
            what: What::DeadLetter {
                source: d.pos.source,
                offset: d.pos.offset,
            },
        })
    }

    /// Hands a message to librdkafka, waiting (and handling acknowledgements) while its queue is
    /// full: backpressure, never a drop.
    fn send(&mut self, out: Outgoing) -> Result<(), ServiceError> {
        loop {
            let token = self.next_token;
            let topic = if out.topic_is_alert {
                &self.ctx.config.kafka.alert_topic
            } else {
                &self.ctx.config.kafka.dead_letter_topic
            };
            let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, token)
                .payload(&out.payload[..])
                .headers(out.headers.clone());
            if let Some(k) = &out.key {
                record = record.key(&k[..]);
            }
            match self.producer.send(record) {
                Ok(()) => {
                    self.next_token += 1;
                    self.inflight.insert(token, out);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.ctx.metrics.heartbeats.beat_named("output");
                    self.producer.poll(Duration::from_millis(10));
                    self.handle_acks()?;
                }
                Err((e, _)) => {
                    return Err(ServiceError::ProduceRefused {
                        topic: topic.clone(),
                        source: e,
                    });
                }
            }
        }
    }

    fn handle_acks(&mut self) -> Result<(), ServiceError> {
        self.producer.poll(Duration::ZERO);
        for (token, result) in self.producer.context().take() {
            let Some(out) = self.inflight.remove(&token) else {
                continue;
            };
            match result {
                Ok(()) => self.acked(out),
                Err(e) if is_permanent(&e) => {
                    // Retrying cannot help: stop with the reason rather than retry forever.
                    self.ctx
                        .metrics
                        .failed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    let kafka = &self.ctx.config.kafka;
                    let topic = if out.topic_is_alert {
                        kafka.alert_topic.clone()
                    } else {
                        kafka.dead_letter_topic.clone()
                    };
                    return Err(ServiceError::ProducePermanent { topic, source: e });
                }
                Err(e) => {
                    if let Some(repeated) = self.errors.due() {
                        tracing::warn!(error = %e, repeated, "delivery failed; producing the message again");
                    }
                    Metrics::add(&self.ctx.metrics.produce_retries, 1);
                    self.retry.push_back((Instant::now() + RETRY_BACKOFF, out));
                }
            }
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Err(ServiceError::ProducerFatal { code, reason });
        }
        while self
            .retry
            .front()
            .is_some_and(|(t, _)| *t <= Instant::now())
        {
            if let Some((_, out)) = self.retry.pop_front() {
                self.send(out)?;
            }
        }
        Ok(())
    }

    fn acked(&mut self, out: Outgoing) {
        match out.what {
            What::Alert { unit, rule, last } => {
                self.ledger.delivered(unit);
                self.report.alerts += 1;
                self.ctx.metrics.alert_delivered(&rule);
                if let Some(q) = self.arrivals.get(&last.0)
                    && let Some((_, at)) = q.iter().find(|(o, _)| *o >= last.1)
                {
                    self.ctx.metrics.observe_latency(at.elapsed().as_secs_f64());
                }
            }
            What::DeadLetter { source, offset } => self.ledger.dead_letter_acked(source, offset),
        }
    }
}
