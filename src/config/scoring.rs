//! The `[scoring]` section: how the service scores findings by blast radius (the same settings
//! as `replay --inventory --weights --machine-speed --escalate-at`), and where live inventory
//! updates come from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, ser_span};
use crate::score::Weights;
use crate::time::Span;

/// `[scoring]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScoring {
    /// Identity context file (YAML, JSON or CSV), relative to the config file.
    pub inventory: Option<PathBuf>,
    /// Compacted topic of identity entries (key: identity, value: an entry as JSON, empty:
    /// delete), applied live on top of the file.
    pub inventory_topic: Option<String>,
    pub weights: Option<Weights>,
    pub machine_speed: Option<String>,
    pub escalate_at: Option<u32>,
}

/// `[scoring]`, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoringConfig {
    pub inventory: Option<PathBuf>,
    pub inventory_topic: Option<String>,
    pub weights: Weights,
    /// Chain steps closer than this run at machine speed.
    #[serde(serialize_with = "ser_span")]
    pub machine_speed: Span,
    pub escalate_at: Option<u32>,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            inventory: None,
            inventory_topic: None,
            weights: Weights::default(),
            machine_speed: Span::from_secs(10),
            escalate_at: None,
        }
    }
}

impl RawScoring {
    /// Checks the values; `base` anchors a relative inventory path; `taken` are the topics the
    /// service already reads or writes.
    pub fn validate(self, base: &Path, taken: &[&str]) -> Result<ScoringConfig, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            origin: "config".into(),
            key: format!("scoring.{key}"),
            reason,
        };
        let defaults = ScoringConfig::default();
        let weights = self.weights.unwrap_or(defaults.weights);
        if weights.total() != 100 {
            return Err(invalid(
                "weights",
                format!("the weights add up to {}, not 100", weights.total()),
            ));
        }
        let machine_speed = match &self.machine_speed {
            None => defaults.machine_speed,
            Some(text) => {
                let span =
                    Span::parse(text).map_err(|e| invalid("machine_speed", e.to_string()))?;
                if span.0 <= 0 {
                    return Err(invalid("machine_speed", "must be greater than zero".into()));
                }
                span
            }
        };
        if self.escalate_at == Some(0) {
            return Err(invalid("escalate_at", "must be at least 1".into()));
        }
        let inventory_topic = match self.inventory_topic {
            Some(t) if t.trim().is_empty() => None,
            Some(t) if taken.contains(&t.as_str()) => {
                return Err(invalid(
                    "inventory_topic",
                    format!("`{t}` is already an input, alert, dead-letter or checkpoint topic"),
                ));
            }
            other => other,
        };
        Ok(ScoringConfig {
            inventory: self.inventory.map(|p| base.join(p)),
            inventory_topic,
            weights,
            machine_speed,
            escalate_at: self.escalate_at,
        })
    }
}
