//! Credentials: which credential an event acted with, and when the event shows its own
//! principal owning it.
//!
//! Lineage follows credentials (see [`identity`](crate::identity)): a credential minted by
//! `AssumeRole` or `CreateAccessKey` belongs to its caller. Some events name *only* the
//! credential: CloudTrail data events and failed calls whose `userIdentity` has an
//! `accessKeyId` and no `arn`; a Linux process started through `sudo`, whose acting user is
//! root while its audit login uid (`auid`) is still the person who logged in. Such an event
//! belongs to whoever an earlier event showed acting with the credential. This module says
//! which events show that: the worker turns them into
//! [`LinkKind::KeyOwner`](crate::vocab::LinkKind::KeyOwner) links.
//!
//! | profile      | credential                         | shows its owner when                                    |
//! |--------------|------------------------------------|---------------------------------------------------------|
//! | `cloudtrail` | `userIdentity.accessKeyId`         | the identity came from an ARN (`sessionIssuer.arn`, `arn`) |
//! | `linux`      | `Hostname` + `/auid=` + `auid`     | `uid` = `auid` (the login user acting as itself) and the identity is a name (`AUID`, `User`) |

use super::profile::IdentityTemplate;

/// Where a profile finds an event's credential and when the event shows its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSpec {
    /// The credential: the template's fields joined by its separator.
    pub template: IdentityTemplate,
    /// The event shows its principal owning the credential only when its identity came from
    /// one of the profile's first `owner_templates` identity templates: a weaker identity (a
    /// bare principal id, the key itself) would tie the key to a name other events never use.
    pub owner_templates: usize,
    /// And, when set, only when these two fields hold the same value.
    pub owner_when_equal: Option<(String, String)>,
}

impl CredentialSpec {
    /// CloudTrail: the access key id; the owner from an event that names an ARN.
    pub fn cloudtrail() -> CredentialSpec {
        CredentialSpec {
            template: IdentityTemplate {
                fields: vec!["userIdentity.accessKeyId".into()],
                separator: String::new(),
            },
            owner_templates: 2,
            owner_when_equal: None,
        }
    }

    /// Linux: the host and the audit login uid; the owner from an event whose uid is its login
    /// uid, named by `AUID` or `User`.
    pub fn linux_login() -> CredentialSpec {
        CredentialSpec {
            template: IdentityTemplate {
                fields: vec!["Hostname".into(), "auid".into()],
                separator: "/auid=".into(),
            },
            owner_templates: 2,
            owner_when_equal: Some(("uid".into(), "auid".into())),
        }
    }

    /// Every field name the spec reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.template.fields.iter().map(String::as_str).chain(
            self.owner_when_equal
                .iter()
                .flat_map(|(a, b)| [a.as_str(), b.as_str()]),
        )
    }
}
