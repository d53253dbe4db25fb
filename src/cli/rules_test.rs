//! `credtrail rules test DIR|FILE...`: runs the tests rules carry (see `credtrail::tooling::ruletest`).
//! Exit codes: 0 every case and variant passed, 1 a failure, 2 the rules or arguments are bad.
//! A report is written whatever the exit code: rules that do not load are failed results in
//! it (and printed to standard error), and the tests of the other rules still run.

use std::path::PathBuf;

use credtrail::tooling::ruletest::{self, RuleTestError, TestOptions, report};

/// Arguments of `rules test`.
#[derive(clap::Args)]
pub struct Args {
    /// Rule files, their `.tests.yml` files, or directories (searched recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// More rule files or directories to load (rules the tested ones reference).
    #[arg(long)]
    pub rules: Vec<PathBuf>,
    /// Output: text (one line per case and variant), json, junit (XML), or sarif (failures,
    /// for code scanning).
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Per case: which stage each event matched, and why a case that expected alerts got none.
    #[arg(long)]
    pub explain: bool,
    /// Shuffled deliveries generated per correlation case.
    #[arg(long, default_value_t = 3)]
    pub shuffles: u32,
    /// Seed of the shuffled deliveries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the tests; the error carries the exit code.
pub fn run(args: Args) -> Result<(), (u8, anyhow::Error)> {
    let format = report::Format::from_name(&args.format).ok_or_else(|| {
        (
            2,
            anyhow::anyhow!(
                "--format {}: unknown (text, json, junit, sarif)",
                args.format
            ),
        )
    })?;
    let opts = TestOptions {
        paths: args.paths,
        rules: args.rules,
        shuffles: args.shuffles,
        seed: args.seed,
        explain: args.explain,
    };
    let report = match ruletest::run(&opts) {
        Ok(r) => r,
        Err(RuleTestError::Rules(errors)) => {
            for e in &errors.0 {
                eprintln!("credtrail: rule error: {e}");
            }
            return Err((
                2,
                anyhow::anyhow!("{} rule error(s); no test was run", errors.0.len()),
            ));
        }
        Err(e) => return Err((2, e.into())),
    };
    print!("{}", report::render(&report, format));
    let load_failures: Vec<&ruletest::CaseResult> = report
        .results
        .iter()
        .filter(|r| r.is_load_failure())
        .collect();
    for r in &load_failures {
        eprintln!(
            "credtrail: rule error: {}:{}:{}: {}: {}",
            r.file.display(),
            r.line,
            r.col,
            r.case,
            r.message
        );
    }
    if !load_failures.is_empty() {
        return Err((
            2,
            anyhow::anyhow!(
                "{} rule(s) did not load; the tests of the others ran",
                load_failures.len()
            ),
        ));
    }
    if report.passed() {
        Ok(())
    } else {
        Err((
            1,
            anyhow::anyhow!(
                "{} rule test(s) failed",
                report.count(ruletest::Status::Fail)
            ),
        ))
    }
}
