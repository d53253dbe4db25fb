//! Conformance of the correlation engine: the rule files under `tests/conformance/correlation/` carry their
//! own cases (the specification's worked examples, the value aggregations and condition
//! ranges, the `credtrail:` extension). `rules test` runs them through the whole pipeline with
//! the generated variants; every case and variant must pass, and each kind of variant must
//! actually have run.

mod common;

use credtrail::tooling::ruletest::Status;

#[test]
fn every_conformance_case_and_variant_passes() {
    let report = common::rules_test_passes("tests/conformance/correlation");
    let cases = report
        .results
        .iter()
        .filter(|r| r.variant.is_none())
        .count();
    assert!(cases >= 37, "conformance cases went missing: {cases}");
    for kind in [
        "shuffled",
        "duplicated",
        "stretched",
        "gap",
        "until",
        "absence",
    ] {
        let ran = report.results.iter().any(|r| {
            r.status == Status::Pass && r.variant.as_deref().is_some_and(|v| v.starts_with(kind))
        });
        assert!(
            ran,
            "no `{kind}` variant passed: the generator stopped producing it"
        );
    }
    // Every correlation type, the specification's examples and the extension have cases.
    let names: Vec<&str> = report.results.iter().map(|r| r.case.as_str()).collect();
    for prefix in [
        "event_count:",
        "value_count:",
        "temporal:",
        "correlation of correlations:",
        "aliases:",
        "value_sum:",
        "value_avg:",
        "value_percentile:",
        "value_median:",
        "event_count range:",
        "temporal range:",
        "gaps:",
        "until:",
        "absence:",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "no conformance case for `{prefix}`"
        );
    }
}
