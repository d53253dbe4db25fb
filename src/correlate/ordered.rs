//! `temporal_ordered`: the referenced rules must match in the order written, all within the
//! timespan of the first.
//!
//! The machine keeps, for each stage k but the last, the best partial chain that has completed
//! stages 0..=k: the one that started latest, since it stays open longest. A hit for stage k
//! extends the chain of stage k-1 if that chain is still inside the timespan; reaching the last
//! stage fires with the whole chain and resets. Stages are tried from last to first so one event
//! never fills two steps of the same chain. Memory per group is at most `stages - 1` chains.

use super::{EventRef, Params, Step};
use crate::time::EventTime;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Chain {
    start: EventTime,
    events: Vec<(EventRef, u32)>,
}

/// The partial chains of one group.
#[derive(Clone, Debug, Default)]
pub struct Ordered {
    chains: Vec<Option<Chain>>,
}

impl Ordered {
    pub fn new(stages: usize) -> Ordered {
        Ordered {
            chains: vec![None; stages.saturating_sub(1)],
        }
    }

    /// Feeds one hit (stages as a bitmask). Hits must come in event-time order.
    pub fn step(&mut self, p: &Params<'_>, stages: u64, event: EventRef) -> Step {
        let t = event.time;
        let last = p.stages - 1;
        // Drop chains whose window has closed.
        for c in &mut self.chains {
            if c.as_ref().is_some_and(|c| t.since(c.start) > p.timespan) {
                *c = None;
            }
        }
        for k in (0..p.stages).rev() {
            if stages & (1 << k) == 0 {
                continue;
            }
            let candidate = if k == 0 {
                Some(Chain {
                    start: t,
                    events: vec![(event.clone(), 0)],
                })
            } else {
                self.chains[k - 1].as_ref().map(|prev| {
                    let mut events = prev.events.clone();
                    events.push((event.clone(), k as u32));
                    Chain {
                        start: prev.start,
                        events,
                    }
                })
            };
            let Some(candidate) = candidate else { continue };
            if k == last {
                let events = candidate.events;
                self.chains.iter_mut().for_each(|c| *c = None);
                return Step::Fired(events);
            }
            let slot = &mut self.chains[k];
            if slot.as_ref().is_none_or(|c| candidate.start > c.start) {
                *slot = Some(candidate);
            }
        }
        match self.chains.iter().flatten().map(|c| c.start).max() {
            Some(start) => Step::Pending {
                expires: start.plus(p.timespan),
            },
            None => Step::Idle,
        }
    }

    /// The furthest stage a partial chain has completed (0-based), if any.
    pub fn stage_reached(&self) -> Option<usize> {
        self.chains.iter().rposition(Option::is_some)
    }

    /// Visits every event the partial chains hold.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        for c in self.chains.iter().flatten() {
            c.events.iter().for_each(|(e, _)| f(e));
        }
    }

    pub fn approx_bytes(&self) -> usize {
        self.chains.len() * 40
            + self
                .chains
                .iter()
                .flatten()
                .map(|c| c.events.len() * (48 + 40))
                .sum::<usize>()
    }
}
