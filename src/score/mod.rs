//! Blast radius: how much a stolen credential costs, 0 to 100, with the arithmetic shown.
//!
//! Four factors, each a value from 0 to 1 times a weight (the weights add up to 100):
//!
//! - **reach**: what the identity can reach, from the inventory: privilege tier (half), the
//!   secrets, accounts and data stores it reaches (log-scaled, 30 %), its credential (20 %: a
//!   long-lived key outranks a session, an old key a young one), times an environment factor
//!   (prod 1, staging 0.7, dev or test 0.5). An identity the inventory does not know is
//!   estimated from what the chain touched, and the score says so.
//! - **touched**: what the chain touched: distinct secrets, resources, hosts, regions and
//!   services (log-scaled, secrets weigh most), counted in bounded sketches.
//! - **stage**: how far the chain got (stages reached / stages).
//! - **tempo**: how fast it ran: 1 when every step followed the previous one within the
//!   machine-speed gap (a person cannot act that fast), falling with the median gap.
//!
//! Points are rounded so that they add up exactly to the score (largest remainder).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::inventory::{CredentialKind, IdentityEntry, Inventory, Privilege};
use crate::time::Span;
use crate::vocab::{GROUP_SEPARATOR, TouchKind};

/// Weights of the factors; they must add up to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub reach: u32,
    pub touched: u32,
    pub stage: u32,
    pub tempo: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            reach: 35,
            touched: 20,
            stage: 25,
            tempo: 20,
        }
    }
}

impl Weights {
    pub fn total(&self) -> u32 {
        self.reach + self.touched + self.stage + self.tempo
    }
}

/// Scoring settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreConfig {
    pub weights: Weights,
    /// Steps closer than this are machine speed.
    pub machine_speed_gap: Span,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            weights: Weights::default(),
            machine_speed_gap: Span::from_secs(10),
        }
    }
}

/// Distinct things a chain touched (already counted by a sketch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Touched {
    pub secrets: u32,
    pub resources: u32,
    pub hosts: u32,
    pub regions: u32,
    pub services: u32,
}

/// What the score is computed from.
#[derive(Clone, Debug)]
pub struct ScoreInput<'a> {
    pub entry: Option<&'a IdentityEntry>,
    pub touched: Touched,
    /// Stages reached (1-based) and stages of the chain.
    pub stage: (u32, u32),
    /// Gaps between consecutive steps of the chain.
    pub gaps: Vec<Span>,
    pub canary: bool,
    /// The rule's Sigma `level`: caps the score ([`level_cap`]).
    pub level: Option<crate::sigma::Level>,
}

/// One factor of the breakdown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Factor {
    pub name: &'static str,
    /// 0 to 1, rounded to 3 decimals.
    pub value: f64,
    pub weight: u32,
    /// This factor's share of the score; the points of all factors add up to the score.
    pub points: u32,
    pub detail: String,
}

/// A score with its breakdown.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    pub score: u32,
    pub factors: Vec<Factor>,
    pub machine_speed: bool,
    pub in_inventory: bool,
    pub canary: bool,
    /// The score before the rule's level capped it, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_by_level: Option<u32>,
    /// Stages reached and stages of the rule.
    #[serde(skip)]
    pub stage: (u32, u32),
}

impl Score {
    /// OCSF `risk_level_id`: 0 Info, 1 Low, 2 Medium, 3 High, 4 Critical.
    pub fn risk_level(&self) -> (u8, &'static str) {
        match self.score {
            0..=19 => (0, "Info"),
            20..=39 => (1, "Low"),
            40..=59 => (2, "Medium"),
            60..=79 => (3, "High"),
            _ => (4, "Critical"),
        }
    }
}

fn log_scaled(n: u32, reference: f64) -> f64 {
    ((1.0 + n as f64).ln() / (1.0 + reference).ln()).min(1.0)
}

/// The reach value of an identity the inventory does not know.
pub const UNKNOWN_REACH: f64 = 0.5;

fn reach(entry: Option<&IdentityEntry>) -> (f64, String) {
    let Some(e) = entry else {
        // Unknown identity: a medium reach. Estimating it from what the chain touched counted
        // the touched factor twice, and let a noisy single event outrank a chain of the same
        // identity.
        return (
            UNKNOWN_REACH,
            "not in the inventory: assumed medium reach".into(),
        );
    };
    let privilege = match e.privilege {
        Some(Privilege::Admin) => 1.0,
        Some(Privilege::High) => 0.75,
        Some(Privilege::Medium) => 0.5,
        Some(Privilege::Low) => 0.25,
        None => 0.5,
    };
    let count =
        |r: &Option<crate::inventory::Reach>| r.as_ref().map(|r| r.count() as u32).unwrap_or(0);
    let breadth = (log_scaled(count(&e.reach.secrets), 100.0)
        + log_scaled(count(&e.reach.accounts), 10.0)
        + log_scaled(count(&e.reach.data_stores), 50.0))
        / 3.0;
    let credential = match &e.credential {
        Some(c) => match c.kind {
            CredentialKind::LongLivedKey | CredentialKind::Password => {
                if c.age_days.unwrap_or(0) >= 90 {
                    1.0
                } else {
                    0.8
                }
            }
            CredentialKind::Session => 0.4,
        },
        None => 0.5,
    };
    let environment = match e
        .environment
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("staging") => 0.7,
        Some("dev" | "test" | "sandbox") => 0.5,
        _ => 1.0,
    };
    let value = (0.5 * privilege + 0.3 * breadth + 0.2 * credential) * environment;
    let detail = format!(
        "privilege {}, reach {} secrets / {} accounts / {} data stores, credential {}, environment {}",
        e.privilege
            .map(|p| format!("{p:?}").to_lowercase())
            .unwrap_or_else(|| "unknown".into()),
        count(&e.reach.secrets),
        count(&e.reach.accounts),
        count(&e.reach.data_stores),
        e.credential
            .as_ref()
            .map(|c| format!(
                "{:?}{}",
                c.kind,
                c.age_days
                    .map(|d| format!(" {d} days old"))
                    .unwrap_or_default()
            ))
            .unwrap_or_else(|| "unknown".into()),
        e.environment.as_deref().unwrap_or("unknown"),
    );
    (value, detail)
}

fn touched_value(t: &Touched) -> (f64, String) {
    let v = 0.35 * log_scaled(t.secrets, 10.0)
        + 0.25 * log_scaled(t.resources, 20.0)
        + 0.15 * log_scaled(t.hosts, 10.0)
        + 0.10 * log_scaled(t.regions, 4.0)
        + 0.15 * log_scaled(t.services, 8.0);
    let d = format!(
        "{} secrets, {} resources, {} hosts, {} regions, {} services",
        t.secrets, t.resources, t.hosts, t.regions, t.services
    );
    (v, d)
}

/// The tempo of a chain: the best tempo of any prefix of its steps, so that a step joining a
/// chain never lowers its score (a slow last step does not undo a machine-speed start). A
/// single step has no tempo.
fn tempo(gaps: &[Span], machine: Span) -> (f64, bool, String) {
    if gaps.is_empty() {
        return (0.0, false, "single event: no tempo".into());
    }
    let whole = prefix_tempo(gaps, machine);
    let mut best = (whole.0, gaps.len());
    for end in 1..gaps.len() {
        let t = prefix_tempo(&gaps[..end], machine);
        if t.0 > best.0 {
            best = (t.0, end);
        }
    }
    if best.1 == gaps.len() {
        return whole;
    }
    // The value of the fastest start; the flag and the words describe the whole chain.
    let start = prefix_tempo(&gaps[..best.1], machine);
    (
        best.0,
        whole.1,
        format!("fastest start {}; whole chain {}", start.2, whole.2),
    )
}

fn prefix_tempo(gaps: &[Span], machine: Span) -> (f64, bool, String) {
    let mut sorted: Vec<Span> = gaps.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    let machine_speed = max <= machine;
    let value = if machine_speed {
        1.0
    } else {
        // Halves for every doubling of the median gap beyond the machine-speed gap.
        let ratio = median.0.max(1) as f64 / machine.0.max(1) as f64;
        (1.0 / ratio.max(1.0)).clamp(0.05, 0.9)
    };
    let d = format!(
        "{} step(s): median gap {}, longest {}{}",
        gaps.len() + 1,
        Span(median.0 / 1_000_000 * 1_000_000),
        Span(max.0 / 1_000_000 * 1_000_000),
        if machine_speed { ": machine speed" } else { "" }
    );
    (value, machine_speed, d)
}

/// Scores one chain.
pub fn score(config: &ScoreConfig, weights: &Weights, input: &ScoreInput<'_>) -> Score {
    let (reach_v, reach_d) = reach(input.entry);
    let (touched_v, touched_d) = touched_value(&input.touched);
    let (reached, total) = input.stage;
    // A single event is no chain: it earns no stage points.
    let (stage_v, stage_d) = if total <= 1 {
        (0.0, "single event: no chain".to_string())
    } else {
        (
            (reached as f64 / total as f64).min(1.0),
            format!("stage {reached} of {total}"),
        )
    };
    let (tempo_v, machine_speed, tempo_d) = tempo(&input.gaps, config.machine_speed_gap);
    let mut factors = vec![
        ("reach", reach_v, weights.reach, reach_d),
        ("touched", touched_v, weights.touched, touched_d),
        ("stage", stage_v, weights.stage, stage_d),
        ("tempo", tempo_v, weights.tempo, tempo_d),
    ];
    if input.canary {
        // A canary is never touched by accident: everything is at its maximum.
        for f in &mut factors {
            f.1 = 1.0;
            f.3 = format!("canary: {}", f.3);
        }
    }
    let exact: Vec<f64> = factors
        .iter()
        .map(|f| f.1.clamp(0.0, 1.0) * f.2 as f64)
        .collect();
    let uncapped = exact.iter().sum::<f64>().round().clamp(0.0, 100.0) as u32;
    let cap = if input.canary {
        100
    } else {
        level_cap(input.level)
    };
    let total_score = uncapped.min(cap);
    let points = largest_remainder(&exact, total_score);
    Score {
        score: total_score,
        factors: factors
            .into_iter()
            .zip(points)
            .map(|((name, value, weight, detail), points)| Factor {
                name,
                value: (value.clamp(0.0, 1.0) * 1000.0).round() / 1000.0,
                weight,
                points,
                detail,
            })
            .collect(),
        machine_speed,
        in_inventory: input.entry.is_some(),
        canary: input.canary,
        capped_by_level: (total_score < uncapped).then_some(uncapped),
        stage: input.stage,
    }
}

/// The highest score a rule of `level` can give: an informational rule is at most Medium
/// (59), a low one at most High (79); medium, high, critical and unset levels are not capped.
/// A cap never puts a chain below a single event of the same identity (single events score
/// at most 55 with the default weights).
pub fn level_cap(level: Option<crate::sigma::Level>) -> u32 {
    match level {
        Some(crate::sigma::Level::Informational) => 59,
        Some(crate::sigma::Level::Low) => 79,
        _ => 100,
    }
}

/// What a rule says about scoring its findings.
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleTerms {
    /// The rule's own weights (reach, touched, stage, tempo, from its extension).
    pub weights: Option<[u32; 4]>,
    /// The rule's Sigma `level` (caps the score, [`level_cap`]).
    pub level: Option<crate::sigma::Level>,
}

/// What a finding's chain did, for its score.
#[derive(Clone, Debug, Default)]
pub struct ChainFacts {
    pub touched: Touched,
    /// Stages reached (1-based) and stages of the rule.
    pub stage: (u32, u32),
    /// Gaps between consecutive steps.
    pub gaps: Vec<Span>,
    pub canary: bool,
}

/// Scores findings: the inventory, the weights (global and per rule) and the settings.
#[derive(Debug, Default)]
pub struct Assessor {
    pub inventory: Option<Arc<Inventory>>,
    pub config: ScoreConfig,
    /// Announce ordered chains early once they complete this many stages (Create, then
    /// Update as they advance); `None` alerts only on complete chains.
    pub escalate_at: Option<u32>,
}

impl Assessor {
    /// The inventory entry of a group key: the whole key, else its first value.
    fn entry(&self, group: &str) -> Option<&IdentityEntry> {
        let inv = self.inventory.as_deref()?;
        inv.identity(group)
            .or_else(|| inv.identity(group.split(GROUP_SEPARATOR).next()?))
    }

    /// The blast tier of a group's identity for eviction ranking: 4 admin (or canary), 3 high,
    /// 2 medium, 1 low or unknown.
    pub fn blast_tier(&self, group: &str) -> u8 {
        match self.entry(group) {
            Some(e) if e.canary => 4,
            Some(e) => match e.privilege {
                Some(Privilege::Admin) => 4,
                Some(Privilege::High) => 3,
                Some(Privilege::Medium) => 2,
                _ => 1,
            },
            None => 1,
        }
    }

    /// Whether the group's identity or a secret the event touched is a canary.
    pub fn is_canary(&self, group: &str, touched: &[(TouchKind, Box<str>)]) -> bool {
        let Some(inv) = self.inventory.as_deref() else {
            return false;
        };
        self.entry(group).is_some_and(|e| e.canary)
            || touched
                .iter()
                .any(|(k, v)| *k == TouchKind::Secret && inv.is_canary_secret(v))
    }

    /// Scores a finding of `rule` for `group`.
    pub fn score(&self, rule: RuleTerms, group: &str, chain: ChainFacts) -> Score {
        let weights = rule
            .weights
            .map(|[reach, touched, stage, tempo]| Weights {
                reach,
                touched,
                stage,
                tempo,
            })
            .unwrap_or(self.config.weights);
        score(
            &self.config,
            &weights,
            &ScoreInput {
                entry: self.entry(group),
                touched: chain.touched,
                stage: chain.stage,
                gaps: chain.gaps,
                canary: chain.canary,
                level: rule.level,
            },
        )
    }
}

/// Integer shares of `total` proportional to `exact`, adding up to `total` exactly.
fn largest_remainder(exact: &[f64], total: u32) -> Vec<u32> {
    let mut floors: Vec<u32> = exact.iter().map(|x| x.floor().max(0.0) as u32).collect();
    let assigned: u32 = floors.iter().sum();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    if assigned <= total {
        for &i in order.iter().cycle().take((total - assigned) as usize) {
            floors[i] += 1;
        }
    } else {
        let mut excess = assigned - total;
        for &i in order.iter().rev() {
            if excess == 0 {
                break;
            }
            if floors[i] > 0 {
                floors[i] -= 1;
                excess -= 1;
            }
        }
    }
    floors
}

/// The scorer in use and its version; shards compare the version between messages (the
/// service's live inventory publishes new ones).
#[derive(Debug)]
pub struct LiveAssessor {
    version: AtomicU64,
    current: RwLock<Arc<Assessor>>,
}

impl LiveAssessor {
    pub fn new(assessor: Arc<Assessor>) -> LiveAssessor {
        LiveAssessor {
            version: AtomicU64::new(1),
            current: RwLock::new(assessor),
        }
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The scorer now, with its version.
    pub fn current(&self) -> (u64, Arc<Assessor>) {
        let g = self.current.read().unwrap_or_else(|e| e.into_inner());
        (self.version(), g.clone())
    }

    pub fn publish(&self, assessor: Arc<Assessor>) {
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        *g = assessor;
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
