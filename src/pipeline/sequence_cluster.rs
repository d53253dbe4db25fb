//! The sequence thread's part in a cluster's stage 1: telling the forwarder which input
//! partitions it owns, and handing it the links and lineage frontiers to write out.

use super::State;
use crate::pipeline::ShardMsg;

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
}
