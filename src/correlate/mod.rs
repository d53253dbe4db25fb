//! Correlate: the event-time state machines one shard owns.
//!
//! A [`ShardEngine`] receives [`Hit`]s (an event matched a detection that feeds a correlation,
//! or that alerts on its own) and watermarks. Hits wait in a reorder buffer until the watermark
//! passes their event time, then run through the state machines in event-time order, ties broken
//! by the event's content key. That order depends only on the events, not on how they arrived,
//! which threads decoded them or how many shards there are: out-of-order input within the
//! allowed lateness and any shard count give the same findings as sorted input.
//!
//! State lives in a map from (correlation, group key) to a per-type machine
//! ([`ordered::Ordered`], [`temporal::Temporal`], [`count::EventCount`], [`count::ValueCount`]);
//! it expires when the watermark passes its window, through coarse expiry buckets, and is
//! bounded by a per-shard cap with counted evictions.

pub mod count;
pub mod ordered;
pub mod temporal;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use crate::input::Position;
use crate::matcher::RuleSet;
use crate::sigma::CorrelationType;
use crate::time::{EventTime, Span};

/// One contributing event, as much as an alert needs to point back at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    pub time: EventTime,
    /// Hash of the event id: orders ties and spots duplicates.
    pub key: u64,
    pub pos: Position,
    pub id: Box<str>,
}

/// What consumes a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A correlation rule (index into [`RuleSet::correlations`]).
    Correlation(u32),
    /// A detection that alerts on its own (index into [`RuleSet::detections`]).
    Detection(u32),
}

/// An event matched a detection; `stages` says which stages of the target it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub target: Target,
    pub stages: u64,
    /// The group-by values joined by [`GROUP_SEPARATOR`] (the identity, usually).
    pub group: Box<str>,
    /// The aggregated field's value (`value_count`).
    pub value: Option<Box<str>>,
    pub event: EventRef,
}

/// Separates group-by values inside a group key.
pub const GROUP_SEPARATOR: char = '\u{1f}';

/// A decided detection: one alert to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub target: Target,
    pub group: Box<str>,
    /// Every contributing event with the stage it matched, in event-time order.
    pub events: Vec<(EventRef, u32)>,
    /// The event time at which the finding was decided (its last event).
    pub time: EventTime,
}

impl Finding {
    /// The deterministic order of findings in an output file.
    pub fn sort_key(&self) -> (EventTime, u64, Target, &str) {
        let key = self.events.last().map(|(e, _)| e.key).unwrap_or(0);
        (self.time, key, self.target, &self.group)
    }
}

/// Outcome of feeding one hit to a state machine.
pub enum Step {
    /// Nothing decided yet; the state now lives until this time.
    Pending { expires: EventTime },
    /// A finding was decided; the state is spent.
    Fired(Vec<(EventRef, u32)>),
    /// The hit changed nothing that needs keeping.
    Idle,
}

/// A per-group state machine of one correlation type.
#[derive(Clone, Debug)]
pub enum Machine {
    Ordered(ordered::Ordered),
    Temporal(temporal::Temporal),
    EventCount(count::EventCount),
    ValueCount(count::ValueCount),
}

impl Machine {
    fn new(kind: CorrelationType, stages: usize) -> Machine {
        match kind {
            CorrelationType::TemporalOrdered => Machine::Ordered(ordered::Ordered::new(stages)),
            CorrelationType::Temporal => Machine::Temporal(temporal::Temporal::new(stages)),
            CorrelationType::ValueCount => Machine::ValueCount(count::ValueCount::default()),
            _ => Machine::EventCount(count::EventCount::default()),
        }
    }

    /// Visits every event the state holds (its evidence so far).
    pub fn for_each_event(&self, f: &mut dyn FnMut(&EventRef)) {
        match self {
            Machine::Ordered(m) => m.for_each_event(f),
            Machine::Temporal(m) => m.for_each_event(f),
            Machine::EventCount(m) => m.for_each_event(f),
            Machine::ValueCount(m) => m.for_each_event(f),
        }
    }

    /// A rough byte size, for the memory summary.
    pub fn approx_bytes(&self) -> usize {
        match self {
            Machine::Ordered(m) => m.approx_bytes(),
            Machine::Temporal(m) => m.approx_bytes(),
            Machine::EventCount(m) => m.approx_bytes(),
            Machine::ValueCount(m) => m.approx_bytes(),
        }
    }
}

/// Parameters a machine needs from its rule.
pub struct Params<'a> {
    pub timespan: Span,
    pub threshold: Option<&'a crate::sigma::Threshold>,
    pub stages: usize,
}

/// Bounds of one shard.
#[derive(Clone, Copy, Debug)]
pub struct ShardLimits {
    /// Hits waiting for the watermark; beyond it the oldest are processed early (counted).
    pub max_pending: usize,
    /// Live group states; beyond it the state closest to expiry is evicted (counted).
    pub max_states: usize,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            max_pending: 1 << 20,
            max_states: 1 << 21,
        }
    }
}

/// Counters of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub hits: u64,
    pub duplicates: u64,
    pub findings: u64,
    pub expired: u64,
    pub evicted: u64,
    pub processed_early: u64,
    pub peak_states: u64,
    pub peak_pending: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    time: EventTime,
    key: u64,
    target: Target,
    seq: u64,
    hit: HitBox,
}

/// A hit in the reorder buffer; ordering comes from the fields before it in [`Pending`].
#[derive(Debug)]
struct HitBox(Hit);

impl PartialEq for HitBox {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HitBox {}
impl PartialOrd for HitBox {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HitBox {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

struct Entry {
    target: u32,
    group: Box<str>,
    machine: Machine,
    expires: EventTime,
    /// The expiry bucket the state is filed under.
    bucket: i64,
}

/// Width of an expiry bucket: states are swept at most this late (memory only, never results).
const BUCKET: i64 = 1_000_000_000;

/// The state machines of one shard. Pure: no threads, no I/O; the pipeline drives it.
pub struct ShardEngine {
    rules: Arc<RuleSet>,
    limits: ShardLimits,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    states: HashMap<u128, Entry>,
    buckets: BTreeMap<i64, Vec<u128>>,
    watermark: EventTime,
    last: Option<(EventTime, u64, Target, Box<str>)>,
    stats: ShardStats,
}

impl ShardEngine {
    pub fn new(rules: Arc<RuleSet>, limits: ShardLimits) -> ShardEngine {
        ShardEngine {
            rules,
            limits,
            pending: BinaryHeap::new(),
            seq: 0,
            states: HashMap::new(),
            buckets: BTreeMap::new(),
            watermark: EventTime::MIN,
            last: None,
            stats: ShardStats::default(),
        }
    }

    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    pub fn live_states(&self) -> usize {
        self.states.len()
    }

    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Approximate bytes held by state machines, for the summary.
    pub fn state_bytes(&self) -> usize {
        self.states
            .values()
            .map(|e| e.machine.approx_bytes() + e.group.len() + 64)
            .sum()
    }

    /// The oldest input position per source that this shard still needs: hits waiting in the
    /// reorder buffer and events held by live state. A restart that replays each source from
    /// these offsets rebuilds the shard (the Kafka service holds commits back to them). Costs a
    /// walk over all state: call it at commit barriers, not per event.
    pub fn oldest_positions(&self, out: &mut HashMap<u32, u64>) {
        let mut note = |e: &EventRef| {
            let o = out.entry(e.pos.source).or_insert(e.pos.offset);
            *o = (*o).min(e.pos.offset);
        };
        for Reverse(p) in &self.pending {
            note(&p.hit.0.event);
        }
        for entry in self.states.values() {
            entry.machine.for_each_event(&mut note);
        }
    }

    /// Buffers a hit until the watermark passes its event time. A hit older than the current
    /// watermark (the caller should have dead-lettered it as late) is processed at once.
    pub fn push(&mut self, hit: Hit, out: &mut Vec<Finding>) {
        self.stats.hits += 1;
        self.seq += 1;
        let p = Pending {
            time: hit.event.time,
            key: hit.event.key,
            target: hit.target,
            seq: self.seq,
            hit: HitBox(hit),
        };
        self.pending.push(Reverse(p));
        self.stats.peak_pending = self.stats.peak_pending.max(self.pending.len() as u64);
        while self.pending.len() > self.limits.max_pending {
            self.stats.processed_early += 1;
            if let Some(Reverse(p)) = self.pending.pop() {
                self.process(p.hit.0, out);
            }
        }
    }

    /// Moves event time to `watermark`: processes every buffered hit older than it, in order,
    /// and drops state whose window it passed. Watermarks never go back.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<Finding>) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        while self
            .pending
            .peek()
            .is_some_and(|Reverse(p)| p.time < watermark)
        {
            if let Some(Reverse(p)) = self.pending.pop() {
                self.process(p.hit.0, out);
            }
        }
        self.expire();
    }

    fn process(&mut self, hit: Hit, out: &mut Vec<Finding>) {
        let dedupe = (hit.event.time, hit.event.key, hit.target, hit.group.clone());
        if self.last.as_ref() == Some(&dedupe) {
            self.stats.duplicates += 1;
            return;
        }
        self.last = Some(dedupe);
        match hit.target {
            Target::Detection(_) => {
                self.stats.findings += 1;
                out.push(Finding {
                    target: hit.target,
                    group: hit.group,
                    time: hit.event.time,
                    events: vec![(hit.event, 0)],
                });
            }
            Target::Correlation(c) => self.correlate(c, hit, out),
        }
    }

    fn correlate(&mut self, c: u32, hit: Hit, out: &mut Vec<Finding>) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let id = state_id(c, &hit.group);
        if !self.states.contains_key(&id) {
            if self.states.len() >= self.limits.max_states {
                self.evict_one();
            }
            self.states.insert(
                id,
                Entry {
                    target: c,
                    group: hit.group.clone(),
                    machine: Machine::new(corr.kind, corr.stages.len()),
                    expires: EventTime::MIN,
                    bucket: i64::MIN,
                },
            );
            self.stats.peak_states = self.stats.peak_states.max(self.states.len() as u64);
        }
        let params = Params {
            timespan: corr.timespan,
            threshold: corr.threshold.as_ref(),
            stages: corr.stages.len(),
        };
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        let time = hit.event.time;
        let step = match &mut entry.machine {
            Machine::Ordered(m) => m.step(&params, hit.stages, hit.event),
            Machine::Temporal(m) => m.step(&params, hit.stages, hit.event),
            Machine::EventCount(m) => m.step(&params, hit.stages, hit.event),
            Machine::ValueCount(m) => m.step(&params, hit.stages, hit.value, hit.event),
        };
        match step {
            Step::Fired(events) => {
                self.stats.findings += 1;
                let group = entry.group.clone();
                self.states.remove(&id);
                out.push(Finding {
                    target: Target::Correlation(c),
                    group,
                    events,
                    time,
                });
            }
            Step::Pending { expires } => {
                entry.expires = entry.expires.max(expires);
                let bucket = bucket_of(entry.expires);
                if entry.bucket == i64::MIN {
                    entry.bucket = bucket;
                    self.buckets.entry(bucket).or_default().push(id);
                }
            }
            Step::Idle => {
                if entry.bucket == i64::MIN {
                    self.states.remove(&id);
                }
            }
        }
    }

    fn expire(&mut self) {
        let now = bucket_of(self.watermark);
        while let Some((&b, _)) = self.buckets.first_key_value() {
            if b >= now {
                break;
            }
            let ids = self.buckets.remove(&b).unwrap_or_default();
            for id in ids {
                let Some(entry) = self.states.get_mut(&id) else {
                    continue;
                };
                if entry.bucket != b {
                    continue;
                }
                if entry.expires < self.watermark {
                    self.states.remove(&id);
                    self.stats.expired += 1;
                } else {
                    entry.bucket = bucket_of(entry.expires);
                    self.buckets.entry(entry.bucket).or_default().push(id);
                }
            }
        }
    }

    /// Evicts the state filed under the earliest expiry bucket.
    fn evict_one(&mut self) {
        while let Some(mut first) = self.buckets.first_entry() {
            let b = *first.key();
            let Some(id) = first.get_mut().pop() else {
                first.remove();
                continue;
            };
            if self.states.get(&id).is_some_and(|e| e.bucket == b) {
                self.states.remove(&id);
                self.stats.evicted += 1;
                return;
            }
        }
    }

    /// The number of states per correlation target, for the summary.
    pub fn states_by_target(&self) -> HashMap<u32, usize> {
        let mut m = HashMap::new();
        for e in self.states.values() {
            *m.entry(e.target).or_insert(0) += 1;
        }
        m
    }
}

fn bucket_of(t: EventTime) -> i64 {
    t.0.div_euclid(BUCKET)
}

/// The state's key: 128 bits, so that crafted group keys cannot collide into another
/// identity's chain.
fn state_id(target: u32, group: &str) -> u128 {
    let mut h = Xxh3::new();
    h.update(&target.to_le_bytes());
    h.update(group.as_bytes());
    h.digest128()
}

#[cfg(test)]
mod tests;
