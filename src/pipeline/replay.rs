//! Replay: the engine driven by files. The inputs are read in order and fed to the
//! [`pipeline`](super) engine ([`front`](super::front): by this thread or by the workers
//! themselves); alerts go to a file (or standard output) in a deterministic order, dead
//! letters to theirs, and a [`Summary`] says what happened.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use super::forward::FileHits;
use super::front::{Cutting, Ends, Front, read_inputs};
use super::sequencer::SequencerStats;
use super::suspend;
pub use super::suspend::Suspension;
use super::worker::WorkerStats;
use super::writer::{Rendered, Sink};
use super::{EngineError, Format, Reference, Setup, SourceTime, Stage};
use crate::alert::signature::{Envelope, SigningKeys};
use crate::correlate::{ShardLimits, ShardStats, Target};
use crate::deadletter::{DeadLetter, DeadLetterFile};
use crate::decode::MintLifetimes;
use crate::identity::LineageLimits;
use crate::input::{InputError, ReadLimits, SourceInfo, Sources};
use crate::matcher::RuleSet;
use crate::metrics::Metrics;
use crate::score::{Assessor, LiveAssessor};
use crate::time::Span;

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
    /// Largest skew of an event ahead of its input's recent median (see
    /// [`clock`](super::clock)); beyond it the event is a `future` dead letter.
    pub max_future: Span,
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
    /// How much of a chain an alert shows, and its size bound.
    pub alert: crate::alert::AlertOptions,
    /// Also write every alert, signed, to a file (see [`crate::alert::signature`]).
    pub signed_out: Option<SignedOutput>,
    /// Which stage of a cluster this replay plays, if any (see [`crate::cluster`]).
    pub cluster: ClusterReplay,
    /// Who cuts the inputs into batches.
    pub cutting: Cutting,
}

/// A replay as one stage of a cluster, through record files instead of topics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClusterReplay {
    /// Events in, alerts out.
    #[default]
    Whole,
    /// Stage 1: events in; resolved hits and stamps out to `dir/hits-<p>.jsonl`, one file per
    /// hits partition.
    RouteTo { dir: PathBuf, partitions: u32 },
    /// Stage 2: the inputs are record files stage 1 wrote; alerts out.
    Records(Suspension),
}

/// Where a replay writes its signed alerts, and the keys that sign them.
#[derive(Clone, Debug)]
pub struct SignedOutput {
    /// JSON lines of [`Envelope`]s (the shape `kcat -C -J` prints for a topic), one per alert
    /// and in the alert file's order, each signed as the service signs alerts on the topic.
    pub path: PathBuf,
    pub keys: SigningKeys,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot write alerts to {path}: {source}")]
    Output { path: String, source: io::Error },
    #[error(transparent)]
    Route(super::forward::SinkError),
    #[error("cannot write signed alerts to {path}: {source}")]
    Signed { path: String, source: io::Error },
    #[error("cannot write dead letters to {path}: {source}")]
    DeadLetter { path: String, source: io::Error },
    #[error("cannot render an alert: {0}")]
    Render(#[from] serde_json::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot read the snapshot {path}: {source}")]
    SnapshotRead { path: String, source: io::Error },
    #[error("snapshot {path}: {source}")]
    Snapshot {
        path: String,
        source: crate::correlate::engine::ImportError,
    },
    #[error(
        "snapshot {path} is {size} bytes, more than the state budget of this run ({limit} bytes): raise the memory budget or the shards"
    )]
    SnapshotTooLarge { path: String, size: u64, limit: u64 },
    #[error("cannot write the snapshot {path}: {source}")]
    SnapshotWrite { path: String, source: io::Error },
    #[error(
        "a snapshot carries correlation state, not the open incidents of the output: suspend and restore with --no-incidents"
    )]
    SnapshotWithIncidents,
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
    /// Inputs that could not be read to their end (each also a dead letter of kind
    /// `input_error`); the run went on with the next input.
    pub input_errors: Vec<Arc<InputError>>,
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        self.sequencer.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The replay's sink: alerts to a file or standard output, dead letters to their file.
struct FileSink {
    out: Box<dyn Write + Send>,
    label: String,
    dead: DeadLetterFile,
    sources: Arc<RwLock<Sources>>,
    alerts: u64,
    by_rule: BTreeMap<String, u64>,
    signed: Option<SignedFile>,
}

struct SignedFile {
    out: BufWriter<File>,
    path: String,
    keys: SigningKeys,
}

impl SignedFile {
    fn create(s: &SignedOutput) -> Result<SignedFile, PipelineError> {
        let path = s.path.display().to_string();
        let file = File::create(&s.path).map_err(|source| PipelineError::Signed {
            path: path.clone(),
            source,
        })?;
        Ok(SignedFile {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            keys: s.keys.clone(),
        })
    }

    /// Signs one alert, at the wall-clock time of signing, as the service signs records.
    fn write(&mut self, a: &Rendered<'_>) -> Result<(), PipelineError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let key = &*a.finding.group;
        let signature = self.keys.sign(a.uid, now, key.as_bytes(), a.line);
        // Rendered alerts are JSON text, so UTF-8.
        let payload = String::from_utf8_lossy(a.line);
        let envelope = Envelope::signed(key, &payload, &signature);
        let error = |source| PipelineError::Signed {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, &envelope).map_err(|e| error(e.into()))?;
        self.out.write_all(b"\n").map_err(error)
    }

    fn finish(&mut self) -> Result<(), PipelineError> {
        self.out.flush().map_err(|source| PipelineError::Signed {
            path: self.path.clone(),
            source,
        })
    }
}

struct FileReport {
    alerts: u64,
    by_rule: BTreeMap<String, u64>,
    dead_letters_written: u64,
}

impl FileSink {
    fn open(
        out_path: Option<&PathBuf>,
        dead_letter: &std::path::Path,
        signed: Option<&SignedOutput>,
        sources: Arc<RwLock<Sources>>,
    ) -> Result<FileSink, PipelineError> {
        let signed = signed.map(SignedFile::create).transpose()?;
        let label = out_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "standard output".into());
        let out: Box<dyn Write + Send> = match out_path {
            Some(p) => Box::new(BufWriter::with_capacity(
                1 << 16,
                File::create(p).map_err(|source| PipelineError::Output {
                    path: label.clone(),
                    source,
                })?,
            )),
            None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
        };
        let dead = DeadLetterFile::new(dead_letter);
        dead.check_writable()
            .map_err(|source| PipelineError::DeadLetter {
                path: dead_letter.display().to_string(),
                source,
            })?;
        Ok(FileSink {
            out,
            label,
            dead,
            sources,
            alerts: 0,
            by_rule: BTreeMap::new(),
            signed,
        })
    }

    fn output_error(&self, source: io::Error) -> PipelineError {
        PipelineError::Output {
            path: self.label.clone(),
            source,
        }
    }

    fn dead_letter_error(&self, source: io::Error) -> PipelineError {
        PipelineError::DeadLetter {
            path: self.dead.path().display().to_string(),
            source,
        }
    }
}

impl Sink for FileSink {
    type Report = FileReport;
    type Error = PipelineError;

    fn alert(&mut self, a: Rendered<'_>) -> Result<(), PipelineError> {
        let written = self
            .out
            .write_all(a.line)
            .and_then(|()| self.out.write_all(b"\n"));
        written.map_err(|e| self.output_error(e))?;
        if let Some(signed) = &mut self.signed {
            signed.write(&a)?;
        }
        self.alerts += 1;
        let rules = a.rules;
        let title = match a.finding.target {
            Target::Correlation(c) => {
                &rules.meta[rules.correlations[c as usize].rule as usize].title
            }
            Target::Detection(d) => &rules.detection_meta(d).title,
        };
        *self.by_rule.entry(title.clone()).or_insert(0) += 1;
        Ok(())
    }

    fn dead_letter(&mut self, letter: DeadLetter, _replayed: bool) -> Result<(), PipelineError> {
        let written = {
            let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
            self.dead.write(&letter, &sources)
        };
        written.map_err(|e| self.dead_letter_error(e))
    }

    fn finish(mut self) -> Result<FileReport, PipelineError> {
        self.out.flush().map_err(|e| self.output_error(e))?;
        if let Some(signed) = &mut self.signed {
            signed.finish()?;
        }
        self.dead.flush().map_err(|e| self.dead_letter_error(e))?;
        Ok(FileReport {
            alerts: self.alerts,
            by_rule: self.by_rule,
            dead_letters_written: self.dead.written(),
        })
    }
}

/// Runs a replay to the end of its inputs: the files are the front end of the engine, read in
/// order (cut by this thread or by the workers, as `opts.cutting` says), every one a source
/// open from the start (so an earlier file's events wait for the later files' clocks, as if
/// they were read side by side).
pub fn replay(rules: Arc<RuleSet>, opts: &ReplayOptions) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let mut registry = Sources::new();
    let ids: Vec<u32> = opts
        .inputs
        .iter()
        .map(|p| {
            registry.register(if p.as_os_str() == "-" {
                SourceInfo::Stdin
            } else {
                SourceInfo::File(p.clone())
            })
        })
        .collect();
    let sources = Arc::new(RwLock::new(registry));
    let bytes_read = Arc::new(AtomicU64::new(0));
    let metrics = Metrics::new();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = FileSink::open(
        opts.out.as_ref(),
        &opts.dead_letter,
        opts.signed_out.as_ref(),
        sources.clone(),
    )?;
    let setup = Setup {
        changelog: None,
        shards: opts.shards.max(1),
        workers: opts.workers.max(1),
        shard_limits: opts.shard_limits,
        mint: opts.mint,
        lineage: opts.lineage,
        lineage_hold: Span::ZERO,
        reference: Reference::RecentMedian,
        alert: opts.alert,
        cluster_inputs: None,
        part: Default::default(),
        shared_lineage: false,
    };
    let assessor = Arc::new(LiveAssessor::new(opts.assessor.clone()));
    let stage = match &opts.cluster {
        ClusterReplay::RouteTo { dir, partitions } => {
            let files = FileHits::create(dir, *partitions).map_err(PipelineError::Route)?;
            Stage::Route {
                hits: Box::new(files),
                lineage: None,
            }
        }
        ClusterReplay::Whole | ClusterReplay::Records(_) => Stage::Whole,
    };
    let (restore, suspend_to) = match &opts.cluster {
        ClusterReplay::Records(s) => (s.restore.clone(), s.suspend_to.clone()),
        _ => (None, None),
    };
    if (restore.is_some() || suspend_to.is_some()) && opts.alert.incidents.is_some() {
        return Err(PipelineError::SnapshotWithIncidents);
    }
    let restore = match restore {
        None => None,
        Some(path) => {
            let budget = (opts.shard_limits.max_state_bytes as u64)
                .saturating_mul(opts.shards.max(1) as u64);
            Some(suspend::read(&path, &rules, budget)?)
        }
    };

    thread::scope(|s| -> Result<Summary, PipelineError> {
        let (inputs, engine) = super::start(
            s,
            &setup,
            setup.workers * 2 + 2,
            rules.clone(),
            assessor,
            sources.clone(),
            metrics.clone(),
            stage,
            sink,
        )?;
        let progress = opts.progress.then(|| {
            let (bytes_read, metrics, stop) = (bytes_read.clone(), metrics.clone(), stop.clone());
            let total: u64 = opts
                .inputs
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            // The bar is a nicety: a run goes on without it if its thread cannot start.
            thread::Builder::new()
                .name("credtrail-progress".into())
                .spawn_scoped(s, move || {
                    draw_progress(total, bytes_read, &metrics.events_in, stop)
                })
                .ok()
        });
        let ends = Ends {
            restore,
            suspend: suspend_to.is_some(),
        };
        let records = matches!(opts.cluster, ClusterReplay::Records(_));
        let front = Front {
            inputs: &inputs,
            files: &opts.inputs,
            ids: &ids,
            time: if records {
                SourceTime::stamped()
            } else {
                SourceTime {
                    lateness: opts.lateness,
                    max_future: opts.max_future,
                    stamped: false,
                }
            },
            format: if records {
                Format::Records
            } else {
                Format::Events(None)
            },
            read: opts.read,
            rules: &rules,
            bytes_read: &bytes_read,
            cutting: opts.cutting,
            workers: setup.workers,
            working: &|| engine.working(),
        };
        let input_errors = read_inputs(&front, ends);
        drop(inputs);
        let joined = engine.join(None);
        stop.store(true, Ordering::Relaxed);
        if let Some(Some(p)) = progress {
            let _ = p.join();
        }
        let mut joined = joined?;
        let written = joined.output?;
        if let Some(path) = &suspend_to {
            suspend::write(path, &mut joined.shards)?;
        }
        let matches_by_rule = joined
            .workers
            .matches
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(d, n)| (rules.detection_meta(d as u32).title.clone(), *n))
            .collect();
        Ok(Summary {
            wall: started.elapsed(),
            bytes_read: bytes_read.load(Ordering::Relaxed),
            sequencer: joined.sequencer,
            workers: joined.workers,
            states_at_end: joined.shards.iter().map(|r| r.states_at_end).sum(),
            state_bytes_at_end: joined.shards.iter().map(|r| r.bytes_at_end).sum(),
            lineage: joined.lineage,
            shards: joined.shards.into_iter().map(|r| r.stats).collect(),
            alerts: written.alerts,
            matches_by_rule,
            alerts_by_rule: written.by_rule,
            dead_letter_path: (written.dead_letters_written > 0).then(|| opts.dead_letter.clone()),
            input_errors: input_errors.into_iter().map(Arc::new).collect(),
        })
    })
}

fn draw_progress(total: u64, bytes: Arc<AtomicU64>, events: &AtomicU64, stop: Arc<AtomicBool>) {
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
