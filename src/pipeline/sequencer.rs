//! The sequencer: puts decoded batches back in input order and keeps event time.
//!
//! Each source (a file, standard input, a Kafka partition) has a [`SourceClock`]: the largest
//! event time seen, minus the source's allowed lateness, is its watermark. An event older than
//! its source's watermark is late, one too far ahead of its reference is `future` (see
//! [`clock`]): both are counted and dead-lettered, never silently merged, and
//! neither moves the clock. The engine's watermark ([`Sequencer::watermark`]) is the minimum
//! over the sources that hold time back (a finished source is at the end of time; a quiet one,
//! idle or revoked, does not count), and never below the floor the wall clock set while every
//! source was quiet. Hits wait in the resolver until that watermark passes them. Because
//! batches are handled in input order, these decisions depend only on the input, not on which
//! worker finished first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::carried::Carried;
pub use super::clock::SourceClock;
use super::clock::{self, Decided, Held, Reference, Verdict};
use super::worker::DecodedBatch;
use crate::cluster::frontier::{Frontier, Inputs};
use crate::correlate::Hit;
use crate::deadletter::DeadLetter;
use crate::identity::Resolver;
use crate::time::EventTime;

/// Counters of the sequencer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequencerStats {
    pub events: u64,
    pub late: u64,
    /// Events too far ahead of their source's reference (`future` dead letters).
    pub future: u64,
    pub dead_letters: u64,
    pub hits: u64,
    /// Hits of cluster records dropped as copies a restarted stage 1 wrote again.
    pub copies: u64,
    /// Dead letters by reason code.
    pub by_reason: BTreeMap<&'static str, u64>,
}

/// Most input partitions a stamped source learns from its stamps when the cluster's inputs
/// are not given (record files).
pub const MAX_OPEN_INPUTS: usize = 65_536;

/// Orders batches and routes what they produced.
pub struct Sequencer {
    clocks: Vec<SourceClock>,
    /// Per source, events ahead of its median waiting for confirmation (at most
    /// [`clock::WINDOW`] each).
    held: Vec<VecDeque<Held>>,
    reference: Reference,
    /// Engine time set by the wall clock while every source was quiet.
    floor: EventTime,
    next_seq: u64,
    waiting: BTreeMap<u64, DecodedBatch>,
    shards: usize,
    resolver: Resolver,
    /// Per stamped source (a hits partition): the frontier of the stamps it carried.
    frontiers: HashMap<u32, Frontier>,
    /// The input partitions of the cluster, whose stamps stamped sources wait for.
    inputs: Arc<Inputs>,
    /// Stage 1 with a shared lineage: how far every input partition's links are in
    /// (engine time waits for it); `None`: links are this engine's own.
    remote: Option<EventTime>,
    /// Stage 1 with a shared lineage: links accepted from this engine's sources, to write out.
    outbound: Option<Vec<crate::identity::Link>>,
    pub stats: SequencerStats,
}

impl Sequencer {
    /// `clocks[i]` is the clock of source `i`; `reference` is what "too far ahead" is measured
    /// against.
    pub fn new(
        clocks: Vec<SourceClock>,
        reference: Reference,
        shards: usize,
        resolver: Resolver,
    ) -> Sequencer {
        Sequencer {
            held: clocks.iter().map(|_| VecDeque::new()).collect(),
            clocks,
            reference,
            floor: EventTime::MIN,
            next_seq: 0,
            waiting: BTreeMap::new(),
            shards: shards.max(1),
            resolver,
            frontiers: HashMap::new(),
            inputs: Arc::new(Inputs::open(MAX_OPEN_INPUTS)),
            remote: None,
            outbound: None,
            stats: SequencerStats::default(),
        }
    }

    /// The engine's watermark: the minimum over the sources that hold time back, not below the
    /// wall clock's floor; `None` while no source holds time back and the wall clock set none.
    pub fn watermark(&self) -> Option<EventTime> {
        let min = self.clocks.iter().filter_map(SourceClock::holding).min();
        let local = match min {
            Some(w) => Some(w.max(self.floor)),
            None => (self.floor != EventTime::MIN).then_some(self.floor),
        };
        match (local, self.remote) {
            (_, None) => local,
            (Some(l), Some(r)) => Some(l.min(r)),
            (None, Some(r)) => (r != EventTime::MIN).then_some(r),
        }
    }

    /// Stage 1 with a shared lineage: engine time waits for the lineage frontier from now on
    /// (nothing is released before the first one arrives), and links accepted from this
    /// engine's sources are kept for [`Sequencer::take_outbound`].
    pub fn share_lineage(&mut self) {
        self.remote = Some(EventTime::MIN);
        self.outbound = Some(Vec::new());
    }

    /// Links other instances wrote (and this one's, read back): applied in event-time order
    /// with the rest; `frontier` says how far every input partition's links are in.
    pub fn remote_lineage(
        &mut self,
        links: Vec<crate::identity::Link>,
        frontier: EventTime,
        route: &mut dyn FnMut(usize, Hit),
    ) {
        let shards = self.shards as u64;
        let mut route_hit = |h: Hit| route((h.shard_key % shards) as usize, h);
        for link in links {
            self.resolver.push_link(link, &mut route_hit);
        }
        if let Some(r) = &mut self.remote {
            *r = (*r).max(frontier);
        }
    }

    /// Stage 2 with a changelog: the stamps read in `source` and its hits waiting here.
    pub fn mark(&self, source: u32) -> super::SourceMark {
        super::SourceMark {
            source,
            stamps: self
                .frontiers
                .get(&source)
                .map(Frontier::stamps)
                .unwrap_or_default(),
            pending: self
                .resolver
                .waiting_hits(&|h: &Hit| h.event.pos.source == source),
        }
    }

    /// Stage 2 with a changelog: `source` was revoked; its stamps and waiting hits go (its
    /// next owner restores them, or replays).
    pub fn forget_source(&mut self, source: u32) -> usize {
        self.frontiers.remove(&source);
        self.resolver
            .forget_hits(&|h: &Hit| h.event.pos.source == source)
    }

    /// Stage 2 with a changelog: the stamps a restored partition had read.
    pub fn restore_stamps(&mut self, source: u32, stamps: &[(String, i32, i64)]) {
        let inputs = self.inputs.clone();
        let f = self
            .frontiers
            .entry(source)
            .or_insert_with(|| Frontier::new(inputs));
        for (topic, partition, at) in stamps {
            let s = crate::cluster::record::Stamp {
                v: crate::cluster::record::VERSION,
                topic: topic.clone(),
                partition: *partition,
                frontier: *at,
            };
            if let Err(e) = f.stamp(&s) {
                tracing::warn!(source, error = %e, "restored stamp ignored");
            }
        }
        if let Some(clock) = self.clocks.get_mut(source as usize) {
            clock.max_seen = clock.max_seen.max(f.time());
        }
    }

    /// The links accepted from this engine's sources since the last call.
    pub fn take_outbound(&mut self) -> Vec<crate::identity::Link> {
        self.outbound
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// How far the links of `source` are complete: its watermark, or the end of time once
    /// it holds time back no more (quiet, finished).
    pub fn lineage_frontier(&self, source: u32) -> Option<EventTime> {
        let c = self.clocks.get(source as usize)?;
        Some(c.holding().unwrap_or(EventTime::MAX))
    }

    /// The sources whose watermark is the engine's (what holds time back), with it.
    pub fn holders(&self) -> Vec<(u32, EventTime)> {
        let Some(min) = self.clocks.iter().filter_map(SourceClock::holding).min() else {
            return Vec::new();
        };
        if min == EventTime::MAX || min < self.floor {
            return Vec::new();
        }
        (self.clocks.iter().enumerate())
            .filter(|(_, c)| c.holding() == Some(min))
            .map(|(i, _)| (i as u32, min))
            .collect()
    }

    /// Every source is quiet (and at least one is not finished) at wall time `wall`: engine
    /// time follows the wall clock, `wall` minus the largest lateness of the open sources.
    /// Returns whether the floor moved.
    pub fn follow_wall_clock(&mut self, wall: EventTime) -> bool {
        let open = self.clocks.iter().filter(|c| !c.done);
        if open.clone().any(|c| !c.quiet) {
            return false;
        }
        let Some(lateness) = open.map(|c| c.time.lateness).max() else {
            return false;
        };
        let floor = wall.minus(lateness);
        if floor <= self.floor {
            return false;
        }
        self.floor = floor;
        true
    }

    /// Adds a source (a Kafka partition assigned later) and returns its index.
    pub fn add_source(&mut self, clock: SourceClock) -> u32 {
        self.clocks.push(clock);
        self.held.push(VecDeque::new());
        (self.clocks.len() - 1) as u32
    }

    /// The input partitions stamped sources wait for (a service knows them from the broker).
    pub fn set_cluster_inputs(&mut self, inputs: Arc<Inputs>) {
        self.inputs = inputs;
    }

    pub fn reference(&self) -> Reference {
        self.reference
    }

    pub fn clock_mut(&mut self, source: u32) -> Option<&mut SourceClock> {
        self.clocks.get_mut(source as usize)
    }

    /// Accepts a batch (in any order) and handles every batch that is now next in line:
    /// `dead(letter)` for failures and late events, `done(batch)` to hand the buffer back;
    /// hits and credential links of events in time go to the resolver, which hands hits on to
    /// `route(shard, hit)` once the watermark has passed them, identities resolved. Returns how
    /// many batches were handled.
    pub fn accept(
        &mut self,
        decoded: DecodedBatch,
        route: &mut dyn FnMut(usize, Hit),
        dead: &mut dyn FnMut(DeadLetter),
        done: &mut dyn FnMut(DecodedBatch),
    ) -> usize {
        self.waiting.insert(decoded.batch.seq, decoded);
        let mut handled = 0;
        while let Some(mut d) = self.waiting.remove(&self.next_seq) {
            self.next_seq += 1;
            self.handle(&mut d, route, dead);
            done(d);
            handled += 1;
        }
        if let Some(watermark) = self.watermark() {
            self.release(watermark, route);
        }
        handled
    }

    /// Hands on every hit older than `watermark` (all of them for [`EventTime::MAX`]).
    pub fn release(&mut self, watermark: EventTime, route: &mut dyn FnMut(usize, Hit)) {
        let shards = self.shards as u64;
        self.resolver.release(watermark, &mut |h| {
            route((h.shard_key % shards) as usize, h)
        });
    }

    pub fn resolver_mut(&mut self) -> &mut Resolver {
        &mut self.resolver
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Batches received but waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn handle(
        &mut self,
        d: &mut DecodedBatch,
        route: &mut dyn FnMut(usize, Hit),
        dead: &mut dyn FnMut(DeadLetter),
    ) {
        let source = d.batch.source;
        if self
            .clocks
            .get(source as usize)
            .is_some_and(|c| c.time.stamped)
        {
            return self.handle_carried(d, route, dead);
        }
        let mut failures = d.failures.iter().peekable();
        let mut hits = std::mem::take(&mut d.hits).into_iter().peekable();
        let mut links = std::mem::take(&mut d.links).into_iter().peekable();
        let shards = self.shards as u64;
        let mut route_hit = |h: Hit| route((h.shard_key % shards) as usize, h);
        let wall = match self.reference {
            Reference::WallClock => Some(clock::wall_now()),
            Reference::RecentMedian => None,
        };
        for (i, &t) in d.times.iter().enumerate() {
            let i32_ = i as u32;
            self.stats.events += 1;
            let line = d.batch.lines[i];
            let letter = |kind: &'static str, reason: String| DeadLetter {
                pos: crate::input::Position {
                    source,
                    offset: line.offset,
                },
                kind,
                reason,
                raw: d.batch.line(i).to_vec(),
                bytes: line.full_len,
            };
            if failures.peek().is_some_and(|(fi, _)| *fi == i32_) {
                let Some((_, e)) = failures.next() else {
                    continue;
                };
                self.stats.dead_letters += 1;
                *self.stats.by_reason.entry(e.kind()).or_insert(0) += 1;
                dead(letter(e.kind(), e.to_string()));
                continue;
            }
            let Some(clock) = self.clocks.get_mut(source as usize) else {
                continue;
            };
            let skip = |hits: &mut std::iter::Peekable<_>, links: &mut std::iter::Peekable<_>| {
                while hits
                    .peek()
                    .is_some_and(|(hi, ..): &(u32, Hit, _)| *hi == i32_)
                {
                    hits.next();
                }
                while links
                    .peek()
                    .is_some_and(|(li, _): &(u32, crate::identity::Link)| *li == i32_)
                {
                    links.next();
                }
            };
            match clock.judge(t, wall) {
                Verdict::Late { watermark } => {
                    self.stats.late += 1;
                    self.stats.dead_letters += 1;
                    *self.stats.by_reason.entry("late").or_insert(0) += 1;
                    dead(letter(
                        "late",
                        format!(
                            "late event: time {t} is before the source watermark {watermark} (allowed lateness {})",
                            clock.time.lateness
                        ),
                    ));
                    skip(&mut hits, &mut links);
                    continue;
                }
                Verdict::Future { reference } => {
                    self.stats.future += 1;
                    self.stats.dead_letters += 1;
                    *self.stats.by_reason.entry("future").or_insert(0) += 1;
                    dead(letter(
                        "future",
                        format!(
                            "future event: time {t} is more than {} ahead of the wall clock {reference}",
                            clock.time.max_future
                        ),
                    ));
                    skip(&mut hits, &mut links);
                    continue;
                }
                Verdict::Hold => {
                    let mut held = Held {
                        time: t,
                        at: clock.events,
                        hits: Vec::new(),
                        links: Vec::new(),
                        letter: DeadLetter {
                            pos: crate::input::Position {
                                source,
                                offset: line.offset,
                            },
                            kind: "future",
                            reason: String::new(),
                            raw: clock::held_raw(d.batch.line(i)),
                            bytes: line.full_len,
                        },
                    };
                    while links.peek().is_some_and(|(li, _)| *li == i32_) {
                        if let Some((_, link)) = links.next() {
                            held.links.push(link);
                        }
                    }
                    while hits.peek().is_some_and(|(hi, ..)| *hi == i32_) {
                        if let Some((_, h, identity)) = hits.next() {
                            held.hits.push((h, identity));
                        }
                    }
                    if let Some(q) = self.held.get_mut(source as usize) {
                        q.push_back(held);
                    }
                }
                Verdict::InTime => {
                    clock.accept(t);
                    while links.peek().is_some_and(|(li, _)| *li == i32_) {
                        if let Some((_, mut link)) = links.next() {
                            link.pos = link.kind.holds_offset().then_some(crate::input::Position {
                                source,
                                offset: line.offset,
                            });
                            if let Some(out) = &mut self.outbound {
                                out.push(link.clone());
                            }
                            self.resolver.push_link(link, &mut route_hit);
                        }
                    }
                    while hits.peek().is_some_and(|(hi, ..)| *hi == i32_) {
                        if let Some((_, h, identity)) = hits.next() {
                            self.stats.hits += 1;
                            self.resolver.push_hit(h, identity, &mut route_hit);
                        }
                    }
                }
            }
            if self
                .held
                .get(source as usize)
                .is_some_and(|q| !q.is_empty())
            {
                self.decide_held(source, &mut route_hit, dead);
            }
        }
        if d.batch.source_done
            && let Some(clock) = self.clocks.get_mut(source as usize)
        {
            clock.done = true;
            self.decide_held(source, &mut route_hit, dead);
        }
    }

    /// Accepts the held events of `source` its median now confirms, dead-letters those it
    /// refutes.
    fn decide_held(
        &mut self,
        source: u32,
        route: &mut dyn FnMut(Hit),
        dead: &mut dyn FnMut(DeadLetter),
    ) {
        let (Some(clock), Some(queue)) = (
            self.clocks.get_mut(source as usize),
            self.held.get_mut(source as usize),
        ) else {
            return;
        };
        let mut decided = Vec::new();
        clock::review_held(clock, queue, &mut decided);
        for d in decided {
            match d {
                Decided::Accepted(h) => {
                    clock.accept(h.time);
                    for mut link in h.links {
                        link.pos = link.kind.holds_offset().then_some(h.letter.pos);
                        if let Some(out) = &mut self.outbound {
                            out.push(link.clone());
                        }
                        self.resolver.push_link(link, route);
                    }
                    for (hit, identity) in h.hits {
                        self.stats.hits += 1;
                        self.resolver.push_hit(hit, identity, route);
                    }
                }
                Decided::Future(mut h, median) => {
                    self.stats.future += 1;
                    self.stats.dead_letters += 1;
                    *self.stats.by_reason.entry("future").or_insert(0) += 1;
                    h.letter.reason = format!(
                        "future event: time {} is more than {} ahead of the median {median} of its source's recent events, and later events did not confirm it",
                        h.time, clock.time.max_future
                    );
                    dead(h.letter);
                }
            }
        }
    }
}

impl Sequencer {
    /// A batch of a stamped source (cluster records): stamps move the source's frontier, which
    /// is its clock; a hit older than the frontier of its input partition is a copy a restarted
    /// stage 1 wrote again and is dropped (counted); any other goes to the resolver, which
    /// holds it until engine time passes it, as every hit. No lateness is judged here: stage 1
    /// judged it.
    fn handle_carried(
        &mut self,
        d: &mut DecodedBatch,
        route: &mut dyn FnMut(usize, Hit),
        dead: &mut dyn FnMut(DeadLetter),
    ) {
        let source = d.batch.source;
        let shards = self.shards as u64;
        let mut route_hit = |h: Hit| route((h.shard_key % shards) as usize, h);
        let mut hits = std::mem::take(&mut d.hits).into_iter().peekable();
        let inputs = self.inputs.clone();
        let frontier = self
            .frontiers
            .entry(source)
            .or_insert_with(|| Frontier::new(inputs));
        for (line, carried) in std::mem::take(&mut d.carried) {
            self.stats.events += 1;
            let i = line as usize;
            let letter = |reason: String| DeadLetter {
                pos: crate::input::Position {
                    source,
                    offset: d.batch.lines[i].offset,
                },
                kind: "cluster_record",
                reason,
                raw: d.batch.line(i).to_vec(),
                bytes: d.batch.lines[i].full_len,
            };
            let refused = match carried {
                Carried::Refused(why) => Some(why),
                Carried::Stamp(s) => frontier.stamp(&s).err().map(|e| format!("stamp: {e}")),
                Carried::Hit { topic, partition } => {
                    let hit = hits.next_if(|(l, ..)| *l == line).map(|(_, h, _)| h);
                    match hit.map(|h| (frontier.admits(&topic, partition, h.event.time), h)) {
                        Some((Ok(true), hit)) => {
                            self.stats.hits += 1;
                            self.resolver.push_hit(hit, None, &mut route_hit);
                            None
                        }
                        Some((Ok(false), _)) => {
                            self.stats.copies += 1;
                            None
                        }
                        Some((Err(e), _)) => Some(format!("hit: {e}")),
                        None => None,
                    }
                }
            };
            if let Some(why) = refused {
                self.stats.dead_letters += 1;
                *self.stats.by_reason.entry("cluster_record").or_insert(0) += 1;
                dead(letter(why));
            }
        }
        // The frontier is the source's clock; taken once per batch, after its stamps.
        if let Some(clock) = self.clocks.get_mut(source as usize) {
            clock.max_seen = clock.max_seen.max(frontier.time());
            clock.done |= d.batch.source_done;
        }
    }
}
