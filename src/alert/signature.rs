//! Signed alerts: an HMAC-SHA256 over an alert's id, signing time, record key and value, in
//! the style of Standard Webhooks, so that whoever reads the alert topic (or a replay's signed
//! file) can tell a finding credtrail made from one forged or altered by anyone else who can
//! write there.
//!
//! # The scheme
//!
//! Each signed alert carries four headers (Kafka record headers; fields of a signed file's
//! lines):
//!
//! - `webhook-id`: the alert's `finding_info.uid`;
//! - `webhook-timestamp`: when it was signed, in seconds since the Unix epoch;
//! - `webhook-signature`: `v1,<base64 of the HMAC-SHA256>`; several space-separated entries
//!   may be present and one valid entry suffices (as in Standard Webhooks);
//! - `credtrail.signing_key`: the id of the key that signed it (rotation: verifiers hold
//!   several keys and pick by id; an unknown id is refused, never tried against every key).
//!
//! The HMAC is over `<id>.<timestamp>.<base64 of the record key>.<value>`: Standard Webhooks'
//! `<id>.<timestamp>.<payload>` with the record key (the group key) bound too, so that moving
//! a finding to another identity's key breaks it. The id may not contain a `.`, so the fields
//! cannot be shifted into one another.
//!
//! # The key file
//!
//! One key per line, `<key id> <secret>`; the secret is base64 (Standard Webhooks' `whsec_`
//! prefix allowed) of 16 to 64 random bytes; `#` starts a comment. The first key signs, every
//! key verifies: to rotate, put the new key first, and drop the old one once no consumer needs
//! to verify alerts it signed.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
pub const KEY_ID_HEADER: &str = "credtrail.signing_key";

const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 64;
/// Most keys a key file may hold (a few for rotation).
const MAX_KEYS: usize = 16;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read signing keys {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing keys {path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("signing keys {path}: no key")]
    Empty { path: PathBuf },
}

/// Why a signed alert does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no `{0}` header")]
    Missing(&'static str),
    #[error("header `{header}`: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    #[error("signed with key `{0}`, which is not among the verifying keys")]
    UnknownKey(String),
    #[error("signature does not match (key `{0}`): the alert was altered or forged")]
    Mismatch(String),
}

/// One key: its id and secret. `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?}, secret redacted)", self.id)
    }
}

impl SigningKey {
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, id: &str, timestamp: u64, key: &[u8], value: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; the file's secrets are 16..=64 bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(STANDARD.encode(key).as_bytes());
        mac.update(b".");
        mac.update(value);
        mac
    }
}

/// The keys of a key file: the first signs, all verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

/// The signature headers of one alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub id: String,
    pub timestamp: u64,
    pub key_id: String,
    /// `v1,<base64>`.
    pub signature: String,
}

impl Signature {
    /// (header, value) pairs in the order they are written.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (ID_HEADER, self.id.clone()),
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (SIGNATURE_HEADER, self.signature.clone()),
            (KEY_ID_HEADER, self.key_id.clone()),
        ]
    }
}

impl SigningKeys {
    /// Reads a key file (see the module doc).
    pub fn load(path: &Path) -> Result<SigningKeys, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SigningKeys::parse(&text, path)
    }

    /// Parses a key file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<SigningKeys, KeyFileError> {
        let mut keys: Vec<SigningKey> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| KeyFileError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let mut parts = line.split_whitespace();
            let (Some(id), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected `<key id> <base64 secret>`".into()));
            };
            if id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(bad(format!("key id `{id}`: up to 64 of A-Z a-z 0-9 . _ -")));
            }
            let secret = STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .map_err(|e| bad(format!("key `{id}`: the secret is not base64: {e}")))?;
            if !(MIN_SECRET..=MAX_SECRET).contains(&secret.len()) {
                return Err(bad(format!(
                    "key `{id}`: the secret is {} bytes; use {MIN_SECRET} to {MAX_SECRET} random bytes",
                    secret.len()
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(bad(format!("key id `{id}` appears twice")));
            }
            if keys.len() == MAX_KEYS {
                return Err(bad(format!("more than {MAX_KEYS} keys")));
            }
            keys.push(SigningKey {
                id: id.to_string(),
                secret,
            });
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(SigningKeys { keys })
    }

    /// The key that signs (the file's first).
    pub fn signer(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// The ids of every key, signing key first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Signs an alert: `id` is its `finding_info.uid` (no `.` in it: alert ids are hex and
    /// dashes), `timestamp` the signing time in seconds, `key` and `value` the record's.
    pub fn sign(&self, id: &str, timestamp: u64, key: &[u8], value: &[u8]) -> Signature {
        let signer = self.signer();
        let tag = signer
            .mac(id, timestamp, key, value)
            .finalize()
            .into_bytes();
        Signature {
            id: id.to_string(),
            timestamp,
            key_id: signer.id.clone(),
            signature: format!("v1,{}", STANDARD.encode(tag)),
        }
    }

    /// Checks a signed alert: `header(name)` gives a header's value. Returns the id of the key
    /// that signed it.
    pub fn verify<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        key: &[u8],
        value: &[u8],
    ) -> Result<&str, VerifyError> {
        let get = |name: &'static str| header(name).ok_or(VerifyError::Missing(name));
        let id = get(ID_HEADER)?;
        if id.is_empty() || id.contains('.') {
            return Err(VerifyError::Malformed {
                header: ID_HEADER,
                reason: "empty or holding a `.`".into(),
            });
        }
        let timestamp = get(TIMESTAMP_HEADER)?;
        let timestamp: u64 = timestamp
            .parse()
            .ok()
            .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| VerifyError::Malformed {
                header: TIMESTAMP_HEADER,
                reason: format!("`{timestamp}` is not seconds since the epoch"),
            })?;
        let key_id = get(KEY_ID_HEADER)?;
        let Some(signing) = self.keys.iter().find(|k| k.id == key_id) else {
            return Err(VerifyError::UnknownKey(key_id.to_string()));
        };
        let mut tags = Vec::new();
        for entry in get(SIGNATURE_HEADER)?.split(' ').filter(|e| !e.is_empty()) {
            // Other versions (a future v2, Standard Webhooks' asymmetric v1a) are skipped.
            let Some(b64) = entry.strip_prefix("v1,") else {
                continue;
            };
            let tag = STANDARD.decode(b64).map_err(|e| VerifyError::Malformed {
                header: SIGNATURE_HEADER,
                reason: format!("not base64: {e}"),
            })?;
            tags.push(tag);
        }
        if tags.is_empty() {
            return Err(VerifyError::Malformed {
                header: SIGNATURE_HEADER,
                reason: "no `v1,<base64>` entry".into(),
            });
        }
        let mac = signing.mac(id, timestamp, key, value);
        // `verify_slice` compares in constant time.
        if tags.iter().any(|t| mac.clone().verify_slice(t).is_ok()) {
            Ok(&signing.id)
        } else {
            Err(VerifyError::Mismatch(signing.id.clone()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signed files and topic dumps

/// One line of a signed alert file, and of a topic dump: the JSON object `kcat -C -J` prints
/// per record (`key`, `payload`, `headers` as `[name, value, ...]`; other fields such as
/// `topic`, `partition` and `offset` are ignored). `headers` may also be an object.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub headers: Headers,
}

/// Record headers, in the list form `kcat` prints or as an object.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Headers {
    List(Vec<Option<String>>),
    Map(std::collections::BTreeMap<String, Option<String>>),
    #[default]
    #[serde(skip_deserializing)]
    None,
}

impl Headers {
    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self {
            Headers::List(l) => l
                .chunks(2)
                .find(|kv| kv[0].as_deref() == Some(name))
                .and_then(|kv| kv.get(1)?.as_deref()),
            Headers::Map(m) => m.get(name)?.as_deref(),
            Headers::None => None,
        }
    }
}

impl Envelope {
    /// A signed alert as a line of a signed file.
    pub fn signed(key: &str, payload: &str, signature: &Signature) -> Envelope {
        let headers = signature
            .headers()
            .into_iter()
            .flat_map(|(k, v)| [Some(k.to_string()), Some(v)])
            .collect();
        Envelope {
            key: Some(key.to_string()),
            payload: Some(payload.to_string()),
            headers: Headers::List(headers),
        }
    }
}

/// What checking a signed file found.
#[derive(Debug, Default)]
pub struct FileVerdict {
    /// Lines whose signature holds, per key id.
    pub verified: std::collections::BTreeMap<String, u64>,
    /// (line number, why) for every line that does not verify; at most [`MAX_REPORTED`] kept,
    /// all counted in `failed`.
    pub failures: Vec<(u64, String)>,
    pub failed: u64,
}

/// Most failures a [`FileVerdict`] lists.
pub const MAX_REPORTED: usize = 100;

impl FileVerdict {
    pub fn ok(&self) -> bool {
        self.failed == 0 && !self.verified.is_empty()
    }
}

/// Checks every line of a signed file or topic dump (see [`Envelope`]); blank lines are
/// skipped. A line that is not an envelope, has no payload, or does not verify is a failure
/// with its line number.
pub fn verify_lines(
    keys: &SigningKeys,
    input: impl std::io::BufRead,
) -> Result<FileVerdict, std::io::Error> {
    let mut verdict = FileVerdict::default();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let outcome = match serde_json::from_str::<Envelope>(&line) {
            Err(e) => Err(format!("not a signed record: {e}")),
            Ok(Envelope { payload: None, .. }) => Err("no payload".to_string()),
            Ok(env) => {
                let key = env.key.as_deref().unwrap_or("").as_bytes();
                let payload = env.payload.as_deref().unwrap_or("").as_bytes();
                keys.verify(|h| env.headers.get(h), key, payload)
                    .map(str::to_string)
                    .map_err(|e| e.to_string())
            }
        };
        match outcome {
            Ok(key_id) => *verdict.verified.entry(key_id).or_insert(0) += 1,
            Err(why) => {
                verdict.failed += 1;
                if verdict.failures.len() < MAX_REPORTED {
                    verdict.failures.push((i as u64 + 1, why));
                }
            }
        }
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests;
