//! Signed alerts end to end: `replay --signed-out` signs the demo's alerts and `credtrail
//! alert verify` accepts them, refuses a one-byte change and an unknown key id, and follows a
//! key rotation. (The topic side is in `kafka_service.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn credtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const KEY_A: &str = "2026-06 whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "2026-12 whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Replays the demo, signed with `keys`; returns (alert file, signed file).
fn signed_replay(dir: &Path, keys: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("alerts.jsonl");
    let signed = dir.join("alerts.signed.jsonl");
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--quiet",
        "--shards",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--dead-letter",
        dir.join("dead.jsonl").to_str().unwrap(),
        "--signed-out",
        signed.to_str().unwrap(),
        "--sign-keys",
        keys.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (out, signed)
}

fn verify(file: &Path, keys: &Path) -> Output {
    credtrail(&[
        "alert",
        "verify",
        file.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
    ])
}

#[test]
fn a_signed_replay_verifies_and_a_changed_byte_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write(dir.path(), "keys", &format!("{KEY_A}\n"));
    let (out, signed) = signed_replay(dir.path(), &keys);
    // The signed file carries the alert file's lines, in order, byte for byte.
    let alerts = std::fs::read_to_string(&out).unwrap();
    let lines = std::fs::read_to_string(&signed).unwrap();
    let payloads: Vec<String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["payload"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(payloads, alerts.lines().collect::<Vec<_>>());
    let n = payloads.len();
    assert!(n >= 7, "the demo's alert lines: {n}");

    let o = verify(&signed, &keys);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let want = format!("{n} alert(s) verified ({n} by key 2026-06)");
    assert!(text(&o).contains(&want), "{}", text(&o));

    // One byte of one alert's score changed (a digit inside the escaped payload).
    let target = lines.lines().nth(3).unwrap();
    let at = target.find("\\\"score\\\":").expect("a score") + 10;
    let mut bytes = lines.clone().into_bytes();
    let offset = lines.find(target).unwrap() + at;
    bytes[offset] = if bytes[offset] == b'1' { b'2' } else { b'1' };
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, &bytes).unwrap();
    let o = verify(&tampered, &keys);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = text(&o);
    assert!(
        report.contains("tampered.jsonl:4: signature does not match"),
        "{report}"
    );
    assert!(
        report.contains(&format!("1 alert(s) FAILED, {} verified", n - 1)),
        "{report}"
    );
}

#[test]
fn an_unknown_key_id_is_refused_and_rotation_keeps_old_alerts_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let only_a = write(dir.path(), "a", &format!("{KEY_A}\n"));
    let only_b = write(dir.path(), "b", &format!("{KEY_B}\n"));
    let b_then_a = write(dir.path(), "ba", &format!("{KEY_B}\n{KEY_A}\n"));
    let (_, signed_a) = signed_replay(dir.path(), &only_a);
    let old = dir.path().join("old.jsonl");
    std::fs::rename(&signed_a, &old).unwrap();
    // Verifiers that do not hold key 2026-06 refuse it by id.
    let o = verify(&old, &only_b);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("signed with key `2026-06`, which is not among the verifying keys"),
        "{}",
        text(&o)
    );
    // Rotation: 2026-12 now signs, 2026-06 still verifies.
    let (_, signed_b) = signed_replay(dir.path(), &b_then_a);
    let o = credtrail(&[
        "alert",
        "verify",
        old.to_str().unwrap(),
        signed_b.to_str().unwrap(),
        "--keys",
        b_then_a.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let n = std::fs::read_to_string(&old).unwrap().lines().count();
    assert!(
        text(&o).contains(&format!("{n} by key 2026-06")),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains(&format!("{n} by key 2026-12")),
        "{}",
        text(&o)
    );
    // Once 2026-06 is retired, only the new alerts verify.
    assert_eq!(verify(&signed_b, &only_b).status.code(), Some(0));
    assert_eq!(verify(&old, &only_b).status.code(), Some(1));
}

#[test]
fn bad_key_files_and_missing_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let short = write(dir.path(), "short", "k1 c2hvcnQ=\n");
    let o = verify(&short, &short);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("line 1"), "{}", text(&o));
    let o = credtrail(&[
        "replay",
        "datasets/demo/events.jsonl",
        "--rules",
        "rules",
        "--signed-out",
        dir.path().join("s").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
