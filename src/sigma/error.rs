//! Rule load errors: each names the file, the line and column, the rule and the construct, so a
//! detection engineer can fix it without guessing.

use std::fmt;
use std::path::PathBuf;

use super::yaml::Loc;

/// One reason a rule could not be loaded exactly as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadErrorKind {
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("missing required `{0}`")]
    Missing(&'static str),
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("unknown modifier `{modifier}` in `{field}`{hint}")]
    UnknownModifier {
        field: String,
        modifier: String,
        /// `; did you mean `x`?` or empty.
        hint: String,
    },
    #[error("unsupported construct: {0}")]
    Unsupported(String),
    #[error("invalid modifier chain `{field}`: {reason}")]
    InvalidModifierChain { field: String, reason: String },
    #[error("invalid value for `{field}`: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("invalid regular expression in `{field}`: {reason}")]
    InvalidRegex { field: String, reason: String },
    #[error("condition `{condition}`: {reason}")]
    Condition { condition: String, reason: String },
    #[error("condition refers to `{0}`, which is not a search identifier of this rule")]
    UnknownIdentifier(String),
    #[error("correlation refers to rule `{reference}`, which is not loaded (by id or name){hint}")]
    UnknownRuleReference {
        reference: String,
        /// `; did you mean `x`?` (the closest loaded id or name) or empty.
        hint: String,
    },
    #[error("correlation: {0}")]
    Correlation(String),
    #[error("credtrail extension: {0}")]
    Extension(String),
    #[error("rule id `{id}` is already used by {other}")]
    DuplicateId { id: String, other: String },
    #[error("rule name `{name}` is already used by {other}")]
    DuplicateName { name: String, other: String },
    #[error("{0}")]
    Limit(String),
}

/// A load error with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub loc: Loc,
    /// The rule's id, else its title, when known.
    pub rule: Option<String>,
    pub kind: LoadErrorKind,
    /// The ids and names of the rule document this error kept from loading: what a
    /// correlation, filter or stage selector would reference it by. [`super::resolve`] does
    /// not report a reference to one of these again (the rule's own error says why it is
    /// missing); it holds the referencing rule back instead. Empty for errors that do not stop
    /// one document (an error of a whole file or of the set) and for documents that name
    /// themselves neither way.
    pub declared: Vec<String>,
}

impl LoadError {
    /// A stable short name of the construct that failed, for summaries and tests.
    pub fn construct(&self) -> String {
        match &self.kind {
            LoadErrorKind::Io(_) => "io".into(),
            LoadErrorKind::Yaml(_) => "yaml".into(),
            LoadErrorKind::Missing(f) => format!("missing:{f}"),
            LoadErrorKind::WrongType { field, .. } => format!("type:{field}"),
            LoadErrorKind::UnknownModifier { modifier, .. } => format!("modifier:{modifier}"),
            LoadErrorKind::Unsupported(what) => format!("unsupported:{what}"),
            LoadErrorKind::InvalidModifierChain { .. } => "modifier-chain".into(),
            LoadErrorKind::InvalidValue { .. } => "value".into(),
            LoadErrorKind::InvalidRegex { .. } => "regex".into(),
            LoadErrorKind::Condition { .. } => "condition".into(),
            LoadErrorKind::UnknownIdentifier(_) => "condition-identifier".into(),
            LoadErrorKind::UnknownRuleReference { .. } => "correlation-reference".into(),
            LoadErrorKind::Correlation(_) => "correlation".into(),
            LoadErrorKind::Extension(_) => "extension".into(),
            LoadErrorKind::DuplicateId { .. } => "duplicate-id".into(),
            LoadErrorKind::DuplicateName { .. } => "duplicate-name".into(),
            LoadErrorKind::Limit(_) => "limit".into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.loc)?;
        if let Some(rule) = &self.rule {
            write!(f, ": rule {rule}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for LoadError {}

/// Every error of one load, so that `rules lint` can print them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} rule load error(s); first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
pub struct LoadErrors(pub Vec<LoadError>);
