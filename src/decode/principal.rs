//! Principals: one spelling per account, whatever spelling the event used.
//!
//! A profile's identity templates pick the fields that name who acted; this module turns what
//! they built into the one name chains are grouped by, so that two events of one account never
//! land in two groups because a shipper or an API spelled the account differently. The rule is
//! a [`PrincipalForm`], one per profile:
//!
//! - **Windows accounts** (`windows`; the `domain\user` identities of `ecs`, which Winlogbeat
//!   writes): `CONTOSO\alice`, `contoso.local\Alice` and `alice@contoso.local` are all
//!   `contoso\alice`. The domain part compares by its first DNS label (a NetBIOS domain name is
//!   that label in the usual deployment), the user part case-insensitively; both are written in
//!   lower case. A NetBIOS name that is not the first DNS label (`CORP` for `contoso.local`) is
//!   not recognised as the same domain: nothing in one event says so.
//! - **AWS principals** (`cloudtrail`): a session's events name it two ways, by the role behind
//!   it (`userIdentity.sessionContext.sessionIssuer.arn`, `arn:aws:iam::1:role/team/ops`) or
//!   only by the session (`userIdentity.arn`, `arn:aws:sts::1:assumed-role/ops/alice`). Both are
//!   the role `arn:aws:iam::1:role/ops`. A session ARN carries no role path, so the path is
//!   dropped from every role ARN (a role name is unique in its account whatever its path).
//!   With [`SsoGrouping::Person`], a session of an IAM Identity Center permission set (a role
//!   named `AWSReservedSSO_*`, shared by everyone given the permission set) is the person
//!   instead: `sso:<userId>` from `userIdentity.onBehalfOf.userId` when the event carries it,
//!   else `sso:<session name>` (Identity Center names the session after the user).
//!
//! A value that says "nobody" is no value at all ([`is_unset`]): a template holding one does
//! not apply, and the next one is tried.

use serde::Deserialize;

/// Where CloudTrail names the Identity Center user a session acts for.
pub const AWS_ON_BEHALF_OF: &str = "userIdentity.onBehalfOf.userId";

/// The role-name prefix of IAM Identity Center permission-set roles.
pub const AWS_SSO_ROLE_PREFIX: &str = "AWSReservedSSO_";

/// How AWS Identity Center sessions are grouped (`aws_sso` in `--identity FILE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoGrouping {
    /// By the permission set's role, like any other role (everyone given it is one identity).
    #[default]
    Role,
    /// By the person the session acts for.
    Person,
}

/// How one profile spells an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalForm {
    /// As the templates built it (Kubernetes users, OCSF uids, agent ids, Linux user names).
    AsWritten,
    /// Every identity is a Windows account.
    WindowsAccount,
    /// An identity written `domain\user` is a Windows account; any other is as written (ECS
    /// carries Windows and Linux events, and a Linux user name is case-sensitive).
    QualifiedWindowsAccount,
    /// AWS principals, with Identity Center sessions grouped as `sso` says.
    Aws { sso: SsoGrouping },
}

/// What [`PrincipalForm::canonical`] may need besides the identity itself, read from the event.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrincipalContext<'a> {
    /// The session ARN (`userIdentity.arn` of an assumed role).
    pub session: Option<&'a str>,
    /// The Identity Center user id ([`AWS_ON_BEHALF_OF`]).
    pub on_behalf_of: Option<&'a str>,
}

impl PrincipalForm {
    /// Whether [`PrincipalForm::canonical`] reads its context (else an empty one will do).
    pub fn needs_context(self) -> bool {
        matches!(
            self,
            PrincipalForm::Aws {
                sso: SsoGrouping::Person
            }
        )
    }

    /// The one spelling of `identity` (see the module documentation).
    pub fn canonical(self, identity: String, context: &PrincipalContext<'_>) -> String {
        match self {
            PrincipalForm::AsWritten => identity,
            PrincipalForm::WindowsAccount => windows_account(&identity),
            PrincipalForm::QualifiedWindowsAccount if identity.contains('\\') => {
                windows_account(&identity)
            }
            PrincipalForm::QualifiedWindowsAccount => identity,
            PrincipalForm::Aws { sso } => {
                aws_principal(&identity, sso, context).unwrap_or(identity)
            }
        }
    }
}

/// Whether a field value says "nobody": empty, `-` (Windows), or auditd's unset login uid
/// (`unset`, `4294967295`, `-1`: a daemon or cron job that no login started).
pub fn is_unset(value: &str) -> bool {
    matches!(value, "" | "-" | "unset" | "4294967295" | "-1")
}

/// `domain\user`, `domain.dns\user` or `user@domain.dns` as `domain\user` in lower case, the
/// domain cut to its first DNS label; anything else in lower case.
pub fn windows_account(account: &str) -> String {
    let split = account.split_once('\\').or_else(|| {
        account
            .rsplit_once('@')
            .map(|(user, domain)| (domain, user))
    });
    match split {
        Some((domain, user)) if !domain.is_empty() && !user.is_empty() => {
            let label = domain.split('.').next().unwrap_or(domain);
            format!("{}\\{}", label.to_lowercase(), user.to_lowercase())
        }
        _ => account.to_lowercase(),
    }
}

/// The ARN's parts: partition, service, account and resource; `None` when it is no ARN.
fn arn_parts(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(_region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((partition, service, account, resource))
}

/// A role ARN or assumed-role session ARN as (partition, account, role name, session name).
fn role_of(arn: &str) -> Option<(&str, &str, &str, Option<&str>)> {
    let (partition, service, account, resource) = arn_parts(arn)?;
    match service {
        "sts" => {
            let rest = resource.strip_prefix("assumed-role/")?;
            let (role, session) = rest.split_once('/')?;
            Some((partition, account, role, Some(session)))
        }
        "iam" => {
            let path = resource.strip_prefix("role/")?;
            let role = path.rsplit('/').next()?;
            Some((partition, account, role, None))
        }
        _ => None,
    }
}

/// The canonical AWS principal of `arn`; `None` when it is not a role or a role session
/// (users, the root, service names and key ids stay as written).
fn aws_principal(arn: &str, sso: SsoGrouping, context: &PrincipalContext<'_>) -> Option<String> {
    let (partition, account, role, session) = role_of(arn)?;
    if role.is_empty() {
        return None;
    }
    if sso == SsoGrouping::Person && role.starts_with(AWS_SSO_ROLE_PREFIX) {
        let person = context
            .on_behalf_of
            .filter(|p| !is_unset(p))
            .or(session)
            .or_else(|| {
                let (_, _, _, session) = role_of(context.session?)?;
                session
            })
            .filter(|p| !is_unset(p));
        if let Some(person) = person {
            return Some(format!("sso:{person}"));
        }
    }
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(arn: &str, sso: SsoGrouping, context: PrincipalContext<'_>) -> String {
        PrincipalForm::Aws { sso }.canonical(arn.to_string(), &context)
    }

    #[test]
    fn windows_domain_spellings_are_one_account() {
        for spelling in [
            "CONTOSO\\alice",
            "contoso.local\\Alice",
            "CONTOSO.LOCAL\\ALICE",
            "alice@contoso.local",
            "Alice@CONTOSO",
        ] {
            assert_eq!(windows_account(spelling), "contoso\\alice", "{spelling}");
        }
        // Names without a domain, SIDs and machine accounts keep their shape.
        assert_eq!(windows_account("SYSTEM"), "system");
        assert_eq!(windows_account("S-1-5-18"), "s-1-5-18");
        assert_eq!(windows_account("CONTOSO\\WS01$"), "contoso\\ws01$");
        assert_eq!(
            windows_account("NT AUTHORITY\\SYSTEM"),
            "nt authority\\system"
        );
        assert_eq!(windows_account("@contoso.local"), "@contoso.local");
        // A different first label is a different domain.
        assert_ne!(windows_account("fabrikam.local\\alice"), "contoso\\alice");
    }

    #[test]
    fn ecs_applies_the_windows_rule_to_qualified_names_only() {
        let f = PrincipalForm::QualifiedWindowsAccount;
        let none = PrincipalContext::default();
        assert_eq!(
            f.canonical("CONTOSO.local\\Bob".into(), &none),
            "contoso\\bob"
        );
        assert_eq!(f.canonical("Deploy".into(), &none), "Deploy");
        assert_eq!(
            f.canonical("bob@example.com".into(), &none),
            "bob@example.com"
        );
    }

    #[test]
    fn a_session_is_its_role_with_or_without_session_context() {
        let none = PrincipalContext::default();
        let role = "arn:aws:iam::111122223333:role/ops";
        assert_eq!(
            aws(
                "arn:aws:iam::111122223333:role/ops",
                SsoGrouping::Role,
                none
            ),
            role
        );
        assert_eq!(
            aws(
                "arn:aws:iam::111122223333:role/team/ops",
                SsoGrouping::Role,
                none
            ),
            role,
            "the session ARN has no path, so neither does the role"
        );
        assert_eq!(
            aws(
                "arn:aws:sts::111122223333:assumed-role/ops/alice",
                SsoGrouping::Role,
                none
            ),
            role
        );
        assert_eq!(
            aws(
                "arn:aws-cn:sts::1:assumed-role/ops/i-0abc",
                SsoGrouping::Role,
                none
            ),
            "arn:aws-cn:iam::1:role/ops"
        );
        // Users, roots, key ids and malformed ARNs stay as written.
        for other in [
            "arn:aws:iam::1:user/bert-jan",
            "arn:aws:iam::1:root",
            "AKIAEXAMPLE",
            "arn:aws:sts::1:assumed-role/",
            "arn:aws:iam::1:role/",
            "ec2.amazonaws.com",
        ] {
            assert_eq!(aws(other, SsoGrouping::Role, none), other);
        }
    }

    #[test]
    fn sso_sessions_group_by_role_or_by_person() {
        let issuer = "arn:aws:iam::1:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0a1b";
        let session = "arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0a1b/alice@example.com";
        let role = "arn:aws:iam::1:role/AWSReservedSSO_Admin_0a1b";
        let with_session = PrincipalContext {
            session: Some(session),
            on_behalf_of: None,
        };
        assert_eq!(aws(issuer, SsoGrouping::Role, with_session), role);
        assert_eq!(aws(session, SsoGrouping::Role, with_session), role);
        // By person: the issuer (sessionContext) and the session ARN alone agree.
        assert_eq!(
            aws(issuer, SsoGrouping::Person, with_session),
            "sso:alice@example.com"
        );
        assert_eq!(
            aws(session, SsoGrouping::Person, PrincipalContext::default()),
            "sso:alice@example.com"
        );
        let on_behalf = PrincipalContext {
            session: Some(session),
            on_behalf_of: Some("94482488-3041-7026-18f3-be45837cd0e4"),
        };
        assert_eq!(
            aws(issuer, SsoGrouping::Person, on_behalf),
            "sso:94482488-3041-7026-18f3-be45837cd0e4"
        );
        // Not a permission-set role: the role, even by person.
        assert_eq!(
            aws(
                "arn:aws:sts::1:assumed-role/ops/alice",
                SsoGrouping::Person,
                with_session
            ),
            "arn:aws:iam::1:role/ops"
        );
        // No person anywhere: the role.
        assert_eq!(
            aws(issuer, SsoGrouping::Person, PrincipalContext::default()),
            role
        );
    }

    #[test]
    fn unset_values_name_nobody() {
        for v in ["", "-", "unset", "4294967295", "-1"] {
            assert!(is_unset(v), "{v}");
        }
        assert!(!is_unset("0"));
        assert!(!is_unset("alice"));
    }
}
