//! The changelog: what a writer's records leave in a compacted topic rebuilds the partition's
//! state, and a reader refuses a table it cannot trust.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::correlate::Finding;
use crate::correlate::engine::ShardEngine;
use crate::correlate::engine::snapshot_tests::{engine, events, feed, ordered, uninterrupted};

/// What Kafka's compaction may leave of a log: the latest record of each key, tombstones
/// dropped or kept, in the order of their offsets.
fn compacted(log: &[Record], drop_tombstones: bool) -> Vec<Record> {
    let mut latest: BTreeMap<&[u8], usize> = BTreeMap::new();
    for (i, (k, _)) in log.iter().enumerate() {
        latest.insert(k, i);
    }
    let mut keep: Vec<usize> = latest.into_values().collect();
    keep.sort_unstable();
    keep.into_iter()
        .map(|i| log[i].clone())
        .filter(|(_, v)| !(drop_tombstones && v.is_none()))
        .collect()
}

/// One barrier: the shard's changes through the book, then the marker.
fn barrier(shard: &mut ShardEngine, book: &mut Book, end: u64, log: &mut Vec<Record>) {
    let changes = shard.take_changes().expect("tracking is on");
    book.records(changes.whole, &changes.states, &changes.ended, log);
    let marker = Marker {
        end,
        pending: shard.waiting_hits(),
        watermark: shard.watermark(),
        live: book.live(),
        ..Marker::default()
    };
    log.push((MARKER_KEY.to_vec(), Some(marker.to_bytes())));
}

fn read(log: &[Record]) -> Replica {
    let mut r = Replica::new(u64::MAX);
    for (k, v) in log {
        r.apply(k, v.as_deref());
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A shard whose changes went to the changelog every few events, restored from what
    /// compaction left of it, decides what the shard that never stopped decides.
    #[test]
    fn a_partition_restored_from_its_compacted_changelog_decides_what_the_uninterrupted_one_does(
        events in events(), cut in any::<prop::sample::Index>(), every in 1usize..7,
        drop_tombstones in any::<bool>(),
    ) {
        let (rules, ts, expected) = uninterrupted(&events);
        let cut = cut.index(events.len() + 1);
        let mut first = engine(&rules);
        first.track_changes();
        let mut book = Book::default();
        let mut log = Vec::new();
        let mut got: Vec<Finding> = Vec::new();
        let mut at = 0;
        while at < cut {
            let next = (at + every).min(cut);
            feed(&mut first, &rules, &events, &ts, at..next, &mut got);
            barrier(&mut first, &mut book, next as u64, &mut log);
            at = next;
        }
        if cut == 0 {
            barrier(&mut first, &mut book, 0, &mut log);
        }
        let restored = read(&compacted(&log, drop_tombstones))
            .restore(&rules, 0)
            .expect("a changelog ending in its marker restores");
        prop_assert_eq!(restored.marker.end, cut as u64);
        let mut second = engine(&rules);
        second.import(restored.snapshot).expect("fits");
        second.advance(restored.marker.watermark, &mut got);
        feed(&mut second, &rules, &events, &ts, cut..events.len(), &mut got);
        second.advance(crate::time::EventTime::MAX, &mut got);
        prop_assert_eq!(ordered(got), expected);
    }
}

/// A shard with a few states, its first barrier written.
fn written() -> (
    std::sync::Arc<crate::matcher::RuleSet>,
    ShardEngine,
    Book,
    Vec<Record>,
) {
    let evs = [(0, 0, 0, 0), (1, 0, 100, 1), (2, 1, 100, 0), (1, 1, 100, 1)];
    let (rules, ts, _) = uninterrupted(&evs);
    let mut shard = engine(&rules);
    shard.track_changes();
    let mut out = Vec::new();
    feed(&mut shard, &rules, &evs, &ts, 0..evs.len(), &mut out);
    let mut book = Book::default();
    let mut log = Vec::new();
    barrier(&mut shard, &mut book, 4, &mut log);
    assert!(book.live() > 0, "the events leave states");
    (rules, shard, book, log)
}

#[test]
fn a_changelog_that_does_not_end_in_its_marker_is_not_restored() {
    let (rules, _, _, mut log) = written();
    assert!(read(&log).restore(&rules, 0).is_ok());
    let (k, v) = log[0].clone();
    log.push((k, v));
    assert_eq!(
        read(&log).restore(&rules, 0).unwrap_err(),
        Unusable::AfterMarker(1)
    );
}

#[test]
fn a_changelog_that_lost_a_state_is_not_restored() {
    let (rules, _, book, mut log) = written();
    log.remove(0);
    assert_eq!(
        read(&log).restore(&rules, 0).unwrap_err(),
        Unusable::Count {
            marker: book.live(),
            found: book.live() - 1
        }
    );
}

#[test]
fn a_changelog_without_marker_or_of_another_partition_is_not_restored() {
    let (rules, _, _, log) = written();
    let no_marker: Vec<Record> = log[..log.len() - 1].to_vec();
    assert_eq!(
        read(&no_marker).restore(&rules, 0).unwrap_err(),
        Unusable::NoMarker
    );
    assert!(matches!(
        read(&log).restore(&rules, 3).unwrap_err(),
        Unusable::State { reason, .. } if reason.contains("another partition")
    ));
}

#[test]
fn hostile_records_make_a_changelog_unusable_not_a_panic() {
    let (rules, _, _, log) = written();
    // A state record that is not one.
    let mut bad = log.clone();
    bad[0].1 = Some(b"\x01garbage".to_vec());
    assert!(matches!(
        read(&bad).restore(&rules, 0).unwrap_err(),
        Unusable::State { .. }
    ));
    // A key of no kind the writer writes.
    let mut bad = vec![(b"zz".to_vec(), Some(vec![1]))];
    bad.extend(log.clone());
    assert!(matches!(
        read(&bad).restore(&rules, 0).unwrap_err(),
        Unusable::UnknownKey(_)
    ));
    // A marker that is not one.
    let mut bad = log.clone();
    bad.push((MARKER_KEY.to_vec(), Some(b"\x07".to_vec())));
    assert!(matches!(
        read(&bad).restore(&rules, 0).unwrap_err(),
        Unusable::Marker(_)
    ));
    // More state than the budget: unusable, and its keys still known for the writer.
    let mut r = Replica::new(10);
    for (k, v) in &log {
        r.apply(k, v.as_deref());
    }
    assert_eq!(r.keys().len(), read(&log).keys().len());
    assert_eq!(r.restore(&rules, 0).unwrap_err(), Unusable::TooLarge(10));
    // Fences are not records.
    let mut fenced = log.clone();
    fenced.push((FENCE_KEY.to_vec(), Some(b"x".to_vec())));
    assert!(read(&fenced).restore(&rules, 0).is_ok());
}

/// A writer that found keys on assignment (a replay rebuilt the state instead of restoring
/// it) tombstones those it does not hold at its first, whole, barrier.
#[test]
fn a_whole_barrier_tombstones_the_keys_the_writer_does_not_hold() {
    let (rules, mut shard, book, log) = written();
    let stale = (7u32, Box::<str>::from("nobody"));
    let mut keys = read(&log).keys();
    keys.push(stale.clone());
    let mut fresh = Book::with_keys(keys);
    let changes = shard.export(|_, _| true);
    let mut out = Vec::new();
    fresh.records(true, &changes.states, &[], &mut out);
    assert_eq!(out[0], (state_key(stale.0, &stale.1), None));
    assert_eq!(fresh.live(), book.live());
    let _ = (&rules, shard.take_changes());
}

#[test]
fn state_keys_read_back() {
    let k = state_key(42, "arn:aws:iam::1:user/a\u{1f}x");
    assert_eq!(
        parse_state_key(&k),
        Some((42, "arn:aws:iam::1:user/a\u{1f}x".into()))
    );
    assert_eq!(parse_state_key(b"s\x00\x00"), None);
    assert_eq!(parse_state_key(MARKER_KEY), None);
}

#[test]
fn a_marker_is_due_when_a_restore_would_find_something_else_and_only_then() {
    let m = Marker {
        end: 7,
        live: 2,
        watermark: crate::time::EventTime::from_millis(1_000),
        ..Marker::default()
    };
    let mut last = LastMarkers::default();
    let first = last.due(3, &m).expect("a partition's first marker");
    last.written(3, first);
    assert_eq!(last.due(3, &m), None, "nothing changed");
    let later = Marker {
        watermark: crate::time::EventTime::from_millis(9_000),
        ..m.clone()
    };
    assert_eq!(last.due(3, &later), None, "event time alone moved");
    for changed in [
        Marker {
            end: 8,
            ..m.clone()
        },
        Marker {
            live: 1,
            ..m.clone()
        },
        Marker {
            clock: crate::time::EventTime::from_millis(5),
            ..m.clone()
        },
        Marker {
            stamps: vec![("in".into(), 0, 5)],
            ..m.clone()
        },
    ] {
        assert!(last.due(3, &changed).is_some(), "{changed:?}");
    }
    last.records_written(3);
    let again = last
        .due(3, &m)
        .expect("state records written since the marker");
    assert_eq!(again, first, "the same content, written again");
    last.written(3, again);
    assert_eq!(last.due(3, &m), None);
    assert!(last.due(4, &m).is_some(), "another partition");
    last.forget(3);
    assert!(last.due(3, &m).is_some(), "a partition owned again");
}

/// Regression (the flaky `three_members_give_the_alerts_of_replay`): a chain's hits waited
/// for event time at one barrier; event time passed them and the chain alerted, with the
/// alert unacknowledged at the next barrier (no marker); at the barrier after, nothing had
/// been read, and the writer, which compared only ends, wrote no marker. The next owner
/// restored the hits from the stale marker and alerted again.
#[test]
fn waiting_hits_decided_at_an_unsettled_barrier_get_a_marker_at_the_next_one() {
    // One identity: read, enumerate, persist a second apart: all wait for event time.
    let evs = [(0, 0, 0, 0), (0, 1, 1, 0), (0, 2, 1, 0)];
    let (rules, ts, expected) = uninterrupted(&evs);
    assert!(!expected.is_empty(), "the chain alerts");
    let mut shard = engine(&rules);
    shard.track_changes();
    let mut got = Vec::new();
    feed(&mut shard, &rules, &evs, &ts, 0..evs.len(), &mut got);
    assert!(got.is_empty() && !shard.waiting_hits().is_empty());
    let (mut book, mut log, mut last) = (Book::default(), Vec::new(), LastMarkers::default());
    let end = evs.len() as u64;
    let marker_of = |shard: &ShardEngine, book: &Book| Marker {
        end,
        pending: shard.waiting_hits(),
        watermark: shard.watermark(),
        live: book.live(),
        ..Marker::default()
    };
    // Barrier 1: the hits wait; its marker is written.
    let c = shard.take_changes().expect("tracking is on");
    book.records(c.whole, &c.states, &c.ended, &mut log);
    let first = marker_of(&shard, &book);
    let digest = last.due(0, &first).expect("the first marker");
    last.written(0, digest);
    log.push((MARKER_KEY.to_vec(), Some(first.to_bytes())));
    // Event time passes them: the chain alerts.
    shard.advance(crate::time::EventTime::MAX, &mut got);
    assert_eq!(ordered(got.clone()), expected);
    // Barrier 2: the alert is in flight, so no marker; its records (if any) are written.
    let c = shard.take_changes().expect("tracking is on");
    let before = log.len();
    book.records(c.whole, &c.states, &c.ended, &mut log);
    if log.len() > before {
        last.records_written(0);
    }
    // Barrier 3: nothing read since (same end), the alert acknowledged: the marker is due.
    let c = shard.take_changes().expect("tracking is on");
    book.records(c.whole, &c.states, &c.ended, &mut log);
    let third = marker_of(&shard, &book);
    assert_eq!(third.end, first.end, "nothing was read");
    assert!(
        last.due(0, &third).is_some(),
        "the decided hits must leave the marker"
    );
    // Without it, the next owner would restore the hits of the first marker and alert again.
    let stale = read(&compacted(&log, false))
        .restore(&rules, 0)
        .expect("ends in the first marker");
    assert_eq!(stale.snapshot.pending.len(), first.pending.len());
    let mut next = engine(&rules);
    next.import(stale.snapshot).expect("fits");
    let mut again = Vec::new();
    next.advance(crate::time::EventTime::MAX, &mut again);
    assert_eq!(
        ordered(again),
        expected,
        "the stale marker decides the chain again"
    );
    log.push((MARKER_KEY.to_vec(), Some(third.to_bytes())));
    // The next owner restores the state after the alert and decides nothing again.
    let restored = read(&compacted(&log, false))
        .restore(&rules, 0)
        .expect("ends in its marker");
    let mut next = engine(&rules);
    next.import(restored.snapshot).expect("fits");
    let mut again = Vec::new();
    next.advance(crate::time::EventTime::MAX, &mut again);
    assert!(again.is_empty(), "decided again: {again:?}");
}
