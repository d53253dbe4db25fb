//! The delivery thread's bookkeeping: assignments, revocations, the changelog's keys, shard
//! holds and commit barriers, completed once every report of a barrier is in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ARRIVALS_KEPT, Barrier, Delivery};
use crate::config::ShutdownStep;
use crate::pipeline::Bookkeeping;
use crate::service::ServiceError;

impl Delivery<'_> {
    pub(super) fn bookkeeping(&mut self, msg: Bookkeeping) {
        match msg {
            Bookkeeping::Assign {
                source,
                committed,
                resume,
            } => self.ledger.assign(source, committed, resume.as_ref()),
            Bookkeeping::Revoke(sources) => {
                for s in sources {
                    self.ledger.revoke(s);
                    self.arrivals.remove(&s);
                    if let Some(w) = &mut self.changelog {
                        w.revoked(s);
                    }
                }
            }
            Bookkeeping::ChangelogKeys {
                source,
                committed,
                keys,
                restored,
                suppress,
                suppress_end,
            } => {
                self.ledger
                    .keep_commit(source, committed, suppress, suppress_end);
                let partition = match self.ctx.sources.read().map(|s| s.get(source).cloned()) {
                    Ok(Some(crate::input::SourceInfo::Kafka { partition, .. })) => Some(partition),
                    _ => None,
                };
                if let (Some(w), Some(p)) = (&mut self.changelog, partition)
                    && let Err(e) = w.assigned(source, p, keys, restored)
                {
                    tracing::error!(error = %e, "cannot write the changelog's tombstones");
                }
            }
            Bookkeeping::Barrier {
                epoch,
                drain,
                ends,
                links_evicted,
                marks,
                watermark,
            } => self.barriers.push_back(Barrier {
                marks,
                watermark,
                changes: Vec::new(),
                unsent: Default::default(),
                epoch,
                drain,
                ends,
                holds: HashMap::new(),
                reports: 0,
                states: 0,
                state_bytes: 0,
                evicted: 0,
                links_evicted,
                started: Instant::now(),
            }),
            Bookkeeping::Holds {
                epoch,
                holds,
                states,
                state_bytes,
                evicted,
                changes,
                unsent,
            } => {
                if let Some(b) = self.barriers.iter_mut().find(|b| b.epoch == epoch) {
                    b.reports += 1;
                    b.changes.extend(changes.map(|c| *c));
                    b.unsent.extend(unsent);
                    b.states += states;
                    b.state_bytes += state_bytes;
                    b.evicted += evicted;
                    for (s, o) in holds {
                        let v = b.holds.entry(s).or_insert(o);
                        *v = (*v).min(o);
                    }
                }
            }
            Bookkeeping::Arrival {
                source,
                last_offset,
                arrived,
            } => {
                let q = self.arrivals.entry(source).or_default();
                if q.len() >= ARRIVALS_KEPT {
                    q.pop_front();
                }
                q.push_back((last_offset, arrived));
            }
        }
    }

    /// Completes barriers in order once every shard reported (and, for a drain, once nothing is
    /// in flight or the flush deadline passed).
    pub(super) fn complete_barriers(&mut self) -> Result<(), ServiceError> {
        let flush_limit = self.ctx.config.shutdown.step(ShutdownStep::Flush);
        while let Some(b) = self.barriers.front() {
            if b.reports < self.ctx.shards {
                return Ok(());
            }
            let idle = self.inflight.is_empty() && self.retry.is_empty();
            if b.drain && !idle && b.started.elapsed() < flush_limit {
                return Ok(());
            }
            let Some(mut b) = self.barriers.pop_front() else {
                return Ok(());
            };
            if let Some(w) = &mut self.changelog {
                let mut unsettled = self.ledger.unsettled();
                unsettled.extend(b.unsent.iter().copied());
                w.barrier(crate::service::changelog::BarrierState {
                    ends: &b.ends,
                    marks: std::mem::take(&mut b.marks),
                    changes: std::mem::take(&mut b.changes),
                    watermark: b.watermark,
                    unsettled: &unsettled,
                })?;
                // The next owner reads what a drain wrote (a rebalance, a shutdown).
                let left = flush_limit.saturating_sub(b.started.elapsed());
                if b.drain && !w.flush(left.max(Duration::from_secs(1))) {
                    tracing::warn!("changelog writes not acknowledged by the drain's end");
                }
            }
            let m = &self.ctx.metrics;
            let g = m.gauges(self.ctx.part);
            g.state_groups
                .store(b.states, std::sync::atomic::Ordering::Relaxed);
            g.state_bytes
                .store(b.state_bytes, std::sync::atomic::Ordering::Relaxed);
            m.note_evictions(b.evicted, b.links_evicted);
            let points = self.ledger.commit_points(&b.ends, &b.holds);
            self.ctx.mailbox.post(b.epoch, points);
        }
        Ok(())
    }
}
