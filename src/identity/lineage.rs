//! The lineage map: minted credential -> the root identity that minted it, bounded and expiring.

use std::collections::{BTreeMap, HashMap};

use crate::time::EventTime;
use crate::vocab::{IdentityRef, Link, LinkKind, Position};

/// Bounds of the lineage map.
#[derive(Clone, Copy, Debug)]
pub struct LineageLimits {
    /// Most credentials followed at once; beyond it a link is dropped: first the unused link
    /// closest to expiry, and a link some hit resolved through only when no unused one is left.
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
    /// A hit (or a later link) resolved through this link: a chain in progress may depend on
    /// it, so it is evicted last.
    used: bool,
    /// What tied the credential to its root.
    kind: LinkKind,
}

/// An identity resolved to its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub root: Box<str>,
    /// Credential hops between the acting credential and the root (0: acting as itself).
    pub hops: u8,
    /// The credential or session that carried the link, when there was one.
    pub via: Option<Box<str>>,
    /// What tied `via` to the root.
    pub kind: Option<LinkKind>,
}

/// Minted credentials and who minted them. Owned by one thread (the resolver); applied in
/// event-time order.
///
/// Eviction is ranked: a flood of `AssumeRole` calls whose sessions never act (1.1M of them
/// once pushed out the link of a session in an open chain, splitting the chain) evicts unused
/// links, closest to expiry first; a link some hit resolved through goes only when every unused
/// link is gone.
#[derive(Debug, Default)]
pub struct Lineage {
    limits: LineageLimits,
    entries: HashMap<Box<str>, Entry>,
    /// Links no hit has resolved through yet, by expiry.
    by_expiry: BTreeMap<(EventTime, u64), Box<str>>,
    /// Links some hit resolved through, by expiry.
    used_by_expiry: BTreeMap<(EventTime, u64), Box<str>>,
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
            if let Some(e) = self.entries.get_mut(candidate)
                && e.expires >= now
            {
                if !e.used {
                    e.used = true;
                    let slot = (e.expires, e.seq);
                    if let Some(key) = self.by_expiry.remove(&slot) {
                        self.used_by_expiry.insert(slot, key);
                    }
                }
                self.stats.resolved_through_links += 1;
                return Resolved {
                    root: e.root.clone(),
                    hops: e.hops,
                    via: Some(candidate.into()),
                    kind: Some(e.kind),
                };
            }
        }
        Resolved {
            root: id.principal.clone(),
            hops: 0,
            via: None,
            kind: None,
        }
    }

    /// Records that `link.caller` minted `link.minted`. The caller is itself resolved first, so
    /// a chain of hops always points straight at the root.
    ///
    /// A [`LinkKind::KeyOwner`] link mints nothing: its credential is the caller's own, so it
    /// adds no hop, it is resolved through the caller's session only (its own credential is
    /// what it describes), and it never replaces a live minting link of the credential (which
    /// knows the root better). It holds no position: a restart learns it again from the next
    /// event that shows the credential acting.
    pub fn link(&mut self, link: &Link) {
        self.expire(link.time);
        let owner = link.kind == LinkKind::KeyOwner;
        let parent = if owner {
            let by_session = IdentityRef {
                credential: None,
                ..link.caller.clone()
            };
            self.resolve(&by_session, link.time)
        } else {
            self.resolve(&link.caller, link.time)
        };
        let hops = if owner {
            parent.hops
        } else {
            parent.hops.saturating_add(1).min(self.limits.max_hops)
        };
        let expires = link.time.plus(link.lifetime);
        let pos = if owner { None } else { link.pos };
        for minted in &link.minted {
            if owner {
                if self
                    .entries
                    .get(minted)
                    .is_some_and(|e| e.kind != LinkKind::KeyOwner && e.expires >= link.time)
                {
                    continue;
                }
            } else if Some(minted) == link.caller.credential.as_ref() {
                // A credential never links to itself (a user creating a key for themselves).
                continue;
            }
            if **minted == *parent.root {
                continue;
            }
            // A sighting again of the same owner keeps the protection a hit gave it, and the
            // later of the two expiries.
            let (used, expires) = match self.entries.get(minted) {
                Some(e) if owner && e.kind == LinkKind::KeyOwner && e.root == parent.root => {
                    (e.used, e.expires.max(expires))
                }
                _ => (false, expires),
            };
            self.seq += 1;
            if let Some(old) = self.entries.insert(
                minted.clone(),
                Entry {
                    root: parent.root.clone(),
                    hops,
                    expires,
                    seq: self.seq,
                    minted: link.time,
                    pos,
                    used,
                    kind: link.kind,
                },
            ) {
                self.by_expiry.remove(&(old.expires, old.seq));
                self.used_by_expiry.remove(&(old.expires, old.seq));
            }
            if used {
                self.used_by_expiry
                    .insert((expires, self.seq), minted.clone());
            } else {
                self.by_expiry.insert((expires, self.seq), minted.clone());
            }
            self.stats.links += 1;
            while self.entries.len() > self.limits.max_links {
                let Some((_, key)) = self
                    .by_expiry
                    .pop_first()
                    .or_else(|| self.used_by_expiry.pop_first())
                else {
                    break;
                };
                self.entries.remove(&key);
                self.stats.evicted += 1;
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
        for by_expiry in [&mut self.by_expiry, &mut self.used_by_expiry] {
            while let Some(entry) = by_expiry.first_entry() {
                if entry.key().0 >= now {
                    break;
                }
                let key = entry.remove();
                self.entries.remove(&key);
                self.stats.expired += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Regression (issue 13): 1.1M `AssumeRole` calls whose sessions never act evicted the link
    /// of a session in an open chain (the oldest link), so the chain's later steps resolved to
    /// the role, not the caller, and the chain split. A link a hit resolved through now goes last.
    #[test]
    fn an_assume_role_flood_keeps_the_link_a_chain_resolved_through() {
        let mut l = Lineage::new(LineageLimits::default());
        let victim = id("user/victim", Some("AKIAVICTIM"));
        l.link(&link(0, victim, "ASIAVICTIM", LinkKind::AssumeRole));
        let session = id("role/ops", Some("ASIAVICTIM"));
        assert_eq!(&*l.resolve(&session, t(1)).root, "user/victim");
        let flood = 1_100_000;
        for i in 0..flood {
            let mut f = link(
                1,
                id("user/flood", Some("AKIAFLOOD")),
                "",
                LinkKind::AssumeRole,
            );
            f.minted = vec![format!("ASIAF{i}").into()];
            l.link(&f);
        }
        assert_eq!(l.len(), LineageLimits::default().max_links);
        assert_eq!(l.stats().evicted, flood as u64 + 1 - l.len() as u64);
        assert_eq!(
            &*l.resolve(&session, t(2)).root,
            "user/victim",
            "the used link survived the flood"
        );
        // A used link still expires on time.
        l.expire(t(3602));
        assert!(l.is_empty());
    }

    impl Lineage {
        fn oldest_positions_len(&self) -> usize {
            let mut held = HashMap::new();
            self.oldest_positions(EventTime::MIN, &mut held);
            held.len()
        }
    }

    fn owner(secs: i64, caller: IdentityRef) -> Link {
        let key = caller.credential.clone().unwrap_or_default();
        link(secs, caller, &key, LinkKind::KeyOwner)
    }

    /// Item 3b of issue 10: an event naming only its access key (a data event, a failed call)
    /// joins the principal an earlier event showed using the key.
    #[test]
    fn a_key_seen_acting_resolves_events_that_name_only_the_key() {
        let mut l = Lineage::new(LineageLimits::default());
        let alice = id("arn:aws:iam::1:user/alice", Some("AKIAALICE"));
        l.link(&owner(0, alice.clone()));
        let key_only = id("AKIAALICE", Some("AKIAALICE"));
        let r = l.resolve(&key_only, t(5));
        assert_eq!(&*r.root, "arn:aws:iam::1:user/alice");
        assert_eq!((r.hops, r.kind), (0, Some(LinkKind::KeyOwner)), "no hop");
        // The owner's own events resolve to themselves.
        assert_eq!(&*l.resolve(&alice, t(6)).root, "arn:aws:iam::1:user/alice");
        assert_eq!(
            l.oldest_positions_len(),
            0,
            "a sighting holds no restart offset"
        );
        // Sightings expire like links.
        assert_eq!(&*l.resolve(&key_only, t(3601)).root, "AKIAALICE");
    }

    #[test]
    fn a_sighting_never_replaces_the_link_that_minted_the_key() {
        let mut l = Lineage::new(LineageLimits::default());
        l.link(&link(
            0,
            id("user/alice", Some("AKIA1")),
            "ASIA1",
            LinkKind::AssumeRole,
        ));
        // The session then acts, naming its role and its key: the key still belongs to alice.
        l.link(&owner(5, id("role/ops", Some("ASIA1"))));
        let r = l.resolve(&id("ASIA1", Some("ASIA1")), t(6));
        assert_eq!(&*r.root, "user/alice");
        assert_eq!((r.hops, r.kind), (1, Some(LinkKind::AssumeRole)));
        // A session known by its ARN: its key, seen acting, resolves to the caller too.
        let mut l = Lineage::new(LineageLimits::default());
        l.link(&link(
            0,
            id("user/alice", Some("AKIA1")),
            "arn:aws:sts::1:assumed-role/ops/s",
            LinkKind::AssumeRole,
        ));
        let session = IdentityRef {
            principal: "role/ops".into(),
            credential: Some("ASIA2".into()),
            session: Some("arn:aws:sts::1:assumed-role/ops/s".into()),
        };
        l.link(&owner(5, session));
        assert_eq!(
            &*l.resolve(&id("ASIA2", Some("ASIA2")), t(6)).root,
            "user/alice"
        );
    }

    #[test]
    fn a_sighting_again_keeps_the_protection_a_hit_gave() {
        let mut l = Lineage::new(LineageLimits {
            max_links: 2,
            max_hops: 16,
        });
        l.link(&owner(0, id("user/alice", Some("AKIAALICE"))));
        l.resolve(&id("AKIAALICE", Some("AKIAALICE")), t(1));
        l.link(&owner(2, id("user/alice", Some("AKIAALICE"))));
        l.link(&owner(3, id("user/b", Some("AKIAB"))));
        l.link(&owner(4, id("user/c", Some("AKIAC"))));
        assert_eq!(
            &*l.resolve(&id("AKIAALICE", Some("AKIAALICE")), t(5)).root,
            "user/alice",
            "the used sighting outlived two unused ones"
        );
    }
}
