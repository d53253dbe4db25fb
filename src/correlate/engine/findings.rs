//! Findings of a shard: scoring them, announcing chains early, waiting for absence deadlines,
//! and feeding correlation findings into the correlations that reference them.

use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::ShardEngine;
use crate::correlate::footprint::Footprint;
use crate::correlate::{Decision, EventRef, Finding, GROUP_SEPARATOR, Hit, Target};
use crate::score::{ChainFacts, RuleTerms};
use crate::time::{EventTime, Span};
use crate::vocab::{Position, TouchKind};

impl ShardEngine {
    /// Builds a finding and scores it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finding(
        &mut self,
        target: Target,
        group: Box<str>,
        events: Vec<(EventRef, u32)>,
        time: EventTime,
        measure: Option<f64>,
        footprint: &Footprint,
        stage: (u32, u32),
        canary: bool,
    ) -> Finding {
        self.stats.findings += 1;
        let gaps: Vec<Span> = events
            .windows(2)
            .map(|w| w[1].0.time.since(w[0].0.time))
            .collect();
        let rule = match target {
            Target::Correlation(c) => {
                let corr = &self.rules.correlations[c as usize];
                RuleTerms {
                    weights: corr.weights,
                    level: corr.level,
                }
            }
            Target::Detection(d) => RuleTerms {
                weights: None,
                level: self.rules.detection_meta(d).level,
            },
        };
        let touched = footprint.counts();
        let score = self.assessor.score(
            rule,
            &group,
            ChainFacts {
                touched,
                stage,
                gaps,
                canary,
            },
        );
        Finding {
            target,
            group,
            events,
            time,
            measure,
            score,
            touched,
            resources: footprint.examples().to_vec(),
            stage,
            canary,
            update: false,
            is_alert: true,
        }
    }

    /// Emits an early (not yet alerting) finding for an announced chain, unless nothing
    /// changed since its last announcement.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn announce(
        &mut self,
        c: u32,
        id: u128,
        events: Vec<(EventRef, u32)>,
        time: EventTime,
        stage: (u32, u32),
        update: bool,
        out: &mut Vec<Finding>,
    ) {
        let Some(entry) = self.states.get(&id) else {
            return;
        };
        let (group, footprint) = (entry.group.clone(), entry.footprint.clone());
        let mut f = self.finding(
            Target::Correlation(c),
            group,
            events,
            time,
            None,
            &footprint,
            stage,
            false,
        );
        let signature = (f.stage.0, f.score.score, f.events.len() as u32);
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        if update && entry.announced == Some(signature) {
            self.stats.findings -= 1;
            return;
        }
        entry.announced = Some(signature);
        f.update = update;
        f.is_alert = false;
        out.push(f);
    }

    /// A condition held at `time`: alert now, or wait for the absence deadline. `update` says
    /// the chain was announced early (its alert is the final Update of that finding).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decided(
        &mut self,
        c: u32,
        id: u128,
        d: Decision,
        time: EventTime,
        canary: bool,
        update: bool,
        out: &mut Vec<Finding>,
    ) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        match corr.absence {
            Some((_, within)) => {
                let deadline = time.plus(within);
                entry.awaiting.push((deadline, d));
                entry.expires = entry.expires.max(deadline);
                let cap = corr.budget.max_events.max(1);
                if entry.awaiting.len() > cap {
                    entry.awaiting.remove(0);
                    self.stats.trimmed += 1;
                }
            }
            None => {
                let group = entry.group.clone();
                let footprint = entry.footprint.clone();
                self.emit(c, &group, d, time, &footprint, canary, update, out);
            }
        }
    }

    /// Turns a decision into a finding: an alert if the rule is standalone, and a derived hit
    /// for every correlation that references the rule.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &mut self,
        c: u32,
        group: &str,
        d: Decision,
        time: EventTime,
        footprint: &Footprint,
        canary: bool,
        update: bool,
        out: &mut Vec<Finding>,
    ) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let events = flatten(d.events);
        if !corr.feeds.is_empty() {
            let values: Vec<&str> = group.split(GROUP_SEPARATOR).collect();
            let parts: Arc<[(EventRef, u32)]> = events.clone().into();
            let first = events.first().map(|(e, _)| e.key).unwrap_or(0);
            let pos = events.last().map(|(e, _)| e.pos).unwrap_or(Position {
                source: 0,
                offset: 0,
            });
            let meta = &rules.meta[corr.rule as usize];
            let label = meta.id.as_deref().unwrap_or(&meta.title);
            let first_id = events.first().map(|(e, _)| &*e.id).unwrap_or("");
            let mut h = Xxh3::new();
            h.update(&c.to_le_bytes());
            h.update(group.as_bytes());
            h.update(&first.to_le_bytes());
            h.update(&time.0.to_le_bytes());
            let key = h.digest();
            for feed in &corr.feeds {
                let pick = |i: usize| values.get(i).copied().unwrap_or("");
                let outer: Vec<&str> = feed.group.iter().map(|&i| pick(i)).collect();
                self.stats.derived += 1;
                self.enqueue(Hit {
                    target: Target::Correlation(feed.target),
                    stages: feed.stages,
                    group: outer.join(&GROUP_SEPARATOR.to_string()).into(),
                    value: feed.value.map(|i| pick(i).into()),
                    shard_key: 0,
                    event: EventRef {
                        time,
                        key,
                        pos,
                        id: format!("{label}:{first_id}").into(),
                        parts: Some(Arc::clone(&parts)),
                        actor: None,
                        details: None,
                    },
                    touched: footprint_touches(footprint),
                });
            }
        }
        if corr.standalone {
            let n = corr.stages.len() as u32;
            let stage = match corr.kind {
                crate::sigma::CorrelationType::Temporal => {
                    let mut seen: Vec<u32> = events.iter().map(|(_, s)| *s).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    (seen.len() as u32, n)
                }
                crate::sigma::CorrelationType::TemporalOrdered => (n, n),
                _ => (1, 1),
            };
            let mut f = self.finding(
                Target::Correlation(c),
                group.into(),
                events,
                time,
                d.measure,
                footprint,
                stage,
                canary,
            );
            f.update = update;
            out.push(f);
        }
    }
}

/// A footprint's examples as touched values, carried by a derived hit into the outer state.
fn footprint_touches(f: &Footprint) -> Vec<(TouchKind, Box<str>)> {
    f.examples().to_vec()
}

/// Replaces derived events by the events of the findings they stand for, in time order.
fn flatten(events: Vec<(EventRef, u32)>) -> Vec<(EventRef, u32)> {
    if events.iter().all(|(e, _)| e.parts.is_none()) {
        return events;
    }
    let mut out = Vec::with_capacity(events.len() * 2);
    for (e, stage) in events {
        match &e.parts {
            Some(parts) => out.extend(parts.iter().map(|(p, _)| (p.clone(), stage))),
            None => out.push((e, stage)),
        }
    }
    out.sort_by_key(|a| (a.0.time, a.0.key, a.1));
    out.dedup_by(|a, b| a.0.key == b.0.key && a.0.time == b.0.time && a.1 == b.1);
    out
}
