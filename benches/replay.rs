//! The replay harness: whole-process figures of `credtrail replay` on the W500 workload, side by
//! side in one run with the parse-only limit and with rsigma.
//!
//! ```sh
//! cargo bench --bench replay -- [--events 2000000] [--identities 100000] [--zipf 1.1]
//!     [--rules 100] [--shards 1,2] [--runs 5] [--seed 7] [--no-rsigma] [--data DIR]
//! ```
//!
//! It generates the W500 events, labels and rule set once per shape (cached under `--data`,
//! `target/replay-harness` by default), then runs, in turn and `--runs` times each:
//!
//! - **parse-only**: this program reading the same file with credtrail's reader and parsing every
//!   line into a simd-json tape on one thread, nothing else (the limit a replay can reach);
//! - **credtrail replay** with `--shards N --workers N` for each N of `--shards` (threads: one
//!   reader, N decode-and-match workers, the sequencer, N shards, one writer);
//! - **rsigma** (`rsigma engine eval`, single-threaded) with the same rules and events, when
//!   `rsigma` is on the PATH (else it says so and skips).
//!
//! Each child is timed by the operating system (`wait4`: wall, user and system CPU, peak RSS).
//! It prints medians of events/s, CPU-seconds per million events, peak RSS, credtrail's
//! per-event engine latency (p50 / p99 / p99.9 of decode + match, from its summary), identities
//! in state, and the ratios pair by pair (run i against run i), so drift of a shared machine
//! cancels out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use credtrail::input::{self, Batch, LineBatcher, ReadLimits};

mod harness;
use harness::{Series, after, count_lines, median, run};

struct Args {
    events: u64,
    identities: u64,
    zipf: Option<f64>,
    rules: usize,
    shards: Vec<usize>,
    runs: usize,
    seed: u64,
    rsigma: bool,
    data: PathBuf,
    parse_only: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        events: 2_000_000,
        identities: 100_000,
        zipf: None,
        rules: 100,
        shards: vec![1, 2],
        runs: 5,
        seed: 7,
        rsigma: true,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/replay-harness"),
        parse_only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--events" => a.events = v().parse().expect("--events N"),
            "--identities" => a.identities = v().parse().expect("--identities N"),
            "--zipf" => a.zipf = Some(v().parse().expect("--zipf S")),
            "--rules" => a.rules = v().parse().expect("--rules N"),
            "--shards" => {
                a.shards = v()
                    .split(',')
                    .map(|s| s.parse().expect("--shards 1,2"))
                    .collect()
            }
            "--runs" => a.runs = v().parse().expect("--runs N"),
            "--seed" => a.seed = v().parse().expect("--seed N"),
            "--data" => a.data = PathBuf::from(v()),
            "--no-rsigma" => a.rsigma = false,
            "--parse-only" => a.parse_only = Some(PathBuf::from(v())),
            // `cargo bench` passes `--bench`; filters are not used here.
            _ => {}
        }
    }
    a
}

/// The child mode: read `path` as a replay does and parse every line, nothing more.
fn parse_only(path: &Path) {
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(4);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<Batch>(8);
    let path2 = path.to_path_buf();
    let reader = std::thread::spawn(move || {
        let r = input::open(&path2, Arc::new(AtomicU64::new(0))).expect("open");
        let mut lines = LineBatcher::new(r, 0, path2.clone(), ReadLimits::default());
        loop {
            let mut batch = back_rx.try_recv().unwrap_or_default();
            if !lines.next_batch(&mut batch).expect("read") {
                break;
            }
            let last = batch.source_done;
            if tx.send(batch).is_err() || last {
                break;
            }
        }
    });
    let mut buffers = simd_json::Buffers::new(4096);
    let mut tape = simd_json::Tape::null().reset();
    let mut scratch: Vec<u8> = Vec::with_capacity(4096);
    let (mut ok, mut values) = (0u64, 0u64);
    for batch in rx.iter() {
        for i in 0..batch.lines.len() {
            let raw = batch.line(i);
            scratch.clear();
            scratch.extend_from_slice(raw);
            scratch.resize(raw.len() + simd_json::INPUT_PADDING, b' ');
            if simd_json::fill_tape_padded(&mut scratch, raw.len(), &mut buffers, &mut tape).is_ok()
            {
                ok += 1;
                values += tape.0.len() as u64;
            }
            tape = tape.reset();
        }
        let _ = back_tx.try_send(batch);
    }
    reader.join().expect("reader");
    eprintln!("parse-only: {ok} events, {values} values");
}

fn main() {
    let a = args();
    if let Some(p) = &a.parse_only {
        parse_only(p);
        return;
    }
    let credtrail = env!("CARGO_BIN_EXE_credtrail");
    std::fs::create_dir_all(&a.data).expect("data dir");
    let zipf = a.zipf.map(|z| format!("-z{z}")).unwrap_or_default();
    let stem = format!("w500-{}-{}{zipf}-s{}", a.events, a.identities, a.seed);
    let events = a.data.join(format!("{stem}.jsonl"));
    let rules = a.data.join(format!("rules-{}-s{}", a.rules, a.seed));
    if !events.exists() || !rules.exists() {
        let mut generate = Command::new(credtrail);
        generate
            .args(["gen", "--preset", "w500", "--seed", &a.seed.to_string()])
            .args([
                "--events",
                &a.events.to_string(),
                "--identities",
                &a.identities.to_string(),
            ])
            .args(["--rule-count", &a.rules.to_string()])
            .arg("--out")
            .arg(&events)
            .arg("--labels")
            .arg(a.data.join(format!("{stem}.labels.jsonl")))
            .arg("--rules-out")
            .arg(&rules);
        if let Some(z) = a.zipf {
            generate.args(["--zipf", &z.to_string()]);
        }
        eprintln!("generating {}", events.display());
        run(&mut generate);
    }
    let bytes = std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0);
    // Counted in a stream: reading the file whole would inflate every child's peak RSS, which
    // `wait4` reports including the image forked from this process before `exec`.
    let lines = count_lines(&events) as f64;
    let rsigma = harness::rsigma_available(a.rsigma);
    let this = std::env::current_exe().expect("current exe");
    let mut parse = Series::new("parse-only (reader + simd-json, 1 thread)".into());
    let mut replays: Vec<Series> = a
        .shards
        .iter()
        .map(|n| Series::new(format!("credtrail replay, {n} shard(s) + {n} worker(s)")))
        .collect();
    let mut peer = Series::new("rsigma engine eval (1 thread)".into());
    let alerts_path = a.data.join("alerts.jsonl");
    let dead = a.data.join("dead-letter.jsonl");
    for round in 0..a.runs {
        eprintln!("round {} of {}", round + 1, a.runs);
        let (u, _) = run(Command::new(&this).arg("--parse-only").arg(&events));
        parse.usage.push(u);
        for (i, n) in a.shards.iter().enumerate() {
            let (u, err) = run(Command::new(credtrail)
                .arg("replay")
                .arg(&events)
                .arg("--rules")
                .arg(&rules)
                .args(["--shards", &n.to_string(), "--workers", &n.to_string()])
                .arg("--out")
                .arg(&alerts_path)
                .arg("--dead-letter")
                .arg(&dead));
            let s = &mut replays[i];
            s.usage.push(u);
            s.p50.extend(after(&err, "p50"));
            s.p99.extend(after(&err, "p99"));
            s.p999.extend(after(&err, "p99.9"));
            s.states = after(&err, "identities in state at end of input:").unwrap_or(f64::NAN);
            s.state_kb = after(&err, "(~").unwrap_or(f64::NAN);
            s.alerts = after(&err, "alerts:").unwrap_or(f64::NAN);
        }
        if rsigma {
            let (u, err) = run(Command::new("rsigma")
                .args(["engine", "eval", "-r"])
                .arg(&rules)
                .arg("-e")
                .arg(format!("@{}", events.display()))
                .args([
                    "--timestamp-field",
                    "eventTime",
                    "--timestamp-field",
                    "@timestamp",
                ])
                .args(["--no-detections", "--output-format", "ndjson"]));
            peer.usage.push(u);
            peer.alerts = after(&err, "detection matches,").unwrap_or(f64::NAN);
        }
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "\nW500 replay harness: {lines} events, {mb:.0} MB ({:.0} B/event), {} identities per source, {} rules, {} runs, medians",
        bytes as f64 / lines.max(1.0),
        a.identities,
        a.rules,
        a.runs
    );
    println!(
        "{:<48} {:>12} {:>9} {:>14} {:>10} {:>26}",
        "", "events/s", "MB/s", "CPU-s / M ev", "peak RSS", "latency p50/p99/p99.9 us"
    );
    let mut all: Vec<&Series> = vec![&parse];
    all.extend(replays.iter());
    if rsigma {
        all.push(&peer);
    }
    for s in &all {
        let rate = median(s.rate(lines));
        let cpu = median(s.usage.iter().map(|u| u.cpu / lines * 1e6).collect());
        let rss = median(
            s.usage
                .iter()
                .map(|u| u.max_rss_kb as f64 / 1024.0)
                .collect(),
        );
        let lat = if s.p50.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{:.2} / {:.2} / {:.2}",
                median(s.p50.clone()),
                median(s.p99.clone()),
                median(s.p999.clone())
            )
        };
        println!(
            "{:<48} {:>12.0} {:>9.1} {:>14.2} {:>8.1} MB {:>26}",
            s.name,
            rate,
            rate * bytes as f64 / lines / 1e6,
            cpu,
            rss,
            lat
        );
    }
    let ratio = |x: &Series, y: &Series| {
        median(
            x.usage
                .iter()
                .zip(&y.usage)
                .map(|(a, b)| b.wall / a.wall)
                .collect(),
        )
    };
    println!();
    for s in &replays {
        println!(
            "{}: {:.0} alerts, {:.0} identities in state at end (~{:.0} B each)",
            s.name,
            s.alerts,
            s.states,
            s.state_kb * 1024.0 / s.states.max(1.0)
        );
        println!("  throughput / parse-only: {:.2}", ratio(s, &parse));
        if rsigma {
            println!("  throughput / rsigma: {:.2}", ratio(s, &peer));
        }
    }
    if replays.len() >= 2 {
        println!(
            "{} shards / {} shard: {:.2}",
            a.shards[1],
            a.shards[0],
            ratio(&replays[1], &replays[0])
        );
    }
    if rsigma {
        println!("rsigma: {:.0} correlation alerts", peer.alerts);
    }
}
