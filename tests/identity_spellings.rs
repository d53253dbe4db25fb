//! Issue 10, item 3b (identity): one chain per person, whatever the events call them.
//!
//! Each case replays a three-step chain whose steps name the actor differently (a session with
//! and without `sessionContext`, an access key with and without `arn`, `sudo` on Linux, domain
//! spellings on Windows, an Identity Center permission set shared by two people) through
//! `credtrail::pipeline::replay`, and asserts which groups alert. The steps are marked by a
//! `step` field that any layout may carry, so only the identity decides the grouping.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use credtrail::decode::SsoGrouping;
use credtrail::matcher::{self, CompileOptions, RuleSet};
use credtrail::sigma::{self, LoadOptions};

const RULES: &str = r#"title: step one
name: one
detection:
  sel: {step: one}
  condition: sel
---
title: step two
name: two
detection:
  sel: {step: two}
  condition: sel
---
title: step three
name: three
detection:
  sel: {step: three}
  condition: sel
---
title: three steps by one identity
id: 5a0e6b9c-0000-4000-8000-0000000003b0
level: high
correlation:
  type: temporal_ordered
  rules: [one, two, three]
  group-by: [credtrail.identity]
  timespan: 30m
"#;

fn rules(aws_sso: SsoGrouping) -> (Arc<RuleSet>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.yml"), RULES).unwrap();
    let catalog = sigma::load(&[dir.path().to_path_buf()], &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let opts = CompileOptions {
        aws_sso,
        ..CompileOptions::default()
    };
    let set = matcher::compile(&catalog, &opts).unwrap_or_else(|e| panic!("{e}"));
    (Arc::new(set), dir)
}

/// The groups that alerted, sorted, when `events` (JSON lines) are replayed.
fn alerting_groups(aws_sso: SsoGrouping, events: &[String]) -> Vec<String> {
    let (set, dir) = rules(aws_sso);
    let input: PathBuf = dir.path().join("input.jsonl");
    std::fs::write(&input, events.join("\n") + "\n").unwrap();
    let (text, _, _out) = common::replay(&set, &[input], 2, "1m");
    let mut groups: Vec<String> = common::titles_and_groups(&text)
        .into_iter()
        .map(|(_, group)| group)
        .collect();
    groups.sort();
    groups
}

fn cloudtrail(secs: u32, step: &str, user_identity: &str) -> String {
    format!(
        r#"{{"eventTime":"2024-03-01T10:00:{secs:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"ct-{secs}","step":"{step}","userIdentity":{user_identity}}}"#
    )
}

#[test]
fn a_session_with_and_without_session_context_and_its_bare_key_are_one_chain() {
    let with_context = r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/ops/bot","accessKeyId":"ASIAOPS1","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::1:role/team/ops"}}}"#;
    let without = r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/ops/bot","accessKeyId":"ASIAOPS1"}"#;
    let key_only = r#"{"type":"AssumedRole","accessKeyId":"ASIAOPS1"}"#;
    let events = [
        cloudtrail(0, "one", with_context),
        cloudtrail(10, "two", without),
        cloudtrail(20, "three", key_only),
    ];
    assert_eq!(
        alerting_groups(SsoGrouping::Role, &events),
        vec!["arn:aws:iam::1:role/ops"]
    );
}

#[test]
fn an_access_key_without_arn_joins_the_user_an_earlier_event_showed_using_it() {
    let named = r#"{"type":"IAMUser","arn":"arn:aws:iam::1:user/alice","accessKeyId":"AKIAALICE"}"#;
    // A data event or a failed call: the key, no ARN.
    let key_only = r#"{"type":"IAMUser","accessKeyId":"AKIAALICE"}"#;
    let events = [
        cloudtrail(0, "one", named),
        cloudtrail(10, "two", key_only),
        cloudtrail(20, "three", key_only),
    ];
    assert_eq!(
        alerting_groups(SsoGrouping::Role, &events),
        vec!["arn:aws:iam::1:user/alice"]
    );
    // A key no event tied to anyone stays its own identity: alice's first step and the
    // other key's two steps make no chain.
    let unknown = [
        cloudtrail(0, "one", named),
        cloudtrail(10, "two", r#"{"accessKeyId":"AKIAOTHER"}"#),
        cloudtrail(20, "three", r#"{"accessKeyId":"AKIAOTHER"}"#),
    ];
    assert!(alerting_groups(SsoGrouping::Role, &unknown).is_empty());
}

#[test]
fn sso_permission_set_sessions_group_by_role_or_by_person() {
    let issuer =
        "arn:aws:iam::1:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0a1b";
    let person = |name: &str, context: bool| {
        let arn = format!("arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0a1b/{name}");
        if context {
            format!(
                r#"{{"type":"AssumedRole","arn":"{arn}","accessKeyId":"ASIA{name}","sessionContext":{{"sessionIssuer":{{"type":"Role","arn":"{issuer}"}}}}}}"#
            )
        } else {
            format!(r#"{{"type":"AssumedRole","arn":"{arn}","accessKeyId":"ASIA{name}"}}"#)
        }
    };
    // Alice reads and lists; Bob, on the same permission set, does the third step.
    let shared = [
        cloudtrail(0, "one", &person("alice", true)),
        cloudtrail(10, "two", &person("alice", false)),
        cloudtrail(20, "three", &person("bob", true)),
    ];
    assert_eq!(
        alerting_groups(SsoGrouping::Role, &shared),
        vec!["arn:aws:iam::1:role/AWSReservedSSO_Admin_0a1b"],
        "by role, two people make one chain"
    );
    assert!(
        alerting_groups(SsoGrouping::Person, &shared).is_empty(),
        "by person, neither has the whole chain"
    );
    let alone = [
        cloudtrail(0, "one", &person("alice", true)),
        cloudtrail(10, "two", &person("alice", false)),
        cloudtrail(20, "three", &person("alice", true)),
    ];
    assert_eq!(
        alerting_groups(SsoGrouping::Person, &alone),
        vec!["sso:alice"]
    );
}

fn sysmon_linux(secs: u32, step: &str, user: &str, uid: u32) -> String {
    format!(
        r#"{{"@timestamp":"2024-03-01T10:00:{secs:02}Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"{secs}","step":"{step}","User":"{user}","auid":"1000","uid":"{uid}"}}"#
    )
}

#[test]
fn linux_steps_under_sudo_group_under_the_login_user() {
    // alice logs in (auid 1000), then runs the later steps through sudo, as root.
    let events = [
        sysmon_linux(0, "one", "alice", 1000),
        sysmon_linux(10, "two", "root", 0),
        sysmon_linux(20, "three", "root", 0),
    ];
    assert_eq!(alerting_groups(SsoGrouping::Role, &events), vec!["alice"]);
    // auditbeat (ECS) names the login user itself.
    let beat = |secs: u32, step: &str, user: &str| {
        format!(
            r#"{{"@timestamp":"2024-03-01T10:01:{secs:02}Z","event":{{"module":"auditd","id":"b-{secs}"}},"step":"{step}","user":{{"name":"{user}","audit":{{"id":"1000","name":"alice"}}}}}}"#
        )
    };
    let events = [
        beat(0, "one", "alice"),
        beat(10, "two", "root"),
        beat(20, "three", "root"),
    ];
    assert_eq!(alerting_groups(SsoGrouping::Role, &events), vec!["alice"]);
}

#[test]
fn windows_domain_spellings_are_one_account() {
    let events = [
        r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","UtcTime":"2024-03-01 10:00:00.000","Computer":"WKS1","EventRecordID":1,"step":"one","User":"CONTOSO\\alice"}"#.to_string(),
        r#"{"EventID":4688,"Channel":"Security","TimeCreated":"2024-03-01T10:00:10Z","Computer":"WKS1","EventRecordID":2,"step":"two","SubjectDomainName":"contoso.local","SubjectUserName":"Alice"}"#.to_string(),
        r#"{"EventID":4688,"Channel":"Security","TimeCreated":"2024-03-01T10:00:20Z","Computer":"WKS1","EventRecordID":3,"step":"three","User":"alice@CONTOSO.LOCAL"}"#.to_string(),
    ];
    assert_eq!(
        alerting_groups(SsoGrouping::Role, &events),
        vec!["contoso\\alice"]
    );
}
