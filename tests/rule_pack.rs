//! The shipped pack's sidecar test files (`rules/**/<rule>.tests.yml`, format in
//! rules/README.md), run through a full replay: each case's events are written with their
//! times (base_time + at) in the order given, the rule's directory is loaded, and the alerts of
//! the named rule must be exactly the expected groups with the expected contributing events.
//! `credtrail rules test` (built on another branch) runs the same files with generated
//! variants; this test keeps the files honest until then and afterwards.

mod common;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use credtrail::time::{EventTime, Span};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    base_time: Option<String>,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    rule: String,
    lateness: Option<String>,
    events: Vec<TimedEvent>,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimedEvent {
    at: String,
    event: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    group: String,
    events: Option<Vec<usize>>,
}

/// The time field, the id field and how the time is written, by the event's shape (the
/// agreed formats of the source profiles).
fn stamp(event: &mut Value, time: EventTime, index: usize) {
    let map = event.as_object_mut().expect("events are objects");
    let iso = Value::from(time.to_string());
    let (time_field, id_field, id) = if map.contains_key("eventSource") {
        ("eventTime", "eventID", format!("ev-{index}"))
    } else if map.get("Channel").and_then(Value::as_str) == Some("Linux-Sysmon/Operational") {
        map.entry("Hostname").or_insert_with(|| "test-host".into());
        ("@timestamp", "RecordNumber", format!("{}", 1000 + index))
    } else if map.contains_key("verb") {
        (
            "requestReceivedTimestamp",
            "auditID",
            format!("audit-{index}"),
        )
    } else if map.contains_key("agent") && map.contains_key("tool") {
        ("timestamp", "event_id", format!("tc-{index}"))
    } else if map.contains_key("EventID") {
        map.entry("Computer").or_insert_with(|| "test-host".into());
        ("@timestamp", "EventRecordID", format!("{}", 1000 + index))
    } else {
        panic!("no known source profile for {event}");
    };
    map.insert(time_field.into(), iso);
    map.entry(id_field).or_insert_with(|| id.into());
}

fn sidecars(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sidecars(&p, out);
        } else if p.to_string_lossy().ends_with(".tests.yml") {
            out.push(p);
        }
    }
}

fn run_case(dir: &Path, base: EventTime, case: &Case) -> Result<(), String> {
    let rules = common::rules(&[dir.to_path_buf()]);
    // Alerts name their rule by id and title; the case names it by Sigma name or id.
    let meta = rules
        .meta
        .iter()
        .find(|m| m.name.as_deref() == Some(&case.rule) || m.id.as_deref() == Some(&case.rule))
        .ok_or_else(|| format!("no rule named `{}`", case.rule))?;
    let (rule_id, rule_title) = (meta.id.clone(), meta.title.clone());
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.jsonl");
    let mut text = String::new();
    for (i, te) in case.events.iter().enumerate() {
        let at = Span::parse(&te.at).map_err(|e| format!("at `{}`: {e}", te.at))?;
        let mut ev = te.event.clone();
        stamp(&mut ev, EventTime(base.0 + at.0), i);
        text.push_str(&ev.to_string());
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let lateness = case.lateness.as_deref().unwrap_or("5m");
    let (alerts, summary, _d) = common::replay(&rules, &[input], 2, lateness);
    if summary.sequencer.dead_letters > 0 {
        return Err(format!(
            "{} event(s) dead-lettered",
            summary.sequencer.dead_letters
        ));
    }
    let got: Vec<(String, Vec<usize>)> = common::alerts(&alerts)
        .iter()
        .filter(|a| {
            let analytic = &a["finding_info"]["analytic"];
            analytic["name"] == rule_title.as_str()
                && rule_id.as_deref().is_none_or(|id| analytic["uid"] == id)
        })
        .map(|a| {
            let group = a["metadata"]["correlation_uid"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let events = a["evidences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["source"]["line"].as_u64().unwrap() as usize - 1)
                .collect();
            (group, events)
        })
        .collect();
    let matches = got.len() == case.expect.len()
        && got.iter().zip(&case.expect).all(|((g, evs), want)| {
            g == &want.group && want.events.as_ref().is_none_or(|w| w == evs)
        });
    if matches {
        Ok(())
    } else {
        let want: Vec<(&str, &Option<Vec<usize>>)> = case
            .expect
            .iter()
            .map(|e| (e.group.as_str(), &e.events))
            .collect();
        Err(format!("expected {want:?}, got {got:?}"))
    }
}

#[test]
fn every_sidecar_test_of_the_pack_passes() {
    std::env::set_current_dir(common::root()).unwrap();
    let mut files = Vec::new();
    sidecars(Path::new("rules"), &mut files);
    files.sort();
    assert!(files.len() >= 15, "sidecar test files went missing");
    let mut failures = Vec::new();
    let mut cases = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let file: File =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let base = EventTime::parse(file.base_time.as_deref().unwrap_or("2024-01-01T00:00:00Z"))
            .expect("base_time");
        let stem = f.to_string_lossy().replace(".tests.yml", ".yml");
        assert!(
            Path::new(&stem).exists(),
            "{}: no rule file {stem}",
            f.display()
        );
        assert!(!file.tests.is_empty(), "{}: no test", f.display());
        for case in &file.tests {
            cases += 1;
            if let Err(e) = run_case(f.parent().unwrap(), base, case) {
                failures.push(format!("{} / {}: {e}", f.display(), case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{cases} cases in {} files pass", files.len());
}
