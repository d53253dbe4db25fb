//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! that lists incidents by risk and, per incident, draws its chain as a timeline (one lane per
//! stage, one mark per event, the chain's duration against the rule's timespan), its score as
//! a waterfall of the factors, its evidence as a table and its lineage path.
//!
//! The geometry is computed here; the page's layout is the template `report.html`, rendered by
//! minijinja with HTML auto-escaping (every value from an alert is escaped).

use serde::Serialize;
use serde_json::Value;

use super::{Incident, ReportError};
use crate::time::EventTime;

const TEMPLATE: &str = include_str!("report.html");

/// Width of the timeline's plotting area and of the waterfall, in SVG units.
const PLOT_WIDTH: f64 = 640.0;
const LANE_HEIGHT: f64 = 26.0;
const LABEL_WIDTH: f64 = 220.0;

#[derive(Serialize)]
struct Page {
    incidents: Vec<IncidentView>,
    total_findings: usize,
}

#[derive(Serialize)]
struct IncidentView {
    uid: String,
    identity: String,
    risk: u64,
    risk_level: String,
    level_class: String,
    confidence: String,
    first_seen: String,
    last_seen: String,
    activities: String,
    rules: Vec<String>,
    message: String,
    risk_details: String,
    remediation: String,
    timeline: Timeline,
    waterfall: Vec<Bar>,
    evidence: Vec<Row>,
    omitted: u64,
    lineage: Vec<String>,
}

#[derive(Serialize)]
struct Timeline {
    height: f64,
    width: f64,
    lanes: Vec<Lane>,
    marks: Vec<Mark>,
    /// Each step from one stage to the next, with the time it took.
    gaps: Vec<Gap>,
    /// The rule's timespan from the first event, when it fits the plot.
    limit_x: Option<f64>,
    limit_label: String,
    start_label: String,
    end_label: String,
}

#[derive(Serialize)]
struct Lane {
    y: f64,
    name: String,
}

#[derive(Serialize)]
struct Mark {
    x: f64,
    y: f64,
    title: String,
}

/// A step between two shown events of different stages: a connector labelled with its
/// duration (the longest gap of a chain is what the rule's timespan must cover).
#[derive(Serialize)]
struct Gap {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    label: String,
    /// The longest step of the chain.
    longest: bool,
}

#[derive(Serialize)]
struct Bar {
    name: String,
    x: f64,
    width: f64,
    points: u64,
    weight: u64,
    detail: String,
}

#[derive(Serialize)]
struct Row {
    time: String,
    stage: String,
    operation: String,
    actor: String,
    source: String,
    target: String,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn time_text(ms: i64) -> String {
    EventTime::from_millis(ms).to_string()
}

/// Renders the page for `incidents` (already in display order).
pub fn render(incidents: &[Incident]) -> Result<String, ReportError> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)?;
    let page = Page {
        total_findings: incidents.iter().map(|i| i.findings.len()).sum(),
        incidents: incidents.iter().map(view).collect(),
    };
    Ok(env.get_template("report.html")?.render(&page)?)
}

fn view(inc: &Incident) -> IncidentView {
    let worst = inc.worst();
    let level = text(&worst["risk_level"]);
    IncidentView {
        uid: inc.uid.clone(),
        identity: inc.identity.clone(),
        risk: inc.risk(),
        level_class: level.to_ascii_lowercase(),
        risk_level: level,
        confidence: text(&worst["confidence"]),
        first_seen: time_text(inc.first_seen()),
        last_seen: time_text(inc.last_seen()),
        activities: activity_summary(&inc.activities),
        rules: inc.rules(),
        message: text(&worst["message"]),
        risk_details: text(&worst["risk_details"]),
        remediation: text(&worst["remediation"]["desc"]),
        timeline: timeline(worst),
        waterfall: waterfall(worst),
        evidence: rows(worst),
        omitted: worst["unmapped"]["credtrail"]["evidences_omitted"]
            .as_u64()
            .unwrap_or(0),
        lineage: lineage(worst),
    }
}

/// `Create → Update ×2 → Close`.
pub fn activity_summary(activities: &[String]) -> String {
    let mut parts: Vec<(String, usize)> = Vec::new();
    for a in activities {
        match parts.last_mut() {
            Some((last, n)) if last == a => *n += 1,
            _ => parts.push((a.clone(), 1)),
        }
    }
    parts
        .into_iter()
        .map(|(a, n)| if n > 1 { format!("{a} ×{n}") } else { a })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn evidences(f: &Value) -> &[Value] {
    f["evidences"].as_array().map_or(&[], Vec::as_slice)
}

fn timeline(f: &Value) -> Timeline {
    let ev = evidences(f);
    let mut lanes: Vec<(u64, String)> = Vec::new();
    for e in ev {
        let stage = e["data"]["stage"].as_u64().unwrap_or(0);
        if !lanes.iter().any(|(s, _)| *s == stage) {
            lanes.push((stage, text(&e["data"]["stage_name"])));
        }
    }
    lanes.sort();
    let start = f["start_time"].as_i64().unwrap_or(0);
    let end = f["end_time"].as_i64().unwrap_or(start);
    let span = (end - start).max(1) as f64;
    let x_of = |t: i64| LABEL_WIDTH + (t - start) as f64 / span * PLOT_WIDTH;
    let y_of = |stage: u64| {
        let i = lanes.iter().position(|(s, _)| *s == stage).unwrap_or(0);
        20.0 + i as f64 * LANE_HEIGHT + LANE_HEIGHT / 2.0
    };
    let marks = ev
        .iter()
        .map(|e| {
            let t = e["data"]["time"].as_i64().unwrap_or(start);
            let op = text(&e["api"]["operation"]);
            let what = if op.is_empty() {
                text(&e["process"]["cmd_line"])
            } else {
                op
            };
            Mark {
                x: x_of(t),
                y: y_of(e["data"]["stage"].as_u64().unwrap_or(0)),
                title: format!("{} {}", time_text(t), what),
            }
        })
        .collect();
    let mut steps: Vec<(i64, u64)> = ev
        .iter()
        .map(|e| {
            (
                e["data"]["time"].as_i64().unwrap_or(start),
                e["data"]["stage"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    steps.sort();
    let mut gaps: Vec<Gap> = steps
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| Gap {
            x1: x_of(w[0].0),
            y1: y_of(w[0].1),
            x2: x_of(w[1].0),
            y2: y_of(w[1].1),
            label: format!("+{}", crate::time::Span::from_millis(w[1].0 - w[0].0)),
            longest: false,
        })
        .collect();
    let longest = steps
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1].0 - w[0].0)
        .enumerate()
        .max_by_key(|&(_, d)| d)
        .map(|(i, _)| i);
    if let Some(g) = longest.and_then(|i| gaps.get_mut(i)) {
        g.longest = true;
    }
    let timespan = text(&f["unmapped"]["credtrail"]["timespan"]);
    let limit_ms = crate::time::Span::parse(&timespan)
        .ok()
        .map(|s| s.as_millis());
    let limit_x = limit_ms
        .filter(|ms| (*ms as f64) <= span * 1.5)
        .map(|ms| x_of(start + ms).min(LABEL_WIDTH + PLOT_WIDTH * 1.5));
    let lanes_view: Vec<Lane> = lanes
        .iter()
        .map(|(s, name)| Lane {
            y: y_of(*s),
            name: name.clone(),
        })
        .collect();
    let height = 40.0 + lanes_view.len().max(1) as f64 * LANE_HEIGHT;
    Timeline {
        height,
        width: LABEL_WIDTH + PLOT_WIDTH * 1.5 + 20.0,
        lanes: lanes_view,
        marks,
        gaps,
        limit_x,
        limit_label: if timespan.is_empty() {
            String::new()
        } else {
            format!("rule timespan {timespan}")
        },
        start_label: time_text(start),
        end_label: format!(
            "{} (+{})",
            time_text(end),
            crate::time::Span::from_millis(end - start)
        ),
    }
}

fn waterfall(f: &Value) -> Vec<Bar> {
    let factors = f["unmapped"]["credtrail"]["score"]["factors"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let scale = PLOT_WIDTH / 100.0;
    let mut at = 0u64;
    factors
        .iter()
        .map(|x| {
            let points = x["points"].as_u64().unwrap_or(0);
            let bar = Bar {
                name: text(&x["name"]),
                x: LABEL_WIDTH + at as f64 * scale,
                width: (points as f64 * scale).max(1.0),
                points,
                weight: x["weight"].as_u64().unwrap_or(0),
                detail: text(&x["detail"]),
            };
            at += points;
            bar
        })
        .collect()
}

fn rows(f: &Value) -> Vec<Row> {
    evidences(f)
        .iter()
        .map(|e| {
            let mut target: Vec<String> = e["resources"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|r| {
                    let shared = r["data"]["shared_with_accounts"]
                        .as_array()
                        .map(|a| {
                            let ids: Vec<String> = a.iter().map(text).collect();
                            format!(" → shared with {}", ids.join(", "))
                        })
                        .unwrap_or_default();
                    format!("{} {}{shared}", text(&r["type"]), text(&r["uid"]))
                })
                .collect();
            if let Some(c) = e["process"]["cmd_line"].as_str() {
                target.push(c.to_string());
            }
            let mut source: Vec<String> = Vec::new();
            for v in [
                &e["src_endpoint"]["ip"],
                &e["device"]["hostname"],
                &e["http_request"]["user_agent"],
            ] {
                if let Some(s) = v.as_str() {
                    source.push(s.to_string());
                }
            }
            Row {
                time: text(&e["data"]["time_dt"]),
                stage: text(&e["data"]["stage_name"]),
                operation: text(&e["api"]["operation"]),
                actor: text(&e["actor"]["user"]["name"]),
                source: source.join(" · "),
                target: target.join("; "),
            }
        })
        .collect()
}

/// The distinct ways the evidence tied an actor to the identity: caller → session → key, as
/// the lineage wrote them.
fn lineage(f: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in evidences(f) {
        let a = text(&e["data"]["actor"]);
        if !a.is_empty() && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}
