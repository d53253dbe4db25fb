//! Loads every rule of the public SigmaHQ corpus (`sigma/` of the public data root, see
//! `common/public_data.rs`) one file at a time: each
//! either loads or fails with an error naming the construct; none is skipped silently. The rules
//! that do not load are listed below with their construct: a new failure, or a listed rule that
//! starts loading, fails the test (update the list and say why), and the rate must stay at or
//! above 98 %. The loaded rules must also compile together as one rule set.

use std::collections::BTreeMap;
use std::path::PathBuf;

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};

mod common;

fn corpus() -> PathBuf {
    common::shared_path("sigma")
}

/// The corpus rules that do not load, by file name, with the construct their error names.
const EXPECTED_FAILURES: &[(&str, &str)] = &[(
    // The placeholders need values from a processing pipeline (see tests/pipelines.rs).
    "aws_cloudtrail_console_login_success_from_susp_locations.yml",
    "unsupported:`expand` placeholder `%Legitimate_Countries%` has no value (define it in a processing pipeline)",
)];

#[test]
fn every_public_rule_loads_or_names_its_construct() {
    let files = sigma::collect_files(&[corpus().join("rules"), corpus().join("rules-placeholder")])
        .unwrap();
    assert_eq!(files.len(), 315, "the corpus README says 315 rules");
    let opts = LoadOptions::default();
    let mut loaded = 0usize;
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failed_files: Vec<(String, String)> = Vec::new();
    let mut all_rules = Vec::new();
    for f in &files {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        sigma::parse_file(f, &opts, &mut rules, &mut errors);
        if errors.is_empty() {
            // Compiling is part of loading: a rule that parses but cannot run fails too.
            let catalog = sigma::resolve(rules.clone(), &mut errors);
            if let Err(e) = matcher::compile(&catalog, &CompileOptions::default()) {
                errors.extend(e.0);
            }
        }
        if errors.is_empty() {
            assert_eq!(rules.len(), 1, "{} holds one rule", f.display());
            loaded += 1;
            all_rules.extend(rules);
        } else {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            failed_files.push((name, errors[0].construct()));
            for e in errors {
                assert!(e.loc.line > 0, "error without a line: {e}");
                failures
                    .entry(e.construct())
                    .or_default()
                    .push(e.to_string());
            }
        }
    }
    for (construct, errs) in &failures {
        eprintln!("{construct}: {} rule(s), e.g. {}", errs.len(), errs[0]);
    }
    let rate = loaded as f64 / files.len() as f64;
    eprintln!("loaded {loaded} of {} ({:.1} %)", files.len(), rate * 100.0);
    assert!(
        rate >= 0.98,
        "load rate {:.1} % is under 98 %",
        rate * 100.0
    );
    let expected: Vec<(String, String)> = EXPECTED_FAILURES
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    assert_eq!(failed_files, expected, "the rules that do not load changed");
    // Together, as `replay --rules <root>/sigma` would load them.
    let mut errors = Vec::new();
    let catalog = sigma::resolve(all_rules, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let set = matcher::compile(&catalog, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("the loaded rules do not compile together: {e}"));
    assert_eq!(set.detections.len(), loaded);
}
