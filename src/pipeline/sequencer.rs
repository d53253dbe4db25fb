//! The sequencer: puts decoded batches back in input order and keeps event time.
//!
//! Each source (a file, standard input, a Kafka partition) has a [`SourceClock`]: the largest
//! event time seen, minus the source's allowed lateness, is its watermark. An event older than
//! its source's watermark is late: it is counted and dead-lettered, never silently merged. The
//! engine's watermark is the minimum over the sources still open (a finished source no longer
//! holds time back). Because batches are handled in input order, lateness decisions depend only
//! on the input, not on which worker finished first.

use std::collections::BTreeMap;

use super::worker::DecodedBatch;
use crate::correlate::Hit;
use crate::deadletter::DeadLetter;
use crate::identity::Resolver;
use crate::time::{EventTime, Span};

/// Event time of one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceClock {
    pub max_seen: EventTime,
    pub lateness: Span,
    pub done: bool,
}

impl SourceClock {
    pub fn new(lateness: Span) -> SourceClock {
        SourceClock {
            max_seen: EventTime::MIN,
            lateness,
            done: false,
        }
    }

    pub fn watermark(&self) -> EventTime {
        if self.done {
            EventTime::MAX
        } else if self.max_seen == EventTime::MIN {
            EventTime::MIN
        } else {
            self.max_seen.minus(self.lateness)
        }
    }
}

/// Counters of the sequencer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequencerStats {
    pub events: u64,
    pub late: u64,
    pub dead_letters: u64,
    pub hits: u64,
    /// Dead letters by reason code.
    pub by_reason: BTreeMap<&'static str, u64>,
}

/// Orders batches and routes what they produced.
pub struct Sequencer {
    clocks: Vec<SourceClock>,
    next_seq: u64,
    waiting: BTreeMap<u64, DecodedBatch>,
    shards: usize,
    resolver: Resolver,
    pub stats: SequencerStats,
}

impl Sequencer {
    /// `clocks[i]` is the clock of source `i`.
    pub fn new(clocks: Vec<SourceClock>, shards: usize, resolver: Resolver) -> Sequencer {
        Sequencer {
            clocks,
            next_seq: 0,
            waiting: BTreeMap::new(),
            shards: shards.max(1),
            resolver,
            stats: SequencerStats::default(),
        }
    }

    /// The engine's watermark: the minimum over the sources.
    pub fn watermark(&self) -> EventTime {
        self.clocks
            .iter()
            .map(SourceClock::watermark)
            .min()
            .unwrap_or(EventTime::MAX)
    }

    /// Adds a source (a Kafka partition assigned later) and returns its index.
    pub fn add_source(&mut self, clock: SourceClock) -> u32 {
        self.clocks.push(clock);
        (self.clocks.len() - 1) as u32
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
        let watermark = self.watermark();
        self.release(watermark, route);
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
        let mut failures = d.failures.iter().peekable();
        let mut hits = std::mem::take(&mut d.hits).into_iter().peekable();
        let mut links = std::mem::take(&mut d.links).into_iter().peekable();
        let shards = self.shards as u64;
        let mut route_hit = |h: Hit| route((h.shard_key % shards) as usize, h);
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
            let watermark = clock.watermark();
            if t < watermark {
                self.stats.late += 1;
                self.stats.dead_letters += 1;
                *self.stats.by_reason.entry("late").or_insert(0) += 1;
                dead(letter(
                    "late",
                    format!(
                        "late event: time {t} is before the source watermark {watermark} (allowed lateness {})",
                        clock.lateness
                    ),
                ));
                while hits.peek().is_some_and(|(hi, ..)| *hi == i32_) {
                    hits.next();
                }
                while links.peek().is_some_and(|(li, _)| *li == i32_) {
                    links.next();
                }
                continue;
            }
            clock.max_seen = clock.max_seen.max(t);
            while links.peek().is_some_and(|(li, _)| *li == i32_) {
                if let Some((_, mut link)) = links.next() {
                    link.pos = Some(crate::input::Position {
                        source,
                        offset: line.offset,
                    });
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
        if d.batch.source_done
            && let Some(clock) = self.clocks.get_mut(source as usize)
        {
            clock.done = true;
        }
    }
}
