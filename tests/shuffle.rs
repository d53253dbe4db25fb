//! Property: any delivery order within the allowed lateness gives the same alerts as sorted
//! input. Each event of the demo dataset is delivered at its event time plus a random delay of
//! at most the lateness, which is exactly "out of order within the lateness".
//!
//! Line numbers change when lines move, so alerts are compared with their source positions
//! taken out (everything else, ids included, must be equal byte for byte).

mod common;

use std::path::PathBuf;

use common::*;
use proptest::prelude::*;

fn without_positions(text: &str) -> Vec<serde_json::Value> {
    alerts(text)
        .into_iter()
        .map(|mut a| {
            for e in a["evidences"].as_array_mut().unwrap() {
                e["data"]["source"] = serde_json::Value::Null;
            }
            a
        })
        .collect()
}

fn sorted_demo() -> Vec<(i64, String)> {
    let text = std::fs::read_to_string(root().join("datasets/demo/events.jsonl")).unwrap();
    let mut events: Vec<(i64, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["eventTime"]
                .as_str()
                .or(v["@timestamp"].as_str())
                .or(v["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"].as_str())
                .unwrap();
            (
                credtrail::time::EventTime::parse(t).unwrap().as_millis(),
                l.to_string(),
            )
        })
        .collect();
    events.sort();
    events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn shuffles_within_the_lateness_give_the_sorted_alerts(seed in any::<u64>(), lateness_secs in 1i64..=300) {
        let rules = pack();
        let events = sorted_demo();
        let dir = tempfile::tempdir().unwrap();
        let sorted_path = dir.path().join("sorted.jsonl");
        std::fs::write(&sorted_path, events.iter().map(|(_, l)| format!("{l}\n")).collect::<String>()).unwrap();
        let lateness = format!("{lateness_secs}s");
        let (want, ..) = replay(&rules, &[sorted_path], 2, &lateness);
        // 7 findings in 3 incidents: 7 Creates and Updates, 3 Closes.
        prop_assert_eq!(alerts(&want).len(), 10);

        let mut rng = credtrail::tooling::generator::rng::Rng::new(seed);
        let mut delivered: Vec<(i64, usize, &str)> = events
            .iter()
            .enumerate()
            .map(|(i, (t, l))| (t + rng.below(lateness_secs as u64 * 1000 + 1) as i64, i, l.as_str()))
            .collect();
        delivered.sort();
        let shuffled_path: PathBuf = dir.path().join("shuffled.jsonl");
        std::fs::write(&shuffled_path, delivered.iter().map(|(_, _, l)| format!("{l}\n")).collect::<String>()).unwrap();
        let (got, summary, _out) = replay(&rules, &[shuffled_path], 2, &lateness);
        prop_assert_eq!(summary.sequencer.late, 0);
        prop_assert_eq!(without_positions(&got), without_positions(&want));
    }
}
