//! Pipeline YAML to [`Pipeline`]: every key checked, every unsupported construct named.

use std::path::Path;

use super::{FieldFilter, Item, Pipeline, PipelineError, RuleCondition, Transform};
use crate::sigma::rule::LogSource;
use crate::sigma::value::Placeholders;
use crate::sigma::yaml::{Loc, Node, Value};

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, loc: Loc, message: impl Into<String>) -> PipelineError {
        PipelineError {
            file: self.file.to_path_buf(),
            loc,
            message: message.into(),
        }
    }

    fn map<'n>(&self, n: &'n Node, what: &str) -> Result<&'n [(Node, Node)], PipelineError> {
        n.as_map().ok_or_else(|| {
            self.err(
                n.loc,
                format!("`{what}` must be a mapping, found {}", n.value.kind()),
            )
        })
    }

    fn string(&self, n: &Node, what: &str) -> Result<String, PipelineError> {
        n.scalar_text().ok_or_else(|| {
            self.err(
                n.loc,
                format!("`{what}` must be a string, found {}", n.value.kind()),
            )
        })
    }

    /// A string or a list of strings.
    fn strings(&self, n: &Node, what: &str) -> Result<Vec<String>, PipelineError> {
        match &n.value {
            Value::Seq(items) => items.iter().map(|i| self.string(i, what)).collect(),
            _ => Ok(vec![self.string(n, what)?]),
        }
    }

    fn keys(&self, m: &[(Node, Node)], allowed: &[&str], what: &str) -> Result<(), PipelineError> {
        for (k, _) in m {
            let key = k.as_str().unwrap_or("");
            if !allowed.contains(&key) {
                return Err(self.err(
                    k.loc,
                    format!(
                        "unsupported key `{key}` in {what} (credtrail supports: {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn get<'n>(m: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    m.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

pub(super) fn pipeline(file: &Path, doc: &Node) -> Result<Pipeline, PipelineError> {
    let ctx = Ctx { file };
    let m = ctx.map(doc, "pipeline")?;
    ctx.keys(
        m,
        &[
            "name",
            "priority",
            "vars",
            "transformations",
            "postprocessing",
            "finalizers",
            "allowed_backends",
        ],
        "a pipeline",
    )?;
    for key in ["postprocessing", "finalizers"] {
        if let Some(n) = get(m, key)
            && !matches!(&n.value, Value::Seq(v) if v.is_empty())
            && n.value != Value::Null
        {
            return Err(ctx.err(
                n.loc,
                format!("`{key}` shapes query text for a backend; credtrail matches events and has no query to shape"),
            ));
        }
    }
    let name = match get(m, "name") {
        Some(n) => ctx.string(n, "name")?,
        None => file.display().to_string(),
    };
    let priority = match get(m, "priority").map(|n| (n, &n.value)) {
        None => 0,
        Some((_, Value::Int(i))) => *i,
        Some((n, _)) => return Err(ctx.err(n.loc, "`priority` must be an integer")),
    };
    let mut vars = Placeholders::new();
    if let Some(v) = get(m, "vars") {
        for (k, val) in ctx.map(v, "vars")? {
            vars.insert(ctx.string(k, "vars")?, ctx.strings(val, "vars value")?);
        }
    }
    let mut items = Vec::new();
    if let Some(t) = get(m, "transformations") {
        let Value::Seq(list) = &t.value else {
            return Err(ctx.err(t.loc, "`transformations` must be a list"));
        };
        for n in list {
            items.push(item(&ctx, n)?);
        }
    }
    Ok(Pipeline {
        name,
        priority,
        file: file.to_path_buf(),
        vars,
        items,
        version: 0,
    })
}

const ITEM_KEYS: &[&str] = &[
    "id",
    "type",
    "mapping",
    "prefix",
    "suffix",
    "conditions",
    "product",
    "category",
    "service",
    "include",
    "exclude",
    "message",
    "rule_conditions",
    "rule_cond_op",
    "rule_cond_not",
    "field_name_conditions",
    "field_name_cond_op",
    "field_name_cond_not",
];

fn item(ctx: &Ctx<'_>, n: &Node) -> Result<Item, PipelineError> {
    let m = ctx.map(n, "transformation")?;
    ctx.keys(m, ITEM_KEYS, "a transformation")?;
    let kind_node =
        get(m, "type").ok_or_else(|| ctx.err(n.loc, "a transformation needs `type`"))?;
    let kind = ctx.string(kind_node, "type")?;
    let need =
        |key: &str| get(m, key).ok_or_else(|| ctx.err(n.loc, format!("`{kind}` needs `{key}`")));
    let names = |key: &str| -> Result<Vec<String>, PipelineError> {
        get(m, key)
            .map(|v| ctx.strings(v, key))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    if get(m, "exclude").is_some() {
        return Err(ctx.err(
            n.loc,
            "`exclude` of placeholders: list the placeholders to `include` instead",
        ));
    }
    let transform = match kind.as_str() {
        "field_name_mapping" => {
            let mut out = Vec::new();
            for (k, v) in ctx.map(need("mapping")?, "mapping")? {
                let to = ctx.strings(v, "mapping value")?;
                if to.is_empty() {
                    return Err(ctx.err(v.loc, "a field maps to at least one name"));
                }
                out.push((ctx.string(k, "mapping key")?, to));
            }
            Transform::FieldMap(out)
        }
        "field_name_prefix_mapping" => {
            let mut out = Vec::new();
            for (k, v) in ctx.map(need("mapping")?, "mapping")? {
                out.push((
                    ctx.string(k, "mapping key")?,
                    ctx.string(v, "mapping value")?,
                ));
            }
            // Longest prefix first, so `a.b.` wins over `a.`.
            out.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
            Transform::FieldPrefixMap(out)
        }
        "field_name_prefix" => Transform::FieldPrefix(ctx.string(need("prefix")?, "prefix")?),
        "field_name_suffix" => Transform::FieldSuffix(ctx.string(need("suffix")?, "suffix")?),
        "add_condition" => {
            let mut out = Vec::new();
            for (k, v) in ctx.map(need("conditions")?, "conditions")? {
                out.push((ctx.string(k, "condition field")?, v.clone()));
            }
            Transform::AddCondition(out)
        }
        "change_logsource" => {
            let opt = |key: &str| get(m, key).map(|v| ctx.string(v, key)).transpose();
            Transform::ChangeLogsource(LogSource {
                product: opt("product")?,
                category: opt("category")?,
                service: opt("service")?,
            })
        }
        "value_placeholders" => Transform::ValuePlaceholders {
            include: names("include")?,
        },
        "wildcard_placeholders" => Transform::WildcardPlaceholders {
            include: names("include")?,
        },
        "rule_failure" => Transform::RuleFailure(ctx.string(need("message")?, "message")?),
        other => {
            return Err(ctx.err(
                kind_node.loc,
                format!(
                    "unsupported transformation `{other}` (credtrail supports field_name_mapping, field_name_prefix_mapping, field_name_prefix, field_name_suffix, add_condition, change_logsource, value_placeholders, wildcard_placeholders, rule_failure)"
                ),
            ));
        }
    };
    let mut rule_conditions = Vec::new();
    if let Some(c) = get(m, "rule_conditions") {
        let Value::Seq(list) = &c.value else {
            return Err(ctx.err(c.loc, "`rule_conditions` must be a list"));
        };
        for cn in list {
            rule_conditions.push(rule_condition(ctx, cn)?);
        }
    }
    if matches!(
        transform,
        Transform::ValuePlaceholders { .. } | Transform::WildcardPlaceholders { .. }
    ) && !rule_conditions.is_empty()
    {
        return Err(ctx.err(
            n.loc,
            "placeholder values apply to every rule in credtrail; rule conditions on them are unsupported",
        ));
    }
    let any_condition = match get(m, "rule_cond_op") {
        None => false,
        Some(v) => match ctx.string(v, "rule_cond_op")?.as_str() {
            "and" => false,
            "or" => true,
            other => {
                return Err(ctx.err(v.loc, format!("`rule_cond_op` is and or or, not `{other}`")));
            }
        },
    };
    let negate_conditions = match get(m, "rule_cond_not").map(|v| (v, &v.value)) {
        None => false,
        Some((_, Value::Bool(b))) => *b,
        Some((v, _)) => return Err(ctx.err(v.loc, "`rule_cond_not` must be true or false")),
    };
    if let Some(v) = get(m, "field_name_cond_op").or(get(m, "field_name_cond_not")) {
        return Err(ctx.err(v.loc, "combining field name conditions is unsupported; use one include_fields or exclude_fields"));
    }
    let field_filter = match get(m, "field_name_conditions") {
        None => None,
        Some(c) => Some(field_filter(ctx, c)?),
    };
    Ok(Item {
        id: get(m, "id").map(|v| ctx.string(v, "id")).transpose()?,
        transform,
        rule_conditions,
        any_condition,
        negate_conditions,
        field_filter,
        loc: n.loc,
    })
}

fn rule_condition(ctx: &Ctx<'_>, n: &Node) -> Result<RuleCondition, PipelineError> {
    let m = ctx.map(n, "rule condition")?;
    let kind_node =
        get(m, "type").ok_or_else(|| ctx.err(n.loc, "a rule condition needs `type`"))?;
    let opt = |key: &str| get(m, key).map(|v| ctx.string(v, key)).transpose();
    match ctx.string(kind_node, "type")?.as_str() {
        "logsource" => {
            ctx.keys(
                m,
                &["type", "product", "category", "service"],
                "a logsource condition",
            )?;
            Ok(RuleCondition::Logsource(LogSource {
                product: opt("product")?,
                category: opt("category")?,
                service: opt("service")?,
            }))
        }
        "tag" => {
            ctx.keys(m, &["type", "tag"], "a tag condition")?;
            let tag = opt("tag")?.ok_or_else(|| ctx.err(n.loc, "a tag condition needs `tag`"))?;
            Ok(RuleCondition::Tag(tag))
        }
        other => Err(ctx.err(
            kind_node.loc,
            format!("unsupported rule condition `{other}` (credtrail supports logsource, tag)"),
        )),
    }
}

fn field_filter(ctx: &Ctx<'_>, n: &Node) -> Result<FieldFilter, PipelineError> {
    let Value::Seq(list) = &n.value else {
        return Err(ctx.err(n.loc, "`field_name_conditions` must be a list"));
    };
    let [one] = list.as_slice() else {
        return Err(ctx.err(
            n.loc,
            "credtrail supports one field name condition per item",
        ));
    };
    let m = ctx.map(one, "field name condition")?;
    ctx.keys(m, &["type", "fields", "mode"], "a field name condition")?;
    if let Some(mode) = get(m, "mode")
        && ctx.string(mode, "mode")? != "plain"
    {
        return Err(ctx.err(mode.loc, "only `mode: plain` field lists are supported"));
    }
    let kind_node =
        get(m, "type").ok_or_else(|| ctx.err(one.loc, "a field name condition needs `type`"))?;
    let include = match ctx.string(kind_node, "type")?.as_str() {
        "include_fields" => true,
        "exclude_fields" => false,
        other => {
            return Err(ctx.err(
                kind_node.loc,
                format!("unsupported field name condition `{other}` (credtrail supports include_fields, exclude_fields)"),
            ));
        }
    };
    let fields = get(m, "fields")
        .ok_or_else(|| ctx.err(one.loc, "a field name condition needs `fields`"))
        .and_then(|f| ctx.strings(f, "fields"))?;
    Ok(FieldFilter { include, fields })
}
