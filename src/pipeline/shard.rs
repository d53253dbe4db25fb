//! A shard thread: the [`ShardEngine`] driven by the sequence thread, plus the barrier report
//! (the oldest input it still needs) that a service holds its commits back to.
//!
//! A shard decides its state to the end of time only on [`ShardMsg::Finish`] (a replay's end of
//! input); when its channel closes without it (a service stopping), it stops with live state,
//! which the next run rebuilds by replaying from the held-back commits. A rule reload arrives
//! in order with the hits; findings travel with the rule set that decided them, so the output
//! renders each with the right rules.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::{Bookkeeping, OutputMsg, ShardChanges, ShardMsg};
use crate::cluster::placement::partition_of;
use crate::correlate::{Finding, ShardEngine, ShardLimits, ShardStats, Target};
use crate::matcher::RuleSet;
use crate::score::LiveAssessor;
use crate::time::EventTime;

/// What a shard did, when it ended.
#[derive(Clone, Debug, Default)]
pub struct ShardReport {
    pub stats: ShardStats,
    /// Group states alive when the input ended (before deciding them), and their bytes.
    pub states_at_end: u64,
    pub bytes_at_end: u64,
    /// What the shard held when the input was suspended ([`ShardMsg::Suspend`]).
    pub snapshot: Option<crate::correlate::engine::Snapshot>,
}

/// Runs shard `index` until its channel closes, its input finishes, or the output is gone.
/// `changelog`: stage 2 with a changelog, the hits topic's partition count (see
/// [`super::Setup::changelog`]).
#[allow(clippy::too_many_arguments)]
pub fn run(
    index: usize,
    rules: Arc<RuleSet>,
    limits: ShardLimits,
    changelog: Option<u32>,
    assessor: Arc<LiveAssessor>,
    rx: Receiver<ShardMsg>,
    output: Sender<OutputMsg>,
    heartbeat: crate::metrics::Heartbeat,
) -> ShardReport {
    let (mut version, current) = assessor.current();
    let mut engine = ShardEngine::new(rules.clone(), limits).with_assessor(current);
    if changelog.is_some() {
        engine.track_changes();
    }
    let mut rules = rules;
    let mut out = Vec::new();
    let mut report = ShardReport::default();
    for msg in rx.iter() {
        heartbeat.beat();
        if assessor.version() != version {
            let (v, current) = assessor.current();
            engine.set_assessor(current);
            version = v;
        }
        let sent = match msg {
            ShardMsg::Hits(hits) => {
                for h in hits {
                    engine.push(h, &mut out);
                }
                flush(index, &rules, &mut out, &output)
            }
            ShardMsg::Watermark(w) => {
                engine.advance(w, &mut out);
                flush(index, &rules, &mut out, &output)
                    && output.send(OutputMsg::Progress(index, w)).is_ok()
            }
            ShardMsg::Report(epoch) => {
                let mut holds = HashMap::new();
                engine.oldest_positions(&mut holds);
                let changes = changelog.map(|n| Box::new(changes(index, &mut engine, &rules, n)));
                output
                    .send(OutputMsg::Bookkeeping(Bookkeeping::Holds {
                        epoch,
                        holds,
                        states: engine.live_states() as u64,
                        state_bytes: engine.state_bytes() as u64,
                        evicted: engine.stats().evicted + engine.stats().budget_evicted,
                        changes,
                        unsent: Vec::new(),
                    }))
                    .is_ok()
            }
            ShardMsg::Reload(new, map) => {
                let sent = flush(index, &rules, &mut out, &output);
                let (kept, dropped) = engine.reload(new.clone(), &map);
                rules = new;
                tracing::info!(shard = index, kept, dropped, "rules swapped in");
                sent
            }
            ShardMsg::Owned(_) | ShardMsg::Lineage { .. } => true,
            ShardMsg::Forget(parts) => {
                let n = changelog.unwrap_or(1);
                let gone = engine.forget(|target, group| {
                    parts.contains(&partition_of(group, rules.route_of(target), n))
                });
                tracing::info!(
                    shard = index,
                    states = gone,
                    ?parts,
                    "revoked partitions' states dropped"
                );
                true
            }
            ShardMsg::Restore(snapshot) => match engine.import(snapshot) {
                Ok((adopted, held)) => {
                    tracing::info!(shard = index, adopted, held, "states restored");
                    true
                }
                // The front end checked the snapshot against these rules.
                Err(e) => {
                    tracing::error!(shard = index, error = %e, "snapshot refused");
                    true
                }
            },
            ShardMsg::Suspend => {
                flush(index, &rules, &mut out, &output);
                report.states_at_end = engine.live_states() as u64;
                report.bytes_at_end = engine.state_bytes() as u64;
                report.snapshot = Some(engine.export(|_, _| true));
                break;
            }
            ShardMsg::Stop => break,
            ShardMsg::Finish => {
                engine.process_pending(&mut out);
                report.states_at_end = engine.live_states() as u64;
                report.bytes_at_end = engine.state_bytes() as u64;
                engine.advance(EventTime::MAX, &mut out);
                let _ = flush(index, &rules, &mut out, &output)
                    && output
                        .send(OutputMsg::Progress(index, EventTime::MAX))
                        .is_ok();
                break;
            }
        };
        if !sent {
            break;
        }
    }
    report.stats = engine.stats().clone();
    report
}

/// What changed in the shard since the last barrier, per hits partition of `n`.
fn changes(index: usize, engine: &mut ShardEngine, rules: &RuleSet, n: u32) -> ShardChanges {
    let mut out = ShardChanges {
        shard: index,
        ..ShardChanges::default()
    };
    let Some(c) = engine.take_changes() else {
        return out;
    };
    out.whole = c.whole;
    let part = |target: Target, group: &str| partition_of(group, rules.route_of(target), n);
    for s in c.states {
        let p = part(Target::Correlation(s.target), &s.group);
        out.parts.entry(p).or_default().states.push(s);
    }
    for (t, g) in c.ended {
        let p = part(Target::Correlation(t), &g);
        out.parts.entry(p).or_default().ended.push((t, g));
    }
    for h in engine.waiting_hits() {
        let p = part(h.target, &h.group);
        out.parts.entry(p).or_default().pending.push(h);
    }
    out
}

fn flush(
    index: usize,
    rules: &Arc<RuleSet>,
    out: &mut Vec<Finding>,
    output: &Sender<OutputMsg>,
) -> bool {
    out.is_empty()
        || output
            .send(OutputMsg::Findings(
                index,
                rules.clone(),
                std::mem::take(out),
            ))
            .is_ok()
}
