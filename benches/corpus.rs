//! The corpus harness: whole-process figures of `credtrail replay` with the real SigmaHQ corpus
//! on real public captures, side by side in one run with rsigma.
//!
//! ```sh
//! cargo bench --bench corpus -- [--slice windows|cloudtrail|whole|all-windows] [--events 200000]
//!     [--shards 1,2] [--runs 3] [--no-rsigma] [--data DIR] [--write-piece 1048576]
//! ```
//!
//! Per slice (default: the first three):
//!
//! - **rules**: every rule of `sigmahq-full/rules/<slice>` (all of `rules/` for `whole`; every
//!   folder of `sigmahq-full`, emerging threats, hunting, compliance and placeholders too, for
//!   `all-windows`) that credtrail loads, each file tried on its own first, copied into one
//!   folder both engines read; how many load is printed;
//! - **events**: the public captures of the slice (Windows and all-windows: the OTRF Sysmon,
//!   Security and PowerShell recordings; CloudTrail: invictus and the OTRF export; whole: both),
//!   each event ordered by its own time, then copied with every time shifted past the previous
//!   copy and its record id made unique, until there are at least `--events`; written
//!   `--write-piece` bytes at a time (1 MiB; 8192 gives a file the kernel caches in small pages,
//!   read back at under half the speed, see `copies::WRITE_PIECE`);
//! - **load**: each engine on an empty event file (the whole process: start, load, compile),
//!   three times per round, the median kept;
//! - then `--runs` rounds of credtrail with `--shards N --workers N` per N of `--shards`, and
//!   rsigma (`rsigma engine eval`, one thread) when it is on the PATH.
//!
//! It prints medians of events/s, CPU-seconds per million events, peak RSS, credtrail's
//! per-event latency (p50 / p99 / p99.9 of decode + match, from its summary), the load times,
//! and the ratios pair by pair. Events/s and ratios come twice: whole process (load included),
//! and after load (each run's wall time less its engine's empty-input wall time of the same
//! round), the figure issue tables quote for engines whose load differs. 2 + 2 against 1 + 1
//! comes a third time, by the replay's own clock (its summary's `events in`: first read to
//! last alert written), which a second process's load does not blur.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};

#[allow(dead_code)] // the bench writes with `write_copies_in`, its own piece size
#[path = "../tests/common/copies.rs"]
mod copies;
mod harness;
#[allow(dead_code)] // the benches use the root, not every helper
#[path = "../tests/common/public_data.rs"]
mod public_data;

use copies::{TIME_FIELDS, WRITE_PIECE, captures, write_copies_in};
use harness::{
    Series, after, count_lines, median, rate_after, ratio, ratio_after, ratio_engine, run,
};

struct Args {
    slices: Vec<String>,
    events: usize,
    shards: Vec<usize>,
    runs: usize,
    rsigma: bool,
    data: PathBuf,
    /// Bytes per write of the events file (how the kernel caches it; see `WRITE_PIECE`).
    write_piece: usize,
}

fn args() -> Args {
    let mut a = Args {
        slices: vec!["windows".into(), "cloudtrail".into(), "whole".into()],
        events: 200_000,
        shards: vec![1, 2],
        runs: 3,
        rsigma: true,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/corpus-harness"),
        write_piece: WRITE_PIECE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--slice" => a.slices = vec![v()],
            "--events" => a.events = v().parse().expect("--events N"),
            "--shards" => {
                a.shards = v()
                    .split(',')
                    .map(|s| s.parse().expect("--shards 1,2"))
                    .collect()
            }
            "--runs" => a.runs = v().parse().expect("--runs N"),
            "--data" => a.data = PathBuf::from(v()),
            "--no-rsigma" => a.rsigma = false,
            "--write-piece" => a.write_piece = v().parse().expect("--write-piece BYTES"),
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    a
}

/// Every `.yml` under `dir`, sorted.
fn rule_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rule_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml") {
            out.push(p);
        }
    }
    out.sort();
}

/// Copies the rules of `dir` that credtrail loads and compiles into `to`; (loaded, total).
fn loadable_rules(dir: &Path, to: &Path) -> (usize, usize) {
    let mut files = Vec::new();
    rule_files(dir, &mut files);
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("rules dir");
    let mut loaded = 0;
    for (i, f) in files.iter().enumerate() {
        let ok = sigma::load(std::slice::from_ref(f), &LoadOptions::default())
            .ok()
            .is_some_and(|c| matcher::compile(&c, &CompileOptions::default()).is_ok());
        if ok {
            let name = f.file_name().expect("a file").to_string_lossy();
            std::fs::copy(f, to.join(format!("{i:05}_{name}"))).expect("copy rule");
            loaded += 1;
        }
    }
    (loaded, files.len())
}

/// Runs of an empty input per round: a load is short, and one slow one (the kernel compacting
/// memory for huge pages, say) would be subtracted from every after-load figure of its round.
const LOAD_RUNS: usize = 3;

/// The run of median wall time of [`LOAD_RUNS`] runs of `f`.
fn median_run(mut f: impl FnMut() -> harness::Usage) -> harness::Usage {
    let mut runs: Vec<harness::Usage> = (0..LOAD_RUNS).map(|_| f()).collect();
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    runs.swap_remove(LOAD_RUNS / 2)
}

fn rsigma_cmd(rules: &Path, events: &Path) -> Command {
    let mut c = Command::new("rsigma");
    c.args(["engine", "eval", "-r"])
        .arg(rules)
        .arg("-e")
        .arg(format!("@{}", events.display()));
    for f in TIME_FIELDS {
        c.args(["--timestamp-field", f]);
    }
    c.args(["--output-format", "ndjson"]);
    c
}

fn main() {
    let a = args();
    let credtrail = env!("CARGO_BIN_EXE_credtrail");
    let shared = public_data::shared_root();
    std::fs::create_dir_all(&a.data).expect("data dir");
    let rsigma = harness::rsigma_available(a.rsigma);
    let mut report = BTreeMap::new();
    for slice in &a.slices {
        let (rule_dir, capture_dirs) = match slice.as_str() {
            "windows" => ("rules/windows", vec!["datasets/windows"]),
            "cloudtrail" => ("rules/cloud/aws", vec!["datasets/cloudtrail"]),
            "whole" => ("rules", vec!["datasets/windows", "datasets/cloudtrail"]),
            "all-windows" => ("", vec!["datasets/windows"]),
            other => panic!("unknown slice {other}: windows, cloudtrail, whole or all-windows"),
        };
        let rules = a.data.join(format!("rules-{slice}"));
        let (loaded, total) = loadable_rules(&shared.join("sigmahq-full").join(rule_dir), &rules);
        let events = a.data.join(format!("events-{slice}.jsonl"));
        let dirs: Vec<PathBuf> = capture_dirs.iter().map(|d| shared.join(d)).collect();
        let lines = write_copies_in(captures(&dirs), a.events, &events, a.write_piece) as f64;
        let bytes = std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0) as f64;
        assert_eq!(count_lines(&events) as f64, lines);
        let empty = a.data.join("empty.jsonl");
        std::fs::write(&empty, "").expect("empty file");
        let alerts = a.data.join("alerts.jsonl");
        let dead = a.data.join("dead-letter.jsonl");
        let replay = |events: &Path, n: usize| {
            let mut c = Command::new(credtrail);
            c.arg("replay")
                .arg(events)
                .arg("--rules")
                .arg(&rules)
                .args(["--shards", &n.to_string(), "--workers", &n.to_string()])
                .args(["--lateness", "1h"])
                .arg("--out")
                .arg(&alerts)
                .arg("--dead-letter")
                .arg(&dead);
            c
        };
        let mut load = Series::new("credtrail load (empty input)".into());
        let mut peer_load = Series::new("rsigma load (empty input)".into());
        let mut replays: Vec<Series> = a
            .shards
            .iter()
            .map(|n| Series::new(format!("credtrail replay, {n} shard(s) + {n} worker(s)")))
            .collect();
        let mut peer = Series::new("rsigma engine eval (1 thread)".into());
        for round in 0..a.runs {
            eprintln!("{slice}: round {} of {}", round + 1, a.runs);
            load.usage
                .push(median_run(|| run(&mut replay(&empty, 1)).0));
            for (i, n) in a.shards.iter().enumerate() {
                let (u, err) = run(&mut replay(&events, *n));
                let s = &mut replays[i];
                s.usage.push(u);
                s.p50.extend(after(&err, "p50"));
                s.p99.extend(after(&err, "p99"));
                s.p999.extend(after(&err, "p99.9"));
                s.engine.extend(after(&err, "events in"));
                s.alerts = after(&err, "alerts:").unwrap_or(f64::NAN);
            }
            if rsigma {
                peer_load
                    .usage
                    .push(median_run(|| run(&mut rsigma_cmd(&rules, &empty)).0));
                peer.usage.push(run(&mut rsigma_cmd(&rules, &events)).0);
            }
        }
        let mut text = format!(
            "{slice}: {loaded} of {total} SigmaHQ rules load; {lines} events, {:.0} B/event, {} runs, medians\n",
            bytes / lines,
            a.runs
        );
        text += &format!(
            "{:<46} {:>10} {:>12} {:>13} {:>10} {:>26}\n",
            "", "events/s", "after load", "CPU-s / M ev", "peak RSS", "latency p50/p99/p99.9 us"
        );
        let mut all: Vec<(&Series, &Series)> = replays.iter().map(|s| (s, &load)).collect();
        if rsigma {
            all.push((&peer, &peer_load));
        }
        for (s, its_load) in &all {
            let lat = if s.p50.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    median(s.p50.clone()),
                    median(s.p99.clone()),
                    median(s.p999.clone())
                )
            };
            text += &format!(
                "{:<46} {:>10.0} {:>12.0} {:>13.2} {:>7.1} MB {:>26}\n",
                s.name,
                median(s.rate(lines)),
                median(rate_after(s, its_load, lines)),
                median(s.usage.iter().map(|u| u.cpu / lines * 1e6).collect()),
                median(
                    s.usage
                        .iter()
                        .map(|u| u.max_rss_kb as f64 / 1024.0)
                        .collect()
                ),
                lat
            );
        }
        text += &format!(
            "(peak RSS is floored by the harness's own {:.1} MB at each spawn)\n",
            harness::own_rss_kb() as f64 / 1024.0
        );
        let wall = |s: &Series| median(s.usage.iter().map(|u| u.wall).collect());
        text += &format!("load, whole process: credtrail {:.2} s", wall(&load));
        if rsigma {
            text += &format!(", rsigma {:.2} s", wall(&peer_load));
        }
        text += "\n";
        for s in &replays {
            text += &format!("{}: {:.0} alerts\n", s.name, s.alerts);
            if rsigma {
                text += &format!(
                    "  throughput / rsigma: whole process {:.2}; after load {:.2}\n",
                    ratio(s, &peer),
                    ratio_after(s, &load, &peer, &peer_load)
                );
            }
        }
        if replays.len() >= 2 {
            text += &format!(
                "{} + {} / {} + {}: whole process {:.2}; after load {:.2}; engine clock {:.2}\n",
                a.shards[1],
                a.shards[1],
                a.shards[0],
                a.shards[0],
                ratio(&replays[1], &replays[0]),
                ratio_after(&replays[1], &load, &replays[0], &load),
                ratio_engine(&replays[1], &replays[0])
            );
        }
        eprintln!("{text}");
        report.insert(slice.clone(), text);
    }
    println!();
    for text in report.values() {
        println!("{text}");
    }
}
