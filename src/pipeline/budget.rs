//! The engine's memory budget: one figure in bytes, set in one place (`[engine] memory_budget`
//! in the service's config, `--memory-budget` in replay), split into every bounded part of the
//! engine that input can grow.
//!
//! Unset, the budget is half of what the process may use: the cgroup's memory limit when one is
//! set (a container), else the machine's physical memory. The split:
//!
//! | part | share | applied as |
//! |---|---|---|
//! | correlation state | 50 % | [`ShardLimits::max_state_bytes`] per shard (and a state count) |
//! | hits waiting for the watermark | 10 % | [`ShardLimits::max_pending`] per shard |
//! | credential lineage links | 10 % | [`LineageLimits::max_links`] |
//! | regex lazy-DFA caches | 15 % | per worker, split over the rule set's patterns |
//! | batches in flight, the output merge, alert rendering | 15 % | headroom, not enforced here |
//!
//! Within each part eviction is ranked (see `correlate::eviction` and `identity::lineage`), and
//! every eviction is counted in the run's summary and the service's metrics. Sizes are the
//! engine's own estimates of what it holds, not the allocator's; the headroom absorbs the
//! difference.

use std::path::Path;

use crate::correlate::ShardLimits;
use crate::identity::LineageLimits;

/// Smallest budget accepted: below it the shares cannot hold a useful rule set's state.
pub const MIN_BUDGET: u64 = 64 << 20;

/// Approximate bytes a hit waiting in a shard's reorder buffer holds (the hit, its event
/// reference, group key and heap entry).
const PENDING_HIT_BYTES: u64 = 512;
/// Approximate bytes of one lineage link (key, root, both expiry indexes).
const LINK_BYTES: u64 = 320;
/// Fewest bytes a correlation state costs (see `ENTRY_OVERHEAD` in the shard engine): the
/// state count bound follows from the bytes bound.
const MIN_STATE_BYTES: u64 = 256;

/// Why a budget was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("memory budget `{text}`: {why} (write e.g. `512MiB`, `4GiB` or a byte count)")]
    Syntax { text: String, why: &'static str },
    #[error("memory budget of {bytes} bytes is below the minimum of {MIN_BUDGET} (64 MiB)")]
    TooSmall { bytes: u64 },
}

/// Where the budget came from, for the start-up log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Configured,
    /// Half of the cgroup's memory limit (bytes).
    Cgroup(u64),
    /// Half of the machine's physical memory (bytes).
    Physical(u64),
    /// Neither could be read: a fixed 2 GiB.
    Fallback,
}

/// The engine's memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryBudget {
    pub bytes: u64,
    pub origin: Origin,
}

/// The budget split into the engine's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Split {
    pub shard: ShardLimits,
    pub lineage: LineageLimits,
    /// Bytes every regex pattern's lazy-DFA cache may hold together, per worker.
    pub regex_cache_per_worker: usize,
}

impl MemoryBudget {
    /// A configured budget (`None`: detect one from the cgroup or physical memory).
    pub fn new(configured: Option<u64>) -> Result<MemoryBudget, BudgetError> {
        let budget = match configured {
            Some(bytes) => MemoryBudget {
                bytes,
                origin: Origin::Configured,
            },
            None => detect(Path::new("/sys/fs/cgroup"), Path::new("/proc/meminfo")),
        };
        if budget.bytes < MIN_BUDGET {
            return Err(BudgetError::TooSmall {
                bytes: budget.bytes,
            });
        }
        Ok(budget)
    }

    /// The bounds for an engine of `shards` shards and `workers` workers.
    pub fn split(&self, shards: usize, workers: usize) -> Split {
        let share = |percent: u64| (u128::from(self.bytes) * u128::from(percent) / 100) as u64;
        let per_shard = |bytes: u64| bytes / shards.max(1) as u64;
        let state = per_shard(share(50));
        Split {
            shard: ShardLimits {
                max_pending: to_usize((per_shard(share(10)) / PENDING_HIT_BYTES).max(1024)),
                max_states: to_usize((state / MIN_STATE_BYTES).max(1024)),
                max_state_bytes: to_usize(state),
            },
            lineage: LineageLimits {
                max_links: to_usize((share(10) / LINK_BYTES).max(1024)),
                ..LineageLimits::default()
            },
            regex_cache_per_worker: to_usize(share(15) / workers.max(1) as u64),
        }
    }

    /// One line for the start-up log and the replay summary.
    pub fn describe(&self, split: &Split) -> String {
        let origin = match self.origin {
            Origin::Configured => "configured".to_string(),
            Origin::Cgroup(limit) => format!("half of the cgroup limit of {}", mib(limit)),
            Origin::Physical(total) => format!("half of {} physical memory", mib(total)),
            Origin::Fallback => "no memory limit readable, fixed".to_string(),
        };
        format!(
            "memory budget {} ({origin}): state {} and {} waiting hits per shard, {} lineage links, regex caches {} per worker",
            mib(self.bytes),
            mib(split.shard.max_state_bytes as u64),
            split.shard.max_pending,
            split.lineage.max_links,
            mib(split.regex_cache_per_worker as u64),
        )
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// Half of the cgroup's memory limit (v2 `memory.max`, v1 `memory/memory.limit_in_bytes`),
/// else half of `MemTotal`, else 2 GiB.
fn detect(cgroup: &Path, meminfo: &Path) -> MemoryBudget {
    let physical = std::fs::read_to_string(meminfo).ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    });
    let limit = ["memory.max", "memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(cgroup.join(f)).ok())
        .filter_map(|t| t.trim().parse::<u64>().ok())
        // cgroup v1 writes "no limit" as a huge number; v2 writes "max" (not a number).
        .find(|&l| physical.is_none_or(|p| l < p));
    match (limit, physical) {
        (Some(l), _) => MemoryBudget {
            bytes: l / 2,
            origin: Origin::Cgroup(l),
        },
        (None, Some(p)) => MemoryBudget {
            bytes: p / 2,
            origin: Origin::Physical(p),
        },
        (None, None) => MemoryBudget {
            bytes: 2 << 30,
            origin: Origin::Fallback,
        },
    }
}

/// Parses a size: a byte count, or a number with `KiB`/`MiB`/`GiB`/`TiB` (or `K`/`M`/`G`/`T`,
/// `KB`/`MB`/`GB`/`TB`, all powers of 1024), e.g. `512MiB`, `1.5GiB`.
pub fn parse_size(text: &str) -> Result<u64, BudgetError> {
    let err = |why| BudgetError::Syntax {
        text: text.to_string(),
        why,
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| err("no number"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err("unknown unit")),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(err("too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert!(matches!(
            parse_size("4 parsecs"),
            Err(BudgetError::Syntax { .. })
        ));
        assert!(matches!(parse_size("GiB"), Err(BudgetError::Syntax { .. })));
        assert!(matches!(
            parse_size("1e400"),
            Err(BudgetError::Syntax { .. })
        ));
    }

    #[test]
    fn a_budget_below_the_minimum_is_refused() {
        assert_eq!(
            MemoryBudget::new(Some(1 << 20)),
            Err(BudgetError::TooSmall { bytes: 1 << 20 })
        );
    }

    #[test]
    fn the_split_divides_state_and_hits_by_shards_and_caches_by_workers() {
        let b = MemoryBudget::new(Some(8 << 30)).unwrap();
        let one = b.split(1, 1);
        let four = b.split(4, 2);
        assert_eq!(one.shard.max_state_bytes, 4 << 30);
        assert_eq!(four.shard.max_state_bytes, one.shard.max_state_bytes / 4);
        assert_eq!(four.regex_cache_per_worker, one.regex_cache_per_worker / 2);
        assert_eq!(one.lineage.max_links, four.lineage.max_links);
        let parts = 4 * four.shard.max_state_bytes as u64
            + 4 * four.shard.max_pending as u64 * PENDING_HIT_BYTES
            + four.lineage.max_links as u64 * LINK_BYTES
            + 2 * four.regex_cache_per_worker as u64;
        assert!(parts <= b.bytes, "the parts ({parts}) fit the budget");
    }

    #[test]
    fn the_cgroup_limit_wins_over_physical_memory_and_no_limit_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let meminfo = dir.path().join("meminfo");
        std::fs::write(&meminfo, "MemTotal:       25165824 kB\nMemFree: 1 kB\n").unwrap();
        let cgroup = dir.path().join("cgroup");
        std::fs::create_dir_all(cgroup.join("memory")).unwrap();
        assert_eq!(
            detect(&cgroup, &meminfo),
            MemoryBudget {
                bytes: 12 << 30,
                origin: Origin::Physical(24 << 30)
            }
        );
        std::fs::write(cgroup.join("memory.max"), "max\n").unwrap();
        std::fs::write(
            cgroup.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(detect(&cgroup, &meminfo).origin, Origin::Physical(24 << 30));
        std::fs::write(cgroup.join("memory.max"), "4294967296\n").unwrap();
        assert_eq!(
            detect(&cgroup, &meminfo),
            MemoryBudget {
                bytes: 2 << 30,
                origin: Origin::Cgroup(4 << 30)
            }
        );
        assert_eq!(
            detect(&dir.path().join("none"), &dir.path().join("none")).origin,
            Origin::Fallback
        );
    }
}
