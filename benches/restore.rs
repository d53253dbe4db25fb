//! How long a shard takes to get back 1M identities' chains in flight: from a snapshot (one
//! state record per identity, as a changelog holds them) or by replaying the hits that built
//! the state (what a cluster's stage 2 reads from the hits topic after a SIGKILL today).
//!
//! The state: 1,000,000 identities, each two steps into a three-stage `temporal_ordered`
//! chain (two hits with evidence details and a touched secret each), so every identity holds
//! a live state. Both restores start from bytes, as they would from Kafka: snapshot records
//! are [`StateImage::to_bytes`] (postcard, serde's compact binary form); hits are JSON hit records ([`HitRecord`]), validated into hits.
//! Timed, medians of BENCH_RUNS (default 3), side by side in one process:
//!
//! - write: export the shard and serialise one record per state;
//! - restore: parse the records and import them into a fresh shard;
//! - replay: parse the hit records, validate them and feed them to a fresh shard.
//!
//! `cargo bench --bench restore` (BENCH_IDENTITIES for the size).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credtrail::cluster::placement::RulesFingerprint;
use credtrail::cluster::record::{HitRecord, Origin};
use credtrail::correlate::engine::{Snapshot, StateImage};
use credtrail::correlate::{EventRef, Hit, ShardEngine, ShardLimits, Target};
use credtrail::matcher::RuleSet;
use credtrail::time::{EventTime, Span};
use credtrail::vocab::{DetailKind, EventDetails, Position, TouchKind};

// The allocator of the `credtrail` binary: building and dropping a million states is mostly
// allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every identity with a GetSecretValue and a ListUsers holds a live state two steps into a
/// three-stage chain.
const RULES: &str = include_str!("data/restore_chain.yml");

fn rules() -> Arc<RuleSet> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("chain.yml");
    std::fs::write(&path, RULES).expect("write rules");
    let catalog = credtrail::sigma::load(&[path], &Default::default()).expect("rules load");
    Arc::new(credtrail::matcher::compile(&catalog, &Default::default()).expect("compile"))
}

fn limits() -> ShardLimits {
    ShardLimits {
        max_states: 4 << 20,
        max_state_bytes: 16 << 30,
        ..ShardLimits::default()
    }
}

/// Identity `i`'s two hits: stage 0 then stage 1, a second apart.
fn hits(i: usize, base: EventTime) -> [Hit; 2] {
    let group: Box<str> = format!("arn:aws:iam::123456789012:user/u{i:07}").into();
    let one = |stage: u32, n: u64| {
        let id = format!("ev-{i}-{stage}");
        let details = EventDetails::new([
            (DetailKind::User, &*group),
            (
                DetailKind::Operation,
                if stage == 0 {
                    "GetSecretValue"
                } else {
                    "ListUsers"
                },
            ),
            (DetailKind::SrcIp, "203.0.113.7"),
            (DetailKind::UserAgent, "aws-cli/2.15.0 Python/3.11"),
        ])
        .map(Arc::new);
        Hit {
            target: Target::Correlation(0),
            stages: 1 << stage,
            group: group.clone(),
            value: None,
            shard_key: 0,
            event: EventRef {
                time: base.plus(Span(i64::from(stage) * 1_000_000_000 + i as i64)),
                key: credtrail::decode::event_key(&id),
                pos: Position {
                    source: 0,
                    offset: n,
                },
                id: id.into(),
                parts: None,
                actor: None,
                details,
            },
            touched: vec![(TouchKind::Secret, format!("prod/db/{}", i % 97).into())],
        }
    };
    [one(0, 2 * i as u64), one(1, 2 * i as u64 + 1)]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("BENCH_IDENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rules = rules();
    let fingerprint = RulesFingerprint::of(&rules);
    let base = EventTime::from_millis(1_700_000_000_000);

    // The live shard, and the hit records a replay would read.
    let mut live = ShardEngine::new(Arc::clone(&rules), limits());
    let mut out = Vec::new();
    let mut hit_records: Vec<Vec<u8>> = Vec::with_capacity(2 * n);
    for stage in 0..2 {
        for i in 0..n {
            let hit = hits(i, base)[stage].clone();
            let origin = Origin {
                topic: "cloudtrail".into(),
                partition: (i % 6) as i32,
                offset: hit.event.pos.offset,
                file: false,
            };
            let record = HitRecord::of(&hit, origin, fingerprint).expect("record");
            hit_records.push(serde_json::to_vec(&record).expect("json"));
            live.push(hit, &mut out);
        }
    }
    let now = base.plus(Span(10_000_000_000 + n as i64));
    live.advance(now, &mut out);
    assert_eq!(live.live_states(), n, "every identity holds a chain");
    assert!(out.is_empty(), "no chain is complete");
    eprintln!(
        "{n} identities in state, {} MB by the shard's count; {} hit records, {} MB",
        live.state_bytes() >> 20,
        hit_records.len(),
        hit_records.iter().map(Vec::len).sum::<usize>() >> 20
    );

    let (mut write, mut restore, mut replay) = (Vec::new(), Vec::new(), Vec::new());
    let mut snapshot_bytes = 0;
    for round in 0..runs {
        let t = Instant::now();
        let snap = live.export(|_, _| true);
        let records: Vec<Vec<u8>> = snap.states.iter().map(StateImage::to_bytes).collect();
        write.push(t.elapsed());
        snapshot_bytes = records.iter().map(Vec::len).sum::<usize>();
        drop(snap);

        let t = Instant::now();
        let states: Vec<StateImage> = records
            .iter()
            .map(|r| StateImage::from_bytes(r).expect("a state record reads back"))
            .collect();
        let mut restored = ShardEngine::new(Arc::clone(&rules), limits());
        restored
            .import(Snapshot {
                watermark: now,
                states,
                pending: Vec::new(),
                last: None,
            })
            .expect("fits");
        restored.advance(now, &mut out);
        restore.push(t.elapsed());
        assert_eq!(restored.live_states(), n);
        drop((records, restored));

        let t = Instant::now();
        let mut replayed = ShardEngine::new(Arc::clone(&rules), limits());
        for (k, bytes) in hit_records.iter().enumerate() {
            let record: HitRecord = serde_json::from_slice(bytes).expect("hit record");
            let pos = Position {
                source: 0,
                offset: k as u64,
            };
            let hit = record
                .into_hit(&rules, fingerprint, pos, |_, _| 0)
                .expect("valid");
            replayed.push(hit, &mut out);
        }
        replayed.advance(now, &mut out);
        replay.push(t.elapsed());
        assert_eq!(replayed.live_states(), n);
        assert!(out.is_empty());
        drop(replayed);
        eprintln!(
            "round {}: write {:.2?}, restore {:.2?}, replay {:.2?}",
            round + 1,
            write[round],
            restore[round],
            replay[round]
        );
    }
    let (w, r, p) = (median(write), median(restore), median(replay));
    println!(
        "{n} identities: snapshot {} MB in {n} records; write {w:.2?}, restore {r:.2?}, replay of {} hits {p:.2?} (replay / restore {:.2}x), medians of {runs}",
        snapshot_bytes >> 20,
        2 * n,
        p.as_secs_f64() / r.as_secs_f64()
    );
}
