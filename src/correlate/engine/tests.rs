//! The state store under aimed keys: ids that collide never share a state, and shard routing
//! that crafted keys cannot pile onto one shard.

use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::{ShardEngine, Slot};
use crate::correlate::{EventRef, Finding, Hit, ShardLimits, Target};
use crate::matcher::tests::ruleset;
use crate::time::EventTime;
use crate::vocab::{Position, shard_key};

/// Bug: once blast-radius scoring landed, every state carried its footprint sketch and the
/// largest machine inline (520 B before its first event, about twice that in the state
/// map's slots), and a million chains in flight cost 1.9 KB each.
#[test]
fn a_state_entry_carries_no_inline_sketch_or_window() {
    let size = size_of::<super::Entry>();
    assert!(size <= 160, "a state entry is {size} B");
}

const RULES: &str = r#"
title: enum
name: enum
detection: {sel: {eventName: ListUsers}, condition: sel}
---
title: burst
correlation:
  type: event_count
  rules: [enum]
  group-by: [userIdentity.arn]
  timespan: 1h
  condition: {gte: 3}
"#;

fn hit(group: &str, secs: i64, id: &str) -> Hit {
    Hit {
        target: Target::Correlation(0),
        stages: 1,
        group: group.into(),
        value: None,
        shard_key: 0,
        event: EventRef {
            time: EventTime::from_millis(1_700_000_000_000 + secs * 1000),
            key: crate::decode::event_key(id),
            pos: Position {
                source: 0,
                offset: secs as u64,
            },
            id: id.into(),
            parts: None,
            actor: None,
            details: None,
        },
        touched: Vec::new(),
    }
}

/// An engine whose every group key has the same home id: each pair of keys collides.
fn colliding_engine() -> ShardEngine {
    let mut engine = ShardEngine::new(Arc::new(ruleset(RULES)), ShardLimits::default());
    engine.ids.collide_home = true;
    engine
}

fn groups(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(|f| f.group.to_string()).collect()
}

/// Issue 15: the 128-bit state id was the whole key, and a collision would have merged
/// another identity's state. With every home id forced equal, 100,000 group keys still get
/// 100,000 states, none of which sees another's events.
#[test]
fn colliding_state_ids_never_share_state() {
    let mut engine = colliding_engine();
    let mut out = Vec::new();
    let n = 100_000;
    // Two events per key: merged states would reach the count of three and fire.
    for round in 0..2 {
        for i in 0..n {
            engine.push(
                hit(&format!("user-{i}"), round, &format!("e{round}-{i}")),
                &mut out,
            );
        }
    }
    engine.advance(EventTime::from_millis(1_700_000_000_000 + 10_000), &mut out);
    assert_eq!(engine.live_states(), n);
    assert!(
        engine.stats().id_collisions >= n as u64,
        "{:?}",
        engine.stats()
    );
    assert_eq!(engine.stats().id_exhausted, 0);
    assert!(out.is_empty(), "a merged state fired: {:?}", groups(&out));
    // One key's third event fires that key's chain, with that key's three events only.
    engine.push(hit("user-77", 20, "e2-77"), &mut out);
    engine.advance(EventTime::MAX, &mut out);
    assert_eq!(groups(&out), ["user-77"]);
    let ids: Vec<&str> = out[0].events.iter().map(|(e, _)| &*e.id).collect();
    assert_eq!(ids, ["e0-77", "e1-77", "e2-77"]);
}

/// A state that lives away from its home id is still found after the state at its home is
/// gone (the hole a removal leaves in a probe sequence splits nothing).
#[test]
fn a_displaced_state_is_found_after_its_home_is_freed() {
    let mut engine = colliding_engine();
    let mut out = Vec::new();
    engine.push(hit("alice", 0, "a0"), &mut out);
    engine.push(hit("bob", 1, "b0"), &mut out);
    engine.push(hit("bob", 2, "b1"), &mut out);
    engine.advance(EventTime::from_millis(1_700_000_000_000 + 5_000), &mut out);
    let Slot::Found(home) = engine.locate(0, "alice") else {
        panic!("alice has no state");
    };
    assert_eq!(home, 0);
    engine.drop_state(home);
    assert!(matches!(engine.locate(0, "bob"), Slot::Found(id) if id != 0));
    engine.push(hit("bob", 3, "b2"), &mut out);
    engine.advance(EventTime::MAX, &mut out);
    assert_eq!(groups(&out), ["bob"]);
    assert_eq!(out[0].events.len(), 3);
    assert_eq!(engine.displaced, 0);
}

/// Issue 15: shard routing hashed group keys with unkeyed xxh3, so keys an input chose could
/// all land on one shard. 100,000 keys that unkeyed xxh3 sends to shard 0 of 2 and of 4 spread
/// over every shard under the keyed router.
#[test]
fn keys_crafted_for_one_shard_spread_over_all() {
    let crafted: Vec<String> = (0u64..)
        .map(|i| format!("arn:aws:iam::123456789012:user/u{i}"))
        .filter(|k| xxh3_64(k.as_bytes()).is_multiple_of(4))
        .take(100_000)
        .collect();
    for shards in [2u64, 4] {
        let mut per_shard = vec![0usize; shards as usize];
        for k in &crafted {
            assert_eq!(xxh3_64(k.as_bytes()) % shards, 0, "the keys aim at shard 0");
            per_shard[(shard_key(k, None) % shards) as usize] += 1;
        }
        // A fair split gives 100,000 / shards each, give or take a few hundred.
        let fair = crafted.len() / shards as usize;
        for (shard, n) in per_shard.iter().enumerate() {
            assert!(
                n.abs_diff(fair) < fair / 20,
                "{shards} shards: shard {shard} got {n} keys of {}: {per_shard:?}",
                crafted.len()
            );
        }
    }
    // Routing by picked values is keyed the same way.
    let sep = crate::vocab::GROUP_SEPARATOR;
    let mut hits_shard0 = 0usize;
    for k in &crafted {
        if shard_key(&format!("x{sep}{k}"), Some(&[1])).is_multiple_of(4) {
            hits_shard0 += 1;
        }
    }
    assert!(hits_shard0.abs_diff(25_000) < 1_250, "{hits_shard0}");
}

/// Issue 15: duplicates were dropped by the 64-bit event key alone, a hash an input can aim:
/// two distinct events of one group, rule and instant with equal keys are both counted.
#[test]
fn distinct_events_with_equal_keys_are_not_duplicates() {
    let mut engine = ShardEngine::new(Arc::new(ruleset(RULES)), ShardLimits::default());
    let mut out = Vec::new();
    for id in ["x1", "x2", "x3"] {
        let mut h = hit("mallory", 0, id);
        h.event.key = 42;
        engine.push(h, &mut out);
    }
    engine.advance(EventTime::MAX, &mut out);
    assert_eq!(groups(&out), ["mallory"]);
    assert_eq!(engine.stats().duplicates, 0);
}
