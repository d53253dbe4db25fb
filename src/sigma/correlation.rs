//! Sigma correlation rules (specification v2): `event_count`, `value_count`, `temporal`,
//! `temporal_ordered` and the value aggregations, with `group-by`, `timespan`, `aliases`,
//! `condition` ranges and `generate`.

use super::error::{LoadError, LoadErrorKind};
use super::extension::Extension;
use super::rule::{Ctx, opt_string, string_list};
use super::value::NumOp;
use super::yaml::{Loc, Node, Value};
use crate::time::Span;

/// The correlation types of the specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    ValueSum,
    ValueAvg,
    ValuePercentile,
    ValueMedian,
}

impl CorrelationType {
    fn parse(s: &str) -> Option<CorrelationType> {
        Some(match s {
            "event_count" => CorrelationType::EventCount,
            "value_count" => CorrelationType::ValueCount,
            "temporal" => CorrelationType::Temporal,
            "temporal_ordered" => CorrelationType::TemporalOrdered,
            "value_sum" => CorrelationType::ValueSum,
            "value_avg" => CorrelationType::ValueAvg,
            "value_percentile" => CorrelationType::ValuePercentile,
            "value_median" => CorrelationType::ValueMedian,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
            CorrelationType::ValueSum => "value_sum",
            CorrelationType::ValueAvg => "value_avg",
            CorrelationType::ValuePercentile => "value_percentile",
            CorrelationType::ValueMedian => "value_median",
        }
    }

    /// Whether the type aggregates a field's values and so needs `condition.field`.
    pub fn needs_field(self) -> bool {
        !matches!(
            self,
            CorrelationType::EventCount
                | CorrelationType::Temporal
                | CorrelationType::TemporalOrdered
        )
    }
}

/// A numeric condition: every comparison must hold (`gte: 10` and `lte: 20` is a range).
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub tests: Vec<(NumOp, f64)>,
}

impl Threshold {
    pub fn holds(&self, v: f64) -> bool {
        self.tests.iter().all(|(op, t)| op.test(v, *t))
    }

    /// Whether the condition can only become true by counting more (no upper bound); such
    /// conditions fire as soon as they hold, others only when the window closes.
    pub fn is_lower_bound_only(&self) -> bool {
        self.tests
            .iter()
            .all(|(op, _)| matches!(op, NumOp::Gt | NumOp::Gte))
    }
}

/// An alias: one name for a field that differs per referenced rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    /// (rule reference, field name in that rule's events)
    pub fields: Vec<(String, String)>,
}

/// A parsed correlation section.
#[derive(Clone, Debug, PartialEq)]
pub struct Correlation {
    pub kind: CorrelationType,
    /// Referenced rules, by id or name, with where each was written.
    pub rules: Vec<(String, Loc)>,
    pub group_by: Vec<String>,
    pub timespan: Span,
    pub threshold: Option<Threshold>,
    /// The aggregated field (`value_count` and the value aggregations).
    pub field: Option<String>,
    /// `value_percentile`'s percentile, 0-100.
    pub percentile: Option<f64>,
    pub aliases: Vec<Alias>,
    /// Whether the referenced rules also emit their own alerts.
    pub generate: bool,
    /// The `credtrail:` extension of the rule (empty when it has none).
    pub ext: Box<Extension>,
    pub loc: Loc,
}

pub(crate) fn parse(ctx: &Ctx<'_>, node: &Node) -> Result<Correlation, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Correlation(msg));
    if node.as_map().is_none() {
        return Err(err(
            node.loc,
            format!(
                "`correlation` must be a mapping, found {}",
                node.value.kind()
            ),
        ));
    }
    for (k, _) in node.as_map().unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        if !matches!(
            key,
            "type"
                | "rules"
                | "group-by"
                | "timespan"
                | "timeframe"
                | "condition"
                | "aliases"
                | "generate"
        ) {
            return Err(err(k.loc, format!("unknown correlation key `{key}`")));
        }
    }
    let type_node = node
        .get("type")
        .ok_or_else(|| ctx.err(node.loc, LoadErrorKind::Missing("correlation.type")))?;
    let type_name = type_node.as_str().unwrap_or("");
    let kind = CorrelationType::parse(type_name).ok_or_else(|| {
        err(
            type_node.loc,
            format!("unknown correlation type `{type_name}`"),
        )
    })?;
    let rules_node = node
        .get("rules")
        .ok_or_else(|| ctx.err(node.loc, LoadErrorKind::Missing("correlation.rules")))?;
    let rules: Vec<(String, Loc)> = match &rules_node.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                i.scalar_text()
                    .map(|s| (s, i.loc))
                    .ok_or_else(|| err(i.loc, "rule references are strings".into()))
            })
            .collect::<Result<_, _>>()?,
        Value::Str(s) => vec![(s.clone(), rules_node.loc)],
        _ => {
            return Err(err(
                rules_node.loc,
                "`rules` must be a list of rule ids or names".into(),
            ));
        }
    };
    if rules.is_empty() {
        return Err(err(rules_node.loc, "`rules` is empty".into()));
    }
    if matches!(
        kind,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    ) && rules.len() < 2
    {
        return Err(err(
            rules_node.loc,
            format!("`{}` needs at least two rules", kind.name()),
        ));
    }
    let group_by = string_list(ctx, node, "group-by")?;
    let span_node = node
        .get("timespan")
        .or_else(|| node.get("timeframe"))
        .ok_or_else(|| ctx.err(node.loc, LoadErrorKind::Missing("correlation.timespan")))?;
    let span_text = span_node.scalar_text().unwrap_or_default();
    let timespan =
        Span::parse(&span_text).map_err(|e| err(span_node.loc, format!("timespan: {e}")))?;
    if timespan <= Span::ZERO {
        return Err(err(span_node.loc, "timespan must be positive".into()));
    }
    let generate = match node.get("generate") {
        None => false,
        Some(Node {
            value: Value::Bool(b),
            ..
        }) => *b,
        Some(n) => return Err(err(n.loc, "`generate` must be true or false".into())),
    };
    let mut threshold = None;
    let mut field = None;
    let mut percentile = None;
    if let Some(cond) = node.get("condition") {
        let Some(entries) = cond.as_map() else {
            return Err(err(
                cond.loc,
                "`condition` must be a mapping such as `gte: 10`".into(),
            ));
        };
        let mut tests = Vec::new();
        for (k, v) in entries {
            let key = k.as_str().unwrap_or("");
            let number = || match v.value {
                Value::Int(i) => Ok(i as f64),
                Value::Float(f) => Ok(f),
                _ => Err(err(v.loc, format!("condition `{key}` takes a number"))),
            };
            match key {
                "gt" => tests.push((NumOp::Gt, number()?)),
                "gte" => tests.push((NumOp::Gte, number()?)),
                "lt" => tests.push((NumOp::Lt, number()?)),
                "lte" => tests.push((NumOp::Lte, number()?)),
                "eq" => tests.push((NumOp::Eq, number()?)),
                "field" => field = opt_string(ctx, cond, "field")?,
                "percentile" => percentile = Some(number()?),
                _ => return Err(err(k.loc, format!("unknown condition key `{key}`"))),
            }
        }
        if tests.is_empty() {
            return Err(err(
                cond.loc,
                "condition has no comparison (gt, gte, lt, lte, eq)".into(),
            ));
        }
        threshold = Some(Threshold { tests });
    }
    if kind.needs_field() && field.is_none() {
        return Err(err(
            node.loc,
            format!("`{}` needs `condition.field`", kind.name()),
        ));
    }
    if (matches!(kind, CorrelationType::EventCount) || kind.needs_field()) && threshold.is_none() {
        return Err(ctx.err(node.loc, LoadErrorKind::Missing("correlation.condition")));
    }
    if kind == CorrelationType::ValuePercentile {
        match percentile {
            Some(p) if (0.0..=100.0).contains(&p) => {}
            _ => {
                return Err(err(
                    node.loc,
                    "`value_percentile` needs `condition.percentile` between 0 and 100".into(),
                ));
            }
        }
    }
    let aliases = parse_aliases(ctx, node)?;
    Ok(Correlation {
        kind,
        rules,
        group_by,
        timespan,
        threshold,
        field,
        percentile,
        aliases,
        generate,
        ext: Box::default(),
        loc: node.loc,
    })
}

fn parse_aliases(ctx: &Ctx<'_>, node: &Node) -> Result<Vec<Alias>, LoadError> {
    let Some(a) = node.get("aliases") else {
        return Ok(Vec::new());
    };
    let err = |loc: Loc, msg: &str| ctx.err(loc, LoadErrorKind::Correlation(msg.to_string()));
    let entries = a
        .as_map()
        .ok_or_else(|| err(a.loc, "`aliases` must be a mapping"))?;
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = k
            .as_str()
            .ok_or_else(|| err(k.loc, "alias names are strings"))?
            .to_string();
        let per_rule = v
            .as_map()
            .ok_or_else(|| err(v.loc, "an alias maps rule references to field names"))?;
        let mut fields = Vec::new();
        for (rk, rv) in per_rule {
            let rule = rk
                .scalar_text()
                .ok_or_else(|| err(rk.loc, "alias keys are rule references"))?;
            let field = rv
                .scalar_text()
                .ok_or_else(|| err(rv.loc, "alias values are field names"))?;
            fields.push((rule, field));
        }
        out.push(Alias { name, fields });
    }
    Ok(out)
}
