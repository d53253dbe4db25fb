//! `event_count`, `value_count` and `value_sum` with lower-bound conditions, over sliding
//! windows.
//!
//! [`Sliding`] keeps the matching events of the last timespan (with their value for
//! `value_sum`); [`ValueCount`] keeps, per distinct value of the aggregated field, its latest
//! event. When the aggregate satisfies a condition with only lower bounds (`gte`, `gt`), the
//! machine fires with every event in the window and resets, so one burst gives one alert.
//! Conditions with an upper bound are decided when the window closes ([`super::window`]).

use std::collections::VecDeque;

use super::{Decision, EventRef, Params, Step, number};
use crate::sigma::CorrelationType;

/// Events of one group in the current window: `event_count` counts them, `value_sum` adds
/// their values.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct Sliding {
    window: VecDeque<(EventRef, f64)>,
}

impl Sliding {
    pub fn step(&mut self, p: &Params<'_>, value: Option<&str>, event: EventRef) -> Step {
        let t = event.time;
        let span = p.corr.timespan;
        let summing = p.corr.kind == CorrelationType::ValueSum;
        let v = if summing {
            match value.and_then(number) {
                Some(v) => v,
                // Not a number: the event does not take part in the sum.
                None => return self.pending(p),
            }
        } else {
            1.0
        };
        while self
            .window
            .front()
            .is_some_and(|(e, _)| t.since(e.time) > span)
        {
            self.window.pop_front();
        }
        self.window.push_back((event, v));
        if self.window.len() > p.max_events() {
            self.window.pop_front();
            p.trim(1);
        }
        let measure = if summing {
            // Added up from the window, not kept running, so rounding never drifts.
            self.window.iter().map(|(_, v)| v).sum()
        } else {
            self.window.len() as f64
        };
        if p.corr
            .threshold
            .as_ref()
            .is_some_and(|th| th.holds(measure))
        {
            let events = self.window.drain(..).map(|(e, _)| (e, 0)).collect();
            return Step::Fired(Decision {
                events,
                // A count is the number of events listed; only a sum is worth quoting.
                measure: summing.then_some(measure),
            });
        }
        self.pending(p)
    }

    fn pending(&self, p: &Params<'_>) -> Step {
        match self.window.front() {
            Some((first, _)) => Step::Pending {
                expires: first.time.plus(p.corr.timespan),
            },
            None => Step::Idle,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Visits every event the window holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.window.iter().for_each(|(e, _)| e.visit(f));
    }

    pub fn approx_bytes(&self) -> usize {
        self.window.capacity() * size_of::<(EventRef, f64)>()
            + self
                .window
                .iter()
                .map(|(e, _)| e.heap_bytes())
                .sum::<usize>()
    }
}

/// Distinct values of one group in the current window, with their latest event.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct ValueCount {
    values: Vec<(Box<str>, EventRef)>,
}

impl ValueCount {
    pub fn step(&mut self, p: &Params<'_>, value: Option<&str>, event: EventRef) -> Step {
        let t = event.time;
        let span = p.corr.timespan;
        self.values.retain(|(_, e)| t.since(e.time) <= span);
        let Some(value) = value else {
            return self.pending(p);
        };
        match self.values.iter_mut().find(|(v, _)| &**v == value) {
            Some(slot) => slot.1 = event,
            None => self.values.push((value.into(), event)),
        }
        if self.values.len() > p.max_events() {
            // The value seen longest ago goes first.
            if let Some(oldest) = (0..self.values.len()).min_by_key(|&i| {
                let e = &self.values[i].1;
                (e.time, e.key)
            }) {
                self.values.remove(oldest);
                p.trim(1);
            }
        }
        let distinct = self.values.len() as f64;
        if p.corr
            .threshold
            .as_ref()
            .is_some_and(|th| th.holds(distinct))
        {
            let mut events: Vec<(EventRef, u32)> =
                self.values.drain(..).map(|(_, e)| (e, 0)).collect();
            events.sort_by_key(|a| (a.0.time, a.0.key));
            return Step::Fired(Decision {
                events,
                measure: None,
            });
        }
        self.pending(p)
    }

    fn pending(&self, p: &Params<'_>) -> Step {
        match self.values.iter().map(|(_, e)| e.time).min() {
            Some(oldest) => Step::Pending {
                expires: oldest.plus(p.corr.timespan),
            },
            None => Step::Idle,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Visits every event the window holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.values.iter().for_each(|(_, e)| e.visit(f));
    }

    pub fn approx_bytes(&self) -> usize {
        self.values.capacity() * size_of::<(Box<str>, EventRef)>()
            + self
                .values
                .iter()
                .map(|(v, e)| v.len() + e.heap_bytes())
                .sum::<usize>()
    }
}
