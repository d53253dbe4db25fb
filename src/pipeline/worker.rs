//! The decode-and-match worker: a batch of raw events in, their times, failures and hits out.
//! Workers own their decoder and matcher (no shared mutable state); any number run in parallel
//! because nothing they produce depends on which worker produced it.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::correlate::{EventRef, GROUP_SEPARATOR, Hit, Target};
use crate::decode::{DecodeError, Decoder, EventView, ProfileKind, event_key};
use crate::input::{Batch, Position};
use crate::matcher::{FieldSource, Matcher, RuleSet};
use crate::time::EventTime;

/// A batch after decoding and matching.
#[derive(Debug)]
pub struct DecodedBatch {
    pub batch: Batch,
    /// Event time of each line; [`EventTime::MIN`] where decoding failed.
    pub times: Vec<EventTime>,
    /// (line index, why it failed)
    pub failures: Vec<(u32, DecodeError)>,
    /// (line index, hit), in line order.
    pub hits: Vec<(u32, Hit)>,
}

/// What a worker counted.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    pub events: u64,
    pub decoded: u64,
    /// Matches per detection (index into `RuleSet::detections`).
    pub matches: Vec<u64>,
    /// Hits dropped because a group-by field was missing, per correlation.
    pub missing_group: Vec<u64>,
    /// Decode-and-match time per event, nanoseconds, one event in [`LATENCY_SAMPLE`].
    pub latency: Histogram<u64>,
}

/// One event in this many has its engine latency recorded (the clock read costs ~25 ns).
pub const LATENCY_SAMPLE: u64 = 16;

impl WorkerStats {
    pub fn new(rules: &RuleSet) -> WorkerStats {
        WorkerStats {
            events: 0,
            decoded: 0,
            matches: vec![0; rules.detections.len()],
            missing_group: vec![0; rules.correlations.len()],
            latency: new_histogram(),
        }
    }

    pub fn merge(&mut self, other: &WorkerStats) {
        self.events += other.events;
        self.decoded += other.decoded;
        for (a, b) in self.matches.iter_mut().zip(&other.matches) {
            *a += b;
        }
        for (a, b) in self.missing_group.iter_mut().zip(&other.missing_group) {
            *a += b;
        }
        let _ = self.latency.add(&other.latency);
    }
}

/// A latency histogram from 1 ns to 60 s with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// One decode-and-match worker.
pub struct Worker {
    rules: Arc<RuleSet>,
    decoder: Decoder,
    matcher: Matcher,
    matched: Vec<u32>,
    pub stats: WorkerStats,
}

impl Worker {
    pub fn new(rules: Arc<RuleSet>) -> Worker {
        Worker {
            decoder: Decoder::new(&rules.schema),
            matcher: Matcher::new(&rules),
            matched: Vec::new(),
            stats: WorkerStats::new(&rules),
            rules,
        }
    }

    /// Decodes and matches every event of `batch`.
    pub fn process(&mut self, batch: Batch) -> DecodedBatch {
        let forced = self.rules.schema.forced;
        self.process_as(batch, forced)
    }

    /// [`Worker::process`] with every event read as profile `forced` (`None`: recognised per
    /// event), whatever the rule set's default.
    pub fn process_as(&mut self, batch: Batch, forced: Option<ProfileKind>) -> DecodedBatch {
        let mut out = DecodedBatch {
            times: Vec::with_capacity(batch.lines.len()),
            failures: Vec::new(),
            hits: Vec::new(),
            batch,
        };
        let rules = &*self.rules;
        for i in 0..out.batch.lines.len() {
            let line = out.batch.lines[i];
            let raw = &out.batch.buf[line.start..line.start + line.len];
            self.stats.events += 1;
            let timed = self.stats.events.is_multiple_of(LATENCY_SAMPLE);
            let started = timed.then(Instant::now);
            let pos = Position {
                source: out.batch.source,
                offset: line.offset,
            };
            let matched = &mut self.matched;
            let matcher = &mut self.matcher;
            let stats = &mut self.stats;
            let hits = &mut out.hits;
            let result =
                self.decoder
                    .decode_as(&rules.schema, forced, raw, line.full_len, |view| {
                        let view = view?;
                        matched.clear();
                        matcher.matches(rules, &view, matched);
                        if !matched.is_empty() {
                            emit_hits(rules, &view, matched, pos, i as u32, stats, hits);
                        }
                        Ok::<EventTime, DecodeError>(view.time)
                    });
            if let Some(s) = started {
                let _ = self
                    .stats
                    .latency
                    .record(s.elapsed().as_nanos().max(1) as u64);
            }
            match result {
                Ok(t) => {
                    self.stats.decoded += 1;
                    out.times.push(t);
                }
                Err(e) => {
                    out.times.push(EventTime::MIN);
                    out.failures.push((i as u32, e));
                }
            }
        }
        out
    }
}

/// The hits of one matched event: one per standalone detection, one per correlation fed.
fn emit_hits(
    rules: &RuleSet,
    view: &EventView<'_, '_>,
    matched: &[u32],
    pos: Position,
    line: u32,
    stats: &mut WorkerStats,
    out: &mut Vec<(u32, Hit)>,
) {
    let id: Box<str> = view.event_id(&rules.schema).into();
    let event = EventRef {
        time: view.time,
        key: event_key(&id),
        pos,
        id,
    };
    for &d in matched {
        stats.matches[d as usize] += 1;
        let det = &rules.detections[d as usize];
        if det.standalone {
            let group = view.identity(&rules.schema).unwrap_or_default();
            out.push((
                line,
                Hit {
                    target: Target::Detection(d),
                    stages: 0,
                    group: group.into(),
                    value: None,
                    event: event.clone(),
                },
            ));
        }
        for &(c, stages) in &det.uses {
            let corr = &rules.correlations[c as usize];
            let first_stage = stages.trailing_zeros() as usize;
            let Some(group) = field_values(rules, view, &corr.group_fields[first_stage]) else {
                stats.missing_group[c as usize] += 1;
                continue;
            };
            let value = corr
                .value_field
                .as_ref()
                .and_then(|f| field_values(rules, view, &f[first_stage..=first_stage]))
                .map(String::into_boxed_str);
            out.push((
                line,
                Hit {
                    target: Target::Correlation(c),
                    stages,
                    group: group.into(),
                    value,
                    event: event.clone(),
                },
            ));
        }
    }
}

/// The values of `fields` joined by [`GROUP_SEPARATOR`]; `None` if one is missing.
fn field_values(
    rules: &RuleSet,
    view: &EventView<'_, '_>,
    fields: &[FieldSource],
) -> Option<String> {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(GROUP_SEPARATOR);
        }
        match f {
            FieldSource::Slot(s) => out.push_str(&view.first_text(*s)?),
            FieldSource::Identity => out.push_str(&view.identity(&rules.schema)?),
            FieldSource::Missing => return None,
        }
    }
    Some(out)
}
