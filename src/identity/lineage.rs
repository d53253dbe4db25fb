//! The lineage map: minted credential -> the root identity that minted it, bounded and expiring.

use std::collections::{BTreeMap, HashMap};

use crate::time::EventTime;
use crate::vocab::{IdentityRef, Link, Position};

/// Bounds of the lineage map.
#[derive(Clone, Copy, Debug)]
pub struct LineageLimits {
    /// Most credentials followed at once; beyond it the link closest to expiry is dropped.
    pub max_links: usize,
    /// Longest chain of hops followed; a deeper link still resolves, to the deepest root kept.
    pub max_hops: u8,
}

impl Default for LineageLimits {
    fn default() -> Self {
        LineageLimits {
            max_links: 1 << 20,
            max_hops: 16,
        }
    }
}

/// Counters of the lineage map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineageStats {
    pub links: u64,
    pub resolved_through_links: u64,
    pub expired: u64,
    pub evicted: u64,
    pub peak: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    root: Box<str>,
    hops: u8,
    expires: EventTime,
    seq: u64,
    /// When and where the minting event was read.
    minted: EventTime,
    pos: Option<Position>,
}

/// An identity resolved to its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub root: Box<str>,
    /// Credential hops between the acting credential and the root (0: acting as itself).
    pub hops: u8,
    /// The credential or session that carried the link, when there was one.
    pub via: Option<Box<str>>,
}

/// Minted credentials and who minted them. Owned by one thread (the resolver); applied in
/// event-time order.
#[derive(Debug, Default)]
pub struct Lineage {
    limits: LineageLimits,
    entries: HashMap<Box<str>, Entry>,
    by_expiry: BTreeMap<(EventTime, u64), Box<str>>,
    seq: u64,
    stats: LineageStats,
}

impl Lineage {
    pub fn new(limits: LineageLimits) -> Lineage {
        Lineage {
            limits,
            ..Lineage::default()
        }
    }

    pub fn stats(&self) -> &LineageStats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The root of `id` at event time `now`: the minter of its credential or session if a live
    /// link says so, else its own principal.
    pub fn resolve(&mut self, id: &IdentityRef, now: EventTime) -> Resolved {
        for candidate in [id.credential.as_deref(), id.session.as_deref()]
            .into_iter()
            .flatten()
        {
            if let Some(e) = self.entries.get(candidate)
                && e.expires >= now
            {
                self.stats.resolved_through_links += 1;
                return Resolved {
                    root: e.root.clone(),
                    hops: e.hops,
                    via: Some(candidate.into()),
                };
            }
        }
        Resolved {
            root: id.principal.clone(),
            hops: 0,
            via: None,
        }
    }

    /// Records that `link.caller` minted `link.minted`. The caller is itself resolved first, so
    /// a chain of hops always points straight at the root.
    pub fn link(&mut self, link: &Link) {
        self.expire(link.time);
        let parent = self.resolve(&link.caller, link.time);
        let hops = parent.hops.saturating_add(1).min(self.limits.max_hops);
        let expires = link.time.plus(link.lifetime);
        for minted in &link.minted {
            // A credential never links to itself (a user creating a key for themselves).
            if Some(minted) == link.caller.credential.as_ref() || **minted == *parent.root {
                continue;
            }
            self.seq += 1;
            if let Some(old) = self.entries.insert(
                minted.clone(),
                Entry {
                    root: parent.root.clone(),
                    hops,
                    expires,
                    seq: self.seq,
                    minted: link.time,
                    pos: link.pos,
                },
            ) {
                self.by_expiry.remove(&(old.expires, old.seq));
            }
            self.by_expiry.insert((expires, self.seq), minted.clone());
            self.stats.links += 1;
            while self.entries.len() > self.limits.max_links {
                if let Some(((_, _), key)) = self.by_expiry.pop_first() {
                    self.entries.remove(&key);
                    self.stats.evicted += 1;
                }
            }
        }
        self.stats.peak = self.stats.peak.max(self.entries.len() as u64);
    }

    /// The offset, per source, of the oldest minting event of a link minted at or after
    /// `since`: a restart that replays from there knows those links again. Costs a walk over
    /// all links: call it at commit barriers, not per event.
    pub fn oldest_positions(&self, since: EventTime, out: &mut HashMap<u32, u64>) {
        for e in self.entries.values() {
            if let Some(p) = e.pos.filter(|_| e.minted >= since) {
                let o = out.entry(p.source).or_insert(p.offset);
                *o = (*o).min(p.offset);
            }
        }
    }

    /// Drops links that expired before `now`.
    pub fn expire(&mut self, now: EventTime) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 >= now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
            self.stats.expired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::LinkKind;
    use crate::time::Span;

    fn id(principal: &str, credential: Option<&str>) -> IdentityRef {
        IdentityRef {
            principal: principal.into(),
            credential: credential.map(Into::into),
            session: None,
        }
    }

    fn t(secs: i64) -> EventTime {
        EventTime::from_millis(secs * 1000)
    }

    fn link(secs: i64, caller: IdentityRef, minted: &str, kind: LinkKind) -> Link {
        Link {
            time: t(secs),
            key: secs as u64,
            kind,
            minted: vec![minted.into()],
            caller,
            lifetime: Span::from_secs(3600),
            pos: Some(Position {
                source: 0,
                offset: secs as u64,
            }),
        }
    }

    #[test]
    fn links_minted_since_a_time_hold_their_minting_offsets() {
        let mut l = Lineage::new(LineageLimits::default());
        l.link(&link(
            5,
            id("user/a", Some("AKIA1")),
            "ASIA1",
            LinkKind::AssumeRole,
        ));
        l.link(&link(
            9,
            id("user/b", Some("AKIA2")),
            "ASIA2",
            LinkKind::AssumeRole,
        ));
        let mut held = HashMap::new();
        l.oldest_positions(t(0), &mut held);
        assert_eq!(held.get(&0), Some(&5), "both links held, the oldest wins");
        held.clear();
        l.oldest_positions(t(6), &mut held);
        assert_eq!(
            held.get(&0),
            Some(&9),
            "a link minted before `since` is given up"
        );
        held.clear();
        l.oldest_positions(t(10), &mut held);
        assert!(held.is_empty());
    }

    #[test]
    fn two_hops_resolve_to_the_first_caller() {
        let mut l = Lineage::new(LineageLimits::default());
        l.link(&link(
            0,
            id("user/alice", Some("AKIA1")),
            "ASIA1",
            LinkKind::AssumeRole,
        ));
        // The session of the first hop assumes another role.
        l.link(&link(
            10,
            id("role/a", Some("ASIA1")),
            "ASIA2",
            LinkKind::AssumeRole,
        ));
        let r = l.resolve(&id("role/b", Some("ASIA2")), t(20));
        assert_eq!(&*r.root, "user/alice");
        assert_eq!(r.hops, 2);
        assert_eq!(r.via.as_deref(), Some("ASIA2"));
    }

    #[test]
    fn unknown_and_expired_credentials_resolve_to_themselves() {
        let mut l = Lineage::new(LineageLimits::default());
        l.link(&link(
            0,
            id("user/alice", Some("AKIA1")),
            "ASIA1",
            LinkKind::AssumeRole,
        ));
        assert_eq!(
            &*l.resolve(&id("role/a", Some("ASIA9")), t(1)).root,
            "role/a"
        );
        assert_eq!(
            &*l.resolve(&id("role/a", Some("ASIA1")), t(3601)).root,
            "role/a"
        );
        l.expire(t(3601));
        assert!(l.is_empty());
        assert_eq!(l.stats().expired, 1);
    }

    #[test]
    fn the_map_is_bounded() {
        let mut l = Lineage::new(LineageLimits {
            max_links: 3,
            max_hops: 16,
        });
        for i in 0..10 {
            l.link(&link(
                i,
                id("user/u", Some("AKIA")),
                &format!("ASIA{i}"),
                LinkKind::AssumeRole,
            ));
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.stats().evicted, 7);
        assert_eq!(
            &*l.resolve(&id("role/x", Some("ASIA9")), t(10)).root,
            "user/u"
        );
        assert_eq!(
            &*l.resolve(&id("role/x", Some("ASIA0")), t(10)).root,
            "role/x"
        );
    }
}
