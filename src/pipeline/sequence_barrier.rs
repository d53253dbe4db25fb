//! The sequence thread at a commit barrier: the sequenced end and clock of every assigned
//! source, what the resolver still needs replayed, a changelog's marks; then each shard's
//! report. Also the periodic word on what holds event time back.

use std::collections::HashMap;
use std::time::Instant;

use super::{HELD_BACK_EVERY, State};
use crate::input::SourceInfo;
use crate::pipeline::{Bookkeeping, OutputMsg, SequencedEnd, ShardMsg};
use crate::time::EventTime;

impl State<'_> {
    /// Reports what may be committed (see [`crate::pipeline::Signal::Barrier`]).
    pub(super) fn barrier(&mut self, epoch: u64, drain: bool) -> bool {
        if !self.flush_hits() {
            return false;
        }
        // Barriers come every commit interval, also while nothing else arrives.
        let w = self.seq.watermark().unwrap_or(EventTime::MIN);
        self.report_held_back(w);
        // What the resolver still needs replayed after a restart. Measured from the
        // engine time the shards were last given, which idle partitions cannot move back.
        let links_since = match self.sent_watermark {
            EventTime::MIN => EventTime::MIN,
            w => w.minus(self.lineage_hold),
        };
        let mut held = HashMap::new();
        self.seq.resolver().oldest_positions(links_since, &mut held);
        let mut ends = Vec::new();
        for (s, p) in &self.parts {
            if !p.assigned {
                continue;
            }
            let Some(end) = p.end else { continue };
            let clock = self
                .seq
                .clock_mut(*s)
                .map_or(EventTime::MIN, |c| c.max_seen);
            // Until the replay passes the restored end, the restored clock is the
            // partition's true clock.
            let clock = p.restored_clock.map_or(clock, |r| r.max(clock));
            ends.push(SequencedEnd {
                source: *s,
                end,
                decided: end.max(p.replay_end),
                clock,
                hold: held.get(s).copied(),
            });
        }
        ends.sort_by_key(|e| e.source);
        // No marker for a partition still replaying up to its restored end: its clock is the
        // one at that end, and a restore from the sequenced end would judge the rest of the
        // replay against it.
        let marks = match self.changelog {
            Some(_) => (ends.iter())
                .filter(|e| e.end == e.decided)
                .map(|e| self.seq.mark(e.source))
                .collect(),
            None => Vec::new(),
        };
        self.delivery
            .send(OutputMsg::Bookkeeping(Bookkeeping::Barrier {
                epoch,
                drain,
                ends,
                links_evicted: self.seq.resolver().lineage().stats().evicted,
                marks,
                watermark: self.sent_watermark,
            }))
            .is_ok()
            && self
                .shards
                .iter()
                .all(|tx| tx.send(ShardMsg::Report(epoch)).is_ok())
    }

    /// Every [`HELD_BACK_EVERY`]: publishes which sources hold engine time back and, when
    /// engine time did not move since the last time, says so in the log.
    pub(super) fn report_held_back(&mut self, w: EventTime) {
        let now = Instant::now();
        if now < self.held_back.next {
            return;
        }
        self.held_back.next = now + HELD_BACK_EVERY;
        let holders = self.seq.holders();
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        let mut names = Vec::new();
        let mut gauge = Vec::new();
        for (s, at) in &holders {
            let never = *at == EventTime::MIN;
            let name = match sources.get(*s) {
                Some(SourceInfo::Kafka { topic, partition }) => {
                    gauge.push((topic.clone(), *partition));
                    format!("{topic}/{partition}")
                }
                Some(SourceInfo::File(p)) => p.display().to_string(),
                Some(SourceInfo::Stdin) => "-".into(),
                None => format!("source#{s}"),
            };
            names.push(if never {
                format!("{name} (never spoke)")
            } else {
                name
            });
        }
        drop(sources);
        self.metrics.set_time_holders(self.part, gauge);
        let stalled = w <= self.held_back.watermark;
        self.held_back.watermark = w;
        if stalled && !names.is_empty() {
            tracing::warn!(
                holders = names.join(", "),
                watermark = %w,
                "event time is held back: these sources have the oldest watermark (a source that never spoke holds time until the idle timeout)"
            );
        }
    }
}
