//! A shard thread of the service: the replay's [`ShardEngine`] driven by the sequencer, plus the
//! barrier report (the oldest input it still needs) that commits are held back to.
//!
//! Unlike replay, a shard never flushes to the end of time when its channel closes: the service
//! stops with live state, which the next run rebuilds by replaying from the held-back commits.
//! A rule reload arrives in order with the hits; findings travel with the rule set that decided
//! them, so the delivery thread renders each with the right rules.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::inventory::LiveAssessor;
use super::{DeliveryMsg, ShardMsg};
use crate::correlate::{Finding, ShardEngine, ShardLimits};
use crate::matcher::RuleSet;

/// Runs shard `index` until its channel closes or the delivery thread is gone.
pub fn run(
    index: usize,
    rules: Arc<RuleSet>,
    limits: ShardLimits,
    assessor: Arc<LiveAssessor>,
    rx: Receiver<ShardMsg>,
    delivery: Sender<DeliveryMsg>,
) {
    let (mut version, current) = assessor.current();
    let mut engine = ShardEngine::new(rules.clone(), limits).with_assessor(current);
    let mut rules = rules;
    let mut out = Vec::new();
    for msg in rx.iter() {
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
                flush(index, &rules, &mut out, &delivery)
            }
            ShardMsg::Watermark(w) => {
                engine.advance(w, &mut out);
                flush(index, &rules, &mut out, &delivery)
                    && delivery.send(DeliveryMsg::Progress(index, w)).is_ok()
            }
            ShardMsg::Report(epoch) => {
                let mut holds = HashMap::new();
                engine.oldest_positions(&mut holds);
                delivery
                    .send(DeliveryMsg::Holds {
                        epoch,
                        holds,
                        states: engine.live_states() as u64,
                        state_bytes: engine.state_bytes() as u64,
                    })
                    .is_ok()
            }
            ShardMsg::Reload(new, map) => {
                let sent = flush(index, &rules, &mut out, &delivery);
                let (kept, dropped) = engine.reload(new.clone(), &map);
                rules = new;
                tracing::info!(shard = index, kept, dropped, "rules swapped in");
                sent
            }
        };
        if !sent {
            return;
        }
    }
}

fn flush(
    index: usize,
    rules: &Arc<RuleSet>,
    out: &mut Vec<Finding>,
    delivery: &Sender<DeliveryMsg>,
) -> bool {
    out.is_empty()
        || delivery
            .send(DeliveryMsg::Findings(
                index,
                rules.clone(),
                std::mem::take(out),
            ))
            .is_ok()
}
