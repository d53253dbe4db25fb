//! The terminal summary of a replay's incidents (`replay --format text`): one block per
//! incident, highest risk first. Every value from an alert goes through
//! [`crate::alert::escape::printable`], so a rule title holding a newline or a NUL
//! never prints raw.

use std::fmt::Write;

use super::Incident;
use super::html::activity_summary;
use crate::alert::escape::printable;
use crate::time::EventTime;

/// The summary of `incidents` (already in display order).
pub fn render(incidents: &[Incident]) -> String {
    let mut out = String::new();
    let findings: usize = incidents.iter().map(|i| i.findings.len()).sum();
    let _ = writeln!(
        out,
        "{} incident(s), {findings} finding(s), highest risk first\n",
        incidents.len()
    );
    for inc in incidents {
        let worst = inc.worst();
        let s = |v: &serde_json::Value| printable(v.as_str().unwrap_or("")).into_owned();
        let _ = writeln!(
            out,
            "{} {:>3}  {}  ({} to {}, {})",
            s(&worst["risk_level"]).to_uppercase(),
            inc.risk(),
            printable(&inc.identity),
            EventTime::from_millis(inc.first_seen()),
            EventTime::from_millis(inc.last_seen()),
            activity_summary(&inc.activities),
        );
        let _ = writeln!(out, "  {}", s(&worst["message"]));
        for r in inc.rules() {
            let _ = writeln!(out, "  - {}", printable(&r));
        }
        let _ = writeln!(out, "  why:  {}", s(&worst["risk_details"]));
        let _ = writeln!(out, "  next: {}", s(&worst["remediation"]["desc"]));
        let _ = writeln!(out, "  id:   {}\n", printable(&inc.uid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: a rule title with a newline or a NUL must never print raw in the summary.
    #[test]
    fn titles_with_newlines_and_nul_never_print_raw() {
        let line = serde_json::json!({
            "class_uid": 2004, "activity_name": "Create", "risk_score": 50,
            "risk_level": "Medium", "message": "m\u{2028}x", "start_time": 0, "end_time": 0,
            "finding_info": {"uid": "u", "title": "evil\ntitle\u{0}"},
            "metadata": {"correlation_uid": "eve\r"},
        })
        .to_string();
        let incidents = super::super::incidents(std::path::Path::new("a.jsonl"), &line).unwrap();
        let text = render(&incidents);
        assert!(text.contains("evil\\ntitle\\u{0}"), "{text}");
        assert!(!text.contains('\u{0}') && !text.contains('\r') && !text.contains('\u{2028}'));
        assert_eq!(text.matches('\n').count(), 2 + 7, "{text}");
    }
}
