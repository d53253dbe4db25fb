//! Stage selectors: a stage of a correlation that takes every loaded detection rule with a
//! given ATT&CK tag, not only the rule `correlation.rules` names.
//!
//! ```yaml
//! credtrail:
//!   stages:
//!     - name: credential access
//!       select:
//!         tags: [attack.credential-access, attack.t1003*]   # any of; `*` at the end: prefix
//!         product: windows          # only rules for this logsource product
//!         rules: [my_extra_rule]    # more rules by id or name (must be loaded)
//!         exclude:                  # none of these
//!           tags: [attack.t1003.006]
//!           rules: [noisy_rule_id]  # ids or names; rules not loaded are ignored
//!           status: [experimental, deprecated]
//!           level: [informational, low]
//! ```
//!
//! The rule named in `correlation.rules` for the stage stays its anchor (the file stays valid
//! Sigma, and without the corpus the chain runs on the anchor alone). Selected rules feed the
//! stage exactly as the anchor does, and like any referenced rule they do not alert on their own
//! unless the correlation says `generate: true`.

use super::error::{LoadError, LoadErrorKind};
use super::rule::{Ctx, Rule};
use super::yaml::{Loc, Node, Value};

/// An ATT&CK tag, or a prefix of tags when written with a trailing `*`; lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagPattern {
    pub text: String,
    pub prefix: bool,
}

impl TagPattern {
    fn matches(&self, tag: &str) -> bool {
        let tag = tag.to_ascii_lowercase();
        if self.prefix {
            tag.starts_with(&self.text)
        } else {
            tag == self.text
        }
    }
}

/// What a stage selector leaves out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exclusions {
    pub tags: Vec<TagPattern>,
    /// Rule ids or names; a name no loaded rule has is ignored (the corpus may be absent).
    pub rules: Vec<String>,
    /// `status` values, lower case.
    pub status: Vec<String>,
    /// `level` names, lower case.
    pub level: Vec<String>,
}

/// Which loaded rules a stage takes besides its anchor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageSelector {
    pub tags: Vec<TagPattern>,
    pub product: Option<String>,
    /// More rules by id or name, which must be loaded.
    pub rules: Vec<(String, Loc)>,
    pub exclude: Exclusions,
    pub loc: Loc,
}

impl StageSelector {
    /// Whether detection rule `rule` belongs to the stage (the anchor aside).
    pub fn selects(&self, rule: &Rule) -> bool {
        let meta = &rule.meta;
        let is = |n: &str| meta.id.as_deref() == Some(n) || meta.name.as_deref() == Some(n);
        let by_rule = self.rules.iter().any(|(r, _)| is(r));
        let by_tag = meta
            .tags
            .iter()
            .any(|t| self.tags.iter().any(|p| p.matches(t)));
        let product = self.product.as_deref().is_none_or(|p| {
            meta.logsource
                .product
                .as_deref()
                .is_some_and(|q| q.eq_ignore_ascii_case(p))
        });
        let ex = &self.exclude;
        let excluded = ex.rules.iter().any(|r| is(r))
            || meta
                .tags
                .iter()
                .any(|t| ex.tags.iter().any(|p| p.matches(t)))
            || meta
                .status
                .as_deref()
                .is_some_and(|s| ex.status.iter().any(|x| x.eq_ignore_ascii_case(s)))
            || meta
                .level
                .is_some_and(|l| ex.level.iter().any(|x| x == l.name()));
        by_rule || (by_tag && product && !excluded)
    }
}

const STATUSES: [&str; 5] = [
    "stable",
    "test",
    "experimental",
    "deprecated",
    "unsupported",
];
const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// Parses the `select` mapping of a stage.
pub(crate) fn parse(ctx: &Ctx<'_>, node: &Node) -> Result<StageSelector, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Some(entries) = node.as_map() else {
        return Err(err(node.loc, "`select` must be a mapping".into()));
    };
    let mut sel = StageSelector {
        loc: node.loc,
        ..StageSelector::default()
    };
    for (k, v) in entries {
        match k.as_str().unwrap_or("") {
            "tags" => sel.tags = tags(ctx, v)?,
            "product" => {
                sel.product = Some(
                    v.scalar_text()
                        .ok_or_else(|| err(v.loc, "`select.product` is a string".into()))?,
                )
            }
            "rules" => {
                sel.rules = strings(ctx, v, "select.rules")?;
            }
            "exclude" => sel.exclude = exclusions(ctx, v)?,
            other => {
                return Err(err(
                    k.loc,
                    format!("unknown key `select.{other}` (known: tags, product, rules, exclude)"),
                ));
            }
        }
    }
    if sel.tags.is_empty() && sel.rules.is_empty() {
        return Err(err(
            node.loc,
            "`select` needs `tags` or `rules`: it would add nothing to the stage".into(),
        ));
    }
    Ok(sel)
}

fn exclusions(ctx: &Ctx<'_>, node: &Node) -> Result<Exclusions, LoadError> {
    let err = |loc: Loc, msg: String| ctx.err(loc, LoadErrorKind::Extension(msg));
    let Some(entries) = node.as_map() else {
        return Err(err(node.loc, "`select.exclude` must be a mapping".into()));
    };
    let mut ex = Exclusions::default();
    for (k, v) in entries {
        match k.as_str().unwrap_or("") {
            "tags" => ex.tags = tags(ctx, v)?,
            "rules" => {
                ex.rules = strings(ctx, v, "select.exclude.rules")?
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect()
            }
            key @ ("status" | "level") => {
                let known: &[&str] = if key == "status" { &STATUSES } else { &LEVELS };
                for (s, loc) in strings(ctx, v, key)? {
                    let s = s.to_ascii_lowercase();
                    if !known.contains(&s.as_str()) {
                        return Err(err(
                            loc,
                            format!("unknown {key} `{s}` (known: {})", known.join(", ")),
                        ));
                    }
                    if key == "status" {
                        ex.status.push(s);
                    } else {
                        ex.level.push(s);
                    }
                }
            }
            other => {
                return Err(err(
                    k.loc,
                    format!(
                        "unknown key `select.exclude.{other}` (known: tags, rules, status, level)"
                    ),
                ));
            }
        }
    }
    Ok(ex)
}

fn tags(ctx: &Ctx<'_>, node: &Node) -> Result<Vec<TagPattern>, LoadError> {
    strings(ctx, node, "tags")?
        .into_iter()
        .map(|(s, loc)| {
            let s = s.to_ascii_lowercase();
            let (text, prefix) = match s.strip_suffix('*') {
                Some(t) => (t.to_string(), true),
                None => (s.clone(), false),
            };
            if text.is_empty() || text.contains(['*', '?']) {
                return Err(ctx.err(
                    loc,
                    LoadErrorKind::Extension(format!(
                        "tag pattern `{s}`: a tag, or a tag prefix ending in one `*`"
                    )),
                ));
            }
            Ok(TagPattern { text, prefix })
        })
        .collect()
}

fn strings(ctx: &Ctx<'_>, node: &Node, what: &str) -> Result<Vec<(String, Loc)>, LoadError> {
    let err = |loc: Loc| {
        ctx.err(
            loc,
            LoadErrorKind::Extension(format!("`{what}` is a string or a list of strings")),
        )
    };
    match &node.value {
        Value::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.scalar_text()
                    .map(|s| (s, i.loc))
                    .ok_or_else(|| err(i.loc))
            })
            .collect(),
        Value::Seq(_) => Err(err(node.loc)),
        _ => node
            .scalar_text()
            .map(|s| vec![(s, node.loc)])
            .ok_or_else(|| err(node.loc)),
    }
}
