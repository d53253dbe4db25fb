//! Chains whose stages are ATT&CK tag selectors over the whole SigmaHQ corpus (the public data
//! root's `sigmahq-full`), on public captures nobody here wrote: they alert on the attackers
//! (`bert-jan` in the invictus CloudTrail capture, `pgustavo` in the stitched OTRF Windows
//! recordings) and never on the benign identities (`benjamin`, `pedro`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use credtrail::matcher::{self, CompileOptions, RuleSet};
use credtrail::sigma::LoadOptions;

use common::{replay, shared, shared_path, stitch_pgustavo, titles_and_groups};

fn with_corpus(rules: &[PathBuf], corpus: &[PathBuf]) -> (Arc<RuleSet>, usize, usize) {
    let loaded = matcher::load_with_corpus(
        rules,
        corpus,
        &LoadOptions::default(),
        &CompileOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (
        Arc::new(loaded.rules),
        loaded.corpus_loaded,
        loaded.left_out.len(),
    )
}

fn groups_of(text: &str, title_prefix: &str) -> Vec<String> {
    titles_and_groups(text)
        .into_iter()
        .filter(|(t, _)| t.starts_with(title_prefix))
        .map(|(_, g)| g)
        .collect()
}

#[test]
fn shipped_tag_chains_over_the_whole_corpus_alert_on_bert_jan_and_pgustavo_only() {
    let (rules, loaded, left_out) = with_corpus(
        &[PathBuf::from("rules"), PathBuf::from("rules-sigmahq")],
        &[shared_path("sigmahq-full/rules")],
    );
    assert!(loaded >= 3000, "{loaded} corpus rules loaded");
    eprintln!("corpus: {loaded} loaded, {left_out} left out");

    let invictus = shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let (text, summary, _dir) = replay(&rules, &[invictus], 2, "5m");
    assert_eq!(summary.sequencer.dead_letters, 0);
    let groups = groups_of(&text, "AWS chain (SigmaHQ stages)");
    assert!(
        groups.iter().any(|g| g.ends_with("user/bert-jan")),
        "{groups:?}"
    );
    let all = titles_and_groups(&text);
    assert!(!all.iter().any(|(_, g)| g.contains("benjamin")), "{all:?}");

    let pedro = shared(
        "cloudtrail/otrf-ec2-proxy-s3-exfil/ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl",
    );
    let (text, _, _dir) = replay(&rules, &[pedro], 2, "15m");
    let all = titles_and_groups(&text);
    assert!(!all.is_empty(), "the stolen instance key still alerts");
    assert!(!all.iter().any(|(_, g)| g.contains("pedro")), "{all:?}");

    let dir = tempfile::tempdir().unwrap();
    let stitched = stitch_pgustavo(dir.path());
    let (text, summary, _out) = replay(&rules, &[stitched], 2, "5m");
    assert_eq!(summary.sequencer.dead_letters, 0);
    assert_eq!(
        groups_of(&text, "Windows chain (SigmaHQ stages)"),
        vec!["theshire\\pgustavo"]
    );
    let all = titles_and_groups(&text);
    assert!(!all.iter().any(|(_, g)| g.contains("sbeavers")), "{all:?}");
}

/// The shipped Windows tag chain with anchors that never match: SigmaHQ's rules alone fill
/// every stage of pgustavo's chain (LSASS access by a non-system account, local account
/// discovery, schtasks creation), so the stages really ride on the corpus.
#[test]
fn sigmahq_rules_alone_fill_the_windows_stages() {
    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("anchors.yml");
    let never = |name: &str| {
        format!(
            "title: {name}\nname: {name}\nlogsource:\n  product: windows\ndetection:\n  \
             sel:\n    EventID: -1\n  condition: sel\n"
        )
    };
    let text = [
        "win_credential_access",
        "win_discovery",
        "win_persistence_scheduled_task",
    ]
    .map(never)
    .join("---\n");
    std::fs::write(&anchors, text).unwrap();
    let (rules, ..) = with_corpus(
        &[
            anchors,
            PathBuf::from("rules-sigmahq/win_chains_sigmahq.yml"),
        ],
        &[shared_path("sigmahq-full/rules/windows")],
    );
    let stitched = stitch_pgustavo(dir.path());
    let (text, ..) = replay(&rules, &[stitched], 2, "5m");
    assert_eq!(
        groups_of(&text, "Windows chain (SigmaHQ stages)"),
        vec!["theshire\\pgustavo"]
    );
}
