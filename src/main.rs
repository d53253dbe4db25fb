//! The `credtrail` command line. Exit codes: 0 success, 2 bad arguments or rules (or a replay
//! that completed with input errors: an input could not be read to its end), 1 runtime error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use credtrail::alert::signature::SigningKeys;
use credtrail::decode::{DecodeLimits, ProfileKind};
use credtrail::input::ReadLimits;
use credtrail::inventory::Inventory;
use credtrail::matcher::{self, CompileOptions, RuleSet};
use credtrail::pipeline::budget::{self, MemoryBudget};
use credtrail::pipeline::{self, ReplayOptions};
use credtrail::score::{Assessor, ScoreConfig, Weights};
use credtrail::sigma::{self, LoadOptions};
use credtrail::time::Span;

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "credtrail",
    version,
    about = "Detect credential-abuse chains in security event streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole detection path on JSON-lines files (plain, .gz, .zst) or standard input.
    Replay(Box<ReplayArgs>),
    /// Write a generated dataset (seeded, reproducible byte for byte) and its labels.
    Gen(cli::generate::GenArgs),
    /// Replay labelled events and print recall, precision and time to detect.
    Eval(cli::eval::EvalArgs),
    /// Tools for rule authors (`lint`, `test`).
    Rules(cli::rules::RulesArgs),
    /// Run the Kafka service: consume input topics, produce alerts (see deploy/credtrail.toml).
    Run(cli::service::RunArgs),
    /// Check or print the service's config.
    Config(cli::service::ConfigArgs),
    /// Ask a running service's `/livez` (for a container HEALTHCHECK): exit 0 on 200, else 1.
    Health(cli::health::HealthArgs),
    /// Tools for alert consumers (`verify`).
    Alert(cli::alert::AlertArgs),
    /// Draw a replay's alerts as one self-contained HTML page: incidents by risk, each with
    /// its timeline, score waterfall, evidence and lineage.
    Report(ReportArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Input files, read in order; `-` reads standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    sources: cli::RuleSources,
    /// Write alerts here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write events that cannot be processed here (created on the first one).
    #[arg(long, default_value = "credtrail-dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// Shard threads owning correlation state (default: the number of cores).
    #[arg(long)]
    shards: Option<usize>,
    /// Decode-and-match threads (default: the number of shards).
    #[arg(long)]
    workers: Option<usize>,
    /// Who cuts the input into batches: `reader` (this thread, ahead of the workers),
    /// `workers` (each worker its next batch), `auto` (the workers once there are as many as
    /// cores). The output is the same.
    #[arg(long, value_enum, default_value = "auto")]
    cutting: CuttingArg,
    /// How late an event may arrive, in event time, and still count (e.g. 30s, 5m).
    #[arg(long, default_value = "5m")]
    lateness: String,
    /// How far an event may be ahead of the median of its input's recent events (e.g. 15m,
    /// 2h); one further ahead is held until later events confirm it, or dead-lettered as
    /// `future` without moving the input's clock.
    #[arg(long, default_value = "15m")]
    max_future_skew: String,
    /// Use this source profile for every event instead of detecting it per event.
    #[arg(long)]
    profile: Option<String>,
    /// Largest event in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_event_bytes: usize,
    /// Deepest nesting of an event.
    #[arg(long, default_value_t = 64)]
    max_depth: usize,
    /// Most JSON values in one event.
    #[arg(long, default_value_t = 10_000)]
    max_fields: usize,
    /// Memory the engine may hold (state, waiting hits, lineage links, regex caches), e.g.
    /// `4GiB`; default: half of the cgroup limit, else of physical memory.
    #[arg(long)]
    memory_budget: Option<String>,
    /// Identity context (YAML, JSON or CSV): what each identity can reach, canaries.
    #[arg(long)]
    inventory: Option<PathBuf>,
    /// Identity priority lists per source profile (YAML), replacing the built-in ones.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Chain steps closer than this run at machine speed (scored higher).
    #[arg(long, default_value = "10s")]
    machine_speed: String,
    /// Blast-radius weights `reach,touched,stage,tempo`, adding up to 100.
    #[arg(long, default_value = "35,20,25,20")]
    weights: String,
    /// Announce ordered chains early, once they complete this many stages: a finding with
    /// activity Create and `is_alert` false, then Updates with the same id as the chain
    /// advances or its score changes, the last one alerting.
    #[arg(long)]
    escalate_at: Option<u32>,
    /// Also write every alert signed (HMAC-SHA256, Standard Webhooks style) to this file, as
    /// JSON lines in the shape `kcat -C -J` prints a topic; needs `--sign-keys`. Check it with
    /// `credtrail alert verify`.
    #[arg(long, requires = "sign_keys")]
    signed_out: Option<PathBuf>,
    /// The signing key file (`<key id> <base64 secret>` per line; the first key signs).
    #[arg(long, requires = "signed_out")]
    sign_keys: Option<PathBuf>,
    /// Play stage 1 of a cluster: write the resolved hits and stamps as records to
    /// `DIR/hits-<p>.jsonl` (one file per hits partition) instead of correlating them.
    #[arg(long, value_name = "DIR", conflicts_with = "records")]
    route_to: Option<PathBuf>,
    /// Hits partitions `--route-to` writes.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=10_000), requires = "route_to")]
    hit_partitions: u32,
    /// Play stage 2 of a cluster: the inputs are record files `--route-to` wrote.
    #[arg(long)]
    records: bool,
    /// With `--records --no-incidents`: go on from the states a `--suspend-to` run wrote to
    /// FILE.
    #[arg(long, value_name = "FILE", requires_all = ["records", "no_incidents"])]
    restore: Option<PathBuf>,
    /// With `--records --no-incidents`: at the end of the input, write the states to FILE
    /// instead of deciding them to the end of time (a later `--restore FILE` run goes on from
    /// them). A snapshot holds correlation state, not open incidents.
    #[arg(long, value_name = "FILE", requires_all = ["records", "no_incidents"])]
    suspend_to: Option<PathBuf>,
    /// Group the findings of one identity whose events overlap, or follow within this window,
    /// into one incident (one `finding_info.uid`: Create, Updates, Close).
    #[arg(long, default_value = "1h")]
    incident_window: String,
    /// One alert per finding, no incidents (the behaviour before incidents).
    #[arg(long)]
    no_incidents: bool,
    /// Evidences shown in full per alert (the first and last event always); the rest counted.
    #[arg(long, default_value_t = 10)]
    max_evidences: usize,
    /// Largest alert line in bytes (keep it below the producer's `message.max.bytes`).
    #[arg(long, default_value_t = 256 * 1024)]
    max_alert_bytes: usize,
    /// `json`: the alert lines; `text`: a readable summary per incident.
    #[arg(long, value_enum, default_value = "json")]
    format: OutputFormat,
    /// Also write the HTML report of the alerts here (see `credtrail report`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Do not print the summary on standard error.
    #[arg(long)]
    quiet: bool,
}

/// Checks a count given on the command line: at least one, at most `max`.
fn count_flag(flag: &str, n: usize, max: usize) -> Result<usize, Failure> {
    if n == 0 || n > max {
        return Err(bad_input(anyhow::anyhow!(
            "{flag} {n}: give a number from 1 to {max}"
        )));
    }
    Ok(n)
}

/// A failure with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn bad_input(error: anyhow::Error) -> Failure {
    Failure { code: 2, error }
}

fn runtime(error: anyhow::Error) -> Failure {
    Failure { code: 1, error }
}

fn main() -> ExitCode {
    cli::huge_pages::turn_off_unless_asked();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay(*args),
        Command::Gen(args) => cli::generate::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Rules(args) => return cli::rules::run(args),
        Command::Alert(args) => return cli::alert::run(args),
        Command::Run(args) => cli::service::run(args),
        Command::Config(args) => cli::service::config_command(args),
        Command::Health(args) => return cli::health::run(args),
        Command::Report(args) => report(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("credtrail: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let lateness = Span::parse(&args.lateness)
        .with_context(|| format!("--lateness {}", args.lateness))
        .map_err(bad_input)?;
    let max_future = Span::parse(&args.max_future_skew)
        .with_context(|| format!("--max-future-skew {}", args.max_future_skew))
        .map_err(bad_input)?;
    if max_future.0 <= 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--max-future-skew {}: must be more than zero",
            args.max_future_skew
        )));
    }
    let forced = match &args.profile {
        None => None,
        Some(name) => Some(ProfileKind::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = ProfileKind::ALL.iter().map(|k| k.name()).collect();
            bad_input(anyhow::anyhow!(
                "--profile {name}: unknown profile (known: {})",
                known.join(", ")
            ))
        })?),
    };
    for p in &args.inputs {
        if p.as_os_str() != "-" && !p.exists() {
            return Err(bad_input(anyhow::anyhow!(
                "input {}: no such file",
                p.display()
            )));
        }
    }
    let limits = DecodeLimits {
        max_event_bytes: count_flag("--max-event-bytes", args.max_event_bytes, 1 << 30)?,
        max_depth: count_flag("--max-depth", args.max_depth, 100_000)?,
        max_fields: count_flag("--max-fields", args.max_fields, 100_000_000)?,
    };
    let identity = match &args.identity {
        None => Default::default(),
        Some(p) => credtrail::identity::config::load(p).map_err(|e| bad_input(e.into()))?,
    };
    let cores = credtrail::cores::count();
    let max = pipeline::MAX_THREADS;
    let shards = count_flag("--shards", args.shards.unwrap_or(cores.min(max)), max)?;
    let workers = count_flag("--workers", args.workers.unwrap_or(shards), max)?;
    let configured = match &args.memory_budget {
        Some(text) => Some(
            budget::parse_size(text)
                .with_context(|| format!("--memory-budget {text}"))
                .map_err(bad_input)?,
        ),
        None => None,
    };
    let budget = MemoryBudget::new(configured)
        .with_context(|| "--memory-budget")
        .map_err(bad_input)?;
    let split = budget.split(shards, workers);
    if !args.quiet {
        eprintln!("credtrail replay: {}", budget.describe(&split));
    }
    let rules = load_rules(
        &args.sources,
        CompileOptions {
            limits,
            forced_profile: forced,
            identity: identity.templates,
            aws_sso: identity.aws_sso,
            regex_cache_budget: Some(split.regex_cache_per_worker),
            ..CompileOptions::default()
        },
    )?;
    let opts = ReplayOptions {
        inputs: args.inputs.clone(),
        shards,
        workers,
        lateness,
        max_future,
        out: args.out.clone(),
        dead_letter: args.dead_letter.clone(),
        progress: !args.quiet && std::io::stderr().is_terminal(),
        read: ReadLimits {
            max_line_kept: args.max_event_bytes.saturating_mul(4).max(1 << 20),
            ..ReadLimits::default()
        },
        shard_limits: split.shard,
        mint: credtrail::decode::MintLifetimes::default(),
        lineage: split.lineage,
        assessor: Arc::new(assessor(&args)?),
        alert: alert_options(&args)?,
        signed_out: match (&args.signed_out, &args.sign_keys) {
            (Some(path), Some(keys)) => Some(pipeline::SignedOutput {
                path: path.clone(),
                keys: SigningKeys::load(keys).map_err(|e| bad_input(e.into()))?,
            }),
            _ => None,
        },
        cluster: match (&args.route_to, args.records) {
            (Some(dir), _) => pipeline::ClusterReplay::RouteTo {
                dir: dir.clone(),
                partitions: args.hit_partitions,
            },
            (None, true) => pipeline::ClusterReplay::Records(pipeline::Suspension {
                restore: args.restore.clone(),
                suspend_to: args.suspend_to.clone(),
            }),
            (None, false) => pipeline::ClusterReplay::Whole,
        },
        cutting: match args.cutting {
            CuttingArg::Auto => pipeline::Cutting::Auto,
            CuttingArg::Reader => pipeline::Cutting::Reader,
            CuttingArg::Workers => pipeline::Cutting::Workers,
        },
    };
    // The text summary and the report read the alert lines back: without `--out` they go to
    // a temporary file first.
    let text = args.format == OutputFormat::Text;
    let temporary = (opts.out.is_none() && (text || args.report.is_some())).then(|| {
        std::env::temp_dir().join(format!("credtrail-alerts-{}.jsonl", std::process::id()))
    });
    let mut opts = opts;
    if let Some(t) = &temporary {
        opts.out = Some(t.clone());
    }
    let result = pipeline::replay(Arc::new(rules), &opts).map_err(|e| runtime(e.into()));
    let shown = result.and_then(|summary| {
        let alerts = opts.out.clone().unwrap_or_default();
        if let Some(report) = &args.report {
            credtrail::tooling::report::write_html(&alerts, report)
                .map_err(|e| runtime(e.into()))?;
        }
        if text {
            let incidents =
                credtrail::tooling::report::read(&alerts).map_err(|e| runtime(e.into()))?;
            print!("{}", credtrail::tooling::report::text::render(&incidents));
        } else if let Some(t) = &temporary {
            // `--report` alone still prints the alert lines, as a replay without it does.
            let lines = std::fs::read(t).map_err(|e| runtime(e.into()))?;
            std::io::Write::write_all(&mut std::io::stdout(), &lines)
                .map_err(|e| runtime(e.into()))?;
        }
        Ok(summary)
    });
    if let Some(t) = &temporary {
        let _ = std::fs::remove_file(t);
    }
    let summary = shown?;
    if !args.quiet {
        cli::summary::print(&summary, &opts);
    }
    if !summary.input_errors.is_empty() {
        for e in &summary.input_errors {
            eprintln!("credtrail: input error: {e}");
        }
        return Err(Failure {
            code: 2,
            error: anyhow::anyhow!(
                "completed with input errors: {} input(s) could not be read to their end (the other inputs were replayed)",
                summary.input_errors.len()
            ),
        });
    }
    Ok(())
}

/// `replay --cutting` (see [`pipeline::Cutting`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CuttingArg {
    Auto,
    Reader,
    Workers,
}

/// How `replay` prints its alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// OCSF JSON lines.
    Json,
    /// A readable summary per incident.
    Text,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Alert lines written by `replay` (OCSF Detection Findings).
    alerts: PathBuf,
    /// Where the HTML page goes.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
}

fn report(args: ReportArgs) -> Result<(), Failure> {
    let n = credtrail::tooling::report::write_html(&args.alerts, &args.out)
        .map_err(|e| bad_input(e.into()))?;
    eprintln!("{n} incident(s) written to {}", args.out.display());
    Ok(())
}

/// How alerts are bounded and grouped, from the replay's flags.
fn alert_options(args: &ReplayArgs) -> Result<credtrail::alert::AlertOptions, Failure> {
    use credtrail::alert::{AlertOptions, incident::IncidentOptions};
    let window = Span::parse(&args.incident_window)
        .with_context(|| format!("--incident-window {}", args.incident_window))
        .map_err(bad_input)?;
    if args.max_evidences < 2 {
        return Err(bad_input(anyhow::anyhow!(
            "--max-evidences {}: at least 2 (the first and the last event)",
            args.max_evidences
        )));
    }
    if args.max_alert_bytes < 16 * 1024 {
        return Err(bad_input(anyhow::anyhow!(
            "--max-alert-bytes {}: at least 16384 (an alert with two evidences must fit)",
            args.max_alert_bytes
        )));
    }
    Ok(AlertOptions {
        max_evidences: args.max_evidences,
        max_bytes: args.max_alert_bytes,
        incidents: (!args.no_incidents).then(|| IncidentOptions {
            window,
            ..IncidentOptions::default()
        }),
    })
}

/// The scorer from `--inventory`, `--machine-speed` and `--weights`.
fn assessor(args: &ReplayArgs) -> Result<Assessor, Failure> {
    let inventory = match &args.inventory {
        None => None,
        Some(p) => Some(Arc::new(
            Inventory::load(p).map_err(|e| bad_input(e.into()))?,
        )),
    };
    let machine_speed_gap = Span::parse(&args.machine_speed)
        .with_context(|| format!("--machine-speed {}", args.machine_speed))
        .map_err(bad_input)?;
    let parts: Vec<u32> = args
        .weights
        .split(',')
        .map(|w| w.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| bad_input(anyhow::anyhow!("--weights {}: {e}", args.weights)))?;
    let [reach, touched, stage, tempo] = parts[..] else {
        return Err(bad_input(anyhow::anyhow!(
            "--weights {}: give four numbers: reach,touched,stage,tempo",
            args.weights
        )));
    };
    let weights = Weights {
        reach,
        touched,
        stage,
        tempo,
    };
    if weights.total() != 100 {
        return Err(bad_input(anyhow::anyhow!(
            "--weights {}: the weights add up to {}, not 100",
            args.weights,
            weights.total()
        )));
    }
    Ok(Assessor {
        inventory,
        config: ScoreConfig {
            weights,
            machine_speed_gap,
        },
        escalate_at: args.escalate_at,
    })
}

fn load_rules(sources: &cli::RuleSources, opts: CompileOptions) -> Result<RuleSet, Failure> {
    let (paths, pipelines) = (&sources.rules, &sources.pipeline);
    let fail = |errors: sigma::LoadErrors| {
        for e in &errors.0 {
            eprintln!("credtrail: rule error: {e}");
        }
        bad_input(anyhow::anyhow!(
            "{} rule error(s); nothing was run",
            errors.0.len()
        ))
    };
    let pipelines = sigma::processing::load(pipelines, sigma::YamlBudget::default())
        .map_err(|e| bad_input(e.into()))?;
    let load = LoadOptions::with_pipelines(pipelines);
    if !sources.corpus.is_empty() {
        let loaded =
            matcher::load_with_corpus(paths, &sources.corpus, &load, &opts).map_err(fail)?;
        for e in &loaded.left_out {
            eprintln!("credtrail: corpus rule left out: {e}");
        }
        eprintln!(
            "credtrail: corpus: {} rule(s) loaded, {} left out",
            loaded.corpus_loaded,
            loaded.left_out.len()
        );
        return Ok(loaded.rules);
    }
    let catalog = sigma::load(paths, &load).map_err(fail)?;
    if catalog.rules.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "no rules found under the --rules paths"
        )));
    }
    matcher::compile(&catalog, &opts).map_err(fail)
}
