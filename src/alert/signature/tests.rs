//! Signing and verifying alerts: what passes, and every way a forged or altered one fails.

use std::path::Path;

use super::*;

const OLD: &str = "2026-06 whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const NEW: &str = "2026-12 QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";

fn keys(text: &str) -> SigningKeys {
    SigningKeys::parse(text, Path::new("keys")).unwrap()
}

const ALERT: &[u8] = br#"{"finding_info":{"uid":"0b5e-1"},"severity":"High"}"#;

fn verify(k: &SigningKeys, s: &Signature, key: &[u8], value: &[u8]) -> Result<String, VerifyError> {
    let headers = s.headers();
    k.verify(
        |name| {
            headers
                .iter()
                .find(|(h, _)| *h == name)
                .map(|(_, v)| v.as_str())
        },
        key,
        value,
    )
    .map(str::to_string)
}

#[test]
fn a_signed_alert_verifies_and_any_changed_byte_does_not() {
    let k = keys(OLD);
    let s = k.sign("0b5e-1", 1_767_225_600, b"arn:alice", ALERT);
    assert!(s.signature.starts_with("v1,"));
    assert_eq!(s.key_id, "2026-06");
    assert_eq!(verify(&k, &s, b"arn:alice", ALERT), Ok("2026-06".into()));
    for i in 0..ALERT.len() {
        let mut changed = ALERT.to_vec();
        changed[i] ^= 1;
        assert_eq!(
            verify(&k, &s, b"arn:alice", &changed),
            Err(VerifyError::Mismatch("2026-06".into())),
            "byte {i}"
        );
    }
    assert!(
        verify(&k, &s, b"arn:alicf", ALERT).is_err(),
        "the key is signed"
    );
    let mut later = s.clone();
    later.timestamp += 1;
    assert!(
        verify(&k, &later, b"arn:alice", ALERT).is_err(),
        "the time is signed"
    );
    let mut other = s.clone();
    other.id = "0b5e-2".into();
    assert!(
        verify(&k, &other, b"arn:alice", ALERT).is_err(),
        "the id is signed"
    );
}

#[test]
fn an_unknown_key_id_is_refused_not_tried() {
    let signer = keys(NEW);
    let verifier = keys(OLD);
    let s = signer.sign("a", 1, b"k", ALERT);
    assert_eq!(
        verify(&verifier, &s, b"k", ALERT),
        Err(VerifyError::UnknownKey("2026-12".into()))
    );
    // Relabelling the signature with a known id does not help.
    let mut relabelled = s.clone();
    relabelled.key_id = "2026-06".into();
    assert_eq!(
        verify(&verifier, &relabelled, b"k", ALERT),
        Err(VerifyError::Mismatch("2026-06".into()))
    );
}

/// Rotation: the new key signs once it is first in the file; alerts the old key signed still
/// verify while the old key stays listed, and stop verifying when it is removed.
#[test]
fn rotation_with_two_keys() {
    let before = keys(OLD);
    let during = keys(&format!("{NEW}\n{OLD}\n"));
    let after = keys(NEW);
    let old_alert = before.sign("x", 10, b"k", ALERT);
    let new_alert = during.sign("y", 20, b"k", ALERT);
    assert_eq!(new_alert.key_id, "2026-12");
    assert_eq!(
        verify(&during, &old_alert, b"k", ALERT),
        Ok("2026-06".into())
    );
    assert_eq!(
        verify(&during, &new_alert, b"k", ALERT),
        Ok("2026-12".into())
    );
    assert_eq!(
        verify(&after, &new_alert, b"k", ALERT),
        Ok("2026-12".into())
    );
    assert_eq!(
        verify(&after, &old_alert, b"k", ALERT),
        Err(VerifyError::UnknownKey("2026-06".into()))
    );
    assert_eq!(
        verify(&before, &new_alert, b"k", ALERT),
        Err(VerifyError::UnknownKey("2026-12".into()))
    );
}

#[test]
fn malformed_headers_are_named() {
    let k = keys(OLD);
    let s = k.sign("a", 1, b"k", ALERT);
    let mut h: Vec<(&str, String)> = s.headers().to_vec();
    let check = |h: &Vec<(&str, String)>| {
        k.verify(
            |name| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()),
            b"k",
            ALERT,
        )
        .map(str::to_string)
    };
    h[1].1 = "+1".into();
    assert!(matches!(
        check(&h),
        Err(VerifyError::Malformed {
            header: TIMESTAMP_HEADER,
            ..
        })
    ));
    h[1].1 = "1".into();
    h[2].1 = "v2,abc".into();
    assert!(matches!(
        check(&h),
        Err(VerifyError::Malformed {
            header: SIGNATURE_HEADER,
            ..
        })
    ));
    // Several entries: one valid suffices.
    h[2].1 = format!("v1,AAAA {}", s.signature);
    assert_eq!(check(&h), Ok("2026-06".into()));
    h.remove(3);
    assert_eq!(check(&h), Err(VerifyError::Missing(KEY_ID_HEADER)));
}

#[test]
fn key_files_fail_with_the_line() {
    let bad = |text: &str| match SigningKeys::parse(text, Path::new("k")) {
        Err(KeyFileError::Line { line, reason, .. }) => (line, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(bad("# c\n\nk1 c2hvcnQ=\n").0, 3);
    assert!(bad("k1 c2hvcnQ=").1.contains("5 bytes"));
    assert!(bad("k1 !!!").1.contains("base64"));
    assert!(
        bad("k/1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .1
            .contains("key id")
    );
    assert!(bad(&format!("{OLD}\n{OLD}")).1.contains("twice"));
    assert!(bad("k1").1.contains("expected"));
    assert!(matches!(
        SigningKeys::parse("# nothing\n", Path::new("k")),
        Err(KeyFileError::Empty { .. })
    ));
    let k = keys(&format!("{NEW}  # the current key\n{OLD}"));
    assert_eq!(k.ids().collect::<Vec<_>>(), ["2026-12", "2026-06"]);
    assert!(!format!("{k:?}").contains("QUJD"), "Debug shows no secret");
}

/// A kcat `-J` dump and a signed file are the same envelope; one changed byte in a payload and
/// an unknown key fail with their line numbers.
#[test]
fn signed_lines_verify_and_failures_name_the_line() {
    let k = keys(OLD);
    let s = k.sign("u1", 5, b"grp", ALERT);
    let ours = serde_json::to_string(&Envelope::signed(
        "grp",
        std::str::from_utf8(ALERT).unwrap(),
        &s,
    ))
    .unwrap();
    let headers: Vec<String> = s
        .headers()
        .iter()
        .flat_map(|(k, v)| [format!("{k:?}"), format!("{v:?}")])
        .collect();
    let kcat = format!(
        r#"{{"topic":"credtrail-alerts","partition":3,"offset":7,"tstype":"create","ts":1,"broker":1,"headers":[{}],"key":"grp","payload":{}}}"#,
        headers.join(","),
        serde_json::to_string(std::str::from_utf8(ALERT).unwrap()).unwrap()
    );
    let altered = ours.replace("High", "Low!");
    let foreign = serde_json::to_string(&Envelope::signed(
        "grp",
        "{}",
        &keys(NEW).sign("u2", 5, b"grp", b"{}"),
    ))
    .unwrap();
    let text = format!("{ours}\n\n{kcat}\n{altered}\n{foreign}\nnot json\n");
    let v = verify_lines(&k, text.as_bytes()).unwrap();
    assert_eq!(v.verified.get("2026-06"), Some(&2));
    assert_eq!(v.failed, 3);
    assert!(!v.ok());
    let lines: Vec<u64> = v.failures.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [4, 5, 6]);
    assert!(v.failures[0].1.contains("altered"), "{:?}", v.failures);
    assert!(v.failures[1].1.contains("2026-12"), "{:?}", v.failures);
    let good = verify_lines(&k, format!("{ours}\n{kcat}\n").as_bytes()).unwrap();
    assert!(good.ok());
}
