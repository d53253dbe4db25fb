//! Loads every rule of the public SigmaHQ corpus in `../shared/sigma` one file at a time: each
//! either loads or fails with an error naming the construct; none is skipped silently, and the
//! load rate must not drop below the recorded floor.

use std::collections::BTreeMap;
use std::path::PathBuf;

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/sigma")
}

#[test]
fn every_public_rule_loads_or_names_its_construct() {
    let files = sigma::collect_files(&[corpus().join("rules"), corpus().join("rules-placeholder")])
        .unwrap();
    assert_eq!(files.len(), 315, "the corpus README says 315 rules");
    let opts = LoadOptions::default();
    let mut loaded = 0usize;
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
        } else {
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
}
