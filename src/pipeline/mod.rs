//! Pipeline: the threads of a replay and the channels between them.
//!
//! ```text
//!  reader ──batches──> workers (N) ──decoded──> sequencer ──hits, watermarks──> shards (N)
//!  (files, in order)   decode+match             input order,                    state machines
//!                                               lateness, routing                     │
//!                      dead-letter file <──────────┘                 findings, progress
//!                                                                                     v
//!                                                                   writer: merge, OCSF, output
//! ```
//!
//! Every channel is bounded: a slow stage blocks the one before it, back to the reader, and
//! nothing is dropped. Each shard is the only owner of its state; a hit goes to the shard that
//! owns its group key (a hash), so no lock is taken on the hot path.

pub mod sequencer;
pub mod worker;
pub mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::alert;
use crate::correlate::{Finding, Hit, ShardEngine, ShardLimits, ShardStats, Target};
use crate::deadletter::DeadLetterFile;
use crate::decode::MintLifetimes;
use crate::identity::{LineageLimits, Resolver};
use crate::input::{self, Batch, InputError, LineBatcher, ReadLimits, SourceInfo, Sources};
use crate::matcher::RuleSet;
use crate::score::Assessor;
use crate::time::{EventTime, Span};
use sequencer::{Sequencer, SequencerStats, SourceClock};
use worker::{Worker, WorkerStats};

/// What a replay reads, how it runs and where it writes.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Input files, read in this order; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    /// Shard threads (each owns a part of the state).
    pub shards: usize,
    /// Decode-and-match threads.
    pub workers: usize,
    /// Allowed lateness of every input.
    pub lateness: Span,
    /// Alert output; `None` is standard output.
    pub out: Option<PathBuf>,
    pub dead_letter: PathBuf,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    pub read: ReadLimits,
    pub shard_limits: ShardLimits,
    /// How long credentials minted by `AssumeRole` and friends are followed.
    pub mint: MintLifetimes,
    pub lineage: LineageLimits,
    /// Scores findings: inventory and weights.
    pub assessor: Arc<Assessor>,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot write alerts to {path}: {source}")]
    Output { path: String, source: io::Error },
    #[error("cannot write dead letters to {path}: {source}")]
    DeadLetter { path: String, source: io::Error },
    #[error("cannot render an alert: {0}")]
    Render(#[from] serde_json::Error),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// What a replay did, for the summary.
#[derive(Clone, Debug)]
pub struct Summary {
    pub wall: Duration,
    pub bytes_read: u64,
    pub sequencer: SequencerStats,
    pub workers: WorkerStats,
    pub shards: Vec<ShardStats>,
    /// Alerts written, by rule title.
    pub alerts_by_rule: BTreeMap<String, u64>,
    pub alerts: u64,
    /// Events matched per detection rule (title), rules with no match left out.
    pub matches_by_rule: Vec<(String, u64)>,
    /// Group states alive when the input ended (before the final flush), and their bytes.
    pub states_at_end: u64,
    pub state_bytes_at_end: u64,
    /// Credential lineage: links recorded and hits resolved through them.
    pub lineage: crate::identity::LineageStats,
    pub dead_letter_path: Option<PathBuf>,
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        self.sequencer.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

enum ShardMsg {
    Hits(Vec<Hit>),
    Watermark(EventTime),
    /// The input ended: report the live state, then flush everything.
    Finish,
}

enum WriterMsg {
    Findings(Vec<Finding>),
    Progress(EventTime),
}

struct ShardReport {
    stats: ShardStats,
    states_at_end: u64,
    bytes_at_end: u64,
}

struct WriterReport {
    alerts: u64,
    by_rule: BTreeMap<String, u64>,
}

/// Runs a replay to the end of its inputs.
pub fn replay(rules: Arc<RuleSet>, opts: &ReplayOptions) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let shards = opts.shards.max(1);
    let workers = opts.workers.max(1);
    let mut sources = Sources::new();
    let ids: Vec<u32> = opts
        .inputs
        .iter()
        .map(|p| {
            sources.register(if p.as_os_str() == "-" {
                SourceInfo::Stdin
            } else {
                SourceInfo::File(p.clone())
            })
        })
        .collect();
    let sources = Arc::new(sources);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let events_seen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let (batch_tx, batch_rx) = bounded::<Batch>(workers * 2 + 2);
    let (recycle_tx, recycle_rx) = bounded::<Batch>(workers * 4 + 8);
    let (decoded_tx, decoded_rx) = bounded(workers * 2 + 2);
    let (writer_tx, writer_rx) = bounded::<(usize, WriterMsg)>(1024);
    let shard_channels: Vec<(Sender<ShardMsg>, Receiver<ShardMsg>)> =
        (0..shards).map(|_| bounded(256)).collect();

    thread::scope(|s| -> Result<Summary, PipelineError> {
        let reader = {
            let (bytes_read, stop, recycle_rx) =
                (bytes_read.clone(), stop.clone(), recycle_rx.clone());
            let inputs: Vec<(PathBuf, u32)> = opts
                .inputs
                .iter()
                .cloned()
                .zip(ids.iter().copied())
                .collect();
            let limits = opts.read;
            s.spawn(move || -> Result<(), PipelineError> {
                let mut seq = 0u64;
                for (path, id) in inputs {
                    let reader = input::open(&path, bytes_read.clone())?;
                    let mut lines = LineBatcher::new(reader, id, path.clone(), limits);
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let mut batch = recycle_rx.try_recv().unwrap_or_default();
                        if !lines.next_batch(&mut batch)? {
                            break;
                        }
                        batch.seq = seq;
                        seq += 1;
                        let last = batch.source_done;
                        if batch_tx.send(batch).is_err() {
                            return Ok(());
                        }
                        if last {
                            break;
                        }
                    }
                }
                Ok(())
            })
        };

        let worker_handles: Vec<_> = (0..workers)
            .map(|_| {
                let (rules, batch_rx, decoded_tx) =
                    (rules.clone(), batch_rx.clone(), decoded_tx.clone());
                let mint = opts.mint;
                s.spawn(move || {
                    let mut w = Worker::new(rules, mint);
                    for batch in batch_rx.iter() {
                        if decoded_tx.send(w.process(batch)).is_err() {
                            break;
                        }
                    }
                    w.stats
                })
            })
            .collect();
        drop(decoded_tx);
        drop(batch_rx);

        let shard_handles: Vec<_> = shard_channels
            .iter()
            .enumerate()
            .map(|(i, (_, rx))| {
                let (rules, rx, writer_tx) = (rules.clone(), rx.clone(), writer_tx.clone());
                let limits = opts.shard_limits;
                let assessor = opts.assessor.clone();
                s.spawn(move || run_shard(i, rules, limits, assessor, rx, writer_tx))
            })
            .collect();
        drop(writer_tx);

        let writer = {
            let (rules, sources) = (rules.clone(), sources.clone());
            let out_path = opts.out.clone();
            s.spawn(move || run_writer(shards, rules, sources, out_path, writer_rx))
        };

        let progress = opts.progress.then(|| {
            let (bytes_read, events_seen, stop) =
                (bytes_read.clone(), events_seen.clone(), stop.clone());
            let total: u64 = opts
                .inputs
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            s.spawn(move || draw_progress(total, bytes_read, events_seen, stop))
        });

        // The sequencer runs on this thread.
        let clocks = vec![SourceClock::new(opts.lateness); sources.len()];
        let routes = rules.correlations.iter().map(|c| c.route.clone()).collect();
        let resolver = Resolver::new(opts.lineage, opts.shard_limits.max_pending, routes);
        let mut seq = Sequencer::new(clocks, shards, resolver);
        let mut dead = DeadLetterFile::new(&opts.dead_letter);
        let mut dead_error: Option<io::Error> = None;
        let mut per_shard: Vec<Vec<Hit>> = vec![Vec::new(); shards];
        let mut sent_watermark = EventTime::MIN;
        let senders: Vec<&Sender<ShardMsg>> = shard_channels.iter().map(|(tx, _)| tx).collect();
        for decoded in decoded_rx.iter() {
            seq.accept(
                decoded,
                &mut |shard, hit| per_shard[shard].push(hit),
                &mut |letter| {
                    if dead_error.is_none()
                        && let Err(e) = dead.write(&letter, &sources)
                    {
                        dead_error = Some(e);
                    }
                },
                &mut |d| {
                    let _ = recycle_tx.try_send(d.batch);
                },
            );
            events_seen.store(seq.stats.events, Ordering::Relaxed);
            for (i, hits) in per_shard.iter_mut().enumerate() {
                if !hits.is_empty() {
                    let _ = senders[i].send(ShardMsg::Hits(std::mem::take(hits)));
                }
            }
            // The end of time is not broadcast here: `Finish` lets shards report the state alive
            // at the end of input before they flush it.
            let w = seq.watermark();
            if w > sent_watermark && w != EventTime::MAX {
                sent_watermark = w;
                for tx in &senders {
                    let _ = tx.send(ShardMsg::Watermark(w));
                }
            }
            if dead_error.is_some() {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        drop(decoded_rx);
        // The input ended: hand on every hit still waiting for the watermark, then finish.
        seq.release(EventTime::MAX, &mut |shard, hit| per_shard[shard].push(hit));
        for (i, hits) in per_shard.iter_mut().enumerate() {
            if !hits.is_empty() {
                let _ = senders[i].send(ShardMsg::Hits(std::mem::take(hits)));
            }
        }
        for tx in &senders {
            let _ = tx.send(ShardMsg::Finish);
        }
        drop(senders);
        drop(shard_channels);

        let reader_result = reader
            .join()
            .map_err(|_| PipelineError::Panicked("reader"))?;
        let mut worker_stats = WorkerStats::new(&rules);
        for h in worker_handles {
            worker_stats.merge(&h.join().map_err(|_| PipelineError::Panicked("worker"))?);
        }
        let mut shard_reports = Vec::new();
        for h in shard_handles {
            shard_reports.push(h.join().map_err(|_| PipelineError::Panicked("shard"))?);
        }
        let writer_report = writer
            .join()
            .map_err(|_| PipelineError::Panicked("writer"))??;
        stop.store(true, Ordering::Relaxed);
        if let Some(p) = progress {
            let _ = p.join();
        }
        reader_result?;
        if let Some(e) = dead_error {
            return Err(PipelineError::DeadLetter {
                path: opts.dead_letter.display().to_string(),
                source: e,
            });
        }
        dead.flush().map_err(|e| PipelineError::DeadLetter {
            path: opts.dead_letter.display().to_string(),
            source: e,
        })?;
        let matches_by_rule = worker_stats
            .matches
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(d, n)| (rules.detection_meta(d as u32).title.clone(), *n))
            .collect();
        Ok(Summary {
            wall: started.elapsed(),
            bytes_read: bytes_read.load(Ordering::Relaxed),
            sequencer: seq.stats.clone(),
            workers: worker_stats,
            states_at_end: shard_reports.iter().map(|r| r.states_at_end).sum(),
            state_bytes_at_end: shard_reports.iter().map(|r| r.bytes_at_end).sum(),
            lineage: seq.resolver().lineage().stats().clone(),
            shards: shard_reports.into_iter().map(|r| r.stats).collect(),
            alerts: writer_report.alerts,
            matches_by_rule,
            alerts_by_rule: writer_report.by_rule,
            dead_letter_path: (dead.written() > 0).then(|| opts.dead_letter.clone()),
        })
    })
}

fn run_shard(
    index: usize,
    rules: Arc<RuleSet>,
    limits: ShardLimits,
    assessor: Arc<Assessor>,
    rx: Receiver<ShardMsg>,
    writer: Sender<(usize, WriterMsg)>,
) -> ShardReport {
    let mut engine = ShardEngine::new(rules, limits).with_assessor(assessor);
    let mut out = Vec::new();
    let mut states_at_end = 0;
    let mut bytes_at_end = 0;
    let send = |out: &mut Vec<Finding>| {
        if !out.is_empty() {
            let _ = writer.send((index, WriterMsg::Findings(std::mem::take(out))));
        }
    };
    for msg in rx.iter() {
        match msg {
            ShardMsg::Hits(hits) => {
                for h in hits {
                    engine.push(h, &mut out);
                }
                send(&mut out);
            }
            ShardMsg::Watermark(w) => {
                engine.advance(w, &mut out);
                send(&mut out);
                let _ = writer.send((index, WriterMsg::Progress(w)));
            }
            ShardMsg::Finish => {
                engine.process_pending(&mut out);
                states_at_end = engine.live_states() as u64;
                bytes_at_end = engine.state_bytes() as u64;
                break;
            }
        }
    }
    engine.advance(EventTime::MAX, &mut out);
    send(&mut out);
    let _ = writer.send((index, WriterMsg::Progress(EventTime::MAX)));
    ShardReport {
        stats: engine.stats().clone(),
        states_at_end,
        bytes_at_end,
    }
}

fn run_writer(
    shards: usize,
    rules: Arc<RuleSet>,
    sources: Arc<Sources>,
    out_path: Option<PathBuf>,
    rx: Receiver<(usize, WriterMsg)>,
) -> Result<WriterReport, PipelineError> {
    let label = out_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "standard output".into());
    let io_err = |source| PipelineError::Output {
        path: label.clone(),
        source,
    };
    let mut out: Box<dyn Write> = match &out_path {
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(p).map_err(io_err)?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    };
    let mut merge = writer::Merge::new(shards);
    let mut ready = Vec::new();
    let mut line = Vec::with_capacity(4096);
    let mut report = WriterReport {
        alerts: 0,
        by_rule: BTreeMap::new(),
    };
    let mut write_ready =
        |merge: &mut writer::Merge, out: &mut Box<dyn Write>| -> Result<(), PipelineError> {
            merge.ready(&mut ready);
            for f in ready.drain(..) {
                line.clear();
                alert::render(&f, &rules, &sources, &mut line)?;
                line.push(b'\n');
                out.write_all(&line).map_err(io_err)?;
                report.alerts += 1;
                let title = match f.target {
                    Target::Correlation(c) => {
                        &rules.meta[rules.correlations[c as usize].rule as usize].title
                    }
                    Target::Detection(d) => &rules.detection_meta(d).title,
                };
                *report.by_rule.entry(title.clone()).or_insert(0) += 1;
            }
            Ok(())
        };
    for (shard, msg) in rx.iter() {
        match msg {
            WriterMsg::Findings(v) => v.into_iter().for_each(|f| merge.push(f)),
            WriterMsg::Progress(w) => merge.progress(shard, w),
        }
        write_ready(&mut merge, &mut out)?;
    }
    for shard in 0..shards {
        merge.progress(shard, EventTime::MAX);
    }
    write_ready(&mut merge, &mut out)?;
    out.flush().map_err(io_err)?;
    Ok(report)
}

fn draw_progress(total: u64, bytes: Arc<AtomicU64>, events: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
    ) {
        bar.set_style(style);
    }
    while !stop.load(Ordering::Relaxed) {
        bar.set_position(bytes.load(Ordering::Relaxed));
        bar.set_message(format!("{} events", events.load(Ordering::Relaxed)));
        thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}
