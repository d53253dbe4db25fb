//! Rule-set diagnostics for `credtrail rules lint`: every load error of every rule (not only the
//! first), and warnings for rules that load but can never match what a source profile serves.
//!
//! Errors are exactly what [`sigma::load`] and [`matcher::compile()`] would refuse: a rule set
//! that lints without errors loads. Warnings are judgements about the rules against the
//! built-in profiles:
//!
//! - `logsource-product`: a product no dedicated profile serves (the rule runs only on ECS,
//!   OCSF and generic events);
//! - `logsource-category` / `logsource-service`: a category or service the product's profile
//!   cannot guard (a Windows category without a channel and event id, a Linux service that is
//!   not Sysmon for Linux): the rule runs unguarded on every event of the product, or its fields
//!   never occur there;
//! - `field`: a field the product's profile never provides, nested names included (CloudTrail,
//!   Kubernetes audit, Sysmon for Linux and agent tool calls have known schemas, see
//!   [`schema`]; Windows event data is open), with the known field it was probably meant to be
//!   (`objectRef.resorce`: did you mean `objectRef.resource`?). Not checked when processing
//!   pipelines are loaded: their field names belong to the pipeline's target schema (ECS,
//!   OCSF), not to the product's raw events;
//! - `all-single-value`: `|all` on one value, which the modifiers appendix does not allow;
//! - `regex-flavour`: a regular expression outside the specification's portable subset;
//! - `logsource-missing`: no `logsource`, which the specification makes mandatory.
//!
//! Notes (`held-back`) name the rules that did not load only because a rule they reference
//! did not: that rule's error is the one to fix. [`crate::tooling::sarif`] writes the findings
//! for code scanning.

pub mod schema;

use std::path::PathBuf;

use crate::decode::ProfileKind;
use crate::matcher::logsource;
use crate::matcher::{self, CompileOptions};
use crate::sigma::{self, Body, LoadError, LoadOptions, Pattern, Rule};
pub use schema::provides;

/// How serious a finding is: errors fail the load, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    /// Neither: what follows from an error reported elsewhere.
    Note,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One diagnostic with where it applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub file: PathBuf,
    pub line: u64,
    pub col: u64,
    pub severity: Severity,
    /// The rule's id (and title), when known.
    pub rule: Option<String>,
    /// A short stable name of what the finding is about (`modifier-chain`, `field`, ...).
    pub construct: String,
    pub message: String,
}

impl From<&LoadError> for Finding {
    fn from(e: &LoadError) -> Finding {
        Finding {
            file: e.file.clone(),
            line: e.loc.line,
            col: e.loc.col,
            severity: Severity::Error,
            rule: e.rule.clone(),
            construct: e.construct(),
            message: e.kind.to_string(),
        }
    }
}

/// The outcome of linting a set of paths.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub files: usize,
    /// Rule documents found (filters included).
    pub rules: usize,
    /// Rule documents that load with no error.
    pub loaded: usize,
    /// Findings sorted by file, line and column.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

/// Lints every rule file under `paths` as one rule set (correlations and filters may refer
/// across files, as at load time). Every rule that can load is loaded (see
/// [`matcher::loadable`]): each bad rule is one error, and a rule held back because a rule it
/// needs did not load is a note, not a second error.
pub fn lint(paths: &[PathBuf], load: &LoadOptions, compile: &CompileOptions) -> Report {
    let loaded = matcher::load_loadable(paths, load, compile, matcher::Want::Errors);
    let mut report = Report {
        files: loaded.files,
        rules: loaded.documents,
        loaded: loaded.loaded,
        findings: loaded.errors.iter().map(Finding::from).collect(),
    };
    let check_fields = load.pipelines.is_empty();
    for r in &loaded.parsed {
        warn_rule(r, check_fields, &mut report.findings);
    }
    for h in &loaded.catalog.held_back {
        report.findings.push(Finding {
            file: h.rule.meta.file.clone(),
            line: h.rule.meta.loc.line,
            col: h.rule.meta.loc.col,
            severity: Severity::Note,
            rule: Some(h.rule.meta.label()),
            construct: "held-back".into(),
            message: format!(
                "not loaded: it references `{}`, which did not load (see that rule's error)",
                h.needs
            ),
        });
    }
    report.findings.sort();
    report.findings.dedup();
    report
}

fn warn_rule(r: &Rule, check_fields: bool, out: &mut Vec<Finding>) {
    let warn = |line: u64, col: u64, construct: &str, message: String| Finding {
        file: r.meta.file.clone(),
        line,
        col,
        severity: Severity::Warning,
        rule: Some(r.meta.label()),
        construct: construct.into(),
        message,
    };
    let at = (r.meta.loc.line, r.meta.loc.col);
    let det = match &r.body {
        Body::Detection(d) => d,
        Body::Filter(f) => &f.detection,
        Body::Correlation(_) => return,
    };
    let ls = &r.meta.logsource;
    if ls.product.is_none() && ls.category.is_none() && ls.service.is_none() {
        out.push(warn(
            at.0,
            at.1,
            "logsource-missing",
            "no `logsource`: the rule runs on every event of every profile".into(),
        ));
    }
    let profile = ls.product.as_deref().and_then(dedicated_profile);
    if let Some(product) = ls.product.as_deref()
        && profile.is_none()
    {
        out.push(warn(
            at.0,
            at.1,
            "logsource-product",
            format!(
                "product `{product}` has no source profile; the rule runs only on ECS, OCSF and generic events"
            ),
        ));
    }
    if let Some(p) = profile {
        for m in logsource_mismatch(ls, p) {
            out.push(warn(at.0, at.1, m.0, m.1));
        }
    }
    for sel in &det.selections {
        for item in sel.alternatives.iter().flatten() {
            let (line, col) = (item.loc.line, item.loc.col);
            if item.all && item.written_values() == 1 {
                out.push(warn(
                    line,
                    col,
                    "all-single-value",
                    format!(
                        "`{}`: `all` on a single value is not allowed by the modifiers appendix",
                        item.spec
                    ),
                ));
            }
            let mut fields: Vec<&str> = item.field.iter().map(String::as_str).collect();
            for p in &item.patterns {
                match p {
                    Pattern::FieldRef { field, .. } => fields.push(field),
                    Pattern::Regex { re, .. } => {
                        if let Some(construct) = outside_portable_regex(re) {
                            out.push(warn(
                                line,
                                col,
                                "regex-flavour",
                                format!(
                                    "`{}`: {construct} is outside the specification's regular-expression subset; other Sigma tools may not run it",
                                    item.spec
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(p) = profile.filter(|_| check_fields) {
                for f in fields {
                    if !provides(p, f) {
                        let hint = schema::closest(p, f)
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default();
                        out.push(warn(
                            line,
                            col,
                            "field",
                            format!(
                                "field `{f}` never occurs in {} events; this item can never match there{hint}",
                                p.name()
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// The profile dedicated to a Sigma product, if any.
pub fn dedicated_profile(product: &str) -> Option<ProfileKind> {
    [
        ProfileKind::CloudTrail,
        ProfileKind::Windows,
        ProfileKind::K8sAudit,
        ProfileKind::Linux,
        ProfileKind::Agent,
    ]
    .into_iter()
    .find(|k| k.serves_product(Some(product)))
}

/// Warnings about a log source on its product's profile.
fn logsource_mismatch(ls: &sigma::LogSource, profile: ProfileKind) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let guarded = logsource::is_known(ls, profile);
    match profile {
        ProfileKind::Windows | ProfileKind::Linux => {
            if let Some(c) = &ls.category
                && !guarded
            {
                out.push((
                    "logsource-category",
                    format!(
                        "category `{c}` has no known channel and event id on {}: the rule runs on every {} event",
                        profile.name(),
                        profile.name()
                    ),
                ));
            }
            if let Some(s) = &ls.service
                && ls.category.is_none()
                && !guarded
            {
                out.push((
                    "logsource-service",
                    format!(
                        "service `{s}` is not a log the {} profile reads: the rule runs on every {} event",
                        profile.name(),
                        profile.name()
                    ),
                ));
            }
        }
        ProfileKind::CloudTrail | ProfileKind::K8sAudit | ProfileKind::Agent => {
            let expected = match profile {
                ProfileKind::CloudTrail => "cloudtrail",
                ProfileKind::K8sAudit => "audit",
                _ => "tool_calls",
            };
            if let Some(s) = &ls.service
                && s != expected
            {
                out.push((
                    "logsource-service",
                    format!(
                        "service `{s}`: the {} profile reads `{expected}` events only",
                        profile.name()
                    ),
                ));
            }
        }
        _ => {}
    }
    out
}

/// The first construct of `re` outside the specification's portable flavour (wildcard `.`,
/// anchors, quantifiers, character classes, groups, alternation), if any.
pub fn outside_portable_regex(re: &str) -> Option<&'static str> {
    let b = re.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // An escaped metacharacter is a literal; a class shorthand is not in the subset.
                match b.get(i + 1) {
                    Some(c) if c.is_ascii_alphanumeric() && !b"tnrfv".contains(c) => {
                        return Some("a backslash class or assertion (`\\d`, `\\w`, `\\b`, ...)");
                    }
                    _ => i += 2,
                }
            }
            b'(' if b.get(i + 1) == Some(&b'?') => return Some("a `(?...)` group or inline flag"),
            b'+' | b'*' | b'?' if matches!(b.get(i + 1), Some(b'?') | Some(b'+')) => {
                return Some("a lazy or possessive quantifier");
            }
            _ => i += 1,
        }
    }
    None
}
