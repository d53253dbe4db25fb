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

/// Default bound on one pattern's expanded size (see [`hir_weight`]): about a million states.
pub const REGEX_PATTERN_SIZE_LIMIT: usize = 1 << 20;

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
        for slot in slots {
            let patterns = &self.regex_patterns[&slot];
            let config = meta::Config::new()
                .match_kind(MatchKind::All)
                // A field's set holds hundreds of patterns at 1,000 rules; with the default
                // cache the lazy DFA gives up and the search falls back to the PikeVM (a third
                // slower overall). Memory is taken only as states are built.
                .hybrid_cache_capacity(16 << 20)
                .nfa_size_limit(Some(opts.regex_size_limit.unwrap_or(64 << 20)));
            let built = meta::Regex::builder().configure(config).build_many(
                &patterns
                    .iter()
                    .map(|(p, _, _)| p.as_str())
                    .collect::<Vec<_>>(),
            );
            match built {
                Ok(regex) => {
                    set_of_slot.insert(slot, sets.len() as u32);
                    sets.push(RegexSet { slot, regex });
                }
                Err(e) => {
                    let (_, rule, loc) = patterns[0];
                    self.errors.push(self.err(
                        rule,
                        loc,
                        LoadErrorKind::Limit(format!(
                            "the patterns of field `{}` do not compile together: {}",
                            if slot == KEYWORD_SLOT {
                                "(keywords)"
                            } else {
                                self.fields.name(slot)
                            },
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
