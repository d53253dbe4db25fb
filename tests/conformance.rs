//! Conformance of the correlation engine: the rule files under `tests/conformance/correlation/` carry their
//! own cases (the specification's worked examples, the value aggregations and condition
//! ranges, the `credtrail:` extension). `rules test` runs them through the whole pipeline with
//! the generated variants; every case and variant must pass, and each kind of variant must
//! actually have run.

mod common;

use std::path::PathBuf;

use credtrail::ruletest::{self, Status, TestOptions};

#[test]
fn every_conformance_case_and_variant_passes() {
    std::env::set_current_dir(common::root()).unwrap();
    let report = ruletest::run(&TestOptions {
        paths: vec![PathBuf::from("tests/conformance/correlation")],
        ..TestOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| {
            format!(
                "{}: {} [{:?}]: {}",
                r.file.display(),
                r.case,
                r.variant,
                r.message
            )
        })
        .collect();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
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
