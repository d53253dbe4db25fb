use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::matcher::tests::ruleset;
use crate::time::Span;
use crate::vocab::Position;

const CHAIN: &str = r#"
title: read
name: read
detection: {sel: {eventName: GetSecretValue}, condition: sel}
---
title: enum
name: enum
detection: {sel: {eventName: ListUsers}, condition: sel}
---
title: persist
name: persist
detection: {sel: {eventName: CreateAccessKey}, condition: sel}
---
title: chain
correlation:
  type: temporal_ordered
  rules: [read, enum, persist]
  group-by: [userIdentity.arn]
  timespan: 10m
---
title: burst
correlation:
  type: event_count
  rules: [enum]
  group-by: [userIdentity.arn]
  timespan: 1m
  condition: {gte: 3}
---
title: anyorder
correlation:
  type: temporal
  rules: [read, persist]
  group-by: [userIdentity.arn]
  timespan: 5m
"#;

fn t(secs: i64) -> EventTime {
    EventTime::from_millis(1_700_000_000_000 + secs * 1000)
}

/// A hit of correlation `target` at stage mask `stages` for `group`, `secs` into the test day,
/// event `id` (other modules' tests build theirs with it too).
pub(crate) fn hit(target: u32, stages: u64, group: &str, secs: i64, id: &str) -> Hit {
    Hit {
        target: Target::Correlation(target),
        stages,
        group: group.into(),
        value: None,
        shard_key: 0,
        event: EventRef {
            time: t(secs),
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

/// Runs hits through one engine of `rules`, advancing the watermark after each push as a
/// stream would, then to the end of time.
pub(super) fn drive(rules: &str, hits: Vec<Hit>, lateness_secs: i64) -> Vec<Finding> {
    let mut engine = ShardEngine::new(Arc::new(ruleset(rules)), ShardLimits::default());
    let mut out = Vec::new();
    let mut max_seen = EventTime::MIN;
    for h in hits {
        max_seen = max_seen.max(h.event.time);
        engine.push(h, &mut out);
        engine.advance(max_seen.minus(Span::from_secs(lateness_secs)), &mut out);
    }
    engine.advance(EventTime::MAX, &mut out);
    out
}

/// A finding as (target, group, event ids).
pub(super) fn view(f: &Finding) -> (Target, String, Vec<String>) {
    let ids = f.events.iter().map(|(e, _)| e.id.to_string()).collect();
    (f.target, f.group.to_string(), ids)
}

/// [`drive`] over the chain rules; findings as [`view`]s.
pub(super) fn run(hits: Vec<Hit>, lateness_secs: i64) -> Vec<(Target, String, Vec<String>)> {
    drive(CHAIN, hits, lateness_secs).iter().map(view).collect()
}

// Correlation indices follow load order: chain 0, burst 1, anyorder 2.
pub(super) const ORDERED: u32 = 0;
const BURST: u32 = 1;
const ANY: u32 = 2;

#[test]
fn ordered_chain_fires_once_with_every_step() {
    let got = run(
        vec![
            hit(ORDERED, 1, "alice", 0, "r1"),
            hit(ORDERED, 2, "alice", 60, "e1"),
            hit(ORDERED, 4, "alice", 120, "p1"),
        ],
        0,
    );
    assert_eq!(
        got,
        vec![(
            Target::Correlation(ORDERED),
            "alice".into(),
            vec!["r1".into(), "e1".into(), "p1".into()]
        )]
    );
}

#[test]
fn ordered_chain_needs_the_order_and_the_window() {
    // Persistence before enumeration: no chain.
    let wrong_order = vec![
        hit(ORDERED, 1, "a", 0, "r"),
        hit(ORDERED, 4, "a", 10, "p"),
        hit(ORDERED, 2, "a", 20, "e"),
    ];
    assert!(run(wrong_order, 0).is_empty());
    // Last step one second past the 10 minute window: no chain.
    let too_slow = vec![
        hit(ORDERED, 1, "a", 0, "r"),
        hit(ORDERED, 2, "a", 300, "e"),
        hit(ORDERED, 4, "a", 601, "p"),
    ];
    assert!(run(too_slow, 0).is_empty());
    let just_in = vec![
        hit(ORDERED, 1, "a", 0, "r"),
        hit(ORDERED, 2, "a", 300, "e"),
        hit(ORDERED, 4, "a", 600, "p"),
    ];
    assert_eq!(run(just_in, 0).len(), 1);
}

#[test]
fn groups_do_not_mix() {
    let got = run(
        vec![
            hit(ORDERED, 1, "a", 0, "r"),
            hit(ORDERED, 2, "b", 10, "e"),
            hit(ORDERED, 4, "a", 20, "p"),
        ],
        0,
    );
    assert!(got.is_empty());
}

#[test]
fn a_later_start_replaces_an_older_partial_chain() {
    // The read at 0 expires before the end; the read at 500 carries the chain.
    let hits = vec![
        hit(ORDERED, 1, "a", 0, "r-old"),
        hit(ORDERED, 1, "a", 500, "r-new"),
        hit(ORDERED, 2, "a", 700, "e"),
        hit(ORDERED, 4, "a", 800, "p"),
    ];
    assert_eq!(run(hits, 0)[0].2, vec!["r-new", "e", "p"]);
}

#[test]
fn event_count_fires_per_burst() {
    let hits: Vec<Hit> = (0..7)
        .map(|i| hit(BURST, 1, "a", i * 10, &format!("e{i}")))
        .collect();
    let got = run(hits, 0);
    // Seven events 10 s apart within 1 minute windows: bursts of three fire twice.
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].2, vec!["e0", "e1", "e2"]);
    assert_eq!(got[1].2, vec!["e3", "e4", "e5"]);
}

#[test]
fn temporal_fires_in_any_order() {
    let got = run(
        vec![hit(ANY, 2, "a", 0, "p"), hit(ANY, 1, "a", 100, "r")],
        0,
    );
    assert_eq!(
        got,
        vec![(
            Target::Correlation(ANY),
            "a".into(),
            vec!["p".into(), "r".into()]
        )]
    );
    assert!(
        run(
            vec![hit(ANY, 2, "a", 0, "p"), hit(ANY, 1, "a", 301, "r")],
            0
        )
        .is_empty()
    );
}

#[test]
fn duplicates_are_dropped() {
    let h = hit(BURST, 1, "a", 0, "same");
    let got = run(
        vec![h.clone(), h.clone(), h, hit(BURST, 1, "a", 5, "other")],
        0,
    );
    assert!(
        got.is_empty(),
        "three copies of one event and one other are two events, not four"
    );
}

#[test]
fn state_expires_behind_the_watermark() {
    let rules = Arc::new(ruleset(CHAIN));
    let mut engine = ShardEngine::new(rules, ShardLimits::default());
    let mut out = Vec::new();
    engine.push(hit(ORDERED, 1, "a", 0, "r"), &mut out);
    engine.advance(t(1), &mut out);
    assert_eq!(engine.live_states(), 1);
    engine.advance(t(700), &mut out);
    assert_eq!(engine.live_states(), 0);
    assert_eq!(engine.stats().expired, 1);
}

#[test]
fn state_cap_evicts_and_counts() {
    let rules = Arc::new(ruleset(CHAIN));
    let mut engine = ShardEngine::new(
        rules,
        ShardLimits {
            max_pending: 1 << 20,
            max_states: 10,
            max_state_bytes: usize::MAX,
        },
    );
    let mut out = Vec::new();
    for i in 0..100 {
        engine.push(hit(ORDERED, 1, &format!("id{i}"), i, "r"), &mut out);
        engine.advance(t(i), &mut out);
    }
    engine.advance(t(100), &mut out);
    assert!(engine.live_states() <= 10);
    assert_eq!(
        engine.stats().evicted,
        90,
        "each of the last 90 new states evicts one"
    );
}

fn scenario() -> Vec<Hit> {
    let mut v = Vec::new();
    for (g, base) in [("a", 0), ("b", 30), ("c", 45)] {
        v.push(hit(ORDERED, 1, g, base, &format!("{g}-r")));
        v.push(hit(ANY, 1, g, base, &format!("{g}-r")));
        v.push(hit(ORDERED, 2, g, base + 20, &format!("{g}-e")));
        v.push(hit(BURST, 1, g, base + 20, &format!("{g}-e")));
        v.push(hit(BURST, 1, g, base + 21, &format!("{g}-e2")));
        v.push(hit(BURST, 1, g, base + 22, &format!("{g}-e3")));
        v.push(hit(ORDERED, 4, g, base + 40, &format!("{g}-p")));
        v.push(hit(ANY, 2, g, base + 40, &format!("{g}-p")));
    }
    // Same-time events in one group: ties are broken by content, not arrival.
    v.push(hit(BURST, 1, "d", 100, "d-x"));
    v.push(hit(BURST, 1, "d", 100, "d-y"));
    v.push(hit(BURST, 1, "d", 100, "d-z"));
    v
}

proptest! {
    /// Each hit is delivered at its event time plus a random delay of at most the lateness,
    /// which is exactly "out of order within the allowed lateness".
    #[test]
    fn any_arrival_order_within_lateness_gives_the_sorted_result(
        delays in proptest::collection::vec(0i64..=60_000, 27)
    ) {
        let mut sorted = scenario();
        sorted.sort_by_key(|h| (h.event.time, h.event.key));
        let mut want = run(sorted.clone(), 60);
        prop_assert_eq!(want.len(), 10);
        let mut delivered: Vec<(i64, usize, Hit)> = sorted
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h.event.time.as_millis() + delays[i % delays.len()], i, h))
            .collect();
        delivered.sort_by_key(|(d, i, _)| (*d, *i));
        let mut got = run(delivered.into_iter().map(|(_, _, h)| h).collect(), 60);
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

const TIMED: &str = r#"
title: read
name: read
detection: {sel: {eventName: GetObject}, condition: sel}
---
title: deleted
name: deleted
detection: {sel: {eventName: DeleteAccessKey}, condition: sel}
---
title: few reads
correlation:
  type: event_count
  rules: [read]
  group-by: [userIdentity.arn]
  timespan: 1m
  condition: {lt: 3}
---
title: read then kept
correlation:
  type: temporal_ordered
  rules: [read, read]
  group-by: [userIdentity.arn]
  timespan: 1m
credtrail:
  absence: {rule: deleted, within: 30s}
  state: {max_groups: 5}
"#;

const FEW: u32 = 0;
const KEPT: u32 = 1;

fn run_timed(hits: Vec<Hit>, lateness_secs: i64) -> Vec<(Target, String, Vec<String>, i64)> {
    drive(TIMED, hits, lateness_secs)
        .iter()
        .map(|f| {
            let (target, group, ids) = view(f);
            let at = (f.time.as_millis() - t(0).as_millis()) / 1000;
            (target, group, ids, at)
        })
        .collect()
}

#[test]
fn a_window_is_decided_only_when_the_watermark_passes_its_end() {
    let rules = Arc::new(ruleset(TIMED));
    let mut engine = ShardEngine::new(rules, ShardLimits::default());
    let mut out = Vec::new();
    engine.push(hit(FEW, 1, "a", 0, "r1"), &mut out);
    engine.push(hit(FEW, 1, "a", 30, "r2"), &mut out);
    // The window is [0s, 60s]: a watermark at 60s has not passed its last instant.
    engine.advance(t(60), &mut out);
    assert!(out.is_empty(), "decided before the window closed");
    // A read at exactly 60s is inside the window and makes three: no alert.
    engine.push(hit(FEW, 1, "a", 60, "r3"), &mut out);
    engine.advance(t(61), &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(engine.stats().timers, 1);
    engine.push(hit(FEW, 1, "b", 100, "r4"), &mut out);
    engine.advance(t(160).plus(Span(1)), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].measure, Some(1.0));
    assert_eq!(
        out[0].time,
        t(160),
        "the finding's time is the window's end"
    );
}

#[test]
fn an_absence_is_never_decided_early() {
    let rules = Arc::new(ruleset(TIMED));
    let mut engine = ShardEngine::new(rules, ShardLimits::default());
    let mut out = Vec::new();
    engine.push(hit(KEPT, 1, "a", 0, "r1"), &mut out);
    engine.push(hit(KEPT, 2, "a", 10, "r2"), &mut out);
    engine.advance(t(40), &mut out);
    assert!(out.is_empty(), "the deadline is 40s: not passed yet");
    // A deletion at the deadline instant still counts as "followed by".
    engine.push(hit(KEPT, 4, "a", 40, "d"), &mut out);
    engine.advance(EventTime::MAX, &mut out);
    assert!(out.is_empty(), "{out:?}");
    let got = run_timed(
        vec![hit(KEPT, 1, "a", 0, "r1"), hit(KEPT, 2, "a", 10, "r2")],
        0,
    );
    assert_eq!(
        got,
        vec![(
            Target::Correlation(KEPT),
            "a".into(),
            vec!["r1".into(), "r2".into()],
            40
        )]
    );
}

#[test]
fn a_rule_budget_evicts_its_own_states_and_counts_them() {
    let rules = Arc::new(ruleset(TIMED));
    let mut engine = ShardEngine::new(rules, ShardLimits::default());
    let mut out = Vec::new();
    for i in 0..8 {
        engine.push(hit(KEPT, 1, &format!("id{i}"), i, "r"), &mut out);
        engine.push(hit(FEW, 1, &format!("id{i}"), i, "r"), &mut out);
    }
    engine.advance(t(9), &mut out);
    assert_eq!(
        engine.stats().budget_evicted,
        3,
        "max_groups 5, eight identities"
    );
    let by = engine.states_by_target();
    assert_eq!(by.get(&KEPT), Some(&5));
    assert_eq!(
        by.get(&FEW),
        Some(&8),
        "the other rule keeps its own budget"
    );
}

fn timed_scenario() -> Vec<Hit> {
    let mut v = Vec::new();
    for (g, base) in [("a", 0), ("b", 15), ("c", 40)] {
        v.push(hit(FEW, 1, g, base, &format!("{g}-1")));
        v.push(hit(KEPT, 1 | 2, g, base, &format!("{g}-1")));
        v.push(hit(FEW, 1, g, base + 20, &format!("{g}-2")));
        v.push(hit(KEPT, 1 | 2, g, base + 20, &format!("{g}-2")));
    }
    // c's key is deleted 25s after its chain completed; b's at the 30s deadline; a keeps it.
    v.push(hit(KEPT, 4, "c", 85, "c-del"));
    v.push(hit(KEPT, 4, "b", 65, "b-del"));
    v
}

proptest! {
    /// Timers (window ends, absence deadlines) are decided in event-time order whatever the
    /// delivery order within the lateness.
    #[test]
    fn timers_give_the_sorted_result_for_any_arrival_order(
        delays in proptest::collection::vec(0i64..=30_000, 14)
    ) {
        let mut sorted = timed_scenario();
        sorted.sort_by_key(|h| (h.event.time, h.event.key));
        let mut want = run_timed(sorted.clone(), 30);
        prop_assert_eq!(want.len(), 4, "{:?}", want);
        let mut delivered: Vec<(i64, usize, Hit)> = sorted
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h.event.time.as_millis() + delays[i % delays.len()], i, h))
            .collect();
        delivered.sort_by_key(|(d, i, _)| (*d, *i));
        let mut got = run_timed(delivered.into_iter().map(|(_, _, h)| h).collect(), 30);
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn oldest_positions_cover_pending_hits_and_live_state_and_forget_fired_chains() {
    let rules = Arc::new(ruleset(CHAIN));
    let mut engine = ShardEngine::new(rules, ShardLimits::default());
    let mut out = Vec::new();
    // Chain 0 for dana: read at 10, enum at 20 (live state once processed).
    engine.push(hit(0, 1, "dana", 10, "a"), &mut out);
    engine.push(hit(0, 2, "dana", 20, "b"), &mut out);
    let mut held = std::collections::HashMap::new();
    engine.oldest_positions(&mut held);
    assert_eq!(held.get(&0), Some(&10), "pending hits hold their offsets");
    engine.advance(t(25), &mut out);
    held.clear();
    engine.oldest_positions(&mut held);
    assert_eq!(
        held.get(&0),
        Some(&10),
        "live state holds the chain's first event"
    );
    // The chain completes: its events are no longer held by the shard.
    engine.push(hit(0, 4, "dana", 30, "c"), &mut out);
    engine.advance(t(31), &mut out);
    assert_eq!(out.len(), 1);
    held.clear();
    engine.oldest_positions(&mut held);
    assert_eq!(held.get(&0), None);
}

#[test]
fn a_reload_keeps_the_chains_and_buffered_hits_of_unchanged_rules_and_drops_the_changed() {
    let old = Arc::new(ruleset(CHAIN));
    // A new correlation before the chain shifts every index; `anyorder` changes its window.
    let changed = CHAIN
        .replace(
            "title: chain\n",
            "title: reads\ncorrelation:\n  type: event_count\n  rules: [read]\n  group-by: [userIdentity.arn]\n  timespan: 1m\n  condition: {gte: 9}\n---\ntitle: chain\n",
        )
        .replace("timespan: 5m", "timespan: 6m");
    let new = Arc::new(ruleset(&changed));
    let map = crate::matcher::TargetMap::between(&old, &new);
    let chain = match map.map(Target::Correlation(0)) {
        Some(Target::Correlation(c)) => c,
        other => panic!("the unchanged chain must continue: {other:?}"),
    };
    assert_ne!(chain, 0, "the inserted rule moved it");
    assert_eq!(map.map(Target::Correlation(2)), None, "anyorder changed");
    let anyorder_new = (0..new.correlations.len() as u32)
        .find(|&c| new.meta[new.correlations[c as usize].rule as usize].title == "anyorder")
        .unwrap();

    let mut engine = ShardEngine::new(old, ShardLimits::default());
    let mut out = Vec::new();
    engine.push(hit(0, 1, "dana", 10, "a"), &mut out);
    engine.push(hit(0, 2, "dana", 20, "b"), &mut out);
    engine.push(hit(2, 1, "dana", 21, "x"), &mut out);
    engine.advance(t(25), &mut out);
    // Buffered, not yet processed when the reload comes.
    engine.push(hit(0, 1, "erin", 26, "e1"), &mut out);
    assert!(out.is_empty());
    let (kept, dropped) = engine.reload(new, &map);
    assert_eq!(
        (kept, dropped),
        (1, 1),
        "dana's chain kept, her anyorder state dropped"
    );
    assert_eq!(engine.stats().reload_dropped_states, 1);

    engine.push(hit(chain, 4, "dana", 30, "c"), &mut out);
    engine.push(hit(anyorder_new, 2, "dana", 31, "y"), &mut out);
    engine.push(hit(chain, 2, "erin", 32, "e2"), &mut out);
    engine.push(hit(chain, 4, "erin", 33, "e3"), &mut out);
    engine.advance(t(40), &mut out);
    let got: Vec<(Target, String, Vec<String>)> = out
        .iter()
        .map(|f| {
            let ids = f.events.iter().map(|(e, _)| e.id.to_string()).collect();
            (f.target, f.group.to_string(), ids)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Target::Correlation(chain),
                "dana".into(),
                vec!["a".into(), "b".into(), "c".into()]
            ),
            (
                Target::Correlation(chain),
                "erin".into(),
                vec!["e1".into(), "e2".into(), "e3".into()]
            ),
        ],
        "anyorder restarted empty: one step is not enough"
    );
}
