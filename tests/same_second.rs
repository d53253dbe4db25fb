//! Machine-speed chains: steps that share one timestamp.
//!
//! Bug (issue "detection on real logs", item 0): CloudTrail records time to the second, and an
//! agent runs secret read, `ListUsers` and `CreateAccessKey` within one. Equal times were
//! ordered by event id, so 22-37 of 200 such chains alerted, depending on random ids. And on
//! Windows a shipper's `@timestamp`, one value for a batch, won over Sysmon's own `UtcTime`.

mod common;

use std::path::PathBuf;

use common::*;

const CHAIN: &str = "AWS chain: secret read, enumeration, persistence";

/// A small deterministic generator (the test must not depend on a seed crate's stream).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
}

fn cloudtrail(second: u32, source: &str, name: &str, user: &str, id: &str) -> String {
    serde_json::json!({
        "eventVersion": "1.08",
        "eventTime": format!("2026-03-01T10:{:02}:{:02}Z", second / 60, second % 60),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "eventID": id,
        "userIdentity": {
            "type": "IAMUser",
            "arn": format!("arn:aws:iam::123456789012:user/{user}"),
            "accessKeyId": format!("AKIA{user}"),
        },
    })
    .to_string()
}

/// 200 identities, each running the chain's three steps within one second, with random event
/// ids and the lines shuffled (every line stays within the lateness of the file's order).
fn same_second_chains(dir: &std::path::Path, seed: u64) -> PathBuf {
    let mut rng = Lcg(seed);
    let mut lines = Vec::new();
    for i in 0..200u32 {
        let user = format!("agent{i:03}");
        let second = i * 7 % 3000;
        let steps = [
            ("secretsmanager.amazonaws.com", "GetSecretValue"),
            ("iam.amazonaws.com", "ListUsers"),
            ("iam.amazonaws.com", "CreateAccessKey"),
        ];
        for (source, name) in steps {
            let id = format!("{:016x}", rng.next());
            lines.push(cloudtrail(second, source, name, &user, &id));
        }
    }
    for i in (1..lines.len()).rev() {
        lines.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let path = dir.join("same_second.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn two_hundred_same_second_chains_give_two_hundred_alerts_for_any_shard_count() {
    let rules = pack();
    let dir = tempfile::tempdir().unwrap();
    for seed in [1, 7, 42] {
        let input = same_second_chains(dir.path(), seed);
        let mut texts = Vec::new();
        for shards in [1, 2, 4] {
            // The shuffle spans the whole hour: the lateness must too.
            let (text, summary, _out) = replay(&rules, std::slice::from_ref(&input), shards, "1h");
            assert_eq!(summary.sequencer.dead_letters, 0, "seed {seed}");
            let chains = titles_and_groups(&text)
                .into_iter()
                .filter(|(title, _)| title == CHAIN)
                .count();
            assert_eq!(chains, 200, "seed {seed}, {shards} shard(s)");
            texts.push(text);
        }
        assert!(
            texts.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: shard counts disagree"
        );
    }
}

fn sysmon(utc: &str, ingest: &str, record: u32, image: &str, command_line: &str) -> String {
    serde_json::json!({
        "@timestamp": ingest,
        "UtcTime": utc,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "EventID": 1,
        "Computer": "WKS1.contoso.local",
        "RecordNumber": record,
        "EventRecordID": record,
        "User": "CONTOSO\\eve",
        "Image": image,
        "CommandLine": command_line,
    })
    .to_string()
}

#[test]
fn sysmon_utc_time_wins_over_a_shippers_timestamp() {
    // The shipper read the three events in reverse order, seconds apart: by `@timestamp` the
    // scheduled task comes first and no chain forms; by Sysmon's own clock it is the last step.
    let lines = [
        sysmon(
            "2024-02-01 08:00:00.100",
            "2024-02-01T08:00:09.000Z",
            11,
            "C:\\Windows\\System32\\rundll32.exe",
            "rundll32 C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 out.dmp full",
        ),
        sysmon(
            "2024-02-01 08:00:00.200",
            "2024-02-01T08:00:05.000Z",
            12,
            "C:\\Windows\\System32\\whoami.exe",
            "whoami /groups",
        ),
        sysmon(
            "2024-02-01 08:00:00.300",
            "2024-02-01T08:00:01.000Z",
            13,
            "C:\\Windows\\System32\\schtasks.exe",
            "schtasks /create /tn Updater /tr c:\\x.exe",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sysmon.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (text, summary, _out) = replay(&pack(), &[input], 1, "1m");
    assert_eq!(summary.sequencer.dead_letters, 0);
    let chains: Vec<_> = alerts(&text)
        .into_iter()
        .filter(|a| a["finding_info"]["types"][0] == "temporal_ordered")
        .collect();
    let chain = chains
        .iter()
        .find(|a| {
            a["finding_info"]["title"]
                == "Windows chain: credential access, discovery, scheduled-task persistence"
        })
        .unwrap_or_else(|| panic!("no Windows chain alert: {text}"));
    let times: Vec<_> = chain["evidences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["time_dt"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        times,
        [
            "2024-02-01T08:00:00.100Z",
            "2024-02-01T08:00:00.200Z",
            "2024-02-01T08:00:00.300Z"
        ]
    );
}
