//! `temporal`: the referenced rules must all match, in any order, within the timespan.
//!
//! The machine keeps the latest hit of each stage. After each hit, if enough stages have a hit
//! no older than the timespan, it fires with those hits (in time order) and resets. The
//! correlation's condition may lower the number of stages required (`gte: 2` of three); a
//! condition with an upper bound is decided when the window closes instead (see
//! [`super::window`]).

use super::{Decision, EventRef, Params, Step};

/// The latest hit of each stage of one group.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct Temporal {
    latest: Vec<Option<EventRef>>,
}

impl Temporal {
    /// Whether this state (read back from a snapshot) keeps one slot per stage of `stages`.
    pub fn fits(&self, stages: usize) -> bool {
        self.latest.len() == stages
    }

    pub fn new(stages: usize) -> Temporal {
        Temporal {
            latest: vec![None; stages],
        }
    }

    pub fn step(&mut self, p: &Params<'_>, stages: u64, event: EventRef) -> Step {
        let t = event.time;
        let span = p.corr.timespan;
        for (k, slot) in self.latest.iter_mut().enumerate() {
            if stages & (1 << k) != 0 {
                *slot = Some(event.clone());
            } else if slot.as_ref().is_some_and(|e| t.since(e.time) > span) {
                *slot = None;
            }
        }
        let present = self.latest.iter().flatten().count();
        let required = p.corr.required.clamp(1, self.latest.len().max(1));
        if present >= required {
            let mut events: Vec<(EventRef, u32)> = self
                .latest
                .iter_mut()
                .enumerate()
                .filter_map(|(k, e)| e.take().map(|e| (e, k as u32)))
                .collect();
            events.sort_by_key(|a| (a.0.time, a.0.key, a.1));
            return Step::Fired(Decision {
                events,
                measure: None,
            });
        }
        match self.latest.iter().flatten().map(|e| e.time).min() {
            Some(oldest) => Step::Pending {
                expires: oldest.plus(span),
            },
            None => Step::Idle,
        }
    }

    pub fn cancel(&mut self) {
        self.latest.iter_mut().for_each(|s| *s = None);
    }

    pub fn is_empty(&self) -> bool {
        self.latest.iter().all(Option::is_none)
    }

    /// Visits every event the machine holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.latest.iter().flatten().for_each(|e| e.visit(f));
    }

    pub fn approx_bytes(&self) -> usize {
        self.latest.capacity() * size_of::<Option<EventRef>>()
            + self
                .latest
                .iter()
                .flatten()
                .map(EventRef::heap_bytes)
                .sum::<usize>()
    }
}
