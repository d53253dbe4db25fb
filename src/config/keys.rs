//! The keys each section of `credtrail.toml` knows, for an unknown key's "did you mean".
//!
//! serde's own error for `[engine] shard = 2` lists every field of the section and, read from
//! the merged table, says neither where the key is nor which one was meant. The sections'
//! field names are read here from the [`raw`](super::raw) structs themselves (a serde
//! deserializer that only records the fields `deserialize_struct` is given), so the list cannot
//! drift from what the parser accepts; the line is found in the file's text.

use serde::de::{self, Deserialize, Visitor};

use super::raw::{
    RawCluster, RawConfig, RawEngine, RawInput, RawKafka, RawLog, RawMetrics, RawRules,
    RawShutdown, RawSigning,
};
use super::scoring::RawScoring;
use crate::sigma::suggest;

/// A key no section knows: its dotted path, its line in the file when it is written there
/// (not when it came from the environment), and the closest known key of its section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    pub key: String,
    pub line: Option<usize>,
    /// `; did you mean `x`?` or empty.
    pub hint: String,
}

/// The first unknown key of `table` (sections in file order of the structs, keys sorted), or
/// `None` when every key of every section is known. Maps of free-form keys (librdkafka
/// properties) are not checked here; their own validation does.
pub fn find_unknown(table: &toml::Table, text: &str) -> Option<UnknownKey> {
    let unknown = |section: &str, key: &str, known: &[&str]| UnknownKey {
        key: if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        },
        line: line_of(text, section, key),
        hint: suggest::hint(key, known.iter().copied()),
    };
    let top = fields::<RawConfig>();
    for key in table.keys() {
        if !top.contains(&key.as_str()) {
            return Some(unknown("", key, top));
        }
    }
    for (section, known) in sections() {
        let tables: Vec<&toml::Table> = match table.get(section) {
            Some(toml::Value::Table(t)) => vec![t],
            Some(toml::Value::Array(items)) => items.iter().filter_map(|v| v.as_table()).collect(),
            _ => Vec::new(),
        };
        for t in tables {
            if let Some(key) = t.keys().find(|k| !known.contains(&k.as_str())) {
                return Some(unknown(section, key, known));
            }
        }
    }
    None
}

/// Every section and the keys its struct accepts.
fn sections() -> [(&'static str, &'static [&'static str]); 10] {
    [
        ("kafka", fields::<RawKafka>()),
        ("input", fields::<RawInput>()),
        ("rules", fields::<RawRules>()),
        ("engine", fields::<RawEngine>()),
        ("scoring", fields::<RawScoring>()),
        ("shutdown", fields::<RawShutdown>()),
        ("metrics", fields::<RawMetrics>()),
        ("signing", fields::<RawSigning>()),
        ("log", fields::<RawLog>()),
        ("cluster", fields::<RawCluster>()),
    ]
}

/// The line (1-based) where `key` of `section` is written: under its `[section]` or
/// `[[section]]` header, or as `section.key =` at the top.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            continue;
        }
        let Some((written, _)) = line.split_once('=') else {
            continue;
        };
        let written = written.trim().trim_matches('"');
        let full = |s: &str, k: &str| {
            if s.is_empty() {
                k.to_string()
            } else {
                format!("{s}.{k}")
            }
        };
        if full(&current, written) == full(section, key) {
            return Some(n + 1);
        }
    }
    None
}

/// The field names `T`'s derived `Deserialize` passes to `deserialize_struct`.
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut recorder = FieldRecorder(&[]);
    let _ = T::deserialize(&mut recorder);
    recorder.0
}

struct FieldRecorder(&'static [&'static str]);

#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fields recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Recorded
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldRecorder {
    type Error = Recorded;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Recorded> {
        self.0 = fields;
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_the_structs() {
        assert!(fields::<RawEngine>().contains(&"shards"));
        assert!(fields::<RawConfig>().contains(&"engine"));
    }

    #[test]
    fn the_line_is_found_under_its_header_or_dotted() {
        let text = "[kafka]\nbrokers = \"b\"\n[engine]\n  shard = 2\n";
        assert_eq!(line_of(text, "engine", "shard"), Some(4));
        assert_eq!(line_of("engine.shard = 2\n", "engine", "shard"), Some(1));
        assert_eq!(line_of(text, "engine", "workers"), None);
    }
}
