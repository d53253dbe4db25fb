use std::path::Path;

use super::*;

const MINIMAL: &str = r#"
[kafka]
brokers = "b:9092"
[[input]]
topic = "ct"
profile = "cloudtrail"
lateness = "1m"
[rules]
paths = ["rules"]
"#;

fn load_text(text: &str, env: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    load_str(text, Path::new("/etc/credtrail/credtrail.toml"), env).map(|(c, _)| c)
}

fn invalid_key(r: Result<ServiceConfig, ConfigError>) -> (String, String) {
    match r {
        Err(ConfigError::Invalid { key, reason, .. }) => (key, reason),
        other => panic!("expected an invalid-value error, got {other:?}"),
    }
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/credtrail.toml");
    let (c, notes) = load(&path, Vec::new()).unwrap();
    assert_eq!(c.inputs.len(), 2);
    assert_eq!(c.inputs[0].profile, Some(ProfileKind::CloudTrail));
    assert_eq!(c.inputs[0].lateness, Span::from_secs(15 * 60));
    assert!(c.rules.paths[0].ends_with("deploy/../rules"));
    assert!(notes.unknown_env.is_empty());
}

#[test]
fn defaults_fill_what_is_not_written() {
    let c = load_text(MINIMAL, &[]).unwrap();
    assert_eq!(c.kafka.group, "credtrail");
    assert_eq!(c.kafka.alert_topic, "credtrail-alerts");
    assert_eq!(c.kafka.commit_interval, Duration::from_secs(1));
    assert_eq!(c.shutdown.deadline, Duration::from_secs(30));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.rules.paths, vec![PathBuf::from("/etc/credtrail/rules")]);
    assert_eq!(c.engine.workers, c.engine.shards);
}

#[test]
fn environment_overrides_the_file_and_reaches_librdkafka_maps() {
    let c = load_text(
        MINIMAL,
        &[
            ("CREDTRAIL_KAFKA_BROKERS", "other:9093"),
            ("CREDTRAIL_ENGINE_SHARDS", "3"),
            ("CREDTRAIL_KAFKA_CONSUMER_SASL_USERNAME", "svc"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "other:9093");
    assert_eq!(c.engine.shards, 3);
    assert_eq!(
        c.kafka.consumer.get("sasl.username"),
        Some(&PropertyValue::Plain("svc".into()))
    );
}

#[test]
fn secrets_come_from_files_and_are_masked_when_printed() {
    let dir = tempfile::tempdir().unwrap();
    let env_secret = dir.path().join("pw");
    std::fs::write(&env_secret, "hunter2\n").unwrap();
    let toml_secret = dir.path().join("producer-pw");
    std::fs::write(&toml_secret, "s3cret").unwrap();
    let text = format!(
        "{MINIMAL}\n[kafka.producer]\n\"sasl.password_file\" = \"{}\"\n",
        toml_secret.display()
    );
    // The secret table must come after [rules] in TOML terms, so rebuild the document.
    let text = text.replace("[rules]\npaths = [\"rules\"]\n", "");
    let text = format!("{text}\n[rules]\npaths = [\"rules\"]\n");
    let env_path = env_secret.display().to_string();
    let (c, _) = load_str(
        &text,
        Path::new("/x/c.toml"),
        vec![(
            "CREDTRAIL_KAFKA_CONSUMER_SASL_PASSWORD_FILE".to_string(),
            env_path,
        )],
    )
    .unwrap();
    assert_eq!(c.kafka.consumer["sasl.password"].expose(), "hunter2");
    assert_eq!(c.kafka.producer["sasl.password"].expose(), "s3cret");
    let printed = c.to_masked_toml();
    assert!(!printed.contains("hunter2") && !printed.contains("s3cret"));
    assert!(printed.contains("\"sasl.password\" = \"***\""), "{printed}");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn delivery_properties_cannot_be_overridden() {
    for (side, key) in [
        ("consumer", "enable.auto.commit"),
        ("consumer", "enable.auto.offset.store"),
        ("producer", "enable.idempotence"),
        ("producer", "acks"),
        ("consumer", "group.id"),
    ] {
        let text = MINIMAL.replace(
            "[rules]",
            &format!("[kafka.{side}]\n\"{key}\" = \"false\"\n[rules]"),
        );
        let (k, reason) = invalid_key(load_text(&text, &[]));
        assert_eq!(k, format!("kafka.{side}.\"{key}\""));
        assert!(reason.contains("cannot be overridden"), "{reason}");
    }
    let env_name = "CREDTRAIL_KAFKA_PRODUCER_ENABLE_IDEMPOTENCE";
    let (k, _) = invalid_key(load_text(MINIMAL, &[(env_name, "false")]));
    assert_eq!(k, "kafka.producer.\"enable.idempotence\"");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        (MINIMAL.replace("\"1m\"", "\"soon\""), "input[0].lateness"),
        (
            MINIMAL.replace("\"cloudtrail\"", "\"syslog\""),
            "input[0].profile",
        ),
        (
            MINIMAL.replace("topic = \"ct\"", "topic = \"credtrail-alerts\""),
            "input[0].topic",
        ),
        (
            MINIMAL.replace("paths = [\"rules\"]", "paths = []"),
            "rules.paths",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(invalid_key(load_text(&text, &[])).0, key);
    }
    let (k, _) = invalid_key(load_text(MINIMAL, &[("CREDTRAIL_SHUTDOWN_DEADLINE", "0s")]));
    assert_eq!(k, "shutdown.deadline");
    let (k, _) = invalid_key(load_text(
        MINIMAL,
        &[("CREDTRAIL_METRICS_LISTEN", "nowhere")],
    ));
    assert_eq!(k, "metrics.listen");
}

#[test]
fn a_producer_message_max_bytes_too_small_for_alerts_is_refused_at_start_up() {
    for (value, ok) in [
        ("20480", true),
        ("20479", false),
        ("1000", false),
        ("lots", false),
    ] {
        let text = format!("{MINIMAL}[kafka.producer]\n\"message.max.bytes\" = \"{value}\"\n");
        // [kafka.producer] after [rules]: a table of its own, found by its dotted name.
        let r = load_text(&text, &[]);
        if ok {
            assert!(r.is_ok(), "{value}: {r:?}");
        } else {
            let (key, reason) = invalid_key(r);
            assert_eq!(
                key, "kafka.producer.\"message.max.bytes\"",
                "{value}: {reason}"
            );
        }
    }
}

#[test]
fn the_memory_budget_is_read_checked_and_split() {
    let text = format!("{MINIMAL}[engine]\nshards = 2\nworkers = 2\nmemory_budget = \"8GiB\"\n");
    let c = load_text(&text, &[]).unwrap();
    assert_eq!(c.engine.memory.bytes, 8 << 30);
    assert_eq!(c.engine.split().shard.max_state_bytes, 2 << 30);
    let c = load_text(MINIMAL, &[("CREDTRAIL_ENGINE_MEMORY_BUDGET", "1GiB")]).unwrap();
    assert_eq!(c.engine.memory.bytes, 1 << 30);
    // Unset: detected from the cgroup or the machine, never below the minimum.
    let c = load_text(MINIMAL, &[]).unwrap();
    assert!(c.engine.memory.bytes >= crate::pipeline::budget::MIN_BUDGET);
    for bad in ["\"1MiB\"", "\"lots\""] {
        let text = format!("{MINIMAL}[engine]\nmemory_budget = {bad}\n");
        let (key, reason) = invalid_key(load_text(&text, &[]));
        assert_eq!(key, "engine.memory_budget", "{reason}");
    }
}

/// Issue 10, item 4: an unknown key names its line and the key that was probably meant.
#[test]
fn unknown_keys_fail_with_their_line_and_a_did_you_mean() {
    let text = MINIMAL.replace("[rules]", "[rules]\nwach = true");
    let e = load_text(&text, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config /etc/credtrail/credtrail.toml:9: unknown key `rules.wach`; did you mean `watch`?"
    );
    let text = format!("{MINIMAL}[engine]\nshard = 2\n");
    let e = load_text(&text, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config /etc/credtrail/credtrail.toml:11: unknown key `engine.shard`; did you mean `shards`?"
    );
    let text = format!("{MINIMAL}[engin]\nshards = 2\n");
    assert!(
        load_text(&text, &[])
            .unwrap_err()
            .to_string()
            .ends_with("unknown key `engin`; did you mean `engine`?")
    );
    let text = MINIMAL.replace("[[input]]", "[[input]]\nlatenes = \"2m\"");
    assert!(
        load_text(&text, &[])
            .unwrap_err()
            .to_string()
            .ends_with(":5: unknown key `input.latenes`; did you mean `lateness`?")
    );
    let text = format!("{MINIMAL}[engine]\ncolour = 2\n");
    assert!(
        load_text(&text, &[])
            .unwrap_err()
            .to_string()
            .ends_with("unknown key `engine.colour`"),
        "a stranger gets no suggestion"
    );
}

#[test]
fn unknown_environment_variables_are_reported_not_applied() {
    let env = vec![("CREDTRAIL_KAFKA_BROKER".to_string(), "x".to_string())];
    let (c, notes) = load_str(MINIMAL, Path::new("c.toml"), env).unwrap();
    assert_eq!(c.kafka.brokers, "b:9092");
    assert_eq!(
        notes.unknown_env,
        vec!["CREDTRAIL_KAFKA_BROKER".to_string()]
    );
}

#[test]
fn shutdown_steps_share_the_deadline() {
    let s = ShutdownConfig {
        deadline: Duration::from_secs(10),
    };
    let total: Duration = [
        ShutdownStep::Drain,
        ShutdownStep::Flush,
        ShutdownStep::Commit,
        ShutdownStep::Close,
    ]
    .into_iter()
    .map(|x| s.step(x))
    .sum();
    assert_eq!(total, Duration::from_secs(10));
}

#[test]
fn scoring_settings_are_checked_and_anchored_and_the_environment_reaches_them() {
    let d = load_text(MINIMAL, &[]).unwrap();
    assert_eq!(d.scoring, ScoringConfig::default());
    let text = format!(
        "{MINIMAL}\n[scoring]\ninventory = \"inv.yaml\"\ninventory_topic = \"inv\"\n\
         weights = {{reach = 40, touched = 20, stage = 20, tempo = 20}}\nmachine_speed = \"5s\"\n"
    );
    let c = load_text(&text, &[("CREDTRAIL_SCORING_ESCALATE_AT", "2")]).unwrap();
    assert_eq!(
        c.scoring.inventory,
        Some(PathBuf::from("/etc/credtrail/inv.yaml"))
    );
    assert_eq!(c.scoring.inventory_topic.as_deref(), Some("inv"));
    assert_eq!(c.scoring.weights.reach, 40);
    assert_eq!(c.scoring.machine_speed, Span::from_secs(5));
    assert_eq!(c.scoring.escalate_at, Some(2));
    let bad = [
        (text.replace("reach = 40", "reach = 41"), "scoring.weights"),
        (text.replace("\"5s\"", "\"0s\""), "scoring.machine_speed"),
        (
            text.replace("inventory_topic = \"inv\"", "inventory_topic = \"ct\""),
            "scoring.inventory_topic",
        ),
        (
            text.replace("machine_speed", "escalate_at = 0\nmachine_speed"),
            "scoring.escalate_at",
        ),
    ];
    for (text, key) in bad {
        let (k, reason) = invalid_key(load_text(&text, &[]));
        assert_eq!(k, key, "{reason}");
    }
}

#[test]
fn rule_pipelines_and_identity_files_are_anchored_to_the_config() {
    let text = MINIMAL.replace(
        "paths = [\"rules\"]",
        "paths = [\"rules\"]\npipelines = [\"p/ecs.yml\"]\nidentity = \"id.yaml\"",
    );
    let c = load_text(&text, &[]).unwrap();
    assert_eq!(
        c.rules.pipelines,
        vec![PathBuf::from("/etc/credtrail/p/ecs.yml")]
    );
    assert_eq!(
        c.rules.identity,
        Some(PathBuf::from("/etc/credtrail/id.yaml"))
    );
}

/// Issue 15: the endpoint's limits are settings, checked like the others.
#[test]
fn metrics_limits_and_the_probes_listener_are_validated() {
    let text = MINIMAL.to_string()
        + "\n[metrics]\nlisten = \"127.0.0.1:9464\"\nprobes_listen = \"127.0.0.1:9465\"\nheader_read_timeout = \"2s\"\nmax_connections = 10\n";
    let c = load_text(&text, &[]).unwrap();
    assert_eq!(c.metrics.probes_listen.map(|a| a.port()), Some(9465));
    assert_eq!(
        c.metrics.header_read_timeout,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(c.metrics.max_connections, 10);
    let d = load_text(MINIMAL, &[]).unwrap();
    assert_eq!(d.metrics.probes_listen, None);
    assert_eq!(
        d.metrics.header_read_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(d.metrics.max_connections, 64);
    for (var, value, key) in [
        (
            "CREDTRAIL_METRICS_MAX_CONNECTIONS",
            "0",
            "metrics.max_connections",
        ),
        (
            "CREDTRAIL_METRICS_HEADER_READ_TIMEOUT",
            "1ms",
            "metrics.header_read_timeout",
        ),
        (
            "CREDTRAIL_METRICS_PROBES_LISTEN",
            "127.0.0.1:9464",
            "metrics.probes_listen",
        ),
        (
            "CREDTRAIL_METRICS_PROBES_LISTEN",
            "nowhere",
            "metrics.probes_listen",
        ),
    ] {
        assert_eq!(
            invalid_key(load_text(MINIMAL, &[(var, value)])).0,
            key,
            "{var}={value}"
        );
    }
    let c = load_text(MINIMAL, &[("CREDTRAIL_METRICS_MAX_CONNECTIONS", "7")]).unwrap();
    assert_eq!(c.metrics.max_connections, 7);
}

/// Issue 15: the signing keys are read and checked with the config, never printed.
#[test]
fn signing_keys_are_loaded_checked_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "k1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
    let var = ("CREDTRAIL_SIGNING_KEYS_FILE", keys.to_str().unwrap());
    let c = load_text(MINIMAL, &[var]).unwrap();
    let loaded = c.signing.keys.as_ref().unwrap();
    assert_eq!(loaded.ids().collect::<Vec<_>>(), ["k1"]);
    let printed = serde_json::to_string(&c).unwrap();
    assert!(!printed.contains("MDEy"), "{printed}");
    assert!(printed.contains("keys_file"));
    assert_eq!(load_text(MINIMAL, &[]).unwrap().signing.keys, None);
    std::fs::write(&keys, "k1 c2hvcnQ=\n").unwrap();
    match load_text(MINIMAL, &[var]) {
        Err(ConfigError::SigningKeys(e)) => assert!(e.to_string().contains("line 1"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// Issue 11: the alert topic carries incidents when `[alerts] incidents = true`; off by default
/// (one alert per finding, what the topic's consumers saw before).
#[test]
fn alert_incidents_are_off_by_default_and_configurable_in_the_file_and_the_environment() {
    let d = load_text(MINIMAL, &[]).unwrap();
    assert_eq!(d.alerts, AlertsConfig::default());
    assert_eq!(d.alerts.options().incidents, None);
    let text = format!("{MINIMAL}\n[alerts]\nincidents = true\nincident_window = \"30m\"\n");
    let c = load_text(&text, &[]).unwrap();
    let o = c.alerts.options().incidents.unwrap();
    assert_eq!(o.window, Span::from_secs(30 * 60));
    assert_eq!(o.max_open, 100_000);
    let e = load_text(
        MINIMAL,
        &[
            ("CREDTRAIL_ALERTS_INCIDENTS", "true"),
            ("CREDTRAIL_ALERTS_MAX_OPEN_INCIDENTS", "10"),
        ],
    )
    .unwrap();
    assert_eq!(e.alerts.options().incidents.map(|o| o.max_open), Some(10));
    assert!(c.to_masked_toml().contains("incident_window = \"30m\""));
    let bad = [
        text.replace("\"30m\"", "\"-1m\""),
        text.replace("\"30m\"", "\"soon\""),
        format!("{text}max_open_incidents = 0\n"),
    ];
    for text in bad {
        let (k, reason) = invalid_key(load_text(&text, &[]));
        assert!(k.starts_with("alerts."), "{k}: {reason}");
    }
}

#[test]
fn a_cluster_needs_two_topics_of_its_own_and_the_environment_turns_it_on() {
    let c = load_text(MINIMAL, &[]).unwrap();
    assert!(!c.cluster.enabled, "off unless asked");
    assert_eq!(c.cluster.hits_topic, "credtrail-hits");
    let on = load_text(MINIMAL, &[("CREDTRAIL_CLUSTER_ENABLED", "true")]).unwrap();
    assert!(on.cluster.enabled);
    for (extra, key) in [
        (
            "[cluster]\nenabled = true\nhits_topic = \"ct\"\n",
            "cluster.hits_topic",
        ),
        (
            "[cluster]\nenabled = true\nlineage_topic = \"\"\n",
            "cluster.lineage_topic",
        ),
        (
            "[cluster]\nenabled = true\nhits_topic = \"x\"\nlineage_topic = \"x\"\n",
            "cluster.lineage_topic",
        ),
        (
            "[cluster]\nenabled = true\nchangelog_topic = \"credtrail-hits\"\n",
            "cluster.changelog_topic",
        ),
    ] {
        let (k, reason) = invalid_key(load_text(&format!("{MINIMAL}{extra}"), &[]));
        assert_eq!(k, key, "{reason}");
    }
    assert_eq!(
        on.cluster.changelog_topic.as_deref(),
        Some("credtrail-changelog"),
        "a changelog unless turned off"
    );
    let off = load_text(&format!("{MINIMAL}[cluster]\nchangelog = false\n"), &[]).unwrap();
    assert_eq!(off.cluster.changelog_topic, None);
    let err = load_text(&format!("{MINIMAL}[cluster]\nenable = true\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("enabled"), "{err}");
}
