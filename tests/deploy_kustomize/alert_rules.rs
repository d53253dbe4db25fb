//! The PrometheusRule names only metrics the service exports (`src/metrics.rs`): a renamed
//! metric must not leave an alert that can never fire.

use std::collections::BTreeSet;

use super::yaml;

/// The metric names in a PromQL expression: identifiers that are not functions, keywords,
/// label names (inside `{}` or `by (...)`) or numbers.
fn promql_metrics(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "bool",
        "offset",
        // aggregations, which may be followed by `by (...)` instead of their `(`
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let b = expr.as_bytes();
    let (mut i, mut depth_braces) = (0, 0);
    let mut out = Vec::new();
    let mut after_grouping = false;
    while i < b.len() {
        let c = b[i];
        if c == b'{' {
            depth_braces += 1;
        } else if c == b'}' {
            depth_braces -= 1;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
        } else if c == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
        } else if (c.is_ascii_alphabetic() || c == b'_') && depth_braces == 0 {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start().as_bytes().first().copied();
            if word == "by" || word == "without" || word == "on" || word == "ignoring" {
                after_grouping = true;
            } else if after_grouping {
                // the label list of `by (...)`
                if expr[i..].trim_start().starts_with(')') {
                    after_grouping = false;
                }
            } else if next != Some(b'(') && !KEYWORDS.contains(&word) {
                out.push(word.to_string());
            }
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn the_alerting_rules_name_only_metrics_the_service_exports() {
    assert_eq!(
        promql_metrics(
            "sum by (topic, pod) (rate(credtrail_x_total{reason=\"a b\"}[5m])) > 0.5 and up == 0"
        ),
        ["credtrail_x_total", "up"]
    );
    let exported: BTreeSet<String> = credtrail::metrics::Metrics::default()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert!(exported.contains("credtrail_live"), "{exported:?}");
    // Not credtrail's: Prometheus's scrape health, and kube-state-metrics' restart counter.
    let outside = ["up", "kube_pod_container_status_restarts_total"];
    let rule = yaml("components/prometheus-operator/prometheusrule.yaml");
    let mut alerts = Vec::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap();
            let expr = r["expr"].as_str().unwrap();
            let metrics = promql_metrics(expr);
            assert!(!metrics.is_empty(), "{name}: {expr}");
            for m in metrics {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| m.strip_suffix(s).filter(|b| exported.contains(*b)))
                    .unwrap_or(&m);
                assert!(
                    exported.contains(base) || outside.contains(&base),
                    "{name}: {m} is not a metric credtrail exports"
                );
            }
            assert!(r["labels"]["severity"].is_string(), "{name}");
            assert!(r["annotations"]["summary"].is_string(), "{name}");
            alerts.push(name.to_string());
        }
    }
    for wanted in [
        "CredtrailNotLive",
        "CredtrailConsumerLag",
        "CredtrailDeadLetters",
        "CredtrailCommitFailures",
        "CredtrailStateEvicted",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "{wanted}");
    }
}
