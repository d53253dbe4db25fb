//! Where a hit goes, the same in every instance: the hits-topic partition of a group key, and
//! the fingerprint that tells instances loaded with other rules apart.
//!
//! Placement cannot use the engine's shard hash ([`crate::vocab::shard_key`]): that one is keyed
//! by a secret drawn per process, so that input cannot pile keys onto one shard. Across
//! processes every producer must agree, so the hash here is XXH3 with its fixed default seed.
//! Whoever writes group keys can then choose keys that share a partition; that costs balance,
//! never correctness, and a partition's state stays bounded by the memory budget.

use crate::matcher::RuleSet;
use crate::vocab::Target;

/// The hits-topic partition that owns `group` among `partitions` (at least 1).
pub fn partition_of(group: &str, partitions: u32) -> i32 {
    let h = xxhash_rust::xxh3::xxh3_64(group.as_bytes());
    (h % u64::from(partitions.max(1))) as i32
}

/// A hash of what a hit record's indices mean: each rule's id (or title) and kind, in load
/// order. Two instances with equal fingerprints number targets alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RulesFingerprint(pub u64);

impl RulesFingerprint {
    pub fn of(rules: &RuleSet) -> RulesFingerprint {
        let mut text = String::new();
        for d in 0..rules.detections.len() as u32 {
            push_rule(&mut text, 'd', rules.detection_meta(d));
        }
        for c in &rules.correlations {
            push_rule(&mut text, 'c', &rules.meta[c.rule as usize]);
        }
        RulesFingerprint(xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    /// As records carry it: 16 hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }

    pub fn parse(hex: &str) -> Option<RulesFingerprint> {
        if hex.len() != 16 {
            return None;
        }
        u64::from_str_radix(hex, 16).ok().map(RulesFingerprint)
    }
}

fn push_rule(text: &mut String, kind: char, meta: &crate::sigma::RuleMeta) {
    text.push(kind);
    text.push_str(meta.id.as_deref().unwrap_or(&meta.title));
    text.push('\u{1f}');
}

/// Whether `target` names a rule of `rules`.
pub fn target_exists(rules: &RuleSet, target: Target) -> bool {
    match target {
        Target::Correlation(c) => (c as usize) < rules.correlations.len(),
        Target::Detection(d) => (d as usize) < rules.detections.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_fixed_across_processes_and_spreads_keys() {
        // Pinned: a change of hash would split running clusters' chains across owners.
        assert_eq!(partition_of("arn:aws:iam::111122223333:user/alice", 6), 1);
        assert_eq!(partition_of("", 1), 0);
        assert_eq!(partition_of("anything", 0), 0);
        let mut counts = [0u32; 6];
        for i in 0..6000 {
            counts[partition_of(&format!("user-{i}"), 6) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_fingerprint_reads_back_from_its_hex_and_nothing_else_does() {
        let f = RulesFingerprint(0x0123_4567_89ab_cdef);
        assert_eq!(RulesFingerprint::parse(&f.hex()), Some(f));
        assert_eq!(RulesFingerprint::parse("123"), None);
        assert_eq!(RulesFingerprint::parse("0123456789abcdeg"), None);
    }
}
