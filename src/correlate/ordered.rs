//! `temporal_ordered`: the referenced rules must match in the order written, all within the
//! timespan of the first.
//!
//! The machine keeps, for each stage k but the last, the best partial chain that has completed
//! stages 0..=k: the one that started latest, since it stays open longest. A hit for stage k
//! extends the chain of stage k-1 if that chain is still inside the timespan; reaching the last
//! stage fires with the whole chain and resets. Stages are tried from last to first so one event
//! never fills two steps of the same chain. Memory per group is at most `stages - 1` chains.
//!
//! Escalation: with `escalate_at = n`, a chain that completes its n-th stage is announced early
//! ([`Step::Advanced`], a Create); each later stage it reaches is announced again as an update,
//! and its end fires as [`Step::FiredUpdate`]. The chain keeps its first event, so every
//! announcement carries the same alert id.

use super::{EventRef, Params, Step};
use crate::time::EventTime;

/// An early announcement: the chain's events, the stages it completed, whether it was
/// announced before.
type Announcement = (Vec<(EventRef, u32)>, u32, bool);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Chain {
    start: EventTime,
    events: Vec<(EventRef, u32)>,
    /// An early finding was emitted for this chain.
    announced: bool,
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
        let mut advanced: Option<Announcement> = None;
        for k in (0..p.stages).rev() {
            if stages & (1 << k) == 0 {
                continue;
            }
            let candidate = if k == 0 {
                Some(Chain {
                    start: t,
                    events: vec![(event.clone(), 0)],
                    announced: false,
                })
            } else {
                self.chains[k - 1].as_ref().map(|prev| {
                    let mut events = prev.events.clone();
                    events.push((event.clone(), k as u32));
                    Chain {
                        start: prev.start,
                        events,
                        announced: prev.announced,
                    }
                })
            };
            let Some(mut candidate) = candidate else {
                continue;
            };
            if k == last {
                let announced = candidate.announced;
                let events = candidate.events;
                self.chains.iter_mut().for_each(|c| *c = None);
                return if announced {
                    Step::FiredUpdate(events)
                } else {
                    Step::Fired(events)
                };
            }
            let slot = &mut self.chains[k];
            if slot.as_ref().is_none_or(|c| candidate.start > c.start) {
                if p.escalate_at.is_some_and(|n| k + 1 >= n) && advanced.is_none() {
                    let update = candidate.announced;
                    candidate.announced = true;
                    advanced = Some((candidate.events.clone(), k as u32 + 1, update));
                }
                *slot = Some(candidate);
            }
        }
        let expires = self
            .chains
            .iter()
            .flatten()
            .map(|c| c.start)
            .max()
            .map(|s| s.plus(p.timespan));
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
        self.chains.iter().enumerate().rev().find_map(|(k, c)| {
            c.as_ref()
                .filter(|c| c.announced)
                .map(|c| (&c.events[..], k as u32 + 1))
        })
    }

    /// Takes the events of the furthest partial chain, leaving no chain (a canary ends it).
    pub fn take_furthest(&mut self) -> Vec<(EventRef, u32)> {
        let furthest = self
            .chains
            .iter_mut()
            .rev()
            .find_map(Option::take)
            .map(|c| c.events)
            .unwrap_or_default();
        self.chains.iter_mut().for_each(|c| *c = None);
        furthest
    }

    /// The furthest stage a partial chain has completed (0-based), if any.
    pub fn stage_reached(&self) -> Option<usize> {
        self.chains.iter().rposition(Option::is_some)
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
