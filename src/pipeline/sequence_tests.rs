use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::super::writer::{Rendered, Sink};
use super::super::{Bookkeeping, Item, Reference, Resume, Setup, Signal, SourceTime, Stage};
use crate::deadletter::DeadLetter;
use crate::input::{SourceInfo, Sources};
use crate::metrics::Metrics;
use crate::time::{EventTime, Span};

struct Nothing;

impl Sink for Nothing {
    type Report = ();
    type Error = serde_json::Error;
    fn alert(&mut self, _: Rendered<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
    fn dead_letter(&mut self, _: DeadLetter, _: bool) -> Result<(), Self::Error> {
        Ok(())
    }
    fn control(&mut self, _: Bookkeeping) -> Result<(), Self::Error> {
        Ok(())
    }
    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// One shard and one worker, as a service sets them up.
fn one_shard() -> Setup {
    Setup {
        changelog: None,
        shards: 1,
        workers: 1,
        shard_limits: Default::default(),
        mint: Default::default(),
        lineage: Default::default(),
        lineage_hold: Span::ZERO,
        reference: Reference::RecentMedian,
        alert: Default::default(),
        cluster_inputs: None,
        shared_lineage: false,
        part: Default::default(),
    }
}

/// A one-rule set and the sources of two partitions of topic `t`.
fn one_rule_two_partitions() -> (
    std::sync::Arc<crate::matcher::RuleSet>,
    std::sync::Arc<std::sync::RwLock<Sources>>,
) {
    let rules = std::sync::Arc::new(crate::matcher::tests::ruleset(
        "title: t\ndetection: {sel: {eventName: X}, condition: sel}\n",
    ));
    let mut sources = Sources::new();
    for p in 0..2 {
        sources.register(SourceInfo::Kafka {
            topic: "t".into(),
            partition: p,
        });
    }
    (rules, std::sync::Arc::new(std::sync::RwLock::new(sources)))
}

/// Sends `signals` in order, numbered from 0.
fn send_signals(inputs: &super::super::Inputs, signals: impl IntoIterator<Item = Signal>) {
    for (seq, signal) in signals.into_iter().enumerate() {
        inputs
            .items
            .send(Item::Signal {
                seq: seq as u64,
                signal,
            })
            .unwrap();
    }
}

/// Engine time after two partitions are assigned, one restored with `resume` and one that
/// spoke up to `other`: the service's engine on nothing but those signals.
fn engine_time_after_assign(resume: Option<Resume>, other: EventTime) -> i64 {
    let (rules, sources) = one_rule_two_partitions();
    let metrics = Metrics::new();
    let setup = one_shard();
    let assessor = std::sync::Arc::new(crate::score::LiveAssessor::new(Default::default()));
    thread::scope(|s| {
        let (inputs, engine) = super::super::start(
            s,
            &setup,
            8,
            rules,
            assessor,
            sources,
            metrics.clone(),
            Stage::Whole,
            Nothing,
        )
        .unwrap();
        let time = SourceTime::with_lateness(Span::ZERO);
        let signals = [
            Signal::Assign {
                source: 0,
                time,
                start: Some(10),
                resume,
            },
            Signal::Assign {
                source: 1,
                time,
                start: Some(0),
                resume: Some(Resume {
                    end: 0,
                    clock: Some(other),
                    ..Resume::default()
                }),
            },
        ];
        send_signals(&inputs, signals);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = metrics.input.watermark_ms.load(Ordering::Relaxed);
        while seen == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
            seen = metrics.input.watermark_ms.load(Ordering::Relaxed);
        }
        drop(inputs);
        engine
            .join(Some(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        seen
    })
}

#[test]
fn a_partition_restored_with_nothing_to_replay_stands_at_its_clock_at_once() {
    let restored = EventTime::from_millis(1_700_000_000_000);
    let other = EventTime::from_millis(1_700_000_500_000);
    let resume = Resume {
        end: 10,
        clock: Some(restored),
        ..Resume::default()
    };
    assert_eq!(
        engine_time_after_assign(Some(resume), other),
        restored.as_millis(),
        "engine time is the restored partition's clock, not the beginning of time"
    );
    // Without a checkpoint the partition holds time until it speaks (or goes idle).
    assert_eq!(engine_time_after_assign(None, other), 0);
}

/// Counts the alerts an engine renders.
struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Sink for Count {
    type Report = ();
    type Error = serde_json::Error;
    fn alert(&mut self, _: Rendered<'_>) -> Result<(), Self::Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn dead_letter(&mut self, _: DeadLetter, _: bool) -> Result<(), Self::Error> {
        Ok(())
    }
    fn control(&mut self, _: Bookkeeping) -> Result<(), Self::Error> {
        Ok(())
    }
    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A partition revoked and assigned back to the same process (an eager rebalance gives most
/// partitions back to their owner) is read again from its held-back commit: the events this
/// process already put into its state must not go into it a second time. Two `ListUsers` of
/// one identity are two, not four, for a rule that wants three. (What keeps it so: the
/// partition's clock outlives the revocation, so what was processed is late on the second
/// reading, and what still waited meets its copy in the reorder buffer.)
#[test]
fn a_partition_given_back_replays_nothing_into_the_state_it_kept() {
    const N: u64 = 2;
    let rules = std::sync::Arc::new(crate::matcher::tests::ruleset(
        r#"
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
"#,
    ));
    let mut sources = Sources::new();
    sources.register(SourceInfo::Kafka {
        topic: "t".into(),
        partition: 0,
    });
    let sources = std::sync::Arc::new(std::sync::RwLock::new(sources));
    let setup = one_shard();
    let assessor = std::sync::Arc::new(crate::score::LiveAssessor::new(Default::default()));
    let alerts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batch = || {
        let mut b = crate::input::Batch {
            source: 0,
            ..Default::default()
        };
        for i in 0..N {
            let line = format!(
                r#"{{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:0{i}Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","eventID":"e{i}","awsRegion":"us-east-1","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/alice"}}}}"#
            );
            b.push_event(line.as_bytes(), i);
        }
        b
    };
    thread::scope(|s| {
        let (inputs, engine) = super::super::start(
            s,
            &setup,
            8,
            rules.clone(),
            assessor,
            sources,
            Metrics::new(),
            Stage::Whole,
            Count(alerts.clone()),
        )
        .unwrap();
        let time = SourceTime::with_lateness(Span::ZERO);
        let assign = || Signal::Assign {
            source: 0,
            time,
            start: Some(0),
            resume: None,
        };
        let items = [
            Some(assign()),
            None,
            Some(Signal::Revoke { sources: vec![0] }),
            Some(assign()),
            None,
            Some(Signal::EndOfInput),
        ];
        for (seq, item) in items.into_iter().enumerate() {
            let seq = seq as u64;
            let item = match item {
                Some(signal) => Item::Signal { seq, signal },
                None => Item::Batch {
                    seq,
                    batch: batch(),
                    format: super::super::Format::Events(None),
                    rules: rules.clone(),
                    arrived: Instant::now(),
                },
            };
            inputs.items.send(item).unwrap();
        }
        drop(inputs);
        engine
            .join(Some(Instant::now() + Duration::from_secs(5)))
            .unwrap();
    });
    assert_eq!(
        alerts.load(Ordering::Relaxed),
        0,
        "two events counted twice"
    );
}

/// The ends (source, decided end) and the marks (sources) of each barrier a changelog stage 2
/// reports.
type Barriers = Vec<(Vec<(u32, u64)>, Vec<u32>)>;
struct Marks(std::sync::Arc<std::sync::Mutex<Barriers>>);

impl Sink for Marks {
    type Report = ();
    type Error = serde_json::Error;
    fn alert(&mut self, _: Rendered<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
    fn dead_letter(&mut self, _: DeadLetter, _: bool) -> Result<(), Self::Error> {
        Ok(())
    }
    fn control(&mut self, b: Bookkeeping) -> Result<(), Self::Error> {
        if let Bookkeeping::Barrier { ends, marks, .. } = b {
            let ends = ends.iter().map(|e| (e.source, e.decided)).collect();
            let marks = marks.iter().map(|m| m.source).collect();
            self.0.lock().unwrap().push((ends, marks));
        }
        Ok(())
    }
    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A partition replaying toward the end its checkpoint restored reports the clock of that end
/// at a barrier, not the clock of where its replay stands: a changelog marker taken then would
/// restore that clock at the replay's position and judge the rest of the replay late. It gets
/// no marker until the replay passes the restored end, and the barrier names that end as decided;
/// a partition with nothing to replay gets its marker.
#[test]
fn a_partition_still_replaying_gets_no_changelog_marker() {
    let (rules, sources) = one_rule_two_partitions();
    let setup = Setup {
        changelog: Some(2),
        ..one_shard()
    };
    let assessor = std::sync::Arc::new(crate::score::LiveAssessor::new(Default::default()));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    thread::scope(|s| {
        let (inputs, engine) = super::super::start(
            s,
            &setup,
            8,
            rules,
            assessor,
            sources,
            Metrics::new(),
            Stage::Whole,
            Marks(seen.clone()),
        )
        .unwrap();
        let time = SourceTime::with_lateness(Span::ZERO);
        let restored = |end| Resume {
            end,
            clock: Some(EventTime(1_700_000_000_000_000_000)),
            ..Resume::default()
        };
        let signals = [
            Signal::Assign {
                source: 0,
                time,
                start: Some(0),
                resume: Some(restored(50)),
            },
            Signal::Assign {
                source: 1,
                time,
                start: Some(7),
                resume: Some(restored(7)),
            },
            Signal::Barrier {
                epoch: 1,
                drain: false,
            },
            Signal::EndOfInput,
        ];
        send_signals(&inputs, signals);
        drop(inputs);
        engine
            .join(Some(Instant::now() + Duration::from_secs(5)))
            .unwrap();
    });
    let seen = seen.lock().unwrap();
    // Source 0 replays toward 50: the barrier says 50 is decided (its clock is the one there)
    // and takes no marker for it; source 1 has nothing to replay.
    assert_eq!(
        seen.first(),
        Some(&(vec![(0, 50), (1, 7)], vec![1])),
        "{seen:?}"
    );
}
