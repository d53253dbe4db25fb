//! Subcommands of the `credtrail` binary that live outside `main.rs`, and the process's own
//! setup ([`huge_pages`]).

pub mod alert;
pub mod eval;
pub mod generate;
pub mod health;
pub mod huge_pages;
pub mod rules;
pub mod rules_test;
pub mod service;
pub mod summary;

/// Where rules come from, as `replay` and `eval` take them.
#[derive(clap::Args)]
pub struct RuleSources {
    /// Rule files or directories (repeatable).
    #[arg(long, required = true)]
    pub rules: Vec<std::path::PathBuf>,
    /// Processing pipeline (pySigma YAML) applied to every rule; repeatable, applied by priority.
    #[arg(long)]
    pub pipeline: Vec<std::path::PathBuf>,
    /// A public rule corpus (SigmaHQ's `rules/` folder) loaded best-effort next to `--rules`:
    /// its rules feed the `select:` stages of the chains; a corpus rule credtrail cannot load
    /// is left out and printed with its reason (repeatable).
    #[arg(long)]
    pub corpus: Vec<std::path::PathBuf>,
}
