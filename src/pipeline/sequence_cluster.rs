//! The sequence thread's part in a cluster: in stage 1, telling the forwarder which input
//! partitions it owns and handing it the links and lineage frontiers to write out; in stage 2,
//! splitting a restored snapshot over the shards and suspending them into one.

use super::State;
use crate::correlate::Target;
use crate::correlate::engine::Snapshot;
use crate::input::SourceInfo;
use crate::pipeline::{Bookkeeping, ChangelogRead, OutputMsg, ShardMsg};
use crate::time::EventTime;
use crate::vocab::shard_key;

impl State<'_> {
    /// Stage 1 sharing its lineage: hands the forwarder the links this batch accepted and
    /// each owned source's lineage frontier that moved.
    pub(super) fn send_lineage(&mut self) -> bool {
        if !self.share_lineage {
            return true;
        }
        let links = self.seq.take_outbound();
        let mut stamps = Vec::new();
        for (s, p) in &self.parts {
            let Some(f) = self.seq.lineage_frontier(*s).filter(|_| p.assigned) else {
                continue;
            };
            if self.lineage_stamps.get(s) != Some(&f) {
                self.lineage_stamps.insert(*s, f);
                stamps.push((*s, f));
            }
        }
        if links.is_empty() && stamps.is_empty() {
            return true;
        }
        stamps.sort_unstable();
        self.shards.iter().all(|tx| {
            tx.send(ShardMsg::Lineage {
                links: links.clone(),
                stamps: stamps.clone(),
            })
            .is_ok()
        })
    }

    /// Tells the shards (a forwarder, which stamps them) which sources are assigned now.
    pub(super) fn tell_owned(&self) -> bool {
        let mut owned: Vec<u32> = (self.parts.iter())
            .filter(|(_, p)| p.assigned)
            .map(|(s, _)| *s)
            .collect();
        owned.sort_unstable();
        self.shards
            .iter()
            .all(|tx| tx.send(ShardMsg::Owned(owned.clone())).is_ok())
    }

    /// Gives each shard the states and waiting hits whose group key it owns (the shard keys
    /// are this process's own: a snapshot never carries them).
    pub(super) fn restore(&mut self, snapshot: Snapshot) -> bool {
        let n = self.shards.len().max(1) as u64;
        let rules = &self.rules;
        let mut parts: Vec<Snapshot> = (0..n)
            .map(|_| Snapshot {
                watermark: snapshot.watermark,
                ..Snapshot::default()
            })
            .collect();
        for s in snapshot.states {
            let k = shard_key(&s.group, rules.route_of(Target::Correlation(s.target))) % n;
            parts[k as usize].states.push(s);
        }
        for mut h in snapshot.pending {
            h.shard_key = shard_key(&h.group, rules.route_of(h.target));
            parts[(h.shard_key % n) as usize].pending.push(h);
        }
        if let Some(last) = snapshot.last {
            let k = shard_key(&last.3, rules.route_of(last.2)) % n;
            parts[k as usize].last = Some(last);
        }
        self.shards
            .iter()
            .zip(parts)
            .all(|(tx, part)| tx.send(ShardMsg::Restore(part)).is_ok())
    }

    /// Stage 2 with a changelog: a partition's changelog was read on assignment. The delivery
    /// learns its keys (per shard, by this process's shard keys) and where commits stay
    /// behind; a usable state is restored with the stamps it had read.
    pub(super) fn changelog_read(&mut self, read: ChangelogRead) -> bool {
        let n = self.shards.len().max(1) as u64;
        let mut keys = vec![Vec::new(); n as usize];
        for k in read.keys {
            let route = self.rules.route_of(Target::Correlation(k.0));
            keys[(shard_key(&k.1, route) % n) as usize].push(k);
        }
        let told = self
            .delivery
            .send(OutputMsg::Bookkeeping(Bookkeeping::ChangelogKeys {
                source: read.source,
                committed: read.committed,
                keys,
                restored: read.restored.is_some(),
                suppress: read.suppress,
                suppress_end: read.suppress_end,
            }))
            .is_ok();
        match read.restored {
            Some(r) => {
                self.seq.restore_stamps(read.source, &r.marker.stamps);
                told && self.restore(r.snapshot) && self.advance()
            }
            None => told,
        }
    }

    /// Stage 2 with a changelog: revoked partitions' stamps, waiting hits and states go; their
    /// next owner restores them from the changelog (or replays).
    pub(super) fn forget(&mut self, sources: &[u32]) -> bool {
        if self.changelog.is_none() {
            return true;
        }
        let mut parts = Vec::new();
        for &s in sources {
            self.seq.forget_source(s);
            let names = self.sources.read().unwrap_or_else(|e| e.into_inner());
            if let Some(SourceInfo::Kafka { partition, .. }) = names.get(s) {
                parts.push(*partition);
            }
        }
        parts.is_empty()
            || self
                .shards
                .iter()
                .all(|tx| tx.send(ShardMsg::Forget(parts.clone())).is_ok())
    }

    /// Hands every hit still waiting in the sequencer to its shard, undecided, and has the
    /// shards write their state out instead of deciding it to the end of time.
    pub(super) fn suspend(&mut self) -> bool {
        self.seq
            .release(EventTime::MAX, &mut self.outbox.router(&self.shards));
        self.flush_hits()
            && self
                .shards
                .iter()
                .all(|tx| tx.send(ShardMsg::Suspend).is_ok())
    }
}
