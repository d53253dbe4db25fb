//! The records stage 1 writes and every instance reads: hits, credential links and stamps, one
//! JSON object per Kafka message.
//!
//! Reading is in two steps: [`Record::parse`] takes bytes to the wire shape (bounded in size,
//! no unknown fields, a known version), then `into_hit` / `into_link` validate against the
//! rule set in force into the engine's own types. Anything refused says why
//! ([`RecordError`]); the caller dead-letters it with that reason.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::placement::RulesFingerprint;
use crate::matcher::RuleSet;
use crate::time::{EventTime, Span};
use crate::vocab::{
    DETAILS_PER_EVENT, DetailKind, EventDetails, EventRef, Hit, IDENTITY_MARK, IdentityRef, Link,
    LinkKind, Position, Target, TouchKind,
};

/// The record format's version; a reader refuses others.
pub const VERSION: u8 = 1;
/// Largest record read, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Longest group key, event id, principal or credential a record may carry.
pub const MAX_TEXT: usize = 4096;
/// Most touched values and minted credentials per record.
pub const MAX_ITEMS: usize = 64;

/// Where stage 1 read the event a record comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The topic, or the path of a file (`file`).
    pub topic: String,
    pub partition: i32,
    /// The offset, or the line of a file.
    pub offset: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub file: bool,
}

/// A resolved hit: its group key holds the root identity, not a placeholder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HitRecord {
    pub v: u8,
    /// [`RulesFingerprint`] of the writer's rule set, hex.
    pub rules: String,
    pub origin: Origin,
    pub target: WireTarget,
    pub stages: u64,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Event time, nanoseconds since the epoch.
    pub time: i64,
    /// Hash of the event id (orders ties).
    pub key: u64,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(DetailKind, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touched: Vec<(TouchKind, String)>,
}

/// A hit's target as written: a rule index of the writer's rule set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WireTarget {
    Correlation(u32),
    Detection(u32),
}

/// A credential an event minted (or showed acting as its owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRecord {
    pub v: u8,
    pub origin: Origin,
    pub time: i64,
    pub key: u64,
    pub link: LinkKind,
    pub minted: Vec<String>,
    pub principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// How long the minted credential is followed, nanoseconds.
    pub lifetime: i64,
}

/// How far one input partition's output is complete: none of its hits or links with an event
/// time before `frontier` follows this record in the partition it was written to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    pub v: u8,
    pub topic: String,
    pub partition: i32,
    /// Nanoseconds since the epoch; `i64::MAX` when the partition holds time back no more.
    pub frontier: i64,
}

/// One message of the hits or lineage topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Hit(HitRecord),
    Link(LinkRecord),
    Stamp(Stamp),
}

/// Why a record was refused (the reason of its dead letter).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {0} bytes is over the {MAX_RECORD_BYTES}-byte bound")]
    TooLarge(usize),
    #[error("not a record: {0}")]
    Malformed(String),
    #[error("record version {0}, this build reads version {VERSION}")]
    Version(u8),
    #[error(
        "written with rule set {theirs}, this instance runs {ours}: every instance must load the same rules"
    )]
    OtherRules { theirs: String, ours: String },
    #[error("{0} names no rule of this rule set")]
    NoSuchTarget(String),
    #[error("{field} is out of bounds: {why}")]
    Bounds { field: &'static str, why: String },
    #[error("a hit of a referenced correlation's finding cannot travel between instances")]
    Nested,
}

impl Record {
    /// Bytes to a record, bounded; nothing is validated against the rules yet.
    pub fn parse(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let record: Record =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        let v = match &record {
            Record::Hit(h) => h.v,
            Record::Link(l) => l.v,
            Record::Stamp(s) => s.v,
        };
        if v != VERSION {
            return Err(RecordError::Version(v));
        }
        Ok(record)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A record holds only strings, numbers and enums: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn bounded(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.len() > MAX_TEXT {
        return Err(RecordError::Bounds {
            field,
            why: format!("{} bytes, at most {MAX_TEXT}", s.len()),
        });
    }
    Ok(())
}

fn count(field: &'static str, n: usize, max: usize) -> Result<(), RecordError> {
    if n > max {
        return Err(RecordError::Bounds {
            field,
            why: format!("{n} items, at most {max}"),
        });
    }
    Ok(())
}

fn in_time(field: &'static str, t: i64) -> Result<EventTime, RecordError> {
    if t == i64::MIN || t == i64::MAX {
        return Err(RecordError::Bounds {
            field,
            why: "not an instant".into(),
        });
    }
    Ok(EventTime(t))
}

impl HitRecord {
    /// The record of a resolved `hit` read at `origin`, for rule set `rules`. Refuses a hit
    /// that carries a referenced correlation's finding (the sequencer never releases one).
    pub fn of(
        hit: &Hit,
        origin: Origin,
        rules: RulesFingerprint,
    ) -> Result<HitRecord, RecordError> {
        if hit.event.parts.is_some() {
            return Err(RecordError::Nested);
        }
        Ok(HitRecord {
            v: VERSION,
            rules: rules.hex(),
            origin,
            target: match hit.target {
                Target::Correlation(c) => WireTarget::Correlation(c),
                Target::Detection(d) => WireTarget::Detection(d),
            },
            stages: hit.stages,
            group: hit.group.to_string(),
            value: hit.value.as_deref().map(str::to_string),
            time: hit.event.time.0,
            key: hit.event.key,
            id: hit.event.id.to_string(),
            actor: hit.event.actor.as_deref().map(str::to_string),
            details: hit
                .event
                .details
                .as_ref()
                .map(|d| d.iter().map(|(k, v)| (k, v.to_string())).collect())
                .unwrap_or_default(),
            touched: hit
                .touched
                .iter()
                .map(|(k, v)| (*k, v.to_string()))
                .collect(),
        })
    }

    /// Validates the record against `rules` (fingerprint `ours`) into a hit read at `pos` (the
    /// hits-topic position that holds the record), placed on a shard by `shard_key`.
    pub fn into_hit(
        self,
        rules: &RuleSet,
        ours: RulesFingerprint,
        pos: Position,
        shard_key: impl Fn(&str, Target) -> u64,
    ) -> Result<Hit, RecordError> {
        if RulesFingerprint::parse(&self.rules) != Some(ours) {
            return Err(RecordError::OtherRules {
                theirs: self.rules,
                ours: ours.hex(),
            });
        }
        let target = match self.target {
            WireTarget::Correlation(c) => Target::Correlation(c),
            WireTarget::Detection(d) => Target::Detection(d),
        };
        if !rules.has_target(target) {
            return Err(RecordError::NoSuchTarget(format!("{target:?}")));
        }
        for (field, s) in [("group", &self.group), ("id", &self.id)] {
            bounded(field, s)?;
        }
        if let Some(v) = &self.value {
            bounded("value", v)?;
        }
        if let Some(a) = &self.actor {
            bounded("actor", a)?;
        }
        if self.group.contains(IDENTITY_MARK) {
            return Err(RecordError::Bounds {
                field: "group",
                why: "holds an unresolved identity".into(),
            });
        }
        count("details", self.details.len(), DETAILS_PER_EVENT)?;
        count("touched", self.touched.len(), MAX_ITEMS)?;
        let time = in_time("time", self.time)?;
        for (_, v) in &self.touched {
            bounded("touched", v)?;
        }
        // Where stage 1 read the event goes first, so the alert's evidence names the input.
        let origin = EventDetails::origin_text(
            self.origin.file,
            &self.origin.topic,
            self.origin.partition,
            self.origin.offset,
        );
        let facts = self
            .details
            .iter()
            .filter(|(k, _)| *k != DetailKind::Origin)
            .map(|(k, v)| (*k, v.as_str()));
        let details =
            EventDetails::new(std::iter::once((DetailKind::Origin, origin.as_str())).chain(facts));
        let shard_key = shard_key(&self.group, target);
        Ok(Hit {
            target,
            stages: self.stages,
            group: self.group.into(),
            value: self.value.map(Into::into),
            shard_key,
            event: EventRef {
                time,
                key: self.key,
                pos,
                id: self.id.into(),
                parts: None,
                actor: self.actor.map(Into::into),
                details: details.map(Arc::new),
            },
            touched: self
                .touched
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
        })
    }
}

impl LinkRecord {
    pub fn of(link: &Link, origin: Origin) -> LinkRecord {
        LinkRecord {
            v: VERSION,
            origin,
            time: link.time.0,
            key: link.key,
            link: link.kind,
            minted: link.minted.iter().map(|m| m.to_string()).collect(),
            principal: link.caller.principal.to_string(),
            credential: link.caller.credential.as_deref().map(str::to_string),
            session: link.caller.session.as_deref().map(str::to_string),
            lifetime: link.lifetime.0,
        }
    }

    /// Validates the record into a link; `pos` is where this instance read it, if a restart
    /// of this instance could read it again there (`None` for the lineage topic: the link
    /// holds back the input offsets of whoever read its event).
    pub fn into_link(self, pos: Option<Position>) -> Result<Link, RecordError> {
        let time = in_time("time", self.time)?;
        count("minted", self.minted.len(), MAX_ITEMS)?;
        for m in &self.minted {
            bounded("minted", m)?;
        }
        bounded("principal", &self.principal)?;
        for c in [&self.credential, &self.session].into_iter().flatten() {
            bounded("credential", c)?;
        }
        if self.lifetime < 0 {
            return Err(RecordError::Bounds {
                field: "lifetime",
                why: "negative".into(),
            });
        }
        Ok(Link {
            time,
            key: self.key,
            kind: self.link,
            minted: self.minted.into_iter().map(Into::into).collect(),
            caller: IdentityRef {
                principal: self.principal.into(),
                credential: self.credential.map(Into::into),
                session: self.session.map(Into::into),
            },
            lifetime: Span(self.lifetime),
            pos,
        })
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
