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
    // `a1` did not load, so the correlation misses it as well as `nowhere`.
    assert_eq!(
        of(&doc, "correlation-reference"),
        vec![("d.yml".into(), 5), ("d.yml".into(), 5)]
    );
    assert_eq!(doc["errors"], 6, "{doc:#}");
    // The text format prints the same errors, one per line, and a summary.
    let o = credtrail(&["rules", "lint", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.contains(": error: ")).count(),
        6,
        "{out}"
    );
    assert!(
        out.contains("a.yml:6:5: error: rule a1: unknown modifier `containz`"),
        "{out}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("6 rule(s) in 5 file(s), 1 load; 6 error(s)")
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
