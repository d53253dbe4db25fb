//! The scan memo: what a scanner found in a text it walked a moment ago.
//!
//! A field whose literal set has no skip (see [`super::scanner`]: one literal of one or two
//! bytes, such as `CallTrace|endswith: ')'`) is walked byte by byte, a few nanoseconds a byte,
//! whatever the text holds. Event logs repeat exactly those long texts: in the OTRF Windows
//! captures, 3,107 Sysmon call traces of ~430 bytes hold 75 distinct ones, and 2,022 PowerShell
//! payloads 163. So each worker remembers, per scanner and text, which patterns the walk
//! reported, and the next event with the same text gets them without a walk.
//!
//! - **Bounded, allocated once.** [`MEMO_ENTRIES`] entries, direct-mapped by a hash of the
//!   scanner and the text, each with room for a text of up to [`MEMO_MAX_TEXT`] bytes and
//!   [`MEMO_MAX_PATTERNS`] patterns: 0.5 MiB per worker, taken when the matcher is made, so the
//!   match path allocates nothing. A new text replaces what its entry held.
//! - **Exact.** A hit compares the whole text, not only its hash: the sender of an event writes
//!   its text, and must not be able to pass a malicious one off as a benign one that collides.
//! - **Only where it pays.** Texts shorter than [`MEMO_MIN_TEXT`] are walked (hashing and
//!   comparing would cost about as much); longer than [`MEMO_MAX_TEXT`], or with more distinct
//!   patterns than an entry holds, are walked and not kept.
//!
//! A pattern is reported once per text, where the walk reports every occurrence: every caller
//! marks a literal present, so once is the same answer.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::scanner::Scanner;

/// Entries per worker (a power of two).
pub const MEMO_ENTRIES: usize = 256;

/// Longest text kept.
pub const MEMO_MAX_TEXT: usize = 2048;

/// Shortest text looked up.
pub const MEMO_MIN_TEXT: usize = 64;

/// Most distinct patterns an entry holds.
pub const MEMO_MAX_PATTERNS: usize = 16;

#[derive(Clone, Copy, Default)]
struct Entry {
    hash: u64,
    scanner: u64,
    /// Text bytes held; 0: empty (no text this short is kept).
    len: u32,
    patterns: u32,
}

/// One worker's memo (see the module doc).
pub struct ScanMemo {
    entries: Box<[Entry]>,
    /// Entry `i`'s text at `i * MEMO_MAX_TEXT`.
    texts: Box<[u8]>,
    /// Entry `i`'s patterns at `i * MEMO_MAX_PATTERNS`.
    patterns: Box<[u32]>,
    /// The patterns of the walk in progress, distinct.
    found: Vec<u32>,
    pub stats: MemoStats,
}

/// What the memo answered and what it walked (the replay summary, the service's metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
}

impl Default for ScanMemo {
    fn default() -> Self {
        ScanMemo::new()
    }
}

impl ScanMemo {
    pub fn new() -> ScanMemo {
        ScanMemo {
            entries: vec![Entry::default(); MEMO_ENTRIES].into_boxed_slice(),
            texts: vec![0; MEMO_ENTRIES * MEMO_MAX_TEXT].into_boxed_slice(),
            patterns: vec![0; MEMO_ENTRIES * MEMO_MAX_PATTERNS].into_boxed_slice(),
            found: Vec::with_capacity(MEMO_MAX_PATTERNS + 1),
            stats: MemoStats::default(),
        }
    }

    /// [`Scanner::each_match`] of `text`, from the memo when `scanner` walked this text
    /// before (each pattern once), else walked and remembered. Scanners with a skip are not
    /// memoised: they skip most of a text already.
    pub fn each_match(
        &mut self,
        scanner: &Scanner,
        text: &str,
        lower: &mut Vec<u8>,
        f: &mut dyn FnMut(usize),
    ) {
        let bytes = text.as_bytes();
        if scanner.has_skip() || !(MEMO_MIN_TEXT..=MEMO_MAX_TEXT).contains(&bytes.len()) {
            scanner.each_match(text, lower, f);
            return;
        }
        let hash = xxh3_64_with_seed(bytes, scanner.id());
        let i = (hash as usize) & (MEMO_ENTRIES - 1);
        let e = self.entries[i];
        let held = &self.texts[i * MEMO_MAX_TEXT..][..e.len as usize];
        if e.hash == hash && e.scanner == scanner.id() && held == bytes {
            self.stats.hits += 1;
            for &p in &self.patterns[i * MEMO_MAX_PATTERNS..][..e.patterns as usize] {
                f(p as usize);
            }
            return;
        }
        self.stats.misses += 1;
        let found = &mut self.found;
        found.clear();
        scanner.each_match(text, lower, |p| {
            // Past the room of an entry the list only has to say "too many".
            if found.len() <= MEMO_MAX_PATTERNS && !found.contains(&(p as u32)) {
                found.push(p as u32);
            }
            f(p);
        });
        if found.len() > MEMO_MAX_PATTERNS {
            return;
        }
        self.texts[i * MEMO_MAX_TEXT..][..bytes.len()].copy_from_slice(bytes);
        self.patterns[i * MEMO_MAX_PATTERNS..][..found.len()].copy_from_slice(found);
        self.entries[i] = Entry {
            hash,
            scanner: scanner.id(),
            len: bytes.len() as u32,
            patterns: found.len() as u32,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Distinct patterns of `text`, sorted, through the memo.
    fn through(memo: &mut ScanMemo, scanner: &Scanner, text: &str) -> Vec<usize> {
        let mut got = Vec::new();
        memo.each_match(scanner, text, &mut Vec::new(), &mut |p| got.push(p));
        got.sort_unstable();
        got.dedup();
        got
    }

    fn walked(scanner: &Scanner, text: &str) -> Vec<usize> {
        let mut got = Vec::new();
        scanner.each_match(text, &mut Vec::new(), |p| got.push(p));
        got.sort_unstable();
        got.dedup();
        got
    }

    /// A call-trace-like set: `)` has no skip, so the set is walked.
    fn call_trace_scanner() -> Scanner {
        let s = Scanner::build(&[")", "dbghelp.dll", "unknown(", "ntdll.dll"]).expect("builds");
        assert!(!s.has_skip());
        s
    }

    fn frames(n: usize, module: &str) -> String {
        (0..n)
            .map(|i| format!("C:\\Windows\\System32\\{module}+{:x}", 0x1000 + i * 77))
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn a_repeated_text_is_answered_from_the_memo_with_the_walks_patterns() {
        let scanner = call_trace_scanner();
        let mut memo = ScanMemo::new();
        let text = format!("{}|UNKNOWN(00000123)", frames(8, "ntdll.dll"));
        let first = through(&mut memo, &scanner, &text);
        assert_eq!(first, walked(&scanner, &text));
        assert_eq!(first, vec![0, 2, 3]);
        assert_eq!(memo.stats, MemoStats { hits: 0, misses: 1 });
        assert_eq!(through(&mut memo, &scanner, &text), first);
        assert_eq!(memo.stats, MemoStats { hits: 1, misses: 1 });
    }

    /// The memo trusts no hash: an entry is used only for the very text it was filled with,
    /// so a text that shares the entry (or a forged hash) is walked.
    #[test]
    fn a_different_text_in_the_same_entry_is_walked_not_answered() {
        let scanner = call_trace_scanner();
        let mut memo = ScanMemo::new();
        let benign = frames(8, "ntdll.dll");
        through(&mut memo, &scanner, &benign);
        // Forge the case a hash collision would make: the benign text's entry claims the hash
        // of the malicious one.
        let evil = frames(8, "dbghelp.dll");
        let hash = xxh3_64_with_seed(evil.as_bytes(), scanner.id());
        let from =
            (xxh3_64_with_seed(benign.as_bytes(), scanner.id()) as usize) & (MEMO_ENTRIES - 1);
        let to = (hash as usize) & (MEMO_ENTRIES - 1);
        let mut e = memo.entries[from];
        e.hash = hash;
        memo.entries[to] = e;
        let (src, dst) = (from * MEMO_MAX_TEXT, to * MEMO_MAX_TEXT);
        memo.texts.copy_within(src..src + MEMO_MAX_TEXT, dst);
        memo.patterns.copy_within(
            from * MEMO_MAX_PATTERNS..(from + 1) * MEMO_MAX_PATTERNS,
            to * MEMO_MAX_PATTERNS,
        );
        assert_eq!(through(&mut memo, &scanner, &evil), vec![1]);
        assert_eq!(memo.stats.hits, 0);
    }

    #[test]
    fn scanners_do_not_share_entries() {
        let a = call_trace_scanner();
        let b = Scanner::build(&[")", "kernelbase.dll"]).expect("builds");
        let mut memo = ScanMemo::new();
        let text = frames(8, "KERNELBASE.dll");
        assert_eq!(through(&mut memo, &a, &text), Vec::<usize>::new());
        assert_eq!(through(&mut memo, &b, &text), vec![1]);
        assert_eq!(memo.stats.hits, 0);
    }

    #[test]
    fn short_long_and_crowded_texts_are_walked_and_not_kept() {
        let scanner = call_trace_scanner();
        let mut memo = ScanMemo::new();
        let short = "ntdll.dll+1)";
        let long = frames(200, "ntdll.dll");
        assert!(short.len() < MEMO_MIN_TEXT && long.len() > MEMO_MAX_TEXT);
        for text in [short, long.as_str(), short, long.as_str()] {
            assert_eq!(through(&mut memo, &scanner, text), walked(&scanner, text));
        }
        assert_eq!(memo.stats, MemoStats::default());
        // More distinct patterns than an entry holds: answered right, never from the memo.
        let many: Vec<String> = (0..MEMO_MAX_PATTERNS + 2)
            .map(|i| format!("m{i:02}"))
            .collect();
        let lits: Vec<&str> = many.iter().map(String::as_str).chain([")"]).collect();
        let crowded = Scanner::build(&lits).expect("builds");
        let text = format!("{})", many.join(" "));
        for _ in 0..2 {
            assert_eq!(through(&mut memo, &crowded, &text), walked(&crowded, &text));
        }
        assert_eq!(memo.stats, MemoStats { hits: 0, misses: 2 });
    }

    proptest! {
        /// Whatever the texts and their order (a small alphabet, so that they repeat and share
        /// entries), the memo answers what a walk answers.
        #[test]
        fn the_memo_answers_what_the_walk_answers(
            texts in prop::collection::vec("[ab)]{60,80}", 1..40),
            order in prop::collection::vec(0usize..40, 1..120),
        ) {
            let scanner = Scanner::build(&[")", "ab", "ba)", "aaa"]).expect("builds");
            prop_assume!(!scanner.has_skip());
            let mut memo = ScanMemo::new();
            for k in order {
                let text = &texts[k % texts.len()];
                prop_assert_eq!(through(&mut memo, &scanner, text), walked(&scanner, text));
            }
        }
    }
}
