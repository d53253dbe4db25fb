//! SARIF 2.1.0 logs: rule findings and failed rule tests in the format code-scanning UIs read
//! (GitHub code scanning, GitLab, editors' SARIF viewers), so they show up on the rule file's
//! line in a pull request.
//!
//! Written by hand with `serde_json`: one run, a driver named `credtrail` whose `rules` are the
//! distinct `ruleId`s of the results, and per result a `level`, a `message.text` and one
//! physical location (`artifactLocation.uri`, relative paths kept relative and written with
//! `/`; `region.startLine` and `startColumn` when the line is known). The schema is OASIS's
//! `sarif-schema-2.1.0.json`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

/// The SARIF version written.
pub const VERSION: &str = "2.1.0";
/// The schema the log names.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// How serious a result is (SARIF's `level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Note,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        }
    }
}

/// One result: what, how serious, and where.
#[derive(Clone, Debug)]
pub struct Finding<'a> {
    /// A stable id of the kind of finding (`credtrail/modifier`, `credtrail/field`, ...).
    pub rule_id: String,
    pub level: Level,
    pub message: String,
    pub file: &'a Path,
    /// 1-based; 0 when unknown (the region is then left out).
    pub line: u64,
    /// 1-based; 0 when unknown.
    pub col: u64,
}

/// The SARIF log of `results`, as one JSON document.
pub fn log(results: &[Finding<'_>]) -> Value {
    let rule_ids: BTreeSet<&str> = results.iter().map(|r| r.rule_id.as_str()).collect();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| json!({"id": id, "shortDescription": {"text": id}}))
        .collect();
    let results: Vec<Value> = results.iter().map(result).collect();
    json!({
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "credtrail",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

fn result(r: &Finding<'_>) -> Value {
    let mut location = json!({"artifactLocation": {"uri": uri(r.file)}});
    if r.line > 0 {
        let mut region = json!({"startLine": r.line});
        if r.col > 0 {
            region["startColumn"] = json!(r.col);
        }
        location["region"] = region;
    }
    json!({
        "ruleId": r.rule_id,
        "level": r.level.name(),
        "message": {"text": r.message},
        "locations": [{"physicalLocation": location}],
    })
}

/// A path as a URI reference: relative paths stay relative, absolute ones become `file://`
/// URIs; separators are `/` and bytes outside RFC 3986's unreserved set are percent-encoded.
pub fn uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut out = String::with_capacity(text.len());
    if path.is_absolute() {
        out.push_str("file://");
        if !text.starts_with('/') {
            out.push('/');
        }
    }
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_has_one_run_with_located_results() {
        let file = Path::new("rules/k8s secrets.yml");
        let log = log(&[
            Finding {
                rule_id: "credtrail/field".into(),
                level: Level::Warning,
                message: "m".into(),
                file,
                line: 7,
                col: 5,
            },
            Finding {
                rule_id: "credtrail/io".into(),
                level: Level::Error,
                message: "n".into(),
                file,
                line: 0,
                col: 0,
            },
        ]);
        assert_eq!(log["version"], "2.1.0");
        let r = &log["runs"][0]["results"];
        let loc = &r[0]["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "rules/k8s%20secrets.yml");
        assert_eq!(loc["region"]["startLine"], 7);
        assert_eq!(loc["region"]["startColumn"], 5);
        assert!(
            r[1]["locations"][0]["physicalLocation"]
                .get("region")
                .is_none()
        );
        assert_eq!(
            log["runs"][0]["tool"]["driver"]["rules"][1]["id"],
            "credtrail/io"
        );
        assert_eq!(uri(Path::new("/tmp/a.yml")), "file:///tmp/a.yml");
    }
}
