//! Eviction that attackers cannot exploit.
//!
//! When a shard's state outgrows its budget, something must go. Evicting the oldest state would
//! let an attacker flush their own advanced chain by flooding the engine with throwaway
//! identities. Instead every state has a rank, (stage reached, blast tier): the stages its chain
//! completed, and the tier of what its identity can reach (from the inventory). Eviction takes
//! the lowest rank first, oldest first within a rank, so an advanced chain of a high-blast
//! identity is never evicted while any lower-ranked state remains.
//!
//! Ranks are kept per rule, and a shard over its budget evicts from the rule holding the most
//! bytes: a flood that matches one rule (a noisy `event_count` grouped by source address, a
//! million throwaway identities) evicts that rule's own states, never another rule's chains.
//!
//! Ranks live in buckets of ids; a state that changes rank is pushed into its new bucket and its
//! old entry goes stale (checked against the state's current rank when popped), so updates and
//! evictions are O(1) amortised.

use std::collections::VecDeque;

/// Stages above this share the top stage rank.
pub const MAX_STAGE_RANK: u8 = 15;
/// Blast tiers: 0 (unknown or low) to 4 (admin).
pub const BLAST_TIERS: u8 = 5;

/// The rank of a state: lower is evicted first.
#[derive(
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
pub struct Rank {
    pub stage: u8,
    pub blast: u8,
}

impl Rank {
    fn index(self) -> usize {
        self.stage.min(MAX_STAGE_RANK) as usize * BLAST_TIERS as usize
            + self.blast.min(BLAST_TIERS - 1) as usize
    }
}

/// States by rank.
#[derive(Debug)]
pub struct Ranks {
    buckets: Vec<VecDeque<u128>>,
}

impl Default for Ranks {
    fn default() -> Self {
        Ranks {
            buckets: vec![VecDeque::new(); (MAX_STAGE_RANK as usize + 1) * BLAST_TIERS as usize],
        }
    }
}

impl Ranks {
    /// Files `id` under `rank` (call again whenever its rank changes).
    pub fn file(&mut self, id: u128, rank: Rank) {
        self.buckets[rank.index()].push_back(id);
    }

    /// Pops the lowest-ranked, oldest state whose current rank (per `current`) still is the
    /// bucket's rank; stale entries are dropped on the way.
    pub fn pop_lowest(&mut self, mut current: impl FnMut(u128) -> Option<Rank>) -> Option<u128> {
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            while let Some(id) = bucket.pop_front() {
                if current(id).is_some_and(|r| r.index() == i) {
                    return Some(id);
                }
            }
        }
        None
    }

    /// Drops stale entries when the buckets hold many more ids than there are states.
    pub fn compact(&mut self, live: usize, mut current: impl FnMut(u128) -> Option<Rank>) {
        let filed: usize = self.buckets.iter().map(VecDeque::len).sum();
        if filed <= 2 * live + 1024 {
            return;
        }
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            bucket.retain(|&id| current(id).is_some_and(|r| r.index() == i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn lowest_rank_then_oldest_goes_first_and_stale_entries_are_skipped() {
        let mut ranks = Ranks::default();
        let mut current: HashMap<u128, Rank> = HashMap::new();
        for (id, stage, blast) in [(1, 0, 4), (2, 0, 0), (3, 2, 0), (4, 0, 0), (5, 3, 4)] {
            let r = Rank { stage, blast };
            current.insert(id, r);
            ranks.file(id, r);
        }
        // State 2 advances: its old entry goes stale.
        current.insert(2, Rank { stage: 1, blast: 0 });
        ranks.file(2, Rank { stage: 1, blast: 0 });
        let mut order = Vec::new();
        while let Some(id) = ranks.pop_lowest(|id| current.get(&id).copied()) {
            current.remove(&id);
            order.push(id);
        }
        assert_eq!(order, vec![4, 1, 2, 3, 5]);
    }
}
