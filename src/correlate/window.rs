//! Conditions decided when the window closes: upper bounds (`lt`, `lte`, `eq`, ranges) on any
//! aggregate, and the averages, percentiles and medians.
//!
//! A window opens at a group's first hit after the previous window closed and covers
//! `[first, first + timespan]`. Nothing is decided while it is open: more events could still
//! push a count over an upper bound or move an average. When the watermark passes the close
//! instant the engine wakes the machine ([`Window::close`]), which computes the aggregate over
//! the window, fires if the condition holds, and empties itself; the next hit opens a new
//! window.
//!
//! The aggregates:
//!
//! | type               | aggregate                                                          |
//! |--------------------|--------------------------------------------------------------------|
//! | `event_count`      | events in the window                                               |
//! | `value_count`      | distinct values of `condition.field`                               |
//! | `temporal`         | distinct referenced rules that matched                             |
//! | `value_sum`        | sum of `condition.field` (events whose value is not a number skip) |
//! | `value_avg`        | arithmetic mean of the same values                                 |
//! | `value_percentile` | nearest-rank percentile `condition.percentile` of the values       |
//! | `value_median`     | median (the mean of the two middle values for an even number)      |
//!
//! Budget: evidence keeps the first `max_events` events; counts and sums stay exact; the values
//! kept for percentiles and distinct values are capped at `max_events` too (drops counted).

use std::collections::BTreeSet;

use super::{Decision, EventRef, Params, Step, events_bytes, number};
use crate::sigma::CorrelationType;
use crate::time::EventTime;

/// One group's open window.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct Window {
    start: Option<EventTime>,
    events: Vec<(EventRef, u32)>,
    count: u64,
    stages: u64,
    sum: f64,
    numbers: Vec<f64>,
    distinct: BTreeSet<Box<str>>,
}

impl Window {
    /// Whether this state (read back from a snapshot) names only stages a rule of `stages`
    /// stages has.
    pub fn fits(&self, stages: usize) -> bool {
        self.events
            .iter()
            .all(|(_, k)| (*k as usize) < stages.max(1))
    }

    pub fn step(
        &mut self,
        p: &Params<'_>,
        stages: u64,
        value: Option<&str>,
        event: EventRef,
    ) -> Step {
        let corr = p.corr;
        let numeric = matches!(
            corr.kind,
            CorrelationType::ValueSum
                | CorrelationType::ValueAvg
                | CorrelationType::ValuePercentile
                | CorrelationType::ValueMedian
        );
        let v = if numeric {
            match value.and_then(number) {
                Some(v) => Some(v),
                None => return self.pending(p),
            }
        } else {
            None
        };
        if corr.kind == CorrelationType::ValueCount && value.is_none() {
            return self.pending(p);
        }
        if let Some(close) = self.deadline(p)
            && event.time > close
        {
            // Only when the engine ran this hit before the window's timer (its buffer
            // overflowed): the old window can no longer be decided in order.
            p.trim(self.events.len() as u64);
            *self = Window::default();
        }
        self.start.get_or_insert(event.time);
        let max = p.max_events();
        self.count += 1;
        self.stages |= stages;
        if let Some(v) = v {
            self.sum += v;
            if self.numbers.len() < max {
                self.numbers.push(v);
            } else {
                p.trim(1);
            }
        }
        if let Some(value) = value.filter(|_| corr.kind == CorrelationType::ValueCount)
            && !self.distinct.contains(value)
        {
            if self.distinct.len() < max {
                self.distinct.insert(value.into());
            } else {
                p.trim(1);
            }
        }
        if self.events.len() < max {
            let stage = stages.trailing_zeros();
            self.events.push((event, stage));
        } else {
            p.trim(1);
        }
        self.pending(p)
    }

    fn pending(&self, p: &Params<'_>) -> Step {
        match self.deadline(p) {
            Some(expires) => Step::Pending { expires },
            None => Step::Idle,
        }
    }

    /// The close instant: the last instant inside the window.
    pub fn deadline(&self, p: &Params<'_>) -> Option<EventTime> {
        self.start.map(|s| s.plus(p.corr.timespan))
    }

    /// Decides the window and empties the machine.
    pub fn close(&mut self, p: &Params<'_>) -> Option<Decision> {
        let w = std::mem::take(self);
        w.start?;
        let measure = w.measure(p)?;
        let holds = p
            .corr
            .threshold
            .as_ref()
            .map_or(measure >= p.corr.required as f64, |th| th.holds(measure));
        holds.then_some(Decision {
            events: w.events,
            measure: Some(measure),
        })
    }

    fn measure(&self, p: &Params<'_>) -> Option<f64> {
        let n = self.numbers.len();
        Some(match p.corr.kind {
            CorrelationType::EventCount => self.count as f64,
            CorrelationType::ValueCount => self.distinct.len() as f64,
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
                self.stages.count_ones() as f64
            }
            CorrelationType::ValueSum => self.sum,
            CorrelationType::ValueAvg => {
                if self.count == 0 {
                    return None;
                }
                self.sum / self.count as f64
            }
            CorrelationType::ValueMedian => {
                let sorted = self.sorted();
                match n {
                    0 => return None,
                    _ if n % 2 == 1 => sorted[n / 2],
                    _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
                }
            }
            CorrelationType::ValuePercentile => {
                if n == 0 {
                    return None;
                }
                let pct = p.corr.percentile.unwrap_or(50.0).clamp(0.0, 100.0);
                let rank = ((pct / 100.0) * n as f64).ceil() as usize;
                self.sorted()[rank.clamp(1, n) - 1]
            }
        })
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.numbers.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn is_empty(&self) -> bool {
        self.start.is_none()
    }

    /// Visits every event the window holds.
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        self.events.iter().for_each(|(e, _)| e.visit(f));
    }

    pub fn approx_bytes(&self) -> usize {
        events_bytes(self.events.capacity(), &self.events)
            + self.numbers.capacity() * size_of::<f64>()
            // A B-tree node per ~6 keys, about 16 B of key slot and node share each.
            + self.distinct.iter().map(|v| v.len() + 32).sum::<usize>()
    }
}
