//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use credtrail::correlate::ShardLimits;
use credtrail::input::ReadLimits;
use credtrail::matcher::{self, CompileOptions, RuleSet};
use credtrail::pipeline::{self, ReplayOptions, Summary};
use credtrail::score::Assessor;
use credtrail::sigma::{self, LoadOptions};
use credtrail::time::Span;

pub mod copies;
mod public_data;
mod stitch;
pub use public_data::shared_path;
#[allow(unused_imports)] // used by some test crates only
pub use stitch::stitch_pgustavo;

/// `count` CloudTrail events of one noise identity, a second apart, that match no rule of the
/// pack: bulk for inputs whose shape, not content, is under test.
pub fn noise_events(count: usize) -> Vec<u8> {
    use std::io::Write;
    let mut text = Vec::new();
    for i in 0..count {
        writeln!(
            text,
            r#"{{"eventVersion":"1.08","eventTime":"2026-11-02T09:{:02}:{:02}Z","eventSource":"credtrail.test","eventName":"Noise","eventID":"n{i}","userIdentity":{{"arn":"arn:aws:iam::1:user/noise"}},"pad":"{}"}}"#,
            (i / 60) % 60,
            i % 60,
            i * 7919 % 1_000_003
        )
        .unwrap();
    }
    text
}

/// The project root (tests run from there too).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A public dataset file: `rel` under the public data root's `datasets/` ([`shared_path`]).
#[track_caller]
pub fn shared(rel: &str) -> PathBuf {
    shared_path(&format!("datasets/{rel}"))
}

pub fn rules(paths: &[PathBuf]) -> Arc<RuleSet> {
    let catalog = sigma::load(paths, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(
        matcher::compile(&catalog, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}")),
    )
}

pub fn pack() -> Arc<RuleSet> {
    rules(&[PathBuf::from("rules")])
}

/// Options for a replay of `inputs` writing into `dir`.
pub fn options(inputs: &[PathBuf], dir: &Path, shards: usize, lateness: &str) -> ReplayOptions {
    ReplayOptions {
        inputs: inputs.to_vec(),
        shards,
        workers: shards,
        lateness: Span::parse(lateness).unwrap(),
        max_future: credtrail::pipeline::clock::DEFAULT_MAX_FUTURE,
        out: Some(dir.join("alerts.jsonl")),
        dead_letter: dir.join("dead.jsonl"),
        progress: false,
        read: ReadLimits::default(),
        shard_limits: ShardLimits::default(),
        mint: credtrail::decode::MintLifetimes::default(),
        lineage: credtrail::identity::LineageLimits::default(),
        assessor: Default::default(),
        signed_out: None,
        cluster: Default::default(),
        cutting: Default::default(),
        alert: Default::default(),
    }
}

/// Replays and returns the alert file's text and the summary.
pub fn replay(
    rules: &Arc<RuleSet>,
    inputs: &[PathBuf],
    shards: usize,
    lateness: &str,
) -> (String, Summary, tempfile::TempDir) {
    replay_scored(
        rules,
        inputs,
        shards,
        lateness,
        Arc::new(Assessor::default()),
    )
}

/// [`replay`] with an assessor (inventory, weights, escalation).
pub fn replay_scored(
    rules: &Arc<RuleSet>,
    inputs: &[PathBuf],
    shards: usize,
    lateness: &str,
    assessor: Arc<Assessor>,
) -> (String, Summary, tempfile::TempDir) {
    std::env::set_current_dir(root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(inputs, dir.path(), shards, lateness);
    opts.assessor = assessor;
    let summary = pipeline::replay(rules.clone(), &opts).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    (text, summary, dir)
}

/// [`replay`] writing one alert per finding, no incidents: what the Kafka service writes.
pub fn replay_per_finding(
    rules: &Arc<RuleSet>,
    inputs: &[PathBuf],
    shards: usize,
    lateness: &str,
) -> (String, Summary, tempfile::TempDir) {
    std::env::set_current_dir(root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(inputs, dir.path(), shards, lateness);
    opts.alert.incidents = None;
    let summary = pipeline::replay(rules.clone(), &opts).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    (text, summary, dir)
}

/// Parsed alert lines.
pub fn alerts(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (title, group) of each finding: every alert line but an incident's Close, which repeats
/// one of its findings.
pub fn titles_and_groups(text: &str) -> Vec<(String, String)> {
    alerts(text)
        .iter()
        .filter(|a| a["activity_name"] != "Close")
        .map(|a| {
            (
                a["finding_info"]["title"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                a["metadata"]["correlation_uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// Runs `rules test` on `path` (from the project root) and fails listing every failed case and
/// variant; returns the report for further checks.
pub fn rules_test_passes(path: &str) -> credtrail::tooling::ruletest::Report {
    use credtrail::tooling::ruletest::{self, Status, TestOptions};
    std::env::set_current_dir(root()).unwrap();
    let report = ruletest::run(&TestOptions {
        paths: vec![PathBuf::from(path)],
        ..TestOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let failures: Vec<String> = (report.results.iter())
        .filter(|r| r.status == Status::Fail)
        .map(|r| {
            format!(
                "{}: {} [{:?}]: {}",
                r.file.display(),
                r.case,
                r.variant,
                r.message
            )
        })
        .collect();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    report
}
