//! The test file format: a sidecar `<rule file stem>.tests.yml` next to the rule file.
//!
//! ```yaml
//! base_time: 2024-01-01T00:00:00Z      # optional, this is the default
//! tests:
//!   - name: full chain at machine speed
//!     rule: ct_chain_full               # whose alerts are checked (name or id)
//!     lateness: 5m                      # optional: the allowed lateness of the replay
//!     events:
//!       - at: 0s                        # base_time + at becomes the event's time field
//!         event: {eventSource: ..., eventName: ...}
//!     expect:                           # the rule's alerts, in output order; [] = none
//!       - group: "arn:aws:iam::1:user/x"  # group-by values joined by ", "
//!         events: [0, 1]                # optional: indices of the contributing events
//!         aggregate: 12.5               # optional: the aggregate value the alert quotes
//!     until_event: {...}                # optional: an event of an `until` rule, same group
//!     absence_event: {...}              # optional: an event of the `absence` rule, same group
//!     skip_variants: [stretched]        # optional: generated variants not to run
//! ```
//!
//! Parsed strictly (`deny_unknown_fields`): a misspelt key is an error with its line.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub base_time: Option<Spanned<String>>,
    pub tests: Vec<Case>,
}

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Spanned: a result names the case's line.
    pub name: Spanned<String>,
    pub rule: Spanned<String>,
    #[serde(default)]
    pub lateness: Option<Spanned<String>>,
    pub events: Vec<TestEvent>,
    pub expect: Vec<Expect>,
    #[serde(default)]
    pub until_event: Option<serde_json::Value>,
    #[serde(default)]
    pub absence_event: Option<serde_json::Value>,
    #[serde(default)]
    pub skip_variants: Vec<String>,
}

/// One event of a case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    pub at: Spanned<String>,
    pub event: serde_json::Value,
}

/// One expected alert.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub group: String,
    #[serde(default)]
    pub events: Option<Vec<usize>>,
    #[serde(default)]
    pub aggregate: Option<f64>,
}

/// The names of the generated variants (for `skip_variants`).
pub const VARIANTS: [&str; 6] = [
    "shuffled",
    "duplicated",
    "stretched",
    "gap",
    "until",
    "absence",
];

/// Whether `path` is a test file.
pub fn is_test_file(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".tests.yml") || name.ends_with(".tests.yaml")
}

/// The sidecar test file of a rule file, if it exists.
pub fn sidecar(rule_file: &std::path::Path) -> Option<std::path::PathBuf> {
    let stem = rule_file.file_stem()?.to_str()?;
    let dir = rule_file.parent()?;
    ["tests.yml", "tests.yaml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// The rule file a test file belongs to, if it exists.
pub fn rule_file_of(test_file: &std::path::Path) -> Option<std::path::PathBuf> {
    let name = test_file.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".tests.yml")
        .or_else(|| name.strip_suffix(".tests.yaml"))?;
    let dir = test_file.parent()?;
    ["yml", "yaml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}
