//! Sigma filters (filters specification v2): a document with a `filter` section that names the
//! rules it tunes (`rules`, by id or name), its own search identifiers and a `condition`. A
//! filter removes matches: each named detection's condition becomes
//! `(its condition) and not (the filter's condition)`, as pySigma applies them.
//!
//! Filters are merged into their rules when the catalog is resolved ([`apply`]), so nothing
//! downstream knows they existed except through the rules' content version, which changes with
//! every filter applied (an alert says which revision of the tuning decided).

use super::condition::Cond;
use super::error::{LoadError, LoadErrorKind};
use super::rule::{Body, Ctx, Detection, LogSource, Rule, parse_detection};
use super::value::Placeholders;
use super::yaml::{Loc, Node, Value};

/// A parsed `filter` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// The rules the filter applies to, by id or name, with where each is written.
    pub rules: Vec<(String, Loc)>,
    /// The filter's search identifiers and condition (what to exclude).
    pub detection: Detection,
    pub loc: Loc,
}

pub(crate) fn parse(
    ctx: &Ctx<'_>,
    node: &Node,
    placeholders: &Placeholders,
) -> Result<Filter, LoadError> {
    let wrong = |n: &Node, expected: &'static str| {
        ctx.err(
            n.loc,
            LoadErrorKind::WrongType {
                field: "filter.rules".into(),
                expected,
                found: n.value.kind(),
            },
        )
    };
    if node.as_map().is_none() {
        return Err(ctx.err(
            node.loc,
            LoadErrorKind::WrongType {
                field: "filter".into(),
                expected: "a mapping",
                found: node.value.kind(),
            },
        ));
    }
    let rules_node = node
        .get("rules")
        .ok_or_else(|| ctx.err(node.loc, LoadErrorKind::Missing("filter.rules")))?;
    let rules = match &rules_node.value {
        Value::Str(s) => vec![(s.clone(), rules_node.loc)],
        Value::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.scalar_text()
                    .map(|s| (s, i.loc))
                    .ok_or_else(|| wrong(i, "a rule id or name"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(wrong(rules_node, "a non-empty list of rule ids or names")),
    };
    let detection = parse_detection(ctx, node, placeholders, &["rules"])?;
    Ok(Filter {
        rules,
        detection,
        loc: node.loc,
    })
}

/// Merges every filter of `rules` into the detections it names and removes the filters.
/// A reference to no loaded rule, to a correlation, or to a rule whose log source the filter's
/// does not cover is an error: a filter that silently tunes nothing is a missed exclusion.
///
/// A reference in `unloaded` (a rule whose own error is already reported) is skipped.
pub fn apply(
    rules: Vec<Rule>,
    unloaded: &std::collections::HashSet<String>,
    errors: &mut Vec<LoadError>,
) -> Vec<Rule> {
    let (filters, mut rules): (Vec<Rule>, Vec<Rule>) = rules
        .into_iter()
        .partition(|r| matches!(r.body, Body::Filter(_)));
    for f in &filters {
        let Body::Filter(filter) = &f.body else {
            continue;
        };
        for (reference, loc) in &filter.rules {
            let err = |kind| LoadError {
                declared: Vec::new(),
                file: f.meta.file.clone(),
                loc: *loc,
                rule: Some(f.meta.label()),
                kind,
            };
            let target = rules.iter_mut().find(|r| {
                r.meta.id.as_deref() == Some(reference) || r.meta.name.as_deref() == Some(reference)
            });
            let Some(target) = target else {
                if unloaded.contains(reference) {
                    continue;
                }
                let names = rules
                    .iter()
                    .flat_map(|r| r.meta.id.iter().chain(r.meta.name.iter()))
                    .map(String::as_str);
                errors.push(err(LoadErrorKind::UnknownRuleReference {
                    reference: reference.clone(),
                    hint: super::suggest::hint(reference, names),
                }));
                continue;
            };
            if !covers(&f.meta.logsource, &target.meta.logsource) {
                errors.push(err(LoadErrorKind::InvalidValue {
                    field: "filter.rules".into(),
                    reason: format!(
                        "the filter's logsource {} does not cover the logsource {} of rule {}",
                        describe(&f.meta.logsource),
                        describe(&target.meta.logsource),
                        target.meta.label()
                    ),
                }));
                continue;
            }
            let version = format!("{}+{}", target.meta.version, f.meta.version);
            let Body::Detection(det) = &mut target.body else {
                errors.push(err(LoadErrorKind::Unsupported(format!(
                    "a filter on correlation rule {}",
                    target.meta.label()
                ))));
                continue;
            };
            merge(det, &filter.detection, &f.meta.title);
            target.meta.version =
                format!("{:016x}", xxhash_rust::xxh3::xxh3_64(version.as_bytes()));
        }
    }
    rules
}

/// Appends the filter's selections to `det` and negates its condition into `det`'s.
fn merge(det: &mut Detection, filter: &Detection, title: &str) {
    let offset = det.selections.len();
    for s in &filter.selections {
        let mut s = s.clone();
        // Names only matter for messages here: the condition is already resolved to indices.
        s.name = format!("filter '{title}': {}", s.name);
        det.selections.push(s);
    }
    let excluded = shift(&filter.condition, offset);
    let original = std::mem::replace(&mut det.condition, Cond::Or(Vec::new()));
    det.condition = Cond::And(vec![original, Cond::Not(Box::new(excluded))]);
    det.condition_text = format!(
        "({}) and not filter '{title}' ({})",
        det.condition_text, filter.condition_text
    );
}

fn shift(c: &Cond, offset: usize) -> Cond {
    match c {
        Cond::Sel(i) => Cond::Sel(i + offset),
        Cond::And(v) => Cond::And(v.iter().map(|c| shift(c, offset)).collect()),
        Cond::Or(v) => Cond::Or(v.iter().map(|c| shift(c, offset)).collect()),
        Cond::Not(c) => Cond::Not(Box::new(shift(c, offset))),
    }
}

/// Whether every attribute the filter's log source sets equals the rule's.
fn covers(filter: &LogSource, rule: &LogSource) -> bool {
    let same = |f: &Option<String>, r: &Option<String>| match f {
        None => true,
        Some(f) => r.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(f)),
    };
    same(&filter.product, &rule.product)
        && same(&filter.category, &rule.category)
        && same(&filter.service, &rule.service)
}

fn describe(ls: &LogSource) -> String {
    let parts: Vec<String> = [
        ("product", &ls.product),
        ("category", &ls.category),
        ("service", &ls.service),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
    .collect();
    format!("{{{}}}", parts.join(", "))
}
