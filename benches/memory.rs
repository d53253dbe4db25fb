//! Bytes of correlation state per identity, counted by the allocator (not estimated):
//! `cargo bench --bench memory`.
//!
//! A [`ShardEngine`] with the shipped rule pack receives, for N distinct identities, either
//! nothing correlated (idle: the identity's events matched no correlation stage) or the first
//! stage of a three-stage `temporal_ordered` chain (a chain in flight), with the event id and
//! group key sizes of real CloudTrail data (36-character event ids, IAM user ARNs) and what the
//! pipeline attaches to a hit (the actor the identity resolver describes, the service, region
//! and secret a `GetSecretValue` touched, and the evidence details the decoder takes from it:
//! caller, key, call, service, source address, user agent, secret). The live heap after the watermark has passed every
//! hit, divided by N, is the cost per identity; next to it, the engine's own estimate of its
//! state bytes (what its byte budget counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use credtrail::correlate::{EventRef, Hit, ShardEngine, ShardLimits, Target, shard_key};
use credtrail::decode::TouchKind;
use credtrail::input::Position;
use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};
use credtrail::time::{EventTime, Span};
use credtrail::vocab::{DetailKind, EventDetails};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let catalog = sigma::load(&[root.join("rules")], &LoadOptions::default()).expect("rules");
    let rules = Arc::new(matcher::compile(&catalog, &CompileOptions::default()).expect("compile"));
    let chain = rules
        .correlations
        .iter()
        .position(|c| {
            rules.meta[c.rule as usize].name.as_deref() == Some("ct_chain_secret_to_persistence")
        })
        .expect("the pack's secret-to-persistence chain") as u32;
    let base = EventTime::parse("2026-11-02T09:00:00Z").expect("time");
    println!("correlation state per identity (allocator-counted live heap / identities)");
    for n in [1_000usize, 100_000, 1_000_000] {
        let before = LIVE.load(Ordering::Relaxed);
        // No byte budget: every identity keeps its state, so the count is per identity.
        let limits = ShardLimits {
            max_state_bytes: usize::MAX,
            ..ShardLimits::default()
        };
        let mut engine = ShardEngine::new(rules.clone(), limits);
        let mut out = Vec::new();
        let empty = LIVE.load(Ordering::Relaxed) - before;
        for i in 0..n {
            let t = base.plus(Span::from_millis(i as i64));
            let arn = format!("arn:aws:iam::111122223333:user/identity-{i:07}");
            let group = arn.clone();
            engine.push(
                Hit {
                    target: Target::Correlation(chain),
                    stages: 1,
                    shard_key: shard_key(&group, None),
                    group: group.into(),
                    value: None,
                    event: EventRef {
                        time: t,
                        key: i as u64,
                        pos: Position {
                            source: 0,
                            offset: i as u64,
                        },
                        id: format!("{:08x}-0000-4000-a000-{:012x}", i, i).into(),
                        // What the identity resolver writes for an IAM user's access key.
                        actor: Some(format!("{arn} key AKIA{i:016X}").into()),
                        parts: None,
                        // What the CloudTrail profile shows of a GetSecretValue call.
                        details: EventDetails::new([
                            (DetailKind::User, arn.as_str()),
                            (DetailKind::Credential, &format!("AKIA{i:016X}")),
                            (DetailKind::Operation, "GetSecretValue"),
                            (DetailKind::Service, "secretsmanager.amazonaws.com"),
                            (DetailKind::SrcIp, "203.0.113.77"),
                            (DetailKind::UserAgent, "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off command/secretsmanager.get-secret-value"),
                            (DetailKind::Secret, &format!("prod/db/password-{}", i % 50)),
                        ])
                        .map(Arc::new),
                    },
                    // What the pack's CloudTrail profile takes from a GetSecretValue event.
                    touched: vec![
                        (TouchKind::Service, "secretsmanager.amazonaws.com".into()),
                        (TouchKind::Region, "us-east-1".into()),
                        (
                            TouchKind::Secret,
                            format!("prod/db/password-{}", i % 50).into(),
                        ),
                    ],
                },
                &mut out,
            );
            if i % 4096 == 0 {
                engine.advance(t, &mut out);
            }
        }
        engine.advance(base.plus(Span::from_millis(n as i64 + 1)), &mut out);
        let live = LIVE.load(Ordering::Relaxed) - before - empty;
        // The engine's own estimate is what `ShardLimits::max_state_bytes` budgets against.
        println!(
            "  {n:>9} identities with a chain in flight: {:>6.0} B each ({} states; the engine's estimate: {:.0} B each; idle identities hold no state: 0 B)",
            live as f64 / n as f64,
            engine.live_states(),
            engine.state_bytes() as f64 / n as f64
        );
        drop(engine);
    }
}
