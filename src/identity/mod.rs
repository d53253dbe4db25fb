//! Identity: who is really acting, across the credentials an attacker hops through.
//!
//! A source profile turns an event into an [`IdentityRef`]: the principal its templates name
//! (an IAM user, the role behind an STS session, `domain\user`), plus the credential it used
//! (an access key id) and the session (an assumed-role session ARN) when the source has them.
//! Events that mint credentials (`AssumeRole`, `GetSessionToken`, `GetFederationToken`,
//! `CreateAccessKey`) become [`Link`]s from the new credential to their caller. The
//! [`Lineage`] keeps those links, bounded and expiring, and resolves an identity to its *root*:
//! the caller at the start of the hops. Chains grouped by `credtrail.identity` are grouped by
//! that root, so a chain continues across an `AssumeRole` hop or a second access key.
//!
//! Links and hits are applied in event-time order behind the watermark (see [`resolver`]), so
//! the result does not depend on delivery order within the allowed lateness.

pub mod config;
pub mod lineage;
pub mod resolver;

pub use lineage::{Lineage, LineageLimits, LineageStats, Resolved};
pub use resolver::Resolver;

use crate::input::Position;
use crate::time::{EventTime, Span};

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
