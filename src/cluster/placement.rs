//! Where a hit goes, the same in every instance: the hits-topic partition of a group key, and
//! the fingerprint that tells instances loaded with other rules apart.
//!
//! Placement cannot use the engine's shard hash ([`crate::vocab::shard_key`]): that one is keyed
//! by a secret drawn per process, so that input cannot pile keys onto one shard. Across
//! processes every producer must agree, so the hash here is XXH3 with its fixed default seed.
//! Whoever writes group keys can then choose keys that share a partition; that costs balance,
//! never correctness, and a partition's state stays bounded by the memory budget.

use crate::matcher::RuleSet;
use crate::vocab::GROUP_SEPARATOR;

/// The hits-topic partition that owns `group` among `partitions` (at least 1): by the whole
/// key, or by the values at `route` (a correlation routed by the group-by of the correlation
/// that references it, as [`crate::vocab::shard_key`] routes shards), so a finding and the
/// correlation it feeds meet in one partition.
pub fn partition_of(group: &str, route: Option<&[usize]>, partitions: u32) -> i32 {
    let h = match route {
        None => xxhash_rust::xxh3::xxh3_64(group.as_bytes()),
        Some(route) => {
            let values: Vec<&str> = group.split(GROUP_SEPARATOR).collect();
            let mut picked = String::new();
            for (n, &i) in route.iter().enumerate() {
                if n > 0 {
                    picked.push(GROUP_SEPARATOR);
                }
                picked.push_str(values.get(i).copied().unwrap_or(""));
            }
            xxhash_rust::xxh3::xxh3_64(picked.as_bytes())
        }
    };
    (h % u64::from(partitions.max(1))) as i32
}

/// The partition of `hit` in a rule set: correlations by their route.
pub fn partition_of_hit(rules: &RuleSet, hit: &crate::vocab::Hit, partitions: u32) -> i32 {
    partition_of(&hit.group, rules.route_of(hit.target), partitions)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_fixed_across_processes_and_spreads_keys() {
        // Pinned: a change of hash would split running clusters' chains across owners.
        assert_eq!(
            partition_of("arn:aws:iam::111122223333:user/alice", None, 6),
            1
        );
        assert_eq!(partition_of("", None, 1), 0);
        assert_eq!(partition_of("anything", None, 0), 0);
        let mut counts = [0u32; 6];
        for i in 0..6000 {
            counts[partition_of(&format!("user-{i}"), None, 6) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_routed_key_is_placed_by_its_routed_values_only() {
        let sep = GROUP_SEPARATOR;
        let alice = |host: &str| format!("alice{sep}{host}");
        for host in ["web-1", "db-7", ""] {
            assert_eq!(
                partition_of(&alice(host), Some(&[0]), 64),
                partition_of("alice", None, 64)
            );
        }
        assert_eq!(
            partition_of(&alice("web-1"), Some(&[1, 0]), 64),
            partition_of(&format!("web-1{sep}alice"), None, 64)
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
