//! The state machines of one shard, driven in event-time order: the reorder buffer, the
//! timers, the state store with its budgets, and the feeding of correlation findings into the
//! correlations that reference them.

mod findings;
mod snapshot;
mod store;

#[cfg(test)]
pub(crate) use snapshot::tests as snapshot_tests;
pub use snapshot::{Changes, ImportError, STATE_FORMAT, Snapshot, StateImage};
pub(crate) use snapshot::{decode, encode};

use store::{Slot, StateIds, Usage};

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use super::eviction::Rank;
use super::footprint::Footprint;
use super::{
    Decision, Finding, Hit, Machine, Params, ShardLimits, ShardStats, Step, Target, events_bytes,
};
use crate::matcher::RuleSet;
use crate::score::Assessor;
use crate::sigma::TieOrder;
use crate::time::{EventTime, Span};

/// Bytes a state costs besides what it owns on the heap: its slot in the state map (a hash
/// table's load lies between 7/16 and 7/8, so a slot and a half on average, with a control
/// byte each), its timer, and its id in an expiry bucket and in the rank queue.
const ENTRY_OVERHEAD: usize = (size_of::<(u128, Entry)>() + 1) * 3 / 2
    + size_of::<Reverse<(EventTime, u128)>>()
    + 2 * size_of::<u128>();

/// A hit waiting for the watermark. Hits are processed in the order of these fields: event
/// time, then, among hits of one instant, per rule and in the order its stages ask for
/// ([`tie_rank`]), then by event key; `seq` only separates copies of one hit.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    time: EventTime,
    target: Target,
    tie: u8,
    key: u64,
    seq: u64,
    hit: HitBox,
}

/// Where a hit goes among the hits of its rule at the same instant. Equal times are
/// simultaneous by default (`temporal_ordered` steps of one instant may follow each other in
/// any order), which processing them stage by stage, first stage first, achieves: every step
/// of the instant can then extend the chains the earlier stages of the same instant started.
/// [`TieOrder::Strict`] reverses it, so a step never sees a chain from its own instant. The
/// rank depends only on the hit and its rule, never on arrival.
fn tie_rank(rules: &RuleSet, hit: &Hit) -> u8 {
    let Target::Correlation(c) = hit.target else {
        return 0;
    };
    let Some(corr) = rules.correlations.get(c as usize) else {
        return 0;
    };
    // 64 for a hit of no regular stage (`until`, absence): after the steps of its instant.
    let first = (hit.stages & corr.stage_mask()).trailing_zeros() as u8;
    match corr.tie_order {
        TieOrder::Strict if first < 64 => 63 - first,
        _ => first,
    }
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
    /// Completed chains waiting for their absence deadline, earliest first.
    awaiting: Vec<(EventTime, Decision)>,
    /// The earliest timer scheduled for this state.
    timer: Option<EventTime>,
    /// What the group's hits touched, for the blast radius.
    footprint: Footprint,
    /// (stage, score, events) of the last announcement of this state's chain.
    announced: Option<(u32, u32, u32)>,
    /// Eviction rank: (stages completed, blast tier).
    rank: Rank,
    /// Approximate bytes, counted in the shard's total.
    bytes: usize,
}

impl Entry {
    /// What the state costs: its share of the shard's tables and everything it owns.
    fn approx_bytes(&self) -> usize {
        ENTRY_OVERHEAD
            + self.group.len()
            + self.machine.approx_bytes()
            + self.footprint.approx_bytes()
            + self.awaiting.capacity() * size_of::<(EventTime, Decision)>()
            + self
                .awaiting
                .iter()
                .map(|(_, d)| events_bytes(d.events.capacity(), &d.events))
                .sum::<usize>()
    }
}

/// What identifies a hit for duplicate detection: time, event key, target, group, event id.
pub type Dedupe = (EventTime, u64, Target, Box<str>, Box<str>);

/// Width of an expiry bucket: states are swept at most this late (memory only, never results).
const BUCKET: i64 = 1_000_000_000;

/// The state machines of one shard. Pure: no threads, no I/O; the pipeline drives it.
pub struct ShardEngine {
    rules: Arc<RuleSet>,
    assessor: Arc<Assessor>,
    limits: ShardLimits,
    pending: BinaryHeap<Reverse<Pending>>,
    /// (instant, state): decided once every hit up to the instant has been processed.
    timers: BinaryHeap<Reverse<(EventTime, u128)>>,
    seq: u64,
    states: HashMap<u128, Entry>,
    /// Per correlation: expiry bucket to the states filed there.
    buckets: Vec<BTreeMap<i64, Vec<u128>>>,
    /// Per correlation: its live states, their bytes and their eviction ranks. Each rule's
    /// states are ranked apart, and the shard evicts from the rule holding the most bytes: a
    /// flood that matches one rule evicts that rule's own states, never another rule's chains.
    per_target: Vec<Usage>,
    state_bytes: usize,
    /// Keys the state ids (see [`StateIds`]).
    ids: StateIds,
    /// States living away from their home id (after an id collision).
    displaced: usize,
    watermark: EventTime,
    /// The last hit processed, to drop its duplicate: compared by event id, not only by the
    /// event key (a hash an input could aim at another event's).
    last: Option<Dedupe>,
    stats: ShardStats,
    /// What changed since the last snapshot, when a changelog is kept.
    tracker: Option<snapshot::Tracker>,
}

impl ShardEngine {
    pub fn new(rules: Arc<RuleSet>, limits: ShardLimits) -> ShardEngine {
        let n = rules.correlations.len();
        ShardEngine {
            rules,
            assessor: Arc::new(Assessor::default()),
            limits,
            pending: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            states: HashMap::new(),
            buckets: vec![BTreeMap::new(); n],
            per_target: (0..n).map(|_| Usage::default()).collect(),
            state_bytes: 0,
            ids: StateIds::new(),
            displaced: 0,
            watermark: EventTime::MIN,
            last: None,
            stats: ShardStats::default(),
            tracker: None,
        }
    }

    /// Scores findings with `assessor` (inventory, weights, escalation) instead of the defaults.
    pub fn with_assessor(mut self, assessor: Arc<Assessor>) -> ShardEngine {
        self.assessor = assessor;
        self
    }

    /// Scores findings decided from now on with `assessor` (a live inventory update).
    pub fn set_assessor(&mut self, assessor: Arc<Assessor>) {
        self.assessor = assessor;
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

    /// The oldest input position per source that this shard still needs: hits waiting in the
    /// reorder buffer, events held by live state and by completed chains waiting for their
    /// absence deadline. A restart that replays each source from these offsets rebuilds the
    /// shard's chains (the Kafka service holds commits back to them). Costs a walk over all
    /// state: call it at commit barriers, not per event.
    pub fn oldest_positions(&self, out: &mut HashMap<u32, u64>) {
        let mut note = |e: &super::EventRef| {
            let o = out.entry(e.pos.source).or_insert(e.pos.offset);
            *o = (*o).min(e.pos.offset);
        };
        for Reverse(p) in &self.pending {
            p.hit.0.event.visit(&mut note);
        }
        for entry in self.states.values() {
            entry.machine.for_each_event(&mut note);
            for (_, d) in &entry.awaiting {
                d.events.iter().for_each(|(e, _)| e.visit(&mut note));
            }
        }
    }

    /// Buffers a hit until the watermark passes its event time. A hit older than the current
    /// watermark (the caller should have dead-lettered it as late) is processed at the next
    /// [`advance`](Self::advance).
    pub fn push(&mut self, hit: Hit, out: &mut Vec<Finding>) {
        self.stats.hits += 1;
        self.enqueue(hit);
        while self.pending.len() > self.limits.max_pending {
            self.stats.processed_early += 1;
            if !self.step_one(EventTime::MAX, out) {
                break;
            }
        }
    }

    fn enqueue(&mut self, hit: Hit) {
        self.seq += 1;
        let p = Pending {
            time: hit.event.time,
            target: hit.target,
            tie: tie_rank(&self.rules, &hit),
            key: hit.event.key,
            seq: self.seq,
            hit: HitBox(hit),
        };
        self.pending.push(Reverse(p));
        self.stats.peak_pending = self.stats.peak_pending.max(self.pending.len() as u64);
    }

    /// Moves event time to `watermark`: processes every buffered hit and timer before it, in
    /// order, and drops state whose window it passed. Watermarks never go back.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<Finding>) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        while self.step_one(watermark, out) {}
        self.expire();
    }

    /// Processes every buffered hit and timer now, in order, without moving the watermark (the
    /// input ended; the caller then advances to the end of time).
    pub fn process_pending(&mut self, out: &mut Vec<Finding>) {
        // Timers due before the last buffered hit run in their place among the hits; later
        // ones wait for the end of time.
        let Some(last) = self.pending.iter().map(|Reverse(p)| p.time).max() else {
            return;
        };
        while self.step_one(last.plus(Span(1)), out) {}
    }

    /// Processes the earliest hit or timer before `limit`; false when there is none. A timer
    /// at `t` goes after the hits at `t`: windows include their last instant.
    fn step_one(&mut self, limit: EventTime, out: &mut Vec<Finding>) -> bool {
        let hit = self
            .pending
            .peek()
            .map(|Reverse(p)| p.time)
            .filter(|t| *t < limit);
        let timer = self
            .timers
            .peek()
            .map(|Reverse((t, _))| *t)
            .filter(|t| *t < limit);
        match (hit, timer) {
            (None, None) => false,
            (Some(h), Some(t)) if t < h => self.pop_timer(out),
            (Some(_), _) => {
                if let Some(Reverse(p)) = self.pending.pop() {
                    self.process(p.hit.0, out);
                }
                true
            }
            (None, Some(_)) => self.pop_timer(out),
        }
    }

    fn pop_timer(&mut self, out: &mut Vec<Finding>) -> bool {
        if let Some(Reverse((at, id))) = self.timers.pop() {
            self.on_timer(at, id, out);
        }
        true
    }

    fn process(&mut self, hit: Hit, out: &mut Vec<Finding>) {
        let dedupe = (
            hit.event.time,
            hit.event.key,
            hit.target,
            hit.group.clone(),
            hit.event.id.clone(),
        );
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
                let f = self.finding(
                    hit.target,
                    hit.group,
                    events,
                    time,
                    None,
                    &footprint,
                    (1, 1),
                    canary,
                );
                out.push(f);
            }
            Target::Correlation(c) => self.correlate(c, hit, out),
        }
    }

    fn correlate(&mut self, c: u32, hit: Hit, out: &mut Vec<Finding>) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let regular = hit.stages & corr.stage_mask();
        let until = hit.stages & corr.until_mask;
        let absent = corr.absence.map_or(0, |(bit, _)| hit.stages & bit);
        let id = match self.locate(c, &hit.group) {
            Slot::Found(id) => id,
            Slot::Vacant(..) | Slot::Full if regular == 0 => return, // nothing to cancel
            Slot::Vacant(id, displaced) => {
                self.open(c, (id, displaced), &hit.group);
                id
            }
            Slot::Full => {
                self.stats.id_exhausted += 1;
                return;
            }
        };
        let mut params = Params::new(corr);
        params.escalate_at = corr
            .escalate_at
            .or(self.assessor.escalate_at)
            .map(|n| n as usize);
        let time = hit.event.time;
        let stages = corr.stages.len() as u32;
        let canary = regular != 0 && self.assessor.is_canary(&hit.group, &hit.touched);
        let mut fired = None;
        let mut announce = None;
        let mut rescore = false;
        if let Some(entry) = self.states.get_mut(&id) {
            hit.touched
                .iter()
                .for_each(|(k, v)| entry.footprint.add(*k, v));
            if until != 0 {
                entry.machine.cancel();
                entry.awaiting.clear();
            }
            if absent != 0 {
                // Every waiting chain completed before this hit: it is "followed by" it.
                entry.awaiting.clear();
            }
            if regular != 0 {
                let step = match &mut entry.machine {
                    // A canary is never used by accident: the chain jumps to its end.
                    Machine::Ordered(m) if canary => {
                        let mut events = m.take_furthest();
                        events.push((hit.event, stages - 1));
                        Step::Fired(Decision {
                            events,
                            measure: None,
                        })
                    }
                    m => m.step(&params, regular, hit.value.as_deref(), hit.event),
                };
                match step {
                    Step::Fired(d) => fired = Some((d, false)),
                    Step::FiredUpdate(d) => fired = Some((d, true)),
                    Step::Advanced {
                        events,
                        stage,
                        update,
                        expires,
                    } => {
                        entry.expires = entry.expires.max(expires);
                        announce = Some((events, stage, update));
                    }
                    Step::Pending { expires } => {
                        entry.expires = entry.expires.max(expires);
                        rescore = true;
                    }
                    Step::Idle => {}
                }
            }
        }
        self.stats.trimmed += params.trimmed.get();
        if let Some((d, update)) = fired {
            self.decided(c, id, d, time, canary, update, out);
        }
        if let Some((events, stage, update)) = announce {
            self.announce(c, id, events, time, (stage, stages), update, out);
        } else if rescore {
            // What the group touched grew: an announced chain's score may have changed.
            let announced = self.states.get(&id).and_then(|e| match &e.machine {
                Machine::Ordered(m) => m.announced().map(|(ev, st)| (ev.to_vec(), st)),
                _ => None,
            });
            if let Some((events, stage)) = announced {
                self.announce(c, id, events, time, (stage, stages), true, out);
            }
        }
        self.settle(id);
    }

    fn on_timer(&mut self, at: EventTime, id: u128, out: &mut Vec<Finding>) {
        let rules = Arc::clone(&self.rules);
        let Some(entry) = self.states.get_mut(&id) else {
            return; // the state was evicted or expired
        };
        if entry.timer != Some(at) {
            return; // superseded
        }
        entry.timer = None;
        self.stats.timers += 1;
        let c = entry.target;
        let params = Params::new(&rules.correlations[c as usize]);
        let closed = if entry.machine.deadline(&params).is_some_and(|d| d <= at) {
            entry.machine.on_deadline(&params)
        } else {
            None
        };
        let mut due = Vec::new();
        while entry.awaiting.first().is_some_and(|(d, _)| *d <= at) {
            due.push(entry.awaiting.remove(0));
        }
        let group = entry.group.clone();
        let footprint = entry.footprint.clone();
        self.stats.trimmed += params.trimmed.get();
        for (deadline, d) in due {
            self.emit(c, &group, d, deadline, &footprint, false, false, out);
        }
        if let Some(d) = closed {
            self.decided(c, id, d, at, false, false, out);
        }
        self.settle(id);
    }
}

#[cfg(test)]
mod tests;
