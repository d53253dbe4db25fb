//! Stage 2's batches: lines of the hits topic (or record files) decoded to hits and stamps.
//!
//! A worker reads a batch of cluster records instead of events: each line is parsed and
//! validated against the rule set in force ([`crate::cluster::record`]). A hit lands at the
//! position of its record (what stage 2 commits), keeps its event's id, time and evidence, and
//! goes to the shard of its group key as any hit would; a stamp goes to the sequencer, which
//! keeps the partition's frontier. A record that does not read is carried as refused, with
//! the reason its dead letter gives.

use std::sync::Arc;

use super::worker::DecodedBatch;
use crate::cluster::placement::RulesFingerprint;
use crate::cluster::record::{Record, RecordError, Stamp};
use crate::input::{Batch, Position};
use crate::matcher::RuleSet;
use crate::time::EventTime;
use crate::vocab::shard_key;

/// What one line of a records batch carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carried {
    /// A hit (in the batch's hits at this line) read by stage 1 from this input partition.
    Hit {
        topic: Box<str>,
        partition: i32,
    },
    Stamp(Stamp),
    /// Not a record this instance can use, and why.
    Refused(String),
}

/// Decodes record batches; remembers the fingerprint of the rule set last used.
#[derive(Default)]
pub struct RecordDecoder {
    fingerprint: Option<(usize, RulesFingerprint)>,
}

impl RecordDecoder {
    fn fingerprint(&mut self, rules: &Arc<RuleSet>) -> RulesFingerprint {
        let id = Arc::as_ptr(rules) as usize;
        match self.fingerprint {
            Some((known, f)) if known == id => f,
            _ => {
                let f = RulesFingerprint::of(rules);
                self.fingerprint = Some((id, f));
                f
            }
        }
    }

    pub fn decode(&mut self, rules: &Arc<RuleSet>, batch: Batch) -> DecodedBatch {
        let ours = self.fingerprint(rules);
        let mut out = DecodedBatch {
            times: Vec::with_capacity(batch.lines.len()),
            failures: Vec::new(),
            hits: Vec::new(),
            links: Vec::new(),
            carried: Vec::with_capacity(batch.lines.len()),
            batch,
        };
        for i in 0..out.batch.lines.len() {
            let pos = Position {
                source: out.batch.source,
                offset: out.batch.lines[i].offset,
            };
            let line = i as u32;
            let read = Record::parse(out.batch.line(i)).and_then(|r| match r {
                Record::Hit(h) => {
                    let (topic, partition) = (h.origin.topic.clone(), h.origin.partition);
                    let hit = h.into_hit(rules, ours, pos, |group, target| {
                        shard_key(group, rules.route_of(target))
                    })?;
                    Ok((
                        Carried::Hit {
                            topic: topic.into(),
                            partition,
                        },
                        Some(hit),
                    ))
                }
                Record::Stamp(s) => Ok((Carried::Stamp(s), None)),
                Record::Link(_) => Err(RecordError::Malformed(
                    "a credential link belongs in the lineage topic, not among hits".into(),
                )),
            });
            match read {
                Ok((carried, hit)) => {
                    out.times
                        .push(hit.as_ref().map_or(EventTime::MIN, |h| h.event.time));
                    if let Some(hit) = hit {
                        out.hits.push((line, hit, None));
                    }
                    out.carried.push((line, carried));
                }
                Err(e) => {
                    out.times.push(EventTime::MIN);
                    out.carried.push((line, Carried::Refused(e.to_string())));
                }
            }
        }
        out
    }
}
