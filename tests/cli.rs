//! The `credtrail` binary: exit codes (0 ok, 2 bad arguments or rules, 1 runtime error),
//! alerts on standard output, the summary on standard error.

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

fn credtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn replay_prints_alerts_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--dead-letter",
        dead.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    // 7 findings in 3 incidents: 7 Creates and Updates, then 3 Closes.
    assert_eq!(out.lines().count(), 10);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["class_uid"], 2004);
    }
    let err = stderr(&o);
    for needle in [
        "events/s",
        "dead-lettered: 0",
        "alerts: 10",
        "identities in state",
        "p50",
        "p99",
    ] {
        assert!(err.contains(needle), "summary lacks `{needle}`:\n{err}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    let o = credtrail(&["replay", "no/such/file.jsonl", "--rules", "rules"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no/such/file.jsonl"));
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--lateness",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--lateness"));
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--profile",
        "syslog",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cloudtrail"),
        "lists the known profiles"
    );
    let o = credtrail(&["replay", "datasets/demo/events.jsonl"]);
    assert_eq!(o.status.code(), Some(2), "--rules is required");
}

#[test]
fn a_bad_rule_fails_the_load_naming_file_line_rule_and_construct() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "title: broken\nid: r-1\nlogsource: {product: aws}\ndetection:\n  sel:\n    eventName|base64offset|cidr: x\n  condition: sel\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("good.yml"),
        "title: ok\ndetection:\n  sel: {a: b}\n  condition: sel and nope\n",
    )
    .unwrap();
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.yml:6:5: rule r-1"), "{err}");
    assert!(err.contains("eventName|base64offset|cidr"), "{err}");
    assert!(
        err.contains("good.yml:4:14"),
        "every error is printed, not only the first:\n{err}"
    );
    assert!(err.contains("nope"), "{err}");
    assert!(o.stdout.is_empty(), "nothing runs when a rule fails");
}

#[test]
fn runtime_errors_exit_1() {
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--out",
        "/nonexistent-dir/alerts.jsonl",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent-dir/alerts.jsonl"));
}

#[test]
fn the_committed_demo_dataset_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("demo.jsonl");
    let o = credtrail(&[
        "gen",
        "--preset",
        "demo",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let fresh = std::fs::read(&out).unwrap();
    let committed =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/demo/events.jsonl"))
            .unwrap();
    assert!(
        fresh == committed,
        "regenerate datasets/demo/events.jsonl with `credtrail gen --preset demo --seed 7`"
    );
}

#[test]
fn identity_priority_lists_and_inventory_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("identity.yaml");
    // Group sessions by session ARN instead of the role behind them.
    std::fs::write(&id, "cloudtrail:\n  - [userIdentity.arn]\n").unwrap();
    let input = common::shared(
        "cloudtrail/otrf-ec2-proxy-s3-exfil/ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl",
    );
    let input = input.to_str().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let base = [
        "replay",
        input,
        "--rules",
        "rules",
        "--lateness",
        "15m",
        "--quiet",
        "--dead-letter",
        dead.to_str().unwrap(),
    ];
    let by_role = credtrail(&base);
    let mut args = base.to_vec();
    args.extend(["--identity", id.to_str().unwrap()]);
    let by_session = credtrail(&args);
    assert_eq!(by_role.status.code(), Some(0), "{}", stderr(&by_role));
    assert_eq!(by_session.status.code(), Some(0), "{}", stderr(&by_session));
    let group = |o: &Output| {
        let line = String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap()
            .to_string();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["metadata"]["correlation_uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(group(&by_role).contains(":role/MordorNginxStack"));
    assert!(group(&by_session).contains(":assumed-role/MordorNginxStack"));
    // Bad files are bad input.
    std::fs::write(&id, "syslog:\n  - [x]\n").unwrap();
    let o = credtrail(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("syslog"));
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, "identities:\n  - match: x\n    privilege: root\n").unwrap();
    let mut args = base.to_vec();
    args.extend(["--inventory", inv.to_str().unwrap()]);
    let o = credtrail(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("inventory.yaml"), "{}", stderr(&o));
    let o = credtrail(&[
        "replay",
        input,
        "--rules",
        "rules",
        "--weights",
        "50,50,50,50",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("add up to 200"));
}

/// `--suspend-to` and `--restore` through the binary: stage 2 on the first half of a hits
/// partition's records, suspended, then on the second half restored, writes the alert lines
/// of one run over all of them; without `--records --no-incidents` the flags are refused.
#[test]
fn a_suspended_stage_two_restored_by_the_cli_writes_the_alerts_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let hits = path("hits");
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--route-to",
        &hits,
        "--hit-partitions",
        "1",
        "--dead-letter",
        &path("d0"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let records = format!("{hits}/hits-0.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let half = lines.len() / 2;
    std::fs::write(path("head"), lines[..half].join("\n") + "\n").unwrap();
    std::fs::write(path("tail"), lines[half..].join("\n") + "\n").unwrap();
    let stage2 = |input: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "replay",
            input,
            "--records",
            "--no-incidents",
            "--rules",
            "rules",
            "--dead-letter",
        ];
        let dead = path(&format!("dead-{}", extra.len()));
        args.push(&dead);
        args.extend_from_slice(extra);
        let o = credtrail(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mut whole = stage2(&records, &[]);
    let snap = path("snap");
    let mut split = stage2(&path("head"), &["--suspend-to", &snap]);
    split.extend(stage2(
        &path("tail"),
        &["--restore", &snap, "--format", "json"],
    ));
    whole.sort();
    split.sort();
    assert_eq!(whole.len(), 7, "the demo's alerts");
    assert_eq!(split, whole);
    let o = credtrail(&[
        "replay",
        &records,
        "--rules",
        "rules",
        "--suspend-to",
        &snap,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `THP_enabled` of a replay that reads standard input, once it has printed its first line;
/// `allow` sets `MIMALLOC_ALLOW_THP`.
#[cfg(target_os = "linux")]
fn thp_enabled_of_a_replay(allow: Option<&str>) -> String {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_credtrail"));
    c.args(["replay", "-", "--rules", "rules", "--out"])
        .arg(dir.path().join("alerts.jsonl"))
        .arg("--dead-letter")
        .arg(dir.path().join("dead.jsonl"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("MIMALLOC_ALLOW_THP")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(v) = allow {
        c.env("MIMALLOC_ALLOW_THP", v);
    }
    let mut child = c.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    drop(child.stdin.take());
    drop(child.stderr.take());
    let _ = child.wait();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no THP_enabled in /proc/PID/status (after: {first})"))
}

/// A huge-page fault zeroes 2 MiB, and on a lazily backed VM the host's fault comes with it:
/// the corpus loaded in about 1 s instead of 0.4 (`cli::huge_pages`). The process turns them
/// off unless the allocator's own switch says otherwise.
#[cfg(target_os = "linux")]
#[test]
fn transparent_huge_pages_are_off_unless_the_allocator_is_told_to_use_them() {
    assert_eq!(thp_enabled_of_a_replay(None), "0");
    assert_eq!(thp_enabled_of_a_replay(Some("1")), "1");
}
