//! What a person writes in `credtrail.toml`, field for field; [`super::validate`] turns it
//! into a [`super::ServiceConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::alerts::RawAlerts;
use super::scoring::RawScoring;

pub use super::env::{overlay_env, read_secret_files};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub kafka: RawKafka,
    #[serde(default)]
    pub input: Vec<RawInput>,
    pub rules: RawRules,
    #[serde(default)]
    pub engine: RawEngine,
    #[serde(default)]
    pub scoring: RawScoring,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub shutdown: RawShutdown,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub signing: RawSigning,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub cluster: RawCluster,
}

/// `[cluster]`: several instances repartition hits by identity through two topics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_hits_topic")]
    pub hits_topic: String,
    #[serde(default = "default_lineage_topic")]
    pub lineage_topic: String,
    #[serde(default = "default_true")]
    pub changelog: bool,
    #[serde(default = "default_changelog_topic")]
    pub changelog_topic: String,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            enabled: false,
            hits_topic: default_hits_topic(),
            lineage_topic: default_lineage_topic(),
            changelog: true,
            changelog_topic: default_changelog_topic(),
        }
    }
}

fn default_changelog_topic() -> String {
    "credtrail-changelog".into()
}

fn default_hits_topic() -> String {
    "credtrail-hits".into()
}

fn default_lineage_topic() -> String {
    "credtrail-lineage".into()
}

/// `[signing]`: the key file that signs alerts on the topic; unset, alerts go unsigned.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    pub brokers: String,
    #[serde(default = "default_group")]
    pub group: String,
    #[serde(default = "default_alert_topic")]
    pub alert_topic: String,
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    #[serde(default = "default_checkpoint_topic")]
    pub checkpoint_topic: String,
    #[serde(default = "default_commit_interval")]
    pub commit_interval: String,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    #[serde(default = "default_lineage_hold")]
    pub lineage_hold: String,
    #[serde(default)]
    pub consumer: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub producer: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub topic: String,
    #[serde(default = "default_profile")]
    pub profile: String,
    #[serde(default = "default_lateness")]
    pub lateness: String,
    #[serde(default = "default_max_future_skew")]
    pub max_future_skew: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub pipelines: Vec<PathBuf>,
    pub identity: Option<PathBuf>,
    #[serde(default = "default_true")]
    pub watch: bool,
    #[serde(default = "default_watch_interval")]
    pub watch_interval: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub shards: Option<usize>,
    pub workers: Option<usize>,
    pub batch_events: Option<usize>,
    pub queue_batches: Option<usize>,
    pub max_event_bytes: Option<usize>,
    pub max_depth: Option<usize>,
    pub max_fields: Option<usize>,
    /// `"4GiB"`; unset: half of the cgroup limit, else of physical memory.
    pub memory_budget: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    #[serde(default = "default_deadline")]
    pub deadline: String,
}

impl Default for RawShutdown {
    fn default() -> Self {
        RawShutdown {
            deadline: default_deadline(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `""` disables the endpoint.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    /// A second listener for `/livez` and `/readyz` only; `""`: none.
    #[serde(default)]
    pub probes_listen: String,
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: default_metrics_listen(),
            probes_listen: String::new(),
            header_read_timeout: default_header_read_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default = "default_log_format")]
    pub format: String,
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_group() -> String {
    "credtrail".into()
}
fn default_alert_topic() -> String {
    "credtrail-alerts".into()
}
fn default_dead_letter_topic() -> String {
    "credtrail-dead-letters".into()
}
fn default_checkpoint_topic() -> String {
    "credtrail-checkpoints".into()
}
fn default_commit_interval() -> String {
    "1s".into()
}
fn default_idle_timeout() -> String {
    "30s".into()
}
fn default_lineage_hold() -> String {
    "1h".into()
}
fn default_profile() -> String {
    "auto".into()
}
fn default_lateness() -> String {
    "5m".into()
}
fn default_max_future_skew() -> String {
    "15m".into()
}
fn default_true() -> bool {
    true
}
fn default_watch_interval() -> String {
    "2s".into()
}
fn default_deadline() -> String {
    "30s".into()
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_header_read_timeout() -> String {
    "5s".into()
}
fn default_max_connections() -> u64 {
    64
}
fn default_log_format() -> String {
    "json".into()
}
fn default_log_level() -> String {
    "info".into()
}
