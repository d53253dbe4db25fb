//! The shipped pack's sidecar tests (`rules/**/<rule>.tests.yml`, format in rules/README.md),
//! run as `credtrail rules test rules/` runs them: through the whole pipeline, with the
//! generated variants. Every case and variant must pass, every sidecar must sit beside its rule
//! file, and every correlation of the pack must have a case.

mod common;

use std::path::{Path, PathBuf};

use credtrail::tooling::ruletest::Status;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_sidecar_test_of_the_pack_passes() {
    std::env::set_current_dir(common::root()).unwrap();
    let mut all = Vec::new();
    files(Path::new("rules"), &mut all);
    let sidecars: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tests.yml"))
        .collect();
    assert!(sidecars.len() >= 15, "sidecar test files went missing");
    for s in &sidecars {
        let rule = s.to_string_lossy().replace(".tests.yml", ".yml");
        assert!(
            Path::new(&rule).exists(),
            "{}: no rule file {rule}",
            s.display()
        );
    }
    let report = common::rules_test_passes("rules");
    // Every sidecar ran, and every file of chains was tested with generated variants.
    for s in &sidecars {
        let ran = report.results.iter().any(|r| r.file == **s);
        assert!(ran, "{}: no case ran", s.display());
        if s.to_string_lossy().contains("chains") {
            let varied = report
                .results
                .iter()
                .any(|r| r.file == **s && r.variant.is_some() && r.status == Status::Pass);
            assert!(varied, "{}: no generated variant passed", s.display());
        }
    }
    let chain_files = all
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("_chains.yml"))
        .count();
    let tested_chains = sidecars
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("_chains.tests.yml"))
        .count();
    assert_eq!(chain_files, tested_chains, "a chain file has no sidecar");
}
