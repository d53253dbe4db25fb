//! `temporal`: the referenced rules must all match, in any order, within the timespan.
//!
//! The machine keeps the latest hit of each stage. After each hit, if every required stage has
//! a hit no older than the timespan, it fires with those hits (in time order) and resets. The
//! correlation's condition may lower the number of stages required (`gte: 2` of three).

use super::{EventRef, Params, Step};
use crate::sigma::value::NumOp;

/// The latest hit of each stage of one group.
#[derive(Clone, Debug, Default)]
pub struct Temporal {
    latest: Vec<Option<EventRef>>,
}

impl Temporal {
    pub fn new(stages: usize) -> Temporal {
        Temporal {
            latest: vec![None; stages],
        }
    }

    pub fn step(&mut self, p: &Params<'_>, stages: u64, event: EventRef) -> Step {
        let t = event.time;
        for (k, slot) in self.latest.iter_mut().enumerate() {
            if stages & (1 << k) != 0 {
                *slot = Some(event.clone());
            } else if slot.as_ref().is_some_and(|e| t.since(e.time) > p.timespan) {
                *slot = None;
            }
        }
        let present = self.latest.iter().flatten().count();
        let required = p
            .threshold
            .and_then(|th| {
                th.tests
                    .iter()
                    .find(|(op, _)| matches!(op, NumOp::Gte | NumOp::Gt | NumOp::Eq))
                    .map(|(op, v)| {
                        let v = *v as usize;
                        if *op == NumOp::Gt { v + 1 } else { v }
                    })
            })
            .unwrap_or(p.stages)
            .clamp(1, p.stages);
        if present >= required {
            let mut events: Vec<(EventRef, u32)> = self
                .latest
                .iter_mut()
                .enumerate()
                .filter_map(|(k, e)| e.take().map(|e| (e, k as u32)))
                .collect();
            events.sort_by_key(|a| (a.0.time, a.0.key, a.1));
            return Step::Fired(events);
        }
        match self.latest.iter().flatten().map(|e| e.time).min() {
            Some(oldest) => Step::Pending {
                expires: oldest.plus(p.timespan),
            },
            None => Step::Idle,
        }
    }

    /// Visits every event the machine holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.latest.iter().flatten().for_each(f);
    }

    pub fn approx_bytes(&self) -> usize {
        self.latest.len() * 80
    }
}
