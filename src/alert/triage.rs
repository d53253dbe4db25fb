//! How bad and what next, in words an analyst reads: the severity (which follows the risk
//! level), the confidence (what the finding rests on), the risk in a sentence, the message
//! (the rule's template, or a default), and the remediation (the rule's runbook and
//! references).

use serde::Serialize;

use super::escape::printable;
use super::evidence;
use crate::correlate::Finding;
use crate::score::Score;
use crate::sigma::RuleMeta;
use crate::sigma::template::{MessageTemplate, Placeholder};
use crate::vocab::{DetailKind, EventRef};

/// OCSF `severity_id`/`severity` from the risk level: Info 1 Informational, Low 2, Medium 3,
/// High 4, Critical 5. The rule's Sigma `level` enters through the score (it caps it, see
/// [`crate::score::level_cap`]), so severity and risk never disagree.
pub fn severity(score: &Score) -> (u8, &'static str) {
    match score.risk_level().0 {
        0 => (1, "Informational"),
        1 => (2, "Low"),
        2 => (3, "Medium"),
        3 => (4, "High"),
        _ => (5, "Critical"),
    }
}

/// OCSF `confidence_id`/`confidence` and the reasons for it: a canary is certain (High); a
/// single event is Low; a chain earns a point for each of: three or more stages reached, every
/// stage of the rule reached, an identity the inventory knows, machine speed; three points or
/// more is High, one or two Medium, none Low.
pub fn confidence(score: &Score) -> (u8, &'static str, Vec<&'static str>) {
    let (reached, total) = score.stage;
    if score.canary {
        return (3, "High", vec!["a canary identity or secret was used"]);
    }
    if total <= 1 {
        return (1, "Low", vec!["a single event, no chain"]);
    }
    let mut reasons = Vec::new();
    if reached >= 3 {
        reasons.push("three or more stages reached");
    }
    if reached >= total {
        reasons.push("every stage of the rule reached");
    }
    if score.in_inventory {
        reasons.push("the identity is in the inventory");
    }
    if score.machine_speed {
        reasons.push("steps at machine speed");
    }
    match reasons.len() {
        0 => (1, "Low", vec!["a partial chain"]),
        1 | 2 => (2, "Medium", reasons),
        _ => (3, "High", reasons),
    }
}

/// The risk in a sentence, then the points: `Critical risk (81/100): a 3 of 3 stage chain at
/// machine speed by an identity not in the inventory, touching 3 secrets, 3 services. Points:
/// reach 18 + touched 8 + stage 25 + tempo 20.`
pub fn risk_details(score: &Score) -> String {
    let (reached, total) = score.stage;
    let what = if total <= 1 {
        "a single event".to_string()
    } else {
        format!("a {reached} of {total} stage chain")
    };
    let mut s = format!(
        "{} risk ({}/100): {what}",
        score.risk_level().1,
        score.score
    );
    if score.machine_speed {
        s.push_str(" at machine speed");
    }
    s.push_str(if score.in_inventory {
        " by an identity in the inventory"
    } else {
        " by an identity not in the inventory"
    });
    if let Some(touched) = score.factors.iter().find(|f| f.name == "touched") {
        let parts: Vec<&str> = touched
            .detail
            .split(", ")
            .filter(|p| !p.starts_with("0 "))
            .collect();
        if !parts.is_empty() {
            s.push_str(", touching ");
            s.push_str(&parts.join(", "));
        }
    }
    if score.canary {
        s.push_str("; a canary was used");
    }
    if let Some(before) = score.capped_by_level {
        s.push_str(&format!("; capped from {before} by the rule's level"));
    }
    let points: Vec<String> = score
        .factors
        .iter()
        .map(|f| format!("{} {}", f.name, f.points))
        .collect();
    s.push_str(&format!(". Points: {}.", points.join(" + ")));
    s
}

/// The alert's `message`: the rule's template filled from the finding, else `title: n
/// event(s) by who from start to end`. Never holds a raw control character.
pub fn message(
    finding: &Finding,
    meta: &RuleMeta,
    template: Option<&MessageTemplate>,
    who: &str,
) -> String {
    let events = &finding.events;
    let Some(template) = template else {
        let (start, end) = (
            events.first().map(|(e, _)| e.time).unwrap_or(finding.time),
            events.last().map(|(e, _)| e.time).unwrap_or(finding.time),
        );
        return format!(
            "{}: {} event(s) by {} from {} to {}",
            printable(&meta.title),
            events.len(),
            printable(who),
            start,
            end
        );
    };
    let first = |kind: DetailKind| first_detail(events, kind);
    let filled = template.fill(|p| match p {
        Placeholder::Actor => Some(who.to_string()),
        Placeholder::Resource => evidence::chain_resources(events)
            .into_iter()
            .next()
            .map(|r| r.uid),
        Placeholder::SrcIp => first(DetailKind::SrcIp),
        Placeholder::Host => first(DetailKind::Hostname),
        Placeholder::CmdLine => first(DetailKind::CmdLine),
        Placeholder::UserAgent => first(DetailKind::UserAgent),
        Placeholder::Operation => events
            .iter()
            .rev()
            .find_map(|(e, _)| e.details.as_ref()?.get(DetailKind::Operation))
            .map(str::to_string),
        Placeholder::Rule => Some(meta.title.clone()),
        Placeholder::Count => Some(events.len().to_string()),
        Placeholder::Stages => Some(format!("{}/{}", finding.stage.0, finding.stage.1)),
    });
    printable(&filled).into_owned()
}

fn first_detail(events: &[(EventRef, u32)], kind: DetailKind) -> Option<String> {
    events
        .iter()
        .find_map(|(e, _)| e.details.as_ref()?.get(kind))
        .map(str::to_string)
}

/// OCSF `remediation`: the rule's runbook (or a default that names the credentials to revoke
/// and the secrets to rotate) and its references.
#[derive(Serialize)]
pub struct Remediation<'a> {
    pub desc: String,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub references: &'a [String],
}

pub fn remediation<'a>(
    finding: &Finding,
    meta: &'a RuleMeta,
    runbook: Option<&str>,
    who: &str,
) -> Remediation<'a> {
    let desc = match runbook {
        Some(r) => r.trim().to_string(),
        None => {
            let mut keys: Vec<&str> = Vec::new();
            let mut secrets: Vec<&str> = Vec::new();
            for (e, _) in &finding.events {
                let Some(d) = e.details.as_deref() else {
                    continue;
                };
                for (kind, v) in d.iter() {
                    let list = match kind {
                        DetailKind::Credential => &mut keys,
                        DetailKind::Secret => &mut secrets,
                        _ => continue,
                    };
                    if !list.contains(&v) && list.len() < 8 {
                        list.push(v);
                    }
                }
            }
            let mut s = format!(
                "No runbook for this rule. Confirm with the owner of {who} whether this activity was expected."
            );
            if !keys.is_empty() {
                s.push_str(&format!(
                    " If not, deactivate the credentials it used ({})",
                    keys.join(", ")
                ));
                if !secrets.is_empty() {
                    s.push_str(&format!(
                        " and rotate the secrets it read ({})",
                        secrets.join(", ")
                    ));
                }
                s.push('.');
            } else if !secrets.is_empty() {
                s.push_str(&format!(
                    " If not, rotate the secrets it read ({}).",
                    secrets.join(", ")
                ));
            }
            s
        }
    };
    Remediation {
        desc,
        references: &meta.references,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Factor, Score};

    fn score(points: u32, stage: (u32, u32), machine: bool, inventory: bool) -> Score {
        Score {
            score: points,
            factors: vec![Factor {
                name: "touched",
                value: 0.5,
                weight: 20,
                points: 10,
                detail: "3 secrets, 0 resources, 0 hosts, 1 regions, 2 services".into(),
            }],
            machine_speed: machine,
            in_inventory: inventory,
            canary: false,
            capped_by_level: None,
            stage,
        }
    }

    #[test]
    fn severity_agrees_with_the_risk_level_everywhere() {
        for points in 0..=100 {
            let s = score(points, (3, 3), false, false);
            assert_eq!(severity(&s).0, s.risk_level().0 + 1, "{points}");
        }
    }

    #[test]
    fn confidence_says_what_the_finding_rests_on() {
        assert_eq!(confidence(&score(50, (1, 1), true, true)).0, 1);
        assert_eq!(confidence(&score(50, (2, 4), false, false)).0, 1);
        assert_eq!(confidence(&score(50, (3, 3), false, false)).0, 2);
        let (id, _, why) = confidence(&score(50, (3, 3), true, true));
        assert_eq!(id, 3);
        assert!(why.contains(&"steps at machine speed"));
    }

    #[test]
    fn risk_details_read_as_a_sentence_with_the_points() {
        let d = risk_details(&score(81, (3, 3), true, false));
        assert!(
            d.starts_with("Critical risk (81/100): a 3 of 3 stage chain at machine speed"),
            "{d}"
        );
        assert!(
            d.contains("touching 3 secrets, 1 regions, 2 services"),
            "{d}"
        );
        assert!(d.ends_with("Points: touched 10."), "{d}");
    }
}
