//! Ground truth: which events belong to which labelled chain, from the generator's labels file
//! or from the invictus-stratus derived labels (CSV).

use std::collections::HashMap;
use std::path::Path;

use super::EvalError;
use crate::tooling::generator::labels::{self, ChainLabel, Expect, Speed};

/// Labelled chains and an index from event id to chain.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    pub chains: Vec<ChainLabel>,
    /// Engine event id → index in `chains`.
    pub by_event: HashMap<String, usize>,
    /// Where the labels came from, for the report.
    pub origin: String,
}

impl Truth {
    pub fn new(chains: Vec<ChainLabel>, origin: String) -> Truth {
        let mut by_event = HashMap::new();
        for (i, c) in chains.iter().enumerate() {
            for e in &c.events {
                by_event.insert(e.clone(), i);
            }
        }
        Truth {
            chains,
            by_event,
            origin,
        }
    }

    /// Reads labels: a `.csv` file is read as the invictus-stratus derived labels, anything
    /// else as a `credtrail gen` labels file.
    pub fn read(path: &Path) -> Result<Truth, EvalError> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            return invictus_csv(path);
        }
        let chains = labels::read(path)?;
        Ok(Truth::new(chains, path.display().to_string()))
    }
}

/// The invictus-stratus derived labels: each Stratus Red Team technique's detonation events
/// form one attack "chain" (expected to alert, by any rule); everything else (Terraform setup
/// and teardown, preflight, cleanup, the console and the other user) is benign background.
/// The technique mapping is inferred, not upstream ground truth (see the dataset README).
pub fn invictus_csv(path: &Path) -> Result<Truth, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(EvalError::BadLabels {
            path: path.display().to_string(),
            line: 1,
            reason: "empty file".into(),
        });
    };
    let header = split_csv(header.trim_end_matches('\r'));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| EvalError::BadLabels {
                path: path.display().to_string(),
                line: 1,
                reason: format!("no `{name}` column"),
            })
    };
    let (id_col, time_col, arn_col, technique_col, phase_col) = (
        col("eventID")?,
        col("eventTime")?,
        col("identity_arn")?,
        col("inferred_stratus_technique")?,
        col("stratus_phase")?,
    );
    let mut chains: Vec<ChainLabel> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, line) in lines {
        let row = split_csv(line.trim_end_matches('\r'));
        let field = |c: usize| {
            row.get(c)
                .map(String::as_str)
                .ok_or_else(|| EvalError::BadLabels {
                    path: path.display().to_string(),
                    line: i + 1,
                    reason: format!("{} columns, expected {}", row.len(), header.len()),
                })
        };
        if field(phase_col)? != "detonation" || field(technique_col)?.is_empty() {
            continue;
        }
        let technique = field(technique_col)?.to_string();
        let n = chains.len();
        let at = *index.entry(technique.clone()).or_insert(n);
        if at == n {
            chains.push(ChainLabel {
                chain: format!("stratus-{n:02}"),
                scenario: technique,
                source: "cloudtrail".into(),
                product: "aws".into(),
                speed: Speed::Machine,
                expect: Expect::Alert,
                expected_rules: Vec::new(),
                identity: field(arn_col)?.to_string(),
                start: field(time_col)?.to_string(),
                end: String::new(),
                events: Vec::new(),
            });
        }
        let c = &mut chains[at];
        c.end = field(time_col)?.to_string();
        c.events.push(field(id_col)?.to_string());
    }
    Ok(Truth::new(chains, path.display().to_string()))
}

/// Splits one CSV record (RFC 4180 quoting, no line breaks inside fields).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes_and_commas() {
        assert_eq!(
            split_csv(r#"a,"b,c","d""e",,f"#),
            vec!["a", "b,c", "d\"e", "", "f"]
        );
    }
}
