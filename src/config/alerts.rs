//! The `[alerts]` section: what the service writes on the alert topic. One alert per finding
//! (the default, what consumers of the topic saw before incidents), or incidents: the grouping
//! `replay` does by default (`--incident-window`, `--no-incidents`), with the same lines and ids.

use serde::{Deserialize, Serialize};

use super::{ConfigError, ser_span};
use crate::alert::AlertOptions;
use crate::alert::incident::IncidentOptions;
use crate::time::Span;

/// `[alerts]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Group findings into incidents (Create, Updates, Close under one `finding_info.uid`).
    #[serde(default)]
    pub incidents: bool,
    /// A finding joins an incident of its identity when it starts at most this long after the
    /// incident's last event.
    #[serde(default = "default_incident_window")]
    pub incident_window: String,
    /// Incidents open at once; beyond it the one that ended first is closed early.
    #[serde(default = "default_max_open_incidents")]
    pub max_open_incidents: usize,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            incidents: false,
            incident_window: default_incident_window(),
            max_open_incidents: default_max_open_incidents(),
        }
    }
}

fn default_incident_window() -> String {
    "1h".into()
}

fn default_max_open_incidents() -> usize {
    IncidentOptions::default().max_open
}

/// Most incidents open at once that the config accepts: each holds its input back until it
/// closes (see [`crate::service::ledger`]).
pub const MAX_OPEN_INCIDENTS: usize = 1_000_000;

/// `[alerts]`, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertsConfig {
    pub incidents: bool,
    #[serde(serialize_with = "ser_span")]
    pub incident_window: Span,
    pub max_open_incidents: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let defaults = IncidentOptions::default();
        AlertsConfig {
            incidents: false,
            incident_window: defaults.window,
            max_open_incidents: defaults.max_open,
        }
    }
}

impl RawAlerts {
    pub fn validate(self) -> Result<AlertsConfig, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            origin: "config".into(),
            key: format!("alerts.{key}"),
            reason,
        };
        let incident_window = Span::parse(&self.incident_window)
            .map_err(|e| invalid("incident_window", e.to_string()))?;
        if incident_window.0 < 0 {
            return Err(invalid("incident_window", "must not be negative".into()));
        }
        if !(1..=MAX_OPEN_INCIDENTS).contains(&self.max_open_incidents) {
            return Err(invalid(
                "max_open_incidents",
                format!(
                    "{} is outside 1..={MAX_OPEN_INCIDENTS}",
                    self.max_open_incidents
                ),
            ));
        }
        Ok(AlertsConfig {
            incidents: self.incidents,
            incident_window,
            max_open_incidents: self.max_open_incidents,
        })
    }
}

impl AlertsConfig {
    /// The alert options the engine's output thread uses.
    pub fn options(&self) -> AlertOptions {
        AlertOptions {
            incidents: self.incidents.then_some(IncidentOptions {
                window: self.incident_window,
                max_open: self.max_open_incidents,
            }),
            ..AlertOptions::default()
        }
    }
}
