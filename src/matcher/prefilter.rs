//! The prefilter: which rules are worth evaluating for this event.
//!
//! For every detection we derive *necessary clauses*: sets of literals (field, text) such that if
//! the detection matches, at least one literal of every clause occurs in its field, ignoring
//! ASCII case. An `and` keeps the clauses of all its children, an `or` needs one clause of each
//! child joined into one (we take each child's most selective), a `not` gives nothing. Per
//! plan (a profile's rules whose log-source guard can hold on the event's guard key, see
//! [`super::partition`]) and field, one scanner ([`super::scanner`]) holds every literal of
//! the plan's rules; scanning an event's fields with them marks the literals present,
//! which (a) answers every case-insensitive `contains` test outright and (b) makes candidates of
//! the rules whose clauses were all hit. The most selective clause of a rule decides which
//! fields are scanned for every event (the *eager* fields); its other clauses are kept where
//! their fields are eager anyway, so that `Image|endswith: \powershell.exe` and
//! `CommandLine|contains: -enc` make a candidate only of events that hold both, not of every
//! PowerShell start. Rules with no clause (only `not`, numeric or `exists` tests) are always
//! candidates. Keyword
//! searches (values with no field) have their own automaton, fed every scalar of the event
//! once ([`crate::matcher::KEYWORD_SLOT`]): a keyword rule used to compare each of its words
//! with every scalar of every event, half of the matching time on SigmaHQ's Windows rules.

mod build;

use std::collections::HashMap;

use super::Expr;
use super::predicate::Pred;
pub use super::scanner::Scanner;
use crate::decode::Slot;
pub use build::{Plans, build_plans};

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
    pub automaton: Scanner,
    /// Automaton pattern index → literal id.
    pub literal_of_pattern: Vec<u32>,
    /// Automaton pattern index → its clauses in `targets`: `targets[target_start[p] as
    /// usize..target_start[p + 1] as usize]` (empty for fields that are not eager).
    pub target_start: Vec<u32>,
    pub targets: Vec<Target>,
}

/// A clause of a detection that a literal belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub detection: u32,
    /// Bit of the clause in the detection's mask.
    pub clause: u8,
}

impl ProfilePlan {
    /// The index in `scans` of the scan of `slot`: asked by every test of a literal the event
    /// does not hold, where a binary search over a plan's few dozen fields beats hashing.
    #[inline]
    pub fn scan_of(&self, slot: Slot) -> Option<usize> {
        self.scans.binary_search_by_key(&slot, |s| s.slot).ok()
    }
}

impl SlotScan {
    /// The clauses automaton pattern `pattern` satisfies.
    pub fn targets_of(&self, pattern: usize) -> &[Target] {
        match (
            self.target_start.get(pattern),
            self.target_start.get(pattern + 1),
        ) {
            (Some(&a), Some(&b)) => self.targets.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// Most clauses a detection keeps (the bits of its mask).
pub const MAX_CLAUSES: usize = 32;

/// The prefilter for the events of one source profile whose guard key holds one combination
/// of values ([`super::partition`]).
pub struct ProfilePlan {
    /// Sorted by field.
    pub scans: Vec<SlotScan>,
    /// Detection → the mask of its clauses kept on this plan (0: not in it or always a
    /// candidate): a detection is a candidate once every bit of it was hit.
    pub full_mask: Vec<u32>,
    /// Detections of this plan with no necessary literal.
    pub always: Vec<u32>,
    /// Number of detections in this plan.
    pub applicable: usize,
}

/// The most selective necessary literal set of `expr`, or `None` when there is none.
pub fn necessary_set(expr: &Expr, preds: &[Pred], literals: &LiteralTable) -> Option<Vec<u32>> {
    necessary_clauses(expr, preds, literals).into_iter().next()
}

/// The necessary clauses of `expr`, most selective first: if `expr` holds, every clause has a
/// literal that occurs. Empty when nothing is necessary.
pub fn necessary_clauses(expr: &Expr, preds: &[Pred], literals: &LiteralTable) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    collect_clauses(expr, preds, literals, &mut out);
    for c in &mut out {
        c.sort_unstable();
        c.dedup();
    }
    out.sort();
    out.dedup();
    // Stable: equally selective clauses stay in literal order, so plans are deterministic.
    out.sort_by_key(|c| std::cmp::Reverse(selectivity(c, literals)));
    out
}

fn collect_clauses(expr: &Expr, preds: &[Pred], literals: &LiteralTable, out: &mut Vec<Vec<u32>>) {
    match expr {
        Expr::Pred(p) => pred_clauses(&preds[*p as usize], out),
        Expr::Not(_) => {}
        Expr::And(children) => {
            for c in children {
                collect_clauses(c, preds, literals, out);
            }
        }
        Expr::Or(children) => {
            // One clause of each alternative, joined: whichever holds, its clause has a hit.
            let mut union = Vec::new();
            for c in children {
                match necessary_set(c, preds, literals) {
                    Some(set) => union.extend(set),
                    None => return,
                }
            }
            if !union.is_empty() {
                out.push(union);
            }
        }
    }
}

fn pred_clauses(p: &Pred, out: &mut Vec<Vec<u32>>) {
    // A keyword search (no field) has needles in the keyword slot, whose automaton scans every
    // scalar of the event: keyword rules are candidates only when one of their words occurs.
    if p.negate {
        return;
    }
    if p.all {
        // Every test must hold, so each test's needle is necessary on its own.
        out.extend(p.needles.iter().flatten().map(|&l| vec![l]));
        return;
    }
    if let Some(set) = p.needles.iter().copied().collect::<Option<Vec<u32>>>()
        && !set.is_empty()
    {
        out.push(set);
    }
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
