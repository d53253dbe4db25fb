//! The report of a test run: one line per case and variant with a summary (text), one JSON
//! document, JUnit XML for CI systems, or SARIF for code scanning (failures only). Every
//! result names its file and line; `--explain` lines follow their case.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{CaseResult, Report, Status};
use crate::tooling::sarif;

/// Output formats of `rules test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Junit,
    Sarif,
}

impl Format {
    pub fn from_name(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "junit" => Some(Format::Junit),
            "sarif" => Some(Format::Sarif),
            _ => None,
        }
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Skip => "skip",
    }
}

fn title(r: &CaseResult) -> String {
    match &r.variant {
        Some(v) => format!("{} [{v}]", r.case),
        None => r.case.clone(),
    }
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => json(report),
        Format::Junit => junit(report),
        Format::Sarif => sarif(report),
    }
}

/// `file:line`, or the file alone when the line is unknown.
fn location(r: &CaseResult) -> String {
    match r.line {
        0 => r.file.display().to_string(),
        line => format!("{}:{line}", r.file.display()),
    }
}

fn summary_line(report: &Report) -> String {
    let cases = report
        .results
        .iter()
        .filter(|r| r.variant.is_none())
        .count();
    let variants = report.results.len() - cases;
    format!(
        "rules test: {cases} case(s), {variants} variant(s): {} passed, {} failed, {} skipped",
        report.count(Status::Pass),
        report.count(Status::Fail),
        report.count(Status::Skip)
    )
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        let word = match r.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        let indent = if r.variant.is_some() { "  " } else { "" };
        let _ = write!(out, "{word} {indent}{}: {}", location(r), title(r));
        if !r.message.is_empty() {
            let _ = write!(out, ": {}", r.message);
        }
        out.push('\n');
        for line in &r.explain {
            let _ = writeln!(out, "     {line}");
        }
    }
    out.push_str(&summary_line(report));
    out.push('\n');
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    results: Vec<JsonResult<'a>>,
    summary: JsonSummary,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    file: String,
    line: u64,
    case: &'a str,
    variant: Option<&'a str>,
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    explain: &'a [String],
}

#[derive(Serialize)]
struct JsonSummary {
    passed: usize,
    failed: usize,
    skipped: usize,
}

fn json(report: &Report) -> String {
    let doc = JsonReport {
        results: report
            .results
            .iter()
            .map(|r| JsonResult {
                file: r.file.display().to_string(),
                line: r.line,
                case: &r.case,
                variant: r.variant.as_deref(),
                status: status_word(r.status),
                message: &r.message,
                explain: &r.explain,
            })
            .collect(),
        summary: JsonSummary {
            passed: report.count(Status::Pass),
            failed: report.count(Status::Fail),
            skipped: report.count(Status::Skip),
        },
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// XML-escapes text for attributes and content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn junit(report: &Report) -> String {
    let mut by_file: BTreeMap<String, Vec<&CaseResult>> = BTreeMap::new();
    for r in &report.results {
        by_file
            .entry(r.file.display().to_string())
            .or_default()
            .push(r);
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"credtrail rules test\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        report.results.len(),
        report.count(Status::Fail),
        report.count(Status::Skip)
    );
    for (file, results) in &by_file {
        let fails = results.iter().filter(|r| r.status == Status::Fail).count();
        let skips = results.iter().filter(|r| r.status == Status::Skip).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skips}\">",
            xml(file),
            results.len()
        );
        for r in results {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\">",
                xml(file),
                xml(&title(r)),
                xml(file),
                r.line
            );
            match r.status {
                Status::Pass => {}
                Status::Fail => {
                    let _ = writeln!(out, "      <failure message=\"{}\"/>", xml(&r.message));
                }
                Status::Skip => {
                    let _ = writeln!(out, "      <skipped message=\"{}\"/>", xml(&r.message));
                }
            }
            if !r.explain.is_empty() {
                let _ = writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    xml(&r.explain.join("\n"))
                );
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Failed results as a SARIF log: a rule that did not load at its construct, a failed case at
/// its `name` in the test file.
fn sarif(report: &Report) -> String {
    let results: Vec<sarif::Finding<'_>> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| sarif::Finding {
            rule_id: match r.is_load_failure() {
                true => "credtrail/rule-load".into(),
                false => "credtrail/rule-test".into(),
            },
            level: sarif::Level::Error,
            message: match r.explain.is_empty() {
                true => format!("{}: {}", title(r), r.message),
                false => format!("{}: {}\n{}", title(r), r.message, r.explain.join("\n")),
            },
            file: &r.file,
            line: r.line,
            col: r.col,
        })
        .collect();
    let mut s = sarif::log(&results).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sample() -> Report {
        let r = |variant: Option<&str>, status, message: &str| CaseResult {
            file: PathBuf::from("rules/a.tests.yml"),
            line: 3,
            col: 13,
            case: "chain <fast> & \"loud\"".into(),
            variant: variant.map(str::to_string),
            status,
            message: message.into(),
            explain: Vec::new(),
        };
        Report {
            results: vec![
                r(None, Status::Pass, ""),
                r(
                    Some("duplicated"),
                    Status::Fail,
                    "expected 1 alert(s), got 2",
                ),
                r(Some("until event inserted"), Status::Skip, "no until_event"),
            ],
        }
    }

    #[test]
    fn text_has_one_line_per_result_and_a_summary() {
        let t = render(&sample(), Format::Text);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].starts_with("FAIL   rules/a.tests.yml:3: "),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[3],
            "rules test: 1 case(s), 2 variant(s): 1 passed, 1 failed, 1 skipped"
        );
    }

    #[test]
    fn junit_escapes_and_counts() {
        let x = render(&sample(), Format::Junit);
        assert!(
            x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains("chain &lt;fast&gt; &amp; &quot;loud&quot; [duplicated]"));
        assert!(x.contains("<failure message=\"expected 1 alert(s), got 2\"/>"));
    }

    #[test]
    fn json_is_one_document_with_statuses() {
        let v: serde_json::Value = serde_json::from_str(&render(&sample(), Format::Json)).unwrap();
        assert_eq!(v["summary"]["failed"], 1);
        assert_eq!(v["results"][2]["status"], "skip");
        assert_eq!(v["results"][1]["variant"], "duplicated");
    }
}
