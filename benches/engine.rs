//! Per-stage benches of the detection path: decode, decode + match with the shipped pack on the
//! demo and invictus data, decode + match (prefilter and full evaluation) on W500 events at 1,
//! 100 and 1,000 generated rules, shard push/advance, the correlation shapes side by side,
//! alert rendering.
//! `cargo bench --bench engine`; the replay harness figures are in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use credtrail::correlate::{EventRef, Finding, Hit, ShardEngine, ShardLimits, Target};
use credtrail::decode::Decoder;
use credtrail::input::{Position, SourceInfo, Sources};
use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::{self, LoadOptions};
use credtrail::time::{EventTime, Span};

#[path = "../tests/common/public_data.rs"]
#[allow(dead_code)]
mod public_data;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pack() -> RuleSet {
    let catalog = sigma::load(&[root().join("rules")], &LoadOptions::default()).unwrap();
    matcher::compile(&catalog, &CompileOptions::default()).unwrap()
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn bench_decode_and_match(c: &mut Criterion) {
    let rules = pack();
    for (name, path) in [
        ("demo", root().join("datasets/demo/events.jsonl")),
        (
            "invictus",
            public_data::shared_path(
                "datasets/cloudtrail/invictus-stratus/cloudtrail_records.jsonl",
            ),
        ),
    ] {
        let events = lines(&path);
        let bytes: usize = events.iter().map(Vec::len).sum();
        let mut group = c.benchmark_group(format!("stage/{name}"));
        group.throughput(Throughput::Elements(events.len() as u64));
        let mut decoder = Decoder::new(&rules.schema);
        group.bench_function("decode", |b| {
            b.iter(|| decode(&mut decoder, &rules, &events))
        });
        let mut matcher = Matcher::new(&rules);
        let mut out = Vec::new();
        group.bench_function("decode+match", |b| {
            b.iter(|| decode_and_match(&mut decoder, &rules, &mut matcher, &mut out, &events))
        });
        group.finish();
        eprintln!("{name}: {} events, {bytes} bytes", events.len());
    }
}

/// W500 events and rule sets of 1, 100 and 1,000 rules, generated (seed 7).
fn bench_w500_rule_counts(c: &mut Criterion) {
    use credtrail::tooling::generator::{self, Overrides, Preset};
    let mut bytes = Vec::new();
    let overrides = Overrides {
        events: Some(20_000),
        ..Overrides::default()
    };
    generator::generate(Preset::W500, 7, &overrides, &mut bytes, None).unwrap();
    let events: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut group = c.benchmark_group("stage/w500");
    group.throughput(Throughput::Elements(events.len() as u64));
    for count in [1usize, 100, 1000] {
        let dir = root().join(format!("target/bench-rules/w500-{count}"));
        let _ = std::fs::remove_dir_all(&dir);
        generator::rules::write(&dir, count, 7).unwrap();
        let catalog = sigma::load(&[dir], &LoadOptions::default()).unwrap();
        let rules = matcher::compile(&catalog, &CompileOptions::default()).unwrap();
        let mut decoder = Decoder::new(&rules.schema);
        if count == 100 {
            group.bench_function("decode", |b| {
                b.iter(|| decode(&mut decoder, &rules, &events))
            });
        }
        let mut matcher = Matcher::new(&rules);
        let mut out = Vec::new();
        group.bench_function(format!("decode+match {count} rules"), |b| {
            b.iter(|| decode_and_match(&mut decoder, &rules, &mut matcher, &mut out, &events))
        });
    }
    group.finish();
}

/// Decodes every event; the number that decoded.
fn decode(decoder: &mut Decoder, rules: &RuleSet, events: &[impl AsRef<[u8]>]) -> u64 {
    let mut ok = 0u64;
    for e in events {
        let e = e.as_ref();
        ok += decoder.decode(&rules.schema, e, e.len(), |v| u64::from(v.is_ok()));
    }
    ok
}

/// Decodes and matches every event; the number of rule hits.
fn decode_and_match(
    decoder: &mut Decoder,
    rules: &RuleSet,
    matcher: &mut Matcher,
    out: &mut Vec<u32>,
    events: &[impl AsRef<[u8]>],
) -> usize {
    let mut hits = 0usize;
    for e in events {
        let e = e.as_ref();
        hits += decoder.decode(&rules.schema, e, e.len(), |v| {
            out.clear();
            if let Ok(v) = v {
                matcher.matches(rules, &v, out);
            }
            out.len()
        });
    }
    hits
}

fn hits(n: usize) -> Vec<Hit> {
    let base = EventTime::parse("2026-01-01T00:00:00Z").unwrap();
    (0..n)
        .map(|i| Hit {
            target: Target::Correlation(0),
            stages: 1 << (i % 3),
            group: format!("arn:aws:iam::1:user/u{}", i % 1000).into(),
            value: None,
            shard_key: 0,
            event: EventRef {
                time: base.plus(Span::from_millis(i as i64 * 10)),
                key: i as u64,
                pos: Position {
                    source: 0,
                    offset: i as u64,
                },
                id: format!("ev-{i}").into(),
                actor: None,
                details: None,
                parts: None,
            },
            touched: Vec::new(),
        })
        .collect()
}

/// A fresh shard engine fed `hits` as a stream would (the watermark advanced every 64 hits),
/// then to the end of time; the engine and the number of findings.
fn feed(rules: &Arc<RuleSet>, hits: Vec<Hit>) -> (ShardEngine, usize) {
    let mut engine = ShardEngine::new(rules.clone(), ShardLimits::default());
    let mut out = Vec::new();
    for (i, h) in hits.into_iter().enumerate() {
        let t = h.event.time;
        engine.push(h, &mut out);
        if i % 64 == 0 {
            engine.advance(t, &mut out);
        }
    }
    engine.advance(EventTime::MAX, &mut out);
    (engine, out.len())
}

fn bench_shard(c: &mut Criterion) {
    let rules = Arc::new(pack());
    let batch = hits(10_000);
    let mut group = c.benchmark_group("stage/shard");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("push+advance 10k hits, 1k identities", |b| {
        b.iter_batched(
            || batch.clone(),
            |hits| feed(&rules, hits).1,
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_alert(c: &mut Criterion) {
    let rules = pack();
    let mut sources = Sources::new();
    sources.register(SourceInfo::File("datasets/demo/events.jsonl".into()));
    let events: Vec<(EventRef, u32)> = hits(4)
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h.event, i as u32))
        .collect();
    let time = events[3].0.time;
    let finding = Finding {
        target: Target::Correlation(0),
        group: "arn:aws:iam::1:user/u1".into(),
        time,
        events,
        score: Default::default(),
        touched: Default::default(),
        resources: Vec::new(),
        stage: (4, 4),
        canary: false,
        update: false,
        is_alert: true,
        measure: None,
    };
    let mut buf = Vec::with_capacity(4096);
    c.bench_function("stage/alert/render 4-event finding", |b| {
        b.iter(|| {
            buf.clear();
            credtrail::alert::render(
                &finding,
                &rules,
                &sources,
                &credtrail::alert::AlertOptions::default(),
                None,
                &mut buf,
            )
            .unwrap();
            buf.len()
        })
    });
}

/// One correlation over three rules, in several shapes, for `bench_correlation_shapes`.
fn shaped(correlation: &str) -> RuleSet {
    let text = format!(
        "title: a\nname: a\ndetection: {{s: {{x: 1}}, condition: s}}\n---\n\
         title: b\nname: b\ndetection: {{s: {{x: 2}}, condition: s}}\n---\n\
         title: c\nname: c\ndetection: {{s: {{x: 3}}, condition: s}}\n---\n\
         title: u\nname: u\ndetection: {{s: {{x: 4}}, condition: s}}\n---\n{correlation}"
    );
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let path = std::path::Path::new("bench.yml");
    sigma::parse_text(
        path,
        &text,
        &LoadOptions::default(),
        &mut rules,
        &mut errors,
    );
    let catalog = sigma::resolve(rules, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    matcher::compile(&catalog, &CompileOptions::default()).unwrap()
}

/// The state machines side by side on the same 10k hits (1k identities, stages cycling):
/// an ordered chain decided on the event, the same with gaps and `until` (the extension), a
/// window decided at close (a timer per group window), and a correlation of correlations.
fn bench_correlation_shapes(c: &mut Criterion) {
    let shapes = [
        (
            "temporal_ordered",
            "title: x\ncorrelation: {type: temporal_ordered, rules: [a, b, c], group-by: [g], timespan: 1h}\n",
        ),
        (
            "temporal_ordered + max_gap + until",
            "title: x\ncorrelation: {type: temporal_ordered, rules: [a, b, c], group-by: [g], timespan: 1h}\n\
             credtrail: {stages: [{}, {max_gap: 10m}, {max_gap: 10m}], until: [u]}\n",
        ),
        (
            "temporal range (window close)",
            "title: x\ncorrelation: {type: temporal, rules: [a, b, c], group-by: [g], timespan: 1m, condition: {gte: 2, lte: 2}}\n",
        ),
        (
            "event_count of a temporal (nested)",
            "title: inner\nname: inner\ncorrelation: {type: temporal, rules: [a, b, c], group-by: [g], timespan: 1h}\n---\n\
             title: x\ncorrelation: {type: event_count, rules: [inner], group-by: [g], timespan: 1h, condition: {gte: 2}}\n",
        ),
    ];
    let batch = hits(10_000);
    let mut group = c.benchmark_group("stage/shard/shapes");
    group.throughput(Throughput::Elements(batch.len() as u64));
    for (name, correlation) in shapes {
        let rules = Arc::new(shaped(correlation));
        // Feed the correlation whose stages the hits name (the last one compiled).
        let target = rules.correlations.len() as u32 - 1;
        let inner =
            rules.correlations.len() as u32 - if rules.correlations.len() > 1 { 2 } else { 1 };
        let batch: Vec<Hit> = batch
            .iter()
            .cloned()
            .map(|mut h| {
                h.target = Target::Correlation(if target == inner { target } else { inner });
                h
            })
            .collect();
        group.bench_function(name, |b| {
            b.iter_batched(
                || batch.clone(),
                |hits| {
                    let (engine, findings) = feed(&rules, hits);
                    (findings, engine.stats().timers, engine.stats().derived)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_decode_and_match,
    bench_w500_rule_counts,
    bench_shard,
    bench_correlation_shapes,
    bench_alert
);
criterion_main!(benches);
