use proptest::prelude::*;

use super::*;

fn end(source: u32, end: u64) -> SequencedEnd {
    SequencedEnd {
        source,
        end,
        decided: end,
        clock: EventTime(1_000),
        hold: None,
    }
}

fn offsets(points: &[CommitPoint]) -> Vec<(u32, u64)> {
    points.iter().map(|p| (p.source, p.offset)).collect()
}

fn ledger(sources: &[u32]) -> Ledger {
    let mut l = Ledger::new();
    for s in sources {
        l.assign(*s, None, None);
    }
    l
}

#[test]
fn metadata_round_trips_and_rejects_what_is_not_ours() {
    let r = Resume {
        end: 42,
        clock: Some(EventTime(1_700_000_000_000_000_000)),
        late: vec![7, 9],
        suppress: vec![0xdead_beef, u64::MAX],
    };
    let text = r.encode();
    assert!(text.len() < 200, "{text}");
    assert_eq!(Resume::decode(&text), Ok(Some(r)));
    assert_eq!(Resume::decode(""), Ok(None));
    assert!(Resume::decode("other-tool v1").is_err());
    assert!(
        Resume::decode("ct1 l=1")
            .unwrap_err()
            .contains("missing e=")
    );
    assert!(Resume::decode("ct1 e=x").is_err());
}

#[test]
fn the_commit_is_the_oldest_of_sequenced_end_shard_holds_dead_letters_and_pending_alerts() {
    let mut l = ledger(&[0, 1]);
    let holds = HashMap::from([(0, 50)]);
    assert_eq!(
        offsets(&l.commit_points(&[end(0, 100), end(1, 80)], &holds)),
        vec![(0, 50), (1, 80)]
    );
    l.dead_letter_sent(1, 85);
    let u = l.decided(1, spans_of([(0, 60), (1, 90)]));
    assert_eq!(
        offsets(&l.commit_points(&[end(0, 100), end(1, 95)], &HashMap::new())),
        vec![(0, 60), (1, 85)]
    );
    l.dead_letter_acked(1, 85);
    l.delivered(u);
    // Delivered and wholly before the sequenced ends: nothing holds any more.
    assert_eq!(
        offsets(&l.commit_points(&[end(0, 100), end(1, 95)], &HashMap::new())),
        vec![(0, 100), (1, 95)]
    );
    assert_eq!(l.units(), 0, "a unit no replay can reach is forgotten");
}

/// Bug: hits and credential links waiting in the sequencer's resolver for event time were
/// sequenced, so the commit passed them; a crash then lost them (the shards had never seen
/// them, and the replay started after them).
#[test]
fn what_the_sequencer_still_holds_pulls_the_commit_back() {
    let mut l = ledger(&[0, 1]);
    let ends = [
        SequencedEnd {
            hold: Some(30),
            ..end(0, 100)
        },
        end(1, 80),
    ];
    assert_eq!(
        offsets(&l.commit_points(&ends, &HashMap::from([(0, 50)]))),
        vec![(0, 30), (1, 80)]
    );
}

#[test]
fn a_delivered_alert_straddling_the_commit_pulls_it_back_in_every_partition_it_touches() {
    let mut l = ledger(&[0, 1]);
    // The alert has events at 10 and 40 in partition 0 and at 5 in partition 1.
    let u = l.decided(7, spans_of([(0, 10), (0, 40), (1, 5)]));
    l.delivered(u);
    // Live state at 20 in partition 0 alone would commit 20: a replay from 20 would see the
    // event at 40 without the one at 10. The fixpoint pulls 0 back to 10 and 1 back to 5.
    let holds = HashMap::from([(0, 20)]);
    let points = l.commit_points(&[end(0, 100), end(1, 100)], &holds);
    assert_eq!(offsets(&points), vec![(0, 10), (1, 5)]);
    // The alert will be decided again by a replay: its id travels in both partitions' metadata.
    assert!(points.iter().all(|p| p.resume.suppress == vec![7]));
}

#[test]
fn commits_never_go_back() {
    let mut l = ledger(&[0]);
    assert_eq!(
        offsets(&l.commit_points(&[end(0, 30)], &HashMap::new())),
        vec![(0, 30)]
    );
    let holds = HashMap::from([(0, 12)]);
    assert_eq!(
        offsets(&l.commit_points(&[end(0, 40)], &holds)),
        vec![(0, 30)]
    );
}

#[test]
fn restored_ids_are_consumed_once_and_carried_until_the_replay_range_is_passed() {
    let mut l = Ledger::new();
    let r = Resume {
        end: 50,
        clock: None,
        late: vec![20],
        suppress: vec![1, 2],
    };
    l.assign(0, Some(10), Some(&r));
    let spans = spans_of([(0, 15)]);
    assert!(l.take_restored(1, &spans));
    assert!(
        !l.take_restored(1, &spans),
        "each restored id suppresses once"
    );
    let u = l.decided(1, spans);
    l.delivered(u);
    let holds = HashMap::from([(0, 12)]);
    let p = l.commit_points(&[end(0, 30)], &holds);
    assert_eq!(p[0].offset, 12);
    let mut s = p[0].resume.suppress.clone();
    s.sort();
    assert_eq!(
        s,
        vec![1, 2],
        "id 2 is not replayed yet; id 1 is reachable again"
    );
    assert_eq!(p[0].resume.late, vec![20]);
    let p = l.commit_points(&[end(0, 60)], &HashMap::new());
    assert_eq!(p[0].offset, 60);
    assert!(p[0].resume.suppress.is_empty());
    assert!(p[0].resume.late.is_empty());
}

/// Found by `benches/kafka_restore.rs`: a replay-only stage 2 killed one barrier after its
/// assignment wrote `e=0` with the clock at the restored end (the sequencer's clock mid-replay),
/// and its successor, starting at 0 with nothing to replay, put that clock on the partition at
/// once and dropped every replayed hit as late: no state, no alert. Mid-replay, a checkpoint
/// names the restored end, the end its clock belongs to, with the late offsets before it.
#[test]
fn a_checkpoint_taken_mid_replay_names_the_restored_end_its_clock_belongs_to() {
    let mut l = Ledger::new();
    let r = Resume {
        end: 50,
        clock: Some(EventTime(9_000)),
        late: vec![20, 40],
        suppress: vec![],
    };
    l.assign(0, Some(0), Some(&r));
    // The sequencer reports how far is decided (see `sequence_barrier`); the clock is there.
    let mid = |end| SequencedEnd {
        source: 0,
        end,
        decided: 50,
        clock: EventTime(9_000),
        hold: None,
    };
    let p = l.commit_points(&[mid(0)], &HashMap::from([(0, 0)]));
    assert_eq!(p[0].offset, 0);
    assert_eq!(p[0].resume.end, 50, "{:?}", p[0].resume);
    assert_eq!(p[0].resume.late, vec![20, 40]);
    let p = l.commit_points(&[mid(30)], &HashMap::from([(0, 0)]));
    assert_eq!(
        (p[0].resume.end, p[0].resume.late.clone()),
        (50, vec![20, 40])
    );
    let p = l.commit_points(&[end(0, 70)], &HashMap::from([(0, 0)]));
    assert_eq!(
        p[0].resume.end, 70,
        "past the restored end, the sequenced end"
    );
}

/// Issue 11: incident state lives only in the output thread, so an open incident must hold its
/// input until its `Close` is acknowledged, and the lines already on the topic must be listed,
/// or a restart would write a second `Create` (or an `Update` of an id never created).
#[test]
fn an_open_incident_holds_its_first_event_and_lists_its_delivered_lines() {
    let mut l = ledger(&[0, 1]);
    let incident = |closes| Owner::Incident { id: 900, closes };
    let create = l.line(incident(false), 1, spans_of([(0, 10)]));
    l.delivered(create);
    // A later finding of the incident, on the other partition, long after the first.
    let update = l.line(incident(false), 2, spans_of([(1, 40)]));
    l.delivered(update);
    let points = l.commit_points(&[end(0, 100), end(1, 100)], &HashMap::new());
    assert_eq!(
        offsets(&points),
        vec![(0, 10), (1, 40)],
        "open: held at its first event in each partition"
    );
    for p in &points {
        assert_eq!(
            p.resume.suppress,
            vec![1, 2],
            "the Create first, then the Update"
        );
    }
    // The Close is decided but not acknowledged: still held.
    let close = l.line(incident(true), 3, spans_of([(1, 40)]));
    let points = l.commit_points(&[end(0, 100), end(1, 100)], &HashMap::new());
    assert_eq!(offsets(&points), vec![(0, 10), (1, 40)]);
    assert!(points.iter().all(|p| !p.resume.suppress.contains(&3)));
    l.delivered(close);
    let points = l.commit_points(&[end(0, 100), end(1, 100)], &HashMap::new());
    assert_eq!(
        offsets(&points),
        vec![(0, 100), (1, 100)],
        "closed and delivered"
    );
    assert_eq!(l.units(), 0);
    // A new incident with the same id opens a new unit (its old one was complete).
    let again = l.line(incident(false), 4, spans_of([(0, 120)]));
    assert_eq!(l.pending_units(), 1);
    l.delivered(again);
    assert_eq!(l.pending_units(), 1, "open until its Close");
}

/// After a restart, every delivered line of the replayed incident is suppressed once, and the
/// rebuilt unit lists them again at the next commit.
#[test]
fn a_replayed_incident_suppresses_its_delivered_lines_and_keeps_listing_them() {
    let mut l = Ledger::new();
    let r = Resume {
        end: 50,
        clock: None,
        late: vec![],
        suppress: vec![1, 2],
    };
    l.assign(0, Some(10), Some(&r));
    let incident = Owner::Incident {
        id: 900,
        closes: false,
    };
    for line in [1, 2] {
        let spans = spans_of([(0, 10 + line)]);
        assert!(l.take_restored(line, &spans));
        let u = l.line(incident, line, spans);
        l.delivered(u);
    }
    let spans = spans_of([(0, 60)]);
    assert!(!l.take_restored(3, &spans), "a new line is produced");
    let u = l.line(incident, 3, spans);
    let p = l.commit_points(&[end(0, 70)], &HashMap::new());
    assert_eq!(p[0].offset, 11);
    assert_eq!(p[0].resume.suppress, vec![1, 2]);
    l.delivered(u);
    let p = l.commit_points(&[end(0, 70)], &HashMap::new());
    assert_eq!(p[0].resume.suppress, vec![1, 2, 3]);
}

#[derive(Clone, Debug)]
enum Op {
    /// Sequence `n` more offsets in a partition.
    Advance(u32, u64),
    /// Shards hold from this many offsets before the end.
    Hold(u32, u64),
    /// An alert over these (partition, distance back from the end) events.
    Decide(Vec<(u32, u64)>),
    /// Acknowledge the k-th pending alert.
    Ack(usize),
    Barrier,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..3, 1u64..20).prop_map(|(s, n)| Op::Advance(s, n)),
        (0u32..3, 0u64..30).prop_map(|(s, n)| Op::Hold(s, n)),
        prop::collection::vec((0u32..3, 0u64..30), 1..4).prop_map(Op::Decide),
        (0usize..8).prop_map(Op::Ack),
        Just(Op::Barrier),
    ]
}

proptest! {
    /// No commit ever passes an event of an unacknowledged alert, and every delivered alert a
    /// replay from the commit would see in part is listed for suppression.
    #[test]
    fn commits_never_pass_an_undelivered_alert(ops in prop::collection::vec(op(), 1..80)) {
        let mut l = ledger(&[0, 1, 2]);
        let mut ends = [0u64; 3];
        let mut holds: HashMap<u32, u64> = HashMap::new();
        let mut pending: Vec<(UnitId, u64, Vec<Span>)> = Vec::new();
        let mut delivered: Vec<(u64, Vec<Span>)> = Vec::new();
        let mut next_id = 1u64;
        for op in ops {
            match op {
                Op::Advance(s, n) => ends[s as usize] += n,
                Op::Hold(s, n) => {
                    holds.insert(s, ends[s as usize].saturating_sub(n));
                }
                Op::Decide(events) => {
                    // Alerts are made of events still held, i.e. not yet committed past.
                    let positions: Vec<(u32, u64)> = events
                        .iter()
                        .map(|(s, back)| {
                            let floor = l.committed(*s).unwrap_or(0);
                            let e = ends[*s as usize];
                            (*s, e.saturating_sub(*back).max(floor).min(e.saturating_sub(1)).max(floor))
                        })
                        .filter(|(s, o)| *o < ends[*s as usize])
                        .collect();
                    if positions.is_empty() {
                        continue;
                    }
                    let spans = spans_of(positions);
                    let id = next_id;
                    next_id += 1;
                    let u = l.decided(id, spans.clone());
                    pending.push((u, id, spans));
                }
                Op::Ack(k) => {
                    if !pending.is_empty() {
                        let (u, id, spans) = pending.remove(k % pending.len());
                        l.delivered(u);
                        delivered.push((id, spans));
                    }
                }
                Op::Barrier => {
                    let e: Vec<SequencedEnd> = (0..3).map(|s| end(s, ends[s as usize])).collect();
                    // Live state only ever holds events not committed past.
                    for (s, h) in holds.iter_mut() {
                        *h = (*h).max(l.committed(*s).unwrap_or(0));
                    }
                    let points = l.commit_points(&e, &holds);
                    let c: HashMap<u32, u64> = points.iter().map(|p| (p.source, p.offset)).collect();
                    for (_, _, spans) in &pending {
                        for s in spans {
                            prop_assert!(c[&s.source] <= s.min, "commit {} passes pending event {} of partition {}", c[&s.source], s.min, s.source);
                        }
                    }
                    for (id, spans) in &delivered {
                        let seen = spans.iter().filter(|s| s.max >= c[&s.source]).count();
                        if seen > 0 {
                            for s in spans {
                                prop_assert!(c[&s.source] <= s.min, "replay would see part of alert {id}");
                            }
                            let listed = points.iter().filter(|p| spans.iter().any(|s| s.source == p.source)).all(|p| p.resume.suppress.contains(id));
                            prop_assert!(listed, "alert {id} is replayed but not suppressed");
                        }
                    }
                }
            }
        }
    }
}
