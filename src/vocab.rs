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
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Position {
    pub source: u32,
    pub offset: u64,
}

/// One contributing event, as much as an alert needs to point back at it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
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
    /// What the evidence shows of the event (caller, call, source address, host, command
    /// line, resources), taken when the event was decoded; shared by every hit of the event.
    pub details: Option<Arc<EventDetails>>,
}

impl EventRef {
    /// The heap bytes this reference owns besides itself: its id and actor strings, and the
    /// events of a referenced finding (shared with that finding, counted here all the same).
    pub fn heap_bytes(&self) -> usize {
        self.id.len()
            + self.actor.as_ref().map_or(0, |a| a.len())
            + self.details.as_ref().map_or(0, |d| d.heap_bytes())
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

/// What one fact of an event's evidence means, whatever field of its source held it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DetailKind {
    /// The acting user or principal as the event names it (an ARN, `DOMAIN\\user`).
    User,
    /// The credential used (an access key id).
    Credential,
    /// The call or action (`ModifyImageAttribute`, `get`, an ECS `event.action`).
    Operation,
    /// The service called (`ec2.amazonaws.com`).
    Service,
    /// The call's error code, when it failed.
    Error,
    /// The source address of the call.
    SrcIp,
    /// The source's country, when the source records a location.
    SrcCountry,
    UserAgent,
    Hostname,
    /// The process image (executable path).
    Process,
    CmdLine,
    ParentProcess,
    ParentCmdLine,
    Secret,
    Bucket,
    /// A machine image (AMI).
    Image,
    Snapshot,
    /// The account a resource was shared with (an AMI launch or snapshot volume permission).
    SharedWith,
    /// A Kubernetes object's kind (`secrets`, `pods`) and name, and its namespace.
    ObjectKind,
    Object,
    Namespace,
    File,
    /// Any other resource the event names (an instance, a role, a function).
    Resource,
    /// Where another instance read the event (a cluster's stage 1), as
    /// [`EventDetails::origin`] writes it; not counted against [`DETAILS_PER_EVENT`].
    Origin,
}

/// Longest value kept per fact (bytes, cut at a character boundary); longer ones end in `…`.
pub const DETAIL_MAX_LEN: usize = 256;
/// Most facts kept per event.
pub const DETAILS_PER_EVENT: usize = 16;

/// The facts of one event an evidence shows, bounded: at most [`DETAILS_PER_EVENT`] values of
/// at most [`DETAIL_MAX_LEN`] bytes each. Values are packed into one string (an event of a
/// chain in flight costs one allocation for its text and one for the index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDetails {
    text: Box<str>,
    /// (kind, end offset in `text`), in the order the facts were added.
    index: Box<[(DetailKind, u16)]>,
}

/// Written as its list of (kind, value) facts, and read back through [`EventDetails::new`], so
/// a snapshot cannot smuggle in offsets that do not fit its text, or more than the bounds.
impl serde::Serialize for EventDetails {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for EventDetails {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let facts: Vec<(DetailKind, String)> = serde::Deserialize::deserialize(d)?;
        EventDetails::new(facts.iter().map(|(k, v)| (*k, v.as_str())))
            .ok_or_else(|| serde::de::Error::custom("event details with no fact"))
    }
}

impl EventDetails {
    /// Packs `facts`, dropping empty values, repeats and everything past the bounds; `None`
    /// when nothing is left.
    pub fn new<'a>(facts: impl IntoIterator<Item = (DetailKind, &'a str)>) -> Option<Self> {
        let mut text = String::new();
        let mut index: Vec<(DetailKind, u16)> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        let mut counted = 0;
        for (kind, value) in facts {
            if kind != DetailKind::Origin {
                if counted >= DETAILS_PER_EVENT {
                    break;
                }
                counted += 1;
            }
            if value.is_empty() {
                continue;
            }
            let value = cap(value, DETAIL_MAX_LEN);
            let repeated = index
                .iter()
                .zip(&starts)
                .any(|((k, end), &start)| *k == kind && text[start..*end as usize] == *value);
            if repeated {
                continue;
            }
            starts.push(text.len());
            text.push_str(&value);
            // At most 16 values of at most 256 bytes (plus an ellipsis): fits in a u16.
            index.push((kind, text.len() as u16));
        }
        if index.is_empty() {
            return None;
        }
        Some(EventDetails {
            text: text.into(),
            index: index.into(),
        })
    }

    /// Every (kind, value), in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (DetailKind, &str)> + '_ {
        let mut start = 0usize;
        self.index.iter().map(move |&(kind, end)| {
            let v = &self.text[start..end as usize];
            start = end as usize;
            (kind, v)
        })
    }

    /// The text of a [`DetailKind::Origin`] fact: `kafka` or `file`, the offset (the line of a
    /// file) and the partition, then the topic or path, colon-separated.
    pub fn origin_text(file: bool, name: &str, partition: i32, offset: u64) -> String {
        let kind = if file { "file" } else { "kafka" };
        format!("{kind}:{offset}:{partition}:{name}")
    }

    /// Where another instance read this event: (is a file, name, partition, offset), if known.
    pub fn origin(&self) -> Option<(bool, &str, i32, u64)> {
        let mut parts = self.get(DetailKind::Origin)?.splitn(4, ':');
        let file = match parts.next()? {
            "file" => true,
            "kafka" => false,
            _ => return None,
        };
        let offset = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        Some((file, parts.next()?, partition, offset))
    }

    /// The first value of `kind`.
    pub fn get(&self, kind: DetailKind) -> Option<&str> {
        self.iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// Every value of `kind`.
    pub fn all(&self, kind: DetailKind) -> impl Iterator<Item = &str> + '_ {
        self.iter().filter(move |(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// Heap bytes: the shared allocation's counters, the text and the index.
    pub fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>()
            + size_of::<EventDetails>()
            + self.text.len()
            + self.index.len() * size_of::<(DetailKind, u16)>()
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn cap(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

/// What kind of thing an event touched.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Target {
    /// A correlation rule (index into [`RuleSet::correlations`](crate::matcher::RuleSet)).
    Correlation(u32),
    /// A detection that alerts on its own (index into `RuleSet::detections`).
    Detection(u32),
}

/// An event matched a detection; `stages` says which stage bits of the target it is.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub target: Target,
    pub stages: u64,
    /// The group-by values joined by [`GROUP_SEPARATOR`] (the identity, usually).
    pub group: Box<str>,
    /// The aggregated field's value (`value_count` and the value aggregations).
    pub value: Option<Box<str>>,
    /// Picks the shard: a hash of the group-key values the target is routed by. Keyed per
    /// process ([`routing_keys`]), so never written out: whoever reads a hit back keys it again.
    #[serde(skip)]
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

/// What minted the credential of a link, or what else tied it to its caller.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    AssumeRole,
    SessionToken,
    FederationToken,
    AccessKey,
    /// Nothing minted: an event showed the credential acting as its caller (a CloudTrail
    /// event naming both its principal and its access key; a Linux event whose uid is its login
    /// uid), so a later event naming the credential alone belongs to the caller. Never
    /// replaces a minting link of the same credential.
    KeyOwner,
}

impl LinkKind {
    /// Whether a link of this kind holds its minting event's offset back while it lives (see
    /// `kafka.lineage_hold`): a minted credential does, so a restart replays the `AssumeRole`
    /// its session's chain resolves through. A key seen acting as its owner
    /// ([`LinkKind::KeyOwner`]) does not: any later event naming key and owner together tells it
    /// again, and holding every such event (most CloudTrail records) would keep commits an hour
    /// behind.
    pub fn holds_offset(self) -> bool {
        self != LinkKind::KeyOwner
    }

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
            LinkKind::KeyOwner => "key owner",
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
