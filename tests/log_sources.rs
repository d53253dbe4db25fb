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
    titles_with(rules, &mut decoder, &mut m, &event.to_string())
}

/// [`titles`] of the event `text`, with a decoder and matcher reused across events.
fn titles_with(
    rules: &RuleSet,
    decoder: &mut credtrail::decode::Decoder,
    m: &mut Matcher,
    text: &str,
) -> Vec<String> {
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

const CERTUTIL_NET: &str = "Uncommon Network Connection Initiated By Certutil.EXE";
const RDP_NON_STANDARD: &str = "Outbound RDP Connections Over Non-Standard Tools";

fn network_rules() -> RuleSet {
    load(&[
        sigmahq("network_connection/net_connection_win_certutil_initiated_connection.yml"),
        sigmahq("network_connection/net_connection_win_rdp_outbound_over_non_standard_tools.yml"),
    ])
}

/// A Security 5156 event (a connection the Windows Filtering Platform permitted), flat the way
/// nxlog and the OTRF captures write it: device path, `%%` direction, protocol number.
fn flat_5156(application: &str, direction: &str, dest_port: u16, protocol: u8) -> Value {
    json!({
        "EventID": 5156, "Channel": "Security", "Hostname": "WKS1",
        "TimeCreated": "2024-02-01T08:00:00Z", "ProcessID": "4412",
        "Application": application, "Direction": direction,
        "SourceAddress": "10.0.0.5", "SourcePort": "53", "DestAddress": "203.0.113.7",
        "DestPort": dest_port.to_string(), "Protocol": protocol.to_string(),
        "LayerName": "%%14611", "RemoteUserID": "S-1-0-0", "RemoteMachineID": "S-1-0-0",
    })
}

#[test]
fn security_5156_is_network_connection_with_sysmon_names_and_values() {
    let rules = network_rules();
    let certutil = "\\device\\harddiskvolume2\\windows\\system32\\certutil.exe";
    // `Initiated: 'true'` is 5156's outbound `%%14593`, `DestinationPort` its `DestPort`.
    let outbound = flat_5156(certutil, "%%14593", 443, 6);
    assert_eq!(titles(&rules, &outbound), vec![CERTUTIL_NET]);
    let inbound = flat_5156(certutil, "%%14592", 443, 6);
    assert!(
        titles(&rules, &inbound).is_empty(),
        "inbound is not initiated"
    );
    let nested = json!({"Event": {
        "System": {"EventID": 5156, "Channel": "Security", "Computer": "WKS1",
                   "TimeCreated": {"#attributes": {"SystemTime": "2024-02-01T08:00:00Z"}},
                   "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 88}}},
        "EventData": {"ProcessID": 4412, "Application": certutil, "Direction": "%%14593",
                      "SourceAddress": "10.0.0.5", "SourcePort": 50123,
                      "DestAddress": "203.0.113.7", "DestPort": 80, "Protocol": 6}}});
    assert_eq!(titles(&rules, &nested), vec![CERTUTIL_NET]);
    // Another Security event with the same fields is not a network connection.
    let mut other = outbound.clone();
    other["EventID"] = json!(5158);
    assert!(titles(&rules, &other).is_empty());
}

#[test]
fn security_5156_device_paths_and_protocol_numbers_reach_sysmon_filters() {
    let rules = network_rules();
    // The rule's filters name `C:\Windows\System32\mstsc.exe` exactly: the device path is
    // read as drive C:.
    let mstsc = flat_5156(
        "\\device\\harddiskvolume2\\windows\\system32\\mstsc.exe",
        "%%14593",
        3389,
        6,
    );
    assert!(titles(&rules, &mstsc).is_empty(), "mstsc is filtered");
    let tool = flat_5156(
        "\\device\\harddiskvolume2\\users\\bob\\downloads\\rdp.exe",
        "%%14593",
        3389,
        6,
    );
    assert_eq!(titles(&rules, &tool), vec![RDP_NON_STANDARD]);
    // The DNS filter needs `Protocol: 'udp'` (17) and `SourcePort: 53` besides the image.
    let dns = "\\device\\harddiskvolume2\\windows\\system32\\dns.exe";
    assert!(titles(&rules, &flat_5156(dns, "%%14593", 3389, 17)).is_empty());
    assert_eq!(
        titles(&rules, &flat_5156(dns, "%%14593", 3389, 6)),
        vec![RDP_NON_STANDARD]
    );
}

const WINLOGON_NOTIFY: &str = "Winlogon Notify Key Logon Persistence";

/// A Security 4657 event (a registry value was modified), flat.
fn flat_4657(key: &str, value: &str, new_value: &str, operation: &str) -> Value {
    json!({
        "EventID": 4657, "Channel": "Security", "Hostname": "WKS1",
        "TimeCreated": "2024-02-01T08:00:00Z",
        "SubjectUserName": "alice", "SubjectDomainName": "CONTOSO",
        "ObjectName": key, "ObjectValueName": value, "OperationType": operation,
        "OldValueType": "%%1873", "OldValue": "-", "NewValueType": "%%1873",
        "NewValue": new_value, "ProcessName": "C:\\Windows\\regedit.exe",
    })
}

#[test]
fn security_4657_is_registry_set_with_the_key_and_value_joined() {
    let rules = load(&[sigmahq(
        "registry/registry_set/registry_set_winlogon_notify_key.yml",
    )]);
    let notify =
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\Notify";
    // `TargetObject|endswith: '...\Notify\logon'` needs the value name after the key;
    // `Details` is 4657's `NewValue`.
    let set = flat_4657(notify, "logon", "C:\\Users\\bob\\evil.dll", "%%1905");
    assert_eq!(titles(&rules, &set), vec![WINLOGON_NOTIFY]);
    let rendered = flat_4657(
        notify,
        "logon",
        "C:\\Users\\bob\\evil.dll",
        "Existing registry value modified",
    );
    assert_eq!(titles(&rules, &rendered), vec![WINLOGON_NOTIFY]);
    let nested = json!({"Event": {
        "System": {"EventID": 4657, "Channel": "Security", "Computer": "WKS1",
                   "TimeCreated": {"#attributes": {"SystemTime": "2024-02-01T08:00:00Z"}}},
        "EventData": {"SubjectUserName": "alice", "ObjectName": notify,
                      "ObjectValueName": "logon", "OperationType": "%%1905",
                      "NewValue": "C:\\Users\\bob\\evil.dll"}}});
    assert_eq!(titles(&rules, &nested), vec![WINLOGON_NOTIFY]);
    // A value deleted (`%%1906`) is not a value set; another value name is another value.
    let deleted = flat_4657(notify, "logon", "C:\\Users\\bob\\evil.dll", "%%1906");
    assert!(titles(&rules, &deleted).is_empty());
    let other = flat_4657(notify, "logoff", "C:\\Users\\bob\\evil.dll", "%%1905");
    assert!(titles(&rules, &other).is_empty());
}

#[test]
fn powershell_4104_is_ps_script_flat_and_nested() {
    let rules = load(&[sigmahq(
        "powershell/powershell_script/posh_ps_potential_invoke_mimikatz.yml",
    )]);
    const MIMIKATZ: &str = "Potential Invoke-Mimikatz PowerShell Script";
    let channel = "Microsoft-Windows-PowerShell/Operational";
    let script = "Invoke-Mimikatz -Command 'privilege::debug sekurlsa::logonpasswords'";
    let flat = json!({
        "EventID": 4104, "Channel": channel, "Hostname": "WKS1",
        "TimeCreated": "2024-02-01T08:00:00Z", "MessageNumber": "1", "MessageTotal": "1",
        "ScriptBlockText": script, "ScriptBlockId": "b233f560-1eb1-4485-8e91-84306b3f3332",
    });
    assert_eq!(titles(&rules, &flat), vec![MIMIKATZ]);
    let nested = json!({"Event": {
        "System": {"EventID": 4104, "Channel": channel, "Computer": "WKS1",
                   "TimeCreated": {"#attributes": {"SystemTime": "2024-02-01T08:00:00Z"}}},
        "EventData": {"ScriptBlockText": script, "Path": null}}});
    assert_eq!(titles(&rules, &nested), vec![MIMIKATZ]);
    // 4103 (module logging) is `ps_module`, not `ps_script`.
    let mut module = flat.clone();
    module["EventID"] = json!(4103);
    assert!(titles(&rules, &module).is_empty());
}

/// Every line of every OTRF Windows capture in the public data (plain or gzipped JSON lines).
fn otrf_lines() -> Vec<String> {
    common::copies::capture_lines(&[shared_path("datasets/windows")])
}

/// A `network_connection` rule in Sysmon's words: outbound TCP from a program on drive C:.
const OUTBOUND_TCP_FROM_C: &str = "title: 'outbound tcp from C:'\nlogsource:\n  product: windows\n  \
    category: network_connection\ndetection:\n  sel:\n    Initiated: 'true'\n    \
    Protocol: tcp\n    Image|startswith: 'C:\\'\n    DestinationIp|cidr: '0.0.0.0/0'\n  \
    condition: sel\n";

#[test]
fn otrf_captures_security_5156_and_powershell_events_match() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("outbound.yml");
    std::fs::write(&own, OUTBOUND_TCP_FROM_C).unwrap();
    let loaded = matcher::load_with_corpus(
        &[own],
        &[
            sigmahq("network_connection"),
            sigmahq("powershell/powershell_script"),
            sigmahq("powershell/powershell_module"),
        ],
        &LoadOptions::default(),
        &CompileOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.left_out.is_empty(), "{:?}", loaded.left_out);
    let rules = &loaded.rules;
    let mut decoder = credtrail::decode::Decoder::new(&rules.schema);
    let mut m = Matcher::new(rules);
    let (mut outbound_5156, mut expected_outbound, mut sigmahq_5156) = (0, 0, 0);
    let (mut ps_script, mut ps_module, mut sysmon_outbound) = (0, 0, 0);
    for line in otrf_lines() {
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let found = titles_with(rules, &mut decoder, &mut m, &line);
        let own_hits = found
            .iter()
            .filter(|t| *t == "outbound tcp from C:")
            .count();
        match event["EventID"].as_u64() {
            Some(5156) => {
                // What the rule must find, read from the event in its own words.
                let text = |f: &str| event[f].as_str().unwrap_or("").to_ascii_lowercase();
                if text("Direction") == "%%14593"
                    && text("Protocol") == "6"
                    && text("Application").starts_with("\\device\\harddiskvolume")
                    && text("DestAddress").contains('.')
                {
                    expected_outbound += 1;
                }
                outbound_5156 += own_hits;
                sigmahq_5156 += found.len() - own_hits;
            }
            Some(3) => sysmon_outbound += own_hits,
            Some(4104) => ps_script += found.len(),
            Some(4103) => ps_module += found.len(),
            _ => assert_eq!(own_hits, 0, "{line}"),
        }
    }
    assert_eq!((outbound_5156, expected_outbound), (298, 298));
    assert_eq!(
        sysmon_outbound, 80,
        "the same rule on the captures' Sysmon 3 events"
    );
    // SigmaHQ's network rules look for rarer programs than these captures run (their Sysmon 3
    // events match none either); its PowerShell rules find Empire's and the LSASS campaign's.
    assert_eq!(sigmahq_5156, 0);
    assert_eq!((ps_script, ps_module), (3, 18));
}
