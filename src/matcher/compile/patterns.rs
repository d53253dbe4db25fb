//! Patterns of a rule set: wildcards and `re` values checked against the size bounds, grouped
//! into one multi-pattern regex per field, and the bound itself ([`hir_weight`]).

use std::collections::HashMap;

use regex_automata::MatchKind;
use regex_automata::meta;

use super::{Builder, CompileOptions, KEYWORD_SLOT, first_line};
use crate::decode::Slot;
use crate::matcher::RegexSet;
use crate::matcher::predicate::Test;
use crate::sigma::value::{Part, SigmaString};
use crate::sigma::{FieldItem, LoadErrorKind};

/// Default bound on one pattern's expanded size (see [`hir_weight`]): about 130,000 states.
/// It is also the per-event cost bound: when a pattern's lazy DFA cannot keep its states the
/// search falls back to simulating the NFA, whose cost per byte grows with the state count, so
/// a rule file cannot make one event cost seconds (`\w{1000}x`, 770,000 states, cost 2 s per
/// 600 KB event). `\w{170}` or `[a-z0-9]{10000}` still load.
pub const REGEX_PATTERN_SIZE_LIMIT: usize = 1 << 17;

/// Bound on the expanded size of every pattern of a rule set together (about a million
/// states, eight patterns at the per-pattern bound or thousands of ordinary ones): sixty rules each
/// under the per-pattern bound must not add up to gigabytes of automata.
pub const RULESET_REGEX_WEIGHT_LIMIT: u64 = 1 << 20;

/// Bound on the compiled size of every field's regex set together, in bytes.
pub const RULESET_REGEX_BYTES_LIMIT: usize = 256 << 20;

/// Lazy-DFA cache of a field's regex set, per worker: the sets share this much in proportion
/// to their patterns' weight, each between [`SET_CACHE_MIN`] and [`SET_CACHE_MAX`].
const CACHE_BUDGET: usize = 64 << 20;
const SET_CACHE_MIN: usize = 1 << 20;
const SET_CACHE_MAX: usize = 16 << 20;

/// Longest pattern text accepted, in bytes.
pub const REGEX_PATTERN_MAX_LEN: usize = 32 << 10;

impl Builder<'_> {
    pub(super) fn regex_test(
        &mut self,
        rule: usize,
        item: &FieldItem,
        slot: Slot,
        pattern: String,
    ) -> Option<Test> {
        if pattern.len() > REGEX_PATTERN_MAX_LEN {
            self.errors.push(self.err(
                rule,
                item.loc,
                LoadErrorKind::Limit(format!(
                    "a pattern of `{}` is {} bytes long, over the limit of {REGEX_PATTERN_MAX_LEN}",
                    item.spec,
                    pattern.len()
                )),
            ));
            return None;
        }
        let hir = match regex_syntax::ParserBuilder::new().build().parse(&pattern) {
            Ok(h) => h,
            Err(e) => {
                self.errors.push(self.err(
                    rule,
                    item.loc,
                    LoadErrorKind::InvalidRegex {
                        field: item.spec.clone(),
                        reason: first_line(&e.to_string()),
                    },
                ));
                return None;
            }
        };
        // Bounded alone, so an oversized pattern is blamed on its rule. Compiling each pattern
        // into an NFA to measure it doubled the load time of 1,000 rules; the weight below (a
        // saturating count of what repetitions expand to) bounds the same thing from the syntax
        // tree, and the field's set is still built under `regex_size_limit`.
        let weight = hir_weight(&hir);
        if weight > self.pattern_size_limit as u64 {
            self.errors.push(self.err(
                rule,
                item.loc,
                LoadErrorKind::Limit(format!(
                    "a pattern of `{}` expands to about {weight} NFA states, over the limit of {}",
                    item.spec, self.pattern_size_limit
                )),
            ));
            return None;
        }
        if self.regex_weight.saturating_add(weight) > RULESET_REGEX_WEIGHT_LIMIT {
            self.errors.push(self.err(
                rule,
                item.loc,
                LoadErrorKind::Limit(format!(
                    "a pattern of `{}` (about {weight} NFA states) takes the rule set's patterns over their budget of {RULESET_REGEX_WEIGHT_LIMIT} states together",
                    item.spec
                )),
            ));
            return None;
        }
        self.regex_weight += weight;
        *self.regex_weight_of_slot.entry(slot).or_insert(0) += weight;
        let list = self.regex_patterns.entry(slot).or_default();
        let index = list.len() as u32;
        list.push((pattern, rule, item.loc));
        // The slot set index is fixed later; record the slot for now.
        Some(Test::Regex {
            slot_set: slot,
            pattern: index,
        })
    }

    pub(super) fn regex_sets(&mut self, opts: &CompileOptions) -> Vec<RegexSet> {
        let mut slots: Vec<Slot> = self.regex_patterns.keys().copied().collect();
        slots.sort_unstable();
        let mut sets = Vec::with_capacity(slots.len());
        let mut set_of_slot = HashMap::new();
        let mut remaining = RULESET_REGEX_BYTES_LIMIT;
        let total_weight = self.regex_weight.max(1);
        for slot in slots {
            let patterns = &self.regex_patterns[&slot];
            let weight = self.regex_weight_of_slot.get(&slot).copied().unwrap_or(1);
            let share = (CACHE_BUDGET as u64).saturating_mul(weight) / total_weight;
            let cache = (share as usize).clamp(SET_CACHE_MIN, SET_CACHE_MAX);
            let per_set = opts.regex_size_limit.unwrap_or(64 << 20);
            let config = meta::Config::new()
                .match_kind(MatchKind::All)
                // A field's set holds hundreds of patterns at 1,000 rules; with the default
                // cache the lazy DFA gives up and the search falls back to the PikeVM (a third
                // slower overall). Memory is taken only as states are built, within the share
                // of the cache budget the set's weight earns.
                .hybrid_cache_capacity(cache)
                .nfa_size_limit(Some(per_set.min(remaining)));
            let built = meta::Regex::builder().configure(config).build_many(
                &patterns
                    .iter()
                    .map(|(p, _, _)| p.as_str())
                    .collect::<Vec<_>>(),
            );
            match built {
                Ok(regex) => {
                    remaining = remaining.saturating_sub(regex.memory_usage());
                    set_of_slot.insert(slot, sets.len() as u32);
                    sets.push(RegexSet { slot, regex });
                }
                Err(e) => {
                    // Blame the heaviest rule of the set: the likeliest cause.
                    let (_, rule, loc) = patterns
                        .iter()
                        .max_by_key(|(p, _, _)| p.len())
                        .unwrap_or(&patterns[0]);
                    let (rule, loc) = (*rule, *loc);
                    self.errors.push(self.err(
                        rule,
                        loc,
                        LoadErrorKind::Limit(format!(
                            "the patterns of field `{}` do not compile together within the rule set's budget ({} MiB left of {}): {}",
                            if slot == KEYWORD_SLOT {
                                "(keywords)"
                            } else {
                                self.fields.name(slot)
                            },
                            remaining >> 20,
                            RULESET_REGEX_BYTES_LIMIT >> 20,
                            first_line(&e.to_string())
                        )),
                    ));
                }
            }
        }
        for p in &mut self.preds {
            for t in &mut p.tests {
                if let Test::Regex { slot_set, .. } = t {
                    *slot_set = set_of_slot.get(slot_set).copied().unwrap_or(u32::MAX);
                }
            }
        }
        sets
    }
}

/// Roughly the number of NFA states a pattern compiles to: literals count their bytes,
/// classes their ranges, repetitions multiply by their largest count (an unbounded one by its
/// minimum, at least one). Saturating, so hostile nesting cannot overflow.
pub fn hir_weight(hir: &regex_syntax::hir::Hir) -> u64 {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(l) => l.0.len() as u64,
        HirKind::Class(Class::Unicode(c)) => c.ranges().len().max(1) as u64,
        HirKind::Class(Class::Bytes(c)) => c.ranges().len().max(1) as u64,
        HirKind::Repetition(r) => {
            let count = r.max.unwrap_or(r.min).max(1) as u64;
            hir_weight(&r.sub).saturating_mul(count)
        }
        HirKind::Capture(c) => hir_weight(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v
            .iter()
            .fold(1u64, |acc, h| acc.saturating_add(hir_weight(h))),
    }
}

/// A wildcard pattern as an anchored regex; `*` and `?` cross line breaks.
pub fn glob_to_regex(s: &SigmaString, cased: bool) -> String {
    let mut out = String::from(if cased { "(?s)^" } else { "(?is)^" });
    for p in &s.0 {
        match p {
            Part::Lit(l) => out.push_str(&regex_syntax::escape(l)),
            Part::Star => out.push_str(".*"),
            Part::One => out.push('.'),
        }
    }
    out.push('$');
    out
}
