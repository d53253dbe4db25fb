//! A Sigma rule document read into a typed rule: metadata, and either a detection (search
//! identifiers and a condition) or a correlation. Every check that needs only the document
//! happens here, with the location of the offending node.

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::condition::{self, Cond, CondError};
use super::correlation::{self, Correlation};
use super::error::{LoadError, LoadErrorKind};
use super::extension;
use super::filter::{self, Filter};
use super::value::{self, FieldItem, ItemError, Placeholders};
use super::yaml::{Loc, Node, Value};

/// The severity a rule declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// `logsource`: what kind of log a rule is written for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

/// What every rule has besides its body.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleMeta {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub level: Option<Level>,
    pub tags: Vec<String>,
    pub falsepositives: Vec<String>,
    pub references: Vec<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub logsource: LogSource,
    /// The file the rule came from and where its document starts.
    pub file: std::path::PathBuf,
    pub loc: Loc,
    /// A hash of the rule's content: the version an alert quotes, so an analyst can tell
    /// which revision of a rule decided.
    pub version: String,
}

impl RuleMeta {
    /// How a rule is named in messages: its id, else its title.
    pub fn label(&self) -> String {
        match &self.id {
            Some(id) => format!("{id} ({})", self.title),
            None => format!("'{}'", self.title),
        }
    }
}

/// One search identifier of a detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub name: String,
    /// Alternatives (a list of maps is OR), each an AND of field items.
    pub alternatives: Vec<Vec<FieldItem>>,
    pub loc: Loc,
}

/// A detection section.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub selections: Vec<Selection>,
    pub condition: Cond,
    pub condition_text: String,
}

/// A rule's body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Detection(Detection),
    Correlation(Correlation),
    /// A Sigma filter (filters specification v2): merged into the detections it names when
    /// the catalog is resolved, so a resolved [`super::Catalog`] never holds one.
    Filter(Filter),
}

/// A parsed Sigma rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub meta: RuleMeta,
    pub body: Body,
}

impl Rule {
    /// Number of compiled patterns (values after modifiers made their variants) the rule holds.
    pub fn pattern_count(&self) -> usize {
        let det = match &self.body {
            Body::Detection(d) => d,
            Body::Filter(f) => &f.detection,
            Body::Correlation(_) => return 0,
        };
        det.selections
            .iter()
            .flat_map(|s| s.alternatives.iter().flatten())
            .map(|i| i.patterns.len())
            .sum()
    }
}

/// Context for errors while parsing one document.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub rule: Option<String>,
}

impl Ctx<'_> {
    pub fn err(&self, loc: Loc, kind: LoadErrorKind) -> LoadError {
        LoadError {
            declared: Vec::new(),
            file: self.file.to_path_buf(),
            loc,
            rule: self.rule.clone(),
            kind,
        }
    }
}

/// Parses one YAML document of `file` into a rule. `text` is the document's source text, used
/// for the version hash.
pub fn parse_rule(file: &Path, doc: &Node, placeholders: &Placeholders) -> Result<Rule, LoadError> {
    let mut ctx = Ctx { file, rule: None };
    if doc.as_map().is_none() {
        return Err(ctx.err(
            doc.loc,
            LoadErrorKind::WrongType {
                field: "rule".into(),
                expected: "a mapping",
                found: doc.value.kind(),
            },
        ));
    }
    let id = opt_string(&ctx, doc, "id")?;
    let title = opt_string(&ctx, doc, "title")?;
    ctx.rule = id.clone().or_else(|| title.clone());
    if let Some(action) = doc.get("action") {
        return Err(ctx.err(
            action.loc,
            LoadErrorKind::Unsupported(
                "`action` rule collections (Sigma v1); split them into separate rules".into(),
            ),
        ));
    }
    let title = title.ok_or_else(|| ctx.err(doc.loc, LoadErrorKind::Missing("title")))?;
    let level = match doc.get("level") {
        None => None,
        Some(n) => {
            let s = n
                .as_str()
                .ok_or_else(|| wrong(&ctx, n, "level", "a string"))?;
            Some(Level::parse(s).ok_or_else(|| {
                ctx.err(
                    n.loc,
                    LoadErrorKind::InvalidValue {
                        field: "level".into(),
                        reason: format!(
                            "`{s}` is not informational, low, medium, high or critical"
                        ),
                    },
                )
            })?)
        }
    };
    let logsource = match doc.get("logsource") {
        None => LogSource::default(),
        Some(ls) => {
            if ls.as_map().is_none() {
                return Err(wrong(&ctx, ls, "logsource", "a mapping"));
            }
            LogSource {
                product: opt_string(&ctx, ls, "product")?,
                service: opt_string(&ctx, ls, "service")?,
                category: opt_string(&ctx, ls, "category")?,
            }
        }
    };
    let meta = RuleMeta {
        title,
        id,
        name: opt_string(&ctx, doc, "name")?,
        description: opt_string(&ctx, doc, "description")?,
        status: opt_string(&ctx, doc, "status")?,
        level,
        tags: string_list(&ctx, doc, "tags")?,
        falsepositives: string_list(&ctx, doc, "falsepositives")?,
        references: string_list(&ctx, doc, "references")?,
        author: opt_string(&ctx, doc, "author")?,
        date: opt_string(&ctx, doc, "date")?,
        modified: opt_string(&ctx, doc, "modified")?,
        logsource,
        file: file.to_path_buf(),
        loc: doc.loc,
        version: format!("{:016x}", content_hash(doc)),
    };
    if doc.get("correlation").is_none()
        && let Some(ext) = doc.get(extension::KEY)
    {
        return Err(ctx.err(
            ext.loc,
            LoadErrorKind::Extension(format!(
                "`{}` applies to correlation rules, not detections or filters",
                extension::KEY
            )),
        ));
    }
    let body = match (
        doc.get("detection"),
        doc.get("correlation"),
        doc.get("filter"),
    ) {
        (Some(d), None, None) => Body::Detection(parse_detection(&ctx, d, placeholders, &[])?),
        (None, Some(c), None) => {
            let mut corr = correlation::parse(&ctx, c)?;
            if let Some(ext) = doc.get(extension::KEY) {
                corr.ext = Box::new(extension::parse(
                    &ctx,
                    ext,
                    corr.kind,
                    corr.rules.len(),
                    corr.timespan,
                )?);
            }
            Body::Correlation(corr)
        }
        (None, None, Some(f)) => Body::Filter(filter::parse(&ctx, f, placeholders)?),
        (None, None, None) => return Err(ctx.err(doc.loc, LoadErrorKind::Missing("detection"))),
        (_, _, _) => {
            return Err(ctx.err(
                doc.loc,
                LoadErrorKind::Unsupported(
                    "a rule with more than one of `detection`, `correlation`, `filter`".into(),
                ),
            ));
        }
    };
    Ok(Rule { meta, body })
}

/// A hash of a document's content, independent of where it sits in its file.
fn content_hash(doc: &Node) -> u64 {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Null => out.push(0),
            Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            Value::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(3);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                out.push(4);
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Seq(items) => {
                out.push(5);
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                items.iter().for_each(|i| write(&i.value, out));
            }
            Value::Map(entries) => {
                out.push(6);
                out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
                for (k, v) in entries {
                    write(&k.value, out);
                    write(&v.value, out);
                }
            }
        }
    }
    let mut bytes = Vec::new();
    write(&doc.value, &mut bytes);
    xxh3_64(&bytes)
}

fn wrong(ctx: &Ctx<'_>, n: &Node, field: &str, expected: &'static str) -> LoadError {
    ctx.err(
        n.loc,
        LoadErrorKind::WrongType {
            field: field.into(),
            expected,
            found: n.value.kind(),
        },
    )
}

pub(crate) fn opt_string(
    ctx: &Ctx<'_>,
    map: &Node,
    key: &str,
) -> Result<Option<String>, LoadError> {
    match map.get(key) {
        None => Ok(None),
        Some(n) => match &n.value {
            Value::Null => Ok(None),
            // Dates and numeric ids are written unquoted in the wild; keep their text.
            Value::Str(_) | Value::Int(_) | Value::Float(_) => Ok(n.scalar_text()),
            _ => Err(wrong(ctx, n, key, "a string")),
        },
    }
}

pub(crate) fn string_list(ctx: &Ctx<'_>, map: &Node, key: &str) -> Result<Vec<String>, LoadError> {
    match map.get(key) {
        None => Ok(Vec::new()),
        Some(n) => match &n.value {
            Value::Null => Ok(Vec::new()),
            Value::Str(s) => Ok(vec![s.clone()]),
            Value::Seq(items) => items
                .iter()
                .map(|i| {
                    i.scalar_text()
                        .ok_or_else(|| wrong(ctx, i, key, "a list of strings"))
                })
                .collect(),
            _ => Err(wrong(ctx, n, key, "a list of strings")),
        },
    }
}

/// Parses a detection mapping; keys in `skip` belong to the caller (a filter's `rules`).
pub(crate) fn parse_detection(
    ctx: &Ctx<'_>,
    det: &Node,
    placeholders: &Placeholders,
    skip: &[&str],
) -> Result<Detection, LoadError> {
    let Some(entries) = det.as_map() else {
        return Err(wrong(ctx, det, "detection", "a mapping"));
    };
    let mut selections = Vec::new();
    let mut condition_node = None;
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            return Err(wrong(ctx, k, "detection key", "a string"));
        };
        match name {
            _ if skip.contains(&name) => {}
            "condition" => condition_node = Some(v),
            "timeframe" => {
                return Err(ctx.err(
                    k.loc,
                    LoadErrorKind::Unsupported(
                        "`timeframe` in a detection (Sigma v1); use a correlation rule".into(),
                    ),
                ));
            }
            _ => selections.push(parse_selection(ctx, name, v, placeholders)?),
        }
    }
    let cond_node = condition_node
        .ok_or_else(|| ctx.err(det.loc, LoadErrorKind::Missing("detection.condition")))?;
    let names: Vec<String> = selections.iter().map(|s| s.name.clone()).collect();
    let texts: Vec<(&str, Loc)> = match &cond_node.value {
        Value::Str(s) => vec![(s.as_str(), cond_node.loc)],
        // A list of conditions (Sigma v1) means any of them.
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| (s, i.loc))
                    .ok_or_else(|| wrong(ctx, i, "condition", "a string"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(wrong(ctx, cond_node, "condition", "a string")),
    };
    let mut conds = Vec::new();
    for (text, loc) in &texts {
        let c = condition::parse(text, &names).map_err(|e| {
            let kind = match e {
                CondError::UnknownIdentifier(id) => LoadErrorKind::UnknownIdentifier(id),
                CondError::Syntax(reason) => LoadErrorKind::Condition {
                    condition: text.to_string(),
                    reason,
                },
                CondError::Unsupported(what) => LoadErrorKind::Unsupported(what),
            };
            ctx.err(*loc, kind)
        })?;
        conds.push(c);
    }
    let condition = if conds.len() == 1 {
        conds.remove(0)
    } else {
        Cond::Or(conds)
    };
    let condition_text = texts
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(" | ");
    Ok(Detection {
        selections,
        condition,
        condition_text,
    })
}

fn parse_selection(
    ctx: &Ctx<'_>,
    name: &str,
    v: &Node,
    placeholders: &Placeholders,
) -> Result<Selection, LoadError> {
    let item = |spec: &str, value: &Node, loc: Loc| -> Result<FieldItem, LoadError> {
        value::compile_item(spec, value, placeholders).map_err(|e| {
            let kind = match e {
                ItemError::UnknownModifier(m) => LoadErrorKind::UnknownModifier {
                    field: spec.into(),
                    hint: super::suggest::hint(&m, super::value::Modifier::NAMES),
                    modifier: m,
                },
                ItemError::Chain(reason) => LoadErrorKind::InvalidModifierChain {
                    field: spec.into(),
                    reason,
                },
                ItemError::Value(reason) => LoadErrorKind::InvalidValue {
                    field: spec.into(),
                    reason,
                },
                ItemError::Unsupported(what) => LoadErrorKind::Unsupported(what),
            };
            ctx.err(loc, kind)
        })
    };
    let map_alternative = |m: &[(Node, Node)]| -> Result<Vec<FieldItem>, LoadError> {
        m.iter()
            .map(|(k, val)| {
                let spec = k
                    .scalar_text()
                    .ok_or_else(|| wrong(ctx, k, "field name", "a string"))?;
                item(&spec, val, k.loc).map(|mut i| {
                    i.loc = k.loc;
                    i
                })
            })
            .collect()
    };
    let alternatives = match &v.value {
        Value::Map(m) => vec![map_alternative(m)?],
        Value::Seq(items)
            if items.iter().all(|i| matches!(i.value, Value::Map(_))) && !items.is_empty() =>
        {
            items
                .iter()
                .map(|i| map_alternative(i.as_map().unwrap_or(&[])))
                .collect::<Result<_, _>>()?
        }
        // A list of plain values is a keyword search.
        Value::Seq(items)
            if items
                .iter()
                .all(|i| !matches!(i.value, Value::Map(_) | Value::Seq(_))) =>
        {
            vec![vec![item("", v, v.loc)?]]
        }
        Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            vec![vec![item("", v, v.loc)?]]
        }
        _ => {
            return Err(wrong(
                ctx,
                v,
                name,
                "a mapping, a list of mappings or a list of keywords",
            ));
        }
    };
    Ok(Selection {
        name: name.to_string(),
        alternatives,
        loc: v.loc,
    })
}
