//! Processing pipelines: pySigma-compatible YAML that adapts rules to how events are actually
//! shaped, so a SigmaHQ rule written for raw CloudTrail or flat Windows runs on ECS or OCSF
//! events. Loaded with `--pipeline FILE` (repeatable) and applied to every rule right after it
//! is parsed, in pipeline priority order (ties: the order given), item by item.
//!
//! ```yaml
//! name: CloudTrail to ECS
//! priority: 20
//! vars:                                  # values of `expand` placeholders
//!   Admins: [alice, bob]
//! transformations:
//!   - id: ct_fields
//!     type: field_name_mapping           # one name to one or several (OR) names
//!     mapping: {eventName: event.action, sourceIPAddress: [source.ip, source.address]}
//!     rule_conditions: [{type: logsource, product: aws, service: cloudtrail}]
//! ```
//!
//! Supported transformation types: `field_name_mapping`, `field_name_prefix_mapping`,
//! `field_name_prefix`, `field_name_suffix`, `add_condition`, `change_logsource`,
//! `value_placeholders`, `wildcard_placeholders`, `rule_failure`. Rule conditions: `logsource`
//! and `tag`, combined with `rule_cond_op: and|or` and negated with `rule_cond_not`. Field name
//! conditions: `include_fields` and `exclude_fields` (plain names). Anything else pySigma knows
//! (`query_expression_placeholders`, detection-item conditions, ...) fails the load with its
//! name: a transformation skipped silently would run rules on the wrong fields.
//!
//! Field mappings apply to detection items, `fieldref` values and, for items without rule
//! conditions, to correlation `group-by`, `condition.field` and alias fields (correlations
//! have no log source to test). The engine's own `credtrail.identity` is never mapped.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use super::rule::{Body, Detection, LogSource, Rule, Selection};
use super::value::{self, FieldItem, Pattern, Placeholders};
use super::yaml::{self, Loc, Node, YamlBudget};
use super::{LoadError, LoadErrorKind};
use crate::sigma::condition::Cond;

mod parse;

/// Why a pipeline file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{loc}: pipeline: {message}", file.display())]
pub struct PipelineError {
    pub file: PathBuf,
    pub loc: Loc,
    pub message: String,
}

/// A loaded processing pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub name: String,
    pub priority: i64,
    pub file: PathBuf,
    pub vars: Placeholders,
    pub items: Vec<Item>,
    /// Hash of the pipeline's content, mixed into the version of every rule it changes.
    pub version: u64,
}

/// One processing item: a transformation and when it applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: Option<String>,
    pub transform: Transform,
    pub rule_conditions: Vec<RuleCondition>,
    /// `rule_cond_op: or` (default and).
    pub any_condition: bool,
    /// `rule_cond_not`.
    pub negate_conditions: bool,
    pub field_filter: Option<FieldFilter>,
    pub loc: Loc,
}

/// The transformations credtrail applies.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    FieldMap(Vec<(String, Vec<String>)>),
    FieldPrefixMap(Vec<(String, String)>),
    FieldPrefix(String),
    FieldSuffix(String),
    /// Conditions ANDed to the rule's (field spec, value).
    AddCondition(Vec<(String, Node)>),
    ChangeLogsource(LogSource),
    /// Placeholder names (empty: all) whose values come from `vars`.
    ValuePlaceholders {
        include: Vec<String>,
    },
    /// Placeholder names (empty: all) replaced with `*`.
    WildcardPlaceholders {
        include: Vec<String>,
    },
    RuleFailure(String),
}

/// A condition on the rule an item applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleCondition {
    Logsource(LogSource),
    Tag(String),
}

/// Which fields a field transformation touches.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldFilter {
    pub include: bool,
    pub fields: Vec<String>,
}

/// Loads pipeline files, sorted by priority (stable: ties keep the order given).
pub fn load(paths: &[PathBuf], budget: YamlBudget) -> Result<Vec<Pipeline>, PipelineError> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| PipelineError {
            file: p.clone(),
            loc: Loc::default(),
            message: e.to_string(),
        })?;
        out.push(parse_text(p, &text, budget)?);
    }
    out.sort_by_key(|p| p.priority);
    Ok(out)
}

/// Parses one pipeline from `text` as if read from `file`.
pub fn parse_text(file: &Path, text: &str, budget: YamlBudget) -> Result<Pipeline, PipelineError> {
    let docs = yaml::parse_documents(text, budget).map_err(|e| PipelineError {
        file: file.to_path_buf(),
        loc: e.loc,
        message: format!("invalid YAML: {}", e.message),
    })?;
    let [doc] = docs.as_slice() else {
        return Err(PipelineError {
            file: file.to_path_buf(),
            loc: Loc::default(),
            message: format!("expected one YAML document, found {}", docs.len()),
        });
    };
    let mut p = parse::pipeline(file, doc)?;
    p.version = xxh3_64(text.as_bytes());
    Ok(p)
}

/// The `expand` placeholder values the pipelines define (see [`Placeholders`]): the
/// `value_placeholders` items' variables, and `*` for `wildcard_placeholders`.
pub fn placeholders(pipelines: &[Pipeline]) -> Placeholders {
    let mut out = Placeholders::new();
    for p in pipelines {
        for item in &p.items {
            match &item.transform {
                Transform::ValuePlaceholders { include } => {
                    for (name, values) in &p.vars {
                        if include.is_empty() || include.contains(name) {
                            out.insert(name.clone(), values.clone());
                        }
                    }
                }
                Transform::WildcardPlaceholders { include } => {
                    if include.is_empty() {
                        out.entry(value::ANY_PLACEHOLDER.into())
                            .or_insert_with(|| vec!["*".into()]);
                    }
                    for name in include {
                        out.entry(name.clone()).or_insert_with(|| vec!["*".into()]);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Applies every pipeline to `rule`. An error (a `rule_failure`, an expansion too large) names
/// the rule and the pipeline item.
pub fn apply(pipelines: &[Pipeline], rule: &mut Rule) -> Result<(), LoadError> {
    let mut changed = Vec::new();
    for p in pipelines {
        for item in &p.items {
            if !applies(item, rule) {
                continue;
            }
            let err = |message: String| LoadError {
                declared: Vec::new(),
                file: rule.meta.file.clone(),
                loc: rule.meta.loc,
                rule: Some(rule.meta.label()),
                kind: LoadErrorKind::Unsupported(format!(
                    "pipeline {} item {}: {message}",
                    p.file.display(),
                    item.id.as_deref().unwrap_or("(no id)")
                )),
            };
            match &item.transform {
                Transform::RuleFailure(message) => return Err(err(message.clone())),
                Transform::ChangeLogsource(ls) => {
                    let target = &mut rule.meta.logsource;
                    if ls.product.is_some() {
                        target.product = ls.product.clone();
                    }
                    if ls.category.is_some() {
                        target.category = ls.category.clone();
                    }
                    if ls.service.is_some() {
                        target.service = ls.service.clone();
                    }
                }
                Transform::AddCondition(conditions) => {
                    if let Body::Detection(det) = &mut rule.body {
                        add_condition(det, conditions, item.loc).map_err(err)?;
                    }
                }
                Transform::ValuePlaceholders { .. } | Transform::WildcardPlaceholders { .. } => {
                    continue;
                }
                _ => match &mut rule.body {
                    Body::Detection(det) => map_detection(det, item).map_err(err)?,
                    Body::Filter(f) => map_detection(&mut f.detection, item).map_err(err)?,
                    Body::Correlation(c) => {
                        if item.rule_conditions.is_empty() {
                            for f in c.group_by.iter_mut().chain(c.field.iter_mut()) {
                                *f = first(map_name(item, f));
                            }
                            for a in &mut c.aliases {
                                for (_, f) in &mut a.fields {
                                    *f = first(map_name(item, f));
                                }
                            }
                        }
                    }
                },
            }
            changed.push(p.version);
        }
    }
    if !changed.is_empty() {
        changed.dedup();
        let mut bytes = rule.meta.version.clone().into_bytes();
        for v in changed {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        rule.meta.version = format!("{:016x}", xxh3_64(&bytes));
    }
    Ok(())
}

fn first(mut names: Vec<String>) -> String {
    names.swap_remove(0)
}

fn applies(item: &Item, rule: &Rule) -> bool {
    if item.rule_conditions.is_empty() {
        return true;
    }
    let test = |c: &RuleCondition| match c {
        RuleCondition::Logsource(ls) => {
            let same = |want: &Option<String>, have: &Option<String>| match want {
                None => true,
                Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
            };
            let have = &rule.meta.logsource;
            same(&ls.product, &have.product)
                && same(&ls.category, &have.category)
                && same(&ls.service, &have.service)
        }
        RuleCondition::Tag(t) => rule.meta.tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
    };
    let hit = if item.any_condition {
        item.rule_conditions.iter().any(test)
    } else {
        item.rule_conditions.iter().all(test)
    };
    hit != item.negate_conditions
}

/// The names `field` becomes under `item` (itself when the item does not touch it).
fn map_name(item: &Item, field: &str) -> Vec<String> {
    if field == crate::vocab::IDENTITY_FIELD {
        return vec![field.to_string()];
    }
    if let Some(f) = &item.field_filter
        && f.fields.iter().any(|x| x == field) != f.include
    {
        return vec![field.to_string()];
    }
    match &item.transform {
        Transform::FieldMap(map) => map
            .iter()
            .find(|(from, _)| from == field)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| vec![field.to_string()]),
        Transform::FieldPrefixMap(map) => map
            .iter()
            .find_map(|(from, to)| {
                field
                    .strip_prefix(from.as_str())
                    .map(|rest| format!("{to}{rest}"))
            })
            .map(|f| vec![f])
            .unwrap_or_else(|| vec![field.to_string()]),
        Transform::FieldPrefix(prefix) => vec![format!("{prefix}{field}")],
        Transform::FieldSuffix(suffix) => vec![format!("{field}{suffix}")],
        _ => vec![field.to_string()],
    }
}

/// Bound on the alternatives one selection may grow into when fields map to several names.
const MAX_ALTERNATIVES: usize = 4096;

fn map_detection(det: &mut Detection, item: &Item) -> Result<(), String> {
    for sel in &mut det.selections {
        let mut grown: Vec<Vec<FieldItem>> = Vec::new();
        for alt in &sel.alternatives {
            // Each item may become several (OR): an AND of ORs, distributed into alternatives.
            let mut expanded: Vec<Vec<FieldItem>> = vec![Vec::new()];
            for fi in alt {
                let mut variants = Vec::new();
                for name in fi
                    .field
                    .as_deref()
                    .map(|f| map_name(item, f))
                    .unwrap_or_default()
                {
                    let mut v = fi.clone();
                    v.field = Some(name);
                    variants.push(v);
                }
                if fi.field.is_none() {
                    variants.push(fi.clone());
                }
                for v in &mut variants {
                    for p in &mut v.patterns {
                        if let Pattern::FieldRef { field, .. } = p {
                            *field = first(map_name(item, field));
                        }
                    }
                }
                let mut next = Vec::with_capacity(expanded.len() * variants.len());
                for e in &expanded {
                    for v in &variants {
                        let mut e2 = e.clone();
                        e2.push(v.clone());
                        next.push(e2);
                    }
                }
                if next.len() > MAX_ALTERNATIVES {
                    return Err(format!(
                        "mapping fields to several names grows selection `{}` past {MAX_ALTERNATIVES} alternatives",
                        sel.name
                    ));
                }
                expanded = next;
            }
            grown.extend(expanded);
        }
        sel.alternatives = grown;
    }
    Ok(())
}

fn add_condition(
    det: &mut Detection,
    conditions: &[(String, Node)],
    loc: Loc,
) -> Result<(), String> {
    let mut items = Vec::new();
    for (spec, value) in conditions {
        let mut fi = value::compile_item(spec, value, &Placeholders::new())
            .map_err(|e| format!("add_condition `{spec}`: {e:?}"))?;
        fi.loc = loc;
        items.push(fi);
    }
    let index = det.selections.len();
    det.selections.push(Selection {
        name: format!("_pipeline_condition_{index}"),
        alternatives: vec![items],
        loc,
    });
    let original = std::mem::replace(&mut det.condition, Cond::Or(Vec::new()));
    det.condition = Cond::And(vec![original, Cond::Sel(index)]);
    Ok(())
}

#[cfg(test)]
mod tests;
