//! `credtrail eval`: replay labelled events and print recall, precision and time to detect.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use credtrail::correlate::ShardLimits;
use credtrail::input::ReadLimits;
use credtrail::matcher::CompileOptions;
use credtrail::pipeline::ReplayOptions;
use credtrail::score::Assessor;
use credtrail::time::Span;
use credtrail::tooling::eval::{self, EvalOptions, Truth};

use crate::{Failure, bad_input, load_rules, runtime};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Labelled event files (plain, .gz, .zst), read in order.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    sources: super::RuleSources,
    /// Labels: a `credtrail gen --labels` file, or the invictus-stratus `labels_derived.csv`.
    #[arg(long)]
    labels: PathBuf,
    /// Allowed lateness of the replay (CloudTrail exports need 15m).
    #[arg(long, default_value = "5m")]
    lateness: String,
    /// How far an event may be ahead of its input's recent median (as in `replay`).
    #[arg(long, default_value = "15m")]
    max_future_skew: String,
    /// Shard threads of the replay.
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Keep the alerts in this file (default: a temporary file).
    #[arg(long)]
    alerts_out: Option<PathBuf>,
    /// Where events that cannot be processed go.
    #[arg(long, default_value = "credtrail-eval-dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `credtrail eval`; errors carry their exit code (2 bad arguments or rules, 1 runtime).
pub fn run(args: EvalArgs) -> Result<(), Failure> {
    let lateness = Span::parse(&args.lateness)
        .with_context(|| format!("--lateness {}", args.lateness))
        .map_err(bad_input)?;
    let truth = Truth::read(&args.labels)
        .with_context(|| format!("--labels {}", args.labels.display()))
        .map_err(bad_input)?;
    let rules = load_rules(&args.sources, CompileOptions::default())?;
    let max_future = Span::parse(&args.max_future_skew)
        .with_context(|| format!("--max-future-skew {}", args.max_future_skew))
        .map_err(bad_input)?;
    if max_future.0 <= 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--max-future-skew {}: must be more than zero",
            args.max_future_skew
        )));
    }
    let shards = args.shards.max(1);
    let opts = EvalOptions {
        replay: ReplayOptions {
            inputs: args.inputs.clone(),
            shards,
            workers: shards,
            lateness,
            max_future,
            out: args.alerts_out.clone(),
            dead_letter: args.dead_letter.clone(),
            progress: false,
            read: ReadLimits::default(),
            shard_limits: ShardLimits::default(),
            mint: credtrail::decode::MintLifetimes::default(),
            lineage: credtrail::identity::LineageLimits::default(),
            assessor: Arc::new(Assessor::default()),
            signed_out: None,
            cluster: Default::default(),
            cutting: Default::default(),
            alert: Default::default(),
        },
    };
    let report = eval::run(Arc::new(rules), &truth, &opts).map_err(|e| runtime(e.into()))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| runtime(e.into()))?;
        println!("{text}");
    } else {
        print!("{report}");
    }
    Ok(())
}
