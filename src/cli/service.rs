//! `credtrail run` and `credtrail config {check,print}`: the service's command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use credtrail::config::{self, LogFormat, ServiceConfig};
use credtrail::inventory::Inventory;
use credtrail::metrics::{self, Metrics};
use credtrail::score::{Assessor, ScoreConfig};
use credtrail::service::{self, Control, reload};

use crate::{Failure, bad_input, runtime};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The service's config file (TOML); `CREDTRAIL_*` variables override it.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
}

#[derive(clap::Subcommand)]
enum ConfigAction {
    /// Validate the config and compile the rules it names; exit 2 on the first problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the effective config (file, environment, defaults) with secrets masked.
    Print {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(path: &std::path::Path) -> Result<(ServiceConfig, config::LoadNotes), Failure> {
    config::load(path, std::env::vars()).map_err(|e| bad_input(e.into()))
}

fn compile(config: &ServiceConfig) -> Result<credtrail::matcher::RuleSet, Failure> {
    reload::compile_rules(config).map_err(|e| {
        if let reload::ReloadError::Rules(errors) = &e {
            for err in &errors.0 {
                eprintln!("credtrail: rule error: {err}");
            }
        }
        bad_input(e.into())
    })
}

/// The scorer from `[scoring]`: the inventory file, weights, machine speed, escalation.
fn assessor(config: &ServiceConfig) -> Result<Assessor, Failure> {
    let s = &config.scoring;
    let inventory = match &s.inventory {
        None => None,
        Some(p) => Some(Arc::new(
            Inventory::load(p).map_err(|e| bad_input(e.into()))?,
        )),
    };
    Ok(Assessor {
        inventory,
        config: ScoreConfig {
            weights: s.weights,
            machine_speed_gap: s.machine_speed,
        },
        escalate_at: s.escalate_at,
    })
}

pub fn config_command(args: ConfigArgs) -> Result<(), Failure> {
    match args.action {
        ConfigAction::Check { config } => {
            let (c, notes) = load(&config)?;
            for name in &notes.unknown_env {
                eprintln!("credtrail: warning: environment variable {name} names no setting");
            }
            let rules = compile(&c)?;
            assessor(&c)?;
            println!(
                "{}: ok ({} input topic(s), {} detection(s), {} correlation(s))",
                config.display(),
                c.inputs.len(),
                rules.detections.len(),
                rules.correlations.len()
            );
            Ok(())
        }
        ConfigAction::Print { config } => {
            let (c, _) = load(&config)?;
            print!("{}", c.to_masked_toml());
            Ok(())
        }
    }
}

fn init_logging(c: &ServiceConfig) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::try_new(&c.log.level)
        .with_context(|| format!("log.level `{}`", c.log.level))
        .map_err(bad_input)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match c.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| runtime(anyhow::anyhow!("cannot set up logging: {e}")))
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let (c, notes) = load(&args.config)?;
    init_logging(&c)?;
    for name in &notes.unknown_env {
        tracing::warn!(variable = %name, "environment variable names no setting");
    }
    let rules = Arc::new(compile(&c)?);
    let assessor = Arc::new(assessor(&c)?);
    let metrics = Metrics::new();
    let control = Control::new();
    let mut listeners = Vec::new();
    for (addr, paths) in [
        (c.metrics.listen, metrics::Paths::All),
        (c.metrics.probes_listen, metrics::Paths::Probes),
    ] {
        if let Some(addr) = addr {
            let l = metrics::bind(addr).map_err(|e| bad_input(e.into()))?;
            listeners.push((l, paths));
        }
    }
    let limits = metrics::EndpointLimits {
        header_read_timeout: c.metrics.header_read_timeout,
        max_connections: c.metrics.max_connections,
    };
    let (stop_http, stop_rx) = tokio::sync::watch::channel(false);
    let reloader = reload::Reloader::new(c.clone());
    let supervisor = {
        let (metrics, control) = (metrics.clone(), control.clone());
        std::thread::Builder::new()
            .name("credtrail-control".into())
            .spawn(move || supervise(listeners, limits, metrics, control, reloader, stop_rx))
            .context("cannot start the control thread")
            .map_err(runtime)?
    };
    {
        let (metrics, control) = (metrics.clone(), control.clone());
        let deadline = c.shutdown.deadline;
        std::thread::Builder::new()
            .name("credtrail-watchdog".into())
            .spawn(move || watchdog(&control, &metrics, deadline))
            .context("cannot start the watchdog thread")
            .map_err(runtime)?;
    }
    tracing::info!(
        inputs = c.inputs.len(),
        detections = rules.detections.len(),
        correlations = rules.correlations.len(),
        "credtrail run starting"
    );
    let result = service::run(&c, rules, assessor, metrics, &control);
    let _ = stop_http.send(true);
    let _ = supervisor.join();
    match result {
        Ok(report) => {
            tracing::info!(
                events = report.events,
                alerts = report.alerts_delivered,
                suppressed = report.alerts_suppressed,
                dead_letters = report.dead_letters,
                "credtrail run stopped"
            );
            Ok(())
        }
        Err(e) => Err(runtime(e.into())),
    }
}

/// Time the shutdown may take past its deadline before the process exits regardless.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The shutdown deadline, enforced by exiting: once a stop is asked for (or the service found
/// itself failed), the process exits with an error at the deadline plus [`SHUTDOWN_GRACE`]
/// even if a thread is stuck (the engine's scoped threads would otherwise hold the exit
/// forever). A shutdown that finishes in time returns from `main` first.
fn watchdog(control: &Control, metrics: &Metrics, deadline: Duration) {
    overrun(control, metrics, deadline + SHUTDOWN_GRACE);
    tracing::error!(
        ?deadline,
        "shutdown did not finish within its deadline: exiting without waiting for stuck threads"
    );
    eprintln!("credtrail: error: shutdown did not finish within {deadline:?}; exiting");
    std::process::exit(1);
}

/// Returns once a stop was asked for (or the service found itself failed) and `allowed` has
/// passed since: the moment the watchdog gives up on the shutdown.
fn overrun(control: &Control, metrics: &Metrics, allowed: Duration) {
    while !control.stopping() && !metrics.failed.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(allowed);
}

/// The control thread: signals and the metrics endpoint, on one current-thread runtime.
fn supervise(
    listeners: Vec<(std::net::TcpListener, metrics::Paths)>,
    limits: metrics::EndpointLimits,
    metrics: Arc<Metrics>,
    control: Control,
    mut reloader: reload::Reloader,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the control runtime; stopping");
            control.stop();
            return;
        }
    };
    rt.block_on(async move {
        for (l, paths) in listeners {
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => {
                    let serve = metrics::serve(l, metrics.clone(), stop.clone(), limits, paths);
                    tokio::task::spawn(serve);
                }
                Err(e) => tracing::error!(error = %e, "cannot serve metrics"),
            }
        }
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            control.stop();
            return;
        };
        // With `rules.watch` off the tick still runs, rarely, and does nothing.
        let watch = reloader.watch_interval();
        let mut tick = tokio::time::interval(watch.unwrap_or(Duration::from_secs(3600)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Compiling blocks this thread (and the metrics endpoint) for the load's duration.
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); control.stop(); }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); control.stop(); }
                _ = hup.recv() => { reloader.reload("SIGHUP", &control, &metrics); }
                _ = tick.tick() => {
                    if watch.is_some() && reloader.changed() {
                        reloader.reload("rule files changed", &control, &metrics);
                    }
                }
                _ = stop.changed() => break,
            }
        }
        // Let in-flight scrapes finish.
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::*;

    /// Starts `overrun` on its own thread; the receiver hears when it gave up.
    fn watch(
        control: &Control,
        metrics: &Arc<Metrics>,
        allowed: Duration,
    ) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (control, metrics) = (control.clone(), metrics.clone());
        std::thread::spawn(move || {
            overrun(&control, &metrics, allowed);
            let _ = tx.send(());
        });
        rx
    }

    #[test]
    fn the_watchdog_waits_for_a_stop_then_gives_the_shutdown_its_deadline_and_no_more() {
        let (control, metrics) = (Control::new(), Metrics::new());
        let gave_up = watch(&control, &metrics, Duration::from_millis(300));
        assert!(
            gave_up.recv_timeout(Duration::from_millis(500)).is_err(),
            "gave up with no stop asked for"
        );
        let asked = Instant::now();
        control.stop();
        gave_up
            .recv_timeout(Duration::from_secs(10))
            .expect("the watchdog never gave up on a stuck shutdown");
        let waited = asked.elapsed();
        assert!(
            waited >= Duration::from_millis(300),
            "gave up after {waited:?}, before the deadline"
        );
    }

    #[test]
    fn a_failed_service_starts_the_watchdog_without_a_stop() {
        let (control, metrics) = (Control::new(), Metrics::new());
        let gave_up = watch(&control, &metrics, Duration::from_millis(100));
        metrics.failed.store(true, Ordering::Relaxed);
        gave_up
            .recv_timeout(Duration::from_secs(10))
            .expect("a failure did not arm the watchdog");
    }
}
