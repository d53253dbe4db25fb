//! Variants generated from a passing correlation case: what a sequence rule must survive.
//!
//! | variant      | deliveries                                              | must give          |
//! |--------------|---------------------------------------------------------|--------------------|
//! | `shuffled`   | each event delayed by a random amount within the lateness, on two shards | the expected alerts |
//! | `duplicated` | every event twice, the copy up to half the lateness later | the same alert ids |
//! | `stretched`  | the timeline scaled so the alert's events span the timespan + 1s | no alert   |
//! | `gap`        | a stage's step moved to its `max_gap` + 1s after the previous one | no alert  |
//! | `until`      | the case's `until_event` inserted after the chain's first step | no alert     |
//! | `absence`    | the case's `absence_event` inserted after the chain completed | no alert      |
//!
//! `stretched`, `gap`, `until` and `absence` need a case with exactly one expected alert: its
//! events are the chain being broken.

use super::Actual;
use super::events::{self, Built};
use super::spec::Case;
use crate::decode::ProfileKind;
use crate::matcher::{CompiledCorrelation, Decide};
use crate::time::{EventTime, Span};
use crate::tooling::generator::rng::Rng;

/// What a variant's alerts must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The case's expectation.
    Expected,
    /// The case's expectation, with the same alert ids as the case's own run.
    SameIds,
    /// No alert of the rule.
    NoAlert,
}

/// One generated run.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    /// Events in delivery order.
    pub events: Vec<Built>,
    pub check: Check,
    pub shards: usize,
}

/// Everything a variant is derived from.
pub struct Plan<'a> {
    pub corr: &'a CompiledCorrelation,
    pub case: &'a Case,
    pub lateness: Span,
    /// The case's events, in the order written.
    pub built: &'a [Built],
    pub kinds: &'a [ProfileKind],
    /// The rule's alerts in the case's own run.
    pub base: &'a [Actual],
    pub shuffles: u32,
    pub seed: u64,
    pub id_prefix: &'a str,
    /// Stage bits whose rule is itself a correlation: their step is the moment the inner rule
    /// fired (its last event), not its first event.
    pub derived: u64,
    /// Whether a derived stage's rule is decided when its window closes (no event marks it).
    pub derived_at_close: bool,
}

/// A variant, or the name of one that cannot apply and why.
pub type Planned = Result<Variant, (String, String)>;

/// The name of a planned variant.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for Planned {
    fn name(&self) -> &str {
        match self {
            Ok(v) => &v.name,
            Err((n, _)) => n,
        }
    }
}

const SECOND: Span = Span(1_000_000_000);

/// Every variant that applies to the plan's rule.
pub fn plan(p: &Plan<'_>) -> Vec<Planned> {
    let mut out = Vec::new();
    let lateness = p.lateness;
    if lateness <= Span::ZERO {
        out.push(Err((
            "shuffled".into(),
            "the case's lateness is 0: no delivery order but the written one is allowed".into(),
        )));
    } else {
        for s in 0..p.shuffles.max(1) {
            let seed = p.seed.wrapping_add(u64::from(s));
            out.push(Ok(Variant {
                name: format!("shuffled within {lateness} (seed {seed}, 2 shards)"),
                events: shuffled(p.built, lateness, seed),
                check: Check::Expected,
                shards: 2,
            }));
        }
    }
    out.push(Ok(Variant {
        name: "duplicated (every event twice)".into(),
        events: duplicated(p.built, lateness),
        check: Check::SameIds,
        shards: 1,
    }));
    let chain = match p.base {
        // A case without an alert has no chain to break.
        [] => return out,
        [one] => Ok(one),
        _ => Err(format!(
            "needs a case with exactly one expected alert (this one has {})",
            p.base.len()
        )),
    };
    out.push(stretched(p, chain.clone()));
    for (k, gap) in p.corr.max_gaps.iter().enumerate() {
        if let Some(gap) = gap {
            out.push(gapped(p, chain.clone(), k, *gap));
        }
    }
    if p.corr.until_mask != 0 {
        out.push(inserted(
            p,
            chain.clone(),
            "until",
            p.case.until_event.as_ref(),
            |c| {
                let first = c.first()?.2;
                let next = c.iter().map(|e| e.2).find(|t| *t > first)?;
                mid(first, next)
            },
        ));
    }
    if let Some((_, within)) = p.corr.absence {
        out.push(inserted(
            p,
            chain,
            "absence",
            p.case.absence_event.as_ref(),
            move |c| {
                let last = c.iter().map(|e| e.2).max()?;
                mid(last, last.plus(within))
            },
        ));
    }
    out
}

/// Each event delivered at its time plus a random delay within the lateness: exactly "out of
/// order within the allowed lateness".
fn shuffled(built: &[Built], lateness: Span, seed: u64) -> Vec<Built> {
    let mut rng = Rng::new(seed);
    let bound = u64::try_from(lateness.0).unwrap_or(0).saturating_add(1);
    let mut keyed: Vec<(i64, usize, &Built)> = built
        .iter()
        .enumerate()
        .map(|(i, b)| (b.time.0.saturating_add(rng.below(bound) as i64), i, b))
        .collect();
    keyed.sort_by_key(|(d, i, _)| (*d, *i));
    keyed.into_iter().map(|(_, _, b)| b.clone()).collect()
}

/// Every event twice; the copy is delivered half the lateness after the original.
fn duplicated(built: &[Built], lateness: Span) -> Vec<Built> {
    let half = lateness.0 / 2;
    let mut keyed: Vec<(i64, usize, &Built)> = Vec::with_capacity(built.len() * 2);
    for (i, b) in built.iter().enumerate() {
        keyed.push((b.time.0, 2 * i, b));
        keyed.push((b.time.0.saturating_add(half), 2 * i + 1, b));
    }
    keyed.sort_by_key(|(d, i, _)| (*d, *i));
    keyed.into_iter().map(|(_, _, b)| b.clone()).collect()
}

fn stretched(p: &Plan<'_>, chain: Result<&Actual, String>) -> Planned {
    let name = format!("stretched past the timespan {}", p.corr.timespan);
    let chain = chain.map_err(|r| (name.clone(), r))?;
    if p.corr.decide != Decide::Eager {
        return Err((
            name,
            "decided when the window closes: stretching changes which events share a window, not whether it fires".into(),
        ));
    }
    if p.derived != 0 && p.derived_at_close {
        return Err((
            name,
            "a stage is a correlation decided when its window closes: no event marks its step"
                .into(),
        ));
    }
    let (first, last) = steps_span(p, chain).ok_or_else(|| (name.clone(), "no evidence".into()))?;
    let width = last.since(first).0;
    if width <= 0 {
        return Err((
            name,
            "the alert's events share one instant: there is nothing to stretch".into(),
        ));
    }
    let target = i128::from(p.corr.timespan.0 + SECOND.0);
    let events = retimed(p, |t| {
        if t < first {
            return t;
        }
        let d = i128::from(t.since(first).0);
        let scaled = (d * target + i128::from(width) - 1) / i128::from(width);
        ceil_ms(EventTime(first.0.saturating_add(scaled as i64)))
    });
    Ok(Variant {
        name,
        events,
        check: Check::NoAlert,
        shards: 1,
    })
}

fn gapped(p: &Plan<'_>, chain: Result<&Actual, String>, stage: usize, gap: Span) -> Planned {
    let stage_name = p.corr.stage_names.get(stage).map_or("", String::as_str);
    let name = format!("gap: stage {stage} ({stage_name}) past its max_gap {gap}");
    let chain = chain.map_err(|r| (name.clone(), r))?;
    if p.derived != 0 && p.derived_at_close {
        return Err((
            name,
            "a stage is a correlation decided when its window closes: no event marks its step"
                .into(),
        ));
    }
    let steps = steps(p, chain);
    let prev = steps.iter().find(|s| s.0 + 1 == stage as u32).map(|s| s.1);
    let cur = steps.iter().find(|s| s.0 == stage as u32).map(|s| s.1);
    let (Some(prev), Some(cur)) = (prev, cur) else {
        return Err((name, "the alert has no step for this stage".into()));
    };
    let shift = Span(gap.0 + SECOND.0 - cur.since(prev).0);
    let (first, last) = steps_span(p, chain).ok_or_else(|| (name.clone(), "no evidence".into()))?;
    if last.plus(shift).since(first) > p.corr.timespan {
        return Err((
            name,
            "moving the step past the gap would also break the timespan: no separate check".into(),
        ));
    }
    let events = retimed(p, |t| if t >= cur { t.plus(shift) } else { t });
    Ok(Variant {
        name,
        events,
        check: Check::NoAlert,
        shards: 1,
    })
}

fn inserted(
    p: &Plan<'_>,
    chain: Result<&Actual, String>,
    what: &str,
    event: Option<&serde_json::Value>,
    when: impl Fn(&[(usize, u32, EventTime)]) -> Option<EventTime>,
) -> Planned {
    let name = format!("{what} event inserted");
    let chain = chain.map_err(|r| (name.clone(), r))?;
    let Some(event) = event else {
        return Err((
            name,
            format!("give the case an `{what}_event` (an event of the {what} rule, same group)"),
        ));
    };
    let mut sorted = chain.evidence.clone();
    sorted.sort_by_key(|e| e.2);
    let Some(at) = when(&sorted) else {
        return Err((
            name,
            "no room: the chain's steps are less than 2 ms apart".into(),
        ));
    };
    let id = format!("{}-{what}", p.id_prefix);
    let (b, _) = events::build(usize::MAX, event, at, &id).map_err(|e| (name.clone(), e))?;
    let mut out = p.built.to_vec();
    let pos = out.iter().position(|e| e.time > at).unwrap_or(out.len());
    out.insert(pos, b);
    Ok(Variant {
        name,
        events: out,
        check: Check::NoAlert,
        shards: 1,
    })
}

/// The case's events re-timed by `f`, delivered in their new time order.
fn retimed(p: &Plan<'_>, f: impl Fn(EventTime) -> EventTime) -> Vec<Built> {
    let mut out: Vec<(usize, Built)> = p
        .built
        .iter()
        .zip(p.kinds)
        .enumerate()
        .map(|(i, (b, k))| (i, b.at(f(b.time), *k)))
        .collect();
    out.sort_by_key(|(i, b)| (b.time, *i));
    out.into_iter().map(|(_, b)| b).collect()
}

/// When each stage's step happened: its event, or for a stage that is a correlation, the
/// moment that correlation fired (its last event).
fn steps(p: &Plan<'_>, chain: &Actual) -> Vec<(u32, EventTime)> {
    let mut out: Vec<(u32, EventTime)> = Vec::new();
    for &(_, stage, t) in &chain.evidence {
        let derived = stage < 64 && p.derived & (1 << stage) != 0;
        match out.iter_mut().find(|s| s.0 == stage) {
            Some(s) if derived => s.1 = s.1.max(t),
            Some(s) => s.1 = s.1.min(t),
            None => out.push((stage, t)),
        }
    }
    out
}

fn steps_span(p: &Plan<'_>, chain: &Actual) -> Option<(EventTime, EventTime)> {
    if p.corr.stages.len() == 1 && p.derived == 0 {
        // A count over one rule: every event is a step.
        let first = chain.evidence.iter().map(|e| e.2).min()?;
        let last = chain.evidence.iter().map(|e| e.2).max()?;
        return Some((first, last));
    }
    let steps = steps(p, chain);
    let first = steps.iter().map(|s| s.1).min()?;
    let last = steps.iter().map(|s| s.1).max()?;
    Some((first, last))
}

/// The millisecond halfway between `a` and `b`, if one lies strictly between them (events
/// carry millisecond times).
fn mid(a: EventTime, b: EventTime) -> Option<EventTime> {
    let m = EventTime::from_millis((a.as_millis() + b.as_millis()) / 2);
    (m > a && m < b).then_some(m)
}

fn ceil_ms(t: EventTime) -> EventTime {
    let ms = t.0.div_euclid(1_000_000) + i64::from(t.0.rem_euclid(1_000_000) != 0);
    EventTime::from_millis(ms)
}
