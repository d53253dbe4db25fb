//! The state machines of one shard, driven in event-time order: the reorder buffer, the
//! timers, the state store with its budgets, and the feeding of correlation findings into the
//! correlations that reference them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::eviction::{Rank, Ranks};
use super::footprint::Footprint;
use super::{
    Decision, EventRef, Finding, GROUP_SEPARATOR, Hit, Machine, Params, ShardLimits, ShardStats,
    Step, Target,
};
use crate::decode::TouchKind;
use crate::input::Position;
use crate::matcher::RuleSet;
use crate::score::Assessor;
use crate::time::{EventTime, Span};

/// Bytes a state costs besides its machine, footprint and key: the map entry, expiry, timer
/// and rank bookkeeping.
const ENTRY_OVERHEAD: usize = 160;

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
    /// What the group's hits touched, for the blast radius.
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
    /// (instant, state): decided once every hit up to the instant has been processed.
    timers: BinaryHeap<Reverse<(EventTime, u128)>>,
    seq: u64,
    states: HashMap<u128, Entry>,
    /// Per correlation: expiry bucket to the states filed there.
    buckets: Vec<BTreeMap<i64, Vec<u128>>>,
    /// Per correlation: live states.
    per_target: Vec<usize>,
    /// States by eviction rank, and the bytes they hold.
    ranks: Ranks,
    state_bytes: usize,
    watermark: EventTime,
    last: Option<(EventTime, u64, Target, Box<str>)>,
    stats: ShardStats,
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
            per_target: vec![0; n],
            ranks: Ranks::default(),
            state_bytes: 0,
            watermark: EventTime::MIN,
            last: None,
            stats: ShardStats::default(),
        }
    }

    /// Scores findings with `assessor` (inventory, weights, escalation) instead of the defaults.
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

    /// Builds a finding and scores it.
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &mut self,
        target: Target,
        group: Box<str>,
        events: Vec<(EventRef, u32)>,
        time: EventTime,
        measure: Option<f64>,
        footprint: &Footprint,
        stage: (u32, u32),
        canary: bool,
    ) -> Finding {
        self.stats.findings += 1;
        let gaps: Vec<Span> = events
            .windows(2)
            .map(|w| w[1].0.time.since(w[0].0.time))
            .collect();
        let weights = match target {
            Target::Correlation(c) => self.rules.correlations[c as usize].weights,
            Target::Detection(_) => None,
        };
        let touched = footprint.counts();
        let score = self
            .assessor
            .score(weights, &group, touched, stage, gaps, canary);
        Finding {
            target,
            group,
            events,
            time,
            measure,
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

    /// Emits an early (not yet alerting) finding for an announced chain, unless nothing
    /// changed since its last announcement.
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
            None,
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

    /// A condition held at `time`: alert now, or wait for the absence deadline. `update` says
    /// the chain was announced early (its alert is the final Update of that finding).
    #[allow(clippy::too_many_arguments)]
    fn decided(
        &mut self,
        c: u32,
        id: u128,
        d: Decision,
        time: EventTime,
        canary: bool,
        update: bool,
        out: &mut Vec<Finding>,
    ) {
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
                let footprint = entry.footprint.clone();
                self.emit(c, &group, d, time, &footprint, canary, update, out);
            }
        }
    }

    /// Turns a decision into a finding: an alert if the rule is standalone, and a derived hit
    /// for every correlation that references the rule.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        c: u32,
        group: &str,
        d: Decision,
        time: EventTime,
        footprint: &Footprint,
        canary: bool,
        update: bool,
        out: &mut Vec<Finding>,
    ) {
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
                        actor: None,
                    },
                    touched: footprint_touches(footprint),
                });
            }
        }
        if corr.standalone {
            let n = corr.stages.len() as u32;
            let stage = match corr.kind {
                crate::sigma::CorrelationType::Temporal => {
                    let mut seen: Vec<u32> = events.iter().map(|(_, s)| *s).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    (seen.len() as u32, n)
                }
                crate::sigma::CorrelationType::TemporalOrdered => (n, n),
                _ => (1, 1),
            };
            let mut f = self.finding(
                Target::Correlation(c),
                group.into(),
                events,
                time,
                d.measure,
                footprint,
                stage,
                canary,
            );
            f.update = update;
            out.push(f);
        }
    }

    /// After a state changed: drop it if empty, else schedule its timer, file its expiry and
    /// refresh its bytes and eviction rank.
    fn settle(&mut self, id: u128) {
        let rules = Arc::clone(&self.rules);
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        if entry.machine.is_empty() && entry.awaiting.is_empty() {
            self.drop_state(id);
            return;
        }
        let bytes = entry.machine.approx_bytes()
            + entry.footprint.approx_bytes()
            + entry.group.len()
            + entry.awaiting.len() * 96
            + ENTRY_OVERHEAD;
        self.state_bytes = self.state_bytes + bytes - entry.bytes;
        entry.bytes = bytes;
        let stage = match &entry.machine {
            Machine::Ordered(m) => m.stage_reached().map(|k| k as u8 + 1).unwrap_or(0),
            _ => 1,
        };
        if stage != entry.rank.stage {
            entry.rank.stage = stage;
            self.ranks.file(id, entry.rank);
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
        while !self.states.is_empty()
            && (self.states.len() >= self.limits.max_states
                || self.state_bytes >= self.limits.max_state_bytes)
        {
            if !self.evict_one() {
                break;
            }
            self.stats.evicted += 1;
        }
        let rank = Rank {
            stage: 0,
            blast: self.assessor.blast_tier(group),
        };
        self.ranks.file(id, rank);
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
                footprint: Footprint::default(),
                announced: None,
                rank,
                bytes: 0,
            },
        );
        self.per_target[c as usize] += 1;
        self.stats.peak_states = self.stats.peak_states.max(self.states.len() as u64);
    }

    fn drop_state(&mut self, id: u128) -> Option<Entry> {
        let e = self.states.remove(&id)?;
        self.per_target[e.target as usize] -= 1;
        self.state_bytes = self.state_bytes.saturating_sub(e.bytes);
        let states = &self.states;
        self.ranks
            .compact(states.len(), |id| states.get(&id).map(|e| e.rank));
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

    /// Evicts the lowest-ranked state of any correlation (see [`super::eviction`]): a flood of
    /// throwaway identities cannot push out an advanced chain of a high-blast identity.
    fn evict_one(&mut self) -> bool {
        let states = &self.states;
        match self.ranks.pop_lowest(|id| states.get(&id).map(|e| e.rank)) {
            Some(id) => self.drop_state(id).is_some(),
            None => false,
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

/// A footprint's examples as touched values, carried by a derived hit into the outer state.
fn footprint_touches(f: &Footprint) -> Vec<(TouchKind, Box<str>)> {
    f.examples().to_vec()
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
