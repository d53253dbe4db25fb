//! MITRE ATT&CK from Sigma tags (`attack.credential-access`, `attack.t1552.001`).

use serde::Serialize;

/// An OCSF `attack` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attack {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tactic: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_technique: Option<Named>,
}

/// An id with an optional name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Named {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource-development", "TA0042", "Resource Development"),
    ("initial-access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege-escalation", "TA0004", "Privilege Escalation"),
    ("defense-evasion", "TA0005", "Defense Evasion"),
    ("credential-access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral-movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("command-and-control", "TA0011", "Command and Control"),
    ("impact", "TA0040", "Impact"),
];

fn tactic(slug: &str) -> Named {
    match TACTICS.iter().find(|(s, _, _)| *s == slug) {
        Some((_, uid, name)) => Named {
            uid: Some(uid.to_string()),
            name: Some(name.to_string()),
        },
        // A tactic this table does not know keeps its name as written.
        None => Named {
            uid: None,
            name: Some(slug.replace('-', " ")),
        },
    }
}

/// Known tactics, and unknown ones spelled like tactics (words joined by dashes, such as a
/// tactic newer than this table); group (`g0016`) and software (`s0002`) tags are not tactics.
fn is_tactic(slug: &str) -> bool {
    TACTICS.iter().any(|(s, _, _)| *s == slug)
        || (slug.contains('-') && slug.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
}

/// The ATT&CK objects a rule's tags describe: one per technique, carrying the rule's first
/// tactic; one per tactic when the rule names no technique.
pub fn from_tags(tags: &[String]) -> Vec<Attack> {
    let mut tactics = Vec::new();
    let mut techniques = Vec::new();
    for tag in tags {
        let Some(rest) = tag
            .to_ascii_lowercase()
            .strip_prefix("attack.")
            .map(str::to_string)
        else {
            continue;
        };
        if let Some(id) = rest
            .strip_prefix('t')
            .filter(|id| id.chars().next().is_some_and(|c| c.is_ascii_digit()))
        {
            techniques.push(format!("T{}", id.to_ascii_uppercase()));
        } else if is_tactic(&rest) {
            tactics.push(rest);
        }
    }
    if techniques.is_empty() {
        return tactics
            .iter()
            .map(|t| Attack {
                tactic: Some(tactic(t)),
                technique: None,
                sub_technique: None,
            })
            .collect();
    }
    let first_tactic = tactics.first().map(|t| tactic(t));
    techniques
        .into_iter()
        .map(|t| {
            let (technique, sub) = match t.split_once('.') {
                Some((base, _)) => (base.to_string(), Some(t.clone())),
                None => (t.clone(), None),
            };
            Attack {
                tactic: first_tactic.clone(),
                technique: Some(Named {
                    uid: Some(technique),
                    name: None,
                }),
                sub_technique: sub.map(|s| Named {
                    uid: Some(s),
                    name: None,
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_carry_the_first_tactic() {
        let tags = vec![
            "attack.credential-access".to_string(),
            "attack.t1552.001".into(),
            "attack.t1078".into(),
        ];
        let a = from_tags(&tags);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].tactic.as_ref().unwrap().uid.as_deref(), Some("TA0006"));
        assert_eq!(
            a[0].technique.as_ref().unwrap().uid.as_deref(),
            Some("T1552")
        );
        assert_eq!(
            a[0].sub_technique.as_ref().unwrap().uid.as_deref(),
            Some("T1552.001")
        );
        assert_eq!(a[1].sub_technique, None);
    }

    #[test]
    fn tactics_alone_and_unknown_tags() {
        let tags = vec![
            "attack.discovery".to_string(),
            "cve.2021-1234".into(),
            "attack.g0016".into(),
        ];
        let a = from_tags(&tags);
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].tactic.as_ref().unwrap().name.as_deref(),
            Some("Discovery")
        );
        let unknown = from_tags(&["attack.defense-impairment".to_string()]);
        assert_eq!(unknown[0].tactic.as_ref().unwrap().uid, None);
    }
}
