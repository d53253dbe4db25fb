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
pub mod eviction;
pub mod footprint;
pub mod ordered;
pub mod temporal;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use crate::decode::TouchKind;
use crate::input::Position;
use crate::matcher::RuleSet;
use crate::score::{Assessor, Score, Touched};
use crate::sigma::CorrelationType;
use crate::time::{EventTime, Span};
use eviction::{Rank, Ranks};
use footprint::Footprint;

/// Bytes a state costs besides its machine, footprint and key: the map entry, expiry and rank
/// bookkeeping.
const ENTRY_OVERHEAD: usize = 160;

/// One contributing event, as much as an alert needs to point back at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    pub time: EventTime,
    /// Hash of the event id: orders ties and spots duplicates.
    pub key: u64,
    pub pos: Position,
    pub id: Box<str>,
    /// Who acted, as the event says and as lineage resolved it (for the evidence).
    pub actor: Option<Box<str>>,
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
    /// What the event touched (secrets, resources, hosts, ...), for the blast radius.
    pub touched: Vec<(TouchKind, Box<str>)>,
}

/// Separates group-by values inside a group key.
pub const GROUP_SEPARATOR: char = '\u{1f}';

/// A decided detection: one alert to emit.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub target: Target,
    pub group: Box<str>,
    /// Every contributing event with the stage it matched, in event-time order.
    pub events: Vec<(EventRef, u32)>,
    /// The event time at which the finding was decided (its last event).
    pub time: EventTime,
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

/// Outcome of feeding one hit to a state machine.
pub enum Step {
    /// Nothing decided yet; the state now lives until this time.
    Pending { expires: EventTime },
    /// A finding was decided; the state is spent.
    Fired(Vec<(EventRef, u32)>),
    /// A chain announced earlier reached its end: the final update of its finding.
    FiredUpdate(Vec<(EventRef, u32)>),
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
    /// Announce ordered chains once they complete this many stages (see `ordered`).
    pub escalate_at: Option<usize>,
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
    footprint: Footprint,
    /// (stage, score, events) of the last announcement of this state's chain.
    announced: Option<(u32, u32, u32)>,
    /// Eviction rank: (stages completed, blast tier).
    rank: Rank,
    /// Approximate bytes, counted in the shard's total.
    bytes: usize,
}

/// Width of an expiry bucket: states are swept at most this late (memory only, never results).
const BUCKET: i64 = 1_000_000_000;

/// The state machines of one shard. Pure: no threads, no I/O; the pipeline drives it.
pub struct ShardEngine {
    rules: Arc<RuleSet>,
    assessor: Arc<Assessor>,
    limits: ShardLimits,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    states: HashMap<u128, Entry>,
    ranks: Ranks,
    state_bytes: usize,
    buckets: BTreeMap<i64, Vec<u128>>,
    watermark: EventTime,
    last: Option<(EventTime, u64, Target, Box<str>)>,
    stats: ShardStats,
}

impl ShardEngine {
    pub fn new(rules: Arc<RuleSet>, limits: ShardLimits) -> ShardEngine {
        ShardEngine {
            rules,
            assessor: Arc::new(Assessor::default()),
            limits,
            pending: BinaryHeap::new(),
            seq: 0,
            states: HashMap::new(),
            ranks: Ranks::default(),
            state_bytes: 0,
            buckets: BTreeMap::new(),
            watermark: EventTime::MIN,
            last: None,
            stats: ShardStats::default(),
        }
    }

    /// Scores findings with `assessor` (inventory and weights) instead of the defaults.
    pub fn with_assessor(mut self, assessor: Arc<Assessor>) -> ShardEngine {
        self.assessor = assessor;
        self
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

    /// Approximate bytes held by live state (the figure the budget applies to).
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
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

    /// Processes every buffered hit now, in order, without moving the watermark (the input
    /// ended; the caller then advances to the end of time).
    pub fn process_pending(&mut self, out: &mut Vec<Finding>) {
        while let Some(Reverse(p)) = self.pending.pop() {
            self.process(p.hit.0, out);
        }
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
                let mut footprint = Footprint::default();
                hit.touched.iter().for_each(|(k, v)| footprint.add(*k, v));
                let canary = self.assessor.is_canary(&hit.group, &hit.touched);
                let time = hit.event.time;
                let events = vec![(hit.event, 0)];
                out.push(self.finding(
                    hit.target,
                    hit.group,
                    events,
                    time,
                    &footprint,
                    (1, 1),
                    canary,
                ));
            }
            Target::Correlation(c) => self.correlate(c, hit, out),
        }
    }

    /// Builds a finding and scores it.
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &mut self,
        target: Target,
        group: Box<str>,
        events: Vec<(EventRef, u32)>,
        time: EventTime,
        footprint: &Footprint,
        stage: (u32, u32),
        canary: bool,
    ) -> Finding {
        self.stats.findings += 1;
        let gaps: Vec<Span> = events
            .windows(2)
            .map(|w| w[1].0.time.since(w[0].0.time))
            .collect();
        let rule = match target {
            Target::Correlation(c) => self.rules.correlations[c as usize].rule,
            Target::Detection(d) => self.rules.detections[d as usize].rule,
        };
        let touched = footprint.counts();
        let score = self.assessor.score(
            &self.rules.meta[rule as usize],
            &group,
            touched,
            stage,
            gaps,
            canary,
        );
        Finding {
            target,
            group,
            events,
            time,
            score,
            touched,
            resources: footprint.examples().to_vec(),
            stage,
            canary,
            update: false,
            is_alert: true,
        }
    }

    fn correlate(&mut self, c: u32, hit: Hit, out: &mut Vec<Finding>) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let id = state_id(c, &hit.group);
        if !self.states.contains_key(&id) {
            while !self.states.is_empty()
                && (self.states.len() >= self.limits.max_states
                    || self.state_bytes >= self.limits.max_state_bytes)
            {
                self.evict_one();
            }
            let rank = Rank {
                stage: 0,
                blast: self.assessor.blast_tier(&hit.group),
            };
            self.ranks.file(id, rank);
            self.states.insert(
                id,
                Entry {
                    target: c,
                    group: hit.group.clone(),
                    machine: Machine::new(corr.kind, corr.stages.len()),
                    expires: EventTime::MIN,
                    bucket: i64::MIN,
                    footprint: Footprint::default(),
                    announced: None,
                    rank,
                    bytes: 0,
                },
            );
            self.stats.peak_states = self.stats.peak_states.max(self.states.len() as u64);
        }
        let params = Params {
            timespan: corr.timespan,
            threshold: corr.threshold.as_ref(),
            stages: corr.stages.len(),
            escalate_at: self.assessor.escalate_at.map(|n| n as usize),
        };
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        let time = hit.event.time;
        hit.touched
            .iter()
            .for_each(|(k, v)| entry.footprint.add(*k, v));
        let stages = corr.stages.len() as u32;
        let canary = self.assessor.is_canary(&hit.group, &hit.touched);
        let step = match &mut entry.machine {
            // A canary is never used by accident: the chain jumps to its end.
            Machine::Ordered(m) if canary => {
                let mut events = m.take_furthest();
                events.push((hit.event, stages - 1));
                Step::Fired(events)
            }
            Machine::Ordered(m) => m.step(&params, hit.stages, hit.event),
            Machine::Temporal(m) => m.step(&params, hit.stages, hit.event),
            Machine::EventCount(m) => m.step(&params, hit.stages, hit.event),
            Machine::ValueCount(m) => m.step(&params, hit.stages, hit.value, hit.event),
        };
        match step {
            Step::Fired(events) => self.fire(c, id, events, time, canary, false, out),
            Step::FiredUpdate(events) => self.fire(c, id, events, time, canary, true, out),
            Step::Advanced {
                events,
                stage,
                update,
                expires,
            } => {
                self.schedule(id, expires);
                self.announce(c, id, events, time, (stage, stages), update, out);
            }
            Step::Pending { expires } => {
                self.schedule(id, expires);
                // What the group touched grew: an announced chain's score may have changed.
                let announced = self.states.get(&id).and_then(|e| match &e.machine {
                    Machine::Ordered(m) => m.announced().map(|(ev, st)| (ev.to_vec(), st)),
                    _ => None,
                });
                if let Some((events, stage)) = announced {
                    self.announce(c, id, events, time, (stage, stages), true, out);
                }
            }
            Step::Idle => {
                if self.states.get(&id).is_some_and(|e| e.bucket == i64::MIN) {
                    self.remove_state(id);
                }
            }
        }
    }

    /// Files the state under its expiry bucket (once; it is re-filed when its bucket comes).
    fn schedule(&mut self, id: u128, expires: EventTime) {
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        entry.expires = entry.expires.max(expires);
        if entry.bucket == i64::MIN {
            entry.bucket = bucket_of(entry.expires);
            self.buckets.entry(entry.bucket).or_default().push(id);
        }
        self.refresh(id);
    }

    /// Emits the final finding of a state and drops the state.
    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        c: u32,
        id: u128,
        events: Vec<(EventRef, u32)>,
        time: EventTime,
        canary: bool,
        update: bool,
        out: &mut Vec<Finding>,
    ) {
        let Some(entry) = self.remove_state(id) else {
            return;
        };
        let corr = &self.rules.correlations[c as usize];
        let stages = corr.stages.len() as u32;
        let (reached, total) = match corr.kind {
            CorrelationType::Temporal => {
                let mut seen: Vec<u32> = events.iter().map(|(_, s)| *s).collect();
                seen.sort_unstable();
                seen.dedup();
                (seen.len() as u32, stages)
            }
            CorrelationType::TemporalOrdered => (stages, stages),
            _ => (1, 1),
        };
        let mut f = self.finding(
            Target::Correlation(c),
            entry.group,
            events,
            time,
            &entry.footprint,
            (reached, total),
            canary,
        );
        f.update = update;
        out.push(f);
    }

    /// Emits an early (not yet alerting) finding for an announced chain, unless nothing
    /// changed since the last announcement.
    #[allow(clippy::too_many_arguments)]
    fn announce(
        &mut self,
        c: u32,
        id: u128,
        events: Vec<(EventRef, u32)>,
        time: EventTime,
        stage: (u32, u32),
        update: bool,
        out: &mut Vec<Finding>,
    ) {
        let Some(entry) = self.states.get(&id) else {
            return;
        };
        let (group, footprint) = (entry.group.clone(), entry.footprint.clone());
        let mut f = self.finding(
            Target::Correlation(c),
            group,
            events,
            time,
            &footprint,
            stage,
            false,
        );
        let signature = (f.stage.0, f.score.score, f.events.len() as u32);
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        if update && entry.announced == Some(signature) {
            self.stats.findings -= 1;
            return;
        }
        entry.announced = Some(signature);
        f.update = update;
        f.is_alert = false;
        out.push(f);
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
                    self.remove_state(id);
                    self.stats.expired += 1;
                } else {
                    entry.bucket = bucket_of(entry.expires);
                    self.buckets.entry(entry.bucket).or_default().push(id);
                }
            }
        }
    }

    /// Evicts the lowest-ranked state (see [`eviction`]).
    fn evict_one(&mut self) {
        let states = &self.states;
        if let Some(id) = self.ranks.pop_lowest(|id| states.get(&id).map(|e| e.rank)) {
            self.remove_state(id);
            self.stats.evicted += 1;
        }
    }

    /// Removes a state and its bytes from the shard's total.
    fn remove_state(&mut self, id: u128) -> Option<Entry> {
        let e = self.states.remove(&id)?;
        self.state_bytes = self.state_bytes.saturating_sub(e.bytes);
        Some(e)
    }

    /// Recomputes a state's bytes and rank after it changed.
    fn refresh(&mut self, id: u128) {
        let Some(e) = self.states.get_mut(&id) else {
            return;
        };
        let bytes =
            e.machine.approx_bytes() + e.footprint.approx_bytes() + e.group.len() + ENTRY_OVERHEAD;
        self.state_bytes = self.state_bytes + bytes - e.bytes;
        e.bytes = bytes;
        let stage = match &e.machine {
            Machine::Ordered(m) => m.stage_reached().map(|k| k as u8 + 1).unwrap_or(0),
            _ => 1,
        };
        if stage != e.rank.stage {
            e.rank.stage = stage;
            self.ranks.file(id, e.rank);
        }
        let states = &self.states;
        self.ranks
            .compact(states.len(), |id| states.get(&id).map(|e| e.rank));
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
