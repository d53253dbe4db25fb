//! The sequence thread: puts worker output back in the order the front end cut it, keeps one
//! event-time clock per assigned source (a file, a Kafka partition: the [`Sequencer`]), and
//! turns signals into their effects at exactly their place in the stream.
//!
//! Engine time is the minimum watermark over the sources that are assigned and not idle (a
//! source that never spoke holds it until the front end calls it idle: a live front end after
//! the idle timeout). When every source has been idle for the idle timeout, a live front end's
//! [`Signal::Tick`]s make engine time follow the wall clock (never to the end of time), so a
//! quiet stream's chains are decided within the lateness plus the idle timeout. Hits wait in
//! the resolver until engine time passes them, and are released whenever it moves, by a batch
//! or a signal. Every ten seconds the sources with the oldest watermark are published (gauge)
//! and, while engine time does not move, logged. A finished file no longer holds time back; the end of every input ([`Signal::EndOfInput`]) releases every
//! waiting hit and has the shards decide their state to the end of time. A partition
//! that speaks again after being idle has its clock raised to engine time plus its lateness, so
//! anything older than what the engine already decided is dead-lettered as late instead of being
//! processed out of order.
//!
//! After a restart, offsets below the restored sequenced end were processed before: their
//! lateness is taken from the commit metadata (a fresh clock would accept events the first run
//! rejected), their dead letters are not produced again, and the restored clock applies from the
//! end on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::clock::{self, Reference, SourceTime};
use super::outbox::Outbox;
use super::sequencer::{Sequencer, SequencerStats, SourceClock};
use super::worker::DecodedBatch;
use super::{Bookkeeping, Decoded, NewRules, OutputMsg, ShardMsg, Signal};
use crate::identity::{LineageStats, Resolver};
use crate::input::{Batch, Sources};
use crate::matcher::{RuleSet, TargetMap};
use crate::metrics::Metrics;
use crate::time::{EventTime, Span};

#[derive(Debug)]
struct Partition {
    assigned: bool,
    lateness: Span,
    /// First offset not yet sequenced; `None` until the first batch or a committed offset.
    end: Option<u64>,
    /// Offsets below this were processed by a previous run.
    replay_end: u64,
    replay_late: HashSet<u64>,
    /// The clock to apply once the replay reaches `replay_end`.
    restored_clock: Option<EventTime>,
}

struct State<'a> {
    seq: Sequencer,
    /// Stage 1 sharing its lineage: the lineage frontier last sent per owned source.
    lineage_stamps: HashMap<u32, EventTime>,
    share_lineage: bool,
    /// Copies already added to the metrics.
    copies_reported: u64,
    /// The rule set in force (the hits in the resolver belong to it).
    rules: Arc<RuleSet>,
    parts: HashMap<u32, Partition>,
    fed: u64,
    outbox: Outbox,
    shards: Vec<Sender<ShardMsg>>,
    delivery: Sender<OutputMsg>,
    recycle: Sender<Batch>,
    sent_watermark: EventTime,
    /// Credential links minted within this much of engine time hold offsets back.
    lineage_hold: Span,
    metrics: &'a Metrics,
    /// Which of the instance's gauges this engine writes.
    part: crate::metrics::Part,
    sources: Arc<RwLock<Sources>>,
    held_back: HeldBack,
    /// Stage 2 with a changelog: the hits topic's partition count.
    changelog: Option<u32>,
}

/// How often the sources holding event time back are published (gauge) and, while time is
/// stalled, logged.
const HELD_BACK_EVERY: Duration = Duration::from_secs(10);

/// What was last said about the sources holding event time back.
struct HeldBack {
    next: Instant,
    /// Engine time when it was last said.
    watermark: EventTime,
}

/// The sequence thread's part in a cluster (see [`crate::cluster`]).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Stage 2: the input partitions stamped sources wait for (`None`: learnt from stamps).
    pub inputs: Option<Arc<crate::cluster::frontier::Inputs>>,
    /// Stage 1 sharing its lineage: wait for the lineage frontier, send links out.
    pub shared_lineage: bool,
    /// Stage 1: the shards are a forwarder.
    pub routing: bool,
    /// Which of the instance's gauges this engine writes.
    pub part: crate::metrics::Part,
    /// Stage 2 with a changelog: the hits topic's partition count.
    pub changelog: Option<u32>,
}

/// What the sequence thread is given.
pub struct Context<'a> {
    pub rx: Receiver<Decoded>,
    pub shards: Vec<Sender<ShardMsg>>,
    pub output: Sender<OutputMsg>,
    /// Where batch buffers go back to the front end.
    pub recycle: Sender<Batch>,
    pub rules: Arc<RuleSet>,
    pub resolver: Resolver,
    pub lineage_hold: Span,
    pub reference: Reference,
    /// Names of the sources, for the log line and gauge saying which hold event time back.
    pub sources: Arc<RwLock<Sources>>,
    pub cluster: Cluster,
    pub metrics: &'a Metrics,
    pub heartbeat: crate::metrics::Heartbeat,
}

/// What the sequence thread counted, and the rule set in force when it ended.
pub struct SequenceReport {
    pub stats: SequencerStats,
    pub lineage: LineageStats,
    pub rules: Arc<RuleSet>,
}

/// Runs until the workers' channel closes (the front end stopped) or a downstream thread is
/// gone.
pub fn run(ctx: Context<'_>) -> SequenceReport {
    let shards = ctx.shards.len();
    let mut seq = Sequencer::new(Vec::new(), ctx.reference, shards, ctx.resolver);
    if let Some(inputs) = ctx.cluster.inputs.clone() {
        seq.set_cluster_inputs(inputs);
    }
    if ctx.cluster.shared_lineage {
        seq.share_lineage();
    }
    let mut st = State {
        seq,
        lineage_stamps: HashMap::new(),
        copies_reported: 0,
        share_lineage: ctx.cluster.shared_lineage,
        rules: ctx.rules,
        parts: HashMap::new(),
        fed: 0,
        outbox: Outbox::new(shards),
        shards: ctx.shards,
        delivery: ctx.output,
        recycle: ctx.recycle,
        sent_watermark: EventTime::MIN,
        lineage_hold: ctx.lineage_hold,
        metrics: ctx.metrics,
        part: ctx.cluster.part,
        sources: ctx.sources,
        changelog: ctx.cluster.changelog,
        held_back: HeldBack {
            next: Instant::now() + HELD_BACK_EVERY,
            watermark: EventTime::MIN,
        },
    };
    let mut waiting: BTreeMap<u64, Decoded> = BTreeMap::new();
    let mut next = 0u64;
    'stream: for d in ctx.rx.iter() {
        ctx.heartbeat.beat();
        waiting.insert(d.seq(), d);
        while let Some(d) = waiting.remove(&next) {
            next += 1;
            let ok = match d {
                Decoded::Batch {
                    decoded, arrived, ..
                } => st.batch(decoded, arrived),
                Decoded::Signal { signal, .. } => st.signal(signal),
            };
            if !ok {
                break 'stream;
            }
        }
    }
    SequenceReport {
        stats: st.seq.stats.clone(),
        lineage: st.seq.resolver().lineage().stats().clone(),
        rules: st.rules,
    }
}

impl State<'_> {
    fn batch(&mut self, mut d: DecodedBatch, arrived: Instant) -> bool {
        let source = d.batch.source;
        let Some(first) = d.batch.lines.first().map(|l| l.offset) else {
            let _ = self.recycle.try_send(d.batch);
            return true;
        };
        let last = d.batch.lines.last().map_or(first, |l| l.offset);
        let Some(p) = self.parts.get_mut(&source) else {
            // A batch of a partition never assigned cannot happen (the intake announces every
            // partition first); dropping it would lose events, so treat it as assigned now.
            return self.signal(Signal::Assign {
                source,
                time: SourceTime::with_lateness(Span::ZERO),
                start: Some(first),
                resume: None,
            }) && self.batch(d, arrived);
        };
        if first >= p.replay_end
            && let Some(c) = p.restored_clock.take()
            && let Some(clock) = self.seq.clock_mut(source)
        {
            clock.max_seen = clock.max_seen.max(c);
        }
        let replay_end = p.replay_end;
        if first < replay_end && !p.replay_late.is_empty() {
            // Reproduce the first run's lateness verdicts: the event is dropped again (its dead
            // letter, produced before, is not produced again).
            let late: Vec<u32> = (0..d.batch.lines.len() as u32)
                .filter(|i| p.replay_late.contains(&d.batch.lines[*i as usize].offset))
                .collect();
            for i in &late {
                d.times[*i as usize] = EventTime::MIN;
                let offset = d.batch.lines[*i as usize].offset;
                let _ = self.delivery.send(OutputMsg::DeadLetter {
                    letter: crate::deadletter::DeadLetter {
                        pos: crate::input::Position { source, offset },
                        kind: "late",
                        reason: "late (decided before the restart)".into(),
                        raw: Vec::new(),
                        bytes: 0,
                    },
                    replayed: true,
                });
            }
            d.hits.retain(|(i, _, _)| !late.contains(i));
            d.links.retain(|(i, _)| !late.contains(i));
        }
        p.end = Some(last + 1);
        d.batch.seq = self.fed;
        self.fed += 1;
        let events = d.batch.lines.len() as u64;
        let mut route = self.outbox.router(&self.shards);
        let delivery = &self.delivery;
        let metrics = self.metrics;
        let recycle = &self.recycle;
        let mut alive = true;
        self.seq.accept(
            d,
            &mut route,
            &mut |letter| {
                let replayed = letter.pos.offset < replay_end;
                if letter.kind == "late" && !replayed {
                    Metrics::add(&metrics.late_events, 1);
                }
                if letter.kind == "future" && !replayed {
                    Metrics::add(&metrics.future_events, 1);
                }
                if !replayed {
                    metrics.dead_letter(letter.kind);
                }
                alive &= delivery
                    .send(OutputMsg::DeadLetter { letter, replayed })
                    .is_ok();
            },
            &mut |done| {
                let _ = recycle.try_send(done.batch);
            },
        );
        drop(route);
        let records = self.seq.clock_mut(source).is_some_and(|c| c.time.stamped);
        if records {
            Metrics::add(&self.metrics.cluster_records_in, events);
            let copies = self.seq.stats.copies;
            Metrics::add(
                &self.metrics.cluster_copies,
                copies - std::mem::replace(&mut self.copies_reported, copies),
            );
        } else {
            Metrics::add(&self.metrics.events_in, events);
        }
        alive &= self
            .delivery
            .send(OutputMsg::Bookkeeping(Bookkeeping::Arrival {
                source,
                last_offset: last,
                arrived,
            }))
            .is_ok();
        alive && self.flush_hits() && self.send_lineage() && self.advance()
    }

    fn flush_hits(&mut self) -> bool {
        self.outbox.flush(&self.shards)
    }

    /// Hands on the hits engine time has passed, then gives the shards engine time if it
    /// moved.
    fn advance(&mut self) -> bool {
        let Some(w) = self.seq.watermark() else {
            return true;
        };
        self.seq.release(w, &mut self.outbox.router(&self.shards));
        if !self.flush_hits() {
            return false;
        }
        self.report_held_back(w);
        // The end of time comes only with the end of input: the shards first note what is
        // alive at the end (a replay's summary), then decide it.
        if w <= self.sent_watermark || w == EventTime::MIN || w == EventTime::MAX {
            return true;
        }
        self.sent_watermark = w;
        self.metrics
            .gauges(self.part)
            .watermark_ms
            .store(w.as_millis(), std::sync::atomic::Ordering::Relaxed);
        self.shards
            .iter()
            .all(|tx| tx.send(ShardMsg::Watermark(w)).is_ok())
    }

    fn signal(&mut self, signal: Signal) -> bool {
        match signal {
            Signal::Assign {
                source,
                time,
                start,
                resume,
            } => {
                // Sources registered before and not assigned here (a stage 2 registers every
                // hits partition up front) hold nothing back.
                while self.seq.clock_mut(source).is_none() {
                    let mut unassigned = SourceClock::new(time);
                    unassigned.quiet = true;
                    self.seq.add_source(unassigned);
                }
                if let Some(c) = self.seq.clock_mut(source) {
                    *c = SourceClock::new(time);
                }
                let replay_end = resume.as_ref().map_or(0, |r| r.end);
                let mut restored_clock = resume.as_ref().and_then(|r| r.clock);
                // A clock restored from a checkpoint written before future events were refused
                // may be poisoned (a record dated 2099): the wall clock bounds it too.
                if self.seq.reference() == Reference::WallClock
                    && let Some(c) = restored_clock
                    && c > clock::wall_now().plus(time.max_future)
                {
                    tracing::warn!(
                        source,
                        restored = %c,
                        "the restored clock is beyond the future skew; starting the partition's clock afresh"
                    );
                    restored_clock = None;
                }
                // Nothing to replay (the commit is the processed end): the partition stands
                // where the last run left it now, not only at its next message, so a partition
                // that stays quiet after a restart or a rebalance does not hold engine time at
                // the beginning until the idle timeout.
                let mut restored_now = false;
                if start.is_some_and(|s| s >= replay_end)
                    && let Some(c) = restored_clock.take()
                    && let Some(clock) = self.seq.clock_mut(source)
                {
                    clock.max_seen = clock.max_seen.max(c);
                    restored_now = true;
                }
                self.parts.insert(
                    source,
                    Partition {
                        assigned: true,
                        lateness: time.lateness,
                        end: start,
                        replay_end,
                        replay_late: resume
                            .as_ref()
                            .map(|r| r.late.iter().copied().collect())
                            .unwrap_or_default(),
                        restored_clock,
                    },
                );
                self.delivery
                    .send(OutputMsg::Bookkeeping(Bookkeeping::Assign {
                        source,
                        committed: start,
                        resume,
                    }))
                    .is_ok()
                    && self.tell_owned()
                    && (!restored_now || self.advance())
            }
            Signal::Revoke { sources } => {
                for s in &sources {
                    if let Some(p) = self.parts.get_mut(s) {
                        p.assigned = false;
                    }
                    if let Some(c) = self.seq.clock_mut(*s) {
                        c.quiet = true;
                    }
                }
                let forget = self.forget(&sources);
                self.delivery
                    .send(OutputMsg::Bookkeeping(Bookkeeping::Revoke(sources)))
                    .is_ok()
                    && forget
                    && self.tell_owned()
                    && self.advance()
            }
            Signal::Idle { source, idle } => {
                let engine = self.sent_watermark;
                if let Some(p) = self.parts.get(&source)
                    && p.assigned
                    && let Some(c) = self.seq.clock_mut(source)
                    && !c.time.stamped
                {
                    c.quiet = idle;
                    if !idle && engine != EventTime::MIN {
                        c.max_seen = c.max_seen.max(engine.plus(p.lateness));
                    }
                }
                self.send_lineage() && self.advance()
            }
            Signal::SourceFailed { source, letter } => {
                let stats = &mut self.seq.stats;
                stats.dead_letters += 1;
                *stats.by_reason.entry(letter.kind).or_insert(0) += 1;
                self.metrics.dead_letter(letter.kind);
                if let Some(c) = self.seq.clock_mut(source) {
                    c.done = true;
                }
                self.delivery
                    .send(OutputMsg::DeadLetter {
                        letter,
                        replayed: false,
                    })
                    .is_ok()
                    && self.advance()
            }
            Signal::Restore(snapshot) => self.restore(*snapshot),
            Signal::ChangelogRead(read) => self.changelog_read(*read),
            Signal::Suspend => self.suspend(),
            Signal::StopShardForTest => {
                tracing::warn!("test hook: stopping shard 0");
                self.shards
                    .first()
                    .is_some_and(|tx| tx.send(ShardMsg::Stop).is_ok())
            }
            Signal::Lineage { links, frontier } => {
                self.seq
                    .remote_lineage(links, frontier, &mut self.outbox.router(&self.shards));
                self.flush_hits() && self.advance()
            }
            Signal::Tick { wall } => {
                if self.seq.follow_wall_clock(wall) {
                    tracing::debug!(%wall, "every input is idle: event time follows the wall clock");
                }
                self.advance()
            }
            Signal::Reload(NewRules(new)) => {
                if !self.flush_hits() {
                    return false;
                }
                let map = Arc::new(TargetMap::between(&self.rules, &new));
                let routes = new.correlations.iter().map(|c| c.route.clone()).collect();
                let dropped = self.seq.resolver_mut().reload(routes, &map);
                tracing::info!(
                    kept = map.kept_correlations(),
                    correlations = new.correlations.len(),
                    dropped_hits = dropped,
                    "rule reload at this point of the stream"
                );
                Metrics::add(&self.metrics.rule_reloads, 1);
                self.rules = new.clone();
                self.shards
                    .iter()
                    .all(|tx| tx.send(ShardMsg::Reload(new.clone(), map.clone())).is_ok())
            }
            Signal::EndOfInput => {
                // Every hit still waiting for event time, then the end of time for the shards.
                self.seq
                    .release(EventTime::MAX, &mut self.outbox.router(&self.shards));
                self.flush_hits()
                    && self
                        .shards
                        .iter()
                        .all(|tx| tx.send(ShardMsg::Finish).is_ok())
            }
            Signal::Barrier { epoch, drain } => self.barrier(epoch, drain),
        }
    }
}

#[path = "sequence_barrier.rs"]
mod barrier_part;

#[path = "sequence_cluster.rs"]
mod cluster_part;

#[cfg(test)]
#[path = "sequence_tests.rs"]
mod tests;
