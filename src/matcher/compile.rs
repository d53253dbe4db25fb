//! From a [`Catalog`] of parsed rules to a [`RuleSet`]: fields interned to slots, field items
//! compiled to predicates (wildcards of `*` and literals as [`GlobTest`]s, the rest of the
//! wildcards and `re` values as one regex each), log-source guards added, correlation
//! references and group-by fields resolved, and the per-profile prefilter built. The regex
//! patterns (size bounds, one engine per distinct pattern) live in `compile/patterns.rs`.

use std::collections::HashMap;

use super::correlation::{self, CorrelationLimits};
use super::logsource;
use super::predicate::{GlobTest, Pred, StrKind, StrTest, Test, ascii_foldable};
use super::prefilter::{self, LiteralTable};
use super::{CompiledDetection, Expr, RuleSet};
use crate::decode::{
    DecodeLimits, FieldTable, GenericPaths, IdentityTemplate, PrincipalForm, ProfileKind,
    ProfileSpec, Schema, Slot, SsoGrouping,
};
use crate::sigma::condition::Cond;
use crate::sigma::value::{Part, Pattern, SigmaString};
use crate::sigma::{Body, Catalog, FieldItem, LoadError, LoadErrorKind, LoadErrors, Loc, Rule};
use crate::vocab::IDENTITY_FIELD;

mod patterns;

pub use patterns::{
    REGEX_CACHE_CAPACITY, REGEX_CACHE_FLOOR, REGEX_PATTERN_MAX_LEN, REGEX_PATTERN_SIZE_LIMIT,
    RULESET_REGEX_BYTES_LIMIT, RULESET_REGEX_WEIGHT_LIMIT, glob_to_regex, hir_weight,
    regex_cache_capacity,
};

/// Longest string value a rule may compare, in bytes (after its modifiers: a `base64offset`
/// value counts its encodings). Detections compare short indicators; a longer value is a
/// rule that loads slowly or costs every event, not a detection.
pub const VALUE_MAX_LEN: usize = 8 << 10;

/// Bound on the bytes of every string value of a rule set together (the prefilter's automata
/// and the comparisons hold them).
pub const RULESET_LITERAL_BYTES_LIMIT: usize = 16 << 20;

/// The slot keyword regexes search: every scalar value of the event rather than one field.
pub const KEYWORD_SLOT: Slot = Slot::MAX;

/// Options that shape compilation.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    pub limits: DecodeLimits,
    /// Force one profile for every event (`--profile`).
    pub forced_profile: Option<ProfileKind>,
    pub generic: GenericPaths,
    /// Largest compiled size of one regex pattern's NFA, in bytes (default 64 MiB).
    pub regex_size_limit: Option<usize>,
    /// Identity templates replacing a profile's built-in priority list (`--identity`).
    pub identity: HashMap<ProfileKind, Vec<IdentityTemplate>>,
    /// How AWS Identity Center sessions are grouped (`aws_sso` in `--identity`).
    pub aws_sso: SsoGrouping,
    /// What correlation rules may ask of the engine (timespans, state budgets).
    pub correlation: CorrelationLimits,
    /// Largest expanded size of one pattern (default [`REGEX_PATTERN_SIZE_LIMIT`], see
    /// [`hir_weight`]):
    /// rule files are untrusted, and `(a{1000}){1000}` must fail the load naming its rule, not
    /// exhaust memory or hide inside a field's set.
    pub regex_pattern_size_limit: Option<usize>,
    /// Bytes every pattern's lazy-DFA cache may hold together, per worker (from the memory
    /// budget); `None`: [`REGEX_CACHE_CAPACITY`] per pattern.
    pub regex_cache_budget: Option<usize>,
}

struct Builder<'a> {
    catalog: &'a Catalog,
    fields: FieldTable,
    preds: Vec<Pred>,
    literals: LiteralTable,
    /// Every distinct (field, pattern) needing a regex, with the first rule and location that
    /// asked for it (for errors); a pattern's index is its [`Test::Regex`] id.
    regex_patterns: Vec<(Slot, String, usize, Loc)>,
    regex_ids: HashMap<(Slot, String), u32>,
    /// The expanded size of every distinct pattern so far (see `hir_weight`).
    regex_weight: u64,
    /// Bytes of every literal value so far (the prefilter automata hold them).
    literal_bytes: usize,
    pattern_size_limit: usize,
    errors: Vec<LoadError>,
}

/// Compiles `catalog`; any error fails the whole set.
pub fn compile(catalog: &Catalog, opts: &CompileOptions) -> Result<RuleSet, LoadErrors> {
    let mut b = Builder {
        catalog,
        fields: FieldTable::default(),
        preds: Vec::new(),
        literals: LiteralTable::default(),
        regex_patterns: Vec::new(),
        regex_ids: HashMap::new(),
        regex_weight: 0,
        literal_bytes: 0,
        pattern_size_limit: opts
            .regex_pattern_size_limit
            .unwrap_or(REGEX_PATTERN_SIZE_LIMIT),
        errors: Vec::new(),
    };
    let mut detections = Vec::new();
    let mut detection_of_rule = vec![None; catalog.rules.len()];
    for (i, rule) in catalog.rules.iter().enumerate() {
        if let Body::Detection(det) = &rule.body
            && let Some(d) = b.detection(i, rule, det)
        {
            detection_of_rule[i] = Some(detections.len() as u32);
            detections.push(d);
        }
    }
    let mut correlations = Vec::new();
    let mut correlation_of_rule = vec![None; catalog.rules.len()];
    for (i, rule) in catalog.rules.iter().enumerate() {
        if let Body::Correlation(c) = &rule.body
            && let Some(cc) = correlation::compile(
                catalog,
                i,
                rule,
                c,
                &mut b.fields,
                &opts.correlation,
                &mut b.errors,
            )
        {
            correlation_of_rule[i] = Some(correlations.len() as u32);
            correlations.push(cc);
        }
    }
    correlation::link(
        catalog,
        &mut correlations,
        &mut detections,
        &detection_of_rule,
        &correlation_of_rule,
        &mut b.errors,
    );
    let specs: Vec<ProfileSpec> = ProfileKind::ALL
        .iter()
        .map(|k| {
            let mut spec = ProfileSpec::builtin(*k, &opts.generic);
            if let PrincipalForm::Aws { sso } = &mut spec.principal {
                *sso = opts.aws_sso;
            }
            // Templates from an identity file say exactly what to group by (`userIdentity.arn`:
            // one chain per session): what they build is taken as written, not respelled.
            if let Some(templates) = opts.identity.get(k) {
                spec.identity = templates.clone();
                spec.principal = PrincipalForm::AsWritten;
            }
            spec
        })
        .collect();
    // A set with errors fails whole: building its automata (seconds for a hostile set) would
    // only find more.
    if !b.errors.is_empty() {
        return Err(LoadErrors(b.errors));
    }
    let regexes = b.regexes(opts);
    if !b.errors.is_empty() {
        return Err(LoadErrors(b.errors));
    }
    let Builder {
        fields,
        preds,
        literals,
        ..
    } = b;
    let mut schema = Schema::new(fields, specs, opts.limits, opts.forced_profile);
    schema.finish();
    let prefilter::Plans {
        plans,
        index: plan_index,
    } = prefilter::build_plans(&schema, catalog, &detections, &preds, &literals);
    let identity_slot = schema.fields.get(IDENTITY_FIELD);
    Ok(RuleSet {
        meta: catalog.rules.iter().map(|r| r.meta.clone()).collect(),
        schema,
        detections,
        correlations,
        preds,
        regexes,
        literals,
        plans,
        plan_index,
        identity_slot,
    })
}

impl Builder<'_> {
    fn err(&self, rule: usize, loc: Loc, kind: LoadErrorKind) -> LoadError {
        let meta = &self.catalog.rules[rule].meta;
        LoadError {
            declared: crate::sigma::declared_by(&self.catalog.rules[rule]),
            file: meta.file.clone(),
            loc,
            rule: Some(meta.label()),
            kind,
        }
    }

    fn detection(
        &mut self,
        index: usize,
        rule: &Rule,
        det: &crate::sigma::Detection,
    ) -> Option<CompiledDetection> {
        let mut selection_exprs = Vec::with_capacity(det.selections.len());
        for sel in &det.selections {
            let mut alternatives = Vec::new();
            for alt in &sel.alternatives {
                let mut items = Vec::new();
                for item in alt {
                    items.push(self.item_expr(index, item)?);
                }
                alternatives.push(if items.len() == 1 {
                    items.remove(0)
                } else {
                    Expr::And(items)
                });
            }
            selection_exprs.push(if alternatives.len() == 1 {
                alternatives.remove(0)
            } else {
                Expr::Or(alternatives)
            });
        }
        let cond = to_expr(&det.condition, &selection_exprs);
        let guards = ProfileKind::ALL
            .into_iter()
            .filter_map(|profile| {
                let g = logsource::guard(&rule.meta.logsource, profile)?;
                Some((profile, self.guard_expr(&g)))
            })
            .collect();
        Some(CompiledDetection {
            rule: index as u32,
            cond,
            guards,
            product: rule.meta.logsource.product.clone(),
            uses: Vec::new(),
            standalone: true,
        })
    }

    /// A guard as an expression: an `or` of alternatives, each an `and` of "field is one of".
    fn guard_expr(&mut self, guard: &logsource::Guard) -> Expr {
        let mut alternatives: Vec<Expr> = guard
            .alternatives
            .iter()
            .map(|conditions| {
                let mut all: Vec<Expr> = conditions
                    .iter()
                    .map(|c| {
                        let slot = self.fields.intern(c.field);
                        let tests: Vec<Test> = c
                            .values
                            .iter()
                            .map(|v| {
                                Test::Str(StrTest {
                                    kind: StrKind::Exact,
                                    text: v.to_ascii_lowercase().into(),
                                    cased: false,
                                    literal: None,
                                })
                            })
                            .collect();
                        let needles = vec![None; tests.len()];
                        Expr::Pred(self.push_pred(Pred {
                            slot: Some(slot),
                            tests,
                            needles,
                            all: false,
                            negate: false,
                        }))
                    })
                    .collect();
                if all.len() == 1 {
                    all.remove(0)
                } else {
                    Expr::And(all)
                }
            })
            .collect();
        if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Expr::Or(alternatives)
        }
    }

    fn push_pred(&mut self, p: Pred) -> u32 {
        self.preds.push(p);
        (self.preds.len() - 1) as u32
    }

    /// A field item as an expression: one predicate, or, when `all` meets values that
    /// modifiers turned into several alternatives, an `and` over the written values of an
    /// `or` over each one's alternatives.
    fn item_expr(&mut self, rule: usize, item: &FieldItem) -> Option<Expr> {
        let values = item.written_values();
        if !item.all || values == item.patterns.len() {
            let p = self.pred(rule, item, 0..item.patterns.len(), item.all, item.negate)?;
            return Some(Expr::Pred(p));
        }
        let mut parts = Vec::with_capacity(values);
        let mut start = 0;
        while start < item.patterns.len() {
            let value = item.value_of[start];
            let end = start
                + item.value_of[start..]
                    .iter()
                    .take_while(|&&v| v == value)
                    .count();
            parts.push(Expr::Pred(self.pred(
                rule,
                item,
                start..end,
                false,
                false,
            )?));
            start = end;
        }
        let all = Expr::And(parts);
        Some(if item.negate {
            Expr::Not(Box::new(all))
        } else {
            all
        })
    }

    fn pred(
        &mut self,
        rule: usize,
        item: &FieldItem,
        range: std::ops::Range<usize>,
        all: bool,
        negate: bool,
    ) -> Option<u32> {
        let slot = item.field.as_deref().map(|f| self.fields.intern(f));
        let patterns = &item.patterns[range];
        let mut tests = Vec::with_capacity(patterns.len());
        let mut needles = Vec::with_capacity(patterns.len());
        for p in patterns {
            let (test, needle) = match p {
                Pattern::Str { s, cased } => self.str_test(rule, item, slot, s, *cased)?,
                Pattern::Regex {
                    re,
                    insensitive,
                    multiline,
                    dot_all,
                } => {
                    // Keyword regexes search every value of the event.
                    let slot = slot.unwrap_or(KEYWORD_SLOT);
                    let mut flags = String::new();
                    if *insensitive {
                        flags.push('i');
                    }
                    if *multiline {
                        flags.push('m');
                    }
                    if *dot_all {
                        flags.push('s');
                    }
                    let pattern = if flags.is_empty() {
                        re.clone()
                    } else {
                        format!("(?{flags}){re}")
                    };
                    // A literal every match contains lets the prefilter skip the rule.
                    let needle = super::literal::required_literal(&pattern)
                        .map(|l| self.literals.intern(slot, &l));
                    (self.regex_test(rule, item, slot, pattern)?, needle)
                }
                Pattern::Cidr(c) => (Test::Cidr(*c), None),
                Pattern::Num { op, value } => (Test::Num(*op, *value), None),
                Pattern::Exists(b) => (Test::Exists(*b), None),
                Pattern::Null => (Test::Null, None),
                Pattern::FieldRef {
                    field,
                    before,
                    after,
                    cased,
                } => {
                    let other = self.fields.intern(field);
                    (
                        Test::FieldRef {
                            other,
                            before: *before,
                            after: *after,
                            cased: *cased,
                        },
                        None,
                    )
                }
                Pattern::Time { part, value } => (Test::Time(*part, *value), None),
            };
            tests.push(test);
            needles.push(needle);
        }
        if slot.is_none()
            && tests
                .iter()
                .any(|t| !matches!(t, Test::Str(_) | Test::Glob(_) | Test::Regex(_)))
        {
            self.errors.push(self.err(
                rule,
                item.loc,
                LoadErrorKind::Unsupported(format!("modifier in keyword search `{}`", item.spec)),
            ));
            return None;
        }
        Some(self.push_pred(Pred {
            slot,
            tests,
            needles,
            all,
            negate,
        }))
    }

    /// A string pattern: a fast comparison when it has at most a leading and a trailing
    /// wildcard, else a regex. Returns the test and its prefilter needle.
    fn str_test(
        &mut self,
        rule: usize,
        item: &FieldItem,
        slot: Option<Slot>,
        s: &SigmaString,
        cased: bool,
    ) -> Option<(Test, Option<u32>)> {
        // A keyword search (no field) looks at every scalar: its literals live in the keyword
        // slot's automaton, which scans them all once per event, and its regex searches them all.
        let slot = slot.unwrap_or(KEYWORD_SLOT);
        let bytes: usize = s.literals().map(str::len).sum();
        if bytes > VALUE_MAX_LEN {
            self.errors.push(self.err(
                rule,
                item.loc,
                LoadErrorKind::Limit(format!(
                    "a value of `{}` is {bytes} bytes long, over the limit of {VALUE_MAX_LEN}",
                    item.spec
                )),
            ));
            return None;
        }
        if self.literal_bytes + bytes > RULESET_LITERAL_BYTES_LIMIT {
            self.errors.push(self.err(
                rule,
                item.loc,
                LoadErrorKind::Limit(format!(
                    "a value of `{}` takes the rule set's values over their budget of {RULESET_LITERAL_BYTES_LIMIT} bytes together",
                    item.spec
                )),
            ));
            return None;
        }
        self.literal_bytes += bytes;
        let parts = &s.0;
        let lead = matches!(parts.first(), Some(Part::Star));
        let trail = parts.len() > 1 && matches!(parts.last(), Some(Part::Star));
        let inner: Vec<&Part> = parts
            .iter()
            .skip(usize::from(lead))
            .take(parts.len() - usize::from(lead) - usize::from(trail))
            .collect();
        let simple_text = match inner.as_slice() {
            [] => Some(String::new()),
            [Part::Lit(t)] => Some(t.clone()),
            _ => None,
        };
        if let Some(text) = simple_text.filter(|t| ascii_foldable(t, cased)) {
            let kind = match (lead, trail) {
                (false, false) => StrKind::Exact,
                (false, true) => StrKind::Prefix,
                (true, false) => StrKind::Suffix,
                (true, true) => StrKind::Contains,
            };
            let stored = if cased {
                text.clone()
            } else {
                text.to_ascii_lowercase()
            };
            let literal =
                (!text.is_empty()).then(|| self.literals.intern(slot, &text.to_ascii_lowercase()));
            return Some((
                Test::Str(StrTest {
                    kind,
                    text: stored.into(),
                    cased,
                    literal,
                }),
                literal,
            ));
        }
        // The longest literal piece is the prefilter needle (any match must contain it), if
        // the automaton's ASCII folding finds it however the event spells it (no cased letter
        // beyond ASCII: an emoji piece of a `?` pattern can be a needle, `é` cannot).
        let needle = s
            .literals()
            .filter(|l| ascii_foldable(l, false))
            .max_by_key(|l| l.len())
            .filter(|l| !l.is_empty())
            .map(|l| self.literals.intern(slot, &l.to_ascii_lowercase()));
        if let Some(mut glob) = star_glob(s, cased) {
            glob.literals = glob
                .pieces
                .iter()
                .map(|p| self.literals.intern(slot, &p.to_ascii_lowercase()))
                .collect();
            return Some((Test::Glob(glob), needle));
        }
        // `?` (one character, not one byte) or non-ASCII text folded by Unicode: a regex, run
        // only for the rules the prefilter left as candidates.
        let regex = glob_to_regex(s, cased);
        Some((self.regex_test(rule, item, slot, regex)?, needle))
    }
}

/// `s` as a [`GlobTest`] when its only wildcard is `*` and its text folds as ASCII (or is
/// cased); `None` when it needs a regex.
pub(crate) fn star_glob(s: &SigmaString, cased: bool) -> Option<GlobTest> {
    let parts = &s.0;
    if parts
        .iter()
        .any(|p| matches!(p, Part::One) || matches!(p, Part::Lit(t) if !ascii_foldable(t, cased)))
    {
        return None;
    }
    // Adjacent literals are one piece: only a `*` lets text come between them.
    let mut pieces: Vec<Box<str>> = Vec::new();
    let mut current = String::new();
    for p in parts {
        match p {
            Part::Lit(t) if cased => current.push_str(t),
            Part::Lit(t) => current.push_str(&t.to_ascii_lowercase()),
            _ if current.is_empty() => {}
            _ => pieces.push(std::mem::take(&mut current).into()),
        }
    }
    if !current.is_empty() {
        pieces.push(current.into());
    }
    Some(GlobTest {
        anchored_start: !matches!(parts.first(), Some(Part::Star)),
        anchored_end: !matches!(parts.last(), Some(Part::Star)),
        pieces,
        cased,
        literals: Vec::new(),
    })
}

fn to_expr(c: &Cond, selections: &[Expr]) -> Expr {
    match c {
        Cond::Sel(i) => selections[*i].clone(),
        Cond::And(v) => Expr::And(v.iter().map(|c| to_expr(c, selections)).collect()),
        Cond::Or(v) => Expr::Or(v.iter().map(|c| to_expr(c, selections)).collect()),
        Cond::Not(c) => Expr::Not(Box::new(to_expr(c, selections))),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

impl LoadErrors {
    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
