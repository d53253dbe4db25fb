//! The decode-and-match worker: a batch of raw events in, their times, failures and hits out.
//! Workers own their decoder and matcher (no shared mutable state); any number run in parallel
//! because nothing they produce depends on which worker produced it.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::correlate::{EventRef, GROUP_SEPARATOR, Hit, Target, shard_key};
use crate::decode::{DecodeError, Decoder, EventView, MintLifetimes, ProfileKind, event_key};
use crate::identity::resolver::IDENTITY_MARK;
use crate::identity::{IdentityRef, Link, LinkKind, Sightings};
use crate::input::{Batch, Position};
use crate::matcher::memo::MemoStats;
use crate::matcher::{FieldSource, Matcher, RuleSet};
use crate::metrics::Metrics;
use crate::time::EventTime;

use super::{Decoded, Format, Item};

/// A batch after decoding and matching.
#[derive(Debug)]
pub struct DecodedBatch {
    pub batch: Batch,
    /// Event time of each line; [`EventTime::MIN`] where decoding failed.
    pub times: Vec<EventTime>,
    /// (line index, why it failed)
    pub failures: Vec<(u32, DecodeError)>,
    /// (line index, hit, the acting identity when the hit's group key holds
    /// [`IDENTITY_MARK`]s for the resolver to fill in), in line order.
    pub hits: Vec<(u32, Hit, Option<IdentityRef>)>,
    /// (line index, credential the event minted), in line order.
    pub links: Vec<(u32, Link)>,
    /// For a batch of cluster records: what each line carried, in line order (its hit, if
    /// any, is in `hits` at the same line).
    pub carried: Vec<(u32, super::carried::Carried)>,
}

/// What a worker counted.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    pub events: u64,
    pub decoded: u64,
    /// Events over a decode limit that were decoded reduced (see `decode::salvage`), per
    /// limit code; included in `decoded`.
    pub salvaged: std::collections::BTreeMap<&'static str, u64>,
    /// Matches per detection (index into `RuleSet::detections`).
    pub matches: Vec<u64>,
    /// Hits dropped because a group-by field was missing, per correlation.
    pub missing_group: Vec<u64>,
    /// Decode-and-match time per event, nanoseconds, one event in [`LATENCY_SAMPLE`].
    pub latency: Histogram<u64>,
    /// Long texts the matcher's scan memo answered, and the ones it walked.
    pub memo: MemoStats,
}

/// Most touched values taken from one event (a policy listing a thousand resources stays small).
pub const TOUCHES_PER_EVENT: usize = 16;

/// One event in this many has its engine latency recorded (the clock read costs ~25 ns).
pub const LATENCY_SAMPLE: u64 = 16;

impl WorkerStats {
    pub fn new(rules: &RuleSet) -> WorkerStats {
        WorkerStats {
            events: 0,
            decoded: 0,
            salvaged: Default::default(),
            matches: vec![0; rules.detections.len()],
            missing_group: vec![0; rules.correlations.len()],
            latency: new_histogram(),
            memo: MemoStats::default(),
        }
    }

    pub fn merge(&mut self, other: &WorkerStats) {
        self.events += other.events;
        self.decoded += other.decoded;
        for (k, n) in &other.salvaged {
            *self.salvaged.entry(k).or_insert(0) += n;
        }
        for (a, b) in self.matches.iter_mut().zip(&other.matches) {
            *a += b;
        }
        for (a, b) in self.missing_group.iter_mut().zip(&other.missing_group) {
            *a += b;
        }
        let _ = self.latency.add(&other.latency);
        self.memo.hits += other.memo.hits;
        self.memo.misses += other.memo.misses;
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
    mint: MintLifetimes,
    /// Credentials already shown acting as their owner (see [`Sightings`]).
    sightings: Sightings,
    pub stats: WorkerStats,
}

impl Worker {
    pub fn new(rules: Arc<RuleSet>, mint: MintLifetimes) -> Worker {
        Worker {
            decoder: Decoder::new(&rules.schema),
            matcher: Matcher::new(&rules),
            matched: Vec::new(),
            sightings: Sightings::new(mint.key_owner),
            mint,
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
            links: Vec::new(),
            carried: Vec::new(),
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
            let mut ctx = EventCtx {
                rules,
                matched: &mut self.matched,
                matcher: &mut self.matcher,
                stats: &mut self.stats,
                hits: &mut out.hits,
                links: &mut out.links,
                mint: &self.mint,
                sightings: &mut self.sightings,
                pos,
                line: i as u32,
            };
            let result =
                self.decoder
                    .decode_as(&rules.schema, forced, raw, line.full_len, |view| {
                        ctx.event(view?)
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
        self.stats.memo = self.matcher.memo_stats();
        out
    }
}

/// What handling one decoded event needs.
struct EventCtx<'a> {
    rules: &'a RuleSet,
    matched: &'a mut Vec<u32>,
    matcher: &'a mut Matcher,
    stats: &'a mut WorkerStats,
    hits: &'a mut Vec<(u32, Hit, Option<IdentityRef>)>,
    links: &'a mut Vec<(u32, Link)>,
    mint: &'a MintLifetimes,
    sightings: &'a mut Sightings,
    pos: Position,
    line: u32,
}

impl EventCtx<'_> {
    /// Matches one event, records its hits and the credential it minted; returns its time.
    fn event(&mut self, view: EventView<'_, '_>) -> Result<EventTime, DecodeError> {
        if let Some(reason) = view.salvaged {
            *self.stats.salvaged.entry(reason).or_insert(0) += 1;
        }
        self.matched.clear();
        self.matcher.matches(self.rules, &view, self.matched);
        let mut id = None;
        if !self.matched.is_empty() {
            let event_id = view.event_id(&self.rules.schema);
            self.emit_hits(&view, &event_id);
            id = Some(event_id);
        }
        let schema = &self.rules.schema;
        // The event id is built only for the few events that mint or show a credential.
        let key = || match &id {
            Some(id) => event_key(id),
            None => event_key(&view.event_id(schema)),
        };
        if view.kind == crate::decode::ProfileKind::CloudTrail
            && let Some(link) = view.minted_link(schema, key, self.mint)
        {
            self.links.push((self.line, link));
        }
        let sightings = &*self.sightings;
        if let Some(caller) = view.key_owner(schema, |c| sightings.wants(c, view.time))
            && let Some(credential) = caller.credential.clone()
        {
            self.sightings.sent(&credential, view.time);
            let link = Link {
                time: view.time,
                key: key(),
                kind: LinkKind::KeyOwner,
                minted: vec![credential],
                caller,
                lifetime: self.mint.key_owner,
                pos: None,
            };
            self.links.push((self.line, link));
        }
        Ok(view.time)
    }

    /// The hits of one matched event: one per standalone detection, one per correlation fed.
    fn emit_hits(&mut self, view: &EventView<'_, '_>, id: &str) {
        let rules = self.rules;
        let event = EventRef {
            time: view.time,
            key: event_key(id),
            pos: self.pos,
            id: id.into(),
            actor: None,
            parts: None,
            details: view.details(&rules.schema).map(Arc::new),
        };
        // The identity is resolved later, in event-time order, through the lineage: group keys
        // carry a mark where it goes.
        let identity = view.identity_ref(&rules.schema);
        let touched = view.touches(&rules.schema, TOUCHES_PER_EVENT);
        for &d in self.matched.iter() {
            self.stats.matches[d as usize] += 1;
            let det = &rules.detections[d as usize];
            if det.standalone {
                let group: Box<str> = if identity.is_some() {
                    IDENTITY_MARK.to_string().into()
                } else {
                    "".into()
                };
                // Keyed again when the resolver fills in the identity.
                let hit = Hit {
                    target: Target::Detection(d),
                    stages: 0,
                    shard_key: shard_key(&group, None),
                    group,
                    value: None,
                    event: event.clone(),
                    touched: touched.clone(),
                };
                self.hits.push((self.line, hit, identity.clone()));
            }
            for &(c, stages) in &det.uses {
                let corr = &rules.correlations[c as usize];
                let first_stage = stages.trailing_zeros() as usize;
                let Some(group) = field_values(
                    rules,
                    view,
                    &corr.group_fields[first_stage],
                    identity.is_some(),
                ) else {
                    self.stats.missing_group[c as usize] += 1;
                    continue;
                };
                let value = corr
                    .value_field
                    .as_ref()
                    .and_then(|f| field_values(rules, view, &f[first_stage..=first_stage], false))
                    .map(String::into_boxed_str);
                let who = if group.contains(IDENTITY_MARK) {
                    identity.clone()
                } else {
                    None
                };
                let hit = Hit {
                    target: Target::Correlation(c),
                    stages,
                    shard_key: shard_key(&group, corr.route.as_deref()),
                    group: group.into(),
                    value,
                    event: event.clone(),
                    touched: touched.clone(),
                };
                self.hits.push((self.line, hit, who));
            }
        }
    }
}

/// The values of `fields` joined by [`GROUP_SEPARATOR`]; `None` if one is missing. The
/// identity is written as [`IDENTITY_MARK`] when `mark_identity` (the resolver fills it in).
fn field_values(
    rules: &RuleSet,
    view: &EventView<'_, '_>,
    fields: &[FieldSource],
    mark_identity: bool,
) -> Option<String> {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(GROUP_SEPARATOR);
        }
        let value = match f {
            FieldSource::Slot(s) => view.first_text(*s)?,
            FieldSource::Identity if mark_identity => {
                out.push(IDENTITY_MARK);
                continue;
            }
            FieldSource::Identity => view.identity(&rules.schema)?.into(),
            FieldSource::Missing => return None,
        };
        // A value holding the separator (or the identity mark) would split into two group
        // values downstream.
        if value.contains([GROUP_SEPARATOR, IDENTITY_MARK]) {
            out.push_str(&value.replace([GROUP_SEPARATOR, IDENTITY_MARK], "\u{fffd}"));
        } else {
            out.push_str(&value);
        }
    }
    Some(out)
}

/// The worker thread: batches decoded and matched (with their source's profile), signals
/// passed through in place, and a [`Pull`](super::Pull)'s batches cut and decoded until its
/// source ends. Matches are counted into `metrics` as they happen; the stats of the rule set
/// in force at the end are returned. A batch cut under a reloaded rule set switches the worker
/// to it.
pub fn run(
    rules: Arc<RuleSet>,
    mint: MintLifetimes,
    rx: crossbeam_channel::Receiver<Item>,
    tx: crossbeam_channel::Sender<Decoded>,
    metrics: &Metrics,
    heartbeat: crate::metrics::Heartbeat,
) -> WorkerStats {
    let mut thread = Thread {
        w: Worker::new(rules.clone(), mint),
        reported: vec![0u64; rules.detections.len()],
        rules,
        mint,
        records: super::carried::RecordDecoder::default(),
        memo_reported: MemoStats::default(),
        metrics,
    };
    for item in rx.iter() {
        heartbeat.beat();
        let alive = match item {
            // A pull's items are its batches, cut here one at a time until its source ends.
            Item::Pull(source) => std::iter::from_fn(|| source.next()).all(|item| {
                heartbeat.beat();
                thread.pass(item, &tx)
            }),
            item => thread.pass(item, &tx),
        };
        if !alive {
            break;
        }
    }
    thread.w.stats
}

/// A worker thread's state between items.
struct Thread<'m> {
    rules: Arc<RuleSet>,
    mint: MintLifetimes,
    w: Worker,
    records: super::carried::RecordDecoder,
    /// Matches per detection already added to `metrics`.
    reported: Vec<u64>,
    memo_reported: MemoStats,
    metrics: &'m Metrics,
}

impl Thread<'_> {
    /// [`Thread::step`], and what it gives sent on; false once the sequence thread is gone.
    fn pass(&mut self, item: Item, tx: &crossbeam_channel::Sender<Decoded>) -> bool {
        self.step(item).is_none_or(|out| tx.send(out).is_ok())
    }

    /// One item decoded and matched (a batch) or passed on (a signal); a pull is the
    /// caller's to run.
    fn step(&mut self, item: Item) -> Option<Decoded> {
        let (seq, batch, format, batch_rules, arrived) = match item {
            Item::Batch {
                seq,
                batch,
                format,
                rules,
                arrived,
            } => (seq, batch, format, rules, arrived),
            Item::Signal { seq, signal } => return Some(Decoded::Signal { seq, signal }),
            Item::Pull(_) => return None,
        };
        if !Arc::ptr_eq(&batch_rules, &self.rules) {
            // A reload: this batch and the next ones use the new set.
            self.rules = batch_rules;
            self.w = Worker::new(self.rules.clone(), self.mint);
            self.reported = vec![0u64; self.rules.detections.len()];
            self.memo_reported = MemoStats::default();
        }
        let decoded = match format {
            Format::Events(profile) => self.w.process_as(batch, profile),
            Format::Records => self.records.decode(&self.rules, batch),
        };
        for (d, n) in self.w.stats.matches.iter().enumerate() {
            if *n > self.reported[d] {
                self.metrics.rule_matches(
                    &self.rules.detection_meta(d as u32).title,
                    n - self.reported[d],
                );
                self.reported[d] = *n;
            }
        }
        let memo = self.w.stats.memo;
        let before = self.memo_reported;
        Metrics::add(&self.metrics.scan_memo_hits, memo.hits - before.hits);
        Metrics::add(&self.metrics.scan_memo_walks, memo.misses - before.misses);
        self.memo_reported = memo;
        Some(Decoded::Batch {
            seq,
            decoded,
            arrived,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::tests::ruleset;
    use std::sync::atomic::Ordering;

    /// The service's `credtrail_scan_memo_*_total` counters follow the workers' memos: each
    /// batch adds what its events were answered and walked.
    #[test]
    fn the_scan_memo_counters_follow_each_batch() {
        let rules = Arc::new(ruleset(
            "title: unknown module\nlogsource: {product: windows}\ndetection:\n  sel:\n    CallTrace|contains: 'UNKNOWN('\n    CallTrace|endswith: ')'\n  condition: sel\n",
        ));
        let trace = (0..8)
            .map(|i| format!("C:\\\\Windows\\\\System32\\\\ntdll.dll+{i:x}"))
            .collect::<Vec<_>>()
            .join("|");
        let (items, rx) = crossbeam_channel::bounded(4);
        let (tx, decoded) = crossbeam_channel::bounded(4);
        for seq in 0..2u64 {
            let mut batch = Batch::default();
            for n in 0..3u64 {
                let line = format!(
                    r#"{{"EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","UtcTime":"2024-03-01 10:00:0{n}.000","EventRecordID":{n},"CallTrace":"{trace}|UNKNOWN(00007FF8)"}}"#
                );
                batch.push_event(line.as_bytes(), seq * 3 + n);
            }
            batch.seal();
            items
                .send(Item::Batch {
                    seq,
                    batch,
                    format: Format::Events(None),
                    rules: rules.clone(),
                    arrived: Instant::now(),
                })
                .unwrap();
        }
        drop(items);
        let metrics = Metrics::default();
        let heartbeat = metrics.heartbeats.register("worker-0");
        let stats = run(rules, MintLifetimes::default(), rx, tx, &metrics, heartbeat);
        assert_eq!(decoded.try_iter().count(), 2);
        assert_eq!(stats.matches.iter().sum::<u64>(), 6);
        assert_eq!(
            stats.memo,
            crate::matcher::memo::MemoStats { hits: 5, misses: 1 }
        );
        assert_eq!(metrics.scan_memo_hits.load(Ordering::Relaxed), 5);
        assert_eq!(metrics.scan_memo_walks.load(Ordering::Relaxed), 1);
    }
}
