//! Match: which detection rules an event satisfies.
//!
//! A [`RuleSet`] is compiled once from the loaded rules (see [`compile()`]) and shared read-only by
//! every worker; each worker owns a [`Matcher`] with its scratch state (literal hits, candidate
//! list, a regex cache per regex it has run). Per event: the values of its log-source guard fields
//! pick one of its profile's plans ([`partition`]), the plan's prefilter scans the needed
//! fields once ([`scanner`]: Aho-Corasick, entered where a packed searcher finds a literal can
//! start), only candidate rules are evaluated, and the result is the list of matched
//! detections. No rule text is interpreted per event.
//!
//! [`literal`] finds the fixed piece of a `re` pattern, so regex rules are prefiltered too.

pub mod compile;
pub mod corpus;
pub mod correlation;
pub mod literal;
pub mod loadable;
pub mod logsource;
pub mod memo;
pub mod partition;
pub mod predicate;
pub mod prefilter;
pub mod remap;
pub mod scanner;

use regex_automata::{Input, meta};

pub use compile::{
    CompileOptions, KEYWORD_SLOT, REGEX_CACHE_CAPACITY, REGEX_CACHE_FLOOR, compile,
    regex_cache_capacity,
};
pub use corpus::{WithCorpus, load_with_corpus};
pub use correlation::CorrelationLimits;
pub use loadable::{Loadable, Want, load_loadable};
use predicate::{EventFacts, Pred, with_text};
use prefilter::{LiteralTable, ProfilePlan};
pub use remap::TargetMap;

use crate::decode::{EventView, ProfileKind, Schema, Slot};
use crate::sigma::{CorrelationType, Level, RuleMeta, Threshold};
use crate::time::Span;
// Sigma's processing pipelines, the matcher and the alert all name it: shared vocabulary.
pub use crate::vocab::IDENTITY_FIELD;
use crate::vocab::StateBudget;

/// A boolean expression over predicates.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Pred(u32),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// Calls `f` with every predicate index.
    pub fn preds(&self, f: &mut dyn FnMut(u32)) {
        match self {
            Expr::Pred(p) => f(*p),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.preds(f)),
            Expr::Not(e) => e.preds(f),
        }
    }

    fn eval(
        &self,
        preds: &[Pred],
        view: &EventView<'_, '_>,
        facts: &mut dyn EventFacts,
        scratch: &mut String,
    ) -> bool {
        match self {
            Expr::Pred(p) => preds[*p as usize].eval(view, facts, scratch),
            Expr::And(v) => v.iter().all(|e| e.eval(preds, view, facts, scratch)),
            Expr::Or(v) => v.iter().any(|e| e.eval(preds, view, facts, scratch)),
            Expr::Not(e) => !e.eval(preds, view, facts, scratch),
        }
    }
}

/// A compiled detection rule.
#[derive(Clone, Debug)]
pub struct CompiledDetection {
    /// Index of the rule in [`RuleSet::meta`].
    pub rule: u32,
    pub cond: Expr,
    /// Conditions the rule's log source adds, per profile (Windows and Linux Sysmon: channel
    /// and event id; ECS: `winlog.*` or `event.category`; OCSF: the class; agent: the event
    /// type). Events of a profile not listed pass unguarded.
    pub guards: Vec<(ProfileKind, Expr)>,
    pub product: Option<String>,
    /// Correlations fed by this detection: (correlation index, bitmask of its stages).
    pub uses: Vec<(u32, u64)>,
    /// Whether a match is an alert on its own (not only a step of a non-generating correlation).
    pub standalone: bool,
}

/// Where a correlation reads a field for one of its stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldSource {
    Slot(Slot),
    /// The identity the source profile resolves (`credtrail.identity`).
    Identity,
    /// An alias that does not name this stage's rule: the value is absent.
    Missing,
}

/// When a correlation's condition is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decide {
    /// As soon as it holds, on the hit that makes it hold (conditions that more events can
    /// only make true: `gte`, `gt`, all stages of a chain). The window slides.
    Eager,
    /// When the window closes: the watermark passed `first event + timespan`. Conditions with
    /// an upper bound (`lt`, `lte`, `eq`, ranges) and the averages, percentiles and medians,
    /// which later events can change either way. The window opens at the first event after
    /// the previous one closed.
    AtWindowClose,
}

/// A correlation fed by another correlation's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    /// The referencing correlation (index into [`RuleSet::correlations`]).
    pub target: u32,
    /// The stage bit of this correlation in the target.
    pub stages: u64,
    /// For each group-by field of the target: the index of the value in this correlation's
    /// group key that fills it.
    pub group: Vec<usize>,
    /// The target's aggregated field, as an index into this correlation's group key.
    pub value: Option<usize>,
}

/// A compiled correlation rule.
///
/// Stage bits: `0..stages.len()` are the referenced rules in the order written, then one bit per
/// `until` rule of the extension ([`CompiledCorrelation::until_mask`]), then the `absence`
/// rule's bit.
#[derive(Clone, Debug)]
pub struct CompiledCorrelation {
    pub rule: u32,
    pub kind: CorrelationType,
    /// The referenced rules (indices into [`RuleSet::meta`]), in the order written.
    pub stages: Vec<u32>,
    pub stage_names: Vec<String>,
    pub group_by: Vec<String>,
    /// `[stage bit][group-by field]`.
    pub group_fields: Vec<Vec<FieldSource>>,
    /// `[stage bit]`, for `value_count` and the value aggregations.
    pub value_field: Option<Vec<FieldSource>>,
    pub timespan: Span,
    pub threshold: Option<Threshold>,
    /// `value_percentile`'s percentile (0-100); 50 for `value_median`.
    pub percentile: Option<f64>,
    pub decide: Decide,
    /// `temporal`: how many distinct stages must be present (from the condition).
    pub required: usize,
    /// Per stage: the longest gap allowed since the previous stage (`temporal_ordered`).
    pub max_gaps: Vec<Option<Span>>,
    /// `temporal_ordered`: whether steps with equal event times may come in any order.
    pub tie_order: crate::sigma::TieOrder,
    pub until_mask: u64,
    /// The absence rule's bit and how long the chain waits for it.
    pub absence: Option<(u64, Span)>,
    pub generate: bool,
    pub level: Option<Level>,
    /// Whether a finding is an alert (false when a non-generating correlation references it).
    pub standalone: bool,
    /// Correlations this one's findings feed.
    pub feeds: Vec<Feed>,
    /// The group-key values (indices) whose hash picks the shard; `None` is the whole key.
    /// A correlation referenced by another is routed by the referencing one's group-by, so
    /// both states of one chain live in one shard.
    pub route: Option<Vec<usize>>,
    pub budget: StateBudget,
    /// Blast-radius weights of this rule's findings (reach, touched, stage, tempo), from the
    /// extension; `None` uses the engine's.
    pub weights: Option<[u32; 4]>,
    /// Announce chains once they complete this many stages (extension; overrides the
    /// engine's `--escalate-at`).
    pub escalate_at: Option<u32>,
    /// The rule's runbook (`credtrail: runbook`), for the alert's `remediation`.
    pub runbook: Option<String>,
    /// The rule's message template (`credtrail: message`).
    pub message: Option<crate::sigma::template::MessageTemplate>,
}

impl CompiledCorrelation {
    /// The bits of the referenced rules.
    pub fn stage_mask(&self) -> u64 {
        low_bits(self.stages.len())
    }
}

/// A mask of the `n` lowest bits.
pub fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// A pattern that needs a regex engine (`re`, wildcards with `?` or non-ASCII folded text),
/// with the field it searches ([`KEYWORD_SLOT`]: every scalar of the event).
pub struct FieldRegex {
    pub slot: Slot,
    pub regex: meta::Regex,
}

/// A compiled, immutable rule set. Shared by reference between workers.
pub struct RuleSet {
    pub schema: Schema,
    /// Metadata of every loaded rule, detections and correlations, in load order.
    pub meta: Vec<RuleMeta>,
    pub detections: Vec<CompiledDetection>,
    pub correlations: Vec<CompiledCorrelation>,
    pub preds: Vec<Pred>,
    /// Distinct regex patterns, indexed by [`Test::Regex`](predicate::Test::Regex).
    pub regexes: Vec<FieldRegex>,
    pub literals: LiteralTable,
    /// Every profile's prefilter plans ([`partition`]).
    pub plans: Vec<ProfilePlan>,
    /// Per profile: which of `plans` an event gets.
    pub plan_index: Vec<partition::PlanIndex>,
    pub identity_slot: Option<Slot>,
}

impl RuleSet {
    /// Whether `target` names a rule of this set (a hit or state read back from outside).
    pub fn has_target(&self, target: crate::vocab::Target) -> bool {
        match target {
            crate::vocab::Target::Correlation(c) => (c as usize) < self.correlations.len(),
            crate::vocab::Target::Detection(d) => (d as usize) < self.detections.len(),
        }
    }

    /// The group-by positions hits of `target` are routed by (a correlation referenced by
    /// another routes by that one's group-by); `None`: by the whole group key.
    pub fn route_of(&self, target: crate::vocab::Target) -> Option<&[usize]> {
        match target {
            crate::vocab::Target::Correlation(c) => self
                .correlations
                .get(c as usize)
                .and_then(|c| c.route.as_deref()),
            crate::vocab::Target::Detection(_) => None,
        }
    }

    /// The plan of every rule that can run on the profile `profile` (an index into the
    /// schema's profiles).
    pub fn whole_plan(&self, profile: u16) -> Option<&ProfilePlan> {
        let p = self.plan_index.get(profile as usize)?.whole();
        self.plans.get(p as usize)
    }

    pub fn detection_meta(&self, d: u32) -> &RuleMeta {
        &self.meta[self.detections[d as usize].rule as usize]
    }
}

/// One worker's matching state.
pub struct Matcher {
    generation: u32,
    literal_seen: Vec<u32>,
    candidate_seen: Vec<u32>,
    /// Per detection: the bits of its clauses hit by this event (valid where `candidate_seen`
    /// holds this generation).
    clause_hits: Vec<u32>,
    candidates: Vec<u32>,
    /// Per scan of the current plan: the generation it was last run in.
    scan_done: Vec<u32>,
    /// Per regex: its search cache, made the first time the regex searches a text. Of SigmaHQ's 343
    /// Windows regexes most never meet their field in a given stream, and making all of them
    /// up front cost each worker 3 MB of memory touched before its first event.
    regex_caches: Vec<Option<Box<meta::Cache>>>,
    /// Per regex: the generation it was last run in, and its answer then.
    regex_done: Vec<u32>,
    regex_hits: Vec<bool>,
    scratch: String,
    /// The lowercased copy of a text the scanners' skips search.
    lower: Vec<u8>,
    memo: memo::ScanMemo,
}

struct Facts<'a> {
    generation: u32,
    literal_seen: &'a mut [u32],
    scan_done: &'a mut [u32],
    plan: &'a ProfilePlan,
    rules: &'a RuleSet,
    regex_caches: &'a mut [Option<Box<meta::Cache>>],
    regex_done: &'a mut [u32],
    regex_hits: &'a mut [bool],
    scratch: String,
    lower: &'a mut Vec<u8>,
    memo: &'a mut memo::ScanMemo,
}

impl EventFacts for Facts<'_> {
    fn literal_hit(&mut self, view: &EventView<'_, '_>, literal: u32) -> bool {
        if self.literal_seen.get(literal as usize) == Some(&self.generation) {
            return true;
        }
        // A field no necessary set needs was left unscanned: scan it now, once per event.
        let Some(slot) = self
            .rules
            .literals
            .entries
            .get(literal as usize)
            .map(|e| e.0)
        else {
            return false;
        };
        let Some(k) = self.plan.scan_of(slot) else {
            return false;
        };
        if self.scan_done[k] == self.generation {
            return false;
        }
        self.scan_done[k] = self.generation;
        let scan = &self.plan.scans[k];
        let (seen, generation) = (&mut *self.literal_seen, self.generation);
        scan_slot(
            &scan.automaton,
            view,
            scan.slot,
            &mut self.scratch,
            self.lower,
            self.memo,
            &mut |pattern| {
                seen[scan.literal_of_pattern[pattern] as usize] = generation;
            },
        );
        self.literal_seen.get(literal as usize) == Some(&self.generation)
    }

    fn regex_hit(&mut self, view: &EventView<'_, '_>, regex: u32) -> bool {
        let k = regex as usize;
        let Some(r) = self.rules.regexes.get(k) else {
            return false;
        };
        if self.regex_done[k] != self.generation {
            self.regex_done[k] = self.generation;
            let Some(cache) = self.regex_caches.get_mut(k) else {
                return false;
            };
            let scratch = &mut self.scratch;
            let mut search = |v| {
                with_text(v, scratch, |text| {
                    let cache = cache.get_or_insert_with(|| Box::new(r.regex.create_cache()));
                    r.regex
                        .search_half_with(cache, &Input::new(text).earliest(true))
                        .is_some()
                })
            };
            self.regex_hits[k] = if r.slot == KEYWORD_SLOT {
                view.all_scalars().any(&mut search)
            } else {
                view.values(r.slot).any(&mut search)
            };
        }
        self.regex_hits[k]
    }
}

/// Calls `f` with the text of every value of `slot` ([`KEYWORD_SLOT`]: every scalar of the
/// event).
fn each_text(
    view: &EventView<'_, '_>,
    slot: crate::decode::Slot,
    scratch: &mut String,
    f: &mut dyn FnMut(&str),
) {
    let mut visit = |v| {
        with_text(v, scratch, |text| {
            f(text);
            false
        })
    };
    if slot == KEYWORD_SLOT {
        view.all_scalars().for_each(|v| {
            visit(v);
        });
    } else {
        view.values(slot).for_each(|v| {
            visit(v);
        });
    }
}

/// Calls `f` with the pattern index of every literal of `scanner` that occurs in a value of
/// `slot`. For a scanner with a skip, the values are lowercased into `lower`, joined with the
/// scanner's separator, and searched in one call (the keyword slot's fifty-odd scalars of a
/// Windows event cost one search instead of fifty); without one, each value is walked as it
/// is (the automata fold case themselves: a lowercased copy would only cost), or answered by
/// the `memo` when the worker walked the same text a moment ago.
fn scan_slot(
    scanner: &prefilter::Scanner,
    view: &EventView<'_, '_>,
    slot: crate::decode::Slot,
    scratch: &mut String,
    lower: &mut Vec<u8>,
    memo: &mut memo::ScanMemo,
    f: &mut dyn FnMut(usize),
) {
    match scanner.separator().filter(|_| scanner.has_skip()) {
        Some(sep) => {
            lower.clear();
            each_text(view, slot, scratch, &mut |text| {
                if !lower.is_empty() {
                    lower.push(sep);
                }
                lower.extend_from_slice(text.as_bytes());
            });
            lower.make_ascii_lowercase();
            scanner.each_match_joined(lower, f);
        }
        None => each_text(view, slot, scratch, &mut |text| {
            memo.each_match(scanner, text, lower, &mut *f);
        }),
    }
}

impl Matcher {
    pub fn new(rules: &RuleSet) -> Matcher {
        Matcher {
            generation: 0,
            literal_seen: vec![0; rules.literals.len()],
            candidate_seen: vec![0; rules.detections.len()],
            clause_hits: vec![0; rules.detections.len()],
            candidates: Vec::new(),
            scan_done: vec![0; rules.plans.iter().map(|p| p.scans.len()).max().unwrap_or(0)],
            regex_caches: rules.regexes.iter().map(|_| None).collect(),
            regex_done: vec![0; rules.regexes.len()],
            regex_hits: vec![false; rules.regexes.len()],
            scratch: String::new(),
            lower: Vec::new(),
            memo: memo::ScanMemo::new(),
        }
    }

    /// Appends to `out` the indices of the detections `view` satisfies, in ascending order.
    pub fn matches(&mut self, rules: &RuleSet, view: &EventView<'_, '_>, out: &mut Vec<u32>) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.literal_seen.iter_mut().for_each(|g| *g = 0);
            self.candidate_seen.iter_mut().for_each(|g| *g = 0);
            self.regex_done.iter_mut().for_each(|g| *g = 0);
            self.scan_done.iter_mut().for_each(|g| *g = 0);
            self.generation = 1;
        }
        let generation = self.generation;
        let mut scratch = std::mem::take(&mut self.scratch);
        let plan = match rules.plan_index.get(view.profile_index() as usize) {
            Some(index) => &rules.plans[index.plan_of(view, &mut scratch) as usize],
            None => {
                self.scratch = scratch;
                return;
            }
        };
        self.candidates.clear();
        for &d in &plan.always {
            self.candidate_seen[d as usize] = generation;
            self.candidates.push(d);
        }
        for (k, scan) in plan.scans.iter().enumerate() {
            if !scan.eager {
                continue;
            }
            self.scan_done[k] = generation;
            let (seen, candidate_seen, clause_hits, candidates, lower, memo) = (
                &mut self.literal_seen,
                &mut self.candidate_seen,
                &mut self.clause_hits,
                &mut self.candidates,
                &mut self.lower,
                &mut self.memo,
            );
            scan_slot(
                &scan.automaton,
                view,
                scan.slot,
                &mut scratch,
                lower,
                memo,
                &mut |pattern| {
                    let lit = scan.literal_of_pattern[pattern];
                    if seen[lit as usize] == generation {
                        return;
                    }
                    seen[lit as usize] = generation;
                    for t in scan.targets_of(pattern) {
                        let d = t.detection as usize;
                        if candidate_seen[d] != generation {
                            candidate_seen[d] = generation;
                            clause_hits[d] = 0;
                        }
                        let bit = 1u32 << t.clause;
                        if clause_hits[d] & bit == 0 {
                            clause_hits[d] |= bit;
                            // Each clause's bit is set once: this holds once per event.
                            if clause_hits[d] == plan.full_mask[d] {
                                candidates.push(t.detection);
                            }
                        }
                    }
                },
            );
        }
        self.candidates.sort_unstable();
        let mut facts = Facts {
            generation,
            literal_seen: &mut self.literal_seen,
            scan_done: &mut self.scan_done,
            plan,
            rules,
            regex_caches: &mut self.regex_caches,
            regex_done: &mut self.regex_done,
            regex_hits: &mut self.regex_hits,
            scratch: String::new(),
            lower: &mut self.lower,
            memo: &mut self.memo,
        };
        for &d in &self.candidates {
            let det = &rules.detections[d as usize];
            if let Some((_, g)) = det.guards.iter().find(|(kind, _)| *kind == view.kind)
                && !g.eval(&rules.preds, view, &mut facts, &mut scratch)
            {
                continue;
            }
            if det.cond.eval(&rules.preds, view, &mut facts, &mut scratch) {
                out.push(d);
            }
        }
        self.scratch = scratch;
    }

    /// Number of detections evaluated in full for the last event (for benchmarks).
    pub fn last_candidates(&self) -> usize {
        self.candidates.len()
    }

    /// What the scan memo answered and walked so far (the replay summary, the metrics).
    pub fn memo_stats(&self) -> memo::MemoStats {
        self.memo.stats
    }
}

#[cfg(test)]
pub(crate) mod tests;
