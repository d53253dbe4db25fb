//! Decode: one JSON event in, a borrowed view of the fields the loaded rules need out.
//!
//! The [`Decoder`] parses with simd-json into a tape (a flat vector of nodes that borrow strings
//! from the input), reusing its buffers and the tape's allocation from one event to the next, so
//! decoding allocates nothing per event in the steady state. Limits come first: the event's size
//! before parsing, its nesting depth during simd-json's (iterative) second stage, its number of
//! values right after. Then the source profile is recognised (or forced), the profile's
//! [`PathTrie`](fields::PathTrie) pulls out every needed slot in one walk, and the event time is
//! read. The result is an [`EventView`], valid for the duration of a callback.

pub mod credential;
pub mod derive;
pub mod detail;
pub mod fieldmap;
pub mod fields;
pub mod principal;
pub mod profile;
mod recognise;
pub mod salvage;
pub mod touch;
mod view;

use std::fmt;

pub use credential::CredentialSpec;
pub use detail::{DetailField, DetailKind, EventDetails};
pub use fields::{FieldTable, Slot, SlotValues};
pub use principal::{PrincipalForm, SsoGrouping};
pub use profile::{CompiledProfile, GenericPaths, IdentityTemplate, ProfileKind, ProfileSpec};
pub use touch::{TouchField, TouchKind};
pub use view::{EventView, MintLifetimes, Scalar, event_key};

use crate::time::EventTime;

/// Limits every event must respect before it is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest event in bytes.
    pub max_event_bytes: usize,
    /// Deepest nesting of objects and arrays.
    pub max_depth: usize,
    /// Most JSON values (keys not counted, containers counted) in one event.
    pub max_fields: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_event_bytes: 1 << 20,
            max_depth: 64,
            max_fields: 10_000,
        }
    }
}

/// Why an event could not be decoded. Each is counted and dead-lettered with its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event is {len} bytes, over the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("event nests deeper than the limit of {limit}")]
    TooDeep { limit: usize },
    #[error("event has {count} values, over the limit of {limit}")]
    TooManyFields { count: usize, limit: usize },
    #[error("invalid UTF-8 in event")]
    InvalidUtf8,
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("no source profile recognises this event (use --profile to force one)")]
    UnknownProfile,
    #[error("no event time: none of the {profile} time fields ({fields}) is present")]
    NoTime {
        profile: &'static str,
        fields: String,
    },
    #[error("field `{field}`: expected a timestamp string or epoch number, found {found}")]
    BadTime { field: String, found: String },
}

impl DecodeError {
    /// Whether the event may still be decoded once reduced (see [`salvage`]): it was over a
    /// limit, or held what JSON allows but the decoder cannot hold (a number out of range).
    pub fn salvageable(&self) -> bool {
        match self {
            DecodeError::TooLarge { .. }
            | DecodeError::TooDeep { .. }
            | DecodeError::TooManyFields { .. } => true,
            DecodeError::InvalidJson(why) => why.contains("number") || why.contains("Number"),
            _ => false,
        }
    }

    /// A short stable name for counting by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::TooDeep { .. } => "too_deep",
            DecodeError::TooManyFields { .. } => "too_many_fields",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::UnknownProfile => "unknown_profile",
            DecodeError::NoTime { .. } => "no_time",
            DecodeError::BadTime { .. } => "bad_time",
        }
    }
}

/// Everything decoding needs that is fixed for a rule set: the field table, the compiled
/// profiles and the limits.
#[derive(Clone, Debug)]
pub struct Schema {
    pub fields: FieldTable,
    pub profiles: Vec<CompiledProfile>,
    pub limits: DecodeLimits,
    /// `--profile`: use this profile for every event instead of detecting.
    pub forced: Option<ProfileKind>,
}

impl Schema {
    /// Interns the profiles' own fields; call [`Schema::finish`] after the rules interned theirs.
    pub fn new(
        fields: FieldTable,
        specs: Vec<ProfileSpec>,
        limits: DecodeLimits,
        forced: Option<ProfileKind>,
    ) -> Schema {
        let mut fields = fields;
        let profiles = specs
            .into_iter()
            .map(|s| CompiledProfile::new(s, &mut fields))
            .collect();
        Schema {
            fields,
            profiles,
            limits,
            forced,
        }
    }

    /// Builds every profile's path trie over the complete field table.
    pub fn finish(&mut self) {
        for p in &mut self.profiles {
            p.build_trie(&self.fields);
        }
    }

    pub fn profile(&self, kind: ProfileKind) -> Option<(u16, &CompiledProfile)> {
        self.profiles
            .iter()
            .enumerate()
            .find(|(_, p)| p.spec.kind == kind)
            .map(|(i, p)| (i as u16, p))
    }
}

/// A decoder owned by one worker thread: simd-json buffers, a reusable tape, a scratch copy of
/// the event (simd-json unescapes strings in place; the caller's bytes stay untouched for the
/// dead-letter output) and the slot table.
pub struct Decoder {
    buffers: simd_json::Buffers,
    tape: Option<simd_json::Tape<'static>>,
    scratch: Vec<u8>,
    /// A salvaged event's rewritten bytes (see [`salvage`]), and the parser's copy of them.
    salvaged: Vec<u8>,
    salvage_scratch: Vec<u8>,
    slots: SlotValues,
}

impl Decoder {
    pub fn new(schema: &Schema) -> Decoder {
        Decoder {
            buffers: simd_json::Buffers::with_max_depth(4096, schema.limits.max_depth),
            tape: Some(simd_json::Tape::null().reset()),
            scratch: Vec::with_capacity(4096),
            salvaged: Vec::new(),
            salvage_scratch: Vec::new(),
            slots: SlotValues::with_slots(schema.fields.len()),
        }
    }

    /// Decodes `raw` (one event, `full_len` bytes long before any truncation by the reader) and
    /// calls `f` with the view or the reason it failed. The view lives only inside `f`.
    pub fn decode<R>(
        &mut self,
        schema: &Schema,
        raw: &[u8],
        full_len: usize,
        f: impl FnOnce(Result<EventView<'_, '_>, DecodeError>) -> R,
    ) -> R {
        self.decode_as(schema, schema.forced, raw, full_len, f)
    }

    /// [`Decoder::decode`] with the profile forced by the caller (a Kafka topic's profile)
    /// instead of the schema's; `None` recognises it per event.
    pub fn decode_as<R>(
        &mut self,
        schema: &Schema,
        forced: Option<ProfileKind>,
        raw: &[u8],
        full_len: usize,
        f: impl FnOnce(Result<EventView<'_, '_>, DecodeError>) -> R,
    ) -> R {
        let limits = schema.limits;
        let mut tape = self
            .tape
            .take()
            .unwrap_or_else(|| simd_json::Tape::null().reset());
        let mut outcome = if full_len > limits.max_event_bytes {
            Err(DecodeError::TooLarge {
                len: full_len,
                limit: limits.max_event_bytes,
            })
        } else {
            parse(
                &mut self.scratch,
                &mut self.buffers,
                &mut tape,
                raw,
                &limits,
            )
        };
        let mut salvaged = None;
        let mut original = None;
        if let Err(e) = &outcome
            && e.salvageable()
            && raw.len() == full_len
        {
            let reason = e.kind();
            let chosen = (0..)
                .map_while(|attempt| salvage::salvage(raw, &limits, reason, attempt))
                .find(|bytes| decodes(bytes, &limits));
            if let Some(bytes) = chosen {
                self.salvaged = bytes;
                tape = tape.reset();
                let parsed = parse(
                    &mut self.salvage_scratch,
                    &mut self.buffers,
                    &mut tape,
                    &self.salvaged,
                    &limits,
                );
                if parsed.is_ok() {
                    salvaged = Some(reason);
                    original = outcome.err();
                    outcome = Ok(());
                }
            }
        }
        let event_raw: &[u8] = if salvaged.is_some() {
            &self.salvaged
        } else {
            raw
        };
        let result = outcome.and_then(|()| {
            // A salvaged event that still cannot be read (no profile, no time) fails with the
            // limit it was over: that is what its sender should hear about.
            let mut v = view(&mut self.slots, schema, forced, &tape.0, event_raw)
                .map_err(|e| original.unwrap_or(e))?;
            v.salvaged = salvaged;
            Ok(v)
        });
        let out = f(result);
        self.tape = Some(tape.reset());
        out
    }
}

/// Whether `bytes` (a salvage attempt) decode within the limits; parses a copy.
fn decodes(bytes: &[u8], limits: &DecodeLimits) -> bool {
    if bytes.len() > limits.max_event_bytes {
        return false;
    }
    let mut scratch = Vec::new();
    let mut buffers = simd_json::Buffers::with_max_depth(bytes.len(), limits.max_depth);
    let mut tape = simd_json::Tape::null();
    parse(&mut scratch, &mut buffers, &mut tape, bytes, limits).is_ok()
}

/// Parses `raw` onto `tape` (through `scratch`, which the tape then borrows), within the
/// depth and value-count limits.
fn parse<'s>(
    scratch: &'s mut Vec<u8>,
    buffers: &mut simd_json::Buffers,
    tape: &mut simd_json::Tape<'s>,
    raw: &[u8],
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    scratch.clear();
    scratch.extend_from_slice(raw);
    scratch.resize(raw.len() + simd_json::INPUT_PADDING, b' ');
    simd_json::fill_tape_padded(scratch, raw.len(), buffers, tape)
        .map_err(|e| json_error(&e, *limits))?;
    if tape.0.len() > limits.max_fields {
        return Err(DecodeError::TooManyFields {
            count: tape.0.len(),
            limit: limits.max_fields,
        });
    }
    Ok(())
}

fn view<'t, 'de>(
    slots: &'t mut SlotValues,
    schema: &'t Schema,
    forced: Option<ProfileKind>,
    tape: &'t [simd_json::Node<'de>],
    raw: &'t [u8],
) -> Result<EventView<'t, 'de>, DecodeError> {
    if tape.len() > schema.limits.max_fields {
        return Err(DecodeError::TooManyFields {
            count: tape.len(),
            limit: schema.limits.max_fields,
        });
    }
    if !matches!(tape.first(), Some(simd_json::Node::Object { .. })) {
        return Err(DecodeError::NotAnObject);
    }
    let kind = match forced {
        Some(k) => k,
        None => profile::detect(tape).ok_or(DecodeError::UnknownProfile)?,
    };
    let (profile_index, profile) = schema.profile(kind).ok_or(DecodeError::UnknownProfile)?;
    slots.reset();
    profile.trie.extract(tape, 0, slots);
    derive::apply(&profile.derived, tape, slots);
    let time = event_time(schema, profile, tape, slots)?;
    Ok(EventView::new(tape, slots, profile_index, kind, time, raw))
}

fn event_time(
    schema: &Schema,
    profile: &CompiledProfile,
    tape: &[simd_json::Node<'_>],
    slots: &SlotValues,
) -> Result<EventTime, DecodeError> {
    for &slot in &profile.time_slots {
        // A nested layout can hold the time under a container of the same name
        // (`TimeCreated.#attributes.SystemTime`): prefer a scalar.
        let mut nodes = slots.nodes(slot).peekable();
        let Some(&first) = nodes.peek() else {
            continue;
        };
        let node = nodes
            .find(|&n| {
                matches!(
                    tape[n],
                    simd_json::Node::String(_) | simd_json::Node::Static(_)
                )
            })
            .unwrap_or(first);
        let bad = |found: &str| DecodeError::BadTime {
            field: schema.fields.name(slot).to_string(),
            found: found.to_string(),
        };
        return match &tape[node] {
            simd_json::Node::String(s) => {
                EventTime::parse(s).ok_or_else(|| bad(&format!("\"{}\"", truncate(s, 64))))
            }
            simd_json::Node::Static(n) => {
                let v = match n {
                    simd_json::StaticNode::I64(i) => *i as f64,
                    simd_json::StaticNode::U64(u) => *u as f64,
                    simd_json::StaticNode::F64(f) => *f,
                    other => return Err(bad(&format!("{other}"))),
                };
                EventTime::from_epoch_number(v).ok_or_else(|| bad(&v.to_string()))
            }
            simd_json::Node::Object { .. } => Err(bad("an object")),
            simd_json::Node::Array { .. } => Err(bad("an array")),
        };
    }
    Err(DecodeError::NoTime {
        profile: profile.spec.kind.name(),
        fields: profile.spec.time_fields.join(", "),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn json_error(e: &simd_json::Error, limits: DecodeLimits) -> DecodeError {
    match e.error() {
        simd_json::ErrorType::DepthLimitExceeded => DecodeError::TooDeep {
            limit: limits.max_depth,
        },
        simd_json::ErrorType::InvalidUtf8 => DecodeError::InvalidUtf8,
        _ => DecodeError::InvalidJson(e.to_string()),
    }
}

impl fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
