//! The scanner: which literals of a field's set occur in a text, ignoring ASCII case.
//!
//! An Aho-Corasick automaton walked byte by byte costs the same few nanoseconds a byte
//! whatever the text holds. On SigmaHQ's Windows rules most of those bytes hold no literal at
//! all: the keyword automaton walks every scalar of every event (2.2 KB of the 2.7 KB of an OTRF
//! event) and found an occurrence in one event in three; that walk alone was a third of the
//! worker's time. So a scanner whose literals are all at least [`SKIP_MIN_LITERAL`] bytes long
//! has a *skip*: SIMD searchers (aho-corasick's packed Teddy) over the literals' first three or
//! four bytes find where the next occurrence can start, in the text lowercased; the automaton
//! walks from there only until it is back in its start state (no occurrence in progress), and
//! the skip takes over again. Nothing is missed: an occurrence of a literal starts with an
//! occurrence of its prefix, the searchers report the leftmost one, and an automaton in its
//! start state has no partial occurrence to lose.
//!
//! The automaton is a DFA up to [`DFA_MAX_BYTES`] of literals and the contiguous NFA beyond
//! (building a DFA walks failure links per state and byte class: quadratic on a long repetitive
//! literal, and rule files are untrusted). Both are walked through their own types, so a step is
//! inlined. Both are built case-sensitive over the literals lowercased, and walk lowercased
//! bytes: an automaton that folds case itself holds both cases of every letter in every state,
//! which made SigmaHQ's Windows corpus spend a third of its load building them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind, Span, packed};

/// Most literal bytes a field's automaton may hold for it to be built as a DFA.
pub const DFA_MAX_BYTES: usize = 4 << 10;

/// Shortest literal a skip can serve: a prefix of one or two bytes occurs nearly everywhere,
/// and Teddy refuses short masks over many patterns.
pub const SKIP_MIN_LITERAL: usize = 3;

/// Prefixes per packed searcher (Teddy's limit before its heuristics refuse).
const PREFIXES_PER_SEARCHER: usize = 64;

/// Most packed searchers a skip runs side by side; a set with more distinct prefixes is walked
/// without a skip.
const MAX_SEARCHERS: usize = 4;

/// Shortest text the skip is used for: below it the walk is as fast as lowercasing a copy.
const SKIP_MIN_TEXT: usize = 32;

/// Numbers scanners as they are built, so that a [`super::memo::ScanMemo`] can tell whose
/// findings it holds.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A field's literal set, compiled.
#[derive(Clone, Debug)]
pub struct Scanner {
    /// Unique in the process (clones share it: they share the automaton too).
    id: u64,
    walk: Walk,
    /// Automaton pattern → the caller's pattern index (empty literals are left out of the
    /// automaton and reported for every text).
    pattern_index: Arc<[u32]>,
    empty: Arc<[u32]>,
    skip: Option<Arc<Skip>>,
    /// A byte no literal holds: texts joined with it are scanned in one call, and no
    /// occurrence can span two of them.
    separator: Option<u8>,
}

#[derive(Clone, Debug)]
enum Walk {
    Dfa(Arc<DFA>),
    Nfa(Arc<NFA>),
}

/// Packed searchers over the literals' lowercased prefixes.
#[derive(Debug)]
struct Skip {
    searchers: Vec<packed::Searcher>,
}

impl Scanner {
    /// The scanner of `texts` (every occurrence of each, ignoring ASCII case); `None` if the
    /// automaton cannot be built.
    pub fn build(texts: &[&str]) -> Option<Scanner> {
        let mut pattern_index = Vec::with_capacity(texts.len());
        let mut empty = Vec::new();
        // Lowercased here, so that the automata are built case-sensitive and walk lowercased
        // bytes: the same occurrences as folding case in the automaton, but a build that
        // folds case adds both cases of every letter to every state, and filling failure
        // transitions over those took 70 ms for SigmaHQ's 5,619 hashes against 13 ms.
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            if t.is_empty() {
                empty.push(i as u32);
            } else {
                pattern_index.push(i as u32);
                kept.push(t.as_bytes().to_ascii_lowercase());
            }
        }
        let bytes: usize = kept.iter().map(|t| t.len()).sum();
        let mut used = [false; 256];
        for &b in kept.iter().flatten() {
            used[b.to_ascii_lowercase() as usize] = true;
            used[b.to_ascii_uppercase() as usize] = true;
        }
        let separator = (0u8..=255).find(|&b| !used[b as usize]);
        let walk = if bytes <= DFA_MAX_BYTES {
            aho_corasick::dfa::Builder::new()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&kept)
                .ok()
                .map(|d| Walk::Dfa(Arc::new(d)))?
        } else {
            aho_corasick::nfa::contiguous::Builder::new()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&kept)
                .ok()
                .map(|n| Walk::Nfa(Arc::new(n)))?
        };
        Some(Scanner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            walk,
            pattern_index: pattern_index.into(),
            empty: empty.into(),
            skip: Skip::build(&kept).map(Arc::new),
            separator,
        })
    }

    /// This scanner's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether this scanner skips text that cannot start an occurrence (for tests and
    /// diagnostics).
    pub fn has_skip(&self) -> bool {
        self.skip.is_some()
    }

    /// A byte no literal holds, to join texts with for [`Scanner::each_match_joined`].
    pub fn separator(&self) -> Option<u8> {
        self.separator
    }

    /// Calls `f` with the pattern index of every occurrence in `joined`: texts joined with
    /// [`Scanner::separator`], lowercased (ASCII) when the skip may search them (a scanner with
    /// a skip, `joined` at least `SKIP_MIN_TEXT` (32) bytes long).
    #[inline]
    pub fn each_match_joined(&self, joined: &[u8], mut f: impl FnMut(usize)) {
        for &p in self.empty.iter() {
            f(p as usize);
        }
        let index = &*self.pattern_index;
        let mut report = |p: usize| {
            if let Some(&i) = index.get(p) {
                f(i as usize);
            }
        };
        let skip = self
            .skip
            .as_deref()
            .filter(|_| joined.len() >= SKIP_MIN_TEXT);
        match &self.walk {
            Walk::Dfa(a) => search(&**a, skip, joined, &mut report),
            Walk::Nfa(a) => search(&**a, skip, joined, &mut report),
        }
    }

    /// Calls `f` with the pattern index of every occurrence in `text`, overlapping ones too.
    /// `lower` is scratch space for the lowercased text the skip searches.
    #[inline]
    pub fn each_match(&self, text: &str, lower: &mut Vec<u8>, f: impl FnMut(usize)) {
        let hay = text.as_bytes();
        if self.skip.is_some() && hay.len() >= SKIP_MIN_TEXT {
            lower.clear();
            lower.extend_from_slice(hay);
            lower.make_ascii_lowercase();
            self.each_match_joined(lower, f);
        } else {
            // Walked without the skip, which lowercases byte by byte.
            self.each_match_joined(hay, f);
        }
    }
}

impl Skip {
    /// The skip for `texts` (lowercased, none empty), or `None` when one is shorter than
    /// [`SKIP_MIN_LITERAL`] or their prefixes need more than [`MAX_SEARCHERS`] searchers.
    fn build(texts: &[Vec<u8>]) -> Option<Skip> {
        if texts.is_empty() || texts.iter().any(|t| t.len() < SKIP_MIN_LITERAL) {
            return None;
        }
        let mut prefixes: Vec<Vec<u8>> =
            texts.iter().map(|t| t[..t.len().min(4)].to_vec()).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        // A four-byte prefix whose first three bytes are a prefix too adds nothing.
        let threes: std::collections::HashSet<Vec<u8>> =
            prefixes.iter().filter(|p| p.len() == 3).cloned().collect();
        prefixes.retain(|p| p.len() == 3 || !threes.contains(&p[..3]));
        if prefixes.len() > PREFIXES_PER_SEARCHER * MAX_SEARCHERS {
            return None;
        }
        let searchers = prefixes
            .chunks(PREFIXES_PER_SEARCHER)
            .map(|chunk| {
                packed::Config::new()
                    .match_kind(packed::MatchKind::LeftmostFirst)
                    .builder()
                    .extend(chunk)
                    .build()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Skip { searchers })
    }

    /// Walks `aut` over `hay` (lowercased) from each place an occurrence can start.
    #[inline]
    fn each<A: Automaton>(&self, aut: &A, hay: &[u8], f: &mut impl FnMut(usize)) {
        let n = self.searchers.len().min(MAX_SEARCHERS);
        let mut next = [usize::MAX; MAX_SEARCHERS];
        for (i, s) in self.searchers.iter().take(n).enumerate() {
            next[i] = find(s, hay, 0);
        }
        let mut at = 0;
        loop {
            let mut start = usize::MAX;
            for (i, s) in self.searchers.iter().take(n).enumerate() {
                // A searcher's next start stays the leftmost while `at` has not passed it.
                if next[i] < at {
                    next[i] = find(s, hay, at);
                }
                start = start.min(next[i]);
            }
            if start >= hay.len() {
                return;
            }
            at = walk::<A, false>(aut, hay, start, true, f);
        }
    }
}

/// Every occurrence of `aut`'s patterns in `hay`: through `skip` when given (`hay` is
/// lowercased then), else walked whole, lowercasing byte by byte.
#[inline]
fn search<A: Automaton>(aut: &A, skip: Option<&Skip>, hay: &[u8], f: &mut impl FnMut(usize)) {
    match skip {
        Some(skip) => skip.each(aut, hay, f),
        None => {
            walk::<A, true>(aut, hay, 0, false, f);
        }
    }
}

/// Where the leftmost prefix at or after `at` starts (`usize::MAX`: none).
#[inline]
fn find(s: &packed::Searcher, hay: &[u8], at: usize) -> usize {
    if at >= hay.len() {
        return usize::MAX;
    }
    s.find_in(hay, Span::from(at..hay.len()))
        .map_or(usize::MAX, |m| m.start())
}

/// Walks `aut` (built over lowercased literals) over `hay` from `at` in its start state,
/// reporting every pattern that ends on the way; with `LOWER`, `hay` is lowercased on the way
/// (ASCII), else it must be lowercased already. With `until_start`, stops after the first
/// byte that leaves it in its start state again and returns where; otherwise walks to the end.
#[inline]
fn walk<A: Automaton, const LOWER: bool>(
    aut: &A,
    hay: &[u8],
    mut at: usize,
    until_start: bool,
    f: &mut impl FnMut(usize),
) -> usize {
    // An unanchored automaton has an unanchored start state.
    let Ok(start) = aut.start_state(Anchored::No) else {
        return hay.len();
    };
    let mut sid = start;
    while let Some(&b) = hay.get(at) {
        let b = if LOWER { b.to_ascii_lowercase() } else { b };
        sid = aut.next_state(Anchored::No, sid, b);
        at += 1;
        if aut.is_special(sid) {
            if aut.is_dead(sid) {
                return hay.len();
            }
            if aut.is_match(sid) {
                for i in 0..aut.match_len(sid) {
                    f(aut.match_pattern(sid, i).as_usize());
                }
            }
        }
        if until_start && sid == start {
            return at;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(scanner: &Scanner, n: usize, text: &str) -> Vec<bool> {
        let mut found = vec![false; n];
        let mut lower = Vec::new();
        scanner.each_match(text, &mut lower, |p| found[p] = true);
        found
    }

    fn expected(texts: &[&str], text: &str) -> Vec<bool> {
        let lower = text.to_ascii_lowercase();
        texts
            .iter()
            .map(|t| lower.contains(&t.to_ascii_lowercase()))
            .collect()
    }

    /// The scanner of `lits` (in the case they are given) reports exactly the literals `text`
    /// holds, ignoring ASCII case; with `skip`, through a skip.
    fn reports_exactly(
        lits: &std::collections::BTreeSet<String>,
        text: &str,
        skip: bool,
    ) -> Result<(), TestCaseError> {
        let texts: Vec<&str> = lits.iter().map(String::as_str).collect();
        let scanner = Scanner::build(&texts).expect("builds");
        prop_assert!(!skip || scanner.has_skip());
        prop_assert_eq!(found(&scanner, texts.len(), text), expected(&texts, text));
        Ok(())
    }

    proptest! {
        /// Whatever the literals (a small alphabet, so they overlap often) and the text, every
        /// literal that occurs, ignoring ASCII case, is reported, and no other.
        #[test]
        fn a_scanner_reports_exactly_the_literals_that_occur(
            lits in prop::collection::btree_set("[aAbC]{1,4}", 1..6),
            text in "[aAbBcC]{0,24}",
        ) {
            reports_exactly(&lits, &text, false)?;
        }

        /// The same through the skip: literals of three bytes or more, texts long enough for
        /// the packed searchers, prefixes shared between literals and occurrences overlapping.
        #[test]
        fn a_scanner_with_a_skip_reports_exactly_the_literals_that_occur(
            lits in prop::collection::btree_set("[aAbC]{3,7}", 1..12),
            text in "[aAbBcC ]{0,300}",
        ) {
            reports_exactly(&lits, &text, true)?;
        }
    }

    /// More prefixes than one packed searcher holds: the skip runs several side by side and
    /// takes the leftmost of their next starts.
    #[test]
    fn a_skip_with_several_searchers_misses_nothing() {
        let owned: Vec<String> = (0..200).map(|i| format!("k{i:03}::x")).collect();
        let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
        let scanner = Scanner::build(&texts).expect("builds");
        assert!(scanner.has_skip());
        let text = format!(
            "{} K199::X then k000::x and k07 and K150::x{}",
            "filler ".repeat(10),
            " tail".repeat(10)
        );
        let got = found(&scanner, texts.len(), &text);
        let want = expected(&texts, &text);
        assert_eq!(got, want);
        assert_eq!(got.iter().filter(|&&b| b).count(), 3);
    }

    /// Texts joined with the separator are scanned in one call, and an occurrence never spans
    /// two of them: `abc` split as `ab` | `c` is not found.
    #[test]
    fn joined_texts_find_what_each_text_holds_and_nothing_across() {
        let texts = ["abc", "needle", "dle"];
        let scanner = Scanner::build(&texts).expect("builds");
        let sep = scanner.separator().expect("a byte no literal holds");
        let parts = [
            "xxxxab",
            "cxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxneedle",
            "yyyyyyyyyyyyyyyyyyyyyyyyyyyy",
        ];
        let mut joined = parts
            .join(std::str::from_utf8(&[sep]).expect("ascii"))
            .into_bytes();
        joined.make_ascii_lowercase();
        let mut found = [false; 3];
        scanner.each_match_joined(&joined, |p| found[p] = true);
        assert_eq!(found, [false, true, true]);
    }

    /// An empty literal occurs in every text, the empty one too; literals shorter than three
    /// bytes leave the scanner without a skip.
    #[test]
    fn empty_and_short_literals() {
        let texts = ["", "ab", "abc"];
        let scanner = Scanner::build(&texts).expect("builds");
        assert!(!scanner.has_skip());
        assert_eq!(found(&scanner, 3, ""), vec![true, false, false]);
        assert_eq!(
            found(&scanner, 3, &"xxABCxx".repeat(10)),
            vec![true, true, true]
        );
    }

    /// Past `DFA_MAX_BYTES` the contiguous NFA walks, through the skip too.
    #[test]
    fn a_large_set_walks_the_nfa_through_its_skip() {
        let owned: Vec<String> = (0..400).map(|i| format!("path\\tool{i:04}.exe")).collect();
        let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert!(texts.iter().map(|t| t.len()).sum::<usize>() > DFA_MAX_BYTES);
        let scanner = Scanner::build(&texts).expect("builds");
        assert!(scanner.has_skip());
        let text = "C:\\Windows\\PATH\\TOOL0042.EXE /c path\\tool0399.exe path\\tool01";
        let got = found(&scanner, texts.len(), text);
        assert_eq!(got, expected(&texts, text));
        assert_eq!(got.iter().filter(|&&b| b).count(), 2);
    }

    /// The automata are built over lowercased literals (for load time) and walk
    /// lowercased bytes. Literals in any case still match text in any case, in the DFA, in the
    /// contiguous NFA (past `DFA_MAX_BYTES`), through the skip and without it; two literals
    /// that differ only in case are both reported.
    #[test]
    fn literals_in_any_case_match_text_in_any_case_in_every_automaton() {
        let small = ["MD5=AB12", "md5=ab12", "Sha1=Cd34", "x"];
        let owned: Vec<String> = (0..300)
            .map(|i| format!("SHA256={i:04}ABCDEF0123456789abcdef"))
            .collect();
        let large: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert!(large.iter().map(|t| t.len()).sum::<usize>() > DFA_MAX_BYTES);
        let without_skip: Vec<&str> = large.iter().copied().chain(["Q"]).collect();
        for (texts, skip) in [
            (&small[..3], true),
            (&small[..], false),
            (&large[..], true),
            (&without_skip[..], false),
        ] {
            let scanner = Scanner::build(texts).expect("builds");
            assert_eq!(scanner.has_skip(), skip, "{texts:?}");
            for text in [
                "IMPHASH=00,mD5=aB12,SHA1=CD34,sha256=0042abcdef0123456789ABCDEF,q".to_string(),
                format!(
                    "{}MD5=AB12 sha256=0299ABCDEF0123456789ABCDEF x",
                    " ".repeat(40)
                ),
            ] {
                let got = found(&scanner, texts.len(), &text);
                assert_eq!(got, expected(texts, &text), "{text}");
                assert!(got.iter().any(|&b| b), "{text}");
            }
        }
    }
}
