//! Patterns of a rule set that need a regex engine (`re` values, wildcards with `?` or non-ASCII
//! case-insensitive text), checked against the size bounds ([`hir_weight`]) and compiled one
//! regex per distinct pattern.
//!
//! One multi-pattern regex per field used to hold every wildcard of the set: on real command
//! lines its lazy DFA rebuilt states for nearly every event and then fell back to a PikeVM whose
//! cache is sized for every pattern at once (13.5 GB with SigmaHQ's 1,183 process-creation
//! rules). Now wildcards made of `*` and literals never reach a regex ([`GlobTest`](
//! crate::matcher::predicate::GlobTest)), and each remaining pattern has its own engine, run
//! only for rules the prefilter left as candidates, with a small bounded cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use regex_automata::MatchKind;
use regex_automata::meta;

use super::{Builder, CompileOptions, KEYWORD_SLOT, first_line};
use crate::decode::Slot;
use crate::matcher::FieldRegex;
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

/// Bound on the compiled size of every pattern's regex together, in bytes.
pub const RULESET_REGEX_BYTES_LIMIT: usize = 256 << 20;

/// Most bytes one pattern's lazy DFA keeps per worker.
pub const REGEX_CACHE_CAPACITY: usize = 1 << 20;

/// Fewest bytes one pattern's lazy DFA is given, whatever the budget: below a few states' worth
/// the lazy DFA gives up at once and every search falls to the slower PikeVM.
pub const REGEX_CACHE_FLOOR: usize = 64 << 10;

/// The cache each pattern's lazy DFA may keep per worker when the rule set's caches share
/// `budget` bytes per worker (`None`: [`REGEX_CACHE_CAPACITY`] each): the budget split evenly,
/// within [`REGEX_CACHE_FLOOR`] and [`REGEX_CACHE_CAPACITY`].
pub fn regex_cache_capacity(budget: Option<usize>, patterns: usize) -> usize {
    match budget {
        None => REGEX_CACHE_CAPACITY,
        Some(b) => (b / patterns.max(1)).clamp(REGEX_CACHE_FLOOR, REGEX_CACHE_CAPACITY),
    }
}

/// Fewest patterns per thread worth a thread of their own when compiling them.
const PATTERNS_PER_THREAD: usize = 32;

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
        let next = self.regex_patterns.len() as u32;
        let id = *self
            .regex_ids
            .entry((slot, pattern.clone()))
            .or_insert(next);
        if id == next {
            // Only distinct patterns cost: a pattern many rules share is compiled once.
            if self.regex_weight.saturating_add(weight) > RULESET_REGEX_WEIGHT_LIMIT {
                self.regex_ids.remove(&(slot, pattern));
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
            self.regex_patterns.push((slot, pattern, rule, item.loc));
        }
        Some(Test::Regex(id))
    }

    /// Compiles every pattern on its own, on every core, within what is left of the rule set's
    /// [`RULESET_REGEX_BYTES_LIMIT`]; a pattern that does not compile fails its rule (and so the
    /// whole set: the ids of the others no longer matter). Patterns compiled side by side
    /// draw on the budget as they finish, so when a set's patterns pass it together, which
    /// of them is named can differ from run to run; the set fails in every run.
    pub(super) fn regexes(&mut self, opts: &CompileOptions) -> Vec<FieldRegex> {
        let per_pattern = opts.regex_size_limit.unwrap_or(64 << 20);
        let remaining = AtomicUsize::new(RULESET_REGEX_BYTES_LIMIT);
        let cache = regex_cache_capacity(opts.regex_cache_budget, self.regex_patterns.len());
        let patterns = std::mem::take(&mut self.regex_patterns);
        let built =
            crate::cores::map_in_order(&patterns, PATTERNS_PER_THREAD, |(_, pattern, ..)| {
                let left = remaining.load(Ordering::Relaxed);
                let config = meta::Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    // Each lazy DFA keeps at most this much; past it the cache is cleared and
                    // rebuilt (counted time, bounded memory): a pattern cannot grow a worker
                    // without limit.
                    .hybrid_cache_capacity(cache)
                    // A full DFA per pattern costs load time and memory for every rule set; the
                    // lazy DFA builds only the states events reach.
                    .dfa(false)
                    .nfa_size_limit(Some(per_pattern.min(left)));
                let built = meta::Regex::builder().configure(config).build(pattern);
                if let Ok(regex) = &built {
                    let used = regex.memory_usage();
                    let _ = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                        Some(r.saturating_sub(used))
                    });
                }
                built.map_err(|e| (first_line(&e.to_string()), left))
            });
        let mut out = Vec::with_capacity(patterns.len());
        for ((slot, _, rule, loc), built) in patterns.into_iter().zip(built) {
            match built {
                Ok(regex) => out.push(FieldRegex { slot, regex }),
                Err((e, left)) => {
                    self.errors.push(self.err(
                        rule,
                        loc,
                        LoadErrorKind::Limit(format!(
                            "a pattern of field `{}` does not compile within the rule set's budget ({} MiB left of {}): {e}",
                            if slot == KEYWORD_SLOT {
                                "(keywords)"
                            } else {
                                self.fields.name(slot)
                            },
                            left >> 20,
                            RULESET_REGEX_BYTES_LIMIT >> 20,
                        )),
                    ));
                }
            }
        }
        out
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

#[cfg(test)]
mod tests {
    use crate::matcher::CompileOptions;
    use crate::matcher::tests::{compile_text, matched};

    #[test]
    fn invalid_regex_fails_the_load_with_its_location() {
        let yaml =
            "title: bad\nid: r1\ndetection:\n  sel:\n    a|re: '(?<=x)y'\n  condition: sel\n";
        let errs = compile_text("bad.yml", yaml, &CompileOptions::default())
            .err()
            .unwrap();
        assert_eq!(errs.0.len(), 1);
        let e = &errs.0[0];
        assert_eq!(e.loc.line, 5);
        assert_eq!(e.construct(), "regex");
        assert!(e.to_string().contains("bad.yml:5"), "{e}");
    }

    /// Patterns are compiled on every core once there are enough of them; one over the size
    /// bound among 100 still fails the load, naming its file, line, rule and field, and the
    /// others' engines answer as before when the bound allows them all.
    #[test]
    fn a_pattern_over_the_size_bound_fails_the_load_among_many_compiled_side_by_side() {
        let mut yaml = String::new();
        for i in 0..100 {
            let pattern = if i == 57 {
                "(?i)[a-z]{40}\\d{40}x".to_string()
            } else {
                format!("^tool{i}\\.(exe|dll)$")
            };
            yaml.push_str(&format!(
                "title: r{i}\nid: r{i}\nlogsource:\n  product: windows\ndetection:\n  sel:\n    Image|re: '{pattern}'\n  condition: sel\n---\n"
            ));
        }
        let load = |limit: Option<usize>| {
            let opts = CompileOptions {
                regex_size_limit: limit,
                ..CompileOptions::default()
            };
            compile_text("many.yml", &yaml, &opts)
        };
        let errs = load(Some(4 << 10))
            .err()
            .expect("the large pattern is over 4 KiB");
        assert_eq!(errs.0.len(), 1, "{:?}", errs.0);
        let e = errs.0[0].to_string();
        assert!(e.contains("many.yml"), "{e}");
        assert!(e.contains("r57"), "{e}");
        assert!(e.contains("`Image`"), "{e}");
        assert!(e.contains("budget"), "{e}");
        let rules = load(None).expect("every pattern compiles without the small bound");
        assert_eq!(rules.regexes.len(), 100);
        let event = r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"tool42.exe","Computer":"h","UtcTime":"2024-01-01 00:00:00.000","User":"u"}"#;
        assert_eq!(matched(&rules, event), vec!["r42"]);
    }
}
