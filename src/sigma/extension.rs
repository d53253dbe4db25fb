//! The `credtrail:` extension of a correlation rule: what Sigma cannot say.
//!
//! It is a top-level key of the correlation rule's document, so other Sigma tools ignore it and
//! the file stays valid Sigma. It is parsed strictly: an unknown key, a wrong type or a value
//! that cannot apply is a load error with its line and column.
//!
//! ```yaml
//! credtrail:
//!   stages:                      # one entry per rule of `correlation.rules`, in order
//!     - name: secret read        # shown as `stage_name` in the alert's evidence
//!     - name: enumeration
//!       max_gap: 10m             # temporal_ordered: at most 10m after the previous stage
//!       select:                  # the stage also takes every loaded rule tagged so
//!         tags: [attack.discovery]   # (see `selector` for the whole syntax)
//!   order: strict                # temporal_ordered: steps with equal event time do not
//!                                #   follow each other (default `simultaneous`: they may,
//!                                #   in any order; CloudTrail has one-second resolution)
//!   until: [ct_secret_rotated]   # a match (same group) cancels every partial chain
//!   absence:                     # alert only if `rule` does not match within `within`
//!     rule: ct_key_deleted       #   after the chain completed; decided when the
//!     within: 15m                #   watermark passes the deadline, never earlier
//!   state:                       # the rule's state budget (capped by the engine's)
//!     max_groups: 100000         # live group states per shard
//!     max_events: 1000           # events one group state keeps
//!   runbook: |                   # what to do, carried into the alert's `remediation.desc`
//!     Disable the access key, rotate the secrets read.
//!   message: "{actor} read {resource} from {src_ip}"   # the alert's `message` (placeholders:
//!                                #   actor resource src_ip host cmd_line user_agent operation
//!                                #   rule count stages)
//!   score:                       # blast radius of this rule's findings (docs/scoring.md)
//!     weights: {reach: 40, touched: 20, stage: 20, tempo: 20}   # add up to 100
//!     escalate_at: 2             # temporal_ordered: announce once 2 stages are complete
//! ```

use super::correlation::CorrelationType;
use super::error::{LoadError, LoadErrorKind};
use super::rule::Ctx;
use super::yaml::{Loc, Node, Value};
use crate::time::Span;

/// The top-level key of the extension.
pub const KEY: &str = "credtrail";

/// One stage of a multi-rule correlation, as the extension describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageSpec {
    pub name: Option<String>,
    /// `temporal_ordered`: the longest time allowed since the previous stage's event.
    pub max_gap: Option<Span>,
    /// Rules the stage takes besides the one `correlation.rules` names.
    pub select: Option<super::selector::StageSelector>,
    pub loc: Loc,
}

/// "Not followed by `rule` within `within`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Absence {
    pub rule: String,
    pub rule_loc: Loc,
    pub within: Span,
    pub loc: Loc,
}

/// What a rule asks of the engine's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateRequest {
    pub max_groups: Option<u64>,
    pub max_events: Option<u64>,
    pub loc: Loc,
}

/// How the rule's findings are scored and escalated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScoreSpec {
    /// Weights of reach, touched, stage and tempo, adding up to 100.
    pub weights: Option<[u32; 4]>,
    /// `temporal_ordered`: announce a chain once it completes this many stages.
    pub escalate_at: Option<u32>,
    pub loc: Loc,
}

/// How `temporal_ordered` treats steps that share one event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TieOrder {
    /// Equal times are simultaneous: the steps may have happened in either order (a source's
    /// clock resolution, one second for CloudTrail, hides the order of machine-speed steps).
    #[default]
    Simultaneous,
    /// A step must be strictly later than the step before it.
    Strict,
}

/// The parsed extension; [`Extension::default`] when the rule has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extension {
    /// Empty, or exactly one entry per referenced rule.
    pub stages: Vec<StageSpec>,
    /// Rules (id or name) whose match cancels the group's partial chains.
    pub until: Vec<(String, Loc)>,
    pub absence: Option<Absence>,
    pub state: StateRequest,
    pub score: ScoreSpec,
    pub order: TieOrder,
    /// What to do when the rule fires, carried into the alert's `remediation`.
    pub runbook: Option<String>,
    /// The alert's `message`, with placeholders.
    pub message: Option<super::template::MessageTemplate>,
    pub loc: Loc,
}

impl Extension {
    /// The rule references the extension adds (`until`, then `absence`), with their locations.
    pub fn references(&self) -> impl Iterator<Item = (&str, Loc)> {
        self.until
            .iter()
            .map(|(r, l)| (r.as_str(), *l))
            .chain(self.absence.iter().map(|a| (a.rule.as_str(), a.rule_loc)))
    }

    /// The rule references of the stage selectors (`select.rules`), which must resolve.
    pub fn selector_references(&self) -> impl Iterator<Item = (&str, Loc)> {
        self.stages
            .iter()
            .filter_map(|s| s.select.as_ref())
            .flat_map(|s| s.rules.iter().map(|(r, l)| (r.as_str(), *l)))
    }

    /// The largest span the extension asks for (max gaps, absence window).
    pub fn longest_span(&self) -> Span {
        self.stages
            .iter()
            .filter_map(|s| s.max_gap)
            .chain(self.absence.iter().map(|a| a.within))
            .max()
            .unwrap_or(Span::ZERO)
    }
}

/// Parses the extension `node` of a correlation of `kind` over `rules` rules with `timespan`.
pub(crate) fn parse(
    ctx: &Ctx<'_>,
    node: &Node,
    kind: CorrelationType,
    rules: usize,
    timespan: Span,
) -> Result<Extension, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Some(entries) = node.as_map() else {
        return Err(err(
            node.loc,
            format!("`{KEY}` must be a mapping, found {}", node.value.kind()),
        ));
    };
    let mut ext = Extension {
        loc: node.loc,
        ..Extension::default()
    };
    for (k, v) in entries {
        match k.as_str().unwrap_or("") {
            "stages" => ext.stages = parse_stages(ctx, v, kind, rules, timespan)?,
            "until" => ext.until = references(ctx, v, "until")?,
            "absence" => ext.absence = Some(parse_absence(ctx, v)?),
            "state" => ext.state = parse_state(ctx, v)?,
            "score" => ext.score = parse_score(ctx, v, kind, rules)?,
            "order" => ext.order = parse_order(ctx, v, kind)?,
            "runbook" => {
                ext.runbook = Some(
                    v.scalar_text()
                        .ok_or_else(|| err(v.loc, "`runbook` is a string".into()))?,
                );
            }
            "message" => {
                let text = v
                    .scalar_text()
                    .ok_or_else(|| err(v.loc, "`message` is a string".into()))?;
                ext.message = Some(
                    super::template::MessageTemplate::parse(&text)
                        .map_err(|e| err(v.loc, format!("`message`: {e}")))?,
                );
            }
            other => {
                return Err(err(
                    k.loc,
                    format!(
                        "unknown key `{KEY}.{other}` (known: stages, until, absence, state, score, order, runbook, message)"
                    ),
                ));
            }
        }
    }
    let sequence = matches!(
        kind,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    );
    if !sequence && (!ext.until.is_empty() || ext.absence.is_some()) {
        return Err(err(
            node.loc,
            format!(
                "`until` and `absence` apply to temporal and temporal_ordered correlations, not `{}`",
                kind.name()
            ),
        ));
    }
    Ok(ext)
}

fn parse_stages(
    ctx: &Ctx<'_>,
    v: &Node,
    kind: CorrelationType,
    rules: usize,
    timespan: Span,
) -> Result<Vec<StageSpec>, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Value::Seq(items) = &v.value else {
        return Err(err(v.loc, "`stages` must be a list of mappings".into()));
    };
    if items.len() != rules {
        return Err(err(
            v.loc,
            format!(
                "`stages` has {} entries but the correlation has {rules} rules; give one per rule, in order",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(entries) = item.as_map() else {
            return Err(err(item.loc, "a stage must be a mapping".into()));
        };
        let mut stage = StageSpec {
            loc: item.loc,
            ..StageSpec::default()
        };
        for (k, val) in entries {
            match k.as_str().unwrap_or("") {
                "name" => {
                    stage.name = Some(
                        val.scalar_text()
                            .ok_or_else(|| err(val.loc, "a stage name is a string".into()))?,
                    );
                }
                "max_gap" => {
                    if kind != CorrelationType::TemporalOrdered {
                        return Err(err(
                            k.loc,
                            format!(
                                "`max_gap` applies to temporal_ordered, not `{}`",
                                kind.name()
                            ),
                        ));
                    }
                    if i == 0 {
                        return Err(err(
                            k.loc,
                            "`max_gap` of the first stage: it has no previous stage".into(),
                        ));
                    }
                    let gap = span(ctx, val, "max_gap")?;
                    if gap > timespan {
                        return Err(err(
                            val.loc,
                            format!(
                                "`max_gap` {gap} is longer than the timespan {timespan}: it could never apply"
                            ),
                        ));
                    }
                    stage.max_gap = Some(gap);
                }
                "select" => stage.select = Some(super::selector::parse(ctx, val)?),
                other => {
                    return Err(err(
                        k.loc,
                        format!("unknown stage key `{other}` (known: name, max_gap, select)"),
                    ));
                }
            }
        }
        out.push(stage);
    }
    Ok(out)
}

fn parse_order(ctx: &Ctx<'_>, v: &Node, kind: CorrelationType) -> Result<TieOrder, LoadError> {
    let err = |msg: String| ctx.err(v.loc, LoadErrorKind::Extension(msg));
    if kind != CorrelationType::TemporalOrdered {
        return Err(err(format!(
            "`order` applies to temporal_ordered, not `{}`",
            kind.name()
        )));
    }
    match v.scalar_text().as_deref() {
        Some("simultaneous") => Ok(TieOrder::Simultaneous),
        Some("strict") => Ok(TieOrder::Strict),
        _ => Err(err(
            "`order` is `simultaneous` (equal event times in any order, the default) or `strict`"
                .into(),
        )),
    }
}

fn parse_absence(ctx: &Ctx<'_>, v: &Node) -> Result<Absence, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Some(entries) = v.as_map() else {
        return Err(err(
            v.loc,
            "`absence` must be a mapping with `rule` and `within`".into(),
        ));
    };
    let mut rule = None;
    let mut within = None;
    for (k, val) in entries {
        match k.as_str().unwrap_or("") {
            "rule" => {
                rule = Some((
                    val.scalar_text().ok_or_else(|| {
                        err(val.loc, "`absence.rule` is a rule id or name".into())
                    })?,
                    val.loc,
                ));
            }
            "within" => within = Some(span(ctx, val, "absence.within")?),
            other => {
                return Err(err(
                    k.loc,
                    format!("unknown absence key `{other}` (known: rule, within)"),
                ));
            }
        }
    }
    let (rule, rule_loc) = rule.ok_or_else(|| err(v.loc, "`absence` needs `rule`".into()))?;
    let within = within.ok_or_else(|| err(v.loc, "`absence` needs `within`".into()))?;
    Ok(Absence {
        rule,
        rule_loc,
        within,
        loc: v.loc,
    })
}

fn parse_state(ctx: &Ctx<'_>, v: &Node) -> Result<StateRequest, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Some(entries) = v.as_map() else {
        return Err(err(v.loc, "`state` must be a mapping".into()));
    };
    let mut out = StateRequest {
        loc: v.loc,
        ..StateRequest::default()
    };
    for (k, val) in entries {
        let key = k.as_str().unwrap_or("");
        let n = match val.value {
            Value::Int(i) if i > 0 => i as u64,
            _ => {
                return Err(err(
                    val.loc,
                    format!("`state.{key}` takes a positive integer"),
                ));
            }
        };
        match key {
            "max_groups" => out.max_groups = Some(n),
            "max_events" => out.max_events = Some(n),
            other => {
                return Err(err(
                    k.loc,
                    format!("unknown state key `{other}` (known: max_groups, max_events)"),
                ));
            }
        }
    }
    Ok(out)
}

fn parse_score(
    ctx: &Ctx<'_>,
    v: &Node,
    kind: CorrelationType,
    rules: usize,
) -> Result<ScoreSpec, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Some(entries) = v.as_map() else {
        return Err(err(v.loc, "`score` must be a mapping".into()));
    };
    let mut out = ScoreSpec {
        loc: v.loc,
        ..ScoreSpec::default()
    };
    let count = |val: &Node, what: &str| match val.value {
        Value::Int(i) if (0..=100).contains(&i) => Ok(i as u32),
        _ => Err(err(
            val.loc,
            format!("`score.{what}` takes an integer from 0 to 100"),
        )),
    };
    for (k, val) in entries {
        match k.as_str().unwrap_or("") {
            "weights" => {
                let Some(w) = val.as_map() else {
                    return Err(err(
                        val.loc,
                        "`score.weights` maps reach, touched, stage and tempo to integers".into(),
                    ));
                };
                let mut weights = [None; 4];
                for (wk, wv) in w {
                    let name = wk.as_str().unwrap_or("");
                    let i = match name {
                        "reach" => 0,
                        "touched" => 1,
                        "stage" => 2,
                        "tempo" => 3,
                        other => {
                            return Err(err(
                                wk.loc,
                                format!(
                                    "unknown weight `{other}` (known: reach, touched, stage, tempo)"
                                ),
                            ));
                        }
                    };
                    weights[i] = Some(count(wv, &format!("weights.{name}"))?);
                }
                let Some(all) = weights.iter().copied().collect::<Option<Vec<u32>>>() else {
                    return Err(err(
                        val.loc,
                        "`score.weights` needs all of reach, touched, stage and tempo".into(),
                    ));
                };
                let total: u32 = all.iter().sum();
                if total != 100 {
                    return Err(err(
                        val.loc,
                        format!("`score.weights` add up to {total}, not 100"),
                    ));
                }
                out.weights = Some([all[0], all[1], all[2], all[3]]);
            }
            "escalate_at" => {
                if kind != CorrelationType::TemporalOrdered {
                    return Err(err(
                        k.loc,
                        "`score.escalate_at` applies to temporal_ordered correlations".into(),
                    ));
                }
                let n = count(val, "escalate_at")?;
                if n == 0 || n as usize >= rules {
                    return Err(err(
                        val.loc,
                        format!(
                            "`score.escalate_at` must be between 1 and {} (the stages before the last)",
                            rules.saturating_sub(1)
                        ),
                    ));
                }
                out.escalate_at = Some(n);
            }
            other => {
                return Err(err(
                    k.loc,
                    format!("unknown score key `{other}` (known: weights, escalate_at)"),
                ));
            }
        }
    }
    Ok(out)
}

fn span(ctx: &Ctx<'_>, v: &Node, what: &str) -> Result<Span, LoadError> {
    let err = |msg: String| ctx.err(v.loc, LoadErrorKind::Extension(msg));
    let text = v
        .scalar_text()
        .ok_or_else(|| err(format!("`{what}` is a duration such as 10m")))?;
    let s = Span::parse(&text).map_err(|e| err(format!("`{what}`: {e}")))?;
    if s <= Span::ZERO {
        return Err(err(format!("`{what}` must be positive")));
    }
    Ok(s)
}

fn references(ctx: &Ctx<'_>, v: &Node, what: &str) -> Result<Vec<(String, Loc)>, LoadError> {
    let err = |loc: Loc| {
        ctx.err(
            loc,
            LoadErrorKind::Extension(format!("`{what}` is a rule id or name, or a list of them")),
        )
    };
    match &v.value {
        Value::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.scalar_text()
                    .map(|s| (s, i.loc))
                    .ok_or_else(|| err(i.loc))
            })
            .collect(),
        Value::Str(s) => Ok(vec![(s.clone(), v.loc)]),
        _ => Err(err(v.loc)),
    }
}
