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

use super::{Decision, EventRef, Params, Step};
use crate::time::{EventTime, Span};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Chain {
    start: EventTime,
    last: EventTime,
    events: Vec<(EventRef, u32)>,
}

/// The partial chains of one group.
#[derive(Clone, Debug, Default)]
pub struct Ordered {
    /// `slots[k]`: chains through stage k, start ascending (and last step descending).
    slots: Vec<Vec<Chain>>,
}

impl Ordered {
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
        for k in (0..n).rev() {
            if stages & (1 << k) == 0 {
                continue;
            }
            let candidate = if k == 0 {
                Some(Chain {
                    start: t,
                    last: t,
                    events: vec![(event.clone(), 0)],
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
                    }
                })
            };
            let Some(candidate) = candidate else { continue };
            if k == n - 1 {
                self.cancel();
                return Step::Fired(Decision {
                    events: candidate.events,
                    measure: None,
                });
            }
            let trimmed = insert(&mut self.slots[k], candidate, gap_after(k), max_chains);
            p.trim(trimmed);
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
        match expires {
            Some(expires) => Step::Pending { expires },
            None => Step::Idle,
        }
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

    pub fn approx_bytes(&self) -> usize {
        self.slots.len() * 24
            + self
                .slots
                .iter()
                .flatten()
                .map(|c| 40 + c.events.len() * 96)
                .sum::<usize>()
    }
}

fn alive(c: &Chain, t: EventTime, span: Span, gap: Option<Span>) -> bool {
    t.since(c.start) <= span && gap.is_none_or(|g| t.since(c.last) <= g)
}

/// Files `candidate` (whose last step is the newest) into `slot`; returns how many chains the
/// budget made it drop.
fn insert(slot: &mut Vec<Chain>, candidate: Chain, gap: Option<Span>, max: usize) -> u64 {
    if gap.is_none() {
        // Only the start matters: keep the chain that started latest.
        if slot.iter().any(|c| c.start >= candidate.start) {
            return 0;
        }
        slot.clear();
        slot.push(candidate);
        return 0;
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
    trimmed
}
