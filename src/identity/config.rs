//! `--identity FILE`: the identity priority list of each source profile, as a user sets it,
//! and how AWS Identity Center (SSO) sessions are grouped.
//!
//! ```yaml
//! windows:                      # prefer the SID, then DOMAIN\name
//!   - [SubjectUserSid]
//!   - {fields: [SubjectDomainName, SubjectUserName], separator: "\\"}
//! cloudtrail:
//!   - [userIdentity.arn]        # group sessions by session, not by role
//! aws_sso: person               # AWSReservedSSO_* sessions by person, not by permission set
//! ```
//!
//! Each entry is a template: the listed fields' first values joined by the separator; the first
//! template whose fields are all present wins. A profile not listed keeps its built-in list.
//! Whatever template wins, the profile's canonical spelling applies to what it built (see
//! [`decode::principal`](crate::decode::principal)).
//!
//! `aws_sso` is `role` (the default: a permission set's role is one identity, like any role) or
//! `person`: a session of an `AWSReservedSSO_*` role is the person it acts for,
//! `userIdentity.onBehalfOf.userId` when the event has it, else the session name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::decode::{IdentityTemplate, ProfileKind, SsoGrouping};

/// The key of the SSO grouping setting, beside the profile names.
const AWS_SSO_KEY: &str = "aws_sso";

/// What one top-level key holds: a profile's templates, or a setting's word.
#[derive(Deserialize)]
#[serde(untagged)]
enum Section {
    Templates(Vec<Entry>),
    Setting(String),
    /// Neither: named by the key's own message, rather than serde's "did not match any
    /// variant".
    Unreadable(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Fields(Vec<String>),
    Template(IdentityTemplate),
}

/// Why an identity configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityConfigError {
    #[error("cannot read identity configuration {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// An identity configuration, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Templates replacing a profile's built-in list.
    pub templates: HashMap<ProfileKind, Vec<IdentityTemplate>>,
    /// How AWS Identity Center sessions are grouped.
    pub aws_sso: SsoGrouping,
}

/// Loads an identity configuration file.
pub fn load(path: &Path) -> Result<IdentityConfig, IdentityConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| IdentityConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|message| IdentityConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

fn parse(text: &str) -> Result<IdentityConfig, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: 8, max_nodes: 10_000 },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    let raw: HashMap<String, Section> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    let mut out = IdentityConfig::default();
    for (name, section) in raw {
        let entries = match (name.as_str(), section) {
            (AWS_SSO_KEY, Section::Setting(word)) => {
                out.aws_sso = match word.as_str() {
                    "role" => SsoGrouping::Role,
                    "person" => SsoGrouping::Person,
                    _ => {
                        return Err(format!(
                            "`{AWS_SSO_KEY}: {word}`: expected `role` or `person`"
                        ));
                    }
                };
                continue;
            }
            (AWS_SSO_KEY, _) => {
                return Err(format!(
                    "`{AWS_SSO_KEY}` takes one word, `role` or `person`, not a list"
                ));
            }
            (_, Section::Templates(entries)) => entries,
            (_, Section::Setting(word)) => {
                return Err(format!(
                    "`{name}: {word}`: a profile takes a list of templates"
                ));
            }
            (_, Section::Unreadable(_)) => {
                return Err(format!(
                    "profile `{name}`: each template is a list of fields or \
                     {{fields: [...], separator: \"...\"}}"
                ));
            }
        };
        let kind = ProfileKind::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = ProfileKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown profile `{name}` (known: {}; setting: {AWS_SSO_KEY})",
                known.join(", ")
            )
        })?;
        if entries.is_empty() {
            return Err(format!("profile `{name}` has an empty identity list"));
        }
        let templates = entries
            .into_iter()
            .map(|e| match e {
                Entry::Fields(fields) => IdentityTemplate {
                    fields,
                    separator: String::new(),
                },
                Entry::Template(t) => t,
            })
            .collect::<Vec<_>>();
        if let Some(t) = templates.iter().find(|t| t.fields.is_empty()) {
            return Err(format!(
                "profile `{name}`: a template lists no fields ({t:?})"
            ));
        }
        out.templates.insert(kind, templates);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_templates() {
        let c = parse("windows:\n  - [SubjectUserSid]\n  - {fields: [SubjectDomainName, SubjectUserName], separator: \"\\\\\"}\n").unwrap();
        let w = &c.templates[&ProfileKind::Windows];
        assert_eq!(c.aws_sso, SsoGrouping::Role, "roles by default");
        assert_eq!(w[0].fields, vec!["SubjectUserSid"]);
        assert_eq!(w[1].separator, "\\");
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("syslog:\n  - [x]\n").unwrap_err().contains("syslog"));
        assert!(parse("windows: []\n").unwrap_err().contains("empty"));
        assert!(
            parse("windows:\n  - {fields: [a], colour: red}\n")
                .unwrap_err()
                .contains("each template is a list of fields")
        );
        assert_eq!(
            parse("aws_sso: people\n").unwrap_err(),
            "`aws_sso: people`: expected `role` or `person`"
        );
        assert!(
            parse("aws_sso: [person]\n")
                .unwrap_err()
                .contains("one word")
        );
        assert!(
            parse("windows: SubjectUserSid\n")
                .unwrap_err()
                .contains("a profile takes a list of templates")
        );
    }

    #[test]
    fn sso_sessions_may_group_by_person() {
        let c = parse("aws_sso: person\ncloudtrail:\n  - [userIdentity.arn]\n").unwrap();
        assert_eq!(c.aws_sso, SsoGrouping::Person);
        assert_eq!(
            c.templates[&ProfileKind::CloudTrail][0].fields,
            vec!["userIdentity.arn"]
        );
        assert_eq!(parse("aws_sso: role\n").unwrap().aws_sso, SsoGrouping::Role);
    }
}
