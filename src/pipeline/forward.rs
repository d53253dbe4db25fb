//! The forwarder: stage 1 of a cluster ends here, in place of the shards.
//!
//! The sequence thread releases a hit only once engine time has passed it, with its identity
//! resolved, exactly as it would hand it to a shard. The forwarder writes it as a
//! [`HitRecord`] to the partition of the hits topic that owns its group key
//! ([`partition_of_hit`]); when engine time moves to `w`, every hit older than `w` has been
//! written, so it stamps every input partition this instance owns with frontier `w`, in every
//! partition of the hits topic, after those hits. Stage 2 correlates what it reads there.
//!
//! Where records go is a [`HitSink`]: record files for `replay --route-to`, the hits topic for
//! the service. At a commit barrier the sink is flushed before the report, so an input offset
//! is committed only once the records it produced are stored; a sink that fails stops the
//! forwarder, which stops the engine (nothing is lost: the offsets were not committed).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crossbeam_channel::{Receiver, Sender};

use super::shard::ShardReport;
use super::{Bookkeeping, OutputMsg, ShardMsg};
use crate::cluster::placement::{RulesFingerprint, partition_of, partition_of_hit};
use crate::cluster::record::{HitRecord, LinkRecord, Origin, Record, Stamp, VERSION};
use crate::input::{SourceInfo, Sources};
use crate::matcher::RuleSet;
use crate::time::EventTime;
use crate::vocab::{Hit, Link};

/// Why records could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write cluster records to {target}: {reason}")]
pub struct SinkError {
    pub target: String,
    pub reason: String,
}

/// Where stage 1's records go: the partitions of the hits topic.
pub trait HitSink: Send {
    /// How many partitions the hits topic has (at least 1).
    fn partitions(&self) -> u32;
    /// Hands one record to `partition`, keyed by `key`.
    fn send(&mut self, partition: i32, key: &str, record: &[u8]) -> Result<(), SinkError>;
    /// Returns once every record handed over is stored.
    fn flush(&mut self) -> Result<(), SinkError>;
}

/// Record files, one per hits partition: `DIR/hits-<p>.jsonl` (what `replay --route-to`
/// writes and `replay --records` reads).
pub struct FileHits {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
}

impl FileHits {
    /// Creates (truncates) the `partitions` files in `dir`, making `dir` if it is missing.
    pub fn create(dir: &Path, partitions: u32) -> Result<FileHits, SinkError> {
        // The directory is made as `--out`'s file would be: a missing one is no reason to stop.
        std::fs::create_dir_all(dir).map_err(|e| SinkError {
            target: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let files = (0..partitions.max(1))
            .map(|p| {
                let path = FileHits::path(dir, p as i32);
                File::create(&path)
                    .map(BufWriter::new)
                    .map_err(|e| SinkError {
                        target: path.display().to_string(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(FileHits {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// The file of hits partition `p` in `dir`.
    pub fn path(dir: &Path, p: i32) -> PathBuf {
        dir.join(format!("hits-{p}.jsonl"))
    }

    fn err(&self, p: i32, e: std::io::Error) -> SinkError {
        SinkError {
            target: FileHits::path(&self.dir, p).display().to_string(),
            reason: e.to_string(),
        }
    }
}

impl HitSink for FileHits {
    fn partitions(&self) -> u32 {
        self.files.len() as u32
    }

    fn send(&mut self, partition: i32, _key: &str, record: &[u8]) -> Result<(), SinkError> {
        let Some(f) = self.files.get_mut(partition as usize) else {
            return Err(SinkError {
                target: self.dir.display().to_string(),
                reason: format!("no partition {partition}"),
            });
        };
        let written = f.write_all(record).and_then(|_| f.write_all(b"\n"));
        written.map_err(|e| self.err(partition, e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        for p in 0..self.files.len() {
            if let Err(e) = self.files[p].flush() {
                return Err(self.err(p as i32, e));
            }
        }
        Ok(())
    }
}

/// The topic and partition a source is named by in records (a file is partition 0 of a
/// "topic" named by its path).
pub fn origin_of(sources: &Sources, source: u32) -> (String, i32) {
    match sources.get(source) {
        Some(SourceInfo::Kafka { topic, partition }) => (topic.clone(), *partition),
        Some(SourceInfo::File(p)) => (p.display().to_string(), 0),
        Some(SourceInfo::Stdin) => ("-".into(), 0),
        None => (format!("source#{source}"), 0),
    }
}

/// Where a hit's event was read, for its record.
fn origin(sources: &Sources, pos: crate::vocab::Position) -> Origin {
    let (topic, partition) = origin_of(sources, pos.source);
    Origin {
        topic,
        partition,
        offset: pos.offset,
        file: !matches!(sources.get(pos.source), Some(SourceInfo::Kafka { .. })),
    }
}

/// Runs the forwarder until its channel closes, its input finishes, or its sink fails.
#[allow(clippy::too_many_arguments)] // a shard's place in the engine, plus its two sinks
pub fn run(
    rules: Arc<RuleSet>,
    mut sink: Box<dyn HitSink>,
    mut lineage: Option<Box<dyn HitSink>>,
    sources: Arc<RwLock<Sources>>,
    rx: Receiver<ShardMsg>,
    output: Sender<OutputMsg>,
    metrics: Arc<crate::metrics::Metrics>,
    heartbeat: crate::metrics::Heartbeat,
) -> ShardReport {
    let mut f = Forwarder {
        fingerprint: RulesFingerprint::of(&rules),
        rules,
        partitions: sink.partitions().max(1),
        sources,
        owned: Vec::new(),
        unflushed: HashMap::new(),
        report: ShardReport::default(),
    };
    for msg in rx.iter() {
        heartbeat.beat();
        let result = match msg {
            ShardMsg::Hits(hits) => {
                let n = hits.len() as u64;
                crate::metrics::Metrics::add(&metrics.cluster_hits_out, n);
                f.hits(&mut *sink, hits).map(|()| true)
            }
            ShardMsg::Owned(owned) => {
                f.owned = owned;
                Ok(true)
            }
            ShardMsg::Lineage { links, stamps } => match &mut lineage {
                Some(out) => f.lineage(&mut **out, links, stamps).map(|()| true),
                None => Ok(true),
            },
            ShardMsg::Watermark(w) => f
                .stamp(&mut *sink, w)
                .map(|()| output.send(OutputMsg::Progress(0, w)).is_ok()),
            ShardMsg::Report(epoch) => flush_all(&mut *sink, &mut lineage).map(|()| {
                f.unflushed.clear();
                output
                    .send(OutputMsg::Bookkeeping(Bookkeeping::Holds {
                        changes: None,
                        unsent: Vec::new(),
                        epoch,
                        holds: HashMap::new(),
                        states: 0,
                        state_bytes: 0,
                        evicted: 0,
                    }))
                    .is_ok()
            }),
            ShardMsg::Reload(new, _) => {
                f.fingerprint = RulesFingerprint::of(&new);
                f.rules = new;
                Ok(true)
            }
            ShardMsg::Finish => {
                let done = f
                    .stamp(&mut *sink, EventTime::MAX)
                    .and_then(|()| flush_all(&mut *sink, &mut lineage));
                if let Err(e) = done {
                    tracing::error!(error = %e, "stage 1 cannot write its records");
                }
                let _ = output.send(OutputMsg::Progress(0, EventTime::MAX));
                break;
            }
            // Snapshots are stage 2's (the front end refuses them for stage 1): a forwarder
            // holds no state.
            ShardMsg::Restore(_) | ShardMsg::Forget(_) => Ok(true),
            ShardMsg::Suspend | ShardMsg::Stop => break,
        };
        match result {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // The engine notices the forwarder gone; nothing of it was committed.
                tracing::error!(error = %e, unflushed = ?f.unflushed, "stage 1 cannot write its records");
                break;
            }
        }
    }
    f.report
}

fn flush_all(
    hits: &mut dyn HitSink,
    lineage: &mut Option<Box<dyn HitSink>>,
) -> Result<(), SinkError> {
    hits.flush()?;
    match lineage {
        Some(l) => l.flush(),
        None => Ok(()),
    }
}

struct Forwarder {
    rules: Arc<RuleSet>,
    fingerprint: RulesFingerprint,
    partitions: u32,
    sources: Arc<RwLock<Sources>>,
    /// The input sources this instance owns (the sequence thread says on every change).
    owned: Vec<u32>,
    /// Per source, the oldest offset written since the last flush (for the error log).
    unflushed: HashMap<u32, u64>,
    report: ShardReport,
}

impl Forwarder {
    fn hits(&mut self, sink: &mut dyn HitSink, hits: Vec<Hit>) -> Result<(), SinkError> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        for hit in hits {
            self.report.stats.hits += 1;
            let record =
                match HitRecord::of(&hit, origin(&sources, hit.event.pos), self.fingerprint) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "hit not forwarded");
                        continue;
                    }
                };
            let p = partition_of_hit(&self.rules, &hit, self.partitions);
            sink.send(p, &hit.group, &Record::Hit(record).to_bytes())?;
            let o = self
                .unflushed
                .entry(hit.event.pos.source)
                .or_insert(hit.event.pos.offset);
            *o = (*o).min(hit.event.pos.offset);
        }
        Ok(())
    }

    /// Writes links to the lineage, each to the partition of its first minted credential,
    /// then the stamps of the sources whose lineage frontier moved, to every partition.
    fn lineage(
        &mut self,
        out: &mut dyn HitSink,
        links: Vec<Link>,
        stamps: Vec<(u32, EventTime)>,
    ) -> Result<(), SinkError> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        let partitions = out.partitions().max(1);
        for link in links {
            // A key-owner link holds no position; where it was read matters only for the
            // record's provenance.
            let at = match link.pos {
                Some(pos) => origin(&sources, pos),
                None => Origin {
                    topic: String::new(),
                    partition: -1,
                    offset: 0,
                    file: false,
                },
            };
            let key = link.minted.first().map_or("", |m| &**m).to_string();
            let record = Record::Link(LinkRecord::of(&link, at));
            out.send(
                partition_of(&key, None, partitions),
                &key,
                &record.to_bytes(),
            )?;
        }
        for (s, w) in stamps {
            stamp(out, &sources, s, w)?;
        }
        Ok(())
    }

    /// Stamps every owned source with frontier `w` in every partition.
    fn stamp(&mut self, sink: &mut dyn HitSink, w: EventTime) -> Result<(), SinkError> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        for &s in &self.owned {
            stamp(sink, &sources, s, w)?;
        }
        Ok(())
    }
}

/// Writes to every partition of `out` that `source` is complete up to `w`.
fn stamp(
    out: &mut dyn HitSink,
    sources: &Sources,
    source: u32,
    w: EventTime,
) -> Result<(), SinkError> {
    let (topic, partition) = origin_of(sources, source);
    let key = format!("stamp:{topic}:{partition}");
    let record = Record::Stamp(Stamp {
        v: VERSION,
        topic,
        partition,
        frontier: w.0,
    })
    .to_bytes();
    for p in 0..out.partitions().max(1) as i32 {
        out.send(p, &key, &record)?;
    }
    Ok(())
}
