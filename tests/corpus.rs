//! `--corpus`: a public rule corpus loads best-effort next to one's own rules. A corpus rule
//! credtrail cannot load is left out and reported with its reason; one's own rules still load
//! strictly; corpus rules feed the stages that select them and never alert on their own.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::LoadOptions;

const OWN: &str = "title: anchor\nname: anchor\nlogsource: {product: aws}\n\
detection: {s: {eventName: Never}, condition: s}\n---\n\
title: anchor2\nname: anchor2\nlogsource: {product: aws}\n\
detection: {s: {eventName: Never}, condition: s}\n---\n\
title: own chain\nname: own_chain\ncorrelation:\n  type: temporal_ordered\n  rules: [anchor, anchor2]\n  \
group-by: [credtrail.identity]\n  timespan: 1h\ncredtrail:\n  stages:\n    \
- select: {tags: [attack.credential-access]}\n    - select: {tags: [attack.discovery]}\n";

const GOOD: &str = "title: corpus list users\nid: c-list\ntags: [attack.discovery]\n\
logsource: {product: aws, service: cloudtrail}\ndetection: {s: {eventName: ListUsers}, condition: s}\n";

const SECRET: &str = "title: corpus get secret\nid: c-secret\ntags: [attack.credential-access]\n\
logsource: {product: aws, service: cloudtrail}\ndetection: {s: {eventName: GetSecretValue}, condition: s}\n";

/// Matches the chain's second event but no stage selects it.
const LONE: &str = "title: corpus impact\nid: c-impact\ntags: [attack.impact]\n\
logsource: {product: aws, service: cloudtrail}\ndetection: {s: {eventName: ListUsers}, condition: s}\n";

/// A condition with a Sigma v1 aggregation, which credtrail refuses.
const BAD: &str = "title: corpus aggregation\nid: c-bad\nlogsource: {product: aws}\n\
detection: {s: {eventName: ListUsers}, condition: s | count() > 5}\n";

fn layout(dir: &Path) -> (PathBuf, PathBuf) {
    let own = dir.join("own");
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(own.join("own.yml"), OWN).unwrap();
    std::fs::write(corpus.join("good.yml"), GOOD).unwrap();
    std::fs::write(corpus.join("lone.yml"), LONE).unwrap();
    std::fs::write(corpus.join("secret.yml"), SECRET).unwrap();
    std::fs::write(corpus.join("bad.yml"), BAD).unwrap();
    (own, corpus)
}

#[test]
fn a_corpus_rule_that_cannot_load_is_left_out_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (own, corpus) = layout(dir.path());
    let loaded = matcher::load_with_corpus(
        &[own],
        &[corpus.clone()],
        &LoadOptions::default(),
        &CompileOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.corpus_loaded, 3);
    assert_eq!(loaded.left_out.len(), 1);
    let e = &loaded.left_out[0];
    assert_eq!(e.file, corpus.join("bad.yml"));
    assert!(e.to_string().contains("bad.yml"), "{e}");
    // Corpus rules are never alerts on their own.
    assert!(loaded.rules.detections.iter().all(|d| {
        let file = &loaded.rules.meta[d.rule as usize].file;
        !file.starts_with(&corpus) || !d.standalone
    }));
}

#[test]
fn own_rules_still_load_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let (own, corpus) = layout(dir.path());
    std::fs::write(own.join("broken.yml"), BAD).unwrap();
    let errors = matcher::load_with_corpus(
        &[own],
        &[corpus],
        &LoadOptions::default(),
        &CompileOptions::default(),
    )
    .err()
    .expect("an error in one's own rules fails the load");
    assert_eq!(errors.0.len(), 1);
    assert!(errors.0[0].to_string().contains("broken.yml"), "{errors}");
}

#[test]
fn replay_with_a_corpus_reports_what_it_left_out_and_alerts_only_through_chains() {
    let dir = tempfile::tempdir().unwrap();
    let (own, corpus) = layout(dir.path());
    let events = dir.path().join("ct.jsonl");
    let user = r#""userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/eve"}"#;
    std::fs::write(
        &events,
        format!(
            "{{\"eventTime\":\"2024-01-01T00:00:00Z\",\"eventSource\":\"secretsmanager.amazonaws.com\",\"eventName\":\"GetSecretValue\",\"eventID\":\"1\",{user}}}\n\
             {{\"eventTime\":\"2024-01-01T00:01:00Z\",\"eventSource\":\"iam.amazonaws.com\",\"eventName\":\"ListUsers\",\"eventID\":\"2\",{user}}}\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("alerts.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["replay", "--rules"])
        .arg(&own)
        .arg("--corpus")
        .arg(&corpus)
        .arg("--out")
        .arg(&out)
        .arg("--dead-letter")
        .arg(dir.path().join("dead.jsonl"))
        .arg(&events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("credtrail: corpus rule left out: ") && stderr.contains("bad.yml"),
        "{stderr}"
    );
    assert!(
        stderr.contains("credtrail: corpus: 3 rule(s) loaded, 1 left out"),
        "{stderr}"
    );
    let titles = common::titles_and_groups(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(
        titles,
        vec![(
            "own chain".to_string(),
            "arn:aws:iam::1:user/eve".to_string()
        )],
        "the corpus rule no stage selects does not alert"
    );
}
