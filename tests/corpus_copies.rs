//! The shape of `../shared/repro/alloc-13gb` (issue 12), smaller: SigmaHQ's `process_creation`
//! rules on copies of every public Windows capture, one after the other with fresh times and
//! record ids, in one shard. It used to abort the process with a 13.5 GB allocation (the
//! multi-pattern regex set fell back to a PikeVM sized for every pattern at once). The whole
//! process must stay small, and two copies must match exactly twice what one copy matches:
//! nothing a copy matches may depend on the copies before it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::copies::{captures, write_copies};

/// Peak resident set the run may reach (the bound for the full-size repro).
const MAX_RSS_MB: i64 = 500;

/// Runs `credtrail replay` on `input` in one shard: the per-rule match counts of its summary
/// and the process's peak RSS in MB.
#[allow(clippy::zombie_processes)] // reaped by wait4, which clippy cannot see
fn replay(input: &Path, dir: &Path) -> (BTreeMap<String, u64>, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("replay")
        .arg(input)
        .arg("--rules")
        .arg(common::shared_path(
            "sigmahq-full/rules/windows/process_creation",
        ))
        .args(["--shards", "1", "--workers", "1", "--no-incidents"])
        .arg("--out")
        .arg(dir.join("alerts.jsonl"))
        .arg("--dead-letter")
        .arg(dir.join("dead.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.unwrap(), &mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is the child spawned above, not yet reaped; both pointers are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "replay failed:\n{stderr}"
    );
    let mut counts = BTreeMap::new();
    let mut in_matches = false;
    for line in stderr.lines() {
        if line.contains("detection matches by rule") {
            in_matches = true;
            continue;
        }
        if in_matches {
            let t = line.trim_start();
            match t.split_once("  ") {
                Some((n, title))
                    if n.chars().all(|c| c.is_ascii_digit()) && line.starts_with("    ") =>
                {
                    counts.insert(title.trim().to_string(), n.parse().unwrap());
                }
                _ => in_matches = false,
            }
        }
    }
    (counts, usage.ru_maxrss / 1024)
}

#[test]
fn process_creation_rules_on_copies_of_the_windows_captures_stay_small_and_add_up() {
    // Every second event keeps every capture and event kind, and a debug build's run short.
    let events: Vec<_> = captures(&[common::shared("windows")])
        .into_iter()
        .step_by(2)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    let n = write_copies(events.clone(), 1, &one);
    assert!(n > 25_000, "{n} events");
    assert_eq!(write_copies(events, n + 1, &two), 2 * n);
    forget_own_peak_rss();
    let (once, rss_once) = replay(&one, dir.path());
    let (twice, rss_twice) = replay(&two, dir.path());
    assert!(
        once.values().sum::<u64>() > 0,
        "the captures hold process creations SigmaHQ detects"
    );
    let doubled: BTreeMap<String, u64> = once.iter().map(|(k, v)| (k.clone(), 2 * v)).collect();
    assert_eq!(
        twice, doubled,
        "the second copy matched other than the first"
    );
    eprintln!(
        "{n} events a copy, {} matches a copy; peak RSS {rss_once} MB (one copy), {rss_twice} MB (two)",
        once.values().sum::<u64>()
    );
    for rss in [rss_once, rss_twice] {
        assert!(rss <= MAX_RSS_MB, "peak RSS {rss} MB > {MAX_RSS_MB} MB");
    }
}

/// A child's peak RSS as `wait4` reports it starts at this process's own peak (the child
/// begins on our memory, and Linux keeps its high water mark across `exec`): give back what
/// was freed and reset our mark to what we hold now, or the test measures itself.
fn forget_own_peak_rss() {
    // SAFETY: malloc_trim only releases free memory of glibc's heap.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
