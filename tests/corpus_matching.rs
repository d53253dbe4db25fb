//! SigmaHQ's 1,183 `process_creation` rules on the public OTRF Windows captures: the shape of
//! `../shared/repro/alloc-13gb`, smaller (a third of one copy of the captures, debug build).
//!
//! Bug: those rules put thousands of wildcard patterns into one multi-pattern regex per field;
//! its lazy DFA thrashed on real command lines and fell back to a PikeVM whose cache is sized
//! for every pattern at once, and the process aborted on a 13.5 GB allocation. Wildcards are
//! now literal matchers and every remaining regex is a small engine of its own. This test keeps
//! the match path allocation-free once warm (a counting global allocator) and checks that the
//! matches do not depend on what was matched before (two passes, same answers).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use std::sync::atomic::{AtomicU64, Ordering};

use credtrail::decode::Decoder;
use credtrail::matcher::Matcher;

struct Counting;

// Per thread: only the test's own thread is counted. (Bug: a global flag also counted the
// harness's "has been running for over 60 seconds" note, printed from another thread when the
// machine was loaded, as 3 allocations of the match path.)
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Every event line of the OTRF Windows captures (gzipped or not), in file order.
fn windows_events() -> Vec<Vec<u8>> {
    // One event in three keeps every capture and event kind and the debug build's run short.
    common::copies::capture_lines(&[common::shared("windows")])
        .into_iter()
        .map(String::into_bytes)
        .step_by(3)
        .collect()
}

#[test]
fn sigmahq_process_creation_rules_match_real_events_without_allocating() {
    let rules = common::rules(&[common::shared_path(
        "sigmahq-full/rules/windows/process_creation",
    )]);
    assert!(rules.detections.len() > 1000, "{}", rules.detections.len());
    let events = windows_events();
    assert!(events.len() > 15_000, "{} events", events.len());
    let mut decoder = Decoder::new(&rules.schema);
    let mut matcher = Matcher::new(&rules);
    let mut out = Vec::new();
    let mut pass = |counting: bool| -> (Vec<(usize, u32)>, u64) {
        let mut matched = Vec::new();
        let mut allocations = 0;
        for (i, raw) in events.iter().enumerate() {
            decoder.decode(&rules.schema, raw, raw.len(), |view| {
                let Ok(view) = view else { return };
                out.clear();
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                COUNTING.set(counting);
                matcher.matches(&rules, &view, &mut out);
                COUNTING.set(false);
                allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
                matched.extend(out.iter().map(|d| (i, *d)));
            });
        }
        (matched, allocations)
    };
    let (warm, _) = pass(false);
    assert!(
        !warm.is_empty(),
        "the captures hold process creations SigmaHQ detects"
    );
    let (again, allocations) = pass(true);
    assert_eq!(allocations, 0, "the match path allocated once warm");
    assert_eq!(warm, again, "matches depend on what was matched before");
}
