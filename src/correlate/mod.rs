//! Correlate: the event-time state machines one shard owns.
//!
//! A [`ShardEngine`] receives [`Hit`]s (an event matched a detection that feeds a correlation,
//! or that alerts on its own) and watermarks. Hits wait in a reorder buffer until the watermark
//! passes their event time, then run through the state machines in event-time order. Hits of one
//! instant are simultaneous: each rule takes them stage by stage, first stage first (so a
//! `temporal_ordered` chain whose steps share a CloudTrail second completes, whatever their
//! ids), then by the event's content key; `credtrail: {order: strict}` reverses the stages so
//! equal times never follow each other. Timers (a window closing, an absence deadline) are decided in
//! the same order: a timer at instant `t` runs after every hit at `t` and before any later hit,
//! and only once the watermark has passed `t`. That order depends only on the events, not on
//! how they arrived, which threads decoded them or how many shards there are: out-of-order
//! input within the allowed lateness and any shard count give the same findings as sorted input.
//!
//! State lives in a map from (correlation, group key) to a per-type [`Machine`]
//! ([`ordered::Ordered`], [`temporal::Temporal`], [`count::Sliding`], [`count::ValueCount`],
//! [`window::Window`]); it expires when the watermark passes what it waits for, and is bounded
//! per rule ([`StateBudget`]) and per shard ([`ShardLimits`]) with counted evictions.
//!
//! A correlation that references another correlation receives the inner one's findings as
//! hits ("derived" hits, whose evidence is the inner finding's events). Both are routed to a
//! shard by the outer rule's group-by values, so the derived hit never leaves its shard.

pub mod count;
pub mod engine;
pub mod eviction;
pub mod footprint;
pub mod ordered;
pub mod temporal;
pub mod window;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tie_tests;

use std::cell::Cell;

pub use engine::ShardEngine;

use crate::matcher::{CompiledCorrelation, Decide};
use crate::score::{Score, Touched};
use crate::sigma::CorrelationType;
use crate::time::EventTime;
use crate::vocab::TouchKind;
// The matcher and the identity resolver, below this module, name these too, so they live in the
// shared vocabulary; re-exported here, where readers look for them.
pub use crate::vocab::{
    EventRef, GROUP_SEPARATOR, Hit, StateBudget, Target, events_bytes, shard_key,
};

/// A decided detection: one alert to emit.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub target: Target,
    pub group: Box<str>,
    /// Every contributing event with the stage it matched, in event-time order.
    pub events: Vec<(EventRef, u32)>,
    /// The event time at which the finding was decided: its last event, or the instant a
    /// window closed or an absence deadline passed.
    pub time: EventTime,
    /// The aggregate the condition compared (count, distinct values, sum, average, ...).
    pub measure: Option<f64>,
    /// Blast radius with its breakdown.
    pub score: Score,
    /// Distinct things the chain touched, by kind.
    pub touched: Touched,
    /// Examples of what the chain touched, for the alert's `resources`.
    pub resources: Vec<(TouchKind, Box<str>)>,
    /// Stages reached (1-based) and stages of the rule.
    pub stage: (u32, u32),
    /// A canary identity or secret was used.
    pub canary: bool,
    /// An update of a finding announced earlier (same id), not a new one.
    pub update: bool,
    /// Whether this is an alert (a decided chain) or an early announcement.
    pub is_alert: bool,
}

impl Finding {
    /// The deterministic order of findings in an output file.
    pub fn sort_key(&self) -> (EventTime, u64, Target, &str) {
        let key = self.events.last().map(|(e, _)| e.key).unwrap_or(0);
        (self.time, key, self.target, &self.group)
    }
}

/// A condition that held: the evidence and the aggregate compared.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Decision {
    pub events: Vec<(EventRef, u32)>,
    pub measure: Option<f64>,
}

/// Outcome of feeding one hit to a state machine.
pub enum Step {
    /// Nothing decided yet; the state now lives until this time.
    Pending { expires: EventTime },
    /// The condition held; the machine is empty again.
    Fired(Decision),
    /// A chain announced earlier reached its end: the final update of its finding.
    FiredUpdate(Decision),
    /// A chain completed `stage` stages, at or past the escalation stage: announce it (a
    /// Create, or an Update when `update`); the state lives on until `expires`.
    Advanced {
        events: Vec<(EventRef, u32)>,
        stage: u32,
        update: bool,
        expires: EventTime,
    },
    /// The hit changed nothing that needs keeping.
    Idle,
}

/// What a machine needs from its rule, and where it counts what its budget made it drop.
pub struct Params<'a> {
    pub corr: &'a CompiledCorrelation,
    pub trimmed: Cell<u64>,
    /// Announce ordered chains once they complete this many stages (see `ordered`).
    pub escalate_at: Option<usize>,
}

impl<'a> Params<'a> {
    pub fn new(corr: &'a CompiledCorrelation) -> Params<'a> {
        Params {
            corr,
            trimmed: Cell::new(0),
            escalate_at: None,
        }
    }

    pub fn trim(&self, n: u64) {
        self.trimmed.set(self.trimmed.get() + n);
    }

    pub fn max_events(&self) -> usize {
        self.corr.budget.max_events.max(1)
    }
}

/// A per-group state machine of one correlation type.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub enum Machine {
    Ordered(ordered::Ordered),
    Temporal(temporal::Temporal),
    Sliding(count::Sliding),
    ValueCount(count::ValueCount),
    /// Boxed: the largest machine, and the rarest, would otherwise size every state.
    Window(Box<window::Window>),
}

impl Machine {
    pub fn new(corr: &CompiledCorrelation) -> Machine {
        let stages = corr.stages.len();
        match (corr.decide, corr.kind) {
            (Decide::AtWindowClose, _) => Machine::Window(Box::default()),
            (_, CorrelationType::TemporalOrdered) => {
                Machine::Ordered(ordered::Ordered::new(stages))
            }
            (_, CorrelationType::Temporal) => Machine::Temporal(temporal::Temporal::new(stages)),
            (_, CorrelationType::ValueCount) => Machine::ValueCount(count::ValueCount::default()),
            _ => Machine::Sliding(count::Sliding::default()),
        }
    }

    /// Whether this machine, read back from a snapshot, is the one `corr` makes and has its
    /// shape: a state that does not fit its rule is refused, never stepped.
    pub fn fits(&self, corr: &CompiledCorrelation) -> bool {
        let stages = corr.stages.len();
        match (self, Machine::new(corr)) {
            (Machine::Ordered(m), Machine::Ordered(_)) => m.fits(stages),
            (Machine::Temporal(m), Machine::Temporal(_)) => m.fits(stages),
            (Machine::Sliding(_), Machine::Sliding(_)) => true,
            (Machine::ValueCount(_), Machine::ValueCount(_)) => true,
            (Machine::Window(m), Machine::Window(_)) => m.fits(stages),
            _ => false,
        }
    }

    /// Feeds one hit (its regular stage bits). Hits must come in event-time order.
    pub fn step(&mut self, p: &Params<'_>, stages: u64, value: Option<&str>, e: EventRef) -> Step {
        match self {
            Machine::Ordered(m) => m.step(p, stages, e),
            Machine::Temporal(m) => m.step(p, stages, e),
            Machine::Sliding(m) => m.step(p, value, e),
            Machine::ValueCount(m) => m.step(p, value, e),
            Machine::Window(m) => m.step(p, stages, value, e),
        }
    }

    /// The instant this machine must be woken at, after every hit of that instant.
    pub fn deadline(&self, p: &Params<'_>) -> Option<EventTime> {
        match self {
            Machine::Window(m) => m.deadline(p),
            _ => None,
        }
    }

    /// Wakes the machine at its deadline.
    pub fn on_deadline(&mut self, p: &Params<'_>) -> Option<Decision> {
        match self {
            Machine::Window(m) => m.close(p),
            _ => None,
        }
    }

    /// Drops every partial chain (`until`).
    pub fn cancel(&mut self) {
        match self {
            Machine::Ordered(m) => m.cancel(),
            Machine::Temporal(m) => m.cancel(),
            Machine::Sliding(m) => *m = count::Sliding::default(),
            Machine::ValueCount(m) => *m = count::ValueCount::default(),
            Machine::Window(m) => **m = window::Window::default(),
        }
    }

    /// Whether the machine holds nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Machine::Ordered(m) => m.is_empty(),
            Machine::Temporal(m) => m.is_empty(),
            Machine::Sliding(m) => m.is_empty(),
            Machine::ValueCount(m) => m.is_empty(),
            Machine::Window(m) => m.is_empty(),
        }
    }

    /// Visits every input event the state holds (its evidence so far).
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        match self {
            Machine::Ordered(m) => m.for_each_event(f),
            Machine::Temporal(m) => m.for_each_event(f),
            Machine::Sliding(m) => m.for_each_event(f),
            Machine::ValueCount(m) => m.for_each_event(f),
            Machine::Window(m) => m.for_each_event(f),
        }
    }

    /// The heap bytes the machine holds (its events included), for the shard's byte budget.
    pub fn approx_bytes(&self) -> usize {
        match self {
            Machine::Ordered(m) => m.approx_bytes(),
            Machine::Temporal(m) => m.approx_bytes(),
            Machine::Sliding(m) => m.approx_bytes(),
            Machine::ValueCount(m) => m.approx_bytes(),
            Machine::Window(m) => size_of::<window::Window>() + m.approx_bytes(),
        }
    }
}

/// Bounds of one shard.
#[derive(Clone, Copy, Debug)]
pub struct ShardLimits {
    /// Hits waiting for the watermark; beyond it the oldest are processed early (counted).
    pub max_pending: usize,
    /// Live group states; beyond it the lowest-ranked state is evicted (counted).
    pub max_states: usize,
    /// Approximate bytes of live state; beyond it the lowest-ranked states are evicted.
    pub max_state_bytes: usize,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            max_pending: 1 << 20,
            max_states: 1 << 21,
            max_state_bytes: 512 << 20,
        }
    }
}

/// Counters of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub hits: u64,
    pub duplicates: u64,
    pub findings: u64,
    /// Findings of referenced correlations fed to the referencing ones.
    pub derived: u64,
    pub expired: u64,
    /// States evicted because the shard's state cap was reached.
    pub evicted: u64,
    /// States evicted because their rule's `max_groups` budget was reached.
    pub budget_evicted: u64,
    /// Events dropped from a state because its rule's `max_events` budget was reached.
    pub trimmed: u64,
    /// Timers decided (windows closed, absence deadlines).
    pub timers: u64,
    pub processed_early: u64,
    pub peak_states: u64,
    pub peak_pending: u64,
    /// States and buffered hits of rules a reload changed or removed.
    pub reload_dropped_states: u64,
    pub reload_dropped_hits: u64,
    /// Probes that found another group's state under a state id (a hash collision; never
    /// merged, see `StateIds`).
    pub id_collisions: u64,
    /// Hits dropped because every id their group may take held another group's state.
    pub id_exhausted: u64,
}

/// Parses an aggregated value as a number (`value_sum` and friends); `None` if it is not one.
pub fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}
