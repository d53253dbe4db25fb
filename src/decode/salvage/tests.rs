//! Salvage rewrites: what is kept, what is replaced, and that the result is JSON.

use super::*;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn rewrite(raw: &str, attempt: usize) -> serde_json::Value {
    let out = salvage(raw.as_bytes(), &limits(), "too_large", attempt).expect("salvaged");
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

#[test]
fn small_members_are_kept_and_the_big_one_is_marked() {
    let big = "x".repeat(100_000);
    let raw = format!(
        r#"{{"a": 1, "tool": {{"name": "get_secret", "arguments": {{"blob": "{big}"}}}}, "z": [true, null, "s"]}}"#
    );
    let v = rewrite(&raw, 0);
    assert_eq!(v["a"], 1);
    assert_eq!(v["tool"]["name"], "get_secret");
    assert_eq!(v["z"], serde_json::json!([true, null, "s"]));
    let marker = v["tool"]["arguments"]["blob"].as_str().unwrap();
    assert!(
        marker.starts_with("[credtrail: value removed, too large: 100002 bytes"),
        "{marker}"
    );
    assert_eq!(v[SALVAGED_FIELD], "too_large");
}

#[test]
fn numbers_out_of_range_are_kept_as_text() {
    let v = rewrite(
        r#"{"big": 18446744073709551616, "neg": -9223372036854775809, "inf": 1e309, "ok": 1.5e3, "max": 18446744073709551615}"#,
        0,
    );
    assert_eq!(v["big"], "18446744073709551616");
    assert_eq!(v["neg"], "-9223372036854775809");
    assert_eq!(v["inf"], "1e309");
    assert_eq!(v["ok"], 1500.0);
    assert_eq!(v["max"], 18446744073709551615u64);
}

#[test]
fn deep_and_wide_values_are_marked_and_the_scan_needs_no_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let wide = format!("[{}]", vec!["1"; 20_000].join(","));
    let raw = format!(r#"{{"deep": {deep}, "wide": {wide}, "name": "n\"x\\"}}"#);
    let v = rewrite(&raw, 0);
    assert!(
        v["deep"].as_str().unwrap().contains("too deep"),
        "{}",
        v["deep"]
    );
    assert!(
        v["wide"].as_str().unwrap().contains("too many values"),
        "{}",
        v["wide"]
    );
    assert_eq!(v["name"], "n\"x\\");
}

#[test]
fn later_attempts_keep_less_and_broken_json_is_not_salvaged() {
    let raw = format!(r#"{{"a": "{}", "b": 2}}"#, "y".repeat(5000));
    assert_eq!(rewrite(&raw, 0)["a"].as_str().unwrap().len(), 5000);
    assert!(
        rewrite(&raw, 1)["a"]
            .as_str()
            .unwrap()
            .starts_with("[credtrail")
    );
    assert_eq!(salvage(raw.as_bytes(), &limits(), "too_large", 3), None);
    for broken in [
        r#"{"a": "#,
        r#"{"a" 1}"#,
        "[1]",
        r#"{"a": 1} x"#,
        r#"{"a": "unterminated}"#,
    ] {
        assert_eq!(
            salvage(broken.as_bytes(), &limits(), "r", 0),
            None,
            "{broken}"
        );
    }
}
