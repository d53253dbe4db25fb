//! The validation of what a person wrote ([`RawConfig`]) into a [`ServiceConfig`]: every
//! value and cross-field rule, each error naming its key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::raw::{RawConfig, RawMetrics};
use super::{
    ClusterConfig, ConfigError, EngineConfig, InputTopic, KafkaConfig, LogConfig, LogFormat,
    MetricsConfig, PropertyValue, RESERVED_PROPERTIES, RulesConfig, Secret, ServiceConfig,
    ShutdownConfig, SigningConfig, is_secret_property,
};
use crate::alert::signature::SigningKeys;
use crate::decode::ProfileKind;
use crate::pipeline::budget::{self, MemoryBudget};
use crate::time::Span;

/// A config value that cannot be used, named by its key.
fn invalid(key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        origin: "config".into(),
        key: key.to_string(),
        reason,
    }
}

/// A positive duration (`30s`, `5m`) at `key`.
fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let span = Span::parse(text).map_err(|e| invalid(key, e.to_string()))?;
    if span.0 <= 0 {
        return Err(invalid(key, "must be greater than zero".into()));
    }
    Ok(Duration::from_nanos(span.0 as u64))
}

impl RawMetrics {
    fn validate(&self) -> Result<MetricsConfig, ConfigError> {
        let address = |key: &str, text: &str| match text.trim() {
            "" => Ok(None),
            addr => addr.parse().map(Some).map_err(|e| {
                invalid(
                    key,
                    format!("`{addr}` is not an address like 127.0.0.1:9464: {e}"),
                )
            }),
        };
        let listen = address("metrics.listen", &self.listen)?;
        let probes_listen = address("metrics.probes_listen", &self.probes_listen)?;
        if probes_listen.is_some() && probes_listen == listen {
            return Err(invalid(
                "metrics.probes_listen",
                "is the address of metrics.listen; give probes another port or leave it empty"
                    .into(),
            ));
        }
        let header_read_timeout =
            duration("metrics.header_read_timeout", &self.header_read_timeout)?;
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&header_read_timeout) {
            return Err(invalid(
                "metrics.header_read_timeout",
                format!("{header_read_timeout:?} is outside 100ms..=5m"),
            ));
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(invalid(
                "metrics.max_connections",
                format!("{} is outside 1..=65536", self.max_connections),
            ));
        }
        Ok(MetricsConfig {
            listen,
            probes_listen,
            header_read_timeout,
            max_connections: self.max_connections as usize,
        })
    }
}

impl RawConfig {
    /// Checks every value and cross-field rule; `base` anchors relative rule paths.
    pub fn validate(self, base: &Path) -> Result<ServiceConfig, ConfigError> {
        let k = self.kafka;
        for (key, value) in [
            ("kafka.brokers", &k.brokers),
            ("kafka.group", &k.group),
            ("kafka.alert_topic", &k.alert_topic),
            ("kafka.dead_letter_topic", &k.dead_letter_topic),
            ("kafka.checkpoint_topic", &k.checkpoint_topic),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if self.input.is_empty() {
            return Err(invalid(
                "input",
                "at least one [[input]] topic is required".into(),
            ));
        }
        let mut inputs = Vec::new();
        for (i, t) in self.input.into_iter().enumerate() {
            let key = |f: &str| format!("input[{i}].{f}");
            if t.topic.trim().is_empty() {
                return Err(invalid(&key("topic"), "must not be empty".into()));
            }
            if [&k.alert_topic, &k.dead_letter_topic, &k.checkpoint_topic].contains(&&t.topic) {
                return Err(invalid(
                    &key("topic"),
                    format!(
                        "`{}` is also the alert, dead-letter or checkpoint topic: the service would read its own output",
                        t.topic
                    ),
                ));
            }
            if inputs.iter().any(|x: &InputTopic| x.topic == t.topic) {
                return Err(invalid(
                    &key("topic"),
                    format!("`{}` is listed twice", t.topic),
                ));
            }
            let profile = if t.profile == "auto" {
                None
            } else {
                Some(ProfileKind::from_name(&t.profile).ok_or_else(|| {
                    let known: Vec<&str> = ProfileKind::ALL.iter().map(|k| k.name()).collect();
                    invalid(
                        &key("profile"),
                        format!(
                            "unknown profile `{}` (known: auto, {})",
                            t.profile,
                            known.join(", ")
                        ),
                    )
                })?)
            };
            let lateness =
                Span::parse(&t.lateness).map_err(|e| invalid(&key("lateness"), e.to_string()))?;
            if lateness.0 < 0 {
                return Err(invalid(&key("lateness"), "must not be negative".into()));
            }
            let max_future_skew = Span::parse(&t.max_future_skew)
                .map_err(|e| invalid(&key("max_future_skew"), e.to_string()))?;
            if max_future_skew.0 <= 0 {
                return Err(invalid(
                    &key("max_future_skew"),
                    "must be more than zero".into(),
                ));
            }
            inputs.push(InputTopic {
                topic: t.topic,
                profile,
                lateness,
                max_future_skew,
                records: false,
            });
        }
        let consumer = properties("kafka.consumer", k.consumer)?;
        let producer = properties("kafka.producer", k.producer)?;
        if let Some(v) = producer.get("message.max.bytes") {
            let key = "kafka.producer.\"message.max.bytes\"";
            let n: usize = v
                .expose()
                .parse()
                .map_err(|_| invalid(key, format!("`{}` is not a byte count", v.expose())))?;
            if n < super::MIN_MESSAGE_MAX_BYTES {
                return Err(invalid(
                    key,
                    format!(
                        "{n} leaves no room for an alert or a dead letter beside the {} bytes of headers kept free (at least {} bytes)",
                        super::MESSAGE_HEADER_ROOM,
                        super::MIN_MESSAGE_MAX_BYTES
                    ),
                ));
            }
        }
        let kafka = KafkaConfig {
            brokers: k.brokers,
            group: k.group,
            alert_topic: k.alert_topic,
            dead_letter_topic: k.dead_letter_topic,
            checkpoint_topic: k.checkpoint_topic,
            commit_interval: duration("kafka.commit_interval", &k.commit_interval)?,
            idle_timeout: duration("kafka.idle_timeout", &k.idle_timeout)?,
            lineage_hold: duration("kafka.lineage_hold", &k.lineage_hold)?,
            consumer,
            producer,
        };
        if self.rules.paths.is_empty() {
            return Err(invalid(
                "rules.paths",
                "at least one rule path is required".into(),
            ));
        }
        let rules = RulesConfig {
            paths: self.rules.paths.iter().map(|p| base.join(p)).collect(),
            pipelines: self.rules.pipelines.iter().map(|p| base.join(p)).collect(),
            identity: self.rules.identity.as_ref().map(|p| base.join(p)),
            watch: self.rules.watch,
            watch_interval: duration("rules.watch_interval", &self.rules.watch_interval)?,
        };
        let cores = crate::cores::count();
        let e = self.engine;
        let positive =
            |key: &str, v: Option<usize>, default: usize| -> Result<usize, ConfigError> {
                match v {
                    Some(0) => Err(invalid(key, "must be at least 1".into())),
                    Some(n) => Ok(n),
                    None => Ok(default),
                }
            };
        let shards = positive("engine.shards", e.shards, cores)?;
        let configured = match &e.memory_budget {
            Some(text) => Some(
                budget::parse_size(text)
                    .map_err(|why| invalid("engine.memory_budget", why.to_string()))?,
            ),
            None => None,
        };
        let memory = MemoryBudget::new(configured)
            .map_err(|why| invalid("engine.memory_budget", why.to_string()))?;
        let engine = EngineConfig {
            memory,
            shards,
            workers: positive("engine.workers", e.workers, shards)?,
            batch_events: positive("engine.batch_events", e.batch_events, 1024)?,
            queue_batches: positive("engine.queue_batches", e.queue_batches, 64)?,
            max_event_bytes: positive("engine.max_event_bytes", e.max_event_bytes, 1 << 20)?,
            max_depth: positive("engine.max_depth", e.max_depth, 64)?,
            max_fields: positive("engine.max_fields", e.max_fields, 10_000)?,
        };
        let mut taken: Vec<&str> = inputs.iter().map(|t| t.topic.as_str()).collect();
        taken.extend([
            kafka.alert_topic.as_str(),
            kafka.dead_letter_topic.as_str(),
            kafka.checkpoint_topic.as_str(),
        ]);
        let cluster = ClusterConfig {
            enabled: self.cluster.enabled,
            hits_topic: self.cluster.hits_topic.clone(),
            lineage_topic: self.cluster.lineage_topic.clone(),
            changelog_topic: (self.cluster.changelog).then(|| self.cluster.changelog_topic.clone()),
        };
        if cluster.enabled {
            let mut own = vec![
                ("cluster.hits_topic", &cluster.hits_topic),
                ("cluster.lineage_topic", &cluster.lineage_topic),
            ];
            if let Some(t) = &cluster.changelog_topic {
                own.push(("cluster.changelog_topic", t));
            }
            for (i, (key, topic)) in own.iter().enumerate() {
                if let Some((other, _)) = own[..i].iter().find(|(_, t)| t == topic) {
                    return Err(invalid(
                        key,
                        format!("is {other}; each cluster topic needs a topic of its own"),
                    ));
                }
            }
            for (key, topic) in own {
                if topic.is_empty() || taken.contains(&topic.as_str()) {
                    return Err(invalid(
                        key,
                        format!(
                            "`{topic}` must be a topic of its own (not empty, not an input or output topic)"
                        ),
                    ));
                }
            }
        }
        let scoring = self.scoring.validate(base, &taken)?;
        let alerts = self.alerts.validate()?;
        let shutdown = ShutdownConfig {
            deadline: duration("shutdown.deadline", &self.shutdown.deadline)?,
        };
        let metrics = self.metrics.validate()?;
        let signing = match &self.signing.keys_file {
            None => SigningConfig::default(),
            Some(p) => {
                let path = base.join(p);
                let keys = SigningKeys::load(&path).map_err(ConfigError::SigningKeys)?;
                SigningConfig {
                    keys_file: Some(path),
                    keys: Some(keys),
                }
            }
        };
        let format = match self.log.format.as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("unknown format `{other}` (known: json, text)"),
                ));
            }
        };
        Ok(ServiceConfig {
            kafka,
            inputs,
            rules,
            engine,
            scoring,
            alerts,
            shutdown,
            metrics,
            signing,
            log: LogConfig {
                format,
                level: self.log.level,
            },
            cluster,
        })
    }
}

fn properties(
    section: &str,
    map: BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, PropertyValue>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let invalid = |reason: String| ConfigError::Invalid {
            origin: "config".into(),
            key: format!("{section}.\"{name}\""),
            reason,
        };
        if let Some((_, why)) = RESERVED_PROPERTIES.iter().find(|(k, _)| *k == name) {
            return Err(invalid(format!(
                "set by credtrail and cannot be overridden: {why}"
            )));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(invalid(format!(
                    "librdkafka properties are strings, numbers or booleans, not {}",
                    other.type_str()
                )));
            }
        };
        let value = if is_secret_property(&name) {
            PropertyValue::Secret(Secret(text))
        } else {
            PropertyValue::Plain(text)
        };
        out.insert(name, value);
    }
    Ok(out)
}
