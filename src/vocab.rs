//! The vocabulary every stage shares: what an event reference, a hit, a group key, an identity
//! and a credential link are, and the budget a rule's state is held to.
//!
//! This module imports nothing of the engine (only [`crate::time`], the other leaf), so every
//! stage can speak these words without depending on the stage that produces or consumes them:
//! the decoder builds [`IdentityRef`]s and [`Link`]s that the identity resolver applies, the
//! worker builds [`Hit`]s that the resolver reorders and the correlation shards consume, the
//! matcher compiles a rule's [`StateBudget`] that the shard enforces. Behaviour that belongs to a
//! stage stays in that stage; what lives here is plain data, its invariants, and the few pure
//! functions of the group key every stage must agree on ([`shard_key`]).
//!
//! The stages re-export what they used to define (`correlate::Hit`, `identity::Link`,
//! `input::Position`, ...), so both paths name the same items.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

use crate::time::{EventTime, Span};

// ---------------------------------------------------------------------------------------------
// Events

/// Where an event was read: `offset` is the 1-based line number for files and standard input,
/// the message offset for Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub source: u32,
    pub offset: u64,
}

/// One contributing event, as much as an alert needs to point back at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    pub time: EventTime,
    /// Hash of the event id: orders ties and spots duplicates.
    pub key: u64,
    pub pos: Position,
    pub id: Box<str>,
    /// When this "event" is a finding of a referenced correlation: that finding's events.
    pub parts: Option<Arc<[(EventRef, u32)]>>,
    /// Who acted, as the event says and as lineage resolved it (for the evidence).
    pub actor: Option<Box<str>>,
}

impl EventRef {
    /// The heap bytes this reference owns besides itself: its id and actor strings, and the
    /// events of a referenced finding (shared with that finding, counted here all the same).
    pub fn heap_bytes(&self) -> usize {
        self.id.len()
            + self.actor.as_ref().map_or(0, |a| a.len())
            + self.parts.as_ref().map_or(0, |p| events_bytes(p.len(), p))
    }

    /// Visits this event, or, for a finding of a referenced correlation, the events it holds.
    pub fn visit(&self, f: &mut dyn FnMut(&EventRef)) {
        match &self.parts {
            Some(parts) => parts.iter().for_each(|(e, _)| e.visit(f)),
            None => f(self),
        }
    }
}

/// The bytes of a list of `capacity` (event, stage) slots holding `events`.
pub fn events_bytes(capacity: usize, events: &[(EventRef, u32)]) -> usize {
    capacity * size_of::<(EventRef, u32)>()
        + events.iter().map(|(e, _)| e.heap_bytes()).sum::<usize>()
}

/// What kind of thing an event touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchKind {
    Secret,
    Resource,
    Host,
    Region,
    Service,
}

// ---------------------------------------------------------------------------------------------
// Hits and group keys

/// What consumes a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A correlation rule (index into [`RuleSet::correlations`](crate::matcher::RuleSet)).
    Correlation(u32),
    /// A detection that alerts on its own (index into `RuleSet::detections`).
    Detection(u32),
}

/// An event matched a detection; `stages` says which stage bits of the target it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub target: Target,
    pub stages: u64,
    /// The group-by values joined by [`GROUP_SEPARATOR`] (the identity, usually).
    pub group: Box<str>,
    /// The aggregated field's value (`value_count` and the value aggregations).
    pub value: Option<Box<str>>,
    /// Picks the shard: a hash of the group-key values the target is routed by.
    pub shard_key: u64,
    pub event: EventRef,
    /// What the event touched (secrets, resources, hosts, ...), for the blast radius.
    pub touched: Vec<(TouchKind, Box<str>)>,
}

/// Separates group-by values inside a group key.
pub const GROUP_SEPARATOR: char = '\u{1f}';

/// The virtual field holding the identity the source profile resolved.
pub const IDENTITY_FIELD: &str = "credtrail.identity";

/// Placeholder for the resolved identity inside a hit's group key, replaced on release.
pub const IDENTITY_MARK: char = '\u{1e}';

/// The hash that picks a hit's shard: of the whole group key, or of the values at `route`
/// (a correlation routed by the group-by of the correlation that references it). Hits whose
/// group holds [`IDENTITY_MARK`]s are keyed again once the resolver fills them in.
///
/// Keyed with [`routing_keys`], a secret drawn once per process: whoever writes group keys
/// (user names, ARNs, anything an input carries) cannot choose keys that pile onto one shard,
/// because which shard owns a key differs from process to process. Only the placement depends
/// on it; what the engine outputs never does (the output merge orders findings by their
/// contents).
pub fn shard_key(group: &str, route: Option<&[usize]>) -> u64 {
    let Some(route) = route else {
        return routing_keys().hash_one(group.as_bytes());
    };
    let values: Vec<&str> = group.split(GROUP_SEPARATOR).collect();
    let picked: Vec<&str> = route
        .iter()
        .map(|&i| values.get(i).copied().unwrap_or(""))
        .collect();
    routing_keys().hash_one(picked.join(&GROUP_SEPARATOR.to_string()).as_bytes())
}

/// The process's shard-routing key: SipHash-1-3 (std's [`RandomState`]) under a 128-bit key
/// the operating system's random source provides, drawn on first use and kept for the life
/// of the process (every thread must route a group key to the same shard).
pub fn routing_keys() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

// ---------------------------------------------------------------------------------------------
// Budgets

/// The state one rule may keep: an untrusted rule cannot hold more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateBudget {
    /// Live group states of the rule in one shard; beyond it the state closest to expiry is
    /// evicted (counted).
    pub max_groups: usize,
    /// Events one group state keeps; beyond it the oldest are dropped (counted as trimmed).
    pub max_events: usize,
}

// ---------------------------------------------------------------------------------------------
// Identities and credential links

/// Who an event says is acting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct IdentityRef {
    /// The principal by the profile's identity templates.
    pub principal: Box<str>,
    /// The credential used (an access key id), when the source records it.
    pub credential: Option<Box<str>>,
    /// The session (an assumed-role session ARN), when the source records it.
    pub session: Option<Box<str>>,
}

impl IdentityRef {
    /// A one-line description for evidence: principal, then session and credential.
    pub fn describe(&self) -> String {
        let mut s = self.principal.to_string();
        if let Some(session) = &self.session
            && **session != *self.principal
        {
            s.push_str(" via ");
            s.push_str(session);
        }
        if let Some(c) = &self.credential {
            s.push_str(" key ");
            s.push_str(c);
        }
        s
    }
}

/// What minted the credential of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    AssumeRole,
    SessionToken,
    FederationToken,
    AccessKey,
}

impl LinkKind {
    /// Recognises the CloudTrail calls that mint credentials.
    pub fn from_event_name(name: &str) -> Option<LinkKind> {
        Some(match name {
            "AssumeRole" | "AssumeRoleWithSAML" | "AssumeRoleWithWebIdentity" => {
                LinkKind::AssumeRole
            }
            "GetSessionToken" => LinkKind::SessionToken,
            "GetFederationToken" => LinkKind::FederationToken,
            "CreateAccessKey" => LinkKind::AccessKey,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkKind::AssumeRole => "AssumeRole",
            LinkKind::SessionToken => "GetSessionToken",
            LinkKind::FederationToken => "GetFederationToken",
            LinkKind::AccessKey => "CreateAccessKey",
        }
    }
}

/// A credential minted by `caller`: later events using any of `minted` belong to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub time: EventTime,
    /// The minting event's key, for ordering ties.
    pub key: u64,
    pub kind: LinkKind,
    /// Credential ids and session ARNs the event minted.
    pub minted: Vec<Box<str>>,
    pub caller: IdentityRef,
    /// How long the minted credential is followed.
    pub lifetime: Span,
    /// Where the minting event was read (set by the sequencer): a restart that should know the
    /// link again must replay from here.
    pub pos: Option<Position>,
}
