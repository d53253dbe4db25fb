//! `credtrail rules ...`: tools for rule authors. `lint` loads every rule under the given paths
//! and prints every error and warning.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use credtrail::matcher::CompileOptions;
use credtrail::sigma::{LoadOptions, YamlBudget, processing};
use credtrail::tooling::lint::{self, Finding, Report};
use credtrail::tooling::sarif;

#[derive(Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Load every rule and print every error and warning; exit 1 on any error.
    Lint(LintArgs),
    /// Run the test cases rules carry (`<rule>.tests.yml`) and, for correlations, generated
    /// variants: shuffled within the lateness, duplicated, stretched past the window or gap,
    /// with an `until` or `absence` event inserted.
    Test(super::rules_test::Args),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
}

#[derive(Args)]
struct LintArgs {
    /// Rule files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format: text (one line per finding), json, or sarif (SARIF 2.1.0, for code
    /// scanning).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Do not print warnings and notes (they are still counted in the summary).
    #[arg(long)]
    no_warnings: bool,
    /// Processing pipeline (pySigma YAML) applied to every rule; repeatable.
    #[arg(long)]
    pipeline: Vec<PathBuf>,
}

/// Runs a `rules` subcommand. Exit codes: 0 no error, 1 at least one rule error, 2 bad
/// arguments.
pub fn run(args: RulesArgs) -> ExitCode {
    match args.command {
        RulesCommand::Lint(a) => run_lint(a),
        RulesCommand::Test(a) => match super::rules_test::run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, error)) => {
                eprintln!("credtrail: error: {error:#}");
                ExitCode::from(code)
            }
        },
    }
}

fn run_lint(args: LintArgs) -> ExitCode {
    let pipelines = match processing::load(&args.pipeline, YamlBudget::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("credtrail: error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = lint::lint(
        &args.paths,
        &LoadOptions::with_pipelines(pipelines),
        &CompileOptions::default(),
    );
    let shown = |f: &&Finding| !(args.no_warnings && f.severity != lint::Severity::Error);
    match args.format {
        Format::Text => {
            for f in report.findings.iter().filter(shown) {
                println!("{}", text_line(f));
            }
            eprintln!("{}", summary(&report));
        }
        Format::Json => {
            let findings: Vec<serde_json::Value> = report
                .findings
                .iter()
                .filter(shown)
                .map(|f| {
                    serde_json::json!({
                        "file": f.file.display().to_string(),
                        "line": f.line,
                        "column": f.col,
                        "severity": f.severity.name(),
                        "rule": f.rule,
                        "construct": f.construct,
                        "message": f.message,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "files": report.files,
                "rules": report.rules,
                "loaded": report.loaded,
                "errors": report.errors(),
                "warnings": report.warnings(),
                "notes": report.count(lint::Severity::Note),
                "findings": findings,
            });
            println!("{doc}");
        }
        Format::Sarif => {
            let results: Vec<sarif::Finding<'_>> = report
                .findings
                .iter()
                .filter(shown)
                .map(|f| sarif::Finding {
                    rule_id: format!(
                        "credtrail/{}",
                        f.construct.split(':').next().unwrap_or(&f.construct)
                    ),
                    level: match f.severity {
                        lint::Severity::Error => sarif::Level::Error,
                        lint::Severity::Warning => sarif::Level::Warning,
                        lint::Severity::Note => sarif::Level::Note,
                    },
                    message: text_message(f),
                    file: &f.file,
                    line: f.line,
                    col: f.col,
                })
                .collect();
            println!("{}", sarif::log(&results));
            eprintln!("{}", summary(&report));
        }
    }
    if report.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn text_line(f: &Finding) -> String {
    format!(
        "{}:{}:{}: {}: {} [{}]",
        f.file.display(),
        f.line,
        f.col,
        f.severity.name(),
        text_message(f),
        f.construct
    )
}

/// The message with the rule it is about.
fn text_message(f: &Finding) -> String {
    match &f.rule {
        Some(r) => format!("rule {r}: {}", f.message),
        None => f.message.clone(),
    }
}

fn summary(r: &Report) -> String {
    format!(
        "credtrail rules lint: {} rule(s) in {} file(s), {} load; {} error(s), {} warning(s)",
        r.rules,
        r.files,
        r.loaded,
        r.errors(),
        r.warnings()
    )
}
