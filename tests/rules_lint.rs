//! `credtrail rules lint`: every error of every rule, warnings for rules no profile can match,
//! `--format json`, exit 1 on any error.

use std::path::Path;
use std::process::{Command, Output};

mod common;

fn credtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Findings of one construct, as (file name, line).
fn of(doc: &serde_json::Value, construct: &str) -> Vec<(String, u64)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["construct"] == construct)
        .map(|f| {
            let file = f["file"].as_str().unwrap();
            let name = Path::new(file).file_name().unwrap().to_string_lossy();
            (name.into_owned(), f["line"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn every_error_of_every_file_is_reported_and_the_exit_code_is_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.yml",
        "title: bad modifier\nid: a1\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    Image|containz: x\n  condition: sel\n",
    );
    write(
        d,
        "b.yml",
        "title: bad chain\nid: b1\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    DestinationIp|cidr|contains: 10.0.0.0/8\n  condition: sel\n---\ntitle: bad regex\nid: b2\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    CommandLine|re: 'a(b'\n  condition: sel\n",
    );
    write(d, "c.yml", "title: [unclosed\n");
    write(
        d,
        "d.yml",
        "title: chain\nid: d1\ncorrelation:\n  type: temporal\n  rules: [a1, nowhere]\n  group-by: [User]\n  timespan: 5m\n",
    );
    write(
        d,
        "ok.yml",
        "title: fine\nid: ok1\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n",
    );
    let o = credtrail(&["rules", "lint", d.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc = json(&o);
    assert_eq!(doc["files"], 5);
    assert_eq!(doc["rules"], 6);
    assert_eq!(doc["loaded"], 1, "{doc:#}");
    assert_eq!(of(&doc, "modifier:containz"), vec![("a.yml".into(), 6)]);
    assert_eq!(of(&doc, "modifier-chain"), vec![("b.yml".into(), 6)]);
    assert_eq!(of(&doc, "regex"), vec![("b.yml".into(), 14)]);
    assert_eq!(of(&doc, "yaml").len(), 1);
    // `a1` did not load: its own error says why, so the correlation reports only `nowhere`
    // (issue 10, item 4: no cascading errors), and that error of its own is why it does not
    // load: no held-back note besides.
    assert_eq!(of(&doc, "correlation-reference"), vec![("d.yml".into(), 5)]);
    assert!(of(&doc, "held-back").is_empty(), "{doc:#}");
    assert_eq!(doc["errors"], 5, "{doc:#}");
    // The text format prints the same errors, one per line, and a summary.
    let o = credtrail(&["rules", "lint", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.contains(": error: ")).count(),
        5,
        "{out}"
    );
    assert!(
        out.contains("a.yml:6:5: error: rule a1: unknown modifier `containz`"),
        "{out}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("6 rule(s) in 5 file(s), 1 load; 5 error(s)")
    );
}

#[test]
fn rules_that_can_never_match_a_known_source_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rule = |id: &str, logsource: &str, field: &str| {
        format!(
            "title: {id}\nid: {id}\nlogsource: {logsource}\ndetection:\n  sel:\n    {field}: x\n  condition: sel\n"
        )
    };
    write(
        d,
        "product.yml",
        &rule("p1", "{product: okta, service: okta}", "eventType"),
    );
    write(
        d,
        "category.yml",
        &rule(
            "c1",
            "{product: windows, category: no_such_category}",
            "Image",
        ),
    );
    write(
        d,
        "field.yml",
        &rule("f1", "{product: aws, service: cloudtrail}", "src_country"),
    );
    write(
        d,
        "nested.yml",
        &rule(
            "f2",
            "{product: aws, service: cloudtrail}",
            "requestParameters.secretId",
        ),
    );
    write(
        d,
        "linux.yml",
        &rule("l1", "{product: linux, service: auditd}", "type"),
    );
    write(
        d,
        "agent.yml",
        &rule(
            "g1",
            "{product: ai_agent, service: tool_calls}",
            "tool.name",
        ),
    );
    write(
        d,
        "all.yml",
        "title: all1\nid: all1\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    CommandLine|contains|all: x\n  condition: sel\n",
    );
    let o = credtrail(&["rules", "lint", d.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "warnings do not fail the lint");
    let doc = json(&o);
    assert_eq!(doc["errors"], 0);
    assert_eq!(
        of(&doc, "logsource-product"),
        vec![("product.yml".into(), 1)]
    );
    assert_eq!(
        of(&doc, "logsource-category"),
        vec![("category.yml".into(), 1)]
    );
    assert_eq!(
        of(&doc, "field"),
        vec![("field.yml".into(), 6), ("linux.yml".into(), 6)]
    );
    assert_eq!(of(&doc, "logsource-service"), vec![("linux.yml".into(), 1)]);
    assert_eq!(of(&doc, "all-single-value"), vec![("all.yml".into(), 6)]);
    assert_eq!(doc["warnings"], 6, "{doc:#}");
}

#[test]
fn the_shipped_pack_lints_clean() {
    let o = credtrail(&["rules", "lint", "rules", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let doc = json(&o);
    assert_eq!(doc["errors"], 0);
    assert_eq!(doc["warnings"], 0, "{doc:#}");
    assert_eq!(doc["loaded"], doc["rules"]);
}

#[test]
fn the_public_corpus_loads_at_98_percent_and_names_what_it_does_not() {
    let corpus = common::shared_path("sigma");
    let o = credtrail(&[
        "rules",
        "lint",
        corpus.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let doc = json(&o);
    assert_eq!(doc["rules"], 315);
    let loaded = doc["loaded"].as_u64().unwrap();
    assert!(loaded * 100 >= 315 * 98, "{loaded} of 315 load");
    let errors = doc["errors"].as_u64().unwrap();
    assert_eq!(o.status.code(), Some(if errors > 0 { 1 } else { 0 }));
    assert_eq!(
        315 - loaded,
        errors,
        "one error per rule that does not load"
    );
}

/// Issue 10, item 4 (no cascading errors): one bad document of a file is one error; the file's
/// other rules load, and a correlation that needs the bad rule is a note, not a second error.
#[test]
fn one_bad_rule_is_one_error_and_its_neighbours_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "chain.yml",
        "title: bad\nid: bad\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    eventName|contians: x\n  condition: sel\n---\ntitle: good\nid: good\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    eventName: ListUsers\n  condition: sel\n---\ntitle: chain\nid: chain\ncorrelation:\n  type: temporal_ordered\n  rules: [bad, good]\n  group-by: [credtrail.identity]\n  timespan: 5m\n",
    );
    // A document that is not even YAML costs only itself too.
    write(
        d,
        "yaml.yml",
        "title: one\nid: one\nlogsource: {product: aws, service: cloudtrail}\ndetection: {sel: {eventName: A}, condition: sel}\n---\ntitle: [unclosed\nid: two\n---\ntitle: three\nid: three\nlogsource: {product: aws, service: cloudtrail}\ndetection: {sel: {eventName: B}, condition: sel}\n",
    );
    let o = credtrail(&["rules", "lint", d.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc = json(&o);
    assert_eq!(doc["rules"], 6, "{doc:#}");
    assert_eq!(doc["loaded"], 3, "good, one, three: {doc:#}");
    assert_eq!(doc["errors"], 2, "{doc:#}");
    let errors: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        errors[0],
        "unknown modifier `contians` in `eventName|contians`; did you mean `contains`?"
    );
    assert!(errors[1].starts_with("invalid YAML: "), "{errors:?}");
    assert_eq!(of(&doc, "modifier:contians"), vec![("chain.yml".into(), 6)]);
    // Where the parser finds the flow sequence unclosed: the next line, inside the document.
    assert_eq!(of(&doc, "yaml"), vec![("yaml.yml".into(), 7)]);
    let note = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["construct"] == "held-back")
        .unwrap();
    assert_eq!(note["severity"], "note");
    assert_eq!(note["line"], 17);
    assert_eq!(
        note["message"],
        "not loaded: it references `bad`, which did not load (see that rule's error)"
    );
}

/// Issue 10, item 4: a nested field a profile's schema does not have is a likely typo of the
/// one it has, and the warning says which.
#[test]
fn nested_field_typos_name_the_field_the_schema_has() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "k8s.yml",
        "title: secrets read\nid: k1\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel:\n    verb: get\n    objectRef.resorce: secrets\n  condition: sel\n",
    );
    write(
        d,
        "ct.yml",
        "title: list users\nid: c1\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    eventNme: ListUsers\n    userIdentity.sessionContext.sessionIssuer.arm: x\n  condition: sel\n",
    );
    let o = credtrail(&["rules", "lint", d.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "warnings do not fail the lint");
    let doc = json(&o);
    let messages: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["construct"] == "field")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        vec![
            "field `eventNme` never occurs in cloudtrail events; this item can never match there; did you mean `eventName`?",
            "field `userIdentity.sessionContext.sessionIssuer.arm` never occurs in cloudtrail events; this item can never match there; did you mean `userIdentity.sessionContext.sessionIssuer.arn`?",
            "field `objectRef.resorce` never occurs in k8s_audit events; this item can never match there; did you mean `objectRef.resource`?",
        ]
    );
    assert_eq!(of(&doc, "field")[2], ("k8s.yml".into(), 7));
}

/// Issue 10, item 4: `--format sarif` is a SARIF 2.1.0 log code-scanning UIs read, each
/// finding at its file, line and column.
#[test]
fn sarif_output_locates_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.yml",
        "title: bad modifier\nid: a1\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel:\n    verb|containz: x\n  condition: sel\n---\ntitle: typo\nid: a2\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel:\n    objectRef.resorce: secrets\n  condition: sel\n",
    );
    let o = credtrail(&["rules", "lint", d.to_str().unwrap(), "--format", "sarif"]);
    assert_eq!(o.status.code(), Some(1));
    let log = json(&o);
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["tool"]["driver"]["name"], "credtrail");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{log:#}");
    let located = |r: &serde_json::Value| {
        let p = &r["locations"][0]["physicalLocation"];
        (
            r["ruleId"].as_str().unwrap().to_string(),
            r["level"].as_str().unwrap().to_string(),
            p["artifactLocation"]["uri"].as_str().unwrap().to_string(),
            p["region"]["startLine"].as_u64().unwrap(),
            p["region"]["startColumn"].as_u64().unwrap(),
        )
    };
    let (id, level, uri, line, col) = located(&results[0]);
    assert_eq!(
        (id.as_str(), level.as_str()),
        ("credtrail/modifier", "error")
    );
    assert!(
        uri.starts_with("file:///") && uri.ends_with("/a.yml"),
        "{uri}"
    );
    assert_eq!((line, col), (6, 5));
    assert!(
        results[0]["message"]["text"]
            .as_str()
            .unwrap()
            .ends_with("unknown modifier `containz` in `verb|containz`; did you mean `contains`?")
    );
    let (id, level, _, line, col) = located(&results[1]);
    assert_eq!(
        (id.as_str(), level.as_str()),
        ("credtrail/field", "warning")
    );
    assert_eq!((line, col), (14, 5));
    let rules: Vec<&str> = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["credtrail/field", "credtrail/modifier"]);
}
