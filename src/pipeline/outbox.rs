//! The outbox: hits on their way from the sequence thread to the shards, sent in pieces.
//!
//! Hits wait in the resolver until engine time passes them; a replay whose events span less
//! than its lateness (W500: eleven minutes against fifteen) keeps every one of them there
//! until the end of input. Released into one vector per shard, the end of input sent a single
//! message as long as everything that waited (65,612 hits on W500), grown by reallocation,
//! and the shard started on it only once the release was over. The outbox sends a shard's
//! pile as soon as it holds [`HITS_PER_MESSAGE`], so a message has a bounded size and the
//! shard works while the sequence thread is still releasing.

use crossbeam_channel::Sender;

use super::ShardMsg;
use crate::correlate::Hit;

/// Most hits in one message to a shard.
pub const HITS_PER_MESSAGE: usize = 4096;

/// Per shard, the hits routed to it and not yet sent.
#[derive(Debug)]
pub struct Outbox {
    piles: Vec<Vec<Hit>>,
    /// Every send so far reached its shard.
    alive: bool,
}

impl Outbox {
    pub fn new(shards: usize) -> Outbox {
        Outbox {
            piles: vec![Vec::new(); shards],
            alive: true,
        }
    }

    /// Routes hits to `shards` (indexed as the piles are): each joins its shard's pile, and a
    /// pile of [`HITS_PER_MESSAGE`] goes out at once. Once a shard is gone, hits are dropped
    /// (the engine is stopping) and [`Outbox::flush`] says so.
    pub fn router<'a>(&'a mut self, shards: &'a [Sender<ShardMsg>]) -> impl FnMut(usize, Hit) + 'a {
        move |shard, hit| {
            if !self.alive {
                return;
            }
            let Some(pile) = self.piles.get_mut(shard) else {
                return;
            };
            pile.push(hit);
            if pile.len() >= HITS_PER_MESSAGE {
                // More are likely to follow (a release this large is the end of input or a
                // jump of engine time): the next pile is sized for a whole message at once,
                // not grown by doubling (each growth copied the hits into fresh pages).
                let hits = std::mem::replace(pile, Vec::with_capacity(HITS_PER_MESSAGE));
                self.alive = shards
                    .get(shard)
                    .is_some_and(|tx| tx.send(ShardMsg::Hits(hits)).is_ok());
            }
        }
    }

    /// Sends every pile that holds hits; false if a shard is gone (now or while routing).
    pub fn flush(&mut self, shards: &[Sender<ShardMsg>]) -> bool {
        for (pile, tx) in self.piles.iter_mut().zip(shards) {
            if self.alive && !pile.is_empty() {
                self.alive = tx.send(ShardMsg::Hits(std::mem::take(pile))).is_ok();
            }
        }
        self.alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(n: u64) -> Hit {
        crate::correlate::tests::hit(0, 1, "g", n as i64, &format!("e{n}"))
    }

    /// Regression (W500's end of input, one message of 65,612 hits): a release larger than a
    /// message goes out in pieces of at most `HITS_PER_MESSAGE`, each shard's hits whole and
    /// in the order they were routed, the first piece before the release is over.
    #[test]
    fn a_large_release_goes_out_in_bounded_pieces_in_order() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| crossbeam_channel::unbounded()).unzip();
        let mut outbox = Outbox::new(2);
        let n = HITS_PER_MESSAGE as u64 * 2 + 10;
        {
            let mut route = outbox.router(&txs);
            for i in 0..n {
                route(if i % 7 == 0 { 1 } else { 0 }, hit(i));
            }
        }
        assert!(!rxs[0].is_empty(), "a full pile is sent while routing");
        assert!(outbox.flush(&txs));
        for (shard, rx) in rxs.iter().enumerate() {
            let mut got = Vec::new();
            while let Ok(msg) = rx.try_recv() {
                let ShardMsg::Hits(hits) = msg else {
                    panic!("only hits are sent");
                };
                assert!(!hits.is_empty() && hits.len() <= HITS_PER_MESSAGE);
                got.extend(hits.into_iter().map(|h| h.event.id));
            }
            let want: Vec<Box<str>> = (0..n)
                .filter(|i| (i % 7 == 0) == (shard == 1))
                .map(|i| format!("e{i}").into())
                .collect();
            assert_eq!(got, want, "shard {shard}");
        }
        assert!(outbox.flush(&txs), "nothing left to send");
    }

    /// A shard that is gone is reported by the next flush, and no more hits pile up.
    #[test]
    fn a_shard_gone_is_reported() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        drop(rx);
        let txs = vec![tx];
        let mut outbox = Outbox::new(1);
        {
            let mut route = outbox.router(&txs);
            for i in 0..(HITS_PER_MESSAGE as u64 + 5) {
                route(0, hit(i));
            }
        }
        assert!(!outbox.flush(&txs));
        assert!(
            outbox.piles[0].is_empty(),
            "nothing piles up for a shard that is gone"
        );
    }
}
