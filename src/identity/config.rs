//! `--identity FILE`: the identity priority list of each source profile, as a user sets it.
//!
//! ```yaml
//! windows:                      # prefer the SID, then DOMAIN\name
//!   - [SubjectUserSid]
//!   - {fields: [SubjectDomainName, SubjectUserName], separator: "\\"}
//! cloudtrail:
//!   - [userIdentity.arn]        # group sessions by session, not by role
//! ```
//!
//! Each entry is a template: the listed fields' first values joined by the separator; the first
//! template whose fields are all present wins. A profile not listed keeps its built-in list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::decode::{IdentityTemplate, ProfileKind};

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

/// Loads per-profile identity templates.
pub fn load(
    path: &Path,
) -> Result<HashMap<ProfileKind, Vec<IdentityTemplate>>, IdentityConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| IdentityConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|message| IdentityConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

fn parse(text: &str) -> Result<HashMap<ProfileKind, Vec<IdentityTemplate>>, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: 8, max_nodes: 10_000 },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    let raw: HashMap<String, Vec<Entry>> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for (name, entries) in raw {
        let kind = ProfileKind::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = ProfileKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown profile `{name}` (known: {})", known.join(", "))
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
        out.insert(kind, templates);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_templates() {
        let c = parse("windows:\n  - [SubjectUserSid]\n  - {fields: [SubjectDomainName, SubjectUserName], separator: \"\\\\\"}\n").unwrap();
        let w = &c[&ProfileKind::Windows];
        assert_eq!(w[0].fields, vec!["SubjectUserSid"]);
        assert_eq!(w[1].separator, "\\");
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("syslog:\n  - [x]\n").unwrap_err().contains("syslog"));
        assert!(parse("windows: []\n").unwrap_err().contains("empty"));
        assert!(parse("windows:\n  - {fields: [a], colour: red}\n").is_err());
    }
}
