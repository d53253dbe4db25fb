//! Service: `credtrail run`, the Kafka consumer group that feeds the engine and produces alerts.
//!
//! ```text
//!  intake ──items──> workers (N) ──decoded──> sequence ──hits, watermarks, reports──> shards (N)
//!  (consumer,        decode+match             input order, one clock                  state
//!   batches per      per topic profile        per partition, idle,                      │
//!   partition,                                replay decisions                          │
//!   pause/resume) <── commit points ── delivery <── dead letters, barriers ────────┘ findings,
//!                                      (merge, OCSF, producer, ledger)  <──── holds ───┘ progress
//! ```
//!
//! Threads, not tasks: the consumer is polled in batches on its own thread, the front end of the
//! [`crate::pipeline`] engine that `replay` drives from files; the engine's output
//! thread drives [`delivery`], the sink that owns the producer, its acknowledgements and the
//! [`ledger::Ledger`] that decides commits. Every channel is bounded; when the engine falls
//! behind, the intake pauses its partitions instead of queueing without bound.
//!
//! Controls travel in the same ordered stream as batches (`seq`), so an assignment, a revocation
//! or a commit barrier is seen by the sequencer exactly between the batches it separates. A
//! barrier makes every shard report the oldest input it still needs and the delivery thread turn
//! that into commit points (see [`ledger`] for the rule and what a restart replays).
//!
//! A cluster member (`[cluster] enabled`, [`cluster`]) runs two such engines side by side:
//! stage 1 on the input topics with a forwarder in place of the shards, stage 2 on the hits
//! topic in its own group.
//!
//! A rule reload ([`reload`]) is such a control too: batches cut before it are matched with the
//! old rule set, batches after it with the new one, and the sequencer and shards carry over the
//! buffered hits and state of the rules that did not change. The live inventory ([`inventory`])
//! swaps the shards' scorer between two messages.

pub mod changelog;
pub mod checkpoint;
pub mod cluster;
pub mod commit;
pub mod consumer;
pub mod delivery;
pub mod errorlog;
pub mod intake;
pub mod inventory;
pub mod ledger;
pub mod producer;
pub mod reload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::ServiceConfig;
use crate::decode::MintLifetimes;
use crate::input::Sources;
use crate::matcher::RuleSet;
use crate::metrics::{Metrics, Part};
use crate::pipeline::{self, EngineError, Setup};
pub use crate::pipeline::{Item, NewRules, Signal};
use crate::score::{Assessor, LiveAssessor};
use crate::time::Span;
use ledger::CommitPoint;

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot create the Kafka {role}: {source}")]
    Client {
        role: &'static str,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe {
        topics: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("the alert producer failed fatally ({code:?}): {reason}")]
    ProducerFatal {
        code: rdkafka::types::RDKafkaErrorCode,
        reason: String,
    },
    #[error("cannot hand a message for {topic} to the producer: {source}")]
    ProduceRefused {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("the broker refused a message to {topic} for good: {source}")]
    ProducePermanent {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot render an alert: {0}")]
    Render(#[from] serde_json::Error),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error(
        "the engine stopped while the service was running (a pipeline thread ended); no input was consumed after it"
    )]
    EngineStopped,
    #[error("the consumer failed permanently: {source}")]
    ConsumerFatal { source: rdkafka::error::KafkaError },
    #[error("shutdown step `{step}` did not finish within {limit:?}")]
    Timeout { step: &'static str, limit: Duration },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cluster: {0}")]
    Cluster(String),
}

/// A handle to ask a running service to stop or reload its rules; cheap to clone.
#[derive(Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    fault: Arc<AtomicBool>,
    /// A compiled rule set waiting for the intake to swap it in (the latest offer wins).
    rules: Arc<Mutex<Option<Arc<RuleSet>>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stopping", &self.stopping())
            .finish_non_exhaustive()
    }
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// Test hook: makes shard 0 of the engine end, as a crashed thread would.
    #[doc(hidden)]
    pub fn stop_shard_for_test(&self) {
        self.fault.store(true, Ordering::SeqCst);
    }

    pub(crate) fn take_fault(&self) -> bool {
        self.fault.swap(false, Ordering::SeqCst)
    }

    /// Asks for a graceful stop (what SIGTERM does).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Offers a new rule set (what SIGHUP does once it compiled); the intake swaps it in.
    pub fn offer_rules(&self, rules: Arc<RuleSet>) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = Some(rules);
    }

    /// The rule set offered since the last call, if any.
    pub fn take_rules(&self) -> Option<Arc<RuleSet>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What a finished run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub events: u64,
    pub alerts_delivered: u64,
    pub alerts_suppressed: u64,
    pub dead_letters: u64,
    /// The last offsets committed, per (topic, partition).
    pub committed: Vec<(String, i32, i64)>,
}

/// Commit points posted by the delivery thread for the intake; never blocks the poster (latest
/// point per partition wins, offsets only grow).
#[derive(Debug, Default)]
pub struct Mailbox {
    inner: Mutex<MailboxInner>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct MailboxInner {
    points: std::collections::BTreeMap<u32, CommitPoint>,
    done_epoch: Option<u64>,
}

impl Mailbox {
    pub fn post(&self, epoch: u64, points: Vec<CommitPoint>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for p in points {
            g.points.insert(p.source, p);
        }
        g.done_epoch = Some(g.done_epoch.map_or(epoch, |e| e.max(epoch)));
        self.ready.notify_all();
    }

    /// Takes the posted points.
    pub fn take(&self) -> Vec<CommitPoint> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut g.points).into_values().collect()
    }

    /// Waits until `epoch` is answered or `limit` passes; returns whether it was answered.
    pub fn wait(&self, epoch: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if g.done_epoch.is_some_and(|e| e >= epoch) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = match self.ready.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// What one engine of the service does.
enum Role {
    /// Events in, alerts out.
    Whole,
    /// Stage 1 of a cluster.
    Route {
        hits: cluster::KafkaHits,
        lineage: cluster::KafkaHits,
        feed: crossbeam_channel::Receiver<cluster::LineageUpdate>,
    },
    /// Stage 2 of a cluster, waiting for the stamps of these input partitions.
    Correlate {
        inputs: Arc<crate::cluster::frontier::Inputs>,
    },
}

/// Runs the service until `control` asks it to stop (or a fatal error). Blocks.
pub fn run(
    config: &ServiceConfig,
    rules: Arc<RuleSet>,
    assessor: Arc<Assessor>,
    metrics: Arc<Metrics>,
    control: &Control,
) -> Result<RunReport, ServiceError> {
    if config.cluster.enabled {
        run_cluster(config, rules, assessor, metrics, control)
    } else {
        run_engine(config, rules, assessor, metrics, control, Role::Whole)
    }
}

/// Both stages of a cluster member (see [`cluster`]), each with its own control: the caller's
/// stop reaches both, either stage ending stops the other, and a rule reload is refused (the
/// instances of a cluster must run one rule set: restart them with the new one).
fn run_cluster(
    config: &ServiceConfig,
    rules: Arc<RuleSet>,
    assessor: Arc<Assessor>,
    metrics: Arc<Metrics>,
    control: &Control,
) -> Result<RunReport, ServiceError> {
    let inputs = cluster::cluster_inputs(config)?;
    metrics.cluster.store(true, Ordering::Relaxed);
    let hits = cluster::KafkaHits::new(config, &config.cluster.hits_topic)?;
    let lineage = cluster::KafkaHits::new(config, &config.cluster.lineage_topic)?;
    let reader = cluster::LineageFeed::new(config, inputs.clone())?;
    let correlate = cluster::correlate_config(config);
    let (tx, feed) = cluster::lineage_channel();
    let (route_control, correlate_control) = (Control::new(), Control::new());
    let reader_stop = AtomicBool::new(false);
    tracing::info!(
        hits = %config.cluster.hits_topic,
        lineage = %config.cluster.lineage_topic,
        inputs = inputs.count(),
        "cluster member: stage 1 routes hits by identity, stage 2 correlates"
    );
    thread::scope(|s| -> Result<RunReport, ServiceError> {
        let spawn_err = |_| ServiceError::Panicked("cluster");
        let reader = thread::Builder::new()
            .name("credtrail-lineage".into())
            .spawn_scoped(s, || reader.run(tx, &reader_stop))
            .map_err(spawn_err)?;
        let stage2 = thread::Builder::new()
            .name("credtrail-stage2".into())
            .spawn_scoped(s, || {
                let r = run_engine(
                    &correlate,
                    rules.clone(),
                    assessor.clone(),
                    metrics.clone(),
                    &correlate_control,
                    Role::Correlate { inputs },
                );
                route_control.stop();
                r
            })
            .map_err(spawn_err)?;
        let relay = thread::Builder::new()
            .name("credtrail-relay".into())
            .spawn_scoped(s, || {
                while !route_control.stopping() || !correlate_control.stopping() {
                    if control.stopping() {
                        route_control.stop();
                        correlate_control.stop();
                    }
                    if control.take_rules().is_some() {
                        tracing::error!(
                            "rule reload refused: the instances of a cluster must run one rule set; restart them with the new rules"
                        );
                    }
                    if control.take_fault() {
                        route_control.stop_shard_for_test();
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            })
            .map_err(spawn_err)?;
        let routed = run_engine(
            config,
            rules.clone(),
            assessor.clone(),
            metrics.clone(),
            &route_control,
            Role::Route {
                hits,
                lineage,
                feed,
            },
        );
        correlate_control.stop();
        route_control.stop();
        reader_stop.store(true, Ordering::Release);
        let correlated = stage2
            .join()
            .map_err(|_| ServiceError::Panicked("stage 2"))?;
        let _ = reader.join();
        let _ = relay.join();
        let (routed, correlated) = (routed?, correlated?);
        let mut committed = routed.committed;
        committed.extend(correlated.committed);
        Ok(RunReport {
            events: routed.events,
            alerts_delivered: correlated.alerts_delivered,
            alerts_suppressed: correlated.alerts_suppressed,
            dead_letters: routed.dead_letters + correlated.dead_letters,
            committed,
        })
    })
}

/// Stage 2 with a changelog: its topic must have the hits topic's partition count (partition
/// `P` of one holds the state of partition `P` of the other). The hits partitions are
/// registered in order, so a source id is its partition number in every process: the
/// positions a changelog carries mean the same to its next reader.
fn stage_two_changelog(
    config: &ServiceConfig,
    topic: &str,
    sources: &RwLock<Sources>,
) -> Result<(u32, String), ServiceError> {
    let hits = &config.cluster.hits_topic;
    let n = cluster::partition_count(config, hits)?;
    let m = cluster::partition_count(config, topic)?;
    if n != m {
        return Err(ServiceError::Cluster(format!(
            "changelog topic `{topic}` has {m} partitions, hits topic `{hits}` {n}: they must be equal"
        )));
    }
    let mut names = sources.write().unwrap_or_else(|e| e.into_inner());
    for p in 0..n as i32 {
        names.register(crate::input::SourceInfo::Kafka {
            topic: hits.clone(),
            partition: p,
        });
    }
    Ok((n, topic.to_string()))
}

fn run_engine(
    config: &ServiceConfig,
    rules: Arc<RuleSet>,
    assessor: Arc<Assessor>,
    metrics: Arc<Metrics>,
    control: &Control,
    role: Role,
) -> Result<RunReport, ServiceError> {
    let sources = Arc::new(RwLock::new(Sources::new()));
    let mailbox = Arc::new(Mailbox::default());
    let split = config.engine.split();
    tracing::info!("{}", config.engine.memory.describe(&split));
    let cluster_inputs = match &role {
        Role::Correlate { inputs } => Some(inputs.clone()),
        Role::Whole | Role::Route { .. } => None,
    };
    let part = match role {
        Role::Correlate { .. } => Part::Correlate,
        Role::Whole | Role::Route { .. } => Part::Input,
    };
    let (stage, lineage_feed) = match role {
        Role::Whole | Role::Correlate { .. } => (pipeline::Stage::Whole, None),
        Role::Route {
            hits,
            lineage,
            feed,
        } => (
            pipeline::Stage::Route {
                hits: Box::new(hits),
                lineage: Some(Box::new(lineage)),
            },
            Some(feed),
        ),
    };
    let routing = matches!(stage, pipeline::Stage::Route { .. });
    let changelog = match (part, &config.cluster.changelog_topic) {
        // Open incidents live in the output thread, not in the shards' states: a restore
        // would skip the input that rebuilds them, so with incidents a new owner replays.
        (Part::Correlate, Some(_)) if config.alerts.incidents => {
            tracing::warn!(
                "incidents are on: the state changelog is not used (a new owner of a hits partition replays it from the commit)"
            );
            None
        }
        (Part::Correlate, Some(topic)) => Some(stage_two_changelog(config, topic, &sources)?),
        _ => None,
    };
    let setup = Setup {
        changelog: changelog.as_ref().map(|(n, _)| *n),
        // Stage 1 forwards through one thread in place of the shards; the ledger waits for as
        // many reports as there are.
        shards: stage.shards(config.engine.shards),
        workers: config.engine.workers,
        shard_limits: split.shard,
        mint: MintLifetimes::default(),
        lineage: split.lineage,
        // In a cluster the lineage topic keeps every link: stage 1 holds no input back for them.
        lineage_hold: if routing {
            Span::ZERO
        } else {
            Span::from_millis(config.kafka.lineage_hold.as_millis() as i64)
        },
        reference: pipeline::Reference::WallClock,
        // Incident state lives only in the output thread; the ledger holds every open incident's
        // input until its Close is acknowledged, so a restart rebuilds it (see `ledger`). An
        // alert is trimmed (fewer evidences, down to the first and last) to what the producer's
        // message.max.bytes takes with its headers; only one still larger is dead-lettered as
        // `alert_too_large`.
        alert: {
            let mut options = config.alerts.options();
            options.max_bytes = options.max_bytes.min(delivery::dead_letter_limit(config));
            options
        },
        cluster_inputs,
        shared_lineage: routing,
        part,
    };

    // Every pipeline thread handles a commit barrier each commit interval; ten of them missed
    // (and at least a minute) means a stuck thread.
    let liveness = (config.kafka.commit_interval * 10).max(Duration::from_secs(60));
    metrics
        .heartbeats
        .timeout_ms
        .store(liveness.as_millis() as u64, Ordering::Relaxed);
    let live = Arc::new(LiveAssessor::new(assessor));
    Metrics::add(&metrics.inventory_versions, 1);
    let feed = match &config.scoring.inventory_topic {
        None => None,
        Some(topic) => {
            let mut feed =
                inventory::InventoryFeed::new(config, topic, live.clone(), metrics.clone())?;
            feed.catch_up(inventory::CATCH_UP_LIMIT);
            Some(feed)
        }
    };
    let feed_stop = AtomicBool::new(false);
    let producer = delivery::create_producer(config)?;
    let consumer = consumer::create_consumer(config, metrics.clone())?;
    let checkpoints = checkpoint::Checkpoints::new(config)?;
    let mut sink = delivery::Delivery::new(
        delivery::Context {
            config,
            sources: sources.clone(),
            metrics: metrics.clone(),
            mailbox: mailbox.clone(),
            shards: setup.shards.max(1),
            part,
        },
        &producer,
    );
    let changelog = match changelog {
        Some((_, topic)) => {
            sink = sink.with_changelog(changelog::ChangelogWriter::new(
                config,
                &topic,
                metrics.clone(),
            )?);
            Some(intake::ChangelogSource {
                topic,
                // What the state budget holds: a partition's changelog is at most all of it.
                limit: (setup.shard_limits.max_state_bytes as u64)
                    .saturating_mul(setup.shards.max(1) as u64),
                read_limit: config
                    .shutdown
                    .step(crate::config::ShutdownStep::Close)
                    .max(Duration::from_secs(60)),
            })
        }
        None => None,
    };

    thread::scope(|s| -> Result<RunReport, ServiceError> {
        let (inputs, engine) = pipeline::start(
            s,
            &setup,
            config.engine.queue_batches,
            rules.clone(),
            live.clone(),
            sources.clone(),
            metrics.clone(),
            stage,
            sink,
        )?;

        let feed_handle = match feed {
            None => None,
            Some(feed) => Some(
                thread::Builder::new()
                    .name("credtrail-inventory".into())
                    .spawn_scoped(s, || feed.run(&feed_stop))
                    .map_err(|_| ServiceError::Panicked("inventory"))?,
            ),
        };

        // The intake runs on this thread; it returns after the final drain and commit and
        // drops the item sender, which winds the engine's threads down in order.
        let intake_result = intake::run(intake::Context {
            config,
            consumer,
            items: inputs.items,
            recycle: inputs.recycle,
            sources: sources.clone(),
            mailbox: mailbox.clone(),
            metrics: metrics.clone(),
            control,
            checkpoints,
            rules: rules.clone(),
            lineage: lineage_feed,
            part,
            changelog,
        });

        let deadline = Instant::now() + config.shutdown.step(crate::config::ShutdownStep::Close);
        feed_stop.store(true, Ordering::Release);
        if let Some(h) = feed_handle {
            pipeline::join_by(h, Some(deadline), "inventory")?;
        }
        let delivered = engine.join(Some(deadline))?.output?;
        let committed = intake_result?;
        Ok(RunReport {
            events: metrics.events_in.load(Ordering::Relaxed),
            alerts_delivered: delivered.alerts,
            alerts_suppressed: delivered.suppressed,
            dead_letters: delivered.dead_letters,
            committed,
        })
    })
}
