//! `credtrail rules test` as a user runs it: exit codes, one line per case and variant, JUnit
//! and JSON output, and failures that name what went wrong.

mod common;

use std::path::Path;
use std::process::Command;

fn credtrail(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const RULES: &str = r#"
title: read
name: t_read
detection: {selection: {eventName: GetSecretValue}, condition: selection}
---
title: list
name: t_list
detection: {selection: {eventName: ListUsers}, condition: selection}
---
title: rotate
name: t_rotate
detection: {selection: {eventName: RotateSecret}, condition: selection}
---
title: read then list
name: t_chain
correlation:
  type: temporal_ordered
  rules: [t_read, t_list]
  group-by: [credtrail.identity]
  timespan: 10m
credtrail:
  until: [t_rotate]
"#;

fn case(expect: &str, until_event: &str) -> String {
    format!(
        r#"tests:
  - name: read then list
    rule: t_chain
    events:
      - at: 0s
        event: {{eventSource: s, eventName: GetSecretValue, userIdentity: {{arn: u}}}}
      - at: 1m
        event: {{eventSource: s, eventName: ListUsers, userIdentity: {{arn: u}}}}
    expect: {expect}
    until_event: {until_event}
"#
    )
}

fn write_case(dir: &Path, expect: &str, until_event: &str) {
    std::fs::write(dir.join("chain.yml"), RULES).unwrap();
    std::fs::write(dir.join("chain.tests.yml"), case(expect, until_event)).unwrap();
}

#[test]
fn the_shipped_pack_passes_with_its_variants() {
    let (code, out, err) = credtrail(&["rules", "test", "rules/"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("[shuffled within"), "{out}");
    assert!(out.contains("[duplicated"), "{out}");
    assert!(out.contains("[stretched past the timespan"), "{out}");
    assert!(out.lines().last().unwrap().contains("0 failed"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_exit_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "[]",
        "{eventSource: s, eventName: RotateSecret, userIdentity: {arn: u}}",
    );
    let (code, out, _) = credtrail(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL") && out.contains("expected 0 alert(s), got 1"),
        "{out}"
    );
}

#[test]
fn a_variant_that_breaks_is_reported_on_its_own_line() {
    // The until event given does not match the until rule: the chain survives the insertion,
    // which the `until` variant reports as a failure.
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "[{group: u, events: [0, 1]}]",
        "{eventSource: s, eventName: DescribeSecret, userIdentity: {arn: u}}",
    );
    let (code, out, _) = credtrail(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("[until event inserted]"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("expected no alert, got 1"), "{line}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("PASS") && l.contains("[duplicated")),
        "{out}"
    );
}

#[test]
fn junit_and_json_reports_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "[{group: u, events: [0, 1]}]",
        "{eventSource: s, eventName: RotateSecret, userIdentity: {arn: u}}",
    );
    let path = dir.path().to_str().unwrap();
    let (code, out, _) = credtrail(&["rules", "test", path, "--format", "junit"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("<?xml"), "{out}");
    assert!(out.contains("failures=\"0\""), "{out}");
    assert!(out.contains("[until event inserted]"), "{out}");
    let (code, out, _) = credtrail(&["rules", "test", path, "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["failed"], 0);
    assert!(v["summary"]["passed"].as_u64().unwrap() >= 6, "{v}");
}

#[test]
fn a_misspelt_key_in_a_test_file_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.yml"), RULES).unwrap();
    std::fs::write(
        dir.path().join("chain.tests.yml"),
        "tests:\n  - name: x\n    rule: t_chain\n    event: []\n    expect: []\n",
    )
    .unwrap();
    let (code, out, _) = credtrail(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL") && out.contains("4:"), "{out}");
    assert!(out.contains("event"), "{out}");
}

#[test]
fn bad_rules_exit_2_and_name_their_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "title: x\ncorrelation: {type: temporal, rules: [a, b], timespan: 1m}\ncredtrail: {stage: []}\n",
    )
    .unwrap();
    let (code, _, err) = credtrail(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.yml:3:13") && err.contains("unknown key `credtrail.stage`"),
        "{err}"
    );
}

/// Issue 10, item 4: a case naming a rule that is not loaded suggests the closest loaded one.
#[test]
fn a_misspelt_rule_in_a_case_gets_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "[]",
        "{eventSource: s, eventName: RotateSecret, userIdentity: {arn: u}}",
    );
    let tests = dir.path().join("chain.tests.yml");
    let text = std::fs::read_to_string(&tests).unwrap();
    std::fs::write(&tests, text.replace("rule: t_chain", "rule: t_chian")).unwrap();
    let (code, out, err) = credtrail(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains(
            "rule `t_chian` is not loaded (by id or name); did you mean `t_chain`?; add its directory with --rules"
        ),
        "{out}\n{err}"
    );
}

/// Issue 10, item 4: a rule that does not load is a failed case in the report (JUnit and
/// JSON still written, file and line given), the tests of the other rules run, and a case of a
/// correlation that needs the bad rule says so instead of "not loaded".
#[test]
fn rules_that_do_not_load_are_failed_cases_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "[{group: u, events: [0, 1]}]",
        "{eventSource: s, eventName: RotateSecret, userIdentity: {arn: u}}",
    );
    // A second file whose first rule is bad and whose correlation needs it.
    std::fs::write(
        dir.path().join("other.yml"),
        "title: bad read\nname: o_read\ndetection: {selection: {eventName|contians: Get}, condition: selection}\n---\ntitle: other chain\nname: o_chain\ncorrelation: {type: temporal_ordered, rules: [o_read, t_list], group-by: [credtrail.identity], timespan: 10m}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("other.tests.yml"),
        "tests:\n  - name: other chain\n    rule: o_chain\n    events: []\n    expect: []\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (code, out, err) = credtrail(&["rules", "test", path, "--format", "json"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("credtrail: rule error: ")
            && err.contains("other.yml:3:")
            && err.contains("unknown modifier `contians`"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    let load = &results[0];
    assert!(
        load["file"].as_str().unwrap().ends_with("other.yml"),
        "{v:#}"
    );
    assert_eq!(load["line"], 3);
    assert_eq!(load["case"], "(load) rule bad read");
    assert_eq!(load["status"], "fail");
    assert_eq!(
        load["message"],
        "did not load: unknown modifier `contians` in `eventName|contians`; did you mean `contains`?"
    );
    let case = |name: &str| {
        results
            .iter()
            .find(|r| r["case"] == name && r["variant"].is_null())
            .unwrap_or_else(|| panic!("{name}: {v:#}"))
    };
    assert_eq!(case("read then list")["status"], "pass", "{v:#}");
    assert_eq!(case("read then list")["line"], 2);
    assert_eq!(case("other chain")["status"], "fail");
    assert_eq!(
        case("other chain")["message"],
        "line 3: rule `o_chain` did not load: it references `o_read`, which did not load (see its load error)"
    );
    // Exactly one load failure: the correlation that needs the bad rule adds none.
    assert_eq!(
        results
            .iter()
            .filter(|r| r["case"].as_str().unwrap().starts_with("(load)"))
            .count(),
        1
    );
    let (code, out, _) = credtrail(&["rules", "test", path, "--format", "junit"]);
    assert_eq!(code, 2);
    assert!(out.starts_with("<?xml"), "{out}");
    assert!(
        out.contains("name=\"(load) rule bad read\"")
            && out.contains("line=\"3\">")
            && out.contains("<failure message=\"did not load: unknown modifier `contians`"),
        "{out}"
    );
    assert!(out.contains("name=\"read then list\" file=\""), "{out}");
    // SARIF: the failures only, each where it is to be fixed.
    let (code, out, _) = credtrail(&["rules", "test", path, "--format", "sarif"]);
    assert_eq!(code, 2);
    let log: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let located: Vec<(String, String, u64)> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let p = &r["locations"][0]["physicalLocation"];
            let uri = p["artifactLocation"]["uri"].as_str().unwrap();
            (
                r["ruleId"].as_str().unwrap().to_string(),
                uri.rsplit('/').next().unwrap().to_string(),
                p["region"]["startLine"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        located,
        vec![
            ("credtrail/rule-load".into(), "other.yml".into(), 3),
            ("credtrail/rule-test".into(), "other.tests.yml".into(), 2),
        ]
    );
}

/// Issue 10, item 4: `--explain` says which stage each event matched and, for a case that
/// expected an alert and got none, why.
#[test]
fn explain_names_each_events_stage_and_why_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.yml"), RULES).unwrap();
    std::fs::write(
        dir.path().join("chain.tests.yml"),
        r#"tests:
  - name: too slow
    rule: t_chain
    events:
      - at: 0s
        event: {eventSource: s, eventName: GetSecretValue, userIdentity: {arn: u}}
      - at: 20m
        event: {eventSource: s, eventName: ListUsers, userIdentity: {arn: u}}
      - at: 21m
        event: {eventSource: s, eventName: DescribeSecret, userIdentity: {arn: u}}
    expect: [{group: u}]
    skip_variants: [shuffled, duplicated, stretched, gap, until, absence]
  - name: no list
    rule: t_chain
    events:
      - at: 0s
        event: {eventSource: s, eventName: GetSecretValue, userIdentity: {arn: u}}
    expect: [{group: u}]
    skip_variants: [shuffled, duplicated, stretched, gap, until, absence]
  - name: two people
    rule: t_chain
    events:
      - at: 0s
        event: {eventSource: s, eventName: GetSecretValue, userIdentity: {arn: u}}
      - at: 1m
        event: {eventSource: s, eventName: ListUsers, userIdentity: {arn: v}}
    expect: [{group: u}]
    skip_variants: [shuffled, duplicated, stretched, gap, until, absence]
"#,
    )
    .unwrap();
    let (code, out, err) = credtrail(&["rules", "test", dir.path().to_str().unwrap(), "--explain"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let explained: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("     "))
        .map(str::trim)
        .collect();
    assert_eq!(
        explained,
        vec![
            "event 0 at +0s: stage 1 `t_read` (group: u)",
            "event 1 at +20m: stage 2 `t_list` (group: u)",
            "event 2 at +21m: no stage (matched no rule)",
            "why no alert: the shortest ordered chain (events [0, 1]) spans 20m, over the timespan of 10m",
            "event 0 at +0s: stage 1 `t_read` (group: u)",
            "why no alert: stage 2 `t_list` matched no event",
            "event 0 at +0s: stage 1 `t_read` (group: u)",
            "event 1 at +1m: stage 2 `t_list` (group: v)",
            "why no alert: the stages' events are in different groups (group-by: credtrail.identity): [u], [v]",
        ],
        "{out}"
    );
}
