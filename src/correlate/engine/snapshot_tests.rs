//! Snapshots: a shard stopped anywhere, written out, read back into a fresh shard, decides
//! what the shard that never stopped decides; so does one rebuilt from its changelog.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::{ImportError, Snapshot, StateImage};
use crate::correlate::engine::ShardEngine;
use crate::correlate::{EventRef, Finding, Hit, ShardLimits, Target};
use crate::matcher::RuleSet;
use crate::matcher::tests::ruleset;
use crate::time::{EventTime, Span};
use crate::vocab::{DetailKind, EventDetails, Position, TouchKind};

/// One rule of each machine: an ordered chain, an unordered one, a sliding count, a distinct
/// count, and a count decided when its window closes.
pub(crate) const RULES: &str = r#"
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
title: pair
correlation:
  type: temporal
  rules: [read, persist]
  group-by: [userIdentity.arn]
  timespan: 5m
---
title: burst
correlation:
  type: event_count
  rules: [enum]
  group-by: [userIdentity.arn]
  timespan: 15m
  condition: {gte: 3}
---
title: spread
correlation:
  type: value_count
  rules: [read]
  group-by: [userIdentity.arn]
  timespan: 30m
  condition: {field: requestParameters.secretId, gte: 2}
---
title: quiet
correlation:
  type: event_count
  rules: [persist]
  group-by: [userIdentity.arn]
  timespan: 20m
  condition: {lte: 1}
"#;

/// (group, detection, seconds since the previous event, value).
type Ev = (u8, u8, u16, u8);

/// The hits of event number `n` for every correlation its detection is a stage of.
pub(crate) fn hits(
    rules: &RuleSet,
    n: usize,
    (group, det, _, value): Ev,
    time: EventTime,
) -> Vec<Hit> {
    let id = format!("ev-{n}");
    let details = EventDetails::new([(DetailKind::Operation, "GetSecretValue")]).map(Arc::new);
    let event = EventRef {
        time,
        key: crate::decode::event_key(&id),
        pos: Position {
            source: 0,
            offset: n as u64,
        },
        id: id.into(),
        parts: None,
        actor: None,
        details,
    };
    rules
        .correlations
        .iter()
        .enumerate()
        .filter_map(|(c, corr)| {
            let stages = corr
                .stages
                .iter()
                .enumerate()
                .filter(|(_, d)| **d == u32::from(det))
                .fold(0u64, |m, (k, _)| m | 1 << k);
            (stages != 0).then(|| Hit {
                target: Target::Correlation(c as u32),
                stages,
                group: format!("arn:aws:iam::1:user/u{group}").into(),
                value: Some(format!("prod/s{value}").into()),
                shard_key: 0,
                event: event.clone(),
                touched: vec![(TouchKind::Secret, format!("prod/s{value}").into())],
            })
        })
        .collect()
}

/// Feeds events `from..to` (times in `times`), each followed by a watermark 30 s behind it.
pub(crate) fn feed(
    engine: &mut ShardEngine,
    rules: &RuleSet,
    events: &[Ev],
    times: &[EventTime],
    range: std::ops::Range<usize>,
    out: &mut Vec<Finding>,
) {
    for n in range {
        for h in hits(rules, n, events[n], times[n]) {
            engine.push(h, out);
        }
        engine.advance(times[n].plus(Span(-30_000_000_000)), out);
    }
}

pub(crate) fn times(events: &[Ev]) -> Vec<EventTime> {
    let mut t = EventTime::from_millis(1_700_000_000_000);
    events
        .iter()
        .map(|e| {
            t = t.plus(Span(i64::from(e.2) * 1_000_000_000));
            t
        })
        .collect()
}

pub(crate) fn engine(rules: &Arc<RuleSet>) -> ShardEngine {
    ShardEngine::new(Arc::clone(rules), ShardLimits::default())
}

/// Through JSON, as a snapshot travels.
fn through_json(snap: &Snapshot) -> Snapshot {
    let bytes = serde_json::to_vec(snap).expect("a snapshot serialises");
    serde_json::from_slice(&bytes).expect("a snapshot reads back")
}

/// The rules, the events' times, and what a shard fed every event decides to the end of time.
pub(crate) fn uninterrupted(events: &[Ev]) -> (Arc<RuleSet>, Vec<EventTime>, Vec<Finding>) {
    let rules = Arc::new(ruleset(RULES));
    let ts = times(events);
    let mut whole = engine(&rules);
    let mut expected = Vec::new();
    feed(
        &mut whole,
        &rules,
        events,
        &ts,
        0..events.len(),
        &mut expected,
    );
    whole.advance(EventTime::MAX, &mut expected);
    (rules, ts, ordered(expected))
}

/// Findings in the output's order. A shard decides the timers of one instant in the order of
/// its state ids, which are keyed per shard (see `StateIds`); the output orders findings by
/// their contents ([`Finding::sort_key`]), so that is the order that counts.
pub(crate) fn ordered(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    findings
}

pub(crate) fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((0u8..5, 0u8..3, 0u16..200, 0u8..3), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A shard snapshotted after any event and restored into a fresh one decides exactly
    /// what the shard that went on decides: same findings, same order, same evidence.
    #[test]
    fn a_restored_shard_decides_what_the_uninterrupted_one_does(
        events in events(), cut in any::<prop::sample::Index>()
    ) {
        let (rules, ts, expected) = uninterrupted(&events);
        let cut = cut.index(events.len() + 1);

        let mut first = engine(&rules);
        let mut got = Vec::new();
        feed(&mut first, &rules, &events, &ts, 0..cut, &mut got);
        let snap = through_json(&first.export(|_, _| true));
        drop(first);
        let mut second = engine(&rules);
        second.import(snap).expect("the snapshot fits its own rules");
        feed(&mut second, &rules, &events, &ts, cut..events.len(), &mut got);
        second.advance(EventTime::MAX, &mut got);
        prop_assert_eq!(ordered(got), expected);
    }

    /// The same through a changelog: changes taken every few events and applied to a table
    /// (ends as tombstones) rebuild the states a restore needs.
    #[test]
    fn a_shard_rebuilt_from_its_changelog_decides_what_the_uninterrupted_one_does(
        events in events(), cut in any::<prop::sample::Index>(), every in 1usize..7
    ) {
        let (rules, ts, expected) = uninterrupted(&events);
        let cut = cut.index(events.len() + 1);

        let mut first = engine(&rules);
        first.track_changes();
        let mut table: BTreeMap<(u32, Box<str>), StateImage> = BTreeMap::new();
        let mut got = Vec::new();
        let mut at = 0;
        while at < cut {
            let next = (at + every).min(cut);
            feed(&mut first, &rules, &events, &ts, at..next, &mut got);
            first.take_changes().expect("tracking is on").apply_to(&mut table);
            at = next;
        }
        let rest = first.export(|_, _| true);
        prop_assert_eq!(table.len(), rest.states.len());
        let snap = Snapshot { states: table.into_values().collect(), ..rest };
        let mut second = engine(&rules);
        second.import(through_json(&snap)).expect("fits");
        feed(&mut second, &rules, &events, &ts, cut..events.len(), &mut got);
        second.advance(EventTime::MAX, &mut got);
        prop_assert_eq!(ordered(got), expected);
    }
}

/// A snapshot taken with one group's states selected holds that group only, and restoring the
/// parts of two selections side by side gives the whole.
#[test]
fn an_export_takes_only_what_its_predicate_selects() {
    let rules = Arc::new(ruleset(RULES));
    let events: Vec<Ev> = (0..40).map(|i| (i % 4, i % 3, 20, i % 2)).collect();
    let ts = times(&events);
    let mut e = engine(&rules);
    let mut out = Vec::new();
    feed(&mut e, &rules, &events, &ts, 0..events.len(), &mut out);
    let odd = |_: Target, g: &str| g.ends_with('1') || g.ends_with('3');
    let a = e.export(odd);
    let b = e.export(|t, g| !odd(t, g));
    assert!(!a.states.is_empty() && !b.states.is_empty());
    assert!(
        a.states
            .iter()
            .all(|s| odd(Target::Correlation(s.target), &s.group))
    );
    let all = e.export(|_, _| true);
    assert_eq!(a.states.len() + b.states.len(), all.states.len());
    assert_eq!(a.pending.len() + b.pending.len(), all.pending.len());
    let mut f = engine(&rules);
    let (na, nb) = (a.states.len(), b.states.len());
    assert_eq!(f.import(a), Ok((na, 0)));
    assert_eq!(f.import(b), Ok((nb, 0)));
    // Importing a part again adopts nothing: the states are held.
    assert_eq!(f.import(e.export(odd)), Ok((0, na)));
    assert_eq!(f.live_states(), e.live_states());
}

/// A snapshot of other rules is refused whole, naming the state, before any is adopted.
#[test]
fn a_snapshot_that_does_not_fit_the_rules_is_refused_whole() {
    let rules = Arc::new(ruleset(RULES));
    let events: Vec<Ev> = (0..12).map(|i| (i % 2, i % 3, 10, 0)).collect();
    let ts = times(&events);
    let mut e = engine(&rules);
    let mut out = Vec::new();
    feed(&mut e, &rules, &events, &ts, 0..events.len(), &mut out);
    let snap = e.export(|_, _| true);
    assert!(snap.states.len() > 2);

    // A state of a rule the reader does not have.
    let mut text = serde_json::to_value(&snap).expect("json");
    text["states"][1]["target"] = 99.into();
    let far: Snapshot = serde_json::from_value(text).expect("reads");
    let mut f = engine(&rules);
    let err = f.import(far).expect_err("refused");
    assert!(
        matches!(err, ImportError::NoSuchTarget { target: 99, .. }),
        "{err}"
    );
    assert_eq!(f.live_states(), 0, "nothing adopted");

    // The chain's state given to the pair rule: an ordered machine where a temporal one lives.
    let chain = snap
        .states
        .iter()
        .position(|s| s.target == 0)
        .expect("a chain state");
    let mut text = serde_json::to_value(&snap).expect("json");
    text["states"][chain]["target"] = 1.into();
    let swapped: Snapshot = serde_json::from_value(text).expect("reads");
    let err = f.import(swapped).expect_err("refused");
    assert!(matches!(err, ImportError::Shape { target: 1, .. }), "{err}");
    assert!(
        err.to_string().contains("u0") || err.to_string().contains("u1"),
        "{err}"
    );
    assert_eq!(f.live_states(), 0);

    // Details whose offsets do not fit their text cannot be written: they are read back
    // through their bounded constructor, and unknown fields are refused.
    let mut text = serde_json::to_value(&snap).expect("json");
    text["states"][0]["extra"] = 1.into();
    assert!(serde_json::from_value::<Snapshot>(text).is_err());
}

/// State records round-trip through their compact form; a record of another version, an
/// empty one or a cut one is refused with the reason.
#[test]
fn state_records_read_back_and_refuse_what_they_cannot_read() {
    let rules = Arc::new(ruleset(RULES));
    let events: Vec<Ev> = (0..12).map(|i| (i % 2, i % 3, 10, 0)).collect();
    let ts = times(&events);
    let mut e = engine(&rules);
    let mut out = Vec::new();
    feed(&mut e, &rules, &events, &ts, 0..events.len(), &mut out);
    let snap = e.export(|_, _| true);
    for s in &snap.states {
        let bytes = s.to_bytes();
        let back = StateImage::from_bytes(&bytes).expect("reads back");
        assert_eq!(back.to_bytes(), bytes);
        let cut = StateImage::from_bytes(&bytes[..bytes.len() / 2]).expect_err("cut");
        assert!(cut.to_string().starts_with("not a state record"), "{cut}");
    }
    let mut other = snap.states[0].to_bytes();
    other[0] = 9;
    let err = StateImage::from_bytes(&other).expect_err("version");
    assert!(err.to_string().contains("version 9"), "{err}");
    assert!(StateImage::from_bytes(&[]).is_err());
}

/// Tracking counts ends up to a state budget's worth; past it, the next changes are whole.
#[test]
fn changes_past_the_tracking_bound_come_whole() {
    let rules = Arc::new(ruleset(RULES));
    let limits = ShardLimits {
        max_states: 8,
        ..ShardLimits::default()
    };
    let mut e = ShardEngine::new(Arc::clone(&rules), limits);
    e.track_changes();
    assert!(
        !e.take_changes().expect("on").whole,
        "an empty shard's first changes are not whole: nothing happened yet"
    );
    let mut out = Vec::new();
    // 40 groups, one event each, far apart: every state expires, more ends than the budget.
    let events: Vec<Ev> = (0..40).map(|i| (i, 0, 3600, 0)).collect();
    let ts = times(&events);
    feed(&mut e, &rules, &events, &ts, 0..events.len(), &mut out);
    let changes = e.take_changes().expect("on");
    assert!(changes.whole);
    assert!(changes.ended.is_empty());
    assert_eq!(changes.states.len(), e.live_states());
    let small = e.take_changes().expect("on");
    assert!(!small.whole && small.states.is_empty() && small.ended.is_empty());
}

/// What a changelog's reader restored is in the changelog already: adopting it is no change
/// (a regression: the first barrier after a restore wrote every restored state again). A
/// revoked partition's states leave untracked: its next owner keeps its changelog, and a
/// tombstone written here would delete what a restore brings back.
#[test]
fn imported_and_forgotten_states_are_not_changes() {
    let (rules, ts, _) = uninterrupted(&[(0, 0, 0, 0), (1, 0, 100, 1), (2, 1, 100, 0)]);
    let events = [(0, 0, 0, 0), (1, 0, 100, 1), (2, 1, 100, 0)];
    let mut first = engine(&rules);
    let mut out = Vec::new();
    feed(&mut first, &rules, &events, &ts, 0..events.len(), &mut out);
    let snap = first.export(|_, _| true);
    let n = snap.states.len();
    assert!(n > 0);
    let mut second = engine(&rules);
    second.track_changes();
    second.import(snap).expect("fits");
    let c = second.take_changes().expect("on");
    assert!(c.states.is_empty() && c.ended.is_empty() && !c.whole);
    assert_eq!(second.forget(|_, _| true), n);
    assert_eq!(second.live_states(), 0);
    let c = second.take_changes().expect("on");
    assert!(c.states.is_empty() && c.ended.is_empty(), "{c:?}");
}
