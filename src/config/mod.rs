//! Config: the `credtrail run` service's settings, from a TOML file, `CREDTRAIL_*` environment
//! variables and secret files, validated into a [`ServiceConfig`].
//!
//! Loading is in two steps (parse, then validate into a different type). [`raw`] mirrors what a
//! person writes, field for field, with unknown keys rejected; [`load`] merges the environment into
//! the TOML table first, reads `*_FILE` secrets, then validates: durations parsed, profiles
//! resolved, librdkafka keys that delivery depends on refused. Nothing downstream checks again.
//!
//! Environment variables name a setting by its TOML path in capitals, dots and dashes as `_`:
//! `CREDTRAIL_KAFKA_BROKERS` is `kafka.brokers`. librdkafka properties go through
//! `CREDTRAIL_KAFKA_CONSUMER_<PROPERTY>` and `CREDTRAIL_KAFKA_PRODUCER_<PROPERTY>`, the
//! property's dots written as `_` (`..._SASL_PASSWORD` is `sasl.password`). Any of these may end
//! in `_FILE` to read the value from a file (Docker and Kubernetes secrets); in the TOML file, a
//! librdkafka property whose name ends in `_file` does the same (`"sasl.password_file" = "..."`).

pub mod alerts;
mod env;
mod keys;
pub mod raw;
pub mod scoring;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::decode::{DecodeLimits, ProfileKind};
use crate::pipeline::budget::{MemoryBudget, Split};
use crate::time::Span;
pub use alerts::AlertsConfig;
use raw::RawConfig;
pub use scoring::ScoringConfig;

/// Prefix of every environment variable the config reads.
pub const ENV_PREFIX: &str = "CREDTRAIL_";

/// librdkafka properties the service sets itself because delivery depends on them; setting one
/// in `[kafka.consumer]` or `[kafka.producer]` is an error that says why.
pub const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    (
        "enable.auto.commit",
        "offsets are committed only after every alert they caused is acknowledged",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored only after every alert they caused is acknowledged",
    ),
    (
        "enable.idempotence",
        "the alert producer must be idempotent so retries never reorder or duplicate",
    ),
    (
        "acks",
        "alerts are acknowledged only by all in-sync replicas",
    ),
    (
        "request.required.acks",
        "alerts are acknowledged only by all in-sync replicas",
    ),
    (
        "partition.assignment.strategy",
        "the service drains partitions on revocation with the cooperative-sticky protocol",
    ),
    ("group.id", "set `kafka.group` instead"),
    ("bootstrap.servers", "set `kafka.brokers` instead"),
    ("metadata.broker.list", "set `kafka.brokers` instead"),
    (
        "transactional.id",
        "the service is at-least-once with deterministic alert ids, not transactional",
    ),
    (
        "enable.partition.eof",
        "the consumer loop does not expect end-of-partition events",
    ),
    (
        "isolation.level",
        "offsets are held back by the service, not by transactions",
    ),
];

/// A value that must not be shown: printed and debugged as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A librdkafka property value; secrets are masked when printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Plain(String),
    Secret(Secret),
}

impl PropertyValue {
    pub fn expose(&self) -> &str {
        match self {
            PropertyValue::Plain(s) => s,
            PropertyValue::Secret(s) => &s.0,
        }
    }
}

/// Whether a librdkafka property holds a secret (passwords, keys, tokens).
pub fn is_secret_property(name: &str) -> bool {
    [
        "password",
        "secret",
        ".pem",
        "oauthbearer.config",
        "jaas",
        "token",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// One input topic and how its events are read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputTopic {
    pub topic: String,
    /// `None`: recognise the profile per event.
    #[serde(serialize_with = "ser_profile")]
    pub profile: Option<ProfileKind>,
    /// Allowed lateness in event time.
    #[serde(serialize_with = "ser_span")]
    pub lateness: Span,
    /// Largest skew of an event ahead of the wall clock; beyond it the event is dead-lettered
    /// as `future` and does not move the partition's clock.
    #[serde(serialize_with = "ser_span")]
    pub max_future_skew: Span,
    /// The topic carries cluster records (stage 2 reading the hits topic), not events; never
    /// set from a config file.
    #[serde(skip)]
    pub records: bool,
}

/// Kafka settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group: String,
    pub alert_topic: String,
    pub dead_letter_topic: String,
    /// Compacted topic holding each partition's replay metadata next to its committed offset.
    pub checkpoint_topic: String,
    /// How often input offsets are committed.
    #[serde(serialize_with = "ser_duration")]
    pub commit_interval: Duration,
    /// A partition without messages for this long stops holding back engine time.
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    /// Credential links (`AssumeRole`, new keys) minted within this much event time hold input
    /// offsets back, so a restart replays their minting events and knows them again.
    #[serde(serialize_with = "ser_duration")]
    pub lineage_hold: Duration,
    /// Extra librdkafka properties, checked against [`RESERVED_PROPERTIES`].
    pub consumer: BTreeMap<String, PropertyValue>,
    pub producer: BTreeMap<String, PropertyValue>,
}

/// The engine's threads and bounds.
/// Bytes of a produced message kept free for its headers (ids, reason, signature): alerts and
/// dead letters are cut to the producer's `message.max.bytes` less this.
pub const MESSAGE_HEADER_ROOM: usize = 16 * 1024;

/// The smallest producer `message.max.bytes` accepted at start-up: the header room and 4 KiB
/// of alert or dead letter.
pub const MIN_MESSAGE_MAX_BYTES: usize = MESSAGE_HEADER_ROOM + 4 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngineConfig {
    /// What the engine may hold in memory, split over shards, workers and lineage.
    pub memory: MemoryBudget,
    pub shards: usize,
    pub workers: usize,
    /// Events per batch handed to a worker.
    pub batch_events: usize,
    /// Batches in flight between the consumer and the sequencer; beyond it partitions pause.
    pub queue_batches: usize,
    pub max_event_bytes: usize,
    pub max_depth: usize,
    pub max_fields: usize,
}

impl EngineConfig {
    /// The memory budget split over this engine's shards and workers.
    pub fn split(&self) -> Split {
        self.memory.split(self.shards, self.workers)
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_event_bytes: self.max_event_bytes,
            max_depth: self.max_depth,
            max_fields: self.max_fields,
        }
    }
}

/// Deadlines of a graceful stop (SIGTERM, SIGINT) and of a partition revocation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShutdownConfig {
    /// The whole stop: drain, flush, commit, close.
    #[serde(serialize_with = "ser_duration")]
    pub deadline: Duration,
}

impl ShutdownConfig {
    /// Each step gets a share of the deadline so that a stuck step leaves time for the others:
    /// drain 40 %, producer flush 30 %, commit 20 %, close 10 %.
    pub fn step(&self, step: ShutdownStep) -> Duration {
        let share = match step {
            ShutdownStep::Drain => 40,
            ShutdownStep::Flush => 30,
            ShutdownStep::Commit => 20,
            ShutdownStep::Close => 10,
        };
        self.deadline * share / 100
    }
}

/// The steps of a graceful stop, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownStep {
    Drain,
    Flush,
    Commit,
    Close,
}

/// Where rules come from and whether they reload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RulesConfig {
    pub paths: Vec<PathBuf>,
    /// Processing pipelines (pySigma YAML) applied to every rule, in order.
    pub pipelines: Vec<PathBuf>,
    /// Identity priority lists per source profile (YAML), replacing the built-in ones.
    pub identity: Option<PathBuf>,
    /// Reload when a file under `paths` changes (SIGHUP always reloads).
    pub watch: bool,
    #[serde(serialize_with = "ser_duration")]
    pub watch_interval: Duration,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter (`info`, `credtrail=debug,rdkafka=warn`).
    pub level: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsConfig {
    /// `None`: no HTTP endpoint. `/metrics` names every rule and its match count: bind it where
    /// only the scraper can reach it.
    pub listen: Option<SocketAddr>,
    /// A listener serving `/livez` and `/readyz` only (never the same address as `listen`).
    pub probes_listen: Option<SocketAddr>,
    /// A connection that has not sent a whole request head within it is closed (100ms..=5m).
    pub header_read_timeout: Duration,
    /// Connections per listener; beyond it the oldest is closed (1..=65536).
    pub max_connections: usize,
}

/// The validated service config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceConfig {
    pub kafka: KafkaConfig,
    #[serde(rename = "input")]
    pub inputs: Vec<InputTopic>,
    pub rules: RulesConfig,
    pub engine: EngineConfig,
    pub scoring: ScoringConfig,
    pub alerts: AlertsConfig,
    pub shutdown: ShutdownConfig,
    pub metrics: MetricsConfig,
    pub signing: SigningConfig,
    pub log: LogConfig,
    pub cluster: ClusterConfig,
}

/// `[cluster]`: instances of one group repartition hits by identity (see [`crate::cluster`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClusterConfig {
    /// Off: one engine per instance, chains correlated only within the partitions it owns.
    pub enabled: bool,
    /// Hits keyed by group key, and stamps (delete policy; as many partitions as stage 2 may
    /// have instances).
    pub hits_topic: String,
    /// Credential links and stamps, read whole by every instance (compacted).
    pub lineage_topic: String,
    /// Stage 2's state per hits partition (compacted, as many partitions as the hits topic;
    /// see [`crate::cluster::changelog`]); `None`: off, a new owner replays from the commit.
    pub changelog_topic: Option<String>,
}

/// How alerts on the topic are signed (see [`crate::alert::signature`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SigningConfig {
    /// The key file; `None`: alerts go unsigned.
    pub keys_file: Option<PathBuf>,
    /// Its keys, read and checked when the config is (never printed).
    #[serde(skip)]
    pub keys: Option<crate::alert::signature::SigningKeys>,
}

/// Why a config cannot be used. Every variant names where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// A key no section knows (`deny_unknown_fields`), with the closest known key of its
    /// section.
    #[error(
        "config {}{}: unknown key `{key}`{hint}",
        .path.display(),
        .line.map(|l| format!(":{l}")).unwrap_or_default()
    )]
    UnknownKey {
        path: PathBuf,
        /// Dotted: `engine.shard`.
        key: String,
        /// Where it is written in the file; `None` when it came from the environment.
        line: Option<usize>,
        /// `; did you mean `x`?` or empty.
        hint: String,
    },
    #[error("{origin}: `{key}`: {reason}")]
    Invalid {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("`signing.keys_file`: {0}")]
    SigningKeys(#[source] crate::alert::signature::KeyFileError),
    #[error("{origin}: cannot read secret file {path}: {source}")]
    SecretFile {
        origin: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What loading found besides the config: settings that were ignored, for `config check`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadNotes {
    /// `CREDTRAIL_*` variables that name no setting.
    pub unknown_env: Vec<String>,
}

/// Loads `path`, overlays `env` (pass `std::env::vars()`), reads secret files and validates.
pub fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(ServiceConfig, LoadNotes), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path, env)
}

/// [`load`] from text; `path` names the file in errors and anchors relative rule paths.
pub fn load_str(
    text: &str,
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(ServiceConfig, LoadNotes), ConfigError> {
    let toml_err = |e: toml::de::Error| ConfigError::Toml {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let mut table: toml::Table = toml::from_str(text).map_err(toml_err)?;
    let notes = raw::overlay_env(&mut table, env)?;
    raw::read_secret_files(&mut table, path)?;
    if let Some(k) = keys::find_unknown(&table, text) {
        return Err(ConfigError::UnknownKey {
            path: path.to_path_buf(),
            key: k.key,
            line: k.line,
            hint: k.hint,
        });
    }
    let raw: RawConfig = table.try_into().map_err(toml_err)?;
    let base = path.parent().unwrap_or(Path::new("."));
    Ok((raw.validate(base)?, notes))
}

impl ServiceConfig {
    /// The effective config as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let span = Span(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    s.collect_str(&span)
}

fn ser_span<S: serde::Serializer>(d: &Span, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn ser_profile<S: serde::Serializer>(p: &Option<ProfileKind>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.map(ProfileKind::name).unwrap_or("auto"))
}

#[cfg(test)]
mod tests;
