//! Detection evaluation: replay labelled events, then score every alert against the labels.
//!
//! An alert is scored by the labelled chains its evidence events belong to:
//! - evidence in a near miss (`expect: none`): a **false chain alert**;
//! - else evidence in an attack chain: a **true positive** for each such chain;
//! - else (only background events): a **false positive**.
//!
//! Recall per chain scenario counts attack chains with at least one true-positive alert; recall
//! per rule counts the chains whose label lists the rule (`expected_rules`) and that the rule
//! alerted on. Chains of a source no loaded rule can see (its `product` is no loaded detection's
//! `logsource.product`) are reported as not covered and left out of recall, never silently.
//! Time to detect is in event time: from the chain's first event to the alert's decision (the
//! alert's `time`, the event that completed it).
//!
//! Per source (Sigma `logsource.product`): chains count under their label's product; an alert
//! counts under its rule's product (a correlation's is its first stage rule's), else under the
//! product of the chain its evidence belongs to.

mod report;
pub mod truth;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use report::{ChainScore, Report, RuleScore, SourceScore};
pub use truth::Truth;

use crate::matcher::RuleSet;
use crate::pipeline::{self, PipelineError, ReplayOptions};
use crate::time::EventTime;
use crate::tooling::generator::labels::{Expect, LabelsError};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error("{path}:{line}: {reason}")]
    BadLabels {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("alert line {line}: {reason}")]
    Alert { line: usize, reason: String },
    #[error(transparent)]
    Replay(#[from] PipelineError),
}

/// One alert, as much as scoring needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertFacts {
    /// The rule's `name`, else its title.
    pub rule: String,
    /// The rule's Sigma `logsource.product` ([`canonical_product`]); `None` when it has none
    /// or the rule is not in the loaded set.
    pub product: Option<String>,
    pub time_ms: i64,
    pub group: String,
    pub events: Vec<String>,
}

/// The product of every rule (index into `rules.meta`) that has one: a detection's
/// `logsource.product`, a correlation's first stage rule's (through correlations of
/// correlations).
pub fn rule_products(rules: &RuleSet) -> HashMap<u32, String> {
    let mut out: HashMap<u32, String> = HashMap::new();
    for d in &rules.detections {
        if let Some(p) = rules.meta[d.rule as usize].logsource.product.as_deref() {
            out.insert(d.rule, canonical_product(p));
        }
    }
    // Each pass settles at least one more level of nesting; references are acyclic, so
    // `correlations.len()` passes settle every correlation that can be settled.
    for _ in 0..rules.correlations.len() {
        let mut changed = false;
        for c in &rules.correlations {
            if out.contains_key(&c.rule) {
                continue;
            }
            if let Some(p) = c.stages.iter().find_map(|s| out.get(s)) {
                out.insert(c.rule, p.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    out
}

/// Reads the alerts of a replay (OCSF Detection Findings, one per line).
pub fn read_alerts(rules: &RuleSet, text: &str) -> Result<Vec<AlertFacts>, EvalError> {
    let by_id: HashMap<&str, u32> = rules
        .meta
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((m.id.as_deref()?, i as u32)))
        .collect();
    let products = rule_products(rules);
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |reason: &str| EvalError::Alert {
            line: i + 1,
            reason: reason.into(),
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let analytic = &v["finding_info"]["analytic"];
        let title = analytic["name"]
            .as_str()
            .ok_or_else(|| bad("no finding_info.analytic.name"))?;
        let index = analytic["uid"]
            .as_str()
            .and_then(|id| by_id.get(id).copied());
        let rule = index
            .map(|i| {
                let m = &rules.meta[i as usize];
                m.name.as_deref().unwrap_or(&m.title)
            })
            .unwrap_or(title)
            .to_string();
        let product = index.and_then(|i| products.get(&i).cloned());
        // An incident's Close repeats a finding already read.
        if v["activity_id"] == 3 {
            continue;
        }
        // Every contributing event is in `related_events`; `evidences` shows only some.
        let events = v["finding_info"]["related_events"]
            .as_array()
            .ok_or_else(|| bad("no finding_info.related_events"))?
            .iter()
            .filter_map(|e| e["uid"].as_str().map(str::to_string))
            .collect();
        out.push(AlertFacts {
            rule,
            product,
            time_ms: v["time"].as_i64().ok_or_else(|| bad("no time"))?,
            group: v["metadata"]["correlation_uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            events,
        });
    }
    Ok(out)
}

/// A Sigma product in lower case, with the aliases one profile serves spelled one way
/// (`k8s` is `kubernetes`), so labels and rules compare equal.
pub fn canonical_product(product: &str) -> String {
    let p = product.to_ascii_lowercase();
    if p == "k8s" { "kubernetes".into() } else { p }
}

/// The Sigma products the loaded detection rules serve ([`canonical_product`]).
pub fn loaded_products(rules: &RuleSet) -> BTreeSet<String> {
    rules
        .detections
        .iter()
        .filter_map(|d| rules.meta[d.rule as usize].logsource.product.as_deref())
        .map(canonical_product)
        .collect()
}

/// Scores `alerts` against `truth`; `products` are the products the loaded rules serve.
pub fn score(truth: &Truth, alerts: &[AlertFacts], products: &BTreeSet<String>) -> Report {
    let covered: Vec<bool> = truth
        .chains
        .iter()
        .map(|c| products.contains(&canonical_product(&c.product)))
        .collect();
    // chain index → earliest alert time; (rule, chain) pairs that alerted
    let mut first_alert: HashMap<usize, i64> = HashMap::new();
    let mut rule_chain: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut rules: BTreeMap<String, RuleScore> = BTreeMap::new();
    let mut near_miss_alerts: HashMap<usize, u64> = HashMap::new();
    let mut sources: BTreeMap<String, SourceScore> = BTreeMap::new();
    let mut report = Report {
        origin: truth.origin.clone(),
        alerts: alerts.len() as u64,
        ..Report::default()
    };
    for a in alerts {
        let mut chains: Vec<usize> = a
            .events
            .iter()
            .filter_map(|e| truth.by_event.get(e).copied())
            .collect();
        chains.sort_unstable();
        chains.dedup();
        let r = rules
            .entry(a.rule.clone())
            .or_insert_with(|| RuleScore::named(&a.rule));
        r.alerts += 1;
        let product = a
            .product
            .as_deref()
            .or_else(|| chains.first().map(|&c| truth.chains[c].product.as_str()))
            .unwrap_or("-");
        let by_source = source(&mut sources, product);
        by_source.alerts += 1;
        let near: Vec<usize> = chains
            .iter()
            .copied()
            .filter(|&c| truth.chains[c].expect == Expect::None)
            .collect();
        if !near.is_empty() {
            r.false_chain_alerts += 1;
            report.false_chain_alerts += 1;
            by_source.false_chain_alerts += 1;
            for c in near {
                *near_miss_alerts.entry(c).or_insert(0) += 1;
            }
            continue;
        }
        if chains.is_empty() {
            r.false_positives += 1;
            report.false_positives += 1;
            by_source.false_positives += 1;
            continue;
        }
        r.true_positives += 1;
        report.true_positives += 1;
        by_source.true_positives += 1;
        for c in chains {
            let e = first_alert.entry(c).or_insert(a.time_ms);
            *e = (*e).min(a.time_ms);
            if rule_chain.insert((a.rule.clone(), c)) && covered[c] {
                let start = chain_start_ms(&truth.chains[c].start);
                r.detect_ms.push(a.time_ms - start);
            }
        }
    }
    // Recall per rule: chains that list it.
    for (c, label) in truth.chains.iter().enumerate() {
        if label.expect != Expect::Alert || !covered[c] {
            continue;
        }
        for rule in &label.expected_rules {
            let r = rules
                .entry(rule.clone())
                .or_insert_with(|| RuleScore::named(rule));
            r.expected += 1;
            if rule_chain.contains(&(rule.clone(), c)) {
                r.found += 1;
            }
        }
    }
    // Per scenario.
    let mut scenarios: BTreeMap<String, ChainScore> = BTreeMap::new();
    for (c, label) in truth.chains.iter().enumerate() {
        let s = scenarios
            .entry(label.scenario.clone())
            .or_insert_with(|| ChainScore::named(label));
        s.chains += 1;
        let by_source = source(&mut sources, &label.product);
        if !covered[c] {
            s.not_covered += 1;
            report.not_covered += 1;
            by_source.not_covered += 1;
            continue;
        }
        match label.expect {
            Expect::Alert => {
                report.attack_chains += 1;
                by_source.attack_chains += 1;
                if let Some(&t) = first_alert.get(&c) {
                    s.detected += 1;
                    report.detected_chains += 1;
                    by_source.detected_chains += 1;
                    s.detect_ms.push(t - chain_start_ms(&label.start));
                }
            }
            Expect::None => {
                report.near_misses += 1;
                by_source.near_misses += 1;
                if let Some(&n) = near_miss_alerts.get(&c) {
                    s.alerted_near_misses += 1;
                    s.false_chain_alerts += n;
                    by_source.alerted_near_misses += 1;
                }
            }
        }
    }
    report.rules = rules.into_values().collect();
    report.scenarios = scenarios.into_values().collect();
    report.sources = sources.into_values().collect();
    report
}

/// The score of `product` ([`canonical_product`]), created on first use.
fn source<'a>(
    sources: &'a mut BTreeMap<String, SourceScore>,
    product: &str,
) -> &'a mut SourceScore {
    let product = canonical_product(product);
    sources
        .entry(product.clone())
        .or_insert_with(|| SourceScore::named(&product))
}

fn chain_start_ms(start: &str) -> i64 {
    EventTime::parse(start)
        .map(EventTime::as_millis)
        .unwrap_or(0)
}

/// How to replay for an evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub replay: ReplayOptions,
}

/// Replays `opts.replay.inputs` with `rules`, then scores the alerts against `truth`. The
/// alerts go to `opts.replay.out` (a temporary file when `None`, removed afterwards).
pub fn run(rules: Arc<RuleSet>, truth: &Truth, opts: &EvalOptions) -> Result<Report, EvalError> {
    let mut replay = opts.replay.clone();
    let temporary = replay.out.is_none();
    let out = replay.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "credtrail-eval-{}-alerts.jsonl",
            std::process::id()
        ))
    });
    replay.out = Some(out.clone());
    let summary = pipeline::replay(rules.clone(), &replay)?;
    let text = std::fs::read_to_string(&out).map_err(|source| EvalError::Io {
        path: out.display().to_string(),
        source,
    });
    if temporary {
        let _ = std::fs::remove_file(&out);
    }
    let alerts = read_alerts(&rules, &text?)?;
    let mut report = score(truth, &alerts, &loaded_products(&rules));
    report.events = summary.sequencer.events;
    report.dead_letters = summary.sequencer.dead_letters;
    report.dead_letters_by_reason = summary
        .sequencer
        .by_reason
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    report.inputs = replay
        .inputs
        .iter()
        .map(PathBuf::from)
        .map(|p| p.display().to_string())
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests;
