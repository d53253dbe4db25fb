//! DETECTION.md: what the shipped pack detects on public captures nobody here wrote, with and
//! without the SigmaHQ tag stages. Regenerate it with
//!
//! ```text
//! cargo test --release --test detection_report -- --ignored
//! ```
//!
//! (debug works too, slowly). The captures and their ATT&CK ids come from the public data
//! root (`datasets/` and `datasets/otrf-metadata/`); the corpus from `sigmahq-full/rules`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::LoadOptions;

use common::{replay, shared, shared_path, stitch_pgustavo, titles_and_groups};

const COMMAND: &str = "cargo test --release --test detection_report -- --ignored";

/// A capture: its file under `datasets/`, and the identities its labels call benign.
struct Capture {
    file: PathBuf,
    name: String,
    benign: &'static [&'static str],
    lateness: &'static str,
}

fn captures(stitched: PathBuf) -> Vec<Capture> {
    let windows = [
        "windows/otrf-lsass-campaign-03/LSASS_campaign_03_metasploit_comsvcs_lsass_memory_dump.jsonl.gz",
        "windows/otrf-wardog/psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.jsonl",
        "windows/otrf-wardog/cmd_sam_copy_esentutl_2020-10-1900290001.jsonl",
        "windows/otrf-wardog/psh_windows_vault_web_credentials_2020-10-2819191483.jsonl",
        "windows/otrf-wardog/cmd_seatbelt_group_user_2020-11-0216391814.jsonl",
        "windows/otrf-shire-empire/empire_shell_net_local_users_2020-09-21192606.jsonl",
        "windows/otrf-shire-empire/empire_shell_samr_EnumDomainUsers_2020-09-21193527.jsonl",
        "windows/otrf-shire-empire/schtask_create_2020-12-1907003032.jsonl",
    ];
    let mut out: Vec<Capture> = vec![
        Capture {
            file: shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl"),
            name: "cloudtrail/invictus-stratus".into(),
            benign: &["benjamin"],
            lateness: "5m",
        },
        Capture {
            file: shared(
                "cloudtrail/otrf-ec2-proxy-s3-exfil/ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl",
            ),
            name: "cloudtrail/otrf-ec2-proxy-s3-exfil".into(),
            benign: &["pedro"],
            lateness: "15m",
        },
    ];
    out.extend(windows.iter().map(|w| Capture {
        file: shared(w),
        name: w.to_string(),
        benign: &[],
        lateness: "5m",
    }));
    out.push(Capture {
        file: stitched,
        name: "windows: pgustavo stitched (mimikatz, net user, schtasks)".into(),
        benign: &[],
        lateness: "5m",
    });
    out
}

/// The ATT&CK techniques OTRF's metadata gives the capture (matched by its download's name).
fn attack_ids(capture: &Path) -> String {
    let stem = capture
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let Ok(dir) = std::fs::read_dir(shared_path("datasets/otrf-metadata")) else {
        return String::new();
    };
    let mut ids = BTreeSet::new();
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let matches = text.lines().any(|l| {
            l.contains(".zip")
                && l.rsplit('/')
                    .next()
                    .and_then(|z| z.trim().strip_suffix(".zip"))
                    .is_some_and(|z| stem.contains(&z.to_ascii_lowercase()))
        });
        if !matches {
            continue;
        }
        let mut technique = None;
        for l in text.lines().map(str::trim) {
            if let Some(t) = l
                .strip_prefix("- technique:")
                .or(l.strip_prefix("technique:"))
            {
                technique = Some(t.trim().to_string());
                ids.insert(t.trim().to_string());
            } else if let (Some(s), Some(t)) = (l.strip_prefix("sub-technique:"), &technique) {
                let s = s.trim().trim_matches('"');
                if !s.is_empty() && s != "null" {
                    ids.insert(format!("{t}.{s}"));
                }
            }
        }
    }
    ids.into_iter().collect::<Vec<_>>().join(" ")
}

fn lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        )))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    reader
        .lines()
        .map(|l| l.unwrap())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Per chain title and stage name: the events any rule of the stage matched, and the
/// identities they came from.
type StageHits = BTreeMap<(String, String), (usize, BTreeSet<String>)>;

fn stage_hits(rules: &RuleSet, events: &[String]) -> StageHits {
    let mut decoder = credtrail::decode::Decoder::new(&rules.schema);
    let mut m = Matcher::new(rules);
    let mut out = StageHits::new();
    for text in events {
        decoder.decode(&rules.schema, text.as_bytes(), text.len(), |view| {
            let Ok(view) = view else { return };
            let mut hits = Vec::new();
            m.matches(rules, &view, &mut hits);
            let mut stages = BTreeSet::new();
            for d in hits {
                for &(c, mask) in &rules.detections[d as usize].uses {
                    let corr = &rules.correlations[c as usize];
                    for (k, name) in corr.stage_names.iter().enumerate() {
                        if mask & (1 << k) != 0 {
                            let title = rules.meta[corr.rule as usize].title.clone();
                            stages.insert((title, format!("{}. {name}", k + 1)));
                        }
                    }
                }
            }
            let who = view.identity(&rules.schema).unwrap_or_default();
            for s in stages {
                let e = out.entry(s).or_default();
                e.0 += 1;
                e.1.insert(who.clone());
            }
        });
    }
    out
}

fn names(ids: &BTreeSet<String>) -> String {
    let short: Vec<&str> = ids
        .iter()
        .map(|i| match i.rsplit(['/', '\\']).next().unwrap_or(i) {
            "" => "(no identity)",
            name => name,
        })
        .collect();
    let mut list: Vec<&str> = short.into_iter().take(4).collect();
    if ids.len() > 4 {
        list.push("...");
    }
    list.join(", ")
}

// Not in the default run: it replays every public capture twice (with and without the SigmaHQ
// tag stages over the 3,780-rule corpus), 2.3 s in a release build (2026-12-05) but minutes in
// the debug build the default `cargo test` makes, and it rewrites a committed file. Regenerate
// with the command above (`COMMAND`); the test below, which does run, checks that DETECTION.md
// exists and names that command.
#[test]
#[ignore = "slow: replays every public capture with the SigmaHQ corpus; writes DETECTION.md"]
fn regenerate_detection_md() {
    let pack = common::pack();
    let with = matcher::load_with_corpus(
        &[PathBuf::from("rules"), PathBuf::from("rules-sigmahq")],
        &[shared_path("sigmahq-full/rules")],
        &LoadOptions::default(),
        &CompileOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let corpus_loaded = with.corpus_loaded;
    let sigmahq = Arc::new(with.rules);
    let dir = tempfile::tempdir().unwrap();
    let stitched = stitch_pgustavo(dir.path());
    let mut doc = String::new();
    writeln!(
        doc,
        "# Detection on public captures\n\n\
         Generated by `{COMMAND}` (tests/detection_report.rs); do not edit by hand.\n\n\
         Each public capture (the OTRF and invictus recordings under the public data root's\n\
         `datasets/`, ATT&CK ids from OTRF's metadata) is replayed with the shipped pack\n\
         (`rules/`) and with the pack plus the SigmaHQ tag-stage chains (`rules-sigmahq/`) over\n\
         SigmaHQ's {corpus_loaded} core rules (`--corpus sigmahq-full/rules`). No pipeline, no\n\
         tuning per capture.\n\n\
         ## Stages: events matched per chain stage\n\n\
         Events any rule of the stage matched (its own rule, or one its tag selector took), and\n\
         the identities they came from. `pack` is `rules/` alone; `+SigmaHQ` the tag-stage chains.\n"
    )
    .unwrap();
    let mut chains = String::new();
    writeln!(
        chains,
        "## Chains: alerts\n\n\
         | capture | rules | alerts | chains (identity) | alerts on benign identities |\n\
         |---|---|---:|---|---|"
    )
    .unwrap();
    for capture in captures(stitched) {
        eprintln!("detection report: {}", capture.name);
        let events = lines(&capture.file);
        let ids = attack_ids(&capture.file);
        writeln!(
            doc,
            "### {}\n\n{} events; ATT&CK (OTRF metadata): {}\n\n\
             | chain | stage | pack: events | pack: identities | +SigmaHQ: events | +SigmaHQ: identities |\n\
             |---|---|---:|---|---:|---|",
            capture.name,
            events.len(),
            if ids.is_empty() { "-".to_string() } else { ids }
        )
        .unwrap();
        let base = stage_hits(&pack, &events);
        eprintln!("  stage hits, pack: done");
        let more = stage_hits(&sigmahq, &events);
        eprintln!("  stage hits, +SigmaHQ: done");
        let keys: BTreeSet<&(String, String)> = base.keys().chain(more.keys()).collect();
        if keys.is_empty() {
            writeln!(doc, "| (no stage matched) | | 0 | | 0 | |").unwrap();
        }
        for key in keys {
            let (n0, w0) = base.get(key).cloned().unwrap_or_default();
            let (n1, w1) = more.get(key).cloned().unwrap_or_default();
            writeln!(
                doc,
                "| {} | {} | {n0} | {} | {n1} | {} |",
                key.0,
                key.1,
                names(&w0),
                names(&w1)
            )
            .unwrap();
        }
        doc.push('\n');
        for (label, rules) in [("pack", &pack), ("+SigmaHQ", &sigmahq)] {
            let (text, ..) = replay(
                rules,
                std::slice::from_ref(&capture.file),
                2,
                capture.lateness,
            );
            eprintln!("  replay {label}: done");
            let found = titles_and_groups(&text);
            let chained: BTreeSet<String> = found
                .iter()
                .map(|(t, g)| format!("{t} ({})", g.rsplit(['/', '\\']).next().unwrap_or(g)))
                .collect();
            let benign = found
                .iter()
                .filter(|(_, g)| capture.benign.iter().any(|b| g.contains(b)))
                .count();
            writeln!(
                chains,
                "| {} | {label} | {} | {} | {} |",
                capture.name,
                found.len(),
                if chained.is_empty() {
                    "-".to_string()
                } else {
                    chained.into_iter().collect::<Vec<_>>().join("<br>")
                },
                if capture.benign.is_empty() {
                    "(no benign labels)".to_string()
                } else {
                    format!("{benign} ({})", capture.benign.join(", "))
                }
            )
            .unwrap();
        }
    }
    doc.push_str(&chains);
    std::fs::write("DETECTION.md", doc).unwrap();
}

/// DETECTION.md exists and says how to regenerate it.
#[test]
fn detection_md_names_the_command_that_regenerates_it() {
    let text = std::fs::read_to_string("DETECTION.md").expect("DETECTION.md is committed");
    assert!(text.contains(COMMAND), "{}", &text[..text.len().min(300)]);
    assert!(text.contains("## Chains: alerts"));
}
