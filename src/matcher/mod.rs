//! Match: which detection rules an event satisfies.
//!
//! A [`RuleSet`] is compiled once from the loaded rules (see [`compile`]) and shared read-only by
//! every worker; each worker owns a [`Matcher`] with its scratch state (literal hits, candidate
//! list, one regex cache per field set). Per event: the profile's prefilter scans the needed
//! fields once with Aho-Corasick, only candidate rules are evaluated, and the result is the
//! list of matched detections. No rule text is interpreted per event.

pub mod compile;
pub mod logsource;
pub mod predicate;
pub mod prefilter;

use regex_automata::{Input, PatternID, PatternSet, meta};

pub use compile::{CompileOptions, IDENTITY_FIELD, KEYWORD_SLOT, compile};
use predicate::{EventFacts, Pred, with_text};
use prefilter::{LiteralTable, ProfilePlan};

use crate::decode::{EventView, ProfileKind, Schema, Slot};
use crate::sigma::{CorrelationType, Level, RuleMeta, Threshold};
use crate::time::Span;

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
    /// Condition the rule's log source adds on events of its product's profile (Windows and
    /// Linux Sysmon: channel and event id; agent: the event type).
    pub guard: Option<(ProfileKind, Expr)>,
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

/// A compiled correlation rule.
#[derive(Clone, Debug)]
pub struct CompiledCorrelation {
    pub rule: u32,
    pub kind: CorrelationType,
    /// The referenced rules (indices into [`RuleSet::meta`]), in the order written.
    pub stages: Vec<u32>,
    pub stage_names: Vec<String>,
    pub group_by: Vec<String>,
    /// `[stage][group-by field]`.
    pub group_fields: Vec<Vec<FieldSource>>,
    /// `[stage]`, for `value_count`.
    pub value_field: Option<Vec<FieldSource>>,
    pub timespan: Span,
    pub threshold: Option<Threshold>,
    pub generate: bool,
    pub level: Option<Level>,
}

/// All patterns of one field that need a regex engine (wildcards in the middle, `re`).
pub struct RegexSet {
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
    pub regex_sets: Vec<RegexSet>,
    pub literals: LiteralTable,
    pub plans: Vec<ProfilePlan>,
    pub identity_slot: Option<Slot>,
}

impl RuleSet {
    pub fn detection_meta(&self, d: u32) -> &RuleMeta {
        &self.meta[self.detections[d as usize].rule as usize]
    }
}

/// One worker's matching state.
pub struct Matcher {
    generation: u32,
    literal_seen: Vec<u32>,
    candidate_seen: Vec<u32>,
    candidates: Vec<u32>,
    regex_caches: Vec<meta::Cache>,
    regex_done: Vec<u32>,
    regex_hits: Vec<PatternSet>,
    scratch: String,
}

struct Facts<'a> {
    generation: u32,
    literal_seen: &'a [u32],
    rules: &'a RuleSet,
    regex_caches: &'a mut [meta::Cache],
    regex_done: &'a mut [u32],
    regex_hits: &'a mut [PatternSet],
    scratch: String,
}

impl EventFacts for Facts<'_> {
    fn literal_hit(&self, literal: u32) -> bool {
        self.literal_seen.get(literal as usize) == Some(&self.generation)
    }

    fn regex_hit(&mut self, view: &EventView<'_, '_>, slot_set: u32, pattern: u32) -> bool {
        let k = slot_set as usize;
        let Some(set) = self.rules.regex_sets.get(k) else {
            return false;
        };
        if self.regex_done[k] != self.generation {
            self.regex_done[k] = self.generation;
            let hits = &mut self.regex_hits[k];
            hits.clear();
            let cache = &mut self.regex_caches[k];
            let mut search = |v| {
                with_text(v, &mut self.scratch, |text| {
                    set.regex
                        .which_overlapping_matches_with(cache, &Input::new(text), hits);
                    false
                })
            };
            if set.slot == KEYWORD_SLOT {
                view.all_scalars().for_each(|v| {
                    search(v);
                });
            } else {
                view.values(set.slot).for_each(|v| {
                    search(v);
                });
            }
        }
        self.regex_hits[k].contains(PatternID::new_unchecked(pattern as usize))
    }
}

impl Matcher {
    pub fn new(rules: &RuleSet) -> Matcher {
        Matcher {
            generation: 0,
            literal_seen: vec![0; rules.literals.len()],
            candidate_seen: vec![0; rules.detections.len()],
            candidates: Vec::new(),
            regex_caches: rules
                .regex_sets
                .iter()
                .map(|s| s.regex.create_cache())
                .collect(),
            regex_done: vec![0; rules.regex_sets.len()],
            regex_hits: rules
                .regex_sets
                .iter()
                .map(|s| PatternSet::new(s.regex.pattern_len()))
                .collect(),
            scratch: String::new(),
        }
    }

    /// Appends to `out` the indices of the detections `view` satisfies, in ascending order.
    pub fn matches(&mut self, rules: &RuleSet, view: &EventView<'_, '_>, out: &mut Vec<u32>) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.literal_seen.iter_mut().for_each(|g| *g = 0);
            self.candidate_seen.iter_mut().for_each(|g| *g = 0);
            self.regex_done.iter_mut().for_each(|g| *g = 0);
            self.generation = 1;
        }
        let generation = self.generation;
        let plan = &rules.plans[view.profile_index() as usize];
        self.candidates.clear();
        for &d in &plan.always {
            self.candidate_seen[d as usize] = generation;
            self.candidates.push(d);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        for scan in &plan.scans {
            for v in view.values(scan.slot) {
                with_text(v, &mut scratch, |text| {
                    for m in scan.automaton.find_overlapping_iter(text) {
                        let lit = scan.literal_of_pattern[m.pattern().as_usize()];
                        if self.literal_seen[lit as usize] == generation {
                            continue;
                        }
                        self.literal_seen[lit as usize] = generation;
                        if let Some(ds) = plan.rules_of_literal.get(&lit) {
                            for &d in ds {
                                if self.candidate_seen[d as usize] != generation {
                                    self.candidate_seen[d as usize] = generation;
                                    self.candidates.push(d);
                                }
                            }
                        }
                    }
                    false
                });
            }
        }
        self.candidates.sort_unstable();
        let mut facts = Facts {
            generation,
            literal_seen: &self.literal_seen,
            rules,
            regex_caches: &mut self.regex_caches,
            regex_done: &mut self.regex_done,
            regex_hits: &mut self.regex_hits,
            scratch: String::new(),
        };
        for &d in &self.candidates {
            let det = &rules.detections[d as usize];
            if let Some((kind, g)) = &det.guard
                && view.kind == *kind
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
}

#[cfg(test)]
pub(crate) mod tests;
