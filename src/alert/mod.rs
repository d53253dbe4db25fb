//! Alert: a [`Finding`] rendered as an OCSF Detection Finding (class 2004), one JSON object.
//!
//! The alert's `finding_info.uid` is derived from the rule id, the group key and the first
//! contributing event's id, so a replay, a restart or a second instance produce the same id for
//! the same chain and downstream systems can drop duplicates. Every contributing event is listed
//! in `evidences` (with its source position: file and line, or topic, partition and offset, so an
//! analyst finds it again) and in `finding_info.related_events`.

pub mod attack;
pub mod escape;
pub mod evidence;
pub mod incident;
pub mod signature;
pub mod triage;

pub use evidence::AlertOptions;

use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use crate::correlate::Finding;
use crate::input::{SourceInfo, Sources};
use crate::matcher::RuleSet;
use crate::sigma::RuleMeta;
use crate::vocab::{GROUP_SEPARATOR, IDENTITY_FIELD, Target};

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
    remediation: triage::Remediation<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<evidence::Resource<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    observables: Vec<evidence::Observable<'a>>,
    finding_info: FindingInfo<'a>,
    evidences: Vec<Evidence<'a>>,
    metadata: Metadata<'a>,
    unmapped: Unmapped<'a>,
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
    /// Every rule of the incident (when incidents are on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_analytics: Vec<RelatedAnalytic<'a>>,
    related_events_count: usize,
    related_events: Vec<RelatedEvent<'a>>,
}

#[derive(Serialize)]
struct RelatedAnalytic<'a> {
    name: &'a str,
    type_id: u8,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The incident a line belongs to, beside the finding's own id.
#[derive(Serialize)]
struct IncidentFields<'a> {
    /// The finding's own deterministic id (the incident's id is `finding_info.uid`).
    finding_uid: &'a str,
    /// Every rule that matched in the incident so far.
    rules: &'a [String],
    /// Findings in the incident so far.
    findings: u32,
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
    #[serde(flatten)]
    objects: evidence::Objects<'a>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<IncidentFields<'a>>,
    /// Why `confidence` is what it is.
    confidence_reasons: Vec<&'static str>,
    /// The rule's `falsepositives`: what else can look like this.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    falsepositives: &'a [String],
    /// Contributing events not shown in `evidences` (beyond the alert's bound).
    #[serde(skip_serializing_if = "is_zero")]
    evidences_omitted: usize,
    /// Contributing events not listed in `finding_info.related_events`.
    #[serde(skip_serializing_if = "is_zero")]
    related_events_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct GroupValue<'a> {
    field: &'a str,
    value: &'a str,
}

/// The rule that decided `finding`.
pub fn rule_meta<'r>(finding: &Finding, rules: &'r RuleSet) -> &'r RuleMeta {
    match finding.target {
        Target::Correlation(c) => &rules.meta[rules.correlations[c as usize].rule as usize],
        Target::Detection(d) => rules.detection_meta(d),
    }
}

/// The finding's own deterministic id ([`alert_uid`] of its rule, group and first event).
pub fn finding_uid(finding: &Finding, rules: &RuleSet) -> String {
    let first = finding.events.first().map(|(e, _)| &*e.id).unwrap_or("");
    alert_uid(rule_meta(finding, rules), &finding.group, first)
}

/// Renders `finding` as one line of OCSF JSON (no trailing newline) into `out`, within
/// `options`' bounds: when the line would pass [`AlertOptions::max_bytes`], it is rendered
/// again with half the evidences and related events, down to the first and last event. Every
/// string is escaped by [`escape::SafeFormatter`].
pub fn render(
    finding: &Finding,
    rules: &RuleSet,
    sources: &Sources,
    options: &AlertOptions,
    incident: Option<&incident::Joined>,
    out: &mut Vec<u8>,
) -> Result<String, serde_json::Error> {
    let start = out.len();
    let mut shown = options.max_evidences.max(2);
    let mut related = MAX_RELATED_EVENTS;
    loop {
        let uid = render_bounded(finding, rules, sources, incident, shown, related, out)?;
        let fits = out.len() - start <= options.max_bytes;
        if fits || (shown <= 2 && related <= 2) {
            return Ok(uid);
        }
        out.truncate(start);
        shown = (shown / 2).max(2);
        related = (related.min(finding.events.len()) / 2).max(2);
    }
}

/// Most events listed in `finding_info.related_events` (the rest are counted).
pub const MAX_RELATED_EVENTS: usize = 1000;

fn render_bounded(
    finding: &Finding,
    rules: &RuleSet,
    sources: &Sources,
    incident: Option<&incident::Joined>,
    max_evidences: usize,
    max_related: usize,
    out: &mut Vec<u8>,
) -> Result<String, serde_json::Error> {
    let (meta, stage_names, kind, group_fields, timespan, template, runbook) = match finding.target
    {
        Target::Correlation(c) => {
            let corr = &rules.correlations[c as usize];
            (
                &rules.meta[corr.rule as usize],
                corr.stage_names.clone(),
                corr.kind.name(),
                corr.group_by.clone(),
                Some(corr.timespan.to_string()),
                corr.message.as_ref(),
                corr.runbook.as_deref(),
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
                None,
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
    let (severity_id, severity) = triage::severity(&finding.score);
    let (confidence_id, confidence, confidence_reasons) = triage::confidence(&finding.score);
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
    let picked = evidence::pick(&finding.events, max_evidences);
    let evidences = picked
        .iter()
        .map(|&i| &finding.events[i])
        .map(|(e, stage)| Evidence {
            objects: evidence::objects(e.details.as_deref()),
            data: EvidenceData {
                event_uid: &e.id,
                time: e.time.as_millis(),
                time_dt: e.time.to_string(),
                stage: *stage,
                stage_name: stage_names
                    .get(*stage as usize)
                    .map(String::as_str)
                    .unwrap_or(""),
                source: match (
                    e.details.as_deref().and_then(|d| d.origin()),
                    sources.get(e.pos.source),
                ) {
                    // Read by another instance (a cluster's stage 1): where it read the event.
                    (Some((true, file, _, line)), _) => SourceRef::File {
                        file: file.to_string(),
                        line,
                    },
                    (Some((false, topic, partition, offset)), _) => SourceRef::Kafka {
                        topic,
                        partition,
                        offset,
                    },
                    (None, Some(SourceInfo::File(p))) => SourceRef::File {
                        file: p.display().to_string(),
                        line: e.pos.offset,
                    },
                    (None, Some(SourceInfo::Stdin)) => SourceRef::File {
                        file: "-".into(),
                        line: e.pos.offset,
                    },
                    (None, Some(SourceInfo::Kafka { topic, partition })) => SourceRef::Kafka {
                        topic,
                        partition: *partition,
                        offset: e.pos.offset,
                    },
                    (None, None) => SourceRef::Unknown {
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
        .take(max_related)
        .map(|(e, stage)| RelatedEvent {
            uid: &e.id,
            type_name: stage_names
                .get(*stage as usize)
                .map(String::as_str)
                .unwrap_or(""),
        })
        .collect();
    let duration = end.since(start);
    // Today's activity when incidents are off: a Create, or an Update of an announced chain.
    let activity = match incident {
        Some(i) => i.activity,
        None if finding.update => incident::Activity::Update,
        None => incident::Activity::Create,
    };
    let shown_uid = incident.map_or(uid.as_str(), |i| i.uid.as_str());
    let (first_seen, last_seen) = incident.map_or((start, end), |i| (i.first_seen, i.last_seen));
    let doc = DetectionFinding {
        activity_id: activity.id(),
        activity_name: activity.name(),
        category_uid: 2,
        category_name: "Findings",
        class_uid: 2004,
        class_name: "Detection Finding",
        type_uid: 200_400 + activity.id() as u32,
        type_name: match activity {
            incident::Activity::Create => "Detection Finding: Create",
            incident::Activity::Update => "Detection Finding: Update",
            incident::Activity::Close => "Detection Finding: Close",
        },
        severity_id,
        severity,
        status_id: if activity == incident::Activity::Create {
            1
        } else {
            2
        },
        status: if activity == incident::Activity::Create {
            "New"
        } else {
            "In Progress"
        },
        is_alert: finding.is_alert,
        time: finding.time.as_millis(),
        start_time: start.as_millis(),
        end_time: end.as_millis(),
        count: finding.events.len(),
        confidence_id,
        confidence,
        risk_score: finding.score.score,
        risk_level_id: finding.score.risk_level().0,
        risk_level: finding.score.risk_level().1,
        risk_details: triage::risk_details(&finding.score),
        remediation: triage::remediation(finding, meta, runbook, &who),
        resources: evidence::chain_resources(&finding.events),
        observables: evidence::observables(&finding.events),
        message: triage::message(finding, meta, template, &who),
        finding_info: FindingInfo {
            uid: shown_uid.to_string(),
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
            first_seen_time: first_seen.as_millis(),
            last_seen_time: last_seen.as_millis(),
            related_analytics: incident.map_or(Vec::new(), |i| {
                i.rules
                    .iter()
                    .map(|r| RelatedAnalytic {
                        name: r,
                        type_id: 1,
                        kind: "Rule",
                    })
                    .collect()
            }),
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
            uid: shown_uid,
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
                incident: incident.map(|i| IncidentFields {
                    finding_uid: &uid,
                    rules: &i.rules,
                    findings: i.findings,
                }),
                confidence_reasons,
                falsepositives: &meta.falsepositives,
                evidences_omitted: finding.events.len() - picked.len(),
                related_events_omitted: finding.events.len().saturating_sub(max_related),
            },
        },
    };
    escape::SafeFormatter::write(out, &doc)?;
    Ok(match activity {
        // A Close is its own message, apart from the finding it repeats.
        incident::Activity::Close => format!("{uid}/close"),
        _ => uid,
    })
}
