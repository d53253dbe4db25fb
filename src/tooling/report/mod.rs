//! The picture an analyst looks at: a replay's alert lines read back and grouped by incident,
//! drawn as one self-contained HTML page ([`html`]: no network, inline CSS and SVG) or printed
//! as a terminal summary ([`text`]).
//!
//! Lines are grouped by `finding_info.uid` (the incident's id when incidents are on, else the
//! finding's); within an incident, each finding (its own id in
//! `unmapped.credtrail.incident.finding_uid`) is shown as its latest line says. Incidents are
//! listed by their highest risk score, highest first, then by first event.

pub mod html;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an alert line: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot render the report: {0}")]
    Template(#[from] minijinja::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One incident, as its alert lines tell it.
#[derive(Clone, Debug)]
pub struct Incident {
    pub uid: String,
    /// The group key (the identity).
    pub identity: String,
    /// Activities of its lines in order (`Create`, `Update`, ..., `Close`).
    pub activities: Vec<String>,
    /// Its findings, each as its latest line, in the order they first appeared.
    pub findings: Vec<Value>,
}

impl Incident {
    /// The finding with the highest risk score (the latest of equals).
    pub fn worst(&self) -> &Value {
        let mut best = &self.findings[0];
        for f in &self.findings {
            if risk(f) >= risk(best) {
                best = f;
            }
        }
        best
    }

    pub fn risk(&self) -> u64 {
        self.findings.iter().map(risk).max().unwrap_or(0)
    }

    /// Every rule title of the incident, each once, in the order they joined.
    pub fn rules(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.findings {
            let t = f["finding_info"]["title"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    pub fn first_seen(&self) -> i64 {
        (self.findings.iter())
            .filter_map(|f| f["start_time"].as_i64())
            .min()
            .unwrap_or(0)
    }

    pub fn last_seen(&self) -> i64 {
        (self.findings.iter())
            .filter_map(|f| f["end_time"].as_i64())
            .max()
            .unwrap_or(0)
    }
}

fn risk(v: &Value) -> u64 {
    v["risk_score"].as_u64().unwrap_or(0)
}

/// Groups alert lines (`text`, read from `path`) into incidents, highest risk first.
pub fn incidents(path: &Path, text: &str) -> Result<Vec<Incident>, ReportError> {
    let mut order: Vec<String> = Vec::new();
    let mut by_uid: BTreeMap<String, Incident> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| ReportError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        if v["class_uid"] != 2004 {
            return Err(bad("not an OCSF Detection Finding (class_uid 2004)".into()));
        }
        let uid = v["finding_info"]["uid"]
            .as_str()
            .ok_or_else(|| bad("no finding_info.uid".into()))?
            .to_string();
        let own = v["unmapped"]["credtrail"]["incident"]["finding_uid"]
            .as_str()
            .unwrap_or(&uid)
            .to_string();
        let activity = v["activity_name"].as_str().unwrap_or("").to_string();
        let inc = by_uid.entry(uid.clone()).or_insert_with(|| {
            order.push(uid.clone());
            Incident {
                uid: uid.clone(),
                identity: v["metadata"]["correlation_uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                activities: Vec::new(),
                findings: Vec::new(),
            }
        });
        inc.activities.push(activity.clone());
        // A Close repeats a finding already listed.
        if activity == "Close" {
            continue;
        }
        let same = |f: &Value| {
            f["unmapped"]["credtrail"]["incident"]["finding_uid"]
                .as_str()
                .unwrap_or(f["finding_info"]["uid"].as_str().unwrap_or(""))
                == own
        };
        match inc.findings.iter().position(same) {
            Some(at) => inc.findings[at] = v,
            None => inc.findings.push(v),
        }
    }
    let mut out: Vec<Incident> = order
        .into_iter()
        .filter_map(|u| by_uid.remove(&u))
        .filter(|i| !i.findings.is_empty())
        .collect();
    out.sort_by(|a, b| {
        b.risk()
            .cmp(&a.risk())
            .then(a.first_seen().cmp(&b.first_seen()))
    });
    Ok(out)
}

/// Reads `path` and groups its lines ([`incidents`]).
pub fn read(path: &Path) -> Result<Vec<Incident>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    incidents(path, &text)
}

/// Writes the HTML report of the alerts in `alerts` to `out`.
pub fn write_html(alerts: &Path, out: &Path) -> Result<usize, ReportError> {
    let incidents = read(alerts)?;
    let page = html::render(&incidents)?;
    std::fs::write(out, page).map_err(|source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(incidents.len())
}
