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

/// One document of a rule file: its tree, or why it could not be read.
#[derive(Clone, Debug, PartialEq)]
pub enum Document {
    Parsed(Node),
    Broken {
        error: YamlError,
        /// The `id:` and `name:` values written at the top level of the document's text,
        /// found without a parser: what references to the rule it would have been use.
        declared: Vec<String>,
    },
}

/// Every document of `text`, each parsed on its own when it must be.
///
/// The stream is parsed whole first. When that fails and the text holds more than one
/// document, each document (split at its `---` marker lines: YAML forbids such a line inside
/// any content, so the split is the parser's own) is parsed alone, with what the documents
/// before it left of the node budget, and its locations are the file's. One broken document
/// then costs only itself: the others load, and its error is reported once, where it is. A
/// file over the byte or document budget is one error, as before.
pub fn parse_each_document(text: &str, budget: YamlBudget) -> Vec<Document> {
    let whole = match parse_documents(text, budget) {
        Ok(docs) => return docs.into_iter().map(Document::Parsed).collect(),
        Err(e) => e,
    };
    let pieces = split_documents(text);
    if pieces.len() < 2 || pieces.len() > budget.max_documents || text.len() > budget.max_bytes {
        return vec![Document::Broken {
            error: whole,
            declared: Vec::new(),
        }];
    }
    let mut nodes_left = budget.max_nodes;
    let mut out = Vec::new();
    for (offset, piece) in pieces {
        let piece_budget = YamlBudget {
            max_nodes: nodes_left,
            ..budget
        };
        match parse_documents(piece, piece_budget) {
            Ok(docs) => {
                for mut d in docs {
                    shift(&mut d, offset);
                    nodes_left = nodes_left.saturating_sub(count_nodes(&d));
                    out.push(Document::Parsed(d));
                }
            }
            Err(mut error) => {
                if error.loc.line > 0 {
                    error.loc.line += offset;
                }
                out.push(Document::Broken {
                    error,
                    declared: declared_names(piece),
                });
            }
        }
    }
    out
}

/// The documents of `text` as (lines before the document, its text), split before every
/// `---` marker line.
fn split_documents(text: &str) -> Vec<(u64, &str)> {
    let mut pieces = Vec::new();
    let (mut start, mut start_line, mut at) = (0usize, 0u64, 0usize);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if marker && at > start {
            pieces.push((start_line, &text[start..at]));
            (start, start_line) = (at, n as u64);
        }
        at += line.len();
    }
    if at > start {
        pieces.push((start_line, &text[start..at]));
    }
    pieces
}

/// `id:` and `name:` values at the start of top-level lines of one document's text.
fn declared_names(piece: &str) -> Vec<String> {
    piece
        .lines()
        .filter_map(|l| l.strip_prefix("id:").or_else(|| l.strip_prefix("name:")))
        .map(|v| {
            let v = v.split(" #").next().unwrap_or(v).trim();
            v.trim_matches(|c| c == '"' || c == '\'').to_string()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Moves every location of `node` down by `lines`.
fn shift(node: &mut Node, lines: u64) {
    if node.loc.line > 0 {
        node.loc.line += lines;
    }
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| shift(n, lines)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            shift(k, lines);
            shift(v, lines);
        }),
        _ => {}
    }
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| count_nodes(k) + count_nodes(v))
            .sum(),
        _ => 0,
    }
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

    /// Issue 10, item 4 (no cascading errors): a broken document costs only itself, and the
    /// documents after it keep the file's line numbers.
    #[test]
    fn one_broken_document_leaves_the_others_parsed_where_they_are() {
        let text = "id: a\ntitle: a\n---\nid: b\ntitle: [unclosed\n---\nid: c\ntitle: c\n";
        let docs = parse_each_document(text, YamlBudget::default());
        assert_eq!(docs.len(), 3, "{docs:?}");
        let Document::Parsed(c) = &docs[2] else {
            panic!("{docs:?}")
        };
        assert_eq!(c.get("title").map(|n| n.loc.line), Some(8));
        match &docs[1] {
            Document::Broken { error, declared } => {
                assert_eq!(declared, &vec!["b".to_string()]);
                assert!((4..=6).contains(&error.loc.line), "{error:?}");
            }
            other => panic!("{other:?}"),
        }
        // A whole file that parses is parsed once, as before.
        assert_eq!(
            parse_each_document("a: 1\n---\nb: 2\n", YamlBudget::default()).len(),
            2
        );
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
