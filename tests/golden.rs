//! Golden tests: each folder of `tests/golden/` holds `input.jsonl`, `rules/`, optionally
//! `args` (`lateness = 1m`; `rules = rules/linux` to run a folder of the shipped pack instead
//! of the case's own `rules/`), and the expected outputs `expected_alerts.jsonl` and, when events
//! are dead-lettered, `expected_dead_letters.jsonl`. Every case runs with 1, 2 and 4 shards;
//! all must produce exactly the expected bytes. `UPDATE_GOLDEN=1 cargo test --test golden`
//! rewrites the expected files (review the diff before committing it).

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn args(case: &Path) -> (String, PathBuf) {
    let mut lateness = "5m".to_string();
    let mut rules = case.join("rules");
    if let Ok(text) = std::fs::read_to_string(case.join("args")) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "lateness" => lateness = v.trim().to_string(),
                    "rules" => rules = PathBuf::from(v.trim()),
                    other => panic!("{}: unknown argument `{other}`", case.display()),
                }
            }
        }
    }
    (lateness, rules)
}

fn run_case(case: &Path) {
    let (lateness, rules_dir) = args(case);
    let rules = rules(&[rules_dir]);
    let input = case.join("input.jsonl");
    let mut first: Option<(String, String)> = None;
    for shards in [1, 2, 4] {
        let (alerts, _summary, dir) =
            replay(&rules, std::slice::from_ref(&input), shards, &lateness);
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
    assert_eq!(
        alerts,
        want,
        "{}: alerts differ from the golden file",
        case.display()
    );
    let want_dead = std::fs::read_to_string(&expected_dead).unwrap_or_default();
    assert_eq!(
        dead,
        want_dead,
        "{}: dead letters differ from the golden file",
        case.display()
    );
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
