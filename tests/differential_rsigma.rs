//! Differential test against rsigma (rsigma-eval 0.23, another Rust Sigma engine): every
//! public SigmaHQ rule that both engines load, against every event of the public datasets (both
//! from the public data root, see `common/public_data.rs`). The two must agree on every
//! (rule, event) pair, except the classes of difference listed in [`Explained`], each a reading
//! of the specification.
//! Any other difference fails the test with the pairs listed.
//!
//! Explained differences:
//! - `Logsource`: credtrail runs a rule only on events its `logsource` can describe (a
//!   `product: windows, category: process_creation` rule only on Sysmon event 1, an `aws` rule
//!   not on Windows events); rsigma evaluates every detection on every event. Rules
//!   specification v2.0.0, LogSource: "This section describes the log data on which the
//!   detection is meant to be applied", and the taxonomy appendix's mapping of categories to
//!   event ids. The test checks these pairs are exactly the ones where credtrail, run on the
//!   same rules with their log sources removed, agrees with rsigma.
//! - `FieldMap`: the Windows profile finds a canonical field under the name Security events
//!   give it (`Image` in 4688's `NewProcessName`, `ParentImage` in `ParentProcessName`, `User`
//!   in `SubjectUserName` and `SubjectDomainName`, `LogonId` in `SubjectLogonId`), and
//!   compares EventData names with their spaces removed, as SigmaHQ's Windows pipelines map
//!   4688 for backends; rsigma reads names as written. The test checks these pairs are exactly
//!   the ones rsigma matches once the event carries the canonical names too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use serde_json::Value;

use credtrail::decode::Decoder;
use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::{self, LoadOptions, LogSource, Rule};

mod common;

const DATASETS: &[&str] = &[
    "cloudtrail/invictus-stratus/cloudtrail_records.jsonl",
    "cloudtrail/otrf-ec2-proxy-s3-exfil/ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl",
    "windows/otrf-wardog/cmd_seatbelt_group_user_2020-11-0216391814.jsonl",
    "windows/otrf-wardog/psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.jsonl",
    "windows/otrf-wardog/cmd_sam_copy_esentutl_2020-10-1900290001.jsonl",
    "windows/otrf-wardog/psh_windows_vault_web_credentials_2020-10-2819191483.jsonl",
    "windows/otrf-shire-empire/empire_shell_samr_EnumDomainUsers_2020-09-21193527.jsonl",
    "windows/otrf-shire-empire/empire_shell_net_localgroup_administrators_2020-09-21191843.jsonl",
    "windows/otrf-shire-empire/empire_shell_net_local_users_2020-09-21192606.jsonl",
    "windows/otrf-shire-empire/empire_schtasks_creation_standard_user_2020-09-21031526.jsonl",
    "windows/otrf-shire-empire/empire_shell_rpc_samr_smb_group_domain_admins_standard_user_2020-09-21040850.jsonl",
    "windows/otrf-shire-empire/schtask_create_2020-12-1907003032.jsonl",
    "windows/otrf-shire-empire/schtask_modification_2020-12-1907505969.jsonl",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Explained {
    Logsource,
    FieldMap,
}

/// `event` as the Windows profile reads it for rules: the canonical names added from the
/// Security names they map, keys without spaces; one variant per value `User` can take.
fn with_canonical_names(event: &Value) -> Vec<Value> {
    let Some(map) = event.as_object() else {
        return Vec::new();
    };
    let mut base = serde_json::Map::new();
    for (k, v) in map {
        base.insert(k.replace(' ', ""), v.clone());
    }
    for (canonical, security) in [
        ("Image", "NewProcessName"),
        ("ParentImage", "ParentProcessName"),
        ("LogonId", "SubjectLogonId"),
    ] {
        if let Some(v) = map.get(security)
            && !base.contains_key(canonical)
        {
            base.insert(canonical.into(), v.clone());
        }
    }
    let mut out = vec![Value::Object(base.clone())];
    if !map.contains_key("User") {
        for from in ["SubjectUserName", "SubjectDomainName"] {
            if let Some(v) = map.get(from) {
                let mut variant = base.clone();
                variant.insert("User".into(), v.clone());
                out.push(Value::Object(variant));
            }
        }
    }
    out
}

fn events() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for rel in DATASETS {
        let path = common::shared(rel);
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for line in std::io::BufReader::new(f).lines() {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            out.push((line, v));
        }
    }
    out
}

/// The rules credtrail loads, one file at a time (as the corpus test does).
fn credtrail_rules() -> Vec<Rule> {
    let files = sigma::collect_files(&[common::shared_path("sigma")]).unwrap();
    let mut out = Vec::new();
    for f in &files {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        sigma::parse_file(f, &LoadOptions::default(), &mut rules, &mut errors);
        if errors.is_empty() {
            out.extend(rules);
        }
    }
    out
}

fn compile(rules: Vec<Rule>) -> RuleSet {
    let mut errors = Vec::new();
    let catalog = sigma::resolve(rules, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    matcher::compile(&catalog, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// (rule id, event index) pairs credtrail matches.
fn credtrail_pairs(set: &RuleSet, events: &[(String, Value)]) -> BTreeSet<(String, usize)> {
    let mut decoder = Decoder::new(&set.schema);
    let mut m = Matcher::new(set);
    let mut out = BTreeSet::new();
    for (i, (line, _)) in events.iter().enumerate() {
        decoder.decode(&set.schema, line.as_bytes(), line.len(), |view| {
            let Ok(view) = view else { return };
            let mut hits = Vec::new();
            m.matches(set, &view, &mut hits);
            for d in hits {
                out.insert((set.detection_meta(d).id.clone().unwrap_or_default(), i));
            }
        });
    }
    out
}

#[test]
fn credtrail_and_rsigma_agree_on_every_pair_both_support() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let events = events();
    let ours = credtrail_rules();
    let our_ids: BTreeSet<String> = ours.iter().filter_map(|r| r.meta.id.clone()).collect();

    // rsigma: the same files, each parsed and added on its own; rules it refuses are skipped
    // (the pair is not supported by both) and counted.
    let mut engine = rsigma_eval::Engine::new();
    let mut theirs_ids = BTreeSet::new();
    let mut rsigma_refused = Vec::new();
    for f in sigma::collect_files(&[common::shared_path("sigma")]).unwrap() {
        let text = std::fs::read_to_string(&f).unwrap();
        let loaded = rsigma_parser::parse_sigma_yaml(&text)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                if c.has_errors() {
                    return Err(format!("{} parse error(s)", c.error_count()));
                }
                let ids: Vec<String> = c.rules.iter().filter_map(|r| r.id.clone()).collect();
                engine.add_collection(&c).map_err(|e| e.to_string())?;
                Ok(ids)
            });
        match loaded {
            Ok(ids) => theirs_ids.extend(ids),
            Err(e) => rsigma_refused.push(format!("{}: {e}", f.display())),
        }
    }
    let both: BTreeSet<String> = our_ids.intersection(&theirs_ids).cloned().collect();
    assert!(
        both.len() >= 300,
        "only {} rules load in both engines",
        both.len()
    );

    let mut rsigma_pairs = BTreeSet::new();
    for (i, (_, v)) in events.iter().enumerate() {
        let ev = rsigma_eval::event::JsonEvent::borrow(v);
        for r in engine.evaluate(&ev) {
            if let Some(id) = &r.header.rule_id
                && both.contains(id)
            {
                rsigma_pairs.insert((id.clone(), i));
            }
        }
    }
    let keep = |p: &BTreeSet<(String, usize)>| -> BTreeSet<(String, usize)> {
        p.iter()
            .filter(|(id, _)| both.contains(id))
            .cloned()
            .collect()
    };
    let guarded = keep(&credtrail_pairs(&compile(ours.clone()), &events));
    // The same rules with their log sources removed: what credtrail's detection logic alone says.
    let unguarded_rules: Vec<Rule> = ours
        .into_iter()
        .map(|mut r| {
            r.meta.logsource = LogSource::default();
            r
        })
        .collect();
    let unguarded = keep(&credtrail_pairs(&compile(unguarded_rules), &events));

    let mut explained: BTreeMap<Explained, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for pair in guarded.symmetric_difference(&rsigma_pairs) {
        let in_rsigma = rsigma_pairs.contains(pair);
        let (id, i) = pair;
        let rsigma_on_canonical = || {
            with_canonical_names(&events[*i].1).iter().any(|v| {
                let ev = rsigma_eval::event::JsonEvent::borrow(v);
                engine
                    .evaluate(&ev)
                    .iter()
                    .any(|r| r.header.rule_id.as_deref() == Some(id.as_str()))
            })
        };
        if in_rsigma && unguarded.contains(pair) && !guarded.contains(pair) {
            *explained.entry(Explained::Logsource).or_default() += 1;
        } else if !in_rsigma && guarded.contains(pair) && rsigma_on_canonical() {
            *explained.entry(Explained::FieldMap).or_default() += 1;
        } else {
            unexplained.push(format!(
                "rule {id}, event {i} ({}): credtrail {}, rsigma {}",
                &events[*i].0.chars().take(160).collect::<String>(),
                guarded.contains(pair),
                in_rsigma
            ));
        }
    }
    eprintln!(
        "{} events x {} rules loaded by both ({} refused by rsigma): {} pairs match in both, explained differences {explained:?}",
        events.len(),
        both.len(),
        rsigma_refused.len(),
        guarded.intersection(&rsigma_pairs).count(),
    );
    for r in &rsigma_refused {
        eprintln!("  rsigma refused {r}");
    }
    assert!(
        guarded.intersection(&rsigma_pairs).count() >= 100,
        "too few matches to compare anything"
    );
    assert!(
        unexplained.is_empty(),
        "{} unexplained difference(s):\n{}",
        unexplained.len(),
        unexplained
            .into_iter()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
