//! The state store of a shard: opening, settling, expiring and evicting group states.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use super::{BUCKET, Entry, ShardEngine};
use crate::correlate::Target;
use crate::correlate::eviction::{Rank, Ranks};
use crate::correlate::footprint::Footprint;
use crate::correlate::{Machine, Params};
use crate::matcher::{RuleSet, TargetMap};
use crate::time::EventTime;

impl ShardEngine {
    /// After a state changed: drop it if empty, else schedule its timer, file its expiry and
    /// refresh its bytes and eviction rank.
    pub(super) fn settle(&mut self, id: u128) {
        self.note_changed(id);
        let rules = Arc::clone(&self.rules);
        let Some(entry) = self.states.get_mut(&id) else {
            return;
        };
        if entry.machine.is_empty() && entry.awaiting.is_empty() {
            self.drop_state(id);
            return;
        }
        let bytes = entry.approx_bytes();
        self.state_bytes = self.state_bytes + bytes - entry.bytes;
        let usage = &mut self.per_target[entry.target as usize];
        usage.bytes = usage.bytes + bytes - entry.bytes;
        entry.bytes = bytes;
        let stage = match &entry.machine {
            Machine::Ordered(m) => m.stage_reached().map(|k| k as u8 + 1).unwrap_or(0),
            _ => 1,
        };
        if stage != entry.rank.stage {
            entry.rank.stage = stage;
            usage.ranks.file(id, entry.rank);
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

    /// Creates the state of `group` for correlation `c` under `id` (`displaced`: not its home
    /// id, see [`ShardEngine::locate`]), evicting to stay in budget.
    pub(super) fn open(&mut self, c: u32, (id, displaced): (u128, bool), group: &str) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[c as usize];
        if self.per_target[c as usize].states >= corr.budget.max_groups.max(1) && self.evict_in(c) {
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
        self.per_target[c as usize].ranks.file(id, rank);
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
        self.per_target[c as usize].states += 1;
        if displaced {
            self.displaced += 1;
        }
        self.stats.peak_states = self.stats.peak_states.max(self.states.len() as u64);
    }

    pub(super) fn drop_state(&mut self, id: u128) -> Option<Entry> {
        let e = self.states.remove(&id)?;
        self.note_ended(id, e.target, &e.group);
        let usage = &mut self.per_target[e.target as usize];
        usage.states -= 1;
        usage.bytes = usage.bytes.saturating_sub(e.bytes);
        if self.displaced > 0 && self.is_displaced(id, e.target, &e.group) {
            self.displaced -= 1;
        }
        self.state_bytes = self.state_bytes.saturating_sub(e.bytes);
        let (states, usage) = (&self.states, &mut self.per_target[e.target as usize]);
        usage
            .ranks
            .compact(usage.states, |id| states.get(&id).map(|s| s.rank));
        Some(e)
    }

    pub(super) fn expire(&mut self) {
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

    /// Evicts the lowest-ranked state of correlation `target`, oldest first within a rank
    /// (see [`crate::correlate::eviction`]).
    pub(super) fn evict_in(&mut self, target: u32) -> bool {
        let states = &self.states;
        let popped = self.per_target[target as usize]
            .ranks
            .pop_lowest(|id| states.get(&id).map(|e| e.rank));
        popped.is_some_and(|id| self.drop_state(id).is_some())
    }

    /// Evicts one state when the shard is over its budget: from the correlation holding the
    /// most bytes (its fair share is exceeded whenever any is), the lowest-ranked of its states.
    /// A flood of throwaway identities matching one rule evicts that rule's own states; another
    /// rule's chains stay, and within the flooded rule an advanced chain of a high-blast
    /// identity outlives every lower-ranked state.
    pub(super) fn evict_one(&mut self) -> bool {
        let largest = (0..self.per_target.len())
            .filter(|&t| self.per_target[t].states > 0)
            .max_by_key(|&t| (self.per_target[t].bytes, self.per_target[t].states));
        largest.is_some_and(|t| self.evict_in(t as u32))
    }

    /// Swaps in a reloaded rule set: the states and buffered hits of rules that continue
    /// (`map`) are kept under their new indices, the others dropped. Returns (states kept,
    /// states dropped); dropped hits are counted in the stats.
    pub fn reload(&mut self, rules: Arc<RuleSet>, map: &TargetMap) -> (usize, usize) {
        let n = rules.correlations.len();
        let old = std::mem::take(&mut self.states);
        self.buckets = vec![BTreeMap::new(); n];
        self.per_target = (0..n).map(|_| Usage::default()).collect();
        self.timers.clear();
        self.state_bytes = 0;
        self.displaced = 0;
        self.last = None;
        let (mut kept, mut dropped) = (0, 0);
        for (_, mut entry) in old {
            let Some(Target::Correlation(c)) = map.map(Target::Correlation(entry.target)) else {
                dropped += 1;
                continue;
            };
            let Slot::Vacant(id, displaced) = self.locate(c, &entry.group) else {
                // Two states of one group cannot come out of distinct old states; only a full
                // probe sequence lands here (counted by `locate`).
                dropped += 1;
                continue;
            };
            entry.target = c;
            entry.bucket = bucket_of(entry.expires);
            self.adopt(id, displaced, entry);
            kept += 1;
        }
        self.note_all_changed();
        let pending = std::mem::take(&mut self.pending);
        for Reverse(mut p) in pending {
            match map.map(p.target) {
                Some(t) => {
                    p.target = t;
                    p.hit.0.target = t;
                    self.pending.push(Reverse(p));
                }
                None => self.stats.reload_dropped_hits += 1,
            }
        }
        self.rules = rules;
        self.stats.reload_dropped_states += dropped as u64;
        (kept, dropped)
    }

    /// Files `entry` (its `bucket` set from its expiry) as the live state under `id`: its
    /// expiry bucket, timer, rank and bytes.
    pub(super) fn adopt(&mut self, id: u128, displaced: bool, entry: Entry) {
        if displaced {
            self.displaced += 1;
        }
        let c = entry.target as usize;
        self.buckets[c].entry(entry.bucket).or_default().push(id);
        if let Some(at) = entry.timer {
            self.timers.push(Reverse((at, id)));
        }
        let usage = &mut self.per_target[c];
        usage.ranks.file(id, entry.rank);
        usage.states += 1;
        usage.bytes += entry.bytes;
        self.state_bytes += entry.bytes;
        self.states.insert(id, entry);
        self.stats.peak_states = self.stats.peak_states.max(self.states.len() as u64);
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

/// What one correlation holds in a shard.
#[derive(Debug, Default)]
pub(super) struct Usage {
    pub(super) states: usize,
    /// Approximate bytes of its states (their share of the shard's `state_bytes`).
    pub(super) bytes: usize,
    /// Its states by eviction rank.
    pub(super) ranks: Ranks,
}

pub(super) fn bucket_of(t: EventTime) -> i64 {
    t.0.div_euclid(BUCKET)
}

/// How many ids a group state may take: the id at probe 0 (its home) and, if another group
/// holds that, the next ones. Ids are 128 bits of a keyed hash, so even one collision needs an
/// astronomically lucky input; the probes exist so that a collision splits nothing.
pub(super) const PROBES: u8 = 4;

/// The ids of group states: 128 bits of SipHash-1-3 (two std [`RandomState`]s, keys from the
/// operating system's random source, fresh for every shard engine) over (probe, correlation,
/// group key). Nobody outside the process knows the keys, so nobody can aim two group keys at
/// one id; and an id only finds a state whose correlation and group key compare equal
/// ([`ShardEngine::locate`]), so even a collision could not merge two identities' chains.
/// Ids never reach the output (findings are ordered by their contents).
#[derive(Clone, Debug)]
pub(super) struct StateIds {
    keys: [RandomState; 2],
    /// Test hook: every group's home id is 0, a collision for every pair of keys.
    #[cfg(test)]
    pub(super) collide_home: bool,
}

impl StateIds {
    pub(super) fn new() -> StateIds {
        StateIds {
            keys: [RandomState::new(), RandomState::new()],
            #[cfg(test)]
            collide_home: false,
        }
    }

    /// The id of `group`'s state of correlation `target` at `probe` (0 = its home).
    pub(super) fn id(&self, probe: u8, target: u32, group: &str) -> u128 {
        #[cfg(test)]
        if self.collide_home && probe == 0 {
            return 0;
        }
        let key = (probe, target, group);
        let [a, b] = &self.keys;
        (u128::from(a.hash_one(key)) << 64) | u128::from(b.hash_one(key))
    }
}

/// Where a group's state is, or may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// The state exists under this id.
    Found(u128),
    /// No state yet; this id is free for it, at its home (`false`) or displaced (`true`).
    Vacant(u128, bool),
    /// No state, and every id the group may take holds another group's state (counted in
    /// [`ShardStats::id_collisions`](crate::correlate::ShardStats)).
    Full,
}

impl ShardEngine {
    /// The state of `group` for correlation `target`: an id matches only if the state under it
    /// has this very correlation and group key. Probes past a free id only while some state
    /// lives away from its home (a removed state may have left a hole in a probe sequence).
    pub(super) fn locate(&mut self, target: u32, group: &str) -> Slot {
        let mut vacant = None;
        for probe in 0..PROBES {
            let id = self.ids.id(probe, target, group);
            match self.states.get(&id) {
                Some(e) if e.target == target && *e.group == *group => return Slot::Found(id),
                Some(_) => self.stats.id_collisions += 1,
                None => {
                    vacant.get_or_insert((id, probe > 0));
                    if self.displaced == 0 {
                        break;
                    }
                }
            }
        }
        vacant.map_or(Slot::Full, |(id, displaced)| Slot::Vacant(id, displaced))
    }

    /// Whether the state under `id` lives away from its home id.
    fn is_displaced(&self, id: u128, target: u32, group: &str) -> bool {
        id != self.ids.id(0, target, group)
    }
}
