//! The YAML of rule files as a tree whose every node knows its line and column, parsed with
//! serde-saphyr under budgets (rule files are untrusted input: a hostile file must not exhaust
//! memory with alias bombs or deep nesting) and with duplicate keys rejected.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A line and column in a rule file (1-based; 0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub line: u64,
    pub col: u64,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

/// A YAML value. Mappings keep their order (Sigma's `1 of selection*` and error messages follow
/// the file).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What a person would call this kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Scalars as text (numbers and booleans spelled as in YAML); `None` for containers and null.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            loc: Loc {
                line: spanned.referenced.line(),
                col: spanned.referenced.column(),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            out.push(n);
        }
        Ok(Value::Seq(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let v = map.next_value::<Node>()?;
            out.push((k, v));
        }
        Ok(Value::Map(out))
    }
}

/// Budgets for one rule file.
#[derive(Clone, Copy, Debug)]
pub struct YamlBudget {
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_aliases: usize,
    pub max_documents: usize,
    pub max_bytes: usize,
}

impl Default for YamlBudget {
    fn default() -> Self {
        YamlBudget {
            max_depth: 32,
            max_nodes: 100_000,
            max_aliases: 100,
            max_documents: 1_000,
            max_bytes: 4 << 20,
        }
    }
}

/// A YAML syntax or budget error with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub loc: Loc,
    pub message: String,
}

/// Parses every document of `text`.
pub fn parse_documents(text: &str, budget: YamlBudget) -> Result<Vec<Node>, YamlError> {
    if text.len() > budget.max_bytes {
        return Err(YamlError {
            loc: Loc::default(),
            message: format!(
                "file is {} bytes, over the limit of {}",
                text.len(),
                budget.max_bytes
            ),
        });
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: budget.max_depth,
            max_nodes: budget.max_nodes,
            max_aliases: budget.max_aliases,
            max_documents: budget.max_documents,
        },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    let docs: Vec<Node> = serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
        let loc = e
            .location()
            .map(|l| Loc {
                line: l.line(),
                col: l.column(),
            })
            .unwrap_or_default();
        YamlError {
            loc,
            message: first_line(&e.to_string()),
        }
    })?;
    // Empty documents (a trailing `---`) are not rules.
    Ok(docs
        .into_iter()
        .filter(|d| d.value != Value::Null)
        .collect())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_where_they_are() {
        let docs = parse_documents(
            "title: x\ndetection:\n  sel:\n    a: 1\n",
            YamlBudget::default(),
        )
        .unwrap();
        let sel = docs[0].get("detection").unwrap().get("sel").unwrap();
        let a = sel.get("a").unwrap();
        assert_eq!(a.value, Value::Int(1));
        assert_eq!(a.loc.line, 4);
    }

    #[test]
    fn multiple_documents_and_empty_ones() {
        let docs = parse_documents("a: 1\n---\nb: 2\n---\n", YamlBudget::default()).unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn duplicate_keys_are_rejected_with_a_location() {
        let err = parse_documents("title: a\ntitle: b\n", YamlBudget::default()).unwrap_err();
        assert!(
            err.message.to_lowercase().contains("duplicate"),
            "{}",
            err.message
        );
        assert_eq!(err.loc.line, 2);
    }

    #[test]
    fn alias_bombs_exceed_the_budget() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        let budget = YamlBudget {
            max_aliases: 20,
            ..YamlBudget::default()
        };
        assert!(parse_documents(bomb, budget).is_err());
    }

    #[test]
    fn deep_nesting_exceeds_the_budget() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_documents(&deep, YamlBudget::default()).is_err());
    }
}
