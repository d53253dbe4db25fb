//! Rule-count scaling: decode + match throughput with 1, 100 and 1,000 Sigma rules, and the
//! time to load and compile 1,000 rules; rsigma-eval 0.23 measured side by side on the same
//! rules and events.
//!
//! The 1,000 rules are the public SigmaHQ rules of `sigma/` in the public data root (AWS
//! CloudTrail, Windows process creation and security, Linux process creation; see
//! `tests/common/public_data.rs`) and variants of them: every string
//! value of a variant's detection gets a suffix (`_v2`, ...), so each variant is a distinct
//! rule with the same shape (same modifiers, wildcards, regexes, conditions) that matches
//! little. The events are the public CloudTrail and Windows recordings, interleaved.
//! `cargo bench --bench rules`; figures in BENCHMARKS.md, section Rules.

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use credtrail::decode::Decoder;
use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::yaml::{Node, Value, YamlBudget, parse_documents};
use credtrail::sigma::{self, LoadOptions};

#[path = "../tests/common/public_data.rs"]
#[allow(dead_code)]
mod public_data;
use public_data::shared_path;

/// The text of every public rule that credtrail loads on its own, sorted by path.
fn public_rules() -> Vec<String> {
    let files = sigma::collect_files(&[shared_path("sigma")]).unwrap();
    files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let mut rules = Vec::new();
            let mut errors = Vec::new();
            sigma::parse_text(f, &text, &LoadOptions::default(), &mut rules, &mut errors);
            errors.is_empty().then_some(text)
        })
        .collect()
}

/// A YAML node as JSON text (JSON is YAML), with `suffix` appended to every string value
/// under `detection` except the condition.
fn to_json(n: &Node, suffix: &str, in_detection: bool, out: &mut String) {
    match &n.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&f.to_string()),
        Value::Str(s) => {
            let s = if in_detection {
                format!("{s}{suffix}")
            } else {
                s.clone()
            };
            out.push_str(&serde_json::to_string(&s).unwrap());
        }
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(item, suffix, in_detection, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = k.scalar_text().unwrap_or_default();
                out.push_str(&serde_json::to_string(&key).unwrap());
                out.push(':');
                let detection = in_detection || key == "detection";
                let keep = key == "condition"
                    || v.value == Value::Bool(true)
                    || v.value == Value::Bool(false);
                match (key.as_str(), &v.value) {
                    ("id", Value::Str(id)) if !in_detection => {
                        out.push_str(&serde_json::to_string(&format!("{id}{suffix}")).unwrap())
                    }
                    ("title", Value::Str(t)) if !in_detection => {
                        out.push_str(&serde_json::to_string(&format!("{t}{suffix}")).unwrap())
                    }
                    _ => to_json(v, suffix, detection && !keep, out),
                }
            }
            out.push('}');
        }
    }
}

/// `n` rule texts: the public rules, then variants of them.
fn rule_texts(n: usize) -> Vec<String> {
    let base = public_rules();
    let docs: Vec<Node> = base
        .iter()
        .map(|t| parse_documents(t, YamlBudget::default()).unwrap().remove(0))
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut round = 0;
    while out.len() < n {
        for d in &docs {
            if out.len() == n {
                break;
            }
            if round == 0 {
                out.push(base[out.len()].clone());
            } else {
                let mut s = String::new();
                to_json(d, &format!("_v{round}"), false, &mut s);
                out.push(s);
            }
        }
        round += 1;
    }
    out
}

fn credtrail_set(texts: &[String]) -> RuleSet {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let name = format!("r{i}.yml");
        sigma::parse_text(
            Path::new(&name),
            t,
            &LoadOptions::default(),
            &mut rules,
            &mut errors,
        );
    }
    assert!(errors.is_empty(), "{errors:?}");
    let catalog = sigma::resolve(rules, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    matcher::compile(&catalog, &CompileOptions::default()).unwrap()
}

fn rsigma_engine(texts: &[String]) -> rsigma_eval::Engine {
    let mut engine = rsigma_eval::Engine::new();
    for t in texts {
        let c = rsigma_parser::parse_sigma_yaml(t).unwrap();
        engine.add_collection(&c).unwrap();
    }
    engine
}

/// CloudTrail and Windows events interleaved.
fn events() -> Vec<String> {
    let read = |rel: &str| -> Vec<String> {
        std::fs::read_to_string(shared_path(&format!("datasets/{rel}")))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let ct = read("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let win = read("windows/otrf-shire-empire/empire_shell_net_local_users_2020-09-21192606.jsonl");
    let mut out = Vec::new();
    for i in 0..ct.len().max(win.len()) {
        out.extend(ct.get(i).cloned());
        out.extend(win.get(i).cloned());
    }
    out
}

fn bench_rule_counts(c: &mut Criterion) {
    let all = rule_texts(1000);
    let events = events();
    let mut group = c.benchmark_group("rules/throughput");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for n in [1usize, 100, 1000] {
        // One rule: the first public rule by path (a CloudTrail rule).
        let texts: Vec<String> = all[..n].to_vec();
        let set = credtrail_set(&texts);
        let mut decoder = Decoder::new(&set.schema);
        let mut matcher = Matcher::new(&set);
        let mut out = Vec::new();
        group.bench_with_input(BenchmarkId::new("credtrail", n), &n, |b, _| {
            b.iter(|| {
                let mut hits = 0usize;
                for e in &events {
                    decoder.decode(&set.schema, e.as_bytes(), e.len(), |view| {
                        if let Ok(view) = view {
                            out.clear();
                            matcher.matches(&set, &view, &mut out);
                            hits += out.len();
                        }
                    });
                }
                hits
            })
        });
        let engine = rsigma_engine(&texts);
        // rsigma evaluates parsed JSON values; parsing is measured too, as for credtrail.
        group.bench_with_input(BenchmarkId::new("rsigma", n), &n, |b, _| {
            b.iter(|| {
                let mut hits = 0usize;
                for e in &events {
                    let v: serde_json::Value = serde_json::from_str(e).unwrap();
                    hits += engine
                        .evaluate(&rsigma_eval::event::JsonEvent::borrow(&v))
                        .len();
                }
                hits
            })
        });
    }
    group.finish();

    let mut load = c.benchmark_group("rules/load");
    load.sample_size(10);
    load.measurement_time(Duration::from_secs(8));
    let dir = tempfile::tempdir().unwrap();
    for (i, t) in all.iter().enumerate() {
        std::fs::write(dir.path().join(format!("r{i:04}.yml")), t).unwrap();
    }
    let paths = vec![dir.path().to_path_buf()];
    load.bench_function("credtrail_1000_from_files", |b| {
        b.iter(|| {
            let catalog = sigma::load(&paths, &LoadOptions::default()).unwrap();
            matcher::compile(&catalog, &CompileOptions::default()).unwrap()
        })
    });
    load.bench_function("rsigma_1000_from_text", |b| b.iter(|| rsigma_engine(&all)));
    load.finish();
}

criterion_group!(benches, bench_rule_counts);
criterion_main!(benches);
