//! `credtrail config check` and `credtrail config print` from the command line.

use std::process::Command;

fn credtrail(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_credtrail"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run credtrail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_accepts_the_example_and_compiles_its_rules() {
    let (code, out, err) = credtrail(
        &["config", "check", "--config", "deploy/credtrail.toml"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (2 input topic(s)"), "{out}");
}

#[test]
fn config_check_names_the_bad_key_and_exits_2() {
    let (code, _, err) = credtrail(
        &["config", "check", "--config", "deploy/credtrail.toml"],
        &[("CREDTRAIL_KAFKA_CONSUMER_ENABLE_AUTO_COMMIT", "true")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("kafka.consumer.\"enable.auto.commit\""),
        "{err}"
    );
    assert!(err.contains("cannot be overridden"), "{err}");
}

#[test]
fn config_print_shows_effective_values_with_secrets_masked() {
    let (code, out, err) = credtrail(
        &["config", "print", "--config", "deploy/credtrail.toml"],
        &[
            ("CREDTRAIL_KAFKA_BROKERS", "kafka-1:9093"),
            ("CREDTRAIL_KAFKA_CONSUMER_SASL_PASSWORD", "hunter2"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("brokers = \"kafka-1:9093\""), "{out}");
    assert!(out.contains("\"sasl.password\" = \"***\""), "{out}");
    assert!(!out.contains("hunter2"));
}
