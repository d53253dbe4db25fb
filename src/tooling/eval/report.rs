//! The evaluation report: per rule and per chain scenario, as a table or JSON.

use std::fmt;

use serde::Serialize;

use crate::tooling::generator::labels::{ChainLabel, Expect};

/// Scores of one rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleScore {
    pub rule: String,
    pub alerts: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_chain_alerts: u64,
    /// Covered attack chains whose label lists this rule, and how many it alerted on.
    pub expected: u64,
    pub found: u64,
    /// Event time from each chain's first event to this rule's first alert on it.
    pub detect_ms: Vec<i64>,
}

impl RuleScore {
    pub fn named(rule: &str) -> RuleScore {
        RuleScore {
            rule: rule.to_string(),
            ..RuleScore::default()
        }
    }

    /// True positives over alerts; `None` without alerts.
    pub fn precision(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.true_positives as f64 / self.alerts as f64)
    }

    /// Found over expected; `None` when no chain expects the rule.
    pub fn recall(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.found as f64 / self.expected as f64)
    }
}

/// Scores of one chain scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainScore {
    pub scenario: String,
    pub source: String,
    pub expect: String,
    pub chains: u64,
    /// Chains of a source no loaded rule serves.
    pub not_covered: u64,
    /// Attack chains with at least one true-positive alert.
    pub detected: u64,
    /// Near misses that drew an alert, and how many alerts.
    pub alerted_near_misses: u64,
    pub false_chain_alerts: u64,
    /// Event time from each detected chain's first event to its first alert.
    pub detect_ms: Vec<i64>,
}

impl ChainScore {
    pub fn named(label: &ChainLabel) -> ChainScore {
        ChainScore {
            scenario: label.scenario.clone(),
            source: label.source.clone(),
            expect: match label.expect {
                Expect::Alert => "alert".into(),
                Expect::None => "none".into(),
            },
            ..ChainScore::default()
        }
    }
}

/// Scores of one source, by Sigma `logsource.product` (`-`: an alert whose rule has no product
/// and whose evidence is in no labelled chain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SourceScore {
    pub product: String,
    /// Covered attack chains, and how many drew a true-positive alert.
    pub attack_chains: u64,
    pub detected_chains: u64,
    /// Covered near misses, and how many drew an alert.
    pub near_misses: u64,
    pub alerted_near_misses: u64,
    /// Labelled chains of this product that no loaded rule serves.
    pub not_covered: u64,
    pub alerts: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_chain_alerts: u64,
}

impl SourceScore {
    pub fn named(product: &str) -> SourceScore {
        SourceScore {
            product: product.to_string(),
            ..SourceScore::default()
        }
    }

    /// Detected over covered attack chains; `None` without any.
    pub fn recall(&self) -> Option<f64> {
        (self.attack_chains > 0).then(|| self.detected_chains as f64 / self.attack_chains as f64)
    }

    /// True positives over alerts; `None` without alerts.
    pub fn precision(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.true_positives as f64 / self.alerts as f64)
    }
}

/// The whole evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub origin: String,
    pub inputs: Vec<String>,
    pub events: u64,
    pub dead_letters: u64,
    pub dead_letters_by_reason: Vec<(String, u64)>,
    pub alerts: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    /// Alerts whose evidence includes a near miss.
    pub false_chain_alerts: u64,
    /// Covered attack chains, and how many drew a true-positive alert.
    pub attack_chains: u64,
    pub detected_chains: u64,
    pub near_misses: u64,
    /// Labelled chains of sources no loaded rule serves.
    pub not_covered: u64,
    pub rules: Vec<RuleScore>,
    pub scenarios: Vec<ChainScore>,
    pub sources: Vec<SourceScore>,
}

impl Report {
    /// Detected over covered attack chains (1.0 when there are none).
    pub fn recall(&self) -> f64 {
        if self.attack_chains == 0 {
            1.0
        } else {
            self.detected_chains as f64 / self.attack_chains as f64
        }
    }

    /// True positives over alerts (1.0 without alerts).
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.alerts as f64
        }
    }
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// `p50/max` of durations in milliseconds, human-readable.
fn ttd(ms: &[i64]) -> String {
    if ms.is_empty() {
        return "-".into();
    }
    let mut v = ms.to_vec();
    v.sort_unstable();
    let show = |x: i64| {
        if x >= 60_000 {
            format!("{:.1}m", x as f64 / 60_000.0)
        } else {
            format!("{:.0}s", x as f64 / 1000.0)
        }
    };
    format!("{} / {}", show(v[v.len() / 2]), show(v[v.len() - 1]))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "credtrail eval: {} events, labels {}",
            self.events, self.origin
        )?;
        if self.dead_letters > 0 {
            let reasons: Vec<String> = self
                .dead_letters_by_reason
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(
                f,
                "  dead-lettered: {} ({})",
                self.dead_letters,
                reasons.join(", ")
            )?;
        }
        writeln!(
            f,
            "  chains: recall {:.1}% ({} of {} attack chains detected), {} near misses, {} not covered by the loaded rules",
            self.recall() * 100.0,
            self.detected_chains,
            self.attack_chains,
            self.near_misses,
            self.not_covered
        )?;
        writeln!(
            f,
            "  alerts: {} ({} true, {} false positive, {} false chain alerts on near misses), precision {:.1}%",
            self.alerts,
            self.true_positives,
            self.false_positives,
            self.false_chain_alerts,
            self.precision() * 100.0
        )?;
        writeln!(
            f,
            "\n  {:<12}  attack chains  detected  recall  near misses  alerted  not covered  alerts  true  false  false chain  precision",
            "per source"
        )?;
        for s in &self.sources {
            writeln!(
                f,
                "    {:<12} {:>13} {:>9} {:>7} {:>12} {:>8} {:>12} {:>7} {:>5} {:>6} {:>12} {:>10}",
                s.product,
                s.attack_chains,
                s.detected_chains,
                pct(s.recall()),
                s.near_misses,
                s.alerted_near_misses,
                s.not_covered,
                s.alerts,
                s.true_positives,
                s.false_positives,
                s.false_chain_alerts,
                pct(s.precision())
            )?;
        }
        let w = self
            .scenarios
            .iter()
            .map(|s| s.scenario.len())
            .max()
            .unwrap_or(0)
            .max(18);
        writeln!(
            f,
            "\n  {:<w$}  source     expect  chains  detected  near-miss alerts  time to detect p50 / max",
            "per chain scenario"
        )?;
        for s in &self.scenarios {
            let detected = if s.expect == "alert" {
                format!("{}/{}", s.detected, s.chains - s.not_covered)
            } else {
                "-".into()
            };
            let covered = if s.not_covered > 0 {
                format!("  ({} not covered)", s.not_covered)
            } else {
                String::new()
            };
            writeln!(
                f,
                "    {:<w$} {:<10} {:<6} {:>6}  {:>8}  {:>16}  {}{}",
                s.scenario,
                s.source,
                s.expect,
                s.chains,
                detected,
                s.false_chain_alerts,
                ttd(&s.detect_ms),
                covered
            )?;
        }
        let w = self
            .rules
            .iter()
            .map(|r| r.rule.len())
            .max()
            .unwrap_or(0)
            .max(8);
        writeln!(
            f,
            "\n  {:<w$}  alerts  true  false  precision  expected  found  recall  time to detect p50 / max",
            "per rule"
        )?;
        for r in &self.rules {
            writeln!(
                f,
                "    {:<w$} {:>6} {:>5} {:>6} {:>10} {:>9} {:>6} {:>7}  {}",
                r.rule,
                r.alerts,
                r.true_positives,
                r.false_positives + r.false_chain_alerts,
                pct(r.precision()),
                r.expected,
                r.found,
                pct(r.recall()),
                ttd(&r.detect_ms)
            )?;
        }
        Ok(())
    }
}
