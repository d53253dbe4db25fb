//! `create-topics.sh`, the topics Job, run against a stand-in for the Kafka tools with the
//! settings of `topics.env` and `credtrail.env` as the example overlay merges them.

use std::collections::BTreeMap;
use std::process::Command;

use super::{kustomize, merged_env, yaml};

/// A stand-in for the Kafka tools: `kafka-topics.sh` keeps topics as files under $FAKE_STATE
/// (`partitions config...`) and logs each call.
const FAKE_KAFKA_TOPICS: &str = r#"#!/usr/bin/env bash
set -eu
echo "$*" >>"$FAKE_STATE/calls"
topic= partitions= configs= mode=
while [ $# -gt 0 ]; do
  case $1 in
    --create) mode=create ;;
    --describe) mode=describe ;;
    --topic) topic=$2; shift ;;
    --partitions) partitions=$2; shift ;;
    --config) configs="$configs,$2"; shift ;;
    --bootstrap-server|--command-config|--replication-factor) shift ;;
  esac
  shift
done
f="$FAKE_STATE/topic.$topic"
if [ "$mode" = create ] && [ ! -e "$f" ]; then echo "$partitions ${configs#,}" >"$f"; fi
if [ "$mode" = describe ]; then
  read -r p c <"$f"
  printf 'Topic: %s\tTopicId: x\tPartitionCount: %s\tReplicationFactor: 3\tConfigs: %s\n' "$topic" "$p" "$c"
fi
"#;

/// Runs create-topics.sh against the stand-in with topics.env and credtrail.env (and the
/// example overlay's merges); returns the exit code, stderr and the topics it left.
fn run_create_topics(
    existing: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (i32, String, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let tool = bin.join("kafka-topics.sh");
    std::fs::write(&tool, FAKE_KAFKA_TOPICS).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (topic, line) in existing {
        std::fs::write(state.join(format!("topic.{topic}")), format!("{line}\n")).unwrap();
    }
    let overlay = yaml("overlays/example/kustomization.yaml");
    let mut cmd = Command::new("bash");
    cmd.arg(kustomize("base/create-topics.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KAFKA_BIN", &bin)
        .env("FAKE_STATE", &state)
        .env("TMPDIR", dir.path());
    for (file, name) in [
        ("base/credtrail.env", "credtrail-env"),
        ("base/topics.env", "credtrail-topics"),
    ] {
        cmd.envs(merged_env(file, &overlay, name));
    }
    // The tests have no admin password file: the plain protocol, unless a case sets one.
    cmd.env("SECURITY_PROTOCOL", "PLAINTEXT");
    cmd.envs(extra.iter().copied());
    let out = cmd.output().unwrap();
    let mut topics = BTreeMap::new();
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(t) = name.strip_prefix("topic.") {
            let text = std::fs::read_to_string(&path).unwrap();
            topics.insert(t.to_string(), text.trim().to_string());
        }
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        topics,
    )
}

#[test]
fn the_topics_job_creates_every_topic_with_its_partitions_and_cleanup_policy() {
    let (code, err, topics) = run_create_topics(&[], &[]);
    assert_eq!(code, 0, "{err}");
    let policy = |t: &str| {
        let line = &topics[t];
        let (partitions, configs) = line.split_once(' ').unwrap();
        let cleanup = configs
            .split(',')
            .find_map(|c| c.strip_prefix("cleanup.policy="))
            .unwrap()
            .to_string();
        (partitions.to_string(), cleanup, configs.to_string())
    };
    // The example overlay's 24 input and hit partitions, the base's counts elsewhere.
    assert_eq!(policy("cloudtrail").0, "24");
    assert_eq!(policy("cloudtrail").1, "delete");
    for (t, partitions, cleanup) in [
        ("credtrail-alerts", "6", "delete"),
        ("credtrail-dead-letters", "3", "delete"),
        ("credtrail-checkpoints", "1", "compact"),
        ("credtrail-hits", "24", "delete"),
        ("credtrail-lineage", "6", "compact"),
        ("credtrail-changelog", "24", "compact"),
    ] {
        let (p, c, configs) = policy(t);
        assert_eq!((p.as_str(), c.as_str()), (partitions, cleanup), "{t}");
        assert!(configs.contains("min.insync.replicas=2"), "{t}: {configs}");
    }
    assert!(policy("credtrail-hits").2.contains("retention.ms=86400000"));
    assert_eq!(topics.len(), 7, "{topics:?}");
}

#[test]
fn the_topics_job_fails_on_a_checkpoint_topic_that_is_not_compacted() {
    let (code, err, topics) =
        run_create_topics(&[("credtrail-checkpoints", "1 cleanup.policy=delete")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("credtrail-checkpoints exists without cleanup.policy=compact"),
        "{err}"
    );
    assert_eq!(
        topics["credtrail-checkpoints"], "1 cleanup.policy=delete",
        "left as it is"
    );
    assert!(
        topics.contains_key("credtrail-changelog"),
        "the others are still created"
    );
}

#[test]
fn the_topics_job_reports_another_partition_count_and_refuses_bad_values() {
    let (code, err, _) = run_create_topics(&[("credtrail-alerts", "2 cleanup.policy=delete")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("credtrail-alerts has 2 partitions, not 6; left as it is"),
        "{err}"
    );
    let (code, err, topics) = run_create_topics(&[], &[("HITS_PARTITIONS", "0")]);
    assert_eq!(code, 2);
    assert!(err.contains("HITS_PARTITIONS=0"), "{err}");
    assert!(topics.is_empty(), "nothing created from bad values");
    let (code, err, _) = run_create_topics(&[], &[("SECURITY_PROTOCOL", "SASL_SSL")]);
    assert_eq!(code, 2);
    assert!(err.contains("needs the admin password"), "{err}");
}
