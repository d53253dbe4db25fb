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
//! An event that names only its credential (a CloudTrail data event with an `accessKeyId` and no
//! `arn`; a Linux process under `sudo`, whose login uid is still the person's) belongs to whoever
//! an earlier event showed acting with that credential: such sightings become
//! [`LinkKind::KeyOwner`] links, passed on by each worker once per credential and lifetime
//! ([`sighting`]), which add no hop and never replace a minting link.
//!
//! Links and hits are applied in event-time order behind the watermark (see [`resolver`]), so
//! the result does not depend on delivery order within the allowed lateness.

pub mod config;
pub mod lineage;
pub mod resolver;
pub mod sighting;

pub use lineage::{Lineage, LineageLimits, LineageStats, Resolved};
pub use resolver::Resolver;
pub use sighting::Sightings;

// The decoder builds these and the resolver applies them, so they live in the shared
// vocabulary (below both); this module owns what is done with them.
pub use crate::vocab::{IdentityRef, Link, LinkKind};
