//! Golden tests: each folder of `tests/golden/` holds `input.jsonl`, `rules/`, optionally
//! `args` (`lateness = 1m`; `rules = rules/linux` to run a folder of the shipped pack instead
//! of the case's own `rules/`), and the expected outputs `expected_alerts.jsonl` and, when events
//! are dead-lettered, `expected_dead_letters.jsonl`. Every case runs with 1, 2 and 4 shards;
//! all must produce exactly the expected bytes. `UPDATE_GOLDEN=1 cargo test --test golden`
//! rewrites the expected files (review the diff before committing it).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use credtrail::inventory::Inventory;
use credtrail::score::Assessor;

use common::*;

/// A case's `args` file: `lateness = 1m`, `escalate_at = 2`, `inventory = inventory.yaml`
/// (relative to the case folder), `rules = <dir>` (relative to the project root).
fn args(case: &Path) -> (String, Arc<Assessor>, PathBuf) {
    let mut lateness = "5m".to_string();
    let mut assessor = Assessor::default();
    let mut rules = case.join("rules");
    if let Ok(text) = std::fs::read_to_string(case.join("args")) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim();
                match k.trim() {
                    "lateness" => lateness = v.to_string(),
                    "escalate_at" => assessor.escalate_at = Some(v.parse().unwrap()),
                    "inventory" => {
                        assessor.inventory = Some(Arc::new(
                            Inventory::load(&case.join(v)).unwrap_or_else(|e| panic!("{e}")),
                        ))
                    }
                    "rules" => rules = PathBuf::from(v.trim()),
                    other => panic!("{}: unknown argument `{other}`", case.display()),
                }
            }
        }
    }
    (lateness, Arc::new(assessor), rules)
}

fn run_case(case: &Path) {
    let (lateness, assessor, rules_dir) = args(case);
    let rules = rules(&[rules_dir]);
    let input = case.join("input.jsonl");
    let mut first: Option<(String, String)> = None;
    for shards in [1, 2, 4] {
        let (alerts, _summary, dir) = replay_scored(
            &rules,
            std::slice::from_ref(&input),
            shards,
            &lateness,
            assessor.clone(),
        );
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default();
        match &first {
            None => first = Some((alerts, dead)),
            Some((a, d)) => {
                assert_eq!(
                    &alerts,
                    a,
                    "{}: {shards} shards differ from 1",
                    case.display()
                );
                assert_eq!(
                    &dead,
                    d,
                    "{}: dead letters with {shards} shards differ",
                    case.display()
                );
            }
        }
    }
    let (alerts, dead) = first.unwrap();
    let expected_alerts = case.join("expected_alerts.jsonl");
    let expected_dead = case.join("expected_dead_letters.jsonl");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_alerts, &alerts).unwrap();
        if dead.is_empty() {
            let _ = std::fs::remove_file(&expected_dead);
        } else {
            std::fs::write(&expected_dead, &dead).unwrap();
        }
        return;
    }
    let want = std::fs::read_to_string(&expected_alerts).unwrap_or_else(|_| {
        panic!(
            "{} is missing (run with UPDATE_GOLDEN=1)",
            expected_alerts.display()
        )
    });
    assert_same(&alerts, &want, &format!("{}: alerts", case.display()));
    let want_dead = std::fs::read_to_string(&expected_dead).unwrap_or_default();
    assert_same(
        &dead,
        &want_dead,
        &format!("{}: dead letters", case.display()),
    );
}

/// Compares line by line and names the first difference, field by field for JSON lines.
fn assert_same(got: &str, want: &str, what: &str) {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if a != b {
            let (va, vb): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(a).unwrap_or_default(),
                serde_json::from_str(b).unwrap_or_default(),
            );
            let diff = first_json_difference(&va, &vb, String::new()).unwrap_or_default();
            panic!(
                "{what}: line {} differs from the golden file at {diff}",
                i + 1
            );
        }
    }
    assert_eq!(
        g.len(),
        w.len(),
        "{what}: {} lines, the golden file has {}",
        g.len(),
        w.len()
    );
}

fn first_json_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: String,
) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_json_difference(va, vb, format!("{path}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_json_difference(va, vb, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("`{path}`: got {a}, golden {b}")),
    }
}

#[test]
fn golden_cases() {
    std::env::set_current_dir(root()).unwrap();
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/golden")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "golden cases went missing");
    for case in &cases {
        run_case(case);
    }
}
