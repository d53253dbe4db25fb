//! The borrowed view of one decoded event.

use std::borrow::Cow;

use simd_json::{Node, StaticNode};
use xxhash_rust::xxh3::xxh3_64;

use super::detail::{DetailKind, EventDetails};
use super::fields::{Slot, SlotValues, node_extent};
use super::principal::{PrincipalContext, is_unset};
use super::profile::ProfileKind;
use super::touch::TouchKind;
use super::{CompiledProfile, Schema};
use crate::time::{EventTime, Span};
use crate::vocab::{DETAILS_PER_EVENT, IdentityRef, Link, LinkKind};

/// How long minted credentials are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MintLifetimes {
    /// Role sessions (`AssumeRole*`): the requested duration, at most this (AWS allows 12 h).
    pub session: Span,
    /// `GetSessionToken`/`GetFederationToken`: the requested duration, at most this (36 h).
    pub token: Span,
    /// Access keys never expire by themselves; following one forever would make every later
    /// user of a key handed out by an admin part of the admin's chains, so a new key is
    /// followed for this long.
    pub access_key: Span,
    /// A credential seen acting as its principal ([`LinkKind::KeyOwner`]) is followed this
    /// long after the last sighting the worker passed on.
    pub key_owner: Span,
}

impl Default for MintLifetimes {
    fn default() -> Self {
        MintLifetimes {
            session: Span::from_secs(12 * 3600),
            token: Span::from_secs(36 * 3600),
            access_key: Span::from_secs(24 * 3600),
            key_owner: Span::from_secs(12 * 3600),
        }
    }
}

/// A scalar value of an event field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Null,
}

impl<'a> Scalar<'a> {
    /// The value as text, as Sigma compares it: numbers and booleans in their JSON spelling,
    /// `None` for null.
    pub fn text(&self) -> Option<Cow<'a, str>> {
        match *self {
            Scalar::Str(s) => Some(Cow::Borrowed(s)),
            Scalar::I64(i) => Some(Cow::Owned(i.to_string())),
            Scalar::U64(u) => Some(Cow::Owned(u.to_string())),
            Scalar::F64(f) => Some(Cow::Owned(f.to_string())),
            Scalar::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            Scalar::Null => None,
        }
    }

    /// The value as a number: JSON numbers, and strings that spell one (`"4688"`).
    pub fn number(&self) -> Option<f64> {
        match *self {
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::I64(i) => Some(i as f64),
            Scalar::U64(u) => Some(u as f64),
            Scalar::F64(f) => Some(f),
            Scalar::Bool(_) | Scalar::Null => None,
        }
    }
}

/// A decoded event: the tape, the values found for each slot, the profile and the event time.
pub struct EventView<'t, 'de> {
    tape: &'t [Node<'de>],
    slots: &'t SlotValues,
    profile_index: u16,
    pub kind: ProfileKind,
    pub time: EventTime,
    /// The event's bytes as read, unmodified; for a salvaged event, as rewritten.
    pub raw: &'t [u8],
    /// The limit the event was over when it had to be salvaged (a [`DecodeError::kind`]
    /// code; see [`super::salvage`]), `None` for an event decoded as read.
    ///
    /// [`DecodeError::kind`]: super::DecodeError::kind
    pub salvaged: Option<&'static str>,
}

impl<'t, 'de> EventView<'t, 'de> {
    pub(super) fn new(
        tape: &'t [Node<'de>],
        slots: &'t SlotValues,
        profile_index: u16,
        kind: ProfileKind,
        time: EventTime,
        raw: &'t [u8],
    ) -> Self {
        EventView {
            salvaged: None,
            tape,
            slots,
            profile_index,
            kind,
            time,
            raw,
        }
    }

    pub fn profile_index(&self) -> u16 {
        self.profile_index
    }

    /// Whether the event has the field at all (any value, null included).
    pub fn exists(&self, slot: Slot) -> bool {
        self.slots.has(slot)
    }

    /// The scalar values of a field: each occurrence, with arrays flattened one level (Sigma
    /// matches a list field when any element matches). Objects yield nothing.
    ///
    /// After the values read come the values the profile derived from other fields (a
    /// Security 5156 `Direction` of `%%14593` gives `Initiated` the value `true`; see
    /// [`derive`](super::derive)).
    pub fn values(&self, slot: Slot) -> impl Iterator<Item = Scalar<'t>> + '_ {
        let tape = self.tape;
        let slots = self.slots;
        slots
            .nodes(slot)
            .flat_map(move |n| ScalarIter::new(tape, n))
            .chain(slots.derived(slot).map(Scalar::Str))
    }

    /// Every scalar value of the event (object keys excluded), for keyword searches and the
    /// keyword prefilter, once per event. The walk keeps its own stack of open containers,
    /// never recursing: inline for the first `INLINE_DEPTH` (16) levels (no allocation on the
    /// match path for any ordinary event), on the heap beyond (bounded by the depth limit).
    pub fn all_scalars(&self) -> impl Iterator<Item = Scalar<'de>> + '_ {
        let tape = self.tape;
        let mut stack = OpenContainers::default();
        if let Some(Node::Object { len, .. }) = tape.first() {
            stack.push((true, *len));
        }
        let mut i = 1usize;
        std::iter::from_fn(move || {
            while let Some(top) = stack.last_mut() {
                if top.1 == 0 {
                    stack.pop();
                    continue;
                }
                top.1 -= 1;
                if top.0 {
                    i += 1; // the key
                }
                let at = i;
                i += 1;
                let scalar = match *tape.get(at)? {
                    Node::Object { len, .. } => {
                        stack.push((true, len));
                        continue;
                    }
                    Node::Array { len, .. } => {
                        stack.push((false, len));
                        continue;
                    }
                    Node::String(s) => Scalar::Str(s),
                    Node::Static(StaticNode::I64(v)) => Scalar::I64(v),
                    Node::Static(StaticNode::U64(v)) => Scalar::U64(v),
                    Node::Static(StaticNode::F64(v)) => Scalar::F64(v),
                    Node::Static(StaticNode::Bool(v)) => Scalar::Bool(v),
                    Node::Static(StaticNode::Null) => continue,
                };
                return Some(scalar);
            }
            None
        })
    }

    /// The first scalar of a field as text.
    pub fn first_text(&self, slot: Slot) -> Option<Cow<'t, str>> {
        self.values(slot).find_map(|v| v.text())
    }

    fn profile<'s>(&self, schema: &'s Schema) -> &'s CompiledProfile {
        &schema.profiles[self.profile_index as usize]
    }

    /// The acting identity by the profile's templates, in the profile's canonical spelling
    /// (see [`principal`](super::principal)), or `None` when no template applies.
    pub fn identity(&self, schema: &Schema) -> Option<String> {
        self.ranked_identity(self.profile(schema))
            .map(|(identity, _)| identity)
    }

    /// [`EventView::identity`] with the index of the template that built it.
    fn ranked_identity(&self, profile: &CompiledProfile) -> Option<(String, usize)> {
        let (rank, built) =
            profile
                .identity
                .iter()
                .enumerate()
                .find_map(|(rank, (slots, separator))| {
                    Some((rank, self.template_value(slots, separator)?))
                })?;
        let form = profile.spec.principal;
        if !form.needs_context() {
            let identity = form.canonical(built.into_owned(), &PrincipalContext::default());
            return Some((identity, rank));
        }
        let session = profile.session_slot.and_then(|s| self.first_text(s));
        let on_behalf_of = profile.on_behalf_of_slot.and_then(|s| self.first_text(s));
        let context = PrincipalContext {
            session: session.as_deref(),
            on_behalf_of: on_behalf_of.as_deref(),
        };
        Some((form.canonical(built.into_owned(), &context), rank))
    }

    /// A template's fields joined by its separator, when every field holds a value that names
    /// someone (see [`is_unset`]).
    fn template_value(&self, slots: &[Slot], separator: &str) -> Option<Cow<'t, str>> {
        if let [slot] = slots {
            return self.first_text(*slot).filter(|v| !is_unset(v));
        }
        let mut out = String::new();
        for (i, &slot) in slots.iter().enumerate() {
            let part = self.first_text(slot).filter(|v| !is_unset(v))?;
            if i > 0 {
                out.push_str(separator);
            }
            out.push_str(&part);
        }
        Some(Cow::Owned(out))
    }

    /// What the event touched (secrets, resources, hosts, regions, services), by the profile's
    /// touch fields; at most `limit` values.
    pub fn touches(&self, schema: &Schema, limit: usize) -> Vec<(TouchKind, Box<str>)> {
        let profile = self.profile(schema);
        let mut out = Vec::new();
        for (kind, slot, when) in &profile.touch_slots {
            if let Some((other, value)) = when
                && self.first_text(*other).as_deref() != Some(value.as_str())
            {
                continue;
            }
            for v in self.values(*slot) {
                if out.len() >= limit {
                    return out;
                }
                if let Some(t) = v.text().filter(|t| !t.is_empty()) {
                    out.push((*kind, t.as_ref().into()));
                }
            }
        }
        out
    }

    /// What an evidence shows of this event, by the profile's evidence fields: at most
    /// [`DETAILS_PER_EVENT`] values, each cut to [`DETAIL_MAX_LEN`](crate::vocab::DETAIL_MAX_LEN)
    /// bytes; `None` when the event has none of them.
    pub fn details(&self, schema: &Schema) -> Option<EventDetails> {
        let profile = self.profile(schema);
        let mut facts: Vec<(DetailKind, Cow<'t, str>)> = Vec::new();
        for (kind, slot, when) in &profile.detail_slots {
            if let Some((other, value)) = when
                && self.first_text(*other).as_deref() != Some(value.as_str())
            {
                continue;
            }
            for v in self.values(*slot) {
                if facts.len() >= DETAILS_PER_EVENT {
                    break;
                }
                if let Some(t) = v.text() {
                    facts.push((*kind, t));
                }
            }
        }
        EventDetails::new(facts.iter().map(|(k, v)| (*k, v.as_ref())))
    }

    /// The acting identity with the credential and session it used, for lineage.
    pub fn identity_ref(&self, schema: &Schema) -> Option<IdentityRef> {
        let profile = self.profile(schema);
        let (principal, _) = self.ranked_identity(profile)?;
        Some(self.identity_ref_of(profile, principal))
    }

    fn identity_ref_of(&self, profile: &CompiledProfile, principal: String) -> IdentityRef {
        let credential = self.credential(profile).map(|c| c.as_ref().into());
        // Only an assumed-role ARN names a session; a user ARN is the principal itself.
        let session = profile
            .session_slot
            .and_then(|s| self.first_text(s))
            .filter(|s| s.contains(":assumed-role/"))
            .map(|s| s.as_ref().into());
        IdentityRef {
            principal: principal.into(),
            credential,
            session,
        }
    }

    fn credential(&self, profile: &CompiledProfile) -> Option<Cow<'t, str>> {
        let c = profile.credential.as_ref()?;
        self.template_value(&c.slots, &c.separator)
    }

    /// When this event shows its own principal owning the credential it used (see
    /// [`credential`](super::credential)), and `wanted` says the credential is worth telling
    /// (the worker's filter of sightings it already passed on): the acting identity, its
    /// credential set. `wanted` is asked before the identity is built, so an event whose
    /// sighting is not wanted costs no allocation on CloudTrail.
    pub fn key_owner(
        &self,
        schema: &Schema,
        wanted: impl FnOnce(&str) -> bool,
    ) -> Option<IdentityRef> {
        let profile = self.profile(schema);
        let spec = profile.credential.as_ref()?;
        if let Some((a, b)) = spec.owner_when_equal
            && (self.first_text(a)? != self.first_text(b)?)
        {
            return None;
        }
        let credential = self.credential(profile)?;
        if !wanted(&credential) {
            return None;
        }
        let (principal, rank) = self.ranked_identity(profile)?;
        if rank >= spec.owner_templates || principal == *credential {
            return None;
        }
        Some(self.identity_ref_of(profile, principal))
    }

    /// The credential this event minted, if it is a successful `AssumeRole`,
    /// `GetSessionToken`, `GetFederationToken` or `CreateAccessKey` whose response names it.
    /// `key` gives the event's content key; it is asked only for an event that minted one.
    pub fn minted_link(
        &self,
        schema: &Schema,
        key: impl FnOnce() -> u64,
        limits: &MintLifetimes,
    ) -> Option<Link> {
        let profile = self.profile(schema);
        let [
            name,
            caller_type,
            error,
            session_key,
            session_arn,
            access_key,
            duration,
        ] = profile.mint_slots?;
        let kind = LinkKind::from_event_name(&self.first_text(name)?)?;
        if self.first_text(error).is_some_and(|e| !e.is_empty()) {
            return None;
        }
        // EC2 and Lambda mint instance and function credentials for their role: the session
        // then belongs to the role, not to the service.
        if self
            .first_text(caller_type)
            .is_some_and(|t| t == "AWSService")
        {
            return None;
        }
        let minted: Vec<Box<str>> = [session_key, session_arn, access_key]
            .into_iter()
            .filter_map(|s| self.first_text(s))
            .filter(|t| !t.is_empty())
            .map(|t| t.as_ref().into())
            .collect();
        if minted.is_empty() {
            return None;
        }
        let caller = self.identity_ref(schema)?;
        let requested = self
            .values(duration)
            .find_map(|v| v.number())
            .map(|s| Span::from_secs(s as i64));
        let lifetime = match kind {
            LinkKind::AccessKey => limits.access_key,
            LinkKind::AssumeRole => requested.unwrap_or(limits.session).min(limits.session),
            LinkKind::SessionToken | LinkKind::FederationToken => {
                requested.unwrap_or(limits.token).min(limits.token)
            }
            LinkKind::KeyOwner => limits.key_owner,
        };
        Some(Link {
            time: self.time,
            key: key(),
            kind,
            minted,
            caller,
            lifetime,
            pos: None,
        })
    }

    /// The event's own id by the profile's id fields joined with `/`, or a hash of its bytes
    /// (`sha:<hex>`) when the event has none.
    pub fn event_id(&self, schema: &Schema) -> String {
        let profile = self.profile(schema);
        let mut out = String::new();
        let mut any = false;
        for (i, &slot) in profile.id_slots.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            if let Some(v) = self.first_text(slot) {
                out.push_str(&v);
                any = true;
            }
        }
        if any {
            out
        } else {
            format!("xxh3:{:016x}", xxh3_64(self.raw))
        }
    }
}

/// The id-independent identity of an event's content, for ordering ties and duplicates.
pub fn event_key(event_id: &str) -> u64 {
    xxh3_64(event_id.as_bytes())
}

struct ScalarIter<'t, 'de> {
    tape: &'t [Node<'de>],
    at: usize,
    remaining: usize,
}

impl<'t, 'de> ScalarIter<'t, 'de> {
    fn new(tape: &'t [Node<'de>], node: usize) -> Self {
        match tape[node] {
            Node::Array { len, .. } => ScalarIter {
                tape,
                at: node + 1,
                remaining: len,
            },
            _ => ScalarIter {
                tape,
                at: node,
                remaining: 1,
            },
        }
    }
}

impl<'de> Iterator for ScalarIter<'_, 'de> {
    type Item = Scalar<'de>;

    fn next(&mut self) -> Option<Scalar<'de>> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let node = &self.tape[self.at];
            self.at += node_extent(node);
            let scalar = match *node {
                Node::String(s) => Scalar::Str(s),
                Node::Static(StaticNode::I64(i)) => Scalar::I64(i),
                Node::Static(StaticNode::U64(u)) => Scalar::U64(u),
                Node::Static(StaticNode::F64(f)) => Scalar::F64(f),
                Node::Static(StaticNode::Bool(b)) => Scalar::Bool(b),
                Node::Static(StaticNode::Null) => Scalar::Null,
                Node::Object { .. } | Node::Array { .. } => continue,
            };
            return Some(scalar);
        }
        None
    }
}

/// Levels of nesting [`EventView::all_scalars`] keeps without allocating.
const INLINE_DEPTH: usize = 16;

/// The open containers of a walk: (is an object, entries left), innermost last.
#[derive(Default)]
struct OpenContainers {
    inline: [(bool, usize); INLINE_DEPTH],
    len: usize,
    deeper: Vec<(bool, usize)>,
}

impl OpenContainers {
    fn push(&mut self, c: (bool, usize)) {
        if self.len < INLINE_DEPTH {
            self.inline[self.len] = c;
        } else {
            self.deeper.push(c);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        if self.len > INLINE_DEPTH {
            self.deeper.pop();
        }
        self.len = self.len.saturating_sub(1);
    }

    fn last_mut(&mut self) -> Option<&mut (bool, usize)> {
        match self.len {
            0 => None,
            n if n <= INLINE_DEPTH => self.inline.get_mut(n - 1),
            _ => self.deeper.last_mut(),
        }
    }
}
