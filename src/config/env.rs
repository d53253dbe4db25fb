//! Settings from outside the file: `CREDTRAIL_<PATH>` environment variables (and `_FILE` for
//! secrets) overlaid on the TOML table, and `*_file` keys read into their secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, ENV_PREFIX, LoadNotes};

/// Scalar settings that an environment variable may set, by TOML path.
const ENV_SETTINGS: &[&str] = &[
    "kafka.brokers",
    "kafka.group",
    "kafka.alert_topic",
    "kafka.dead_letter_topic",
    "kafka.checkpoint_topic",
    "kafka.commit_interval",
    "kafka.idle_timeout",
    "kafka.lineage_hold",
    "rules.watch",
    "rules.watch_interval",
    "rules.identity",
    "engine.shards",
    "engine.workers",
    "engine.batch_events",
    "engine.queue_batches",
    "engine.max_event_bytes",
    "engine.max_depth",
    "engine.max_fields",
    "engine.memory_budget",
    "scoring.inventory",
    "scoring.inventory_topic",
    "scoring.machine_speed",
    "scoring.escalate_at",
    "alerts.incidents",
    "alerts.incident_window",
    "alerts.max_open_incidents",
    "shutdown.deadline",
    "metrics.listen",
    "metrics.probes_listen",
    "metrics.header_read_timeout",
    "metrics.max_connections",
    "signing.keys_file",
    "log.format",
    "log.level",
    "cluster.enabled",
    "cluster.hits_topic",
    "cluster.lineage_topic",
    "cluster.changelog",
    "cluster.changelog_topic",
];

fn env_name(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.replace(['.', '-'], "_").to_ascii_uppercase()
    )
}

/// Applies `CREDTRAIL_*` variables (and their `_FILE` forms) to the TOML table.
pub fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<LoadNotes, ConfigError> {
    let mut notes = LoadNotes::default();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    // Deterministic order: a `_FILE` form and a plain form of the same setting is an error
    // below, so order only matters for error messages.
    vars.sort();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in vars {
        let (base, value) = match name.strip_suffix("_FILE") {
            Some(base) if resolves(base) => {
                let text =
                    std::fs::read_to_string(&value).map_err(|source| ConfigError::SecretFile {
                        origin: format!("environment variable {name}"),
                        path: PathBuf::from(&value),
                        source,
                    })?;
                (
                    base.to_string(),
                    text.trim_end_matches(['\n', '\r']).to_string(),
                )
            }
            _ => (name.clone(), value),
        };
        if let Some(other) = seen.insert(base.clone(), name.clone()) {
            return Err(ConfigError::Invalid {
                origin: "environment".into(),
                key: base,
                reason: format!("set twice, by {other} and {name}"),
            });
        }
        if let Some(path) = ENV_SETTINGS.iter().find(|p| env_name(p) == base) {
            let (section, key) = path.split_once('.').unwrap_or(("", path));
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = section {
                t.insert(key.to_string(), env_value(path, &value));
            }
            continue;
        }
        let mut placed = false;
        for side in ["consumer", "producer"] {
            let prefix = format!("{ENV_PREFIX}KAFKA_{}_", side.to_ascii_uppercase());
            if let Some(rest) = base.strip_prefix(&prefix) {
                let property = rest.to_ascii_lowercase().replace('_', ".");
                let kafka = table
                    .entry("kafka")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(k) = kafka {
                    let map = k
                        .entry(side)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if let toml::Value::Table(m) = map {
                        m.insert(property, toml::Value::String(value.clone()));
                    }
                }
                placed = true;
            }
        }
        if !placed {
            notes.unknown_env.push(name);
        }
    }
    Ok(notes)
}

fn resolves(name: &str) -> bool {
    ENV_SETTINGS.iter().any(|p| env_name(p) == name)
        || name.starts_with(&format!("{ENV_PREFIX}KAFKA_CONSUMER_"))
        || name.starts_with(&format!("{ENV_PREFIX}KAFKA_PRODUCER_"))
}

/// Environment values are text; settings that are numbers or booleans in TOML are converted so
/// that the typed deserialisation reports a wrong value the same way for both origins.
fn env_value(path: &str, value: &str) -> toml::Value {
    let numeric = path.starts_with("engine.")
        || path == "scoring.escalate_at"
        || path == "metrics.max_connections"
        || path == "alerts.max_open_incidents";
    if numeric && let Ok(n) = value.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    if (path == "rules.watch" || path == "alerts.incidents" || path == "cluster.enabled")
        && let Ok(b) = value.parse::<bool>()
    {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(value.to_string())
}

/// Replaces `"<property>_file" = "path"` in the librdkafka maps with the file's content.
pub fn read_secret_files(table: &mut toml::Table, config_path: &Path) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(kafka)) = table.get_mut("kafka") else {
        return Ok(());
    };
    let base = config_path.parent().unwrap_or(Path::new("."));
    for side in ["consumer", "producer"] {
        let Some(toml::Value::Table(map)) = kafka.get_mut(side) else {
            continue;
        };
        let file_keys: Vec<String> = map
            .keys()
            .filter(|k| k.ends_with("_file"))
            .cloned()
            .collect();
        for key in file_keys {
            let origin = format!("{}: kafka.{side}", config_path.display());
            let Some(toml::Value::String(p)) = map.remove(&key) else {
                return Err(ConfigError::Invalid {
                    origin,
                    key,
                    reason: "a secret file must be given as a path string".into(),
                });
            };
            let path = base.join(&p);
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                    origin,
                    path: path.clone(),
                    source,
                })?;
            let property = key.trim_end_matches("_file").to_string();
            map.insert(
                property,
                toml::Value::String(text.trim_end_matches(['\n', '\r']).to_string()),
            );
        }
    }
    Ok(())
}
