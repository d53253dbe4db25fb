//! The scan memo through a whole replay: Sysmon process-access events whose call traces repeat,
//! under a rule whose call-trace literals include a one-byte `)` (so the field has no skip and
//! is walked), match exactly the events a walk matches, and the replay's summary counts the
//! texts the memo answered.

mod common;

use std::io::Write;

use common::*;

const RULE: &str = r#"title: Process access from an unknown module
id: 5b1c8a2e-3f4d-4e6a-9b7c-0d1e2f3a4b5c
status: test
logsource:
    category: process_access
    product: windows
detection:
    selection:
        CallTrace|contains: 'UNKNOWN('
        CallTrace|endswith: ')'
    condition: selection
level: high
"#;

/// A call trace of `frames` frames through `module`, ending in an unknown module when `unknown`.
fn call_trace(module: &str, frames: usize, unknown: bool) -> String {
    let mut t: Vec<String> = (0..frames)
        .map(|i| {
            format!(
                "C:\\\\Windows\\\\System32\\\\{module}+{:x}",
                0x9c000 + i * 0x1f3
            )
        })
        .collect();
    if unknown {
        t.push("UNKNOWN(00007FF8A1B2C3D4)".to_string());
    }
    t.join("|")
}

#[test]
fn repeated_call_traces_match_as_walked_and_are_counted_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("unknown_module.yml"), RULE).unwrap();
    let set = rules(&[rules_dir]);

    // Four distinct traces, two of them from an unknown module, each repeated 25 times.
    let traces = [
        call_trace("ntdll.dll", 8, false),
        call_trace("KERNELBASE.dll", 8, true),
        call_trace("ntdll.dll", 8, true),
        call_trace("dbghelp.dll", 12, false),
    ];
    let input = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    let mut expected = 0;
    for i in 0..100usize {
        let k = (i * 7) % traces.len();
        expected += usize::from(traces[k].ends_with(')'));
        writeln!(
            f,
            r#"{{"EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","UtcTime":"2024-03-01 10:{:02}:{:02}.000","Computer":"WKS1","EventRecordID":{i},"SourceImage":"C:\\Windows\\System32\\svchost.exe","TargetImage":"C:\\Windows\\System32\\lsass.exe","GrantedAccess":"0x1010","CallTrace":"{}"}}"#,
            i / 60,
            i % 60,
            traces[k]
        )
        .unwrap();
    }
    drop(f);
    assert_eq!(expected, 50);

    let (text, summary, _out) = replay(&set, &[input], 1, "5m");
    let found = alerts(&text)
        .iter()
        .filter(|a| {
            a["finding_info"]["title"]
                .as_str()
                .is_some_and(|t| t.contains("unknown module"))
        })
        .count();
    assert_eq!(summary.workers.matches.iter().sum::<u64>(), expected as u64);
    assert!(found > 0, "the detections alert:\n{text}");
    // Every trace is looked up; each distinct one is walked at least once. Usually the four sit
    // in four entries (96 hits); the entry is picked by a hash seeded with the scanner's
    // number, which depends on build order, and two traces that share an entry evict each
    // other on every turn, so the floor is 48.
    let memo = summary.workers.memo;
    assert_eq!(memo.hits + memo.misses, 100);
    assert!(memo.misses >= traces.len() as u64, "{memo:?}");
    assert!(memo.hits >= 48, "{memo:?}");
}
