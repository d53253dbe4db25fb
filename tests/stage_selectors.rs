//! Stage selectors (`credtrail.stages[].select`): a stage takes every loaded detection rule
//! with a given ATT&CK tag (or named in `select.rules`), less its exclusions; selected rules feed
//! the stage like its own rule and do not alert on their own. Every error names its line.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use credtrail::matcher::{self, CompileOptions, RuleSet};
use credtrail::sigma::{self, LoadError, LoadOptions};

use common::{replay, titles_and_groups};

/// Two anchors that never match, and candidate rules with tags, statuses and levels.
const RULES: &str = "\
title: anchor_a\nname: anchor_a\nlogsource: {product: aws, service: cloudtrail}\n\
detection: {s: {eventName: Never}, condition: s}\n---\n\
title: anchor_b\nname: anchor_b\nlogsource: {product: aws, service: cloudtrail}\n\
detection: {s: {eventName: Never}, condition: s}\n---\n\
title: secret read\nid: r-secret\ntags: [attack.credential-access, attack.t1552.001]\n\
logsource: {product: aws, service: cloudtrail}\n\
detection: {s: {eventName: GetSecretValue}, condition: s}\n---\n\
title: list users\nid: r-list\nstatus: test\nlevel: low\ntags: [attack.discovery, attack.t1087.004]\n\
logsource: {product: aws, service: cloudtrail}\n\
detection: {s: {eventName: ListUsers}, condition: s}\n---\n\
title: windows discovery\nid: r-win\ntags: [attack.discovery]\nlogsource: {product: windows}\n\
detection: {s: {eventName: ListUsers}, condition: s}\n---\n";

fn chain(stage_b: &str) -> String {
    format!(
        "title: tag chain\nname: tag_chain\ncorrelation:\n  type: temporal_ordered\n  \
         rules: [anchor_a, anchor_b]\n  group-by: [credtrail.identity]\n  timespan: 1h\n\
         credtrail:\n  stages:\n    - name: credentials\n      select:\n        \
         tags: [attack.t1552*]\n    - name: discovery\n      select:\n{stage_b}"
    )
}

fn load(text: &str) -> Result<Arc<RuleSet>, Vec<LoadError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    sigma::parse_text(
        Path::new("sel.yml"),
        text,
        &LoadOptions::default(),
        &mut rules,
        &mut errors,
    );
    let catalog = sigma::resolve(rules, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    matcher::compile(&catalog, &CompileOptions::default())
        .map(Arc::new)
        .map_err(|e| e.0)
}

fn one_error(text: &str) -> String {
    let e = load(text).err().expect("a load error");
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].to_string()
}

/// The titles and groups of the alerts `rules` raise on a secret read then a user listing.
fn alerts_on_two_steps(rules: &Arc<RuleSet>) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let input: PathBuf = dir.path().join("ct.jsonl");
    let user = r#""userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/eve"}"#;
    std::fs::write(
        &input,
        format!(
            "{{\"eventTime\":\"2024-01-01T00:00:00Z\",\"eventSource\":\"secretsmanager.amazonaws.com\",\"eventName\":\"GetSecretValue\",\"eventID\":\"1\",{user}}}\n\
             {{\"eventTime\":\"2024-01-01T00:05:00Z\",\"eventSource\":\"iam.amazonaws.com\",\"eventName\":\"ListUsers\",\"eventID\":\"2\",{user}}}\n"
        ),
    )
    .unwrap();
    let (text, ..) = replay(rules, &[input], 1, "5m");
    titles_and_groups(&text)
}

#[test]
fn tagged_rules_fill_the_stages_and_do_not_alert_alone() {
    let rules = load(&format!(
        "{RULES}{}",
        chain("        tags: [attack.discovery]\n        product: aws\n")
    ))
    .unwrap();
    assert_eq!(
        alerts_on_two_steps(&rules),
        vec![(
            "tag chain".to_string(),
            "arn:aws:iam::1:user/eve".to_string()
        )]
    );
}

#[test]
fn exclusions_keep_rules_out_of_a_stage() {
    for exclude in [
        "          rules: [r-list]\n",
        "          tags: [attack.t1087*]\n",
        "          status: [test]\n",
        "          level: [low, informational]\n",
    ] {
        let stage = format!(
            "        tags: [attack.discovery]\n        product: aws\n        exclude:\n{exclude}"
        );
        let rules = load(&format!("{RULES}{}", chain(&stage))).unwrap();
        let found = alerts_on_two_steps(&rules);
        // Left out of the stage, the rule is referenced by nothing and alerts on its own.
        assert_eq!(
            found,
            vec![(
                "list users".to_string(),
                "arn:aws:iam::1:user/eve".to_string()
            )],
            "{exclude}"
        );
    }
}

#[test]
fn select_rules_names_more_rules_and_must_resolve() {
    let rules = load(&format!("{RULES}{}", chain("        rules: [r-list]\n"))).unwrap();
    assert_eq!(alerts_on_two_steps(&rules).len(), 1);
    let e = one_error(&format!("{RULES}{}", chain("        rules: [r-lost]\n")));
    assert!(
        e.contains("sel.yml:") && e.contains("rule `r-lost`, which is not loaded"),
        "{e}"
    );
}

#[test]
fn selector_errors_name_the_construct() {
    let cases = [
        (
            "        tag: [attack.discovery]\n",
            "unknown key `select.tag` (known: tags, product, rules, exclude)",
        ),
        (
            "        product: aws\n",
            "`select` needs `tags` or `rules`: it would add nothing to the stage",
        ),
        (
            "        tags: ['attack.*covery']\n",
            "tag pattern `attack.*covery`: a tag, or a tag prefix ending in one `*`",
        ),
        (
            "        tags: [attack.discovery]\n        exclude:\n          status: [experimentl]\n",
            "unknown status `experimentl` (known: stable, test, experimental, deprecated, unsupported)",
        ),
        (
            "        tags: [attack.discovery]\n        exclude:\n          owner: [x]\n",
            "unknown key `select.exclude.owner` (known: tags, rules, status, level)",
        ),
        (
            "        tags: [attack.discovery]\n        exclude: [x]\n",
            "`select.exclude` must be a mapping",
        ),
        (
            "        tags: []\n",
            "`tags` is a string or a list of strings",
        ),
    ];
    for (stage, want) in cases {
        let e = one_error(&format!("{RULES}{}", chain(stage)));
        assert!(e.contains(want), "{stage}: {e}");
        assert!(e.contains("sel.yml:"), "{e}");
    }
    let not_a_map = chain("")
        .strip_suffix("      select:\n")
        .map(|c| format!("{c}      select: all\n"))
        .unwrap();
    let e = one_error(&format!("{RULES}{not_a_map}"));
    assert!(e.contains("`select` must be a mapping"), "{e}");
}
