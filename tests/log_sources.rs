//! Windows log sources as SigmaHQ defines them, and the per-profile field maps: SigmaHQ rules
//! (from the public data root's `sigmahq-full`) written with Sysmon's and CloudTrail's field
//! names find the same events when they arrive as Security 4688, Defender events with spaced
//! EventData names, Winlogbeat or auditbeat ECS, or OCSF, with no pipeline.

mod common;

use std::path::PathBuf;

use serde_json::{Value, json};

use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::{self, LoadOptions};

use common::shared_path;

fn load(paths: &[PathBuf]) -> RuleSet {
    let catalog = sigma::load(paths, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    matcher::compile(&catalog, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn sigmahq(rel: &str) -> PathBuf {
    shared_path(&format!("sigmahq-full/rules/windows/{rel}"))
}

/// The titles of the detections `event` satisfies.
fn titles(rules: &RuleSet, event: &Value) -> Vec<String> {
    let mut decoder = credtrail::decode::Decoder::new(&rules.schema);
    let mut m = Matcher::new(rules);
    let text = event.to_string();
    let mut out = Vec::new();
    decoder.decode(&rules.schema, text.as_bytes(), text.len(), |view| {
        let view = view.unwrap_or_else(|e| panic!("{e}: {text}"));
        let mut hits = Vec::new();
        m.matches(rules, &view, &mut hits);
        out.extend(
            hits.into_iter()
                .map(|d| rules.detection_meta(d).title.clone()),
        );
    });
    out
}

const WHOAMI_ALL: &str = "Enumerate All Information With Whoami.EXE";
const COMSVCS: &str = "Process Memory Dump Via Comsvcs.DLL";

fn process_rules() -> RuleSet {
    load(&[
        sigmahq("process_creation/proc_creation_win_whoami_all_execution.yml"),
        sigmahq("process_creation/proc_creation_win_rundll32_process_dump_via_comsvcs.yml"),
    ])
}

/// A Security 4688 event, flat the way nxlog and the OTRF captures write it.
fn flat_4688(image: &str, command_line: &str) -> Value {
    json!({
        "EventID": 4688, "Channel": "Security", "Hostname": "WKS1",
        "TimeCreated": "2024-02-01T08:00:00Z",
        "SubjectUserName": "alice", "SubjectDomainName": "CONTOSO",
        "NewProcessName": image, "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": command_line,
    })
}

#[test]
fn security_4688_is_process_creation_with_sigmahq_names_flat_and_nested() {
    let rules = process_rules();
    let whoami = flat_4688("C:\\Windows\\System32\\whoami.exe", "whoami /all");
    assert_eq!(titles(&rules, &whoami), vec![WHOAMI_ALL]);
    let dump = flat_4688(
        "C:\\Windows\\System32\\rundll32.exe",
        "rundll32.exe C:\\windows\\System32\\comsvcs.dll, MiniDump 624 C:\\temp\\out.dmp full",
    );
    assert_eq!(titles(&rules, &dump), vec![COMSVCS]);
    let nested = json!({"Event": {
        "System": {"EventID": 4688, "Channel": "Security", "Computer": "WKS1",
                   "TimeCreated": {"#attributes": {"SystemTime": "2024-02-01T08:00:00Z"}}},
        "EventData": {"SubjectUserName": "alice", "SubjectDomainName": "CONTOSO",
                      "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
                      "CommandLine": "whoami -all"}}});
    assert_eq!(titles(&rules, &nested), vec![WHOAMI_ALL]);
    // Another Security event with the same fields is not process creation.
    let mut other = whoami.clone();
    other["EventID"] = json!(4689);
    assert!(titles(&rules, &other).is_empty());
}

#[test]
fn process_creation_user_finds_4688_subject_names() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("system_whoami.yml");
    std::fs::write(
        &rule,
        "title: whoami as system\nlogsource:\n  product: windows\n  category: process_creation\n\
         detection:\n  sel:\n    ParentImage|endswith: '\\cmd.exe'\n    User|contains: AUTHORI\n  condition: sel\n",
    )
    .unwrap();
    let rules = load(&[rule]);
    let mut event = flat_4688("C:\\Windows\\System32\\whoami.exe", "whoami");
    assert!(titles(&rules, &event).is_empty());
    event["SubjectDomainName"] = json!("NT AUTHORITY");
    event["SubjectUserName"] = json!("SYSTEM");
    assert_eq!(titles(&rules, &event), vec!["whoami as system"]);
}

#[test]
fn the_identity_of_a_4688_event_stays_domain_backslash_name() {
    // `User` maps to 4688's Subject names for rules; the identity still joins them.
    let rules = process_rules();
    let event = flat_4688("C:\\Windows\\System32\\whoami.exe", "whoami /all").to_string();
    let mut decoder = credtrail::decode::Decoder::new(&rules.schema);
    let mut identity = None;
    decoder.decode(&rules.schema, event.as_bytes(), event.len(), |view| {
        identity = view.unwrap().identity(&rules.schema);
    });
    assert_eq!(identity.as_deref(), Some("contoso\\alice"));
}

#[test]
fn defender_1116_with_spaced_names_matches_the_sigmahq_defender_rule() {
    let rules = load(&[sigmahq(
        "builtin/windefend/win_defender_malware_detected_amsi_source.yml",
    )]);
    const AMSI: &str = "Windows Defender AMSI Trigger Detected";
    // nxlog writes Defender's EventData with spaces: `Source Name`, `Threat Name`.
    let flat = json!({
        "EventID": 1116, "Channel": "Microsoft-Windows-Windows Defender/Operational",
        "SourceName": "Microsoft-Windows-Windows Defender", "Hostname": "WKS1",
        "EventTime": "2024-02-01 08:00:00", "TimeCreated": "2024-02-01T08:00:00Z",
        "Threat Name": "HackTool:PowerShell/Mimikatz", "Source Name": "AMSI",
        "Process Name": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    });
    assert_eq!(titles(&rules, &flat), vec![AMSI]);
    let nested = json!({"Event": {
        "System": {"EventID": 1116, "Channel": "Microsoft-Windows-Windows Defender/Operational",
                   "Computer": "WKS1",
                   "TimeCreated": {"#attributes": {"SystemTime": "2024-02-01T08:00:00Z"}}},
        "EventData": {"Threat Name": "HackTool:PowerShell/Mimikatz", "Source Name": "AMSI"}}});
    assert_eq!(titles(&rules, &nested), vec![AMSI]);
    let mut real_time = flat.clone();
    real_time["Source Name"] = json!("Real-Time Protection");
    assert!(titles(&rules, &real_time).is_empty());
}

#[test]
fn winlogbeat_ecs_and_ocsf_process_events_match_without_a_pipeline() {
    let rules = process_rules();
    let winlogbeat = json!({
        "@timestamp": "2024-02-01T08:00:00Z",
        "event": {"kind": "event", "category": ["process"], "type": ["start"], "code": "1"},
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
                   "event_data": {"Image": "C:\\Windows\\System32\\whoami.exe",
                                  "CommandLine": "whoami /all"}},
        "process": {"executable": "C:\\Windows\\System32\\whoami.exe",
                    "command_line": "whoami /all"},
    });
    assert_eq!(titles(&rules, &winlogbeat), vec![WHOAMI_ALL]);
    // Elastic Defend: ECS only, no winlog.
    let defend = json!({
        "@timestamp": "2024-02-01T08:00:00Z",
        "event": {"kind": "event", "category": ["process"], "type": ["start"]},
        "process": {"executable": "C:\\Windows\\System32\\whoami.exe",
                    "command_line": "whoami.exe /all"},
    });
    assert_eq!(titles(&rules, &defend), vec![WHOAMI_ALL]);
    let mut ended = defend.clone();
    ended["event"]["type"] = json!(["end"]);
    assert!(
        titles(&rules, &ended).is_empty(),
        "process_creation is a start"
    );
    let ocsf = json!({
        "class_uid": 1007, "activity_id": 1, "time": 1706774400000u64,
        "metadata": {"uid": "e1", "product": {"name": "edr"}},
        "actor": {"user": {"name": "CONTOSO\\alice"}},
        "process": {"file": {"path": "C:\\Windows\\System32\\whoami.exe"},
                    "cmd_line": "whoami /all"},
    });
    assert_eq!(titles(&rules, &ocsf), vec![WHOAMI_ALL]);
    let mut network = ocsf.clone();
    network["class_uid"] = json!(4001);
    assert!(titles(&rules, &network).is_empty());
}
