//! The shipped processing pipelines (`pipelines/`): the same rules find the same events whether
//! the events are raw (CloudTrail records, flat Windows) or reshaped (ECS, OCSF, Winlogbeat) and
//! the rules go through the matching pipeline. The reshaping below restates each target
//! schema's layout independently of the pipeline files, so a wrong or missing mapping shows up
//! as a difference. Real public events and SigmaHQ rules from the public data root
//! (`common/public_data.rs`), and the shipped pack.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::{self, LoadOptions, YamlBudget, processing};
use credtrail::time::EventTime;

use common::{shared, shared_path};

fn rules(paths: &[PathBuf], pipeline: Option<&str>) -> RuleSet {
    let pipelines = match pipeline {
        Some(p) => processing::load(&[PathBuf::from(p)], YamlBudget::default()).unwrap(),
        None => Vec::new(),
    };
    let catalog = sigma::load(paths, &LoadOptions::with_pipelines(pipelines))
        .unwrap_or_else(|e| panic!("{e}"));
    matcher::compile(&catalog, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn read_jsonl(path: &Path, limit: usize) -> Vec<Value> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(f)
        .lines()
        .map(|l| l.unwrap())
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

/// (rule title, event index) of every detection match.
fn matches(rules: &RuleSet, events: &[Value]) -> BTreeSet<(String, usize)> {
    let mut decoder = credtrail::decode::Decoder::new(&rules.schema);
    let mut m = Matcher::new(rules);
    let mut out = BTreeSet::new();
    for (i, ev) in events.iter().enumerate() {
        let text = ev.to_string();
        decoder.decode(&rules.schema, text.as_bytes(), text.len(), |view| {
            let view = view.unwrap_or_else(|e| panic!("event {i}: {e}: {text}"));
            let mut hits = Vec::new();
            m.matches(rules, &view, &mut hits);
            for d in hits {
                out.insert((rules.detection_meta(d).title.clone(), i));
            }
        });
    }
    out
}

fn same_matches(raw: &BTreeSet<(String, usize)>, mapped: &BTreeSet<(String, usize)>, what: &str) {
    let only_raw: Vec<_> = raw.difference(mapped).take(10).collect();
    let only_mapped: Vec<_> = mapped.difference(raw).take(10).collect();
    assert!(
        only_raw.is_empty() && only_mapped.is_empty(),
        "{what}: matches differ\n only raw: {only_raw:?}\n only mapped: {only_mapped:?}"
    );
    let distinct: BTreeSet<&String> = raw.iter().map(|(r, _)| r).collect();
    assert!(
        distinct.len() >= 5,
        "{what}: too few rules match to show anything ({distinct:?})"
    );
    eprintln!(
        "{what}: {} matches of {} rules agree",
        raw.len(),
        distinct.len()
    );
}

fn get(v: &Value, path: &[&str]) -> Value {
    let mut at = v;
    for k in path {
        match at.get(k) {
            Some(x) => at = x,
            None => return Value::Null,
        }
    }
    at.clone()
}

/// Drops nulls so absent fields stay absent.
fn object(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        if !v.is_null() && v != json!({}) {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

/// A CloudTrail record as Elastic's aws.cloudtrail integration writes it.
fn cloudtrail_to_ecs(r: &Value) -> Value {
    let id = |k: &str| get(r, &["userIdentity", k]);
    let issuer = |k: &str| get(r, &["userIdentity", "sessionContext", "sessionIssuer", k]);
    object(vec![
        ("@timestamp", r["eventTime"].clone()),
        (
            "event",
            object(vec![
                ("action", r["eventName"].clone()),
                ("provider", r["eventSource"].clone()),
                ("id", r["eventID"].clone()),
                ("dataset", json!("aws.cloudtrail")),
            ]),
        ),
        (
            "source",
            object(vec![("address", r["sourceIPAddress"].clone())]),
        ),
        (
            "user_agent",
            object(vec![("original", r["userAgent"].clone())]),
        ),
        (
            "cloud",
            object(vec![
                ("region", r["awsRegion"].clone()),
                (
                    "account",
                    object(vec![("id", r["recipientAccountId"].clone())]),
                ),
            ]),
        ),
        (
            "user",
            object(vec![("id", id("principalId")), ("name", id("userName"))]),
        ),
        (
            "aws",
            json!({"cloudtrail": object(vec![
                ("error_code", r["errorCode"].clone()),
                ("error_message", r["errorMessage"].clone()),
                ("event_type", r["eventType"].clone()),
                ("event_version", r["eventVersion"].clone()),
                ("event_category", r["eventCategory"].clone()),
                ("read_only", r["readOnly"].clone()),
                ("management_event", r["managementEvent"].clone()),
                ("vpc_endpoint_id", r["vpcEndpointId"].clone()),
                ("resources", r["resources"].clone()),
                ("user_identity", object(vec![
                    ("type", id("type")),
                    ("arn", id("arn")),
                    ("access_key_id", id("accessKeyId")),
                    ("invoked_by", id("invokedBy")),
                    ("account_id", id("accountId")),
                    ("session_context", object(vec![
                        ("session_issuer", object(vec![
                            ("type", issuer("type")),
                            ("arn", issuer("arn")),
                            ("user_name", issuer("userName")),
                        ])),
                        ("mfa_authenticated", get(r, &["userIdentity", "sessionContext", "attributes", "mfaAuthenticated"])),
                    ])),
                ])),
                ("flattened", object(vec![
                    ("request_parameters", r["requestParameters"].clone()),
                    ("response_elements", r["responseElements"].clone()),
                    ("additional_eventdata", r["additionalEventData"].clone()),
                    ("service_event_details", r["serviceEventDetails"].clone()),
                ])),
            ])}),
        ),
    ])
}

/// A CloudTrail record as Amazon Security Lake writes it (OCSF API Activity).
fn cloudtrail_to_ocsf(r: &Value) -> Value {
    let id = |k: &str| get(r, &["userIdentity", k]);
    let time = r["eventTime"]
        .as_str()
        .and_then(EventTime::parse)
        .map(|t| t.0 / 1_000_000)
        .unwrap();
    object(vec![
        ("class_uid", json!(6003)),
        ("time", json!(time)),
        ("metadata", json!({"uid": r["eventID"], "version": "1.1.0"})),
        (
            "api",
            object(vec![
                ("operation", r["eventName"].clone()),
                ("service", object(vec![("name", r["eventSource"].clone())])),
                (
                    "request",
                    object(vec![("data", r["requestParameters"].clone())]),
                ),
                (
                    "response",
                    object(vec![
                        ("data", r["responseElements"].clone()),
                        ("error", r["errorCode"].clone()),
                        ("message", r["errorMessage"].clone()),
                    ]),
                ),
            ]),
        ),
        (
            "src_endpoint",
            object(vec![("ip", r["sourceIPAddress"].clone())]),
        ),
        (
            "http_request",
            object(vec![("user_agent", r["userAgent"].clone())]),
        ),
        (
            "cloud",
            object(vec![
                ("region", r["awsRegion"].clone()),
                (
                    "account",
                    object(vec![("uid", r["recipientAccountId"].clone())]),
                ),
            ]),
        ),
        (
            "actor",
            object(vec![
                (
                    "user",
                    object(vec![
                        ("type", id("type")),
                        ("uid", id("arn")),
                        ("credential_uid", id("accessKeyId")),
                        ("uid_alt", id("principalId")),
                        ("name", id("userName")),
                        ("account", object(vec![("uid", id("accountId"))])),
                    ]),
                ),
                ("invoked_by", id("invokedBy")),
                (
                    "session",
                    object(vec![(
                        "issuer",
                        get(
                            r,
                            &["userIdentity", "sessionContext", "sessionIssuer", "arn"],
                        ),
                    )]),
                ),
            ]),
        ),
        (
            "unmapped",
            object(vec![
                ("userIdentity", r["userIdentity"].clone()),
                ("additionalEventData", r["additionalEventData"].clone()),
                ("resources", r["resources"].clone()),
                ("eventType", r["eventType"].clone()),
                ("eventVersion", r["eventVersion"].clone()),
                ("eventCategory", r["eventCategory"].clone()),
                ("readOnly", r["readOnly"].clone()),
                ("managementEvent", r["managementEvent"].clone()),
                ("vpcEndpointId", r["vpcEndpointId"].clone()),
            ]),
        ),
    ])
}

const WINDOWS_SYSTEM: &[(&str, &str)] = &[
    ("EventID", "event_id"),
    ("Channel", "channel"),
    ("SourceName", "provider_name"),
    ("ProviderGuid", "provider_guid"),
    ("Hostname", "computer_name"),
    ("RecordNumber", "record_id"),
    ("Task", "task"),
    ("Keywords", "keywords"),
    ("Opcode", "opcode"),
    ("Version", "version"),
];

/// A flat (OTRF / nxlog) Windows event as Winlogbeat nests it.
fn windows_to_winlogbeat(e: &Value, ecs: bool) -> Value {
    let flat = e.as_object().unwrap();
    let mut winlog = Map::new();
    let mut data = Map::new();
    let mut out = Map::new();
    for (k, v) in flat {
        if let Some((_, to)) = WINDOWS_SYSTEM.iter().find(|(from, _)| from == k) {
            winlog.insert(to.to_string(), v.clone());
        } else {
            match k.as_str() {
                "@timestamp" => {
                    out.insert(k.clone(), v.clone());
                }
                "Message" => {
                    out.insert("message".into(), v.clone());
                }
                "Level" => {
                    out.insert("log".into(), json!({"level": v}));
                }
                "TimeCreated" | "EventTime" | "EventReceivedTime" => {}
                _ => {
                    data.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if ecs {
        let d = Value::Object(data.clone());
        let f = |k: &str| d[k].clone();
        let either = |a: &str, b: &str| if d[a].is_null() { f(b) } else { f(a) };
        let process = object(vec![
            // Winlogbeat's security module reads 4688's own names into the same fields.
            ("executable", either("Image", "NewProcessName")),
            ("command_line", f("CommandLine")),
            ("working_directory", f("CurrentDirectory")),
            ("pid", f("ProcessId")),
            ("entity_id", f("ProcessGuid")),
            (
                "pe",
                object(vec![
                    ("original_file_name", f("OriginalFileName")),
                    ("company", f("Company")),
                    ("description", f("Description")),
                    ("product", f("Product")),
                    ("file_version", f("FileVersion")),
                ]),
            ),
            (
                "parent",
                object(vec![
                    ("executable", either("ParentImage", "ParentProcessName")),
                    ("command_line", f("ParentCommandLine")),
                    ("pid", f("ParentProcessId")),
                    ("entity_id", f("ParentProcessGuid")),
                ]),
            ),
        ]);
        out.insert("process".into(), process);
        for (k, v) in [
            (
                "destination",
                object(vec![
                    ("ip", f("DestinationIp")),
                    ("port", f("DestinationPort")),
                    ("domain", f("DestinationHostname")),
                ]),
            ),
            (
                "source",
                object(vec![("ip", f("SourceIp")), ("port", f("SourcePort"))]),
            ),
            ("network", object(vec![("transport", f("Protocol"))])),
            (
                "dns",
                object(vec![("question", object(vec![("name", f("QueryName"))]))]),
            ),
            (
                "file",
                object(vec![(
                    "path",
                    if d["TargetFilename"].is_null() {
                        f("ImageLoaded")
                    } else {
                        f("TargetFilename")
                    },
                )]),
            ),
        ] {
            if v != json!({}) {
                out.insert(k.into(), v);
            }
        }
        out.insert("host".into(), json!({"name": winlog.get("computer_name")}));
    }
    if !out.contains_key("@timestamp") {
        // nxlog-shipped events carry only TimeCreated; Winlogbeat always writes @timestamp.
        let t = flat.get("TimeCreated").or(flat.get("EventTime")).cloned();
        out.insert("@timestamp".into(), t.unwrap_or(Value::Null));
    }
    winlog.insert("event_data".into(), Value::Object(data));
    out.insert("winlog".into(), Value::Object(winlog));
    out.insert("event".into(), json!({"kind": "event"}));
    Value::Object(out)
}

fn cloudtrail() -> PathBuf {
    shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl")
}

fn ct_rules() -> Vec<PathBuf> {
    vec![
        shared_path("sigma/rules/cloud"),
        PathBuf::from("rules/cloudtrail"),
    ]
}

#[test]
fn cloudtrail_rules_find_the_same_events_in_ecs() {
    let raw = read_jsonl(&cloudtrail(), usize::MAX);
    let ecs: Vec<Value> = raw.iter().map(cloudtrail_to_ecs).collect();
    same_matches(
        &matches(&rules(&ct_rules(), None), &raw),
        &matches(
            &rules(&ct_rules(), Some("pipelines/cloudtrail_to_ecs.yml")),
            &ecs,
        ),
        "CloudTrail -> ECS",
    );
}

#[test]
fn cloudtrail_rules_find_the_same_events_in_ocsf() {
    let raw = read_jsonl(&cloudtrail(), usize::MAX);
    let ocsf: Vec<Value> = raw.iter().map(cloudtrail_to_ocsf).collect();
    same_matches(
        &matches(&rules(&ct_rules(), None), &raw),
        &matches(
            &rules(&ct_rules(), Some("pipelines/cloudtrail_to_ocsf.yml")),
            &ocsf,
        ),
        "CloudTrail -> OCSF",
    );
}

const WINDOWS: &[&str] = &[
    "windows/otrf-wardog/cmd_seatbelt_group_user_2020-11-0216391814.jsonl",
    "windows/otrf-wardog/psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.jsonl",
    "windows/otrf-wardog/cmd_sam_copy_esentutl_2020-10-1900290001.jsonl",
    "windows/otrf-shire-empire/empire_shell_net_local_users_2020-09-21192606.jsonl",
    "windows/otrf-shire-empire/empire_schtasks_creation_standard_user_2020-09-21031526.jsonl",
    "windows/otrf-shire-empire/schtask_create_2020-12-1907003032.jsonl",
];

fn win_rules() -> Vec<PathBuf> {
    vec![
        shared_path("sigma/rules/windows"),
        PathBuf::from("rules/windows"),
    ]
}

fn windows_events() -> Vec<Value> {
    WINDOWS
        .iter()
        .flat_map(|f| read_jsonl(&shared(f), usize::MAX))
        .collect()
}

#[test]
fn windows_rules_find_the_same_events_in_winlogbeat_nested_layout() {
    let raw = windows_events();
    let nested: Vec<Value> = raw
        .iter()
        .map(|e| windows_to_winlogbeat(e, false))
        .collect();
    same_matches(
        &matches(&rules(&win_rules(), None), &raw),
        &matches(
            &rules(&win_rules(), Some("pipelines/windows_to_winlogbeat.yml")),
            &nested,
        ),
        "Windows flat -> Winlogbeat",
    );
}

#[test]
fn windows_rules_find_the_same_events_in_ecs() {
    let raw = windows_events();
    let ecs: Vec<Value> = raw.iter().map(|e| windows_to_winlogbeat(e, true)).collect();
    same_matches(
        &matches(&rules(&win_rules(), None), &raw),
        &matches(
            &rules(&win_rules(), Some("pipelines/windows_to_ecs.yml")),
            &ecs,
        ),
        "Windows flat -> ECS",
    );
}

/// With the placeholder values a site defines in a pipeline, the one public rule that does not
/// load on its own loads too.
#[test]
fn a_pipeline_with_placeholder_values_loads_the_whole_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("site.yml");
    std::fs::write(
        &p,
        "name: site values\nvars:\n  Legitimate_Countries: [FR, DE]\n  Legitimate_IP_Ranges: ['10.*']\ntransformations:\n  - type: value_placeholders\n",
    )
    .unwrap();
    let pipelines = processing::load(&[p], YamlBudget::default()).unwrap();
    let catalog = sigma::load(
        &[shared_path("sigma")],
        &LoadOptions::with_pipelines(pipelines),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(catalog.rules.len(), 315);
}
