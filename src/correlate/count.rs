//! `event_count` and `value_count` over sliding windows.
//!
//! `event_count` keeps the matching events of the last timespan; `value_count` keeps, per
//! distinct value of the aggregated field, its latest event. When the count satisfies a
//! condition with only lower bounds (`gte`, `gt`), the machine fires with every event in the
//! window and resets, so one burst gives one alert. Both hold at most as many entries as the
//! threshold needs.

use std::collections::VecDeque;

use super::{EventRef, Params, Step};

/// Events of one group in the current window.
#[derive(Clone, Debug, Default)]
pub struct EventCount {
    window: VecDeque<EventRef>,
}

impl EventCount {
    pub fn step(&mut self, p: &Params<'_>, _stages: u64, event: EventRef) -> Step {
        let t = event.time;
        while self
            .window
            .front()
            .is_some_and(|e| t.since(e.time) > p.timespan)
        {
            self.window.pop_front();
        }
        self.window.push_back(event);
        if p.threshold
            .is_some_and(|th| th.holds(self.window.len() as f64))
        {
            let events = self.window.drain(..).map(|e| (e, 0)).collect();
            return Step::Fired(events);
        }
        match self.window.front() {
            Some(first) => Step::Pending {
                expires: first.time.plus(p.timespan),
            },
            None => Step::Idle,
        }
    }

    /// Visits every event the window holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.window.iter().for_each(f);
    }

    pub fn approx_bytes(&self) -> usize {
        self.window.len() * 48
    }
}

/// Distinct values of one group in the current window, with their latest event.
#[derive(Clone, Debug, Default)]
pub struct ValueCount {
    values: Vec<(Box<str>, EventRef)>,
}

impl ValueCount {
    pub fn step(
        &mut self,
        p: &Params<'_>,
        _stages: u64,
        value: Option<Box<str>>,
        event: EventRef,
    ) -> Step {
        let t = event.time;
        self.values.retain(|(_, e)| t.since(e.time) <= p.timespan);
        let Some(value) = value else {
            return self.pending(p);
        };
        match self.values.iter_mut().find(|(v, _)| *v == value) {
            Some(slot) => slot.1 = event,
            None => self.values.push((value, event)),
        }
        if p.threshold
            .is_some_and(|th| th.holds(self.values.len() as f64))
        {
            let mut events: Vec<(EventRef, u32)> =
                self.values.drain(..).map(|(_, e)| (e, 0)).collect();
            events.sort_by_key(|a| (a.0.time, a.0.key));
            return Step::Fired(events);
        }
        self.pending(p)
    }

    fn pending(&self, p: &Params<'_>) -> Step {
        match self.values.iter().map(|(_, e)| e.time).min() {
            Some(oldest) => Step::Pending {
                expires: oldest.plus(p.timespan),
            },
            None => Step::Idle,
        }
    }

    /// Visits every event the window holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.values.iter().for_each(|(_, e)| f(e));
    }

    pub fn approx_bytes(&self) -> usize {
        self.values.iter().map(|(v, _)| v.len() + 64).sum()
    }
}
