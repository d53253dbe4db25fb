//! The output thread: merges the findings of every shard into one deterministic order, renders
//! them as OCSF JSON lines and hands them, with dead letters and delivery bookkeeping, to the
//! front end's [`Sink`].
//!
//! Each shard emits findings in event-time order and reports its progress (the watermark it
//! has processed up to). A finding is released once every shard has progressed past its time,
//! so the output is sorted by (time, event key, rule, group) whatever the number of shards.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Bookkeeping, OutputMsg};
use crate::alert;
use crate::alert::incident::{Candidate, Incident, Incidents, Joined};
use crate::correlate::Finding;
use crate::deadletter::DeadLetter;
use crate::input::Sources;
use crate::matcher::RuleSet;
use crate::time::{EventTime, Span};

/// Where the engine's output goes: replay's files, the service's producer. Every call comes
/// from the output thread, in stream order; an error stops the engine (the threads before the
/// output wind down when their sends fail).
pub trait Sink {
    type Report;
    type Error: From<serde_json::Error>;

    /// Housekeeping between messages (acknowledgements, barriers); called at least every few
    /// milliseconds while the engine runs.
    fn poll(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// One alert, in output order: the finding, the rules that decided it, its OCSF line
    /// (without newline) and its id.
    fn alert(&mut self, alert: Rendered<'_>) -> Result<(), Self::Error>;

    /// An event that could not be processed; `replayed`: it was dead-lettered before a restart.
    fn dead_letter(&mut self, letter: DeadLetter, replayed: bool) -> Result<(), Self::Error>;

    /// Delivery bookkeeping (assignments, barriers, holds, arrival times); ignored by a sink
    /// that commits nothing.
    fn control(&mut self, _msg: Bookkeeping) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The engine ended: flush, within the sink's own deadline.
    fn finish(self) -> Result<Self::Report, Self::Error>;
}

/// An alert ready for a sink.
pub struct Rendered<'a> {
    pub finding: &'a Finding,
    pub rules: &'a Arc<RuleSet>,
    /// The OCSF Detection Finding, one JSON line without its newline.
    pub line: &'a [u8],
    /// The line's deterministic id: the finding's own id (its incident's `Close`:
    /// `<id>/close`), unique per line.
    pub uid: &'a str,
    /// The incident the line belongs to, when incidents are on.
    pub incident: Option<&'a Joined>,
}

/// A finding with the rule set that decided it (rules may be reloaded in between).
#[derive(Clone)]
pub struct Decided {
    pub finding: Finding,
    pub rules: Arc<RuleSet>,
}

impl AsFinding for Decided {
    fn finding(&self) -> &Finding {
        &self.finding
    }
}

/// Runs the output thread until every shard and the sequence thread are gone, then finishes
/// the sink.
pub fn run<K: Sink>(
    mut sink: K,
    shards: usize,
    sources: Arc<RwLock<Sources>>,
    alert_options: alert::AlertOptions,
    rx: Receiver<OutputMsg>,
    heartbeat: crate::metrics::Heartbeat,
) -> Result<K::Report, K::Error> {
    let mut merge: Merge<Decided> = Merge::new(shards);
    let mut ready = Vec::new();
    let mut line = Vec::with_capacity(4096);
    let mut incidents = alert_options.incidents.map(Incidents::<Decided>::new);
    let mut closed: Vec<Incident<Decided>> = Vec::new();
    let mut release = |merge: &mut Merge<Decided>, sink: &mut K| -> Result<(), K::Error> {
        merge.ready(&mut ready);
        for d in ready.drain(..) {
            let joined = match incidents.as_mut() {
                Some(inc) => {
                    let f = &d.finding;
                    // Every finding before this one is placed: what closed before its time
                    // closes before its line, not at the end of this release.
                    inc.close_before(f.time, &mut closed);
                    let meta = alert::rule_meta(f, &d.rules);
                    let own = alert::finding_uid(f, &d.rules);
                    let candidate = Candidate {
                        group: &f.group,
                        start: f.events.first().map_or(f.time, |(e, _)| e.time),
                        end: f.events.last().map_or(f.time, |(e, _)| e.time),
                        rule: &meta.title,
                        uid: &own,
                        score: f.score.score,
                        longest_timespan: longest_timespan(&d.rules),
                    };
                    Some(inc.join(&candidate, &d, &mut closed))
                }
                None => None,
            };
            // Incidents past their time, and those evicted to make room, close before the line.
            for c in closed.drain(..) {
                emit(
                    sink,
                    &sources,
                    &alert_options,
                    &mut line,
                    &c.best.1,
                    Some(&c.closing()),
                )?;
            }
            emit(
                sink,
                &sources,
                &alert_options,
                &mut line,
                &d,
                joined.as_ref(),
            )?;
        }
        if let Some(inc) = incidents.as_mut() {
            inc.close_before(merge.frontier(), &mut closed);
            for c in closed.drain(..) {
                emit(
                    sink,
                    &sources,
                    &alert_options,
                    &mut line,
                    &c.best.1,
                    Some(&c.closing()),
                )?;
            }
        }
        Ok(())
    };
    loop {
        heartbeat.beat();
        sink.poll()?;
        match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(OutputMsg::Findings(_, rules, findings)) => {
                for finding in findings {
                    merge.push(Decided {
                        finding,
                        rules: rules.clone(),
                    });
                }
                release(&mut merge, &mut sink)?;
            }
            Ok(OutputMsg::Progress(shard, w)) => {
                merge.progress(shard, w);
                release(&mut merge, &mut sink)?;
            }
            Ok(OutputMsg::DeadLetter { letter, replayed }) => sink.dead_letter(letter, replayed)?,
            Ok(OutputMsg::Bookkeeping(Bookkeeping::Holds {
                epoch,
                mut holds,
                states,
                state_bytes,
                evicted,
                changes,
                unsent: _,
            })) => {
                // A shard's findings reach this thread before its holds report, and leave the
                // shard's state with it: while they wait here for the other shards, their
                // events are held by the merge, or a commit could pass an alert never sent.
                let mut waiting = HashMap::new();
                merge.hold_positions(&mut waiting);
                for (&s, &o) in &waiting {
                    let h = holds.entry(s).or_insert(o);
                    *h = (*h).min(o);
                }
                sink.control(Bookkeeping::Holds {
                    epoch,
                    holds,
                    states,
                    state_bytes,
                    evicted,
                    changes,
                    unsent: waiting.into_keys().collect(),
                })?
            }
            Ok(OutputMsg::Bookkeeping(c)) => sink.control(c)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    sink.finish()
}

/// Renders one line and hands it to the sink.
fn emit<K: Sink>(
    sink: &mut K,
    sources: &RwLock<Sources>,
    options: &alert::AlertOptions,
    line: &mut Vec<u8>,
    d: &Decided,
    incident: Option<&Joined>,
) -> Result<(), K::Error> {
    line.clear();
    let uid = {
        let sources = sources.read().unwrap_or_else(|e| e.into_inner());
        alert::render(&d.finding, &d.rules, &sources, options, incident, line)?
    };
    sink.alert(Rendered {
        finding: &d.finding,
        rules: &d.rules,
        line,
        uid: &uid,
        incident,
    })
}

/// The longest correlation timespan of a rule set: how early a chain decided later may have
/// started.
fn longest_timespan(rules: &RuleSet) -> Span {
    rules
        .correlations
        .iter()
        .map(|c| c.timespan)
        .max()
        .unwrap_or(Span::ZERO)
}

/// What the merge orders: a finding, possibly with what travels with it (the service keeps
/// the rule set that decided it).
pub trait AsFinding {
    fn finding(&self) -> &Finding;
}

impl AsFinding for Finding {
    fn finding(&self) -> &Finding {
        self
    }
}

#[derive(Debug)]
struct Ordered<T>(T);

impl<T: AsFinding> PartialEq for Ordered<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.finding().sort_key() == other.0.finding().sort_key()
    }
}
impl<T: AsFinding> Eq for Ordered<T> {}
impl<T: AsFinding> PartialOrd for Ordered<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: AsFinding> Ord for Ordered<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .finding()
            .sort_key()
            .cmp(&other.0.finding().sort_key())
    }
}

/// Merges per-shard finding streams by progress.
pub struct Merge<T = Finding> {
    heap: BinaryHeap<Reverse<Ordered<T>>>,
    progress: Vec<EventTime>,
}

impl<T: AsFinding> Merge<T> {
    pub fn new(shards: usize) -> Merge<T> {
        Merge {
            heap: BinaryHeap::new(),
            progress: vec![EventTime::MIN; shards],
        }
    }

    pub fn push(&mut self, f: T) {
        self.heap.push(Reverse(Ordered(f)));
    }

    /// Records that `shard` has processed everything before `watermark`.
    pub fn progress(&mut self, shard: usize, watermark: EventTime) {
        if let Some(p) = self.progress.get_mut(shard) {
            *p = (*p).max(watermark);
        }
    }

    /// Pops, in order, every finding no shard can still precede.
    pub fn ready(&mut self, out: &mut Vec<T>) {
        let frontier = self
            .progress
            .iter()
            .copied()
            .min()
            .unwrap_or(EventTime::MAX);
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(o)| o.0.finding().time < frontier || frontier == EventTime::MAX)
        {
            if let Some(Reverse(o)) = self.heap.pop() {
                out.push(o.0);
            }
        }
    }

    /// Every finding before this time has been released (or can be, by [`Merge::ready`]).
    pub fn frontier(&self) -> EventTime {
        self.progress
            .iter()
            .copied()
            .min()
            .unwrap_or(EventTime::MAX)
    }

    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    /// Lowers `holds` (oldest offset still needed, per source) to the events of every finding
    /// still waiting here, referenced findings' events included.
    pub fn hold_positions(&self, holds: &mut HashMap<u32, u64>) {
        fn walk(events: &[(crate::correlate::EventRef, u32)], holds: &mut HashMap<u32, u64>) {
            for (e, _) in events {
                let h = holds.entry(e.pos.source).or_insert(e.pos.offset);
                *h = (*h).min(e.pos.offset);
                if let Some(parts) = &e.parts {
                    walk(parts, holds);
                }
            }
        }
        for Reverse(o) in &self.heap {
            walk(&o.0.finding().events, holds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::{EventRef, Target};
    use crate::input::Position;

    fn f(secs: i64, group: &str) -> Finding {
        let time = EventTime::from_millis(secs * 1000);
        Finding {
            target: Target::Detection(0),
            group: group.into(),
            events: vec![(
                EventRef {
                    time,
                    key: 1,
                    pos: Position {
                        source: 0,
                        offset: 1,
                    },
                    id: "e".into(),
                    actor: None,
                    details: None,
                    parts: None,
                },
                0,
            )],
            time,
            score: Default::default(),
            touched: Default::default(),
            resources: Vec::new(),
            stage: (1, 1),
            canary: false,
            update: false,
            is_alert: true,
            measure: None,
        }
    }

    /// Bug: a finding waiting in the merge for a slower shard was held by nobody (its shard
    /// had let go of the state), so a commit could pass its events and a crash lose it.
    #[test]
    fn findings_waiting_in_the_merge_hold_their_events() {
        let mut m: Merge = Merge::new(2);
        let mut waiting = f(5, "a");
        waiting.events[0].0.pos = Position {
            source: 3,
            offset: 42,
        };
        m.push(waiting);
        let mut holds = HashMap::from([(3, 50), (4, 7)]);
        m.hold_positions(&mut holds);
        assert_eq!(holds, HashMap::from([(3, 42), (4, 7)]));
        m.progress(0, EventTime::MAX);
        m.progress(1, EventTime::MAX);
        m.ready(&mut Vec::new());
        let mut after = HashMap::from([(3, 50)]);
        m.hold_positions(&mut after);
        assert_eq!(after, HashMap::from([(3, 50)]), "delivered: held no more");
    }

    #[test]
    fn findings_wait_for_every_shard() {
        let mut m: Merge = Merge::new(2);
        m.push(f(5, "b"));
        m.push(f(3, "a"));
        m.progress(0, EventTime::from_millis(10_000));
        let mut out = Vec::new();
        m.ready(&mut out);
        assert!(out.is_empty(), "shard 1 has not progressed");
        m.progress(1, EventTime::from_millis(4_000));
        m.ready(&mut out);
        assert_eq!(out.iter().map(|f| &*f.group).collect::<Vec<_>>(), vec!["a"]);
        m.progress(1, EventTime::MAX);
        m.progress(0, EventTime::MAX);
        m.ready(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(m.pending(), 0);
    }
}
