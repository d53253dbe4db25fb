//! Alert: a [`Finding`] rendered as an OCSF Detection Finding (class 2004), one JSON object.
//!
//! The alert's `finding_info.uid` is derived from the rule id, the group key and the first
//! contributing event's id, so a replay, a restart or a second instance produce the same id for
//! the same chain and downstream systems can drop duplicates. Every contributing event is listed
//! in `evidences` (with its source position: file and line, or topic, partition and offset, so an
//! analyst finds it again) and in `finding_info.related_events`.

pub mod attack;
pub mod signature;

use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use crate::correlate::Finding;
use crate::input::{SourceInfo, Sources};
use crate::matcher::RuleSet;
use crate::sigma::{Level, RuleMeta};
use crate::vocab::{GROUP_SEPARATOR, IDENTITY_FIELD, Target, TouchKind};

/// The OCSF schema version alerts follow.
pub const OCSF_VERSION: &str = "1.4.0";
/// The product name in `metadata.product`.
pub const PRODUCT: &str = "credtrail";

/// The deterministic alert id: a UUID-shaped hex form of a 128-bit hash.
pub fn alert_uid(rule: &RuleMeta, group: &str, first_event_id: &str) -> String {
    let mut h = Xxh3::new();
    let rule_key = rule.id.as_deref().unwrap_or(&rule.title);
    for part in [rule_key, group, first_event_id] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let x = h.digest128();
    let hex = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// OCSF severity from a Sigma level.
pub fn severity(level: Option<Level>) -> (u8, &'static str) {
    match level {
        None => (0, "Unknown"),
        Some(Level::Informational) => (1, "Informational"),
        Some(Level::Low) => (2, "Low"),
        Some(Level::Medium) => (3, "Medium"),
        Some(Level::High) => (4, "High"),
        Some(Level::Critical) => (5, "Critical"),
    }
}

#[derive(Serialize)]
struct DetectionFinding<'a> {
    activity_id: u8,
    activity_name: &'static str,
    category_uid: u8,
    category_name: &'static str,
    class_uid: u16,
    class_name: &'static str,
    type_uid: u32,
    type_name: &'static str,
    severity_id: u8,
    severity: &'static str,
    status_id: u8,
    status: &'static str,
    is_alert: bool,
    time: i64,
    start_time: i64,
    end_time: i64,
    count: usize,
    message: String,
    confidence_id: u8,
    confidence: &'static str,
    risk_score: u32,
    risk_level_id: u8,
    risk_level: &'static str,
    risk_details: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<Resource<'a>>,
    finding_info: FindingInfo<'a>,
    evidences: Vec<Evidence<'a>>,
    metadata: Metadata<'a>,
    unmapped: Unmapped<'a>,
}

/// An OCSF `resource_details` object: something the chain touched.
#[derive(Serialize)]
struct Resource<'a> {
    uid: &'a str,
    #[serde(rename = "type")]
    kind: TouchKind,
}

#[derive(Serialize)]
struct FindingInfo<'a> {
    uid: String,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    desc: Option<&'a str>,
    analytic: Analytic<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attacks: Vec<attack::Attack>,
    types: Vec<&'static str>,
    first_seen_time: i64,
    last_seen_time: i64,
    related_events_count: usize,
    related_events: Vec<RelatedEvent<'a>>,
}

#[derive(Serialize)]
struct Analytic<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    name: &'a str,
    type_id: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'a str,
}

#[derive(Serialize)]
struct RelatedEvent<'a> {
    uid: &'a str,
    type_name: &'a str,
}

#[derive(Serialize)]
struct Evidence<'a> {
    data: EvidenceData<'a>,
}

#[derive(Serialize)]
struct EvidenceData<'a> {
    event_uid: &'a str,
    time: i64,
    time_dt: String,
    stage: u32,
    stage_name: &'a str,
    source: SourceRef<'a>,
    /// Who acted in this event, and how lineage tied it to the group's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SourceRef<'a> {
    File {
        file: String,
        line: u64,
    },
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: u64,
    },
    Unknown {
        source: u32,
        offset: u64,
    },
}

#[derive(Serialize)]
struct Metadata<'a> {
    product: Product,
    version: &'static str,
    uid: &'a str,
    correlation_uid: &'a str,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Unmapped<'a> {
    credtrail: CredtrailFields<'a>,
}

#[derive(Serialize)]
struct CredtrailFields<'a> {
    rule_kind: &'static str,
    rule_file: String,
    group_by: Vec<GroupValue<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timespan: Option<String>,
    duration_ms: i64,
    /// Stages reached and stages of the rule.
    stage: [u32; 2],
    /// The blast radius breakdown: each factor's value, weight and points (they add up to
    /// `risk_score`).
    score: &'a crate::score::Score,
    touched: crate::score::Touched,
    /// The aggregate the condition compared, when it is not just the number of events
    /// (sums, averages, percentiles, counts decided when a window closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregate: Option<f64>,
}

#[derive(Serialize)]
struct GroupValue<'a> {
    field: &'a str,
    value: &'a str,
}

/// The breakdown in words: `reach 31/35 (0.886: privilege admin, ...) + ... = 78`.
pub fn risk_details(score: &crate::score::Score) -> String {
    let parts: Vec<String> = score
        .factors
        .iter()
        .map(|f| {
            format!(
                "{} {}/{} ({:.3}: {})",
                f.name, f.points, f.weight, f.value, f.detail
            )
        })
        .collect();
    let mut s = format!("blast radius {} = {}", score.score, parts.join(" + "));
    if score.canary {
        s.push_str("; canary used");
    }
    if !score.in_inventory {
        s.push_str("; identity not in the inventory");
    }
    s
}

/// Renders `finding` as one line of OCSF JSON (no trailing newline) into `out`.
pub fn render(
    finding: &Finding,
    rules: &RuleSet,
    sources: &Sources,
    out: &mut Vec<u8>,
) -> Result<String, serde_json::Error> {
    let (meta, stage_names, kind, group_fields, timespan) = match finding.target {
        Target::Correlation(c) => {
            let corr = &rules.correlations[c as usize];
            (
                &rules.meta[corr.rule as usize],
                corr.stage_names.clone(),
                corr.kind.name(),
                corr.group_by.clone(),
                Some(corr.timespan.to_string()),
            )
        }
        Target::Detection(d) => {
            let meta = rules.detection_meta(d);
            let name = meta.name.clone().unwrap_or_else(|| meta.title.clone());
            (
                meta,
                vec![name],
                "detection",
                vec![IDENTITY_FIELD.to_string()],
                None,
            )
        }
    };
    let first = finding.events.first().map(|(e, _)| &*e.id).unwrap_or("");
    let uid = alert_uid(meta, &finding.group, first);
    let start = finding
        .events
        .first()
        .map(|(e, _)| e.time)
        .unwrap_or(finding.time);
    let end = finding
        .events
        .last()
        .map(|(e, _)| e.time)
        .unwrap_or(finding.time);
    let (severity_id, severity) = severity(meta.level);
    let group_values: Vec<&str> = finding.group.split(GROUP_SEPARATOR).collect();
    let group_by: Vec<GroupValue<'_>> = group_fields
        .iter()
        .zip(group_values.iter())
        .map(|(f, v)| GroupValue { field: f, value: v })
        .collect();
    let who = if finding.group.is_empty() {
        "no group".to_string()
    } else {
        group_values.join(", ")
    };
    let evidences = finding
        .events
        .iter()
        .map(|(e, stage)| Evidence {
            data: EvidenceData {
                event_uid: &e.id,
                time: e.time.as_millis(),
                time_dt: e.time.to_string(),
                stage: *stage,
                stage_name: stage_names
                    .get(*stage as usize)
                    .map(String::as_str)
                    .unwrap_or(""),
                source: match sources.get(e.pos.source) {
                    Some(SourceInfo::File(p)) => SourceRef::File {
                        file: p.display().to_string(),
                        line: e.pos.offset,
                    },
                    Some(SourceInfo::Stdin) => SourceRef::File {
                        file: "-".into(),
                        line: e.pos.offset,
                    },
                    Some(SourceInfo::Kafka { topic, partition }) => SourceRef::Kafka {
                        topic,
                        partition: *partition,
                        offset: e.pos.offset,
                    },
                    None => SourceRef::Unknown {
                        source: e.pos.source,
                        offset: e.pos.offset,
                    },
                },
                actor: e.actor.as_deref(),
            },
        })
        .collect();
    let related_events = finding
        .events
        .iter()
        .map(|(e, stage)| RelatedEvent {
            uid: &e.id,
            type_name: stage_names
                .get(*stage as usize)
                .map(String::as_str)
                .unwrap_or(""),
        })
        .collect();
    let duration = end.since(start);
    let doc = DetectionFinding {
        activity_id: if finding.update { 2 } else { 1 },
        activity_name: if finding.update { "Update" } else { "Create" },
        category_uid: 2,
        category_name: "Findings",
        class_uid: 2004,
        class_name: "Detection Finding",
        type_uid: if finding.update { 200_402 } else { 200_401 },
        type_name: if finding.update {
            "Detection Finding: Update"
        } else {
            "Detection Finding: Create"
        },
        severity_id,
        severity,
        status_id: if finding.update { 2 } else { 1 },
        status: if finding.update { "In Progress" } else { "New" },
        is_alert: finding.is_alert,
        time: finding.time.as_millis(),
        start_time: start.as_millis(),
        end_time: end.as_millis(),
        count: finding.events.len(),
        confidence_id: if finding.canary { 3 } else { 2 },
        confidence: if finding.canary { "High" } else { "Medium" },
        risk_score: finding.score.score,
        risk_level_id: finding.score.risk_level().0,
        risk_level: finding.score.risk_level().1,
        risk_details: risk_details(&finding.score),
        resources: finding
            .resources
            .iter()
            .map(|(k, v)| Resource { uid: v, kind: *k })
            .collect(),
        message: format!(
            "{}: {} event(s) by {} from {} to {}",
            meta.title,
            finding.events.len(),
            who,
            start,
            end
        ),
        finding_info: FindingInfo {
            uid: uid.clone(),
            title: &meta.title,
            desc: meta.description.as_deref(),
            analytic: Analytic {
                uid: meta.id.as_deref(),
                name: &meta.title,
                type_id: 1,
                kind: "Rule",
                version: &meta.version,
            },
            attacks: attack::from_tags(&meta.tags),
            types: vec![kind],
            first_seen_time: start.as_millis(),
            last_seen_time: end.as_millis(),
            related_events_count: finding.events.len(),
            related_events,
        },
        evidences,
        metadata: Metadata {
            product: Product {
                name: PRODUCT,
                vendor_name: PRODUCT,
                version: env!("CARGO_PKG_VERSION"),
            },
            version: OCSF_VERSION,
            uid: &uid,
            correlation_uid: &finding.group,
        },
        unmapped: Unmapped {
            credtrail: CredtrailFields {
                rule_kind: kind,
                rule_file: meta.file.display().to_string(),
                group_by,
                timespan,
                duration_ms: duration.as_millis(),
                stage: [finding.stage.0, finding.stage.1],
                score: &finding.score,
                touched: finding.touched,
                aggregate: finding.measure,
            },
        },
    };
    serde_json::to_writer(&mut *out, &doc)?;
    Ok(uid)
}
