//! A cluster's two stages through record files give the alerts one engine gives: stage 1
//! (`replay --route-to`) resolves and places every hit by its group key, stage 2 (`replay
//! --records`, one run per hits partition, as separate instances would own them) correlates.
//! A stage 1 that restarts and writes its records again after a crash changes nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use credtrail::matcher::RuleSet;
use credtrail::pipeline::forward::FileHits;
use credtrail::pipeline::{ClusterReplay, replay};

const PARTITIONS: u32 = 4;
/// Allowed lateness of every run here: the OTRF CloudTrail export is out of order by up to ten
/// minutes (CloudTrail delivery is).
const LATENESS: &str = "15m";

/// What identifies an alert line: its id, activity, time and title.
type AlertKey = (String, i64, i64, String);

fn keys(text: &str) -> Vec<AlertKey> {
    let mut out: Vec<AlertKey> = common::alerts(text)
        .iter()
        .map(|a| {
            (
                a["finding_info"]["uid"].as_str().unwrap().to_string(),
                a["activity_id"].as_i64().unwrap(),
                a["time"].as_i64().unwrap(),
                a["finding_info"]["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// One engine's alerts, written to `dir/whole/alerts.jsonl`.
fn whole(rules: &Arc<RuleSet>, inputs: &[PathBuf], dir: &Path) -> Vec<AlertKey> {
    let dir = dir.join("whole");
    fs::create_dir_all(&dir).unwrap();
    let opts = common::options(inputs, &dir, 2, LATENESS);
    replay(rules.clone(), &opts).unwrap();
    keys(&fs::read_to_string(dir.join("alerts.jsonl")).unwrap())
}

/// Stage 1 into `dir/hits`.
fn route(rules: &Arc<RuleSet>, inputs: &[PathBuf], dir: &Path) -> PathBuf {
    route_with(rules, inputs, dir, LATENESS)
}

/// Stage 1 into `dir/hits`, with this lateness.
fn route_with(rules: &Arc<RuleSet>, inputs: &[PathBuf], dir: &Path, lateness: &str) -> PathBuf {
    let hits = dir.join("hits");
    fs::create_dir_all(&hits).unwrap();
    let mut opts = common::options(inputs, dir, 2, lateness);
    opts.cluster = ClusterReplay::RouteTo {
        dir: hits.clone(),
        partitions: PARTITIONS,
    };
    let summary = replay(rules.clone(), &opts).unwrap();
    assert_eq!(summary.alerts, 0, "stage 1 correlates nothing");
    hits
}

/// Stage 2 on each partition's records apart, as the instances owning them would; the alerts
/// of all of them, and the copies they dropped.
fn correlate(rules: &Arc<RuleSet>, parts: &[PathBuf], dir: &Path) -> (Vec<AlertKey>, u64) {
    let mut all = Vec::new();
    let mut copies = 0;
    for (p, records) in parts.iter().enumerate() {
        let out = dir.join(format!("stage2-{p}"));
        fs::create_dir_all(&out).unwrap();
        let mut opts = common::options(std::slice::from_ref(records), &out, 2, LATENESS);
        opts.cluster = ClusterReplay::Records(Default::default());
        let summary = replay(rules.clone(), &opts).unwrap();
        assert_eq!(summary.sequencer.dead_letters, 0, "{:?}", summary.sequencer);
        copies += summary.sequencer.copies;
        all.extend(keys(&fs::read_to_string(out.join("alerts.jsonl")).unwrap()));
    }
    all.sort();
    (all, copies)
}

fn demo() -> Vec<PathBuf> {
    vec![common::root().join("datasets/demo/events.jsonl")]
}

#[test]
fn routed_hits_correlated_per_partition_give_the_alerts_of_one_engine() {
    let rules = common::pack();
    let dir = tempfile::tempdir().unwrap();
    let expected = whole(&rules, &demo(), dir.path());
    assert_eq!(expected.len(), 10, "the demo's alerts");
    let hits = route(&rules, &demo(), dir.path());
    let parts: Vec<PathBuf> = (0..PARTITIONS as i32)
        .map(|p| FileHits::path(&hits, p))
        .collect();
    let used = parts
        .iter()
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .count();
    assert!(used >= 2, "the demo's identities spread over partitions");
    let (got, copies) = correlate(&rules, &parts, dir.path());
    assert_eq!(got, expected);
    assert_eq!(copies, 0);
    // Not only the ids: every alert is the one engine's, its evidence naming the input file
    // and line stage 1 read.
    let whole: Vec<serde_json::Value> =
        common::alerts(&fs::read_to_string(dir.path().join("whole/alerts.jsonl")).unwrap());
    let mut staged = Vec::new();
    for p in 0..PARTITIONS {
        let text = fs::read_to_string(dir.path().join(format!("stage2-{p}/alerts.jsonl"))).unwrap();
        staged.extend(common::alerts(&text));
    }
    let by_key = |v: &serde_json::Value| {
        (
            v["finding_info"]["uid"].to_string(),
            v["activity_id"].to_string(),
            v["time"].to_string(),
        )
    };
    let mut whole = whole;
    whole.sort_by_key(by_key);
    staged.sort_by_key(by_key);
    assert_eq!(staged, whole);
}

/// The alerts of `inputs` by one engine and by the two stages (`partitions` hits partitions),
/// each sorted, as JSON.
fn both_ways(
    rules: &Arc<RuleSet>,
    inputs: &[PathBuf],
    dir: &Path,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    whole(rules, inputs, dir);
    let hits = route(rules, inputs, dir);
    let parts: Vec<PathBuf> = (0..PARTITIONS as i32)
        .map(|p| FileHits::path(&hits, p))
        .collect();
    correlate(rules, &parts, dir);
    let by_key = |v: &serde_json::Value| {
        (
            v["finding_info"]["uid"].to_string(),
            v["activity_id"].to_string(),
            v["time"].to_string(),
        )
    };
    let mut one = common::alerts(&fs::read_to_string(dir.join("whole/alerts.jsonl")).unwrap());
    let mut staged = Vec::new();
    for p in 0..PARTITIONS {
        let text = fs::read_to_string(dir.join(format!("stage2-{p}/alerts.jsonl"))).unwrap();
        staged.extend(common::alerts(&text));
    }
    one.sort_by_key(by_key);
    staged.sort_by_key(by_key);
    (one, staged)
}

/// The generated W500 workload (40,000 events) and its rules, in `dir`.
fn w500(dir: &Path) -> (PathBuf, Arc<RuleSet>) {
    let (events, rules_dir) = (dir.join("e.jsonl"), dir.join("rules"));
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["gen", "--preset", "w500", "--events", "40000", "--out"])
        .arg(&events)
        .arg("--rules-out")
        .arg(&rules_dir)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    (events, common::rules(&[rules_dir]))
}

/// Regression: hits of no regular stage (`until`, absence: stage bits 0) were refused as
/// records, and W500's 3,146 alerts became 185 through the two stages.
#[test]
fn the_w500_workload_through_the_two_stages_gives_one_engines_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (events, rules) = w500(dir.path());
    let (one, staged) = both_ways(&rules, &[events], dir.path());
    assert!(one.len() >= 20, "W500 chains alert: {}", one.len());
    assert_eq!(staged.len(), one.len());
    assert!(
        staged == one,
        "the two stages' alerts differ from one engine's"
    );
}

/// Rules and events nobody here wrote: SigmaHQ's AWS rules (`rules/cloud/aws`, every one loads)
/// on the public CloudTrail captures (invictus Stratus, OTRF EC2 proxy exfiltration). Through
/// the two stages they give one engine's alerts, byte for byte.
#[test]
fn sigmahq_aws_rules_on_public_cloudtrail_through_the_two_stages_give_one_engines_alerts() {
    let rules = common::rules(&[common::shared_path("sigmahq-full/rules/cloud/aws")]);
    assert_eq!(rules.detections.len(), 57, "every SigmaHQ AWS rule loads");
    let inputs = vec![
        common::shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl"),
        common::shared(
            "cloudtrail/otrf-ec2-proxy-s3-exfil/ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (one, staged) = both_ways(&rules, &inputs, dir.path());
    assert!(one.len() >= 100, "SigmaHQ's AWS rules alert: {}", one.len());
    assert_eq!(staged.len(), one.len());
    assert!(
        staged == one,
        "the two stages' alerts differ from one engine's"
    );
}

#[test]
fn a_stage_one_that_crashed_and_wrote_its_records_again_changes_no_alert() {
    let rules = common::pack();
    let dir = tempfile::tempdir().unwrap();
    let expected = whole(&rules, &demo(), dir.path());
    let hits = route(&rules, &demo(), dir.path());
    let full: Vec<Vec<String>> = (0..PARTITIONS as i32)
        .map(|p| {
            fs::read_to_string(FileHits::path(&hits, p))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect();
    // The first run wrote a prefix of each partition before it died (cut anywhere, each
    // partition apart); the restarted run wrote everything again behind it.
    let mut total_copies = 0;
    for cut in [0.0, 0.1, 0.35, 0.5, 0.8, 0.97] {
        let case = dir.path().join(format!("cut-{cut}"));
        fs::create_dir_all(&case).unwrap();
        let mut dropped = 0usize;
        let parts: Vec<PathBuf> = full
            .iter()
            .enumerate()
            .map(|(p, lines)| {
                let n = (lines.len() as f64 * cut) as usize;
                dropped += n;
                let path = case.join(format!("p{p}.jsonl"));
                let text: Vec<&str> = lines[..n]
                    .iter()
                    .chain(lines.iter())
                    .map(String::as_str)
                    .collect();
                fs::write(&path, text.join("\n") + "\n").unwrap();
                path
            })
            .collect();
        let (got, copies) = correlate(&rules, &parts, &case);
        eprintln!("cut at {cut}: {copies} copies dropped of {dropped} lines written twice");
        assert_eq!(got, expected, "cut at {cut}");
        total_copies += copies;
        assert!(
            copies as usize <= dropped,
            "cut at {cut}: {copies} copies dropped of {dropped} written twice"
        );
    }
    assert!(
        total_copies > 0,
        "copies behind a stamp were dropped, not correlated"
    );
}

#[test]
fn records_of_another_rule_set_are_dead_lettered_with_the_reason() {
    let rules = common::pack();
    let dir = tempfile::tempdir().unwrap();
    let hits = route(&rules, &demo(), dir.path());
    let other = common::rules(&[common::root().join("rules/cloudtrail")]);
    let records = FileHits::path(&hits, 1);
    let mut opts = common::options(std::slice::from_ref(&records), dir.path(), 1, "5m");
    opts.cluster = ClusterReplay::Records(Default::default());
    let summary = replay(other, &opts).unwrap();
    assert_eq!(summary.alerts, 0);
    let hits_refused = summary.sequencer.by_reason.get("cluster_record").copied();
    assert!(hits_refused.unwrap_or(0) > 0, "{:?}", summary.sequencer);
    let letters = fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert!(
        letters.contains("every instance must load the same rules"),
        "{}",
        &letters[..letters.len().min(400)]
    );
}

#[test]
fn a_hit_from_no_input_partition_is_dead_lettered_not_dropped_as_a_copy() {
    let rules = common::pack();
    let dir = tempfile::tempdir().unwrap();
    let hits = route(&rules, &demo(), dir.path());
    let text = fs::read_to_string(FileHits::path(&hits, 1)).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("\"kind\":\"hit\""))
        .expect("a hit record");
    let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
    record["origin"]["partition"] = (-1).into();
    let records = dir.path().join("stray.jsonl");
    fs::write(&records, format!("{record}\n")).unwrap();
    let mut opts = common::options(std::slice::from_ref(&records), dir.path(), 1, "5m");
    opts.cluster = ClusterReplay::Records(Default::default());
    let summary = replay(rules, &opts).unwrap();
    assert_eq!(summary.sequencer.copies, 0);
    let letters = fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert!(letters.contains("not an input partition"), "{letters}");
}

/// Stage 2 on one records file, restoring from `restore` and suspending to `suspend_to` when
/// given: its alerts as JSON.
fn stage2(
    rules: &Arc<RuleSet>,
    records: &Path,
    out: &Path,
    restore: Option<PathBuf>,
    suspend_to: Option<PathBuf>,
) -> Vec<serde_json::Value> {
    fs::create_dir_all(out).unwrap();
    let mut opts = common::options(&[records.to_path_buf()], out, 2, LATENESS);
    opts.cluster = ClusterReplay::Records(credtrail::pipeline::Suspension {
        restore,
        suspend_to,
    });
    // A snapshot carries correlation state, not the output's open incidents.
    opts.alert.incidents = None;
    let summary = replay(rules.clone(), &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.sequencer.dead_letters, 0, "{:?}", summary.sequencer);
    common::alerts(&fs::read_to_string(out.join("alerts.jsonl")).unwrap())
}

/// A stage 2 stopped anywhere in its records, its states written out (`--suspend-to`), and
/// started again on the records that follow from them (`--restore`) gives the alerts of the
/// run that never stopped, byte for byte: nothing decided twice, nothing lost, on W500's
/// chains, counts and windows.
#[test]
fn a_stage_two_suspended_anywhere_and_restored_gives_the_alerts_of_one_that_went_on() {
    let dir = tempfile::tempdir().unwrap();
    let (events, rules) = w500(dir.path());
    // A short lateness: stage 2's clock (its stamps) moves through the records, so a cut
    // falls among live chains as well as waiting hits.
    let hits = route_with(&rules, &[events], dir.path(), "2s");
    let by_key = |v: &serde_json::Value| {
        (
            v["finding_info"]["uid"].to_string(),
            v["activity_id"].to_string(),
            v["time"].to_string(),
        )
    };
    let mut restored_states = 0;
    let mut alerts = 0;
    for p in 0..PARTITIONS as i32 {
        let records = FileHits::path(&hits, p);
        let lines: Vec<String> = fs::read_to_string(&records)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let case = dir.path().join(format!("p{p}"));
        let mut expected = stage2(&rules, &records, &case.join("whole"), None, None);
        expected.sort_by_key(by_key);
        alerts += expected.len();
        for cut in [0.1, 0.5, 0.9] {
            let k = (lines.len() as f64 * cut) as usize;
            let at = case.join(format!("cut-{cut}"));
            fs::create_dir_all(&at).unwrap();
            let (head, tail, snap) = (at.join("head.jsonl"), at.join("tail.jsonl"), at.join("s"));
            fs::write(&head, lines[..k].join("\n") + "\n").unwrap();
            fs::write(&tail, lines[k..].join("\n") + "\n").unwrap();
            let mut got = stage2(&rules, &head, &at.join("1"), None, Some(snap.clone()));
            let snapshot =
                credtrail::correlate::engine::Snapshot::from_bytes(&fs::read(&snap).unwrap())
                    .expect("the snapshot reads back");
            restored_states += snapshot.states.len();
            got.extend(stage2(&rules, &tail, &at.join("2"), Some(snap), None));
            got.sort_by_key(by_key);
            assert_eq!(got.len(), expected.len(), "partition {p}, cut at {cut}");
            assert!(
                got == expected,
                "partition {p}, cut at {cut}: alerts differ"
            );
        }
    }
    assert!(alerts >= 20, "W500 chains alert: {alerts}");
    assert!(restored_states > 0, "the cuts fell inside chains");
}

/// A snapshot of other rules, or a file that is not one, stops the run with the file named.
#[test]
fn a_snapshot_that_does_not_fit_stops_the_replay_naming_it() {
    let rules = common::pack();
    let dir = tempfile::tempdir().unwrap();
    let hits = route(&rules, &demo(), dir.path());
    let records = FileHits::path(&hits, 0);
    let bad = dir.path().join("bad.snapshot");
    fs::write(&bad, b"not a snapshot").unwrap();
    let mut opts = common::options(&[records], dir.path(), 1, LATENESS);
    opts.cluster = ClusterReplay::Records(credtrail::pipeline::Suspension {
        restore: Some(bad.clone()),
        suspend_to: None,
    });
    opts.alert.incidents = None;
    let err = replay(rules.clone(), &opts)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("bad.snapshot"), "{err}");
    // A file larger than the run's state budget is not read at all.
    opts.shard_limits.max_state_bytes = 4;
    let err = replay(rules.clone(), &opts)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("bad.snapshot") && err.contains("state budget"),
        "{err}"
    );
    opts.shard_limits = Default::default();
    // With incidents on, a suspension would lose the open ones: refused, saying so.
    opts.alert.incidents = Some(Default::default());
    let err = replay(rules, &opts).expect_err("refused").to_string();
    assert!(err.contains("incidents"), "{err}");
}
