//! The state machines of one shard, driven in event-time order: the reorder buffer, the
//! timers, the state store with its budgets, and the feeding of correlation findings into the
//! correlations that reference them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::{
    Decision, EventRef, Finding, GROUP_SEPARATOR, Hit, Machine, Params, ShardLimits, ShardStats,
    Step, Target,
};
use crate::input::Position;
use crate::matcher::RuleSet;
use crate::time::EventTime;

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
    /// Completed chains waiting for their absence deadline, earliest first.
    awaiting: Vec<(EventTime, Decision)>,
    /// The earliest timer scheduled for this state.
    timer: Option<EventTime>,
}

/// Width of an expiry bucket: states are swept at most this late (memory only, never results).
const BUCKET: i64 = 1_000_000_000;

/// The state machines of one shard. Pure: no threads, no I/O; the pipeline drives it.
pub struct ShardEngine {
    rules: Arc<RuleSet>,
    limits: ShardLimits,
    pending: BinaryHeap<Reverse<Pending>>,
    /// (instant, state): decided once every hit up to the instant has been processed.
    timers: BinaryHeap<Reverse<(EventTime, u128)>>,
    seq: u64,
    states: HashMap<u128, Entry>,
    /// Per correlation: expiry bucket to the states filed there.
    buckets: Vec<BTreeMap<i64, Vec<u128>>>,
    /// Per correlation: live states.
    per_target: Vec<usize>,
    watermark: EventTime,
    last: Option<(EventTime, u64, Target, Box<str>)>,
    stats: ShardStats,
}

impl ShardEngine {
    pub fn new(rules: Arc<RuleSet>, limits: ShardLimits) -> ShardEngine {
        let n = rules.correlations.len();
        ShardEngine {
            rules,
            limits,
            pending: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            states: HashMap::new(),
            buckets: vec![BTreeMap::new(); n],
            per_target: vec![0; n],
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
            .map(|e| e.machine.approx_bytes() + e.group.len() + 64 + e.awaiting.len() * 96)
            .sum()
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
            key: hit.event.key,
            target: hit.target,
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
                    measure: None,
                });
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
        let id = state_id(c, &hit.group);
        if !self.states.contains_key(&id) {
            if regular == 0 {
                return; // cancelling what does not exist
            }
            self.open(c, id, &hit.group);
        }
        let params = Params::new(corr);
        let time = hit.event.time;
        let mut fired = None;
        if let Some(entry) = self.states.get_mut(&id) {
            if until != 0 {
                entry.machine.cancel();
                entry.awaiting.clear();
            }
            if absent != 0 {
                // Every waiting chain completed before this hit: it is "followed by" it.
                entry.awaiting.clear();
            }
            if regular != 0 {
                match entry
                    .machine
                    .step(&params, regular, hit.value.as_deref(), hit.event)
                {
                    Step::Fired(d) => fired = Some(d),
                    Step::Pending { expires } => entry.expires = entry.expires.max(expires),
                    Step::Idle => {}
                }
            }
        }
        self.stats.trimmed += params.trimmed.get();
        if let Some(d) = fired {
            self.decided(c, id, d, time, out);
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
        self.stats.trimmed += params.trimmed.get();
        for (deadline, d) in due {
            self.emit(c, &group, d, deadline, out);
        }
        if let Some(d) = closed {
            self.decided(c, id, d, at, out);
        }
        self.settle(id);
    }

    /// A condition held at `time`: alert now, or wait for the absence deadline.
    fn decided(&mut self, c: u32, id: u128, d: Decision, time: EventTime, out: &mut Vec<Finding>) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        match corr.absence {
            Some((_, within)) => {
                let deadline = time.plus(within);
                entry.awaiting.push((deadline, d));
                entry.expires = entry.expires.max(deadline);
                let cap = corr.budget.max_events.max(1);
                if entry.awaiting.len() > cap {
                    entry.awaiting.remove(0);
                    self.stats.trimmed += 1;
                }
            }
            None => {
                let group = entry.group.clone();
                self.emit(c, &group, d, time, out);
            }
        }
    }

    /// Turns a decision into a finding: an alert if the rule is standalone, and a derived hit
    /// for every correlation that references the rule.
    fn emit(&mut self, c: u32, group: &str, d: Decision, time: EventTime, out: &mut Vec<Finding>) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        let events = flatten(d.events);
        if !corr.feeds.is_empty() {
            let values: Vec<&str> = group.split(GROUP_SEPARATOR).collect();
            let parts: Arc<[(EventRef, u32)]> = events.clone().into();
            let first = events.first().map(|(e, _)| e.key).unwrap_or(0);
            let pos = events.last().map(|(e, _)| e.pos).unwrap_or(Position {
                source: 0,
                offset: 0,
            });
            let meta = &rules.meta[corr.rule as usize];
            let label = meta.id.as_deref().unwrap_or(&meta.title);
            let first_id = events.first().map(|(e, _)| &*e.id).unwrap_or("");
            let mut h = Xxh3::new();
            h.update(&c.to_le_bytes());
            h.update(group.as_bytes());
            h.update(&first.to_le_bytes());
            h.update(&time.0.to_le_bytes());
            let key = h.digest();
            for feed in &corr.feeds {
                let pick = |i: usize| values.get(i).copied().unwrap_or("");
                let outer: Vec<&str> = feed.group.iter().map(|&i| pick(i)).collect();
                self.stats.derived += 1;
                self.enqueue(Hit {
                    target: Target::Correlation(feed.target),
                    stages: feed.stages,
                    group: outer.join(&GROUP_SEPARATOR.to_string()).into(),
                    value: feed.value.map(|i| pick(i).into()),
                    shard_key: 0,
                    event: EventRef {
                        time,
                        key,
                        pos,
                        id: format!("{label}:{first_id}").into(),
                        parts: Some(Arc::clone(&parts)),
                    },
                });
            }
        }
        if corr.standalone {
            self.stats.findings += 1;
            out.push(Finding {
                target: Target::Correlation(c),
                group: group.into(),
                events,
                time,
                measure: d.measure,
            });
        }
    }

    /// After a state changed: drop it if empty, else schedule its timer and file its expiry.
    fn settle(&mut self, id: u128) {
        let rules = Arc::clone(&self.rules);
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        if entry.machine.is_empty() && entry.awaiting.is_empty() {
            self.drop_state(id);
            return;
        }
        let params = Params::new(&rules.correlations[entry.target as usize]);
        let next = [
            entry.machine.deadline(&params),
            entry.awaiting.first().map(|(d, _)| *d),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next {
            entry.expires = entry.expires.max(at);
            if entry.timer.is_none_or(|t| at < t) {
                entry.timer = Some(at);
                self.timers.push(Reverse((at, id)));
            }
        }
        if entry.bucket == i64::MIN {
            entry.bucket = bucket_of(entry.expires);
            self.buckets[entry.target as usize]
                .entry(entry.bucket)
                .or_default()
                .push(id);
        }
    }

    /// Creates the state of `group` for correlation `c`, evicting to stay in budget.
    fn open(&mut self, c: u32, id: u128, group: &str) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        if self.per_target[c as usize] >= corr.budget.max_groups.max(1) && self.evict_in(c) {
            self.stats.budget_evicted += 1;
        }
        if self.states.len() >= self.limits.max_states && self.evict_one() {
            self.stats.evicted += 1;
        }
        self.states.insert(
            id,
            Entry {
                target: c,
                group: group.into(),
                machine: Machine::new(corr),
                expires: EventTime::MIN,
                bucket: i64::MIN,
                awaiting: Vec::new(),
                timer: None,
            },
        );
        self.per_target[c as usize] += 1;
        self.stats.peak_states = self.stats.peak_states.max(self.states.len() as u64);
    }

    fn drop_state(&mut self, id: u128) -> Option<Entry> {
        let e = self.states.remove(&id)?;
        self.per_target[e.target as usize] -= 1;
        Some(e)
    }

    fn expire(&mut self) {
        let now = bucket_of(self.watermark);
        for target in 0..self.buckets.len() {
            while let Some((&b, _)) = self.buckets[target].first_key_value() {
                if b >= now {
                    break;
                }
                let ids = self.buckets[target].remove(&b).unwrap_or_default();
                for id in ids {
                    let Some(entry) = self.states.get_mut(&id) else {
                        continue;
                    };
                    if entry.bucket != b {
                        continue;
                    }
                    if entry.expires < self.watermark {
                        self.drop_state(id);
                        self.stats.expired += 1;
                    } else {
                        entry.bucket = bucket_of(entry.expires);
                        self.buckets[target]
                            .entry(entry.bucket)
                            .or_default()
                            .push(id);
                    }
                }
            }
        }
    }

    /// Evicts the state of correlation `target` filed under the earliest expiry bucket.
    fn evict_in(&mut self, target: u32) -> bool {
        let buckets = &mut self.buckets[target as usize];
        while let Some(mut first) = buckets.first_entry() {
            let b = *first.key();
            let Some(id) = first.get_mut().pop() else {
                first.remove();
                continue;
            };
            if self.states.get(&id).is_some_and(|e| e.bucket == b) {
                self.drop_state(id);
                return true;
            }
        }
        false
    }

    /// Evicts the state filed under the earliest expiry bucket of any correlation.
    fn evict_one(&mut self) -> bool {
        let target = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(t, b)| b.first_key_value().map(|(k, _)| (*k, t)))
            .min()
            .map(|(_, t)| t as u32);
        target.is_some_and(|t| self.evict_in(t))
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

/// Replaces derived events by the events of the findings they stand for, in time order.
fn flatten(events: Vec<(EventRef, u32)>) -> Vec<(EventRef, u32)> {
    if events.iter().all(|(e, _)| e.parts.is_none()) {
        return events;
    }
    let mut out = Vec::with_capacity(events.len() * 2);
    for (e, stage) in events {
        match &e.parts {
            Some(parts) => out.extend(parts.iter().map(|(p, _)| (p.clone(), stage))),
            None => out.push((e, stage)),
        }
    }
    out.sort_by_key(|a| (a.0.time, a.0.key, a.1));
    out.dedup_by(|a, b| a.0.key == b.0.key && a.0.time == b.0.time && a.1 == b.1);
    out
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
