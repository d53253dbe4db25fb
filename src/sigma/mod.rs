//! Sigma: reading rule files into typed rules, loudly.
//!
//! [`load`] walks files and directories (sorted, so loads are reproducible), parses every YAML
//! document under budgets, turns each into a [`Rule`] and resolves correlation references by
//! id or name. Every problem becomes a [`LoadError`] naming file, line, column, rule and
//! construct; all of them are returned, not just the first, so `rules lint` can show everything.

pub mod condition;
pub mod correlation;
pub mod error;
pub mod extension;
pub mod files;
pub mod filter;
pub mod processing;
pub mod rule;
pub mod selector;
pub mod suggest;
pub mod template;
pub mod value;
pub mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub use correlation::{Correlation, CorrelationType, Threshold};
pub use error::{LoadError, LoadErrorKind, LoadErrors};
pub use extension::{Extension, TieOrder};
pub use files::{collect_files, parse_file, parse_files};
pub use filter::Filter;
pub use rule::{Body, Detection, Level, LogSource, Rule, RuleMeta, Selection};
pub use value::{FieldItem, Pattern, Placeholders, SigmaString};
pub use yaml::{Loc, YamlBudget};

/// Options of a load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub budget: YamlBudget,
    pub limits: RuleLimits,
    /// Values for `expand` placeholders.
    pub placeholders: Placeholders,
    /// Processing pipelines applied to every rule after it is parsed, in order.
    pub pipelines: Vec<processing::Pipeline>,
}

impl LoadOptions {
    /// Options that apply `pipelines` (sorted by priority) and take their placeholder values.
    pub fn with_pipelines(pipelines: Vec<processing::Pipeline>) -> LoadOptions {
        LoadOptions {
            placeholders: processing::placeholders(&pipelines),
            pipelines,
            ..LoadOptions::default()
        }
    }
}

/// Bounds on what rule files may ask the matcher to hold (rule files are untrusted input; the
/// YAML budgets bound parsing, these bound the compiled result). Exceeding one is a load
/// error naming the file and rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleLimits {
    /// Most patterns (values after modifiers made their variants) in one rule.
    pub max_patterns_per_rule: usize,
    /// Most patterns in one file, over all its rules.
    pub max_patterns_per_file: usize,
}

impl Default for RuleLimits {
    fn default() -> Self {
        RuleLimits {
            max_patterns_per_rule: 20_000,
            max_patterns_per_file: 100_000,
        }
    }
}

/// Loaded rules with correlation references resolved.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub rules: Vec<Rule>,
    /// For each rule: the indices of the rules it correlates (empty for detections).
    pub refs: Vec<Vec<usize>>,
    /// For each rule: the indices of the rules its `credtrail:` extension names (`until`
    /// rules, then the `absence` rule), in that order.
    pub ext_refs: Vec<Vec<usize>>,
    /// For each rule: the (stage, detection rule) pairs its stage selectors took, besides the
    /// stages' own rules (see [`selector`]).
    pub selected: Vec<Vec<(usize, usize)>>,
    /// Rules that parsed but are not in the catalog because a rule they need did not load
    /// (that rule's error says why); never empty unless the load had errors.
    pub held_back: Vec<HeldBack>,
}

/// A rule kept out of a [`Catalog`] because a rule it references did not load.
#[derive(Clone, Debug)]
pub struct HeldBack {
    pub rule: Rule,
    /// The reference, as written, to the rule that did not load.
    pub needs: String,
}

impl Catalog {
    /// Whether rule `i` is referenced by a correlation that does not `generate` its matches.
    pub fn is_silenced(&self, i: usize) -> bool {
        self.silenced().get(i).copied().unwrap_or(false)
    }

    /// [`Catalog::is_silenced`] for every rule at once, in one pass over the references (asking
    /// rule by rule walked every correlation for every rule: 60 ms of SigmaHQ's Windows load).
    pub fn silenced(&self) -> Vec<bool> {
        let n = self.rules.len();
        let (mut referenced, mut generated) = (vec![false; n], vec![false; n]);
        for (c, refs) in self.refs.iter().enumerate() {
            let generate = matches!(&self.rules[c].body, Body::Correlation(corr) if corr.generate);
            let by_ext = self.ext_refs.get(c).into_iter().flatten().copied();
            let by_selector = self.selected.get(c).into_iter().flatten().map(|&(_, r)| r);
            for i in refs.iter().copied().chain(by_ext).chain(by_selector) {
                if i < n {
                    referenced[i] = true;
                    generated[i] |= generate;
                }
            }
        }
        referenced
            .into_iter()
            .zip(generated)
            .map(|(r, g)| r && !g)
            .collect()
    }
}

/// Whether a file is a rule file (sidecar test files `*.tests.yml` are not).
pub fn is_rule_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.ends_with(".yml") || name.ends_with(".yaml"))
        && !name.ends_with(".tests.yml")
        && !name.ends_with(".tests.yaml")
}

/// Parses rules from `text` as if read from `path`.
///
/// Each document stands alone: a document that is not valid YAML or not a valid rule is one
/// error (carrying the ids and names it declares, see [`LoadError::declared`]) and the file's
/// other documents still load.
pub fn parse_text(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
    rules: &mut Vec<Rule>,
    errors: &mut Vec<LoadError>,
) {
    let mut file_patterns = 0usize;
    for doc in yaml::parse_each_document(text, opts.budget) {
        let doc = match doc {
            yaml::Document::Parsed(doc) => doc,
            yaml::Document::Broken { error, declared } => {
                errors.push(LoadError {
                    file: path.to_path_buf(),
                    loc: error.loc,
                    rule: None,
                    kind: LoadErrorKind::Yaml(error.message),
                    declared,
                });
                continue;
            }
        };
        let parsed = rule::parse_rule(path, &doc, &opts.placeholders).and_then(|mut r| {
            processing::apply(&opts.pipelines, &mut r)?;
            Ok(r)
        });
        match parsed {
            Ok(r) => {
                let n = r.pattern_count();
                file_patterns += n;
                let limit = |what: String| LoadError {
                    declared: declared_by(&r),
                    file: path.to_path_buf(),
                    loc: r.meta.loc,
                    rule: Some(r.meta.label()),
                    kind: LoadErrorKind::Limit(what),
                };
                if n > opts.limits.max_patterns_per_rule {
                    errors.push(limit(format!(
                        "the rule has {n} patterns, over the limit of {} per rule",
                        opts.limits.max_patterns_per_rule
                    )));
                } else if file_patterns > opts.limits.max_patterns_per_file {
                    errors.push(limit(format!(
                        "the file's rules have more than {} patterns",
                        opts.limits.max_patterns_per_file
                    )));
                    return;
                } else {
                    rules.push(r);
                }
            }
            Err(mut e) => {
                e.declared = ["id", "name"]
                    .iter()
                    .filter_map(|k| doc.get(k).and_then(|n| n.scalar_text()))
                    .collect();
                errors.push(e);
            }
        }
    }
}

/// The id and name a rule is referenced by.
pub fn declared_by(r: &Rule) -> Vec<String> {
    r.meta
        .id
        .iter()
        .chain(r.meta.name.iter())
        .cloned()
        .collect()
}

/// Loads every rule under `paths`. All errors are collected; any error fails the load.
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Result<Catalog, LoadErrors> {
    let files = collect_files(paths).map_err(|e| LoadErrors(vec![e]))?;
    let (rules, mut errors) = parse_files(&files, opts);
    let catalog = resolve(rules, &mut errors);
    if errors.is_empty() {
        Ok(catalog)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Merges filters into the detections they name, checks ids and names are unique and
/// resolves correlation references.
///
/// A reference to a rule whose document failed with an error already in `errors` (see
/// [`LoadError::declared`]) is not reported again: a filter skips it, and a correlation that
/// needs it is held back ([`Catalog::held_back`]) rather than failing with a second error
/// of its own. One bad rule is one error.
pub fn resolve(rules: Vec<Rule>, errors: &mut Vec<LoadError>) -> Catalog {
    let mut unloaded: HashSet<String> = errors
        .iter()
        .flat_map(|e| e.declared.iter().cloned())
        .collect();
    let (rules, held_back) = hold_back(rules, &mut unloaded, errors);
    let rules = filter::apply(rules, &unloaded, errors);
    let mut by_ref: HashMap<String, usize> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        let err = |kind| LoadError {
            declared: Vec::new(),
            file: r.meta.file.clone(),
            loc: r.meta.loc,
            rule: Some(r.meta.label()),
            kind,
        };
        if let Some(id) = &r.meta.id {
            if let Some(&other) = by_ref.get(id) {
                errors.push(err(LoadErrorKind::DuplicateId {
                    id: id.clone(),
                    other: describe(&rules[other]),
                }));
            } else {
                by_ref.insert(id.clone(), i);
            }
        }
        if let Some(name) = &r.meta.name {
            if let Some(&other) = by_ref.get(name) {
                if Some(name) != r.meta.id.as_ref() {
                    errors.push(err(LoadErrorKind::DuplicateName {
                        name: name.clone(),
                        other: describe(&rules[other]),
                    }));
                }
            } else {
                by_ref.insert(name.clone(), i);
            }
        }
    }
    let mut refs = vec![Vec::new(); rules.len()];
    let mut ext_refs = vec![Vec::new(); rules.len()];
    for (i, r) in rules.iter().enumerate() {
        if let Body::Correlation(c) = &r.body {
            let written = c.rules.iter().map(|(s, l)| (s.as_str(), *l, false));
            let extension = c.ext.references().map(|(s, l)| (s, l, true));
            for (reference, loc, ext) in written.chain(extension) {
                match by_ref.get(reference) {
                    Some(&j) if j != i => {
                        if ext {
                            ext_refs[i].push(j)
                        } else {
                            refs[i].push(j)
                        }
                    }
                    _ => errors.push(LoadError {
                        declared: Vec::new(),
                        file: r.meta.file.clone(),
                        loc,
                        rule: Some(r.meta.label()),
                        kind: LoadErrorKind::UnknownRuleReference {
                            reference: reference.to_string(),
                            hint: suggest::hint(reference, by_ref.keys().map(String::as_str)),
                        },
                    }),
                }
            }
        }
    }
    let selected = select_stages(&rules, &refs, &by_ref, errors);
    // Correlations of correlations must not loop.
    for start in 0..rules.len() {
        let mut stack = vec![(start, 0usize)];
        let mut seen = vec![false; rules.len()];
        while let Some((at, depth)) = stack.pop() {
            for &next in &refs[at] {
                if next == start {
                    errors.push(LoadError {
                        declared: Vec::new(),
                        file: rules[start].meta.file.clone(),
                        loc: rules[start].meta.loc,
                        rule: Some(rules[start].meta.label()),
                        kind: LoadErrorKind::Correlation(
                            "correlation references form a cycle".into(),
                        ),
                    });
                    stack.clear();
                    break;
                }
                if !seen[next] && depth < 16 {
                    seen[next] = true;
                    stack.push((next, depth + 1));
                }
            }
        }
    }
    Catalog {
        rules,
        refs,
        ext_refs,
        selected,
        held_back,
    }
}

/// Every rule a correlation references: its stages, its extension's `until` and `absence`
/// rules and its stage selectors' `select.rules`.
fn references(r: &Rule) -> Vec<(&str, Loc)> {
    let Body::Correlation(c) = &r.body else {
        return Vec::new();
    };
    c.rules
        .iter()
        .map(|(s, l)| (s.as_str(), *l))
        .chain(c.ext.references())
        .chain(c.ext.selector_references())
        .collect()
}

/// Takes out of `rules` the correlations that reference a rule in `unloaded` (adding their own
/// ids and names to it, so correlations of correlations follow). Their references to rules
/// that neither loaded nor failed are still reported: only the follow-on error is not.
fn hold_back(
    mut rules: Vec<Rule>,
    unloaded: &mut HashSet<String>,
    errors: &mut Vec<LoadError>,
) -> (Vec<Rule>, Vec<HeldBack>) {
    let mut held = Vec::new();
    if unloaded.is_empty() {
        return (rules, held);
    }
    loop {
        let loaded: HashSet<&str> = rules
            .iter()
            .flat_map(|r| r.meta.id.iter().chain(r.meta.name.iter()))
            .map(String::as_str)
            .collect();
        let needs: Vec<Option<String>> = rules
            .iter()
            .map(|r| {
                references(r)
                    .into_iter()
                    .find(|(x, _)| !loaded.contains(x) && unloaded.contains(*x))
                    .map(|(x, _)| x.to_string())
            })
            .collect();
        if needs.iter().all(Option::is_none) {
            break;
        }
        let mut kept = Vec::with_capacity(rules.len());
        for (r, needs) in rules.into_iter().zip(needs) {
            match needs {
                None => kept.push(r),
                Some(needs) => {
                    unloaded.extend(declared_by(&r));
                    held.push(HeldBack { rule: r, needs });
                }
            }
        }
        rules = kept;
    }
    let known: Vec<&str> = rules
        .iter()
        .chain(held.iter().map(|h| &h.rule))
        .flat_map(|r| r.meta.id.iter().chain(r.meta.name.iter()))
        .map(String::as_str)
        .collect();
    for h in &held {
        for (reference, loc) in references(&h.rule) {
            if !known.contains(&reference) && !unloaded.contains(reference) {
                errors.push(LoadError {
                    file: h.rule.meta.file.clone(),
                    loc,
                    rule: Some(h.rule.meta.label()),
                    kind: LoadErrorKind::UnknownRuleReference {
                        reference: reference.to_string(),
                        hint: suggest::hint(reference, known.iter().copied()),
                    },
                    declared: declared_by(&h.rule),
                });
            }
        }
    }
    (rules, held)
}

/// For each correlation, the detection rules its stage selectors take, as (stage, rule)
/// pairs in rule order; a `select.rules` name no rule has is an error.
fn select_stages(
    rules: &[Rule],
    refs: &[Vec<usize>],
    by_ref: &HashMap<String, usize>,
    errors: &mut Vec<LoadError>,
) -> Vec<Vec<(usize, usize)>> {
    let mut selected = vec![Vec::new(); rules.len()];
    for (i, r) in rules.iter().enumerate() {
        let Body::Correlation(c) = &r.body else {
            continue;
        };
        for (reference, loc) in c.ext.selector_references() {
            if !by_ref.contains_key(reference) {
                errors.push(LoadError {
                    declared: Vec::new(),
                    file: r.meta.file.clone(),
                    loc,
                    rule: Some(r.meta.label()),
                    kind: LoadErrorKind::UnknownRuleReference {
                        reference: reference.to_string(),
                        hint: suggest::hint(reference, by_ref.keys().map(String::as_str)),
                    },
                });
            }
        }
        for (k, stage) in c.ext.stages.iter().enumerate() {
            let Some(select) = &stage.select else {
                continue;
            };
            let anchor = refs[i].get(k).copied();
            for (j, candidate) in rules.iter().enumerate() {
                if j != i
                    && Some(j) != anchor
                    && matches!(candidate.body, Body::Detection(_))
                    && select.selects(candidate)
                {
                    selected[i].push((k, j));
                }
            }
        }
    }
    selected
}

fn describe(r: &Rule) -> String {
    format!(
        "{} in {}:{}",
        r.meta.label(),
        r.meta.file.display(),
        r.meta.loc
    )
}
