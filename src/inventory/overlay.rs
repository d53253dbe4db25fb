//! Live inventory updates on top of the file: records keyed by an id, each holding one identity
//! or secret entry (a compacted Kafka topic in the service), the last record of a key winning
//! and an empty record deleting it.
//!
//! ```json
//! {"identity": {"match": "arn:aws:iam::111122223333:user/dana", "privilege": "admin", "reach": {"secrets": 40}}}
//! {"secret": {"match": "prod/canary/*", "canary": true}}
//! ```
//!
//! Updated entries come before the file's in match order (first match wins), ordered by key, so
//! an update overrides what the file says about the same identity. Each record is checked alone
//! when applied (its JSON, its pattern), so one bad record is refused with its reason and never
//! breaks the whole inventory. The number of keys is bounded: past `max_entries`, new keys are
//! refused (updates and deletes of known keys still apply).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::{IdentityEntry, Inventory, InventoryError, SecretEntry};

/// One record's entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Update {
    Identity(IdentityEntry),
    Secret(SecretEntry),
}

/// Why a record was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("inventory record `{key}`: not a JSON identity or secret entry: {reason}")]
    Json { key: String, reason: String },
    #[error("inventory record `{key}`: {reason}")]
    Entry { key: String, reason: String },
    #[error("inventory record `{key}`: refused, the overlay already holds {max} entries")]
    Full { key: String, max: usize },
    #[error("inventory record without a key: a compacted topic needs one per entry")]
    NoKey,
}

/// The file's inventory and the updates applied on top of it.
#[derive(Debug)]
pub struct Overlay {
    base: Option<Arc<Inventory>>,
    updates: BTreeMap<String, Update>,
    max_entries: usize,
}

impl Overlay {
    pub fn new(base: Option<Arc<Inventory>>, max_entries: usize) -> Overlay {
        Overlay {
            base,
            updates: BTreeMap::new(),
            max_entries,
        }
    }

    /// Applies one record: `None` or an empty value deletes `key`. Returns whether the
    /// inventory changed.
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<bool, RecordError> {
        let key = key.ok_or(RecordError::NoKey)?;
        let key = String::from_utf8_lossy(key).into_owned();
        let value = value.filter(|v| !v.iter().all(u8::is_ascii_whitespace));
        let Some(value) = value else {
            return Ok(self.updates.remove(&key).is_some());
        };
        let update: Update = serde_json::from_slice(value).map_err(|e| RecordError::Json {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        // The entry alone must make a valid inventory (non-empty pattern, a glob that compiles).
        let (ids, secrets) = match &update {
            Update::Identity(e) => (vec![e.clone()], Vec::new()),
            Update::Secret(e) => (Vec::new(), vec![e.clone()]),
        };
        Inventory::new(ids, secrets, Path::new(&key)).map_err(|e| RecordError::Entry {
            key: key.clone(),
            reason: entry_reason(e),
        })?;
        if !self.updates.contains_key(&key) && self.updates.len() >= self.max_entries {
            return Err(RecordError::Full {
                key,
                max: self.max_entries,
            });
        }
        let changed = self.updates.get(&key) != Some(&update);
        self.updates.insert(key, update);
        Ok(changed)
    }

    /// Updates held.
    pub fn len(&self) -> usize {
        self.updates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// The inventory now: updates by key, then the file's entries.
    pub fn build(&self) -> Result<Inventory, InventoryError> {
        let mut ids = Vec::new();
        let mut secrets = Vec::new();
        for u in self.updates.values() {
            match u {
                Update::Identity(e) => ids.push(e.clone()),
                Update::Secret(e) => secrets.push(e.clone()),
            }
        }
        if let Some(base) = &self.base {
            let (i, s) = base.entries();
            ids.extend_from_slice(i);
            secrets.extend_from_slice(s);
        }
        Inventory::new(ids, secrets, Path::new("inventory topic"))
    }
}

fn entry_reason(e: InventoryError) -> String {
    match e {
        InventoryError::Entry { message, .. } => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DANA: &str = "arn:aws:iam::111122223333:user/dana";

    fn file() -> Arc<Inventory> {
        let e: IdentityEntry =
            serde_json::from_str(&format!(r#"{{"match": "{DANA}", "privilege": "low"}}"#)).unwrap();
        Arc::new(Inventory::new(vec![e], Vec::new(), Path::new("f.yaml")).unwrap())
    }

    fn privilege(o: &Overlay) -> Option<String> {
        let inv = o.build().unwrap();
        inv.identity(DANA)
            .and_then(|e| e.privilege)
            .map(|p| format!("{p:?}"))
    }

    #[test]
    fn an_update_overrides_the_file_and_a_delete_falls_back_to_it() {
        let mut o = Overlay::new(Some(file()), 10);
        assert_eq!(privilege(&o).as_deref(), Some("Low"));
        let v = format!(r#"{{"identity": {{"match": "{DANA}", "privilege": "admin"}}}}"#);
        assert!(o.apply(Some(b"dana"), Some(v.as_bytes())).unwrap());
        assert_eq!(privilege(&o).as_deref(), Some("Admin"));
        // The same record again changes nothing.
        assert!(!o.apply(Some(b"dana"), Some(v.as_bytes())).unwrap());
        assert!(o.apply(Some(b"dana"), None).unwrap());
        assert_eq!(privilege(&o).as_deref(), Some("Low"));
        assert!(!o.apply(Some(b"dana"), Some(b"")).unwrap(), "already gone");
    }

    #[test]
    fn secrets_become_canaries_live() {
        let mut o = Overlay::new(None, 10);
        assert!(!o.build().unwrap().is_canary_secret("prod/canary/db"));
        o.apply(
            Some(b"s1"),
            Some(br#"{"secret": {"match": "prod/canary/*", "canary": true}}"#),
        )
        .unwrap();
        assert!(o.build().unwrap().is_canary_secret("prod/canary/db"));
    }

    #[test]
    fn bad_records_are_refused_with_their_key_and_change_nothing() {
        let mut o = Overlay::new(Some(file()), 10);
        let err = o.apply(Some(b"k1"), Some(b"{not json")).unwrap_err();
        assert!(
            matches!(&err, RecordError::Json { key, .. } if key == "k1"),
            "{err}"
        );
        let err = o
            .apply(Some(b"k2"), Some(br#"{"identity": {"match": "  "}}"#))
            .unwrap_err();
        assert!(
            err.to_string().contains("`k2`") && err.to_string().contains("empty"),
            "{err}"
        );
        let err = o
            .apply(
                Some(b"k3"),
                Some(br#"{"identity": {"match": "x", "colour": 1}}"#),
            )
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        assert_eq!(o.apply(None, Some(b"{}")).unwrap_err(), RecordError::NoKey);
        assert!(o.is_empty());
        assert_eq!(privilege(&o).as_deref(), Some("Low"));
    }

    #[test]
    fn new_keys_past_the_bound_are_refused_but_known_keys_still_change() {
        let mut o = Overlay::new(None, 2);
        let rec = |p: &str| format!(r#"{{"identity": {{"match": "{p}"}}}}"#);
        o.apply(Some(b"a"), Some(rec("a").as_bytes())).unwrap();
        o.apply(Some(b"b"), Some(rec("b").as_bytes())).unwrap();
        let err = o.apply(Some(b"c"), Some(rec("c").as_bytes())).unwrap_err();
        assert_eq!(
            err,
            RecordError::Full {
                key: "c".into(),
                max: 2
            }
        );
        assert!(o.apply(Some(b"a"), Some(rec("a2").as_bytes())).unwrap());
        assert!(o.apply(Some(b"b"), None).unwrap());
        o.apply(Some(b"c"), Some(rec("c").as_bytes())).unwrap();
        assert_eq!(o.len(), 2);
        let inv = o.build().unwrap();
        assert!(inv.identity("a2").is_some() && inv.identity("c").is_some());
        assert!(inv.identity("a").is_none() && inv.identity("b").is_none());
    }
}
