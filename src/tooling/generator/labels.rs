//! The labels file: one JSON line per injected chain, saying which events belong to it and
//! what a correct engine must do about it.
//!
//! ```json
//! {"chain":"c000003","scenario":"ct_full_machine","source":"cloudtrail","product":"aws",
//!  "speed":"machine","expect":"alert","expected_rules":["ct_chain_full", "..."],
//!  "identity":"arn:aws:iam::111122223333:user/contractor-3","start":"...","end":"...",
//!  "events":["<engine event id>", "..."]}
//! ```
//!
//! `expect` is `alert` for attacks and `none` for near misses (partial chains that must not
//! alert). `expected_rules` names the shipped rule pack's rules (by `name`) that must fire (empty
//! for near misses and for the invictus labels, whose attacks any alert may cover).
//! Everything not listed in a label is benign background.

use serde::{Deserialize, Serialize};

use super::sources::Generated;

/// Attack or near miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The chain is an attack: it must alert.
    Alert,
    /// A near miss: no alert may cover it.
    None,
}

/// How fast the chain runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// Seconds between steps: a script.
    Machine,
    /// Minutes between steps: a person.
    Human,
}

/// One injected chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLabel {
    pub chain: String,
    pub scenario: String,
    /// The generator's source name (`cloudtrail`, `windows`, `linux`, `k8s_audit`, `agent`).
    pub source: String,
    /// The Sigma `logsource.product` of rules that can see the source.
    pub product: String,
    pub speed: Speed,
    pub expect: Expect,
    #[serde(default)]
    pub expected_rules: Vec<String>,
    /// The identity as the engine resolves it.
    pub identity: String,
    pub start: String,
    pub end: String,
    /// Engine event ids of the chain's events, in event-time order.
    pub events: Vec<String>,
}

impl ChainLabel {
    /// The label with the chain's span and event ids taken from its events (time order).
    pub fn spanning(self, events: &[Generated]) -> ChainLabel {
        let time = |e: Option<&Generated>| e.map(|e| e.time.to_string()).unwrap_or_default();
        ChainLabel {
            start: time(events.first()),
            end: time(events.last()),
            events: events.iter().map(|e| e.id.clone()).collect(),
            ..self
        }
    }
}

/// Why a labels file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a chain label: {source}")]
    Parse {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
}

/// Reads a labels file written by `credtrail gen`.
pub fn read(path: &std::path::Path) -> Result<Vec<ChainLabel>, LabelsError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| LabelsError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                source,
            })
        })
        .collect()
}
