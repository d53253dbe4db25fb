//! Correlation rules compiled: referenced rules resolved to stage bits, group-by fields and
//! aliases resolved per stage, the decision mode chosen from the type and the condition, the
//! `credtrail:` extension checked against the rule, the state budget checked against the
//! engine's ceiling, and the links between correlations (which findings feed which rule, and by
//! which key they are routed to a shard).
//!
//! Everything the engine could not run exactly as written is a load error here.

use super::{CompiledCorrelation, CompiledDetection, Decide, Feed, FieldSource, low_bits};
use crate::decode::FieldTable;
use crate::sigma::value::NumOp;
use crate::sigma::{Body, Catalog, Correlation, CorrelationType, LoadError, LoadErrorKind, Rule};
use crate::time::Span;
use crate::vocab::{IDENTITY_FIELD, StateBudget};

/// What an untrusted rule may ask of the engine.
#[derive(Clone, Copy, Debug)]
pub struct CorrelationLimits {
    /// The longest `timespan`, `max_gap` or `absence.within` a rule may use.
    pub max_timespan: Span,
    /// The budget of a rule that asks for none.
    pub default_budget: StateBudget,
    /// The most a rule may ask for.
    pub ceiling: StateBudget,
}

impl Default for CorrelationLimits {
    fn default() -> Self {
        CorrelationLimits {
            max_timespan: Span::from_secs(31 * 86_400),
            default_budget: StateBudget {
                max_groups: 1 << 20,
                max_events: 10_000,
            },
            ceiling: StateBudget {
                max_groups: 1 << 22,
                max_events: 1_000_000,
            },
        }
    }
}

/// Compiles correlation rule `index`; errors go to `errors`.
pub(crate) fn compile(
    catalog: &Catalog,
    index: usize,
    rule: &Rule,
    c: &Correlation,
    fields: &mut FieldTable,
    limits: &CorrelationLimits,
    errors: &mut Vec<LoadError>,
) -> Option<CompiledCorrelation> {
    let err = |kind: LoadErrorKind| LoadError {
        declared: crate::sigma::declared_by(rule),
        file: rule.meta.file.clone(),
        loc: c.loc,
        rule: Some(rule.meta.label()),
        kind,
    };
    let stages: Vec<u32> = catalog.refs[index].iter().map(|&r| r as u32).collect();
    let extra: Vec<u32> = catalog.ext_refs[index].iter().map(|&r| r as u32).collect();
    if stages.len() != c.rules.len() || extra.len() != c.ext.references().count() {
        return None; // unresolved references were reported by the loader
    }
    let n = stages.len();
    if n + extra.len() > 64 {
        errors.push(err(LoadErrorKind::Limit(
            "more than 64 rules in one correlation (stages, until and absence rules)".into(),
        )));
        return None;
    }
    let longest = c.timespan.max(c.ext.longest_span());
    if longest > limits.max_timespan {
        errors.push(err(LoadErrorKind::Limit(format!(
            "a span of {longest} is longer than the engine's maximum of {} (untrusted rules keep state at most that long)",
            limits.max_timespan
        ))));
        return None;
    }
    for (k, &r) in extra.iter().enumerate() {
        let (name, _) = c.ext.references().nth(k).unwrap_or(("", c.loc));
        if !matches!(catalog.rules[r as usize].body, Body::Detection(_)) {
            errors.push(err(LoadErrorKind::Extension(format!(
                "`{name}` (until/absence) must be a detection rule, not a correlation"
            ))));
            return None;
        }
        if stages.contains(&r) {
            errors.push(err(LoadErrorKind::Extension(format!(
                "`{name}` is both a stage of the chain and an until/absence rule"
            ))));
            return None;
        }
    }
    let budget = match budget(c, limits) {
        Ok(b) => b,
        Err(kind) => {
            errors.push(err(kind));
            return None;
        }
    };
    let (decide, required) = match decide(c, n, budget) {
        Ok(d) => d,
        Err(kind) => {
            errors.push(err(kind));
            return None;
        }
    };
    // The names each stage bit's rule may be called by in `aliases`.
    let mut references: Vec<&str> = c.rules.iter().map(|(r, _)| r.as_str()).collect();
    references.extend(c.ext.references().map(|(r, _)| r));
    let bit_rules: Vec<u32> = stages.iter().chain(extra.iter()).copied().collect();
    let mut field_for = |name: &str, bit: usize| -> FieldSource {
        if matches!(
            catalog.rules[bit_rules[bit] as usize].body,
            Body::Correlation(_)
        ) {
            return FieldSource::Missing; // derived hits carry their group values
        }
        let field = match resolve_alias(catalog, c, &references, &bit_rules, name, bit) {
            Some(f) => f,
            None => return FieldSource::Missing,
        };
        if field == IDENTITY_FIELD {
            FieldSource::Identity
        } else {
            FieldSource::Slot(fields.intern(&field))
        }
    };
    let bits = bit_rules.len();
    let group_fields: Vec<Vec<FieldSource>> = (0..bits)
        .map(|s| c.group_by.iter().map(|g| field_for(g, s)).collect())
        .collect();
    let value_field = c
        .field
        .as_ref()
        .map(|f| (0..bits).map(|s| field_for(f, s)).collect());
    for alias in &c.aliases {
        if !c.group_by.contains(&alias.name) && c.field.as_ref() != Some(&alias.name) {
            errors.push(err(LoadErrorKind::Correlation(format!(
                "alias `{}` is not used in group-by or condition.field",
                alias.name
            ))));
        }
        for (r, _) in &alias.fields {
            if !references.contains(&r.as_str())
                && !bit_rules.iter().any(|&b| names_rule(catalog, b, r))
            {
                errors.push(err(LoadErrorKind::Correlation(format!(
                    "alias `{}` names rule `{r}`, which this correlation does not reference",
                    alias.name
                ))));
            }
        }
    }
    let stage_names = stages
        .iter()
        .enumerate()
        .map(|(k, &r)| {
            if let Some(name) = c.ext.stages.get(k).and_then(|s| s.name.clone()) {
                return name;
            }
            let m = &catalog.rules[r as usize].meta;
            m.name
                .clone()
                .or_else(|| m.id.clone())
                .unwrap_or_else(|| m.title.clone())
        })
        .collect();
    let mut max_gaps = vec![None; n];
    for (k, s) in c.ext.stages.iter().enumerate() {
        max_gaps[k] = s.max_gap;
    }
    let until_mask = low_bits(n + c.ext.until.len()) & !low_bits(n);
    let absence = c
        .ext
        .absence
        .as_ref()
        .map(|a| (1u64 << (n + c.ext.until.len()), a.within));
    let percentile = match c.kind {
        CorrelationType::ValueMedian => Some(50.0),
        CorrelationType::ValuePercentile => c.percentile,
        _ => None,
    };
    Some(CompiledCorrelation {
        rule: index as u32,
        kind: c.kind,
        stages,
        stage_names,
        group_by: c.group_by.clone(),
        group_fields,
        value_field,
        timespan: c.timespan,
        threshold: c.threshold.clone(),
        percentile,
        decide,
        required,
        max_gaps,
        tie_order: c.ext.order,
        until_mask,
        absence,
        generate: c.generate,
        level: rule.meta.level,
        standalone: true,
        feeds: Vec::new(),
        route: None,
        budget,
        weights: c.ext.score.weights,
        escalate_at: c.ext.score.escalate_at,
        runbook: c.ext.runbook.clone(),
        message: c.ext.message.clone(),
    })
}

/// The field `name` stands for in the events of stage bit `bit`: an alias's field for that
/// rule, else `name` itself. `None` when an alias does not name the rule.
fn resolve_alias(
    catalog: &Catalog,
    c: &Correlation,
    references: &[&str],
    bit_rules: &[u32],
    name: &str,
    bit: usize,
) -> Option<String> {
    let Some(alias) = c.aliases.iter().find(|a| a.name == name) else {
        return Some(name.to_string());
    };
    alias
        .fields
        .iter()
        .find(|(r, _)| r == references[bit] || names_rule(catalog, bit_rules[bit], r))
        .map(|(_, f)| f.clone())
}

fn names_rule(catalog: &Catalog, rule: u32, reference: &str) -> bool {
    let m = &catalog.rules[rule as usize].meta;
    m.id.as_deref() == Some(reference) || m.name.as_deref() == Some(reference)
}

fn budget(c: &Correlation, limits: &CorrelationLimits) -> Result<StateBudget, LoadErrorKind> {
    let asked = c.ext.state;
    let mut b = limits.default_budget;
    if let Some(g) = asked.max_groups {
        if g > limits.ceiling.max_groups as u64 {
            return Err(LoadErrorKind::Limit(format!(
                "`state.max_groups: {g}` is over the engine's ceiling of {}",
                limits.ceiling.max_groups
            )));
        }
        b.max_groups = g as usize;
    }
    if let Some(e) = asked.max_events {
        if e > limits.ceiling.max_events as u64 {
            return Err(LoadErrorKind::Limit(format!(
                "`state.max_events: {e}` is over the engine's ceiling of {}",
                limits.ceiling.max_events
            )));
        }
        b.max_events = e as usize;
    }
    Ok(b)
}

/// The decision mode and, for `temporal`, the number of stages required.
fn decide(
    c: &Correlation,
    stages: usize,
    budget: StateBudget,
) -> Result<(Decide, usize), LoadErrorKind> {
    let th = c.threshold.as_ref();
    let lower_only = th.is_none_or(|t| t.is_lower_bound_only());
    match c.kind {
        CorrelationType::TemporalOrdered => {
            // An ordered chain is all its stages, in order; "k of n in order" is not defined.
            let all = th.is_none_or(|t| t.holds(stages as f64) && !t.holds(stages as f64 - 1.0));
            if !all {
                return Err(LoadErrorKind::Unsupported(format!(
                    "a temporal_ordered condition other than all {stages} rules in order"
                )));
            }
            Ok((Decide::Eager, stages))
        }
        CorrelationType::Temporal => {
            let Some(th) = th else {
                return Ok((Decide::Eager, stages)); // no condition: every rule
            };
            let holds = |k: usize| th.holds(k as f64);
            let Some(min) = (1..=stages).find(|&k| holds(k)) else {
                return Err(LoadErrorKind::Correlation(format!(
                    "the condition can never hold: a temporal correlation counts 1 to {stages} distinct rules"
                )));
            };
            // Counting more stages can only keep an up-closed condition true: decide eagerly.
            if (min..=stages).all(holds) {
                Ok((Decide::Eager, min))
            } else {
                Ok((Decide::AtWindowClose, min))
            }
        }
        CorrelationType::EventCount | CorrelationType::ValueCount | CorrelationType::ValueSum
            if lower_only =>
        {
            if c.kind != CorrelationType::ValueSum
                && let Some(t) = th
            {
                let needed = t
                    .tests
                    .iter()
                    .map(|(op, v)| match op {
                        NumOp::Gt => v.floor() + 1.0,
                        _ => v.ceil(),
                    })
                    .fold(0.0f64, f64::max);
                if needed > budget.max_events as f64 {
                    return Err(LoadErrorKind::Limit(format!(
                        "the condition needs {needed} events in one group's state, over the rule's budget of {} (`credtrail: {{state: {{max_events: N}}}}`)",
                        budget.max_events
                    )));
                }
            }
            Ok((Decide::Eager, 0))
        }
        _ => Ok((Decide::AtWindowClose, 0)),
    }
}

/// Links compiled correlations: the detections and correlations each stage bit consumes,
/// whether findings are alerts, and the routing key of every correlation.
pub(crate) fn link(
    catalog: &Catalog,
    correlations: &mut [CompiledCorrelation],
    detections: &mut [CompiledDetection],
    detection_of_rule: &[Option<u32>],
    correlation_of_rule: &[Option<u32>],
    errors: &mut Vec<LoadError>,
) {
    for o in 0..correlations.len() {
        let rule = correlations[o].rule as usize;
        let Body::Correlation(c) = &catalog.rules[rule].body else {
            continue;
        };
        let meta = &catalog.rules[rule].meta;
        let err = |kind: LoadErrorKind| LoadError {
            declared: crate::sigma::declared_by(&catalog.rules[rule]),
            file: meta.file.clone(),
            loc: c.loc,
            rule: Some(meta.label()),
            kind,
        };
        let bit_rules: Vec<usize> = catalog.refs[rule]
            .iter()
            .chain(catalog.ext_refs[rule].iter())
            .copied()
            .collect();
        let mut references: Vec<&str> = c.rules.iter().map(|(r, _)| r.as_str()).collect();
        references.extend(c.ext.references().map(|(r, _)| r));
        let bit_rules32: Vec<u32> = bit_rules.iter().map(|&r| r as u32).collect();
        for (bit, &r) in bit_rules.iter().enumerate() {
            if let Some(d) = detection_of_rule[r] {
                let uses = &mut detections[d as usize].uses;
                match uses.iter_mut().find(|(x, _)| *x == o as u32) {
                    Some((_, mask)) => *mask |= 1u64 << bit,
                    None => uses.push((o as u32, 1u64 << bit)),
                }
                continue;
            }
            let Some(inner) = correlation_of_rule[r] else {
                continue; // the referenced rule failed to compile and said so
            };
            // The inner correlation's findings carry only its group-by values: the outer
            // rule's group-by and field must be among them.
            let inner_group = &correlations[inner as usize].group_by;
            let inner_label = catalog.rules[r].meta.label();
            let position = |name: &str| -> Result<usize, LoadError> {
                let field = resolve_alias(catalog, c, &references, &bit_rules32, name, bit)
                    .unwrap_or_else(|| name.to_string());
                inner_group.iter().position(|g| *g == field).ok_or_else(|| {
                    err(LoadErrorKind::Correlation(format!(
                        "`{name}` is not a group-by field of the referenced correlation {inner_label} \
                         (its findings carry only its group-by values: {})",
                        inner_group.join(", ")
                    )))
                })
            };
            let group: Result<Vec<usize>, LoadError> =
                c.group_by.iter().map(|g| position(g)).collect();
            let value = c.field.as_deref().map(position).transpose();
            match (group, value) {
                (Ok(group), Ok(value)) => correlations[inner as usize].feeds.push(Feed {
                    target: o as u32,
                    stages: 1u64 << bit,
                    group,
                    value,
                }),
                (Err(e), _) | (_, Err(e)) => errors.push(e),
            }
        }
    }
    // Rules a stage selector took feed that stage as its own rule does.
    for (o, correlation) in correlations.iter().enumerate() {
        for &(stage, r) in &catalog.selected[correlation.rule as usize] {
            if let Some(d) = detection_of_rule[r] {
                let uses = &mut detections[d as usize].uses;
                match uses.iter_mut().find(|(x, _)| *x == o as u32) {
                    Some((_, mask)) => *mask |= 1u64 << stage,
                    None => uses.push((o as u32, 1u64 << stage)),
                }
            }
        }
    }
    let silenced = catalog.silenced();
    let is_silenced = |rule: u32| silenced.get(rule as usize).copied().unwrap_or(false);
    for d in detections.iter_mut() {
        d.standalone = !is_silenced(d.rule);
    }
    for c in correlations.iter_mut() {
        c.standalone = !is_silenced(c.rule);
    }
    // Routing, outermost first: a correlation is routed by the values its referencing
    // correlation is routed by, so that one shard owns both states of a chain.
    let mut route: Vec<Option<Option<Vec<usize>>>> = vec![None; correlations.len()];
    for c in 0..correlations.len() {
        let mut stack = Vec::new();
        routed(correlations, c, &mut route, &mut stack, catalog, errors);
    }
    for (c, r) in route.into_iter().enumerate() {
        correlations[c].route = r.flatten();
    }
}

/// The route of correlation `c` (memoized in `route`): `None` is its whole group key.
fn routed(
    correlations: &[CompiledCorrelation],
    c: usize,
    route: &mut [Option<Option<Vec<usize>>>],
    stack: &mut Vec<usize>,
    catalog: &Catalog,
    errors: &mut Vec<LoadError>,
) -> Option<Vec<usize>> {
    if let Some(r) = &route[c] {
        return r.clone();
    }
    if stack.contains(&c) || stack.len() > 64 {
        return None; // cycles were reported by the loader
    }
    stack.push(c);
    let own = correlations[c].group_by.len();
    let mut chosen: Option<(Vec<usize>, usize)> = None;
    for f in &correlations[c].feeds {
        let outer = f.target as usize;
        let outer_route = routed(correlations, outer, route, stack, catalog, errors)
            .unwrap_or_else(|| (0..correlations[outer].group_by.len()).collect());
        let mine: Vec<usize> = outer_route.iter().map(|&i| f.group[i]).collect();
        match &chosen {
            None => chosen = Some((mine, outer)),
            Some((prev, other)) if *prev != mine => {
                let meta = &catalog.rules[correlations[c].rule as usize].meta;
                let name = |i: usize| catalog.rules[correlations[i].rule as usize].meta.label();
                errors.push(LoadError {
                    declared: crate::sigma::declared_by(&catalog.rules[correlations[c].rule as usize]),
                    file: meta.file.clone(),
                    loc: meta.loc,
                    rule: Some(meta.label()),
                    kind: LoadErrorKind::Unsupported(format!(
                        "this correlation feeds {} and {}, which group by different fields: one \
                         shard could not own both chains; give them the same group-by or copy the rule",
                        name(*other),
                        name(outer)
                    )),
                });
            }
            Some(_) => {}
        }
    }
    stack.pop();
    let r = chosen
        .map(|(r, _)| r)
        .filter(|r| *r != (0..own).collect::<Vec<_>>());
    route[c] = Some(r.clone());
    r
}
