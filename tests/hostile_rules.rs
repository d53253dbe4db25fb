//! Hostile rule sets (issue 15): rule files are untrusted input, and each loader case that
//! used to sink `rules lint` (gigabytes, minutes) is now refused quickly, naming the rule (or
//! the link) at fault. Each case runs the real binary in a child process, so the test can
//! hold it to the bounds: refused within 2 s and 500 MB of peak memory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TIME_BOUND: Duration = Duration::from_secs(2);
const MEMORY_BOUND_KB: i64 = 500 * 1024;

/// Runs `credtrail rules lint DIR`: (exit code, output, wall time, peak resident KB).
fn lint(dir: &Path) -> (Option<i32>, String, Duration, i64) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["rules", "lint", "--no-warnings"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_CHILDREN reports reaped children.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, took, usage.ru_maxrss)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Asserts a refusal within the bounds whose output holds every one of `needles`.
fn refused(dir: &Path, needles: &[&str]) {
    let (code, out, took, peak_kb) = lint(dir);
    assert_eq!(code, Some(1), "not refused:\n{out}");
    for n in needles {
        assert!(out.contains(n), "the refusal lacks `{n}`:\n{out}");
    }
    assert!(took < TIME_BOUND, "refused after {took:?}:\n{out}");
    // ru_maxrss of RUSAGE_CHILDREN is the largest peak of any child so far: every child of
    // this test binary is a lint run held to the same bound.
    assert!(
        peak_kb < MEMORY_BOUND_KB,
        "a lint run peaked at {peak_kb} KB"
    );
}

/// Issue 15: 60 one-line rules `f{i}|re: '\w{1000}'` (10 KB) aborted `rules lint` with a
/// failed 64 MiB allocation at 2.5 GB.
#[test]
fn sixty_wide_regex_rules_are_refused_each_named() {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "title: wide {i}\nlogsource: {{product: aws}}\ndetection:\n  sel:\n    f{i}|re: '\\w{{1000}}'\n  condition: sel\n"
            )
        })
        .collect();
    write(dir.path(), "wide.yml", &rules.join("---\n"));
    refused(
        dir.path(),
        &[
            "rule 'wide 0'",
            "rule 'wide 59'",
            "`f7|re` expands to about",
            "60 error(s)",
        ],
    );
}

/// The set budget: sixty rules each under the per-pattern bound (`\w{160}`, about 127,000
/// states) still cannot add up; the rule that crosses the budget and every later one are
/// named, and the load stops growing there.
#[test]
fn patterns_under_the_per_pattern_bound_cannot_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "title: w{i}\nlogsource: {{product: aws}}\ndetection:\n  sel:\n    f{i}|re: '\\w{{160}}'\n  condition: sel\n"
            )
        })
        .collect();
    write(dir.path(), "many.yml", &rules.join("---\n"));
    refused(
        dir.path(),
        &["rule 'w59'", "over their budget of 1048576 states together"],
    );
}

/// Issue 15: a 30 KB repeated literal took 11-17 s to load.
#[test]
fn a_long_repeated_literal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lit.yml",
        &format!(
            "title: long literal\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n  sel:\n    CommandLine|contains: '{}'\n  condition: sel\n",
            "ab".repeat(15_000)
        ),
    );
    refused(
        dir.path(),
        &[
            "rule 'long literal'",
            "is 30000 bytes long, over the limit of 8192",
        ],
    );
}

/// Issue 15: with `|base64offset|contains` 16 KB took over 60 s (building the Aho-Corasick
/// DFA of a repetitive literal).
#[test]
fn a_long_base64offset_literal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "b64.yml",
        &format!(
            "title: b64\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n  sel:\n    CommandLine|base64offset|contains: '{}'\n  condition: sel\n",
            "ab".repeat(8_000)
        ),
    );
    refused(dir.path(), &["rule 'b64'", "base64offset|contains` is"]);
}

/// Issue 15: a rules directory with symbolic links to itself loaded its rules 40 times, or,
/// with two links, ran for minutes.
#[test]
fn symbolic_link_loops_are_refused_naming_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rules");
    std::fs::create_dir(&root).unwrap();
    write(
        &root,
        "ok.yml",
        "title: ok\nlogsource: {product: aws}\ndetection:\n  sel:\n    eventName: GetSecretValue\n  condition: sel\n",
    );
    std::os::unix::fs::symlink(".", root.join("self")).unwrap();
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    refused(&root, &["self", "a symbolic link loop"]);
    // A link to a directory outside the tree is followed, and its rules load once.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    write(
        &outside,
        "more.yml",
        "title: more\nlogsource: {product: aws}\ndetection:\n  sel:\n    eventName: ListUsers\n  condition: sel\n",
    );
    std::fs::remove_file(root.join("self")).unwrap();
    std::fs::remove_file(root.join("up")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linked-again")).unwrap();
    let (code, out, _, _) = lint(&root);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 rule(s) in 2 file(s)"), "{out}");
}

/// Issue 15: `CommandLine|re: '\w{1000}x'` loaded and then cost 2 s per 600 KB event; now the
/// pattern is refused at load, naming the rule, so no event can pay for it.
#[test]
fn a_pattern_too_costly_per_event_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "slow.yml",
        "title: slow\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    CommandLine|re: '\\w{1000}x'\n  condition: sel\n",
    );
    refused(dir.path(), &["rule 'slow'", "over the limit of 131072"]);
}
