use std::collections::{HashMap, HashSet};

use super::labels::{ChainLabel, Expect};
use super::*;

fn run(preset: Preset, seed: u64, overrides: &Overrides) -> (Vec<u8>, Vec<u8>, Written) {
    let mut out = Vec::new();
    let mut labels = Vec::new();
    let w = generate(preset, seed, overrides, &mut out, Some(&mut labels)).unwrap();
    (out, labels, w)
}

fn small() -> Overrides {
    Overrides {
        events: Some(20_000),
        ..Overrides::default()
    }
}

/// Event time of a generated event, from whichever field its source uses.
fn time_of(v: &serde_json::Value) -> EventTime {
    let text = [
        &v["eventTime"],
        &v["@timestamp"],
        &v["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"],
        &v["requestReceivedTimestamp"],
        &v["timestamp"],
    ]
    .into_iter()
    .find_map(|x| x.as_str())
    .unwrap();
    EventTime::parse(text).unwrap()
}

/// The engine's id of a generated event (see `sources`).
fn id_of(v: &serde_json::Value) -> String {
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if v["eventID"].is_string() {
        s(&v["eventID"])
    } else if v["auditID"].is_string() {
        s(&v["auditID"])
    } else if v["event_id"].is_string() {
        s(&v["event_id"])
    } else if v["Event"].is_object() {
        let sys = &v["Event"]["System"];
        format!(
            "{}/{}/{}",
            s(&sys["Computer"]),
            s(&sys["Channel"]),
            s(&sys["EventRecordID"])
        )
    } else if v["Channel"] == "Linux-Sysmon/Operational" {
        format!("{}/{}", s(&v["Hostname"]), s(&v["RecordNumber"]))
    } else {
        format!(
            "{}/{}/{}",
            s(&v["Hostname"]),
            s(&v["Channel"]),
            s(&v["RecordNumber"])
        )
    }
}

fn parse(out: &[u8]) -> Vec<serde_json::Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn same_seed_same_bytes_and_labels_other_seed_other_bytes() {
    for preset in [Preset::Mixed, Preset::W500] {
        let (a, la, _) = run(preset, 7, &small());
        let (b, lb, _) = run(preset, 7, &small());
        let (c, lc, _) = run(preset, 8, &small());
        assert!(a == b && la == lb, "{preset:?} is not reproducible");
        assert!(a != c && la != lc, "{preset:?} ignores the seed");
    }
}

#[test]
fn delivery_is_out_of_order_but_never_beyond_the_jitter() {
    let (out, _, _) = run(Preset::Mixed, 3, &small());
    let jitter = Preset::Mixed.plan(&small()).unwrap().jitter;
    let mut max_seen = EventTime::MIN;
    let mut reordered = 0;
    for v in parse(&out) {
        let t = time_of(&v);
        if t < max_seen {
            reordered += 1;
        }
        // CloudTrail writes whole seconds: one more second of slack.
        assert!(
            t >= max_seen.minus(jitter).minus(Span::from_secs(1)),
            "{t} delivered after {max_seen}"
        );
        max_seen = max_seen.max(t);
    }
    assert!(reordered > 1000, "only {reordered} events out of order");
}

#[test]
fn labels_name_events_that_exist_and_cover_every_scenario() {
    let (out, labels, _) = run(Preset::Mixed, 5, &small());
    let ids: HashSet<String> = parse(&out).iter().map(id_of).collect();
    let labels: Vec<ChainLabel> = labels
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let scenarios: HashSet<&str> = labels.iter().map(|l| l.scenario.as_str()).collect();
    for s in chains::Scenario::ALL {
        assert!(scenarios.contains(s.name()), "{} never injected", s.name());
    }
    for l in &labels {
        assert!(!l.events.is_empty());
        for e in &l.events {
            assert!(
                ids.contains(e),
                "{}: event {e} is not in the output",
                l.chain
            );
        }
    }
    assert!(labels.iter().any(|l| l.expect == Expect::None));
    assert!(labels.iter().any(|l| l.speed == labels::Speed::Human));
}

#[test]
fn every_source_layout_is_present_in_the_mixed_preset() {
    let (out, _, _) = run(Preset::Mixed, 9, &small());
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for v in parse(&out) {
        let kind = if v["eventSource"].is_string() {
            "cloudtrail"
        } else if v["Event"].is_object() {
            "windows_nested"
        } else if v["Channel"] == "Microsoft-Windows-Sysmon/Operational" {
            "windows_flat"
        } else if v["Channel"] == "Linux-Sysmon/Operational" {
            "linux"
        } else if v["auditID"].is_string() {
            "k8s_audit"
        } else if v["event_type"] == "tool_call" {
            "agent"
        } else {
            panic!("unknown layout: {v}")
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    assert_eq!(kinds.len(), 6, "{kinds:?}");
}

#[test]
fn w500_events_are_about_500_bytes_and_identities_are_zipf() {
    let (out, _, w) = run(
        Preset::W500,
        1,
        &Overrides {
            events: Some(50_000),
            ..Overrides::default()
        },
    );
    let mean = w.bytes as f64 / w.events as f64;
    assert!((450.0..550.0).contains(&mean), "mean event size {mean}");
    let mut per_identity: HashMap<String, u64> = HashMap::new();
    for v in parse(&out) {
        let who = v["userIdentity"]["arn"]
            .as_str()
            .or(v["User"].as_str())
            .unwrap()
            .to_string();
        *per_identity.entry(who).or_insert(0) += 1;
    }
    let mut counts: Vec<u64> = per_identity.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    // A heavy head and a long tail: the busiest identity has many events, most have one or two.
    assert!(counts[0] > 500, "busiest identity has {} events", counts[0]);
    assert!(counts.len() > 5_000, "{} identities", counts.len());
}

#[test]
fn memory_is_bounded_by_events_in_flight_not_by_output_length() {
    let o = |n| Overrides {
        events: Some(n),
        ..Overrides::default()
    };
    let (_, _, short) = run(Preset::W500, 2, &o(40_000));
    let (_, _, long) = run(Preset::W500, 2, &o(160_000));
    // rate × jitter = 25,000 events; chains add a few.
    assert!(long.peak_in_flight < 30_000, "{}", long.peak_in_flight);
    assert!(long.peak_in_flight < short.peak_in_flight * 2);
}

#[test]
fn demo_preset_is_the_bundled_dataset_generator() {
    let mut a = Vec::new();
    generate(Preset::Demo, 7, &Overrides::default(), &mut a, None).unwrap();
    let mut b = Vec::new();
    super::demo::generate(super::demo::Preset::Demo, 7, &mut b).unwrap();
    assert_eq!(a, b);
}
