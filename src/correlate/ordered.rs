//! `temporal_ordered`: the referenced rules must match in the order written, all within the
//! timespan of the first, and (with the `credtrail:` extension) each step within its stage's
//! `max_gap` of the previous one.
//!
//! For each stage k but the last, the machine keeps the partial chains that have completed
//! stages 0..=k and may still be extended. Without a gap on stage k+1 only the chain that
//! started latest matters (it stays inside the timespan longest), so one chain is kept. With a
//! gap, a chain that started earlier but whose last step is more recent may be the only one
//! still inside the gap, so the slot keeps the chains no other chain beats on both counts: by
//! start ascending, their last steps are descending. A hit for stage k extends the valid chain
//! of stage k-1 that started latest; reaching the last stage fires with the whole chain and
//! resets. Stages are tried from last to first so one event never fills two steps of one chain.
//!
//! Escalation: with `escalate_at = n`, a chain that completes its n-th stage is announced early
//! ([`Step::Advanced`], a Create); each later stage it reaches is announced again as an update,
//! and its end fires as [`Step::FiredUpdate`]. The chain keeps its first event, so every
//! announcement carries the same alert id.

use super::{Decision, EventRef, Params, Step, events_bytes};
use crate::time::{EventTime, Span};

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
struct Chain {
    start: EventTime,
    last: EventTime,
    events: Vec<(EventRef, u32)>,
    /// An early finding was emitted for this chain.
    announced: bool,
}

/// An early announcement: the chain's events, the stages it completed, whether it was
/// announced before.
type Announcement = (Vec<(EventRef, u32)>, u32, bool);

/// The partial chains of one group.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct Ordered {
    /// `slots[k]`: chains through stage k, start ascending (and last step descending).
    slots: Vec<Vec<Chain>>,
}

impl Ordered {
    /// Whether this state (read back from a snapshot) has the shape of a rule of `stages`
    /// stages: one slot per stage but the last, chains whose stages exist.
    pub fn fits(&self, stages: usize) -> bool {
        self.slots.len() == stages.saturating_sub(1)
            && self.slots.iter().flatten().all(|c| {
                !c.events.is_empty() && c.events.iter().all(|(_, k)| (*k as usize) < stages)
            })
    }

    pub fn new(stages: usize) -> Ordered {
        Ordered {
            slots: vec![Vec::new(); stages.saturating_sub(1)],
        }
    }

    /// Feeds one hit (stages as a bitmask). Hits must come in event-time order.
    pub fn step(&mut self, p: &Params<'_>, stages: u64, event: EventRef) -> Step {
        let t = event.time;
        let corr = p.corr;
        let n = corr.stages.len();
        let span = corr.timespan;
        let gap_after = |k: usize| corr.max_gaps.get(k + 1).copied().flatten();
        // Drop chains that can no longer be extended: out of the timespan or the next gap.
        for (k, slot) in self.slots.iter_mut().enumerate() {
            let gap = gap_after(k);
            slot.retain(|c| alive(c, t, span, gap));
        }
        let max_chains = (p.max_events() / n.max(1)).max(1);
        let mut advanced: Option<Announcement> = None;
        for k in (0..n).rev() {
            if stages & (1 << k) == 0 {
                continue;
            }
            let candidate = if k == 0 {
                Some(Chain {
                    start: t,
                    last: t,
                    events: vec![(event.clone(), 0)],
                    announced: false,
                })
            } else {
                // Every chain left is valid at `t`; the last one started latest.
                self.slots[k - 1].last().map(|prev| {
                    let mut events = Vec::with_capacity(prev.events.len() + 1);
                    events.extend(prev.events.iter().cloned());
                    events.push((event.clone(), k as u32));
                    Chain {
                        start: prev.start,
                        last: t,
                        events,
                        announced: prev.announced,
                    }
                })
            };
            let Some(mut candidate) = candidate else {
                continue;
            };
            if k == n - 1 {
                self.cancel();
                let decision = Decision {
                    events: candidate.events,
                    measure: None,
                };
                return if candidate.announced {
                    Step::FiredUpdate(decision)
                } else {
                    Step::Fired(decision)
                };
            }
            let announce = p.escalate_at.is_some_and(|e| k + 1 >= e) && advanced.is_none();
            let update = candidate.announced;
            if announce {
                candidate.announced = true;
            }
            let events = announce.then(|| candidate.events.clone());
            let (trimmed, inserted) =
                insert(&mut self.slots[k], candidate, gap_after(k), max_chains);
            p.trim(trimmed);
            if let (true, Some(events)) = (inserted, events) {
                advanced = Some((events, k as u32 + 1, update));
            }
        }
        let expires = self
            .slots
            .iter()
            .enumerate()
            .flat_map(|(k, slot)| {
                let gap = gap_after(k);
                slot.iter().map(move |c| {
                    let by_span = c.start.plus(span);
                    gap.map_or(by_span, |g| by_span.min(c.last.plus(g)))
                })
            })
            .max();
        match (advanced, expires) {
            (Some((events, stage, update)), Some(expires)) => Step::Advanced {
                events,
                stage,
                update,
                expires,
            },
            (_, Some(expires)) => Step::Pending { expires },
            (_, None) => Step::Idle,
        }
    }

    /// The events of the furthest announced partial chain, and the stages it completed.
    pub fn announced(&self) -> Option<(&[(EventRef, u32)], u32)> {
        self.slots.iter().enumerate().rev().find_map(|(k, s)| {
            s.iter()
                .rev()
                .find(|c| c.announced)
                .map(|c| (&c.events[..], k as u32 + 1))
        })
    }

    /// Takes the events of the furthest partial chain, leaving no chain (a canary ends it).
    pub fn take_furthest(&mut self) -> Vec<(EventRef, u32)> {
        let furthest = self
            .slots
            .iter_mut()
            .rev()
            .find_map(|s| s.pop())
            .map(|c| c.events)
            .unwrap_or_default();
        self.cancel();
        furthest
    }

    pub fn cancel(&mut self) {
        self.slots.iter_mut().for_each(Vec::clear);
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Vec::is_empty)
    }

    /// The furthest stage a partial chain has completed (0-based), if any.
    pub fn stage_reached(&self) -> Option<usize> {
        self.slots.iter().rposition(|s| !s.is_empty())
    }

    /// Visits every event the partial chains hold.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        for c in self.slots.iter().flatten() {
            c.events.iter().for_each(|(e, _)| e.visit(f));
        }
    }

    pub fn approx_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Vec<Chain>>()
            + self
                .slots
                .iter()
                .map(|s| s.capacity() * size_of::<Chain>())
                .sum::<usize>()
            + self
                .slots
                .iter()
                .flatten()
                .map(|c| events_bytes(c.events.capacity(), &c.events))
                .sum::<usize>()
    }
}

fn alive(c: &Chain, t: EventTime, span: Span, gap: Option<Span>) -> bool {
    t.since(c.start) <= span && gap.is_none_or(|g| t.since(c.last) <= g)
}

/// Files `candidate` (whose last step is the newest) into `slot`; returns how many chains the
/// budget made it drop and whether the candidate was kept.
fn insert(slot: &mut Vec<Chain>, candidate: Chain, gap: Option<Span>, max: usize) -> (u64, bool) {
    if gap.is_none() {
        // Only the start matters: keep the chain that started latest.
        if slot.iter().any(|c| c.start >= candidate.start) {
            return (0, false);
        }
        slot.clear();
        // Most groups never hold a second chain here: no room for four.
        slot.reserve_exact(1);
        slot.push(candidate);
        return (0, true);
    }
    // The candidate beats every chain that started no later than it did.
    slot.retain(|c| c.start > candidate.start);
    slot.insert(0, candidate);
    let mut trimmed = 0;
    while slot.len() > max {
        // The chain whose last step is oldest is the first to fall out of the gap.
        slot.pop();
        trimmed += 1;
    }
    (trimmed, true)
}
