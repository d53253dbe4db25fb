//! `credtrail gen`: write a generated dataset, its labels and (for W500) its rule set.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;

use credtrail::time::Span;
use credtrail::tooling::generator::{self, Overrides, Preset};

use crate::{Failure, bad_input, runtime};

#[derive(clap::Args)]
pub struct GenArgs {
    /// What to generate: mixed (every source, labelled chains), w500 (the benchmark workload)
    /// or demo (the bundled demo dataset).
    #[arg(long, default_value = "mixed")]
    preset: String,
    /// Seed of the generator: the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output file for the events (JSON lines); `-` writes standard output.
    #[arg(long)]
    out: PathBuf,
    /// Compress the events with zstd.
    #[arg(long)]
    zstd: bool,
    /// Write the chain labels here (JSON lines).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Background events to write (chains come on top).
    #[arg(long)]
    events: Option<u64>,
    /// Identities per source (Zipf ranks).
    #[arg(long)]
    identities: Option<u64>,
    /// Background events per second of event time.
    #[arg(long)]
    rate: Option<f64>,
    /// Exponent of the identities' Zipf law (default 1.1; lower is flatter).
    #[arg(long)]
    zipf: Option<f64>,
    /// Largest delivery delay, in event time (e.g. 20s); keep it below the replay's lateness.
    #[arg(long)]
    jitter: Option<String>,
    /// Also write the W500 rule set into this directory.
    #[arg(long)]
    rules_out: Option<PathBuf>,
    /// Number of rules of the W500 rule set (at least 26 for its correlations).
    #[arg(long, default_value_t = 100)]
    rule_count: usize,
}

/// Runs `credtrail gen`; errors carry their exit code (2 bad arguments, 1 runtime).
pub fn run(args: GenArgs) -> Result<(), Failure> {
    let bad = bad_input;
    let preset = Preset::from_name(&args.preset).ok_or_else(|| {
        let known: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        bad(anyhow::anyhow!(
            "--preset {}: unknown preset (known: {})",
            args.preset,
            known.join(", ")
        ))
    })?;
    let jitter = match &args.jitter {
        Some(j) => Some(
            Span::parse(j)
                .with_context(|| format!("--jitter {j}"))
                .map_err(bad)?,
        ),
        None => None,
    };
    let overrides = Overrides {
        events: args.events,
        identities: args.identities,
        rate: args.rate,
        jitter,
        zipf_exponent: args.zipf.map(|z| z.max(0.01)),
    };
    if preset == Preset::Demo && overrides != Overrides::default() {
        return Err(bad(anyhow::anyhow!(
            "--preset demo is fixed: it takes no --events, --identities, --rate, --zipf or --jitter"
        )));
    }
    if let Some(dir) = &args.rules_out {
        let n = generator::rules::write(dir, args.rule_count, args.seed)
            .with_context(|| format!("cannot write rules into {}", dir.display()))
            .map_err(runtime)?;
        eprintln!(
            "credtrail gen: wrote {} W500 rules in {n} file(s) to {}",
            args.rule_count,
            dir.display()
        );
    }
    let create = |p: &PathBuf| -> Result<Box<dyn Write>, Failure> {
        if p.as_os_str() == "-" {
            return Ok(Box::new(BufWriter::with_capacity(
                1 << 20,
                std::io::stdout().lock(),
            )));
        }
        let f = File::create(p)
            .with_context(|| format!("cannot create {}", p.display()))
            .map_err(runtime)?;
        Ok(Box::new(BufWriter::with_capacity(1 << 20, f)))
    };
    let mut out = create(&args.out)?;
    if args.zstd {
        let encoder = zstd::Encoder::new(out, 3)
            .context("cannot start zstd")
            .map_err(runtime)?;
        out = Box::new(encoder.auto_finish());
    }
    let mut labels = match &args.labels {
        Some(p) => Some(create(p)?),
        None => None,
    };
    let written = generator::generate(
        preset,
        args.seed,
        &overrides,
        &mut out,
        labels.as_mut().map(|l| l as &mut dyn Write),
    )
    .with_context(|| format!("cannot write {}", args.out.display()))
    .map_err(runtime)?;
    out.flush().map_err(|e| runtime(e.into()))?;
    drop(out);
    if let Some(mut l) = labels {
        l.flush().map_err(|e| runtime(e.into()))?;
    }
    eprintln!(
        "credtrail gen: wrote {} events ({} chains, {:.1} MB before compression, at most {} in flight) to {}",
        written.events,
        written.chains,
        written.bytes as f64 / 1e6,
        written.peak_in_flight,
        args.out.display()
    );
    Ok(())
}
