//! Inventory: what each identity can reach, from an identity context file.
//!
//! A file (YAML, JSON or CSV, chosen by extension) lists identities and secrets. An identity
//! entry matches by exact id or by a glob pattern (`*`, `?`; ARNs and `domain\user` names,
//! compared case-insensitively); the first matching entry in file order wins. It says what kind
//! of identity it is, who owns it, its environment and privilege tier, how many secrets,
//! accounts and data stores it can reach (counts or lists), its credential kind and age, and
//! whether it is a canary. A secret entry marks secrets (by id or pattern) as canaries.
//!
//! ```yaml
//! identities:
//!   - match: "arn:aws:iam::123837392027:user/bert-jan"
//!     kind: human                 # human | service | ci | agent
//!     owner: bert-jan@example.com
//!     environment: prod
//!     privilege: admin            # admin | high | medium | low
//!     reach: {secrets: 120, accounts: [123837392027, 210987654321], data_stores: 40}
//!     credential: {kind: long_lived_key, age_days: 412}
//!   - match: "arn:aws:iam::*:role/ci-*"
//!     kind: ci
//!     privilege: high
//! secrets:
//!   - match: "arn:aws:secretsmanager:*:*:secret:canary/*"
//!     canary: true
//! ```
//!
//! The CSV form has one identity per row with the columns `match, kind, owner, environment,
//! privilege, secrets, accounts, data_stores, credential_kind, credential_age_days, canary`.
//!
//! [`overlay`] applies live updates (the service's compacted inventory topic) on top of a file.

pub mod overlay;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex_automata::{Input, MatchKind, PatternSet, meta};
use serde::Deserialize;

/// What kind of identity acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Human,
    Service,
    Ci,
    Agent,
}

/// Privilege tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    Low,
    Medium,
    High,
    Admin,
}

/// How the identity authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    LongLivedKey,
    Password,
    Session,
}

/// A reach written as a count or as the list of what is reachable.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Reach {
    Count(u64),
    List(Vec<ReachItem>),
}

/// One reachable item (ids may be written as numbers, such as AWS account ids).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ReachItem {
    Text(String),
    Number(u64),
}

impl Reach {
    pub fn count(&self) -> u64 {
        match self {
            Reach::Count(n) => *n,
            Reach::List(v) => v.len() as u64,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReachSpec {
    pub secrets: Option<Reach>,
    pub accounts: Option<Reach>,
    pub data_stores: Option<Reach>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub kind: CredentialKind,
    #[serde(default)]
    pub age_days: Option<u32>,
}

/// One identity as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityEntry {
    #[serde(rename = "match")]
    pub pattern: String,
    pub kind: Option<IdentityKind>,
    pub owner: Option<String>,
    pub environment: Option<String>,
    pub privilege: Option<Privilege>,
    #[serde(default)]
    pub reach: ReachSpec,
    pub credential: Option<Credential>,
    #[serde(default)]
    pub canary: bool,
}

/// One secret as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub canary: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    identities: Vec<IdentityEntry>,
    #[serde(default)]
    secrets: Vec<SecretEntry>,
}

/// Why an inventory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("inventory {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("inventory {path}: entry {index} (`{pattern}`): {message}")]
    Entry {
        path: PathBuf,
        index: usize,
        pattern: String,
        message: String,
    },
    #[error("inventory {path}: unknown format (use .yaml, .yml, .json or .csv)")]
    Format { path: PathBuf },
}

/// Exact ids and glob patterns, first match in file order wins.
#[derive(Debug, Default)]
struct Matcher {
    exact: HashMap<String, usize>,
    globs: Option<meta::Regex>,
    glob_entries: Vec<usize>,
}

impl Matcher {
    fn build(patterns: &[&str]) -> Result<Matcher, (usize, String)> {
        let mut m = Matcher::default();
        let mut globs = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            if p.contains(['*', '?']) {
                globs.push(glob_regex(p));
                m.glob_entries.push(i);
            } else {
                m.exact.entry(p.to_ascii_lowercase()).or_insert(i);
            }
        }
        if !globs.is_empty() {
            let re = meta::Regex::builder()
                .configure(meta::Config::new().match_kind(MatchKind::All))
                .build_many(&globs)
                .map_err(|e| (m.glob_entries.first().copied().unwrap_or(0), e.to_string()))?;
            m.globs = Some(re);
        }
        Ok(m)
    }

    fn find(&self, id: &str) -> Option<usize> {
        let exact = self.exact.get(&id.to_ascii_lowercase()).copied();
        let glob = self.globs.as_ref().and_then(|re| {
            let mut set = PatternSet::new(re.pattern_len());
            re.which_overlapping_matches(&Input::new(id), &mut set);
            set.iter().map(|p| self.glob_entries[p.as_usize()]).min()
        });
        match (exact, glob) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn glob_regex(pattern: &str) -> String {
    let mut out = String::from("(?is)^");
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            _ => out.push_str(&regex_syntax::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// A loaded inventory.
#[derive(Debug, Default)]
pub struct Inventory {
    identities: Vec<IdentityEntry>,
    secrets: Vec<SecretEntry>,
    identity_matcher: Matcher,
    secret_matcher: Matcher,
}

impl Inventory {
    /// Builds an inventory from entries; errors name the entry.
    pub fn new(
        identities: Vec<IdentityEntry>,
        secrets: Vec<SecretEntry>,
        path: &Path,
    ) -> Result<Inventory, InventoryError> {
        let err = |index: usize, pattern: &str, message: String| InventoryError::Entry {
            path: path.to_path_buf(),
            index,
            pattern: pattern.to_string(),
            message,
        };
        for (i, e) in identities.iter().enumerate() {
            if e.pattern.trim().is_empty() {
                return Err(err(i, &e.pattern, "`match` is empty".into()));
            }
        }
        let ids: Vec<&str> = identities.iter().map(|e| e.pattern.as_str()).collect();
        let identity_matcher = Matcher::build(&ids).map_err(|(i, m)| err(i, ids[i], m))?;
        let secs: Vec<&str> = secrets.iter().map(|e| e.pattern.as_str()).collect();
        let secret_matcher = Matcher::build(&secs).map_err(|(i, m)| err(i, secs[i], m))?;
        Ok(Inventory {
            identities,
            secrets,
            identity_matcher,
            secret_matcher,
        })
    }

    /// Loads a `.yaml`/`.yml`, `.json` or `.csv` file.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parse = |message: String| InventoryError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let file: File = match ext.as_str() {
            "yaml" | "yml" => {
                let options = serde_saphyr::options! {
                    budget: serde_saphyr::budget! { max_depth: 16, max_nodes: 5_000_000 },
                    duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
                };
                serde_saphyr::from_str_with_options(&text, options)
                    .map_err(|e| parse(e.to_string()))?
            }
            "json" => serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?,
            "csv" => File {
                identities: parse_csv(&text).map_err(parse)?,
                secrets: Vec::new(),
            },
            _ => {
                return Err(InventoryError::Format {
                    path: path.to_path_buf(),
                });
            }
        };
        Inventory::new(file.identities, file.secrets, path)
    }

    /// The entry for an identity, if any matches.
    pub fn identity(&self, id: &str) -> Option<&IdentityEntry> {
        self.identity_matcher.find(id).map(|i| &self.identities[i])
    }

    /// Whether a secret (by id, name or ARN) is a canary.
    pub fn is_canary_secret(&self, secret: &str) -> bool {
        self.secret_matcher
            .find(secret)
            .is_some_and(|i| self.secrets[i].canary)
    }

    /// The identity and secret entries, in match order.
    pub fn entries(&self) -> (&[IdentityEntry], &[SecretEntry]) {
        (&self.identities, &self.secrets)
    }

    pub fn len(&self) -> usize {
        self.identities.len() + self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    #[serde(rename = "match")]
    pattern: String,
    kind: Option<IdentityKind>,
    owner: Option<String>,
    environment: Option<String>,
    privilege: Option<Privilege>,
    secrets: Option<u64>,
    accounts: Option<u64>,
    data_stores: Option<u64>,
    credential_kind: Option<CredentialKind>,
    credential_age_days: Option<u32>,
    #[serde(default)]
    canary: Option<bool>,
}

fn parse_csv(text: &str) -> Result<Vec<IdentityEntry>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<CsvRow>().enumerate() {
        let r = row.map_err(|e| format!("row {}: {e}", i + 2))?;
        out.push(IdentityEntry {
            pattern: r.pattern,
            kind: r.kind,
            owner: r.owner.filter(|s| !s.is_empty()),
            environment: r.environment.filter(|s| !s.is_empty()),
            privilege: r.privilege,
            reach: ReachSpec {
                secrets: r.secrets.map(Reach::Count),
                accounts: r.accounts.map(Reach::Count),
                data_stores: r.data_stores.map(Reach::Count),
            },
            credential: r.credential_kind.map(|kind| Credential {
                kind,
                age_days: r.credential_age_days,
            }),
            canary: r.canary.unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn yaml_json_and_csv_say_the_same() {
        let yaml = "identities:\n  - match: 'arn:aws:iam::1:user/bert-jan'\n    kind: human\n    privilege: admin\n    reach: {secrets: 120, accounts: [1, 2]}\n    credential: {kind: long_lived_key, age_days: 400}\n";
        let json = r#"{"identities":[{"match":"arn:aws:iam::1:user/bert-jan","kind":"human","privilege":"admin","reach":{"secrets":120,"accounts":[1,2]},"credential":{"kind":"long_lived_key","age_days":400}}]}"#;
        let csv = "match,kind,owner,environment,privilege,secrets,accounts,data_stores,credential_kind,credential_age_days,canary\narn:aws:iam::1:user/bert-jan,human,,,admin,120,2,,long_lived_key,400,false\n";
        for (name, text) in [("i.yaml", yaml), ("i.json", json), ("i.csv", csv)] {
            let (_d, p) = write(name, text);
            let inv = Inventory::load(&p).unwrap();
            let e = inv.identity("arn:aws:iam::1:user/bert-jan").unwrap();
            assert_eq!(e.privilege, Some(Privilege::Admin), "{name}");
            assert_eq!(e.reach.secrets.as_ref().unwrap().count(), 120, "{name}");
            assert_eq!(e.reach.accounts.as_ref().unwrap().count(), 2, "{name}");
            assert_eq!(
                e.credential.as_ref().unwrap().kind,
                CredentialKind::LongLivedKey,
                "{name}"
            );
        }
    }

    #[test]
    fn exact_and_glob_matches_first_in_file_order() {
        let yaml = "identities:\n  - match: 'arn:aws:iam::*:role/ci-*'\n    kind: ci\n  - match: 'arn:aws:iam::1:role/ci-deploy'\n    kind: service\n  - match: 'CONTOSO\\eve'\n    kind: human\nsecrets:\n  - match: '*:secret:canary/*'\n    canary: true\n";
        let (_d, p) = write("i.yml", yaml);
        let inv = Inventory::load(&p).unwrap();
        assert_eq!(
            inv.identity("arn:aws:iam::1:role/ci-deploy").unwrap().kind,
            Some(IdentityKind::Ci)
        );
        assert_eq!(
            inv.identity("contoso\\eve").unwrap().kind,
            Some(IdentityKind::Human)
        );
        assert!(inv.identity("arn:aws:iam::1:role/app").is_none());
        assert!(inv.is_canary_secret("arn:aws:secretsmanager:eu-west-1:1:secret:canary/db-AbCdEf"));
        assert!(!inv.is_canary_secret("arn:aws:secretsmanager:eu-west-1:1:secret:prod/db"));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let (_d, p) = write("i.yaml", "identities:\n  - match: x\n    privilege: god\n");
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(e.contains("i.yaml") && e.contains("god"), "{e}");
        let (_d, p) = write("i.yaml", "identities:\n  - match: x\n    colour: blue\n");
        assert!(
            Inventory::load(&p)
                .unwrap_err()
                .to_string()
                .contains("colour")
        );
        let (_d, p) = write("i.txt", "");
        assert!(matches!(
            Inventory::load(&p),
            Err(InventoryError::Format { .. })
        ));
        let (_d, p) = write("i.csv", "match,kind\nx,wizard\n");
        assert!(
            Inventory::load(&p)
                .unwrap_err()
                .to_string()
                .contains("row 2")
        );
    }
}
