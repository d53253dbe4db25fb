//! The prefilter: which rules are worth evaluating for this event.
//!
//! For every detection we derive a *necessary literal set*: literals (field, text) such that if
//! the detection matches, at least one of them occurs in its field, ignoring ASCII case. An
//! `and` may pick any child's set (we pick the most selective), an `or` needs the union of all
//! children, a `not` gives nothing. Per source profile and field, one Aho-Corasick automaton
//! holds every literal of the rules that can run on that profile; scanning an event's fields
//! with them marks the literals present, which (a) answers every case-insensitive `contains`
//! test outright and (b) makes candidates of the rules whose necessary set was hit. Rules with
//! no necessary set (only `not`, numeric or `exists` tests) are always candidates. Keyword
//! searches (values with no field) have their own automaton, fed every scalar of the event
//! once ([`crate::matcher::KEYWORD_SLOT`]): a keyword rule used to compare each of its words
//! with every scalar of every event, half of the matching time on SigmaHQ's Windows rules.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::predicate::{Pred, Test};
use super::{CompiledDetection, Expr};
use crate::decode::{Schema, Slot};
use crate::sigma::Catalog;

/// Interned literals: (field slot, ASCII-lowercase text) → id.
#[derive(Clone, Debug, Default)]
pub struct LiteralTable {
    pub entries: Vec<(Slot, Box<str>)>,
    by_key: HashMap<(Slot, Box<str>), u32>,
}

impl LiteralTable {
    pub fn intern(&mut self, slot: Slot, text: &str) -> u32 {
        let key = (slot, Box::<str>::from(text));
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        let id = self.entries.len() as u32;
        self.entries.push(key.clone());
        self.by_key.insert(key, id);
        id
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One field's automaton in a plan.
pub struct SlotScan {
    pub slot: Slot,
    /// Whether the field holds a literal of some rule's necessary set: eager fields are scanned
    /// for every event (they choose the candidates); the others only when a candidate's
    /// `contains` test asks, at most once per event.
    pub eager: bool,
    pub automaton: AhoCorasick,
    /// Automaton pattern index → literal id.
    pub literal_of_pattern: Vec<u32>,
}

/// The prefilter for one source profile.
pub struct ProfilePlan {
    pub scans: Vec<SlotScan>,
    /// Slot → index in `scans`.
    pub scan_of_slot: HashMap<Slot, usize>,
    /// Literal id → detections made candidates by it (only detections that run on this profile).
    pub rules_of_literal: HashMap<u32, Vec<u32>>,
    /// Detections that run on this profile with no necessary literal.
    pub always: Vec<u32>,
    /// Number of detections that can run on this profile.
    pub applicable: usize,
}

/// Builds a plan per profile of `schema`.
pub fn build_plans(
    schema: &Schema,
    catalog: &Catalog,
    detections: &[CompiledDetection],
    preds: &[Pred],
    literals: &LiteralTable,
) -> Vec<ProfilePlan> {
    let necessary: Vec<Option<Vec<u32>>> = detections
        .iter()
        .map(|d| necessary_set(&d.cond, preds, literals))
        .collect();
    let detection_literals: Vec<Vec<u32>> = detections
        .iter()
        .map(|d| {
            let mut out = Vec::new();
            d.cond.preds(&mut |p| {
                let pred = &preds[p as usize];
                out.extend(pred.needles.iter().flatten().copied());
                // A glob asks about each of its pieces: they must be in the field's automaton.
                for t in &pred.tests {
                    if let Test::Glob(g) = t {
                        out.extend(g.literals.iter().copied());
                    }
                }
            });
            out.sort_unstable();
            out.dedup();
            out
        })
        .collect();
    // Profiles that serve the same products ask for the same literal sets: each automaton is
    // built once (building them was most of the load time of SigmaHQ's Windows rules).
    let mut built: HashMap<Vec<u32>, AhoCorasick> = HashMap::new();
    schema
        .profiles
        .iter()
        .map(|profile| {
            let kind = profile.spec.kind;
            let mut by_slot: HashMap<Slot, Vec<u32>> = HashMap::new();
            let mut rules_of_literal: HashMap<u32, Vec<u32>> = HashMap::new();
            let mut always = Vec::new();
            let mut applicable = 0;
            for (i, d) in detections.iter().enumerate() {
                let product = catalog.rules[d.rule as usize]
                    .meta
                    .logsource
                    .product
                    .as_deref();
                if !kind.serves_product(product) {
                    continue;
                }
                applicable += 1;
                for &lit in &detection_literals[i] {
                    by_slot
                        .entry(literals.entries[lit as usize].0)
                        .or_default()
                        .push(lit);
                }
                match &necessary[i] {
                    Some(set) => {
                        for &lit in set {
                            rules_of_literal.entry(lit).or_default().push(i as u32);
                        }
                    }
                    None => always.push(i as u32),
                }
            }
            let mut slots: Vec<Slot> = by_slot.keys().copied().collect();
            slots.sort_unstable();
            let necessary_slots: std::collections::HashSet<Slot> = rules_of_literal
                .keys()
                .map(|&l| literals.entries[l as usize].0)
                .collect();
            let scans: Vec<SlotScan> = slots
                .into_iter()
                .filter_map(|slot| {
                    let mut lits = by_slot.remove(&slot).unwrap_or_default();
                    lits.sort_unstable();
                    lits.dedup();
                    let automaton = match built.get(&lits) {
                        // Cloning shares the automaton.
                        Some(a) => a.clone(),
                        None => {
                            let texts: Vec<&str> = lits
                                .iter()
                                .map(|&l| &*literals.entries[l as usize].1)
                                .collect();
                            let a = AhoCorasickBuilder::new()
                                .ascii_case_insensitive(true)
                                .match_kind(MatchKind::Standard)
                                .kind(Some(automaton_kind(&texts)))
                                .build(&texts)
                                .ok()?;
                            built.insert(lits.clone(), a.clone());
                            a
                        }
                    };
                    Some(SlotScan {
                        slot,
                        eager: necessary_slots.contains(&slot),
                        automaton,
                        literal_of_pattern: lits,
                    })
                })
                .collect();
            for v in rules_of_literal.values_mut() {
                v.sort_unstable();
                v.dedup();
            }
            let scan_of_slot = scans
                .iter()
                .enumerate()
                .map(|(i, s): (usize, &SlotScan)| (s.slot, i))
                .collect();
            ProfilePlan {
                scans,
                scan_of_slot,
                rules_of_literal,
                always,
                applicable,
            }
        })
        .collect()
}

/// Most literal bytes a field's automaton may hold for it to be built as a DFA.
const DFA_MAX_BYTES: usize = 4 << 10;

/// The automaton for a field's literals. A DFA scans fastest, but building one walks failure
/// links for every state and byte class, and a long repetitive literal (`abab...`, 30 KB; rule
/// files are untrusted) makes those walks quadratic: a rule set took a minute to load. Beyond
/// [`DFA_MAX_BYTES`] of literals the contiguous NFA is built instead, in time linear in them.
fn automaton_kind(texts: &[&str]) -> AhoCorasickKind {
    if texts.iter().map(|t| t.len()).sum::<usize>() <= DFA_MAX_BYTES {
        AhoCorasickKind::DFA
    } else {
        AhoCorasickKind::ContiguousNFA
    }
}

/// The necessary literal set of `expr`, or `None` when there is none.
pub fn necessary_set(expr: &Expr, preds: &[Pred], literals: &LiteralTable) -> Option<Vec<u32>> {
    match expr {
        Expr::Pred(p) => pred_set(&preds[*p as usize], literals),
        Expr::Not(_) => None,
        Expr::Or(children) => {
            let mut union = Vec::new();
            for c in children {
                union.extend(necessary_set(c, preds, literals)?);
            }
            union.sort_unstable();
            union.dedup();
            Some(union)
        }
        Expr::And(children) => children
            .iter()
            .filter_map(|c| necessary_set(c, preds, literals))
            .max_by_key(|set| selectivity(set, literals)),
    }
}

fn pred_set(p: &Pred, literals: &LiteralTable) -> Option<Vec<u32>> {
    // A keyword search (no field) has needles in the keyword slot, whose automaton scans every
    // scalar of the event: keyword rules are candidates only when one of their words occurs.
    if p.negate {
        return None;
    }
    if p.all {
        // Every test must hold, so any one test's needle is necessary: take the longest.
        return p
            .needles
            .iter()
            .flatten()
            .max_by_key(|&&l| literals.entries[l as usize].1.len())
            .map(|&l| vec![l]);
    }
    let mut set: Vec<u32> = p.needles.iter().copied().collect::<Option<Vec<u32>>>()?;
    set.sort_unstable();
    set.dedup();
    if set.is_empty() { None } else { Some(set) }
}

/// Higher is more selective: longer shortest literal first, then fewer literals.
fn selectivity(set: &[u32], literals: &LiteralTable) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = set
        .iter()
        .map(|&l| literals.entries[l as usize].1.len())
        .min()
        .unwrap_or(0);
    (shortest.min(16), std::cmp::Reverse(set.len()))
}
