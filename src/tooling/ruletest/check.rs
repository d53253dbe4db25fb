//! What a test compares: the alerts of the rule under test read back from the alert file,
//! with their evidence mapped to the case's event indices, and the comparison with the
//! expectation.

use super::events::Built;
use super::spec::Expect;
use crate::time::EventTime;
use crate::vocab::GROUP_SEPARATOR;

/// An alert of the rule under test, as a test compares it.
#[derive(Clone, Debug)]
pub struct Actual {
    pub group: String,
    /// (event index, stage, time) of each evidence; inserted events have `usize::MAX`.
    pub evidence: Vec<(usize, u32, EventTime)>,
    pub uid: String,
    pub aggregate: Option<f64>,
}

impl Actual {
    pub fn indices(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.evidence.iter().map(|e| e.0).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Which rule an alert is from.
pub struct RuleKey {
    pub uid: Option<String>,
    pub title: String,
}

/// Reads the parts of an alert a test compares; evidence lines map back to event indices.
pub fn actual(alert: &serde_json::Value, deliveries: &[Built]) -> Option<(Actual, RuleKey)> {
    let info = &alert["finding_info"];
    let key = RuleKey {
        uid: info["analytic"]["uid"].as_str().map(str::to_string),
        title: info["title"].as_str().unwrap_or("").to_string(),
    };
    let group = alert["metadata"]["correlation_uid"]
        .as_str()
        .unwrap_or("")
        .split(GROUP_SEPARATOR)
        .collect::<Vec<_>>()
        .join(", ");
    let evidence = alert["evidences"]
        .as_array()?
        .iter()
        .map(|e| {
            let data = &e["data"];
            let line = data["source"]["line"].as_u64().unwrap_or(0) as usize;
            let index = line
                .checked_sub(1)
                .and_then(|l| deliveries.get(l))
                .map_or(usize::MAX, |b| b.index);
            let stage = data["stage"].as_u64().unwrap_or(0) as u32;
            let time = EventTime::from_millis(data["time"].as_i64().unwrap_or(0));
            (index, stage, time)
        })
        .collect();
    Some((
        Actual {
            group,
            evidence,
            uid: info["uid"].as_str().unwrap_or("").to_string(),
            aggregate: alert["unmapped"]["credtrail"]["aggregate"].as_f64(),
        },
        key,
    ))
}

/// Compares alerts with the expectation; the error says what differs.
pub fn compare(expect: &[Expect], got: &[Actual]) -> Result<(), String> {
    let describe = |a: &Actual| format!("{{group: {:?}, events: {:?}}}", a.group, a.indices());
    if expect.len() != got.len() {
        let got: Vec<String> = got.iter().map(describe).collect();
        return Err(format!(
            "expected {} alert(s), got {}: [{}]",
            expect.len(),
            got.len(),
            got.join(", ")
        ));
    }
    for (i, (e, a)) in expect.iter().zip(got).enumerate() {
        if e.group != a.group {
            return Err(format!(
                "alert {i}: expected group {:?}, got {}",
                e.group,
                describe(a)
            ));
        }
        if let Some(events) = &e.events {
            let mut want = events.clone();
            want.sort_unstable();
            want.dedup();
            if want != a.indices() {
                return Err(format!(
                    "alert {i}: expected events {want:?}, got {:?}",
                    a.indices()
                ));
            }
        }
        if let Some(x) = e.aggregate {
            let ok = a
                .aggregate
                .is_some_and(|v| (v - x).abs() <= 1e-9 * x.abs().max(1.0));
            if !ok {
                return Err(format!(
                    "alert {i}: expected aggregate {x}, got {:?}",
                    a.aggregate
                ));
            }
        }
    }
    Ok(())
}

pub fn with_dead_letters(message: String, late: u64, dead: u64) -> String {
    if dead == 0 {
        message
    } else {
        format!("{message} ({dead} event(s) dead-lettered, {late} of them late)")
    }
}
