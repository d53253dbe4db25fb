//! Rule tests: the cases a rule carries, run through the real engine, plus generated variants
//! that check what a sequence rule must survive in production.
//!
//! A test file ([`spec`]) sits next to its rule file. Each case's events are given their times
//! and ids ([`events`]), written to a file and replayed through the whole pipeline (decode,
//! match, sequencer with its lateness, shards, alert writer), exactly as `credtrail replay`
//! would. The alerts of the case's rule are compared with the expectation.
//!
//! For a correlation rule, [`variants`] derives more runs from a passing case: events shuffled
//! within the allowed lateness (same alerts, on two shards), every event duplicated (same alert
//! ids), the chain stretched just past its timespan or a step just past its `max_gap` (no
//! alert), an `until` event inserted into the chain or an `absence` event after it (no alert).
//! Each variant is reported on its own line; one that cannot apply says why it was skipped.
//!
//! Rules load as far as they can ([`matcher::loadable`]): a rule that does not load is one
//! failed result (its file and line, its error), and the tests of every other rule still run,
//! so a report is written whatever the rules' state. Every result names its file and line: the
//! case's `name` in the test file, or the construct in the rule file that did not load.
//! [`explain`] says, per case, which stage each event matched and why a case got no alert.

pub mod check;
pub mod events;
pub mod explain;
pub mod report;
mod runner;
pub mod spec;
pub mod variants;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::matcher::{self, CompileOptions, Loadable};
use crate::sigma::{self, LoadError, LoadErrors, LoadOptions};
use check::{Actual, RuleKey};
use runner::{Runner, Scratch};

/// What to test and how.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// Rule files, test files or directories holding both.
    pub paths: Vec<PathBuf>,
    /// More rule paths to load (rules the tested ones reference), without running their tests.
    pub rules: Vec<PathBuf>,
    /// Shuffled deliveries per case.
    pub shuffles: u32,
    /// Seed of the shuffles.
    pub seed: u64,
    /// Explain every case (see [`explain`]): [`CaseResult::explain`] is filled.
    pub explain: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            paths: Vec::new(),
            rules: Vec::new(),
            shuffles: 3,
            seed: 1,
            explain: false,
        }
    }
}

/// Why the tests could not run at all (a failing case, or a rule that does not load, is a
/// [`Status::Fail`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum RuleTestError {
    #[error(transparent)]
    Rules(#[from] LoadErrors),
    #[error("no rule files under the given paths")]
    NoRules,
    #[error("cannot use the scratch directory {path}: {source}")]
    Scratch {
        path: String,
        source: std::io::Error,
    },
}

/// The outcome of one case or variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The test file of a case, or the rule file of a rule that did not load.
    pub file: PathBuf,
    /// The line of the case's `name` (or of what did not load); 0 when unknown.
    pub line: u64,
    /// Its column; 0 when unknown.
    pub col: u64,
    pub case: String,
    /// `None` for the case as written.
    pub variant: Option<String>,
    pub status: Status,
    /// Why it failed or was skipped.
    pub message: String,
    /// With `--explain`, for a case as written: what each event matched and why no alert.
    pub explain: Vec<String>,
}

impl CaseResult {
    /// A rule that did not load, as a failed result at its file and line.
    pub fn load_failure(e: &LoadError) -> CaseResult {
        let what = e
            .rule
            .as_ref()
            .map(|r| format!("rule {r}"))
            .unwrap_or_else(|| "rule file".into());
        CaseResult {
            file: e.file.clone(),
            line: e.loc.line,
            col: e.loc.col,
            case: format!("(load) {what}"),
            variant: None,
            status: Status::Fail,
            message: format!("did not load: {}", e.kind),
            explain: Vec::new(),
        }
    }

    /// Whether this result is a rule that did not load.
    pub fn is_load_failure(&self) -> bool {
        self.case.starts_with("(load) ")
    }
}

/// Every result, in the order run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub results: Vec<CaseResult>,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    pub fn passed(&self) -> bool {
        self.count(Status::Fail) == 0
    }
}

/// What one replay produced.
pub struct Run {
    pub alerts: Vec<(Actual, RuleKey)>,
    pub late: u64,
    pub dead_letters: u64,
}

/// Runs every test under `opts.paths`. Rules that do not load are failed results at the
/// front of the report; the tests of the others run.
///
/// # Errors
///
/// A rule path that does not exist, no rule at all, or no scratch directory.
pub fn run(opts: &TestOptions) -> Result<Report, RuleTestError> {
    let mut rule_paths = opts.rules.clone();
    let mut test_files = Vec::new();
    for p in &opts.paths {
        if p.is_dir() {
            rule_paths.push(p.clone());
            for f in
                sigma::collect_files(std::slice::from_ref(p)).map_err(|e| LoadErrors(vec![e]))?
            {
                test_files.extend(spec::sidecar(&f));
            }
        } else if spec::is_test_file(p) {
            test_files.push(p.clone());
            rule_paths.extend(spec::rule_file_of(p));
        } else {
            rule_paths.push(p.clone());
            test_files.extend(spec::sidecar(p));
        }
    }
    test_files.sort();
    test_files.dedup();
    sigma::collect_files(&rule_paths).map_err(|e| LoadErrors(vec![e]))?;
    let loaded: Loadable = matcher::load_loadable(
        &rule_paths,
        &LoadOptions::default(),
        &CompileOptions::default(),
        matcher::Want::RuleSet,
    );
    let mut report = Report {
        results: loaded.errors.iter().map(CaseResult::load_failure).collect(),
    };
    let Some(base) = loaded.rules else {
        return match report.results.is_empty() {
            true => Err(RuleTestError::NoRules),
            false => Ok(report),
        };
    };
    if loaded.catalog.rules.is_empty() && report.results.is_empty() {
        return Err(RuleTestError::NoRules);
    }
    let mut runner = Runner {
        catalog: loaded.catalog,
        not_loaded: loaded
            .errors
            .iter()
            .flat_map(|e| e.declared.iter().cloned())
            .collect(),
        base: Arc::new(base),
        forced: HashMap::new(),
        scratch: Scratch::new()?,
        opts: opts.clone(),
    };
    for f in &test_files {
        runner.run_file(f, &mut report.results);
    }
    Ok(report)
}
