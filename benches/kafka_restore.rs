//! Restore after SIGKILL through Kafka: how long a cluster's stage 2 takes to hold N
//! identities' chains in flight again after its process was killed, restored from the state
//! changelog or rebuilt by replaying the hits topic (`[cluster] changelog = false`). Whole
//! `credtrail run` processes (the bench build of the binary) on a tansu broker in memory;
//! `benches/restore.rs` measures the engine's part alone.
//!
//! The input: per identity a GetSecretValue then, a second later, a ListUsers (CloudTrail lines
//! shaped like the demo's, a distinct `userIdentity.arn` and unique event ids), in time order
//! within the last hour, round-robin over 6 partitions, one record per batch (tansu 0.6 answers
//! a fetch that resumes inside a batch with the next batch, see `tests/broker/mod.rs`), then one
//! event per partition a minute past the data so every partition's watermark passes it. The
//! rule is `benches/restore.rs`'s three-stage `temporal_ordered` chain grouped by
//! `userIdentity.arn`, so every identity holds one live state two steps into it. The idle
//! timeout is an hour: a quiet partition would otherwise let event time follow the wall clock
//! and close every chain.
//!
//! A run starts its own broker (unless `CREDTRAIL_TEST_BROKER` names one), topics and group,
//! and reads every process through its `/metrics`:
//!
//! 1. **build**: P1 runs stages 1 and 2 until stage 2 holds N states and has read the whole
//!    hits topic, and its changelog has stopped moving and reads back whole (every record and
//!    marker P1 sent, each partition ending in a marker); two commit intervals later, SIGKILL.
//! 2. **snapshot**: P2, the same config: from spawn until stage 2 holds N states at P1's
//!    watermark (restored from the changelog, then reading the hits topic on from the marker's
//!    end); SIGKILL.
//! 3. **replay-only**: P3, the same config with `changelog = false`, in the same group: from
//!    spawn until stage 2 holds N states at P1's watermark (the hits topic replayed from the
//!    committed offsets, held back to the oldest event a live state needs); SIGKILL.
//!
//! Steps 2 and 3 run BENCH_RESTARTS times per run (default 1), which goes first alternating.
//! Each starts from what P1 left: a process killed without a drain adds nothing the next one
//! needs (P3 writes no changelog; P2's commits and markers hold P1's state again), and the
//! restored count is checked every time. Each process is started 10 s after the one before it
//! was killed, once the killed member's session (6 s) has ended (see [`AFTER_KILL`]). The
//! times run from spawn: process start, two group joins, the changelog read, the restore or the
//! replay; the time to stage 2's assignment is shown apart.
//!
//! `cargo bench --bench kafka_restore` (BENCH_IDENTITIES for N, default 1,000,000; BENCH_RUNS,
//! default 3; BENCH_RESTARTS, default 1; BENCH_DEBUG_KAFKA=1 adds librdkafka's group and
//! producer debug to the process logs). Needs `tansu` as the Kafka tests do, or a broker in
//! `CREDTRAIL_TEST_BROKER` (`deploy/local-broker.sh -- cargo bench --bench kafka_restore`).
//! Logs and configs stay in `target/kafka-restore/`. P1 builds about 500 identities a second
//! on tansu (its hits producer, one record per batch, is the bottleneck): 20,000 take a
//! minute a run, 200,000 nine minutes. 1,000,000 did not build on tansu 0.6 in memory: its
//! fetch lists every object (batch) of the partition, so reading slows as a partition grows
//! (85 hits a second past 400,000 on 4 partitions); see BENCHMARKS.md.

#[path = "kafka_restore/input.rs"]
mod input;
#[path = "kafka_restore/process.rs"]
mod process;

#[path = "../tests/broker/mod.rs"]
mod broker;
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use input::{Names, RULES, config_text, produce};
use process::{Process, Sample, broker_rss_mib, free_port, read_changelog};

/// Input partitions (BENCH_INPUT_PARTITIONS, default 6). tansu 0.6 in memory lists every
/// object of a partition to answer a fetch, and a one-record batch is an object: a fetch costs
/// the partition's length, so a million identities need more partitions to be built in time.
fn input_partitions() -> i32 {
    env_usize("BENCH_INPUT_PARTITIONS", 6) as i32
}

/// Hits (and changelog) partitions (BENCH_HIT_PARTITIONS, default 4).
fn hit_partitions() -> i32 {
    env_usize("BENCH_HIT_PARTITIONS", 4) as i32
}
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// The consumers' `session.timeout.ms`.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// How long a killed process's group members are given to expire before the next process
/// starts. tansu 0.6 completes a join with a dead member as the group's leader and, when that
/// leader never syncs, answers the live member's SyncGroup after 3 s with an empty assignment
/// and no error; the group then stays in that generation (heartbeats succeed) and the new
/// process holds no partitions for good. Starting after the dead members' sessions ended
/// avoids it.
const AFTER_KILL: Duration = Duration::from_secs(10);
/// How long a restarted process's state count and records read must stay put, once it has read
/// nearly the hits P1 read, to count as done short of N (records lost on the broker, see
/// `input::batched`).
const SETTLED: Duration = Duration::from_secs(5);
/// The producers' queue (`queue.buffering.max.messages`; librdkafka's default is 100,000).
/// One record per batch, tansu takes about a thousand records a second from the idempotent
/// producers; stage 1 reads its input far faster and flushes the hits it queued at each
/// barrier within 30 s, so with the default queue its flush times out and the service stops
/// ("stage 1 cannot write its records"). A short queue holds stage 1 back instead.
const PRODUCER_QUEUE: usize = 1_000;

const STATES: &str = "credtrail_state_groups{stage=\"correlate\"}";
const WATERMARK: &str = "credtrail_watermark_milliseconds{stage=\"correlate\"}";
const ASSIGNED: &str = "credtrail_partitions_assigned{stage=\"correlate\"}";
const EVENTS: &str = "credtrail_events_total";
const RECORDS_IN: &str = "credtrail_cluster_records_in_total";
const CHANGELOG_RECORDS: &str = "credtrail_changelog_records_total";
const MARKERS: &str = "credtrail_changelog_markers_total";
const RESTORES: &str = "credtrail_changelog_restores_total";
const RESTORED: &str = "credtrail_changelog_restored_states_total";
const SKIPPED: &str = "credtrail_changelog_skipped_records_total";
const UNUSABLE: &str = "credtrail_changelog_unusable_total";
const ALERTS: &str = "credtrail_alerts_total";
const LATE: &str = "credtrail_late_events_total";
const DEAD_LETTERS: &str = "credtrail_dead_letters_total";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one restart (P2 or P3) gave.
#[derive(Clone, Debug, Default)]
struct Restart {
    /// From spawn until stage 2 held N states at P1's watermark.
    total: Duration,
    /// From spawn until stage 2's partitions were assigned (the changelog read included).
    assigned: Duration,
    /// The changelog read on assignment, by the process's log.
    changelog_read_ms: Option<u64>,
    states: u64,
    restores: u64,
    restored: u64,
    skipped: u64,
    unusable: u64,
    /// Hits-topic records stage 2 read.
    records_in: u64,
    peak_rss_mib: f64,
}

/// Starts a process in place of P1 and waits until stage 2 is back where P1 was.
fn restart(
    config: &str,
    dir: &Path,
    name: &str,
    port: u16,
    n: u64,
    hits: u64,
    watermark: f64,
    limit: Duration,
) -> Restart {
    std::thread::sleep(AFTER_KILL);
    let mut p = Process::spawn(config, dir, name, port);
    let (assigned, _) = p.wait("assigned its hits partitions", limit, |s| {
        s.get(ASSIGNED) > 0.0
    });
    // Done at N states at P1's watermark; or, should records be lost on the way (tansu and
    // batches, see `input::batched`), once the whole hits topic was read at that watermark and
    // the state count has not moved for SETTLED: then the time it last moved, with a warning.
    let spawned = p.spawned;
    let (mut last, mut changed_at) = ((-1.0, -1.0), Duration::ZERO);
    let (reached, s) = p.wait(
        &format!("holding {n} states at watermark {watermark}"),
        limit,
        |s| {
            let (states, read) = (s.get(STATES), s.get(RECORDS_IN));
            if (states, read) != last {
                (last, changed_at) = ((states, read), spawned.elapsed());
            }
            let at_mark = s.get(WATERMARK) >= watermark;
            // Nearly all of what P1 read, and neither the states nor the records read moved.
            let settled = read >= 0.99 * hits as f64 && spawned.elapsed() >= changed_at + SETTLED;
            at_mark && (states >= n as f64 || settled)
        },
    );
    let total = if s.get(STATES) >= n as f64 {
        reached
    } else {
        changed_at
    };
    let r = Restart {
        total,
        assigned,
        changelog_read_ms: (p.log_events("changelog read").iter())
            .filter_map(|v| v["fields"]["ms"].as_u64())
            .max(),
        states: s.get(STATES) as u64,
        restores: s.get(RESTORES) as u64,
        restored: s.get(RESTORED) as u64,
        skipped: s.get(SKIPPED) as u64,
        unusable: s.get(UNUSABLE) as u64,
        records_in: s.get(RECORDS_IN) as u64,
        peak_rss_mib: p.peak_rss_mib(),
    };
    if s.get(ALERTS) > 0.0 || r.states != n {
        eprintln!(
            "WARNING {name}: {} states, {} alerts (N states and no alert expected)",
            r.states,
            s.get(ALERTS)
        );
    }
    p.kill();
    r
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
struct Outcome {
    produce: Duration,
    /// P1: from spawn until stage 2 held N states and had read the whole hits topic.
    build: Duration,
    /// P1: from spawn until its last changelog record or marker was sent (all of them were
    /// found on the topic before P1 was killed).
    delivered: Duration,
    build_rss_mib: f64,
    hits_records: u64,
    /// Records P1 wrote to the changelog (state records and tombstones).
    changelog_records: u64,
    /// Bytes of the state records on the changelog topic.
    changelog_bytes: u64,
    markers: u64,
    snapshot: Restart,
    replay: Restart,
    broker_rss_mib: Option<f64>,
}

/// One run: a fresh broker, topics and P1, then `restarts` pairs of snapshot and replay-only
/// processes from what P1 left, each pair one outcome.
fn run(rules: &Path, out: &Path, n: usize, round: usize, restarts: usize) -> Vec<Outcome> {
    // A broker per run (unless CREDTRAIL_TEST_BROKER names one): tansu keeps every topic in
    // memory, so a run does not start on what the runs before it left.
    let b = broker::broker();
    let addr = b.addr.as_str();
    let t = Names::new();
    t.create(addr);
    let dir = out.join(format!("run-{}", round + 1));
    std::fs::create_dir_all(&dir).expect("run dir");
    let started = Instant::now();
    produce(addr, &t.input, n);
    let produce_time = started.elapsed();
    eprintln!(
        "run {}: produced {} events in {produce_time:.1?}",
        round + 1,
        2 * n
    );
    let n64 = n as u64;
    // Generous bounds for each wait: a minute and a half plus 5 ms per identity (P1 builds
    // about 500 identities a second on tansu).
    let limit = Duration::from_secs(90) + Duration::from_micros(5_000 * n64);

    // P1: build the state.
    let port = free_port();
    let mut p1 = Process::spawn(
        &config_text(addr, &t, rules, port, true),
        &dir,
        "p1-build",
        port,
    );
    let events = (2 * n + input_partitions() as usize) as f64;
    p1.wait("done reading the input", limit, |s| s.get(EVENTS) >= events);
    p1.wait(&format!("holding {n} states"), limit, |s| {
        s.get(STATES) >= n64 as f64
    });
    // The whole hits topic read: the records read reach the topic's end as it was before the
    // sample (stage 1 may add stamps after).
    let deadline = Instant::now() + limit;
    let (build, sample) = loop {
        let end: i64 = broker::end_offsets(addr, &t.hits, hit_partitions())
            .iter()
            .sum();
        let (at, s) = p1.wait("answering", limit, |_| true);
        if s.get(RECORDS_IN) >= end as f64 {
            break (at, s);
        }
        assert!(
            Instant::now() < deadline,
            "p1: {} of {end} hits records read within {limit:?}",
            s.get(RECORDS_IN)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The changelog written: no record or marker sent for three commit intervals (a marker
    // follows a barrier's records, and none is written for a partition that did not move);
    // then read back, it holds every record and marker sent (the counters count sends, not
    // acknowledgements) and each partition ends in a marker.
    let written = |s: &Sample| (s.get(CHANGELOG_RECORDS) as u64, s.get(MARKERS) as u64);
    let (mut last, mut since, mut written_at) = (written(&sample), Instant::now(), build);
    let deadline = Instant::now() + limit;
    let (delivered, changelog) = loop {
        let (at, s) = p1.wait("answering", limit, |_| true);
        if written(&s) != last {
            (last, since, written_at) = (written(&s), Instant::now(), at);
        } else if since.elapsed() >= 3 * COMMIT_INTERVAL {
            let c = read_changelog(addr, &t.changelog, limit);
            if (c.records, c.markers) == last && c.ending_in_marker == hit_partitions() as usize {
                break (written_at, c);
            }
            eprintln!(
                "run {}: the changelog holds {c:?}, P1 sent {last:?} (records, markers); reading again",
                round + 1
            );
            since = Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "p1: the changelog not written and delivered within {limit:?}: {last:?} (records, markers) sent"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(2 * COMMIT_INTERVAL);
    let s = p1.wait("answering", limit, |_| true).1;
    let watermark = s.get(WATERMARK);
    let build_rss_mib = p1.peak_rss_mib();
    if s.get(LATE) > 0.0 || s.sum(DEAD_LETTERS) > 0.0 || s.get(ALERTS) > 0.0 {
        eprintln!(
            "WARNING p1: {} late events, {} dead letters, {} alerts",
            s.get(LATE),
            s.sum(DEAD_LETTERS),
            s.get(ALERTS)
        );
    }
    let outcome = Outcome {
        produce: produce_time,
        build,
        delivered,
        build_rss_mib,
        hits_records: s.get(RECORDS_IN) as u64,
        changelog_records: s.get(CHANGELOG_RECORDS) as u64,
        markers: s.get(MARKERS) as u64,
        changelog_bytes: changelog.state_bytes,
        broker_rss_mib: broker_rss_mib(addr),
        ..Outcome::default()
    };
    assert_eq!(s.get(STATES) as u64, n64, "p1 holds one state per identity");
    p1.kill();
    eprintln!(
        "run {}: p1 built {n} states in {build:.1?}, changelog written by {delivered:.1?} ({} hits records, {} changelog records, {} markers, watermark {}); killed; the changelog read back in {:.1?}: {} MiB of state records, the largest marker {} KiB",
        round + 1,
        outcome.hits_records,
        outcome.changelog_records,
        outcome.markers,
        watermark as i64,
        changelog.read,
        changelog.state_bytes >> 20,
        changelog.largest_marker >> 10
    );

    // A restart in place of P1: from the changelog (`changelog` on) or replaying the hits.
    let start = |pair: usize, changelog: bool| {
        let port = free_port();
        let config = config_text(addr, &t, rules, port, changelog);
        let (name, what) = match changelog {
            true => (format!("p2-snapshot-{}", pair + 1), "snapshot"),
            false => (format!("p3-replay-{}", pair + 1), "replay-only"),
        };
        let hits = outcome.hits_records;
        let r = restart(&config, &dir, &name, port, n64, hits, watermark, limit);
        eprintln!("run {}.{}: {what} {r:?}", round + 1, pair + 1);
        r
    };
    let snapshot = |pair: usize| {
        let r = start(pair, true);
        if r.restores != hit_partitions() as u64 || r.restored != n64 || r.unusable > 0 {
            eprintln!(
                "WARNING run {}.{}: the snapshot process restored {} states in {} partitions ({} unusable), not {n} in {}",
                round + 1,
                pair + 1,
                r.restored,
                r.restores,
                r.unusable,
                hit_partitions()
            );
        }
        r
    };
    let replay = |pair: usize| {
        let r = start(pair, false);
        assert_eq!(r.restored, 0, "the replay-only process restores nothing");
        r
    };
    // Which goes first alternates over every pair of every run.
    (0..restarts)
        .map(|pair| {
            let (snapshot, replay) = if (round * restarts + pair).is_multiple_of(2) {
                let s = snapshot(pair);
                (s, replay(pair))
            } else {
                let r = replay(pair);
                (snapshot(pair), r)
            };
            Outcome {
                snapshot,
                replay,
                broker_rss_mib: broker_rss_mib(addr).or(outcome.broker_rss_mib),
                ..outcome.clone()
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("BENCH_IDENTITIES", 1_000_000);
    let runs = env_usize("BENCH_RUNS", 3).max(1);
    let restarts = env_usize("BENCH_RESTARTS", 1).max(1);
    let out = common::root()
        .join("target/kafka-restore")
        .join(broker::unique("n"));
    let rules = out.join("rules");
    std::fs::create_dir_all(&rules).expect("output dir");
    std::fs::write(rules.join("chain.yml"), RULES).expect("write rules");
    eprintln!(
        "{n} identities, {runs} runs of {restarts} restart pair(s); logs in {}",
        out.display()
    );

    let outcomes: Vec<Outcome> = (0..runs)
        .flat_map(|round| run(&rules, &out, n, round, restarts))
        .collect();

    println!(
        "\n| run.pair | build (P1): N states / changelog written | snapshot: assigned / N states | replay-only: assigned / N states | replay / snapshot | changelog read | changelog records (MiB) | restored | skipped | hits records replayed | peak RSS P1 / P2 / P3 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, o) in outcomes.iter().enumerate() {
        println!(
            "| {}.{} | {:.1} / {:.1} s | {:.1} / {:.1} s | {:.1} / {:.1} s | {:.2}x | {} ms | {} ({}) | {} | {} | {} | {:.0} / {:.0} / {:.0} MiB |",
            i / restarts + 1,
            i % restarts + 1,
            o.build.as_secs_f64(),
            o.delivered.as_secs_f64(),
            o.snapshot.assigned.as_secs_f64(),
            o.snapshot.total.as_secs_f64(),
            o.replay.assigned.as_secs_f64(),
            o.replay.total.as_secs_f64(),
            o.replay.total.as_secs_f64() / o.snapshot.total.as_secs_f64(),
            o.snapshot
                .changelog_read_ms
                .map_or("-".to_string(), |m| m.to_string()),
            o.changelog_records,
            o.changelog_bytes >> 20,
            o.snapshot.restored,
            o.snapshot.skipped,
            o.replay.records_in,
            o.build_rss_mib,
            o.snapshot.peak_rss_mib,
            o.replay.peak_rss_mib,
        );
    }
    let med = |f: fn(&Outcome) -> f64| median(outcomes.iter().map(f).collect());
    let (snapshot, replay) = (
        med(|o| o.snapshot.total.as_secs_f64()),
        med(|o| o.replay.total.as_secs_f64()),
    );
    println!(
        "\n{n} identities, medians of {} restart pairs ({runs} builds): produce {:.1} s, build {:.1} s (changelog written by {:.1} s); snapshot restore {snapshot:.1} s (assigned at {:.1} s, changelog read {:.0} ms); replay-only {replay:.1} s (assigned at {:.1} s); replay / snapshot {:.2}x; changelog records {:.0}; restored {:.0}; skipped {:.0}; peak RSS P2 {:.0} MiB, P3 {:.0} MiB; broker RSS at the end {}",
        outcomes.len(),
        med(|o| o.produce.as_secs_f64()),
        med(|o| o.build.as_secs_f64()),
        med(|o| o.delivered.as_secs_f64()),
        med(|o| o.snapshot.assigned.as_secs_f64()),
        med(|o| o.snapshot.changelog_read_ms.unwrap_or(0) as f64),
        med(|o| o.replay.assigned.as_secs_f64()),
        replay / snapshot,
        med(|o| o.changelog_records as f64),
        med(|o| o.snapshot.restored as f64),
        med(|o| o.snapshot.skipped as f64),
        med(|o| o.snapshot.peak_rss_mib),
        med(|o| o.replay.peak_rss_mib),
        outcomes
            .last()
            .and_then(|o| o.broker_rss_mib)
            .map_or("unknown".to_string(), |m| format!("{m:.0} MiB")),
    );
}
