//! `rules test --explain`: what the engine saw in one case. Each event of the case is decoded
//! and matched as the engine would (the same rule set, profile and field maps), and the
//! explanation says which stage of the rule under test it matched, in which group; when the
//! case expected alerts and got none, it says why: a stage no event matched, no ordered chain,
//! a chain longer than the timespan or a step past its `max_gap`, events in different
//! groups, an `until` event, late events.
//!
//! It is an explanation, not a second engine: it reads the stages and times the way the
//! correlation's definition does and names the first thing that cannot hold. The verdict of
//! the case stays the replay's.

use crate::decode::Decoder;
use crate::matcher::{CompiledCorrelation, FieldSource, Matcher, RuleSet};
use crate::sigma::CorrelationType;
use crate::time::{EventTime, Span};

use super::events::Built;

/// What one event of a case matched.
struct Seen {
    index: usize,
    time: EventTime,
    /// Titles of every detection it matched.
    matched: Vec<String>,
    /// Whether it matched the rule under test (a detection).
    matched_rule: bool,
    /// The stage bits of the correlation under test it fed.
    bits: u64,
    /// The correlation's group-by values as this event gives them (of its first stage bit).
    group: Vec<String>,
}

/// What the explanation needs of a case.
pub struct Case<'a> {
    pub rules: &'a RuleSet,
    /// The rule under test, as an index into [`RuleSet::meta`].
    pub rule: usize,
    pub events: &'a [Built],
    pub base_time: EventTime,
    pub expected: usize,
    pub got: usize,
    /// Events the replay dead-lettered as late.
    pub late: u64,
}

/// The explanation of `case`, one line each.
pub fn explain(case: &Case<'_>) -> Vec<String> {
    let rules = case.rules;
    let corr = rules
        .correlations
        .iter()
        .enumerate()
        .find(|(_, c)| c.rule as usize == case.rule);
    let seen = see(case, corr);
    let mut out = Vec::new();
    for s in &seen {
        let at = match s.time.since(case.base_time) {
            Span::ZERO => "0s".to_string(),
            span => span.to_string(),
        };
        let what = match corr {
            None if s.matched_rule => "matched the rule".to_string(),
            None => match s.matched.is_empty() {
                true => "matched no rule".to_string(),
                false => format!("matched only {}", quoted(&s.matched)),
            },
            Some((_, c)) => describe_bits(c, s),
        };
        out.push(format!("event {} at +{at}: {what}", s.index));
    }
    if case.expected > 0 && case.got == 0 {
        let why = match corr {
            None => vec![format!(
                "why no alert: no event matched `{}`",
                rules.meta[case.rule].title
            )],
            Some((_, c)) => why_no_chain(c, &seen),
        };
        out.extend(why);
        if case.late > 0 {
            out.push(format!(
                "why no alert: {} event(s) came later than the lateness allows and were dead-lettered",
                case.late
            ));
        }
    }
    out
}

fn see(case: &Case<'_>, corr: Option<(usize, &CompiledCorrelation)>) -> Vec<Seen> {
    let rules = case.rules;
    let mut decoder = Decoder::new(&rules.schema);
    let mut matcher = Matcher::new(rules);
    let mut out = Vec::new();
    for b in case.events {
        let raw = b.json.to_string();
        let mut seen = Seen {
            index: b.index,
            time: b.time,
            matched: Vec::new(),
            matched_rule: false,
            bits: 0,
            group: Vec::new(),
        };
        decoder.decode(&rules.schema, raw.as_bytes(), raw.len(), |view| {
            let Ok(view) = view else {
                return;
            };
            let mut hits = Vec::new();
            matcher.matches(rules, &view, &mut hits);
            for &d in &hits {
                let det = &rules.detections[d as usize];
                seen.matched
                    .push(rules.meta[det.rule as usize].title.clone());
                seen.matched_rule |= det.rule as usize == case.rule;
                if let Some((ci, _)) = corr {
                    for &(c, bits) in &det.uses {
                        if c as usize == ci {
                            seen.bits |= bits;
                        }
                    }
                }
            }
            if let Some((_, c)) = corr
                && seen.bits != 0
            {
                let bit = seen.bits.trailing_zeros() as usize;
                let fields = c.group_fields.get(bit).map(Vec::as_slice).unwrap_or(&[]);
                seen.group = fields
                    .iter()
                    .map(|f| match f {
                        FieldSource::Slot(s) => view.first_text(*s).map(|t| t.into_owned()),
                        FieldSource::Identity => view.identity(&rules.schema),
                        FieldSource::Missing => None,
                    })
                    .map(|v| v.unwrap_or_else(|| "(none)".into()))
                    .collect();
            }
        });
        out.push(seen);
    }
    out
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage_name(c: &CompiledCorrelation, k: usize) -> String {
    c.stage_names
        .get(k)
        .cloned()
        .unwrap_or_else(|| k.to_string())
}

fn describe_bits(c: &CompiledCorrelation, s: &Seen) -> String {
    if s.bits == 0 {
        return match s.matched.is_empty() {
            true => "no stage (matched no rule)".into(),
            false => format!("no stage (matched only {})", quoted(&s.matched)),
        };
    }
    let mut parts = Vec::new();
    for k in 0..64usize {
        if s.bits & (1 << k) == 0 {
            continue;
        }
        if k < c.stages.len() {
            parts.push(format!("stage {} `{}`", k + 1, stage_name(c, k)));
        } else if c.until_mask & (1 << k) != 0 {
            parts.push("an `until` rule".into());
        } else if c.absence.is_some_and(|(bit, _)| bit & (1 << k) != 0) {
            parts.push("the `absence` rule".into());
        }
    }
    let mut text = parts.join(", ");
    if !s.group.is_empty() {
        text.push_str(&format!(" (group: {})", s.group.join(", ")));
    }
    text
}

/// Why a correlation made no alert of `seen`: the first reason that holds, in the order a
/// detection engineer would check.
fn why_no_chain(c: &CompiledCorrelation, seen: &[Seen]) -> Vec<String> {
    let n = c.stages.len();
    let of_stage = |k: usize| -> Vec<&Seen> {
        let mut v: Vec<&Seen> = seen.iter().filter(|s| s.bits & (1 << k) != 0).collect();
        v.sort_by_key(|s| (s.time, s.index));
        v
    };
    let inner = |k: usize| format!("stage {} `{}`", k + 1, stage_name(c, k));
    let missing: Vec<usize> = (0..n).filter(|&k| of_stage(k).is_empty()).collect();
    let chain_kind = matches!(
        c.kind,
        CorrelationType::TemporalOrdered | CorrelationType::Temporal
    );
    let required = match c.kind {
        CorrelationType::TemporalOrdered => n,
        _ => c.required.max(1),
    };
    if chain_kind && n - missing.len() < required {
        return missing
            .iter()
            .map(|&k| format!("why no alert: {} matched no event", inner(k)))
            .collect();
    }
    if c.kind == CorrelationType::TemporalOrdered {
        let stages: Vec<Vec<&Seen>> = (0..n).map(of_stage).collect();
        if let Some(reason) = why_not_ordered(c, &stages, &inner) {
            return vec![format!("why no alert: {reason}")];
        }
    } else if !chain_kind {
        let hits: usize = (0..n).map(|k| of_stage(k).len()).sum();
        return vec![format!(
            "why no alert: {hits} event(s) fed the stages; check the condition and the timespan of {}",
            c.timespan
        )];
    }
    let until: Vec<usize> = seen
        .iter()
        .filter(|s| s.bits & c.until_mask != 0)
        .map(|s| s.index)
        .collect();
    if !until.is_empty() {
        return vec![format!(
            "why no alert: event(s) {until:?} matched an `until` rule, which ends the chain"
        )];
    }
    let mut groups: Vec<String> = seen
        .iter()
        .filter(|s| s.bits & c.stage_mask() != 0)
        .map(|s| s.group.join(", "))
        .collect();
    groups.sort();
    groups.dedup();
    if groups.len() > 1 {
        return vec![format!(
            "why no alert: the stages' events are in different groups (group-by: {}): {}",
            c.group_by.join(", "),
            groups
                .iter()
                .map(|g| format!("[{g}]"))
                .collect::<Vec<_>>()
                .join(", ")
        )];
    }
    vec![
        "why no alert: every stage matched within the timespan in one group; check the \
          expected group and the extension's `absence`"
            .into(),
    ]
}

/// For `temporal_ordered`: the reason no chain of stage events in order fits, if any: the
/// shortest chain found greedily from each first-stage event.
fn why_not_ordered(
    c: &CompiledCorrelation,
    stages: &[Vec<&Seen>],
    inner: &dyn Fn(usize) -> String,
) -> Option<String> {
    let n = c.stages.len();
    let mut best: Option<Vec<&Seen>> = None;
    let mut stuck_at = 0usize;
    for first in &stages[0] {
        let mut chain = vec![*first];
        for (k, events) in stages.iter().enumerate().skip(1) {
            let after = chain[k - 1].time;
            match events.iter().find(|s| s.time >= after) {
                Some(s) => chain.push(s),
                None => {
                    stuck_at = stuck_at.max(k);
                    break;
                }
            }
        }
        let span = |ch: &[&Seen]| ch[ch.len() - 1].time.since(ch[0].time);
        if chain.len() == n && best.as_ref().is_none_or(|b| span(&chain) < span(b)) {
            best = Some(chain);
        }
    }
    let Some(chain) = best else {
        return Some(format!(
            "no event of {} comes at or after {}'s: the stages are out of order",
            inner(stuck_at),
            inner(stuck_at.saturating_sub(1))
        ));
    };
    let span = chain[n - 1].time.since(chain[0].time);
    let indices: Vec<usize> = chain.iter().map(|s| s.index).collect();
    if span > c.timespan {
        return Some(format!(
            "the shortest ordered chain (events {indices:?}) spans {span}, over the timespan of {}",
            c.timespan
        ));
    }
    for k in 1..n {
        let gap = chain[k].time.since(chain[k - 1].time);
        if let Some(Some(max)) = c.max_gaps.get(k)
            && gap > *max
        {
            return Some(format!(
                "in the chain (events {indices:?}), {} came {gap} after {}, over its max_gap of {max}",
                inner(k),
                inner(k - 1)
            ));
        }
    }
    None
}
