//! The resolver: applies lineage links and resolves hit identities in event-time order.
//!
//! Hits and links wait here until the watermark passes their event time, then run in
//! (time, event key) order, links before hits at the same instant. A session's events that
//! arrive before the `AssumeRole` that minted it (CloudTrail delivers out of order) are therefore
//! still resolved to the caller, as long as they are within the allowed lateness.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::{Lineage, LineageLimits};
use crate::matcher::TargetMap;
use crate::time::EventTime;
// The worker writes the mark and the resolver fills it in: the shared vocabulary defines it.
pub use crate::vocab::IDENTITY_MARK;
use crate::vocab::{
    GROUP_SEPARATOR, Hit, IdentityRef, Link, LinkKind, Position, Target, shard_key,
};

/// Boxed, so that an [`Item`] is small: the queue moves items as it orders them (some 20 moves
/// an item), and with a link inline an item was 170 bytes.
#[derive(Debug)]
enum Payload {
    Link(Box<Link>),
    Hit(Box<Hit>, Option<Box<IdentityRef>>),
}

#[derive(Debug)]
struct Item {
    time: EventTime,
    key: u64,
    /// Links (0) before hits (1) at the same time and key.
    order: u8,
    seq: u64,
    payload: Payload,
}

impl Item {
    fn rank(&self) -> (EventTime, u64, u8, u64) {
        (self.time, self.key, self.order, self.seq)
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Counters of the resolver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    pub hits: u64,
    pub links: u64,
    pub released_early: u64,
    pub peak_pending: u64,
}

/// Orders hits and links, keeps the lineage, rewrites group keys to root identities.
pub struct Resolver {
    pending: BinaryHeap<Reverse<Item>>,
    lineage: Lineage,
    /// Per correlation: the group-key values its shard is picked by (`None`: the whole key).
    routes: Vec<Option<Vec<usize>>>,
    seq: u64,
    max_pending: usize,
    pub stats: ResolverStats,
}

impl Resolver {
    /// `routes[c]` is how correlation `c` picks its shard (see [`shard_key`]).
    pub fn new(
        limits: LineageLimits,
        max_pending: usize,
        routes: Vec<Option<Vec<usize>>>,
    ) -> Resolver {
        Resolver {
            pending: BinaryHeap::new(),
            lineage: Lineage::new(limits),
            routes,
            seq: 0,
            max_pending: max_pending.max(1),
            stats: ResolverStats::default(),
        }
    }

    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// The offset, per source, of the oldest event a restart must replay for this resolver to
    /// be as it is: every hit and link still waiting here, and the minting event of every link
    /// minted at or after `links_since` (older links are given up at a restart).
    pub fn oldest_positions(&self, links_since: EventTime, out: &mut HashMap<u32, u64>) {
        let mut note = |p: Position| {
            let o = out.entry(p.source).or_insert(p.offset);
            *o = (*o).min(p.offset);
        };
        for Reverse(item) in &self.pending {
            match &item.payload {
                Payload::Hit(hit, _) => hit.event.visit(&mut |e| note(e.pos)),
                Payload::Link(link) => link.pos.into_iter().for_each(&mut note),
            }
        }
        self.lineage.oldest_positions(links_since, out);
    }

    /// The hits waiting here that `pick` selects, copied (a changelog marker carries them).
    pub fn waiting_hits(&self, pick: &dyn Fn(&Hit) -> bool) -> Vec<Hit> {
        (self.pending.iter())
            .filter_map(|Reverse(i)| match &i.payload {
                Payload::Hit(h, _) if pick(h) => Some((**h).clone()),
                _ => None,
            })
            .collect()
    }

    /// Drops the hits waiting here that `gone` selects (a revoked partition's); returns how
    /// many.
    pub fn forget_hits(&mut self, gone: &dyn Fn(&Hit) -> bool) -> usize {
        let before = self.pending.len();
        let pending = std::mem::take(&mut self.pending);
        self.pending = (pending.into_iter())
            .filter(|Reverse(i)| !matches!(&i.payload, Payload::Hit(h, _) if gone(h)))
            .collect();
        before - self.pending.len()
    }

    /// A reloaded rule set: hits waiting here move to their rule's new index (see
    /// [`TargetMap`]), hits of changed or removed rules are dropped; returns how many.
    pub fn reload(&mut self, routes: Vec<Option<Vec<usize>>>, map: &TargetMap) -> u64 {
        self.routes = routes;
        let mut dropped = 0;
        let pending = std::mem::take(&mut self.pending);
        for Reverse(mut item) in pending {
            if let Payload::Hit(hit, _) = &mut item.payload {
                match map.map(hit.target) {
                    Some(t) => hit.target = t,
                    None => {
                        dropped += 1;
                        continue;
                    }
                }
            }
            self.pending.push(Reverse(item));
        }
        dropped
    }

    /// Queues a hit whose group key may hold [`IDENTITY_MARK`]s for `identity`'s root.
    pub fn push_hit(&mut self, hit: Hit, identity: Option<IdentityRef>, out: &mut dyn FnMut(Hit)) {
        self.stats.hits += 1;
        let (time, key) = (hit.event.time, hit.event.key);
        self.push(
            Item {
                time,
                key,
                order: 1,
                seq: 0,
                payload: Payload::Hit(Box::new(hit), identity.map(Box::new)),
            },
            out,
        );
    }

    /// Queues a lineage link.
    pub fn push_link(&mut self, link: Link, out: &mut dyn FnMut(Hit)) {
        self.stats.links += 1;
        let (time, key) = (link.time, link.key);
        self.push(
            Item {
                time,
                key,
                order: 0,
                seq: 0,
                payload: Payload::Link(Box::new(link)),
            },
            out,
        );
    }

    fn push(&mut self, mut item: Item, out: &mut dyn FnMut(Hit)) {
        self.seq += 1;
        item.seq = self.seq;
        self.pending.push(Reverse(item));
        self.stats.peak_pending = self.stats.peak_pending.max(self.pending.len() as u64);
        // Bounded: past the cap the oldest item is handled now (counted), never dropped.
        while self.pending.len() > self.max_pending {
            self.stats.released_early += 1;
            if let Some(Reverse(item)) = self.pending.pop() {
                self.handle(item, out);
            }
        }
    }

    /// Handles, in order, everything older than `watermark`.
    pub fn release(&mut self, watermark: EventTime, out: &mut dyn FnMut(Hit)) {
        while self
            .pending
            .peek()
            .is_some_and(|Reverse(i)| i.time < watermark)
        {
            if let Some(Reverse(item)) = self.pending.pop() {
                self.handle(item, out);
            }
        }
        if watermark != EventTime::MAX {
            self.lineage.expire(watermark);
        }
    }

    fn handle(&mut self, item: Item, out: &mut dyn FnMut(Hit)) {
        match item.payload {
            Payload::Link(link) => self.lineage.link(&link),
            Payload::Hit(hit, identity) => {
                let mut hit = *hit;
                if let Some(identity) = identity {
                    let resolved = self.lineage.resolve(&identity, hit.event.time);
                    if hit.group.contains(IDENTITY_MARK) {
                        // A root holding the separator would split into two group values.
                        let root = resolved.root.replace(GROUP_SEPARATOR, "\u{fffd}");
                        hit.group = hit.group.replace(IDENTITY_MARK, &root).into();
                        let route = match hit.target {
                            Target::Correlation(c) => {
                                self.routes.get(c as usize).and_then(|r| r.as_deref())
                            }
                            Target::Detection(_) => None,
                        };
                        hit.shard_key = shard_key(&hit.group, route);
                    }
                    let mut actor = identity.describe();
                    match (&resolved.via, resolved.kind) {
                        (Some(via), Some(LinkKind::KeyOwner)) => {
                            if resolved.root != identity.principal {
                                actor.push_str(&format!(
                                    " (lineage: {via} seen acting as {})",
                                    resolved.root
                                ));
                            }
                        }
                        (Some(via), _) => actor.push_str(&format!(
                            " (lineage: {via} minted by {}, {} hop(s))",
                            resolved.root, resolved.hops
                        )),
                        (None, _) => {}
                    }
                    hit.event.actor = Some(actor.into());
                }
                out(hit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::EventRef;
    use crate::time::Span;

    fn at(offset: u64) -> Position {
        Position { source: 3, offset }
    }

    fn hit(secs: i64, offset: u64) -> Hit {
        Hit {
            target: Target::Correlation(0),
            stages: 1,
            group: IDENTITY_MARK.to_string().into(),
            value: None,
            shard_key: 0,
            event: EventRef {
                time: EventTime::from_millis(secs * 1000),
                key: offset,
                pos: at(offset),
                id: format!("e{offset}").into(),
                parts: None,
                actor: None,
                details: None,
            },
            touched: Vec::new(),
        }
    }

    /// Regression (W500's end of input: 130,797 items popped, a third of the release moving
    /// 170-byte items): what the queue moves stays small.
    #[test]
    fn a_queued_item_is_small() {
        assert!(
            std::mem::size_of::<Item>() <= 64,
            "{}",
            std::mem::size_of::<Item>()
        );
    }

    fn who(credential: &str) -> IdentityRef {
        IdentityRef {
            principal: "user/alice".into(),
            credential: Some(credential.into()),
            session: None,
        }
    }

    #[test]
    fn waiting_hits_and_links_and_recent_links_hold_their_offsets() {
        let mut r = Resolver::new(LineageLimits::default(), 1024, vec![None]);
        let mut out = Vec::new();
        r.push_link(
            Link {
                time: EventTime::from_millis(10_000),
                key: 1,
                kind: LinkKind::AssumeRole,
                minted: vec!["ASIA1".into()],
                caller: who("AKIA1"),
                lifetime: Span::from_secs(3600),
                pos: Some(at(7)),
            },
            &mut |h| out.push(h),
        );
        r.push_hit(hit(20, 9), Some(who("ASIA1")), &mut |h| out.push(h));
        let mut held = HashMap::new();
        r.oldest_positions(EventTime::MIN, &mut held);
        assert_eq!(held, HashMap::from([(3, 7)]), "both wait for event time");
        // Event time passes both: the hit leaves for its shard, the link stays in the lineage.
        r.release(EventTime::from_millis(30_000), &mut |h| out.push(h));
        assert_eq!(out.len(), 1);
        assert_eq!(
            &*out[0].group, "user/alice",
            "the session resolved to its caller"
        );
        held.clear();
        r.oldest_positions(EventTime::from_millis(5_000), &mut held);
        assert_eq!(
            held,
            HashMap::from([(3, 7)]),
            "a recent link holds its minting event"
        );
        held.clear();
        r.oldest_positions(EventTime::from_millis(15_000), &mut held);
        assert!(held.is_empty(), "an older link is given up: {held:?}");
    }
}
