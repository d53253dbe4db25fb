//! Conformance of the detection language with the Sigma specification (rules specification
//! v2.0.0, modifiers appendix v2.1.0, filters specification v2.0.0).
//!
//! Each file of `tests/conformance/detection/` cites the paragraph it checks and holds cases: a rule (or
//! several YAML documents), events that must match and events that must not, or the construct
//! of the load error the rule must fail with. The examples are the specification's own where it
//! gives them. A file with no case, or a case that checks nothing, fails the test.

mod sigma_support;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use sigma_support::{generic_options, load_text, matched, with_time};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// The specification paragraph the file checks.
    source: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Rule text; `title` and a generic `logsource` are added when it has none.
    rule: String,
    #[serde(default)]
    placeholders: HashMap<String, Vec<String>>,
    #[serde(default, rename = "match")]
    matches: Vec<serde_json::Value>,
    #[serde(default)]
    no_match: Vec<serde_json::Value>,
    /// The construct (`LoadError::construct`) the load must fail with.
    error: Option<String>,
}

fn files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/detection");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    out.sort();
    out
}

fn rule_text(case: &Case) -> String {
    if case.rule.trim_start().starts_with("title:") {
        return case.rule.clone();
    }
    format!(
        "title: {}\nlogsource: {{product: test}}\n{}",
        serde_json::to_string(&case.name).unwrap(),
        case.rule
    )
}

#[test]
fn every_case_of_the_specification_holds() {
    let files = files();
    assert!(files.len() >= 10, "conformance files are missing");
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let cf: CaseFile =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            !cf.source.is_empty() && !cf.cases.is_empty(),
            "{}",
            file.display()
        );
        for case in &cf.cases {
            let at = format!("{} / {}", file.display(), case.name);
            let checks =
                case.matches.len() + case.no_match.len() + usize::from(case.error.is_some());
            assert!(checks > 0, "{at}: the case checks nothing");
            checked += checks;
            let loaded = load_text(&rule_text(case), &case.placeholders, &generic_options());
            match (&case.error, loaded) {
                (Some(want), Err(errors)) => {
                    if !errors.iter().any(|e| &e.construct() == want) {
                        failures.push(format!("{at}: expected a `{want}` error, got {errors:?}"));
                    }
                    for e in &errors {
                        if e.loc.line == 0 {
                            failures.push(format!("{at}: error without a line: {e}"));
                        }
                    }
                }
                (Some(want), Ok(_)) => {
                    failures.push(format!("{at}: loaded, expected a `{want}` error"))
                }
                (None, Err(errors)) => failures.push(format!(
                    "{at}: does not load: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                (None, Ok(rules)) => {
                    for (events, want) in [(&case.matches, true), (&case.no_match, false)] {
                        for ev in events {
                            let got = matched(&rules, &with_time(ev.clone()));
                            match got {
                                Ok(titles) if titles.is_empty() != want => {}
                                Ok(titles) => failures.push(format!(
                                    "{at}: event {ev} should {}match, matched {titles:?}",
                                    if want { "" } else { "not " }
                                )),
                                Err(e) => failures.push(format!("{at}: event {ev}: {e}")),
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checked} conformance checks in {} files", files.len());
}
