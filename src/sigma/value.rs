//! Values and modifiers: `CommandLine|contains|all: [...]` turned into patterns.
//!
//! Modifiers apply left to right as the Sigma specification (modifiers appendix v2.1.0) says:
//! `contains`, `startswith` and `endswith` add wildcards to the value; `windash`, `base64`,
//! `base64offset`, `utf16le`/`wide`, `utf16be`, `utf16` and `expand` transform it; `re`, `cidr`,
//! `exists`, `gt`/`gte`/`lt`/`lte`, the time parts, `fieldref` change what is compared; `all`,
//! `cased` and `neq` change how. Every chain is checked here; one that cannot mean anything
//! (`cidr|contains`, `re|base64`) is a load error, never silently reinterpreted.

use std::collections::HashMap;

use super::yaml::{Node, Value};

mod cidr;
mod string;
mod transform;

pub use cidr::{Cidr, parse_ip};

pub use string::{Part, SigmaString};
pub use transform::base64_offsets;
use transform::transform;

/// Every modifier of the Sigma specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modifier {
    Contains,
    StartsWith,
    EndsWith,
    All,
    Exists,
    Cased,
    Neq,
    Windash,
    Re,
    ReI,
    ReM,
    ReS,
    Base64,
    Base64Offset,
    Utf16Le,
    Utf16Be,
    Utf16,
    Cidr,
    Gt,
    Gte,
    Lt,
    Lte,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Expand,
    FieldRef,
}

impl Modifier {
    /// Every modifier name [`Modifier::from_name`] knows, for "did you mean".
    pub const NAMES: [&'static str; 31] = [
        "contains",
        "startswith",
        "endswith",
        "all",
        "exists",
        "cased",
        "neq",
        "windash",
        "re",
        "i",
        "m",
        "s",
        "base64",
        "base64offset",
        "utf16le",
        "wide",
        "utf16be",
        "utf16",
        "cidr",
        "gt",
        "gte",
        "lt",
        "lte",
        "minute",
        "hour",
        "day",
        "week",
        "month",
        "year",
        "expand",
        "fieldref",
    ];

    pub fn from_name(name: &str) -> Option<Modifier> {
        Some(match name {
            "contains" => Modifier::Contains,
            "startswith" => Modifier::StartsWith,
            "endswith" => Modifier::EndsWith,
            "all" => Modifier::All,
            "exists" => Modifier::Exists,
            "cased" => Modifier::Cased,
            "neq" => Modifier::Neq,
            "windash" => Modifier::Windash,
            "re" => Modifier::Re,
            "i" => Modifier::ReI,
            "m" => Modifier::ReM,
            "s" => Modifier::ReS,
            "base64" => Modifier::Base64,
            "base64offset" => Modifier::Base64Offset,
            "utf16le" | "wide" => Modifier::Utf16Le,
            "utf16be" => Modifier::Utf16Be,
            "utf16" => Modifier::Utf16,
            "cidr" => Modifier::Cidr,
            "gt" => Modifier::Gt,
            "gte" => Modifier::Gte,
            "lt" => Modifier::Lt,
            "lte" => Modifier::Lte,
            "minute" => Modifier::Minute,
            "hour" => Modifier::Hour,
            "day" => Modifier::Day,
            "week" => Modifier::Week,
            "month" => Modifier::Month,
            "year" => Modifier::Year,
            "expand" => Modifier::Expand,
            "fieldref" => Modifier::FieldRef,
            _ => return None,
        })
    }
}

/// Numeric comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
}

impl NumOp {
    pub fn test(self, a: f64, b: f64) -> bool {
        match self {
            NumOp::Gt => a > b,
            NumOp::Gte => a >= b,
            NumOp::Lt => a < b,
            NumOp::Lte => a <= b,
            NumOp::Eq => a == b,
        }
    }
}

/// The part of a timestamp the time modifiers compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// What one value of a field item tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// A (possibly wildcarded) string; case-insensitive unless `cased`.
    Str {
        s: SigmaString,
        cased: bool,
    },
    /// A regular expression (case-sensitive by default, as the specification says).
    Regex {
        re: String,
        insensitive: bool,
        multiline: bool,
        dot_all: bool,
    },
    Cidr(Cidr),
    Num {
        op: NumOp,
        value: f64,
    },
    Exists(bool),
    /// The field is absent or null.
    Null,
    /// Equal (or contains/startswith/endswith) to another field of the same event.
    FieldRef {
        field: String,
        before: bool,
        after: bool,
        cased: bool,
    },
    /// A part of the field's timestamp compared to a number.
    Time {
        part: TimePart,
        value: i64,
    },
}

/// One `field|modifiers: values` entry of a selection, compiled to patterns.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldItem {
    /// `None` for keyword searches (values matched against the whole event).
    pub field: Option<String>,
    /// `field|modifiers` as written, for messages.
    pub spec: String,
    pub patterns: Vec<Pattern>,
    /// All patterns must match (`|all`), instead of any.
    pub all: bool,
    /// The item matches when no pattern does (`|neq`).
    pub negate: bool,
    /// Where the item's key is written.
    pub loc: super::yaml::Loc,
    /// For each pattern, the index of the written value it came from: modifiers such as
    /// `windash` or `base64offset` turn one value into several alternatives, and `all` must
    /// require every written value (any of its alternatives), not every alternative.
    pub value_of: Vec<u32>,
}

impl FieldItem {
    /// Number of values written in the rule (before modifiers made variants).
    pub fn written_values(&self) -> usize {
        self.value_of.last().map_or(0, |&v| v as usize + 1)
    }
}

/// Why a field item does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemError {
    UnknownModifier(String),
    Chain(String),
    Value(String),
    Unsupported(String),
}

/// Placeholder values for `expand`, from a processing pipeline. The entry
/// [`ANY_PLACEHOLDER`], when present, gives the values of every placeholder not listed
/// (pySigma's `wildcard_placeholders` without a list).
pub type Placeholders = HashMap<String, Vec<String>>;

/// The [`Placeholders`] key whose values stand for any placeholder without its own entry.
pub const ANY_PLACEHOLDER: &str = "*";

/// Compiles `spec` (`Field|mod|mod`) with its YAML `value` into a field item.
pub fn compile_item(
    spec: &str,
    value: &Node,
    placeholders: &Placeholders,
) -> Result<FieldItem, ItemError> {
    let mut pieces = spec.split('|');
    let field = pieces.next().unwrap_or("").trim();
    let field = if field.is_empty() {
        None
    } else {
        Some(field.to_string())
    };
    let mut mods = Vec::new();
    for name in pieces {
        let m = Modifier::from_name(name)
            .ok_or_else(|| ItemError::UnknownModifier(name.to_string()))?;
        if mods.contains(&m) {
            return Err(ItemError::Chain(format!("modifier `{name}` appears twice")));
        }
        mods.push(m);
    }
    let raw_values: Vec<&Node> = match &value.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![value],
    };
    if raw_values.is_empty() {
        return Err(ItemError::Value("empty list of values".into()));
    }
    let keyword = field.is_none();
    let mut item = FieldItem {
        field,
        spec: spec.to_string(),
        patterns: Vec::new(),
        all: mods.contains(&Modifier::All),
        negate: mods.contains(&Modifier::Neq),
        loc: value.loc,
        value_of: Vec::new(),
    };
    let cased = mods.contains(&Modifier::Cased);
    let kind = value_kind(&mods)?;
    if keyword {
        keyword_modifiers(&mut mods, kind)?;
    }
    for (i, raw) in raw_values.into_iter().enumerate() {
        if keyword && raw.value == Value::Null {
            return Err(ItemError::Value(
                "null in a keyword search: a null test needs a field".into(),
            ));
        }
        let before = item.patterns.len();
        compile_value(&mut item.patterns, raw, &mods, kind, cased, placeholders)?;
        let index = u32::try_from(i).map_err(|_| ItemError::Value("too many values".into()))?;
        item.value_of
            .extend(std::iter::repeat_n(index, item.patterns.len() - before));
    }
    Ok(item)
}

/// Keyword searches (values without a field) look for their values inside any value of the
/// event, as the specification's "applied to the full log message" and other engines do: a
/// plain value gets an implicit `contains` at the end of its chain, so encodings apply first.
/// `startswith`/`endswith` anchor at the start or end of one value. Comparisons that need a
/// field (`cidr`, numbers, `exists`, time parts, `fieldref`) are load errors.
fn keyword_modifiers(mods: &mut Vec<Modifier>, kind: ValueKind) -> Result<(), ItemError> {
    match kind {
        ValueKind::Plain => {
            let shaped = mods.iter().any(|m| {
                matches!(
                    m,
                    Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith
                )
            });
            if !shaped {
                mods.push(Modifier::Contains);
            }
            Ok(())
        }
        ValueKind::Regex => Ok(()),
        _ => Err(ItemError::Chain(format!(
            "{kind:?} comparisons need a field; a keyword search has none"
        ))),
    }
}

/// The one modifier that decides what a value is compared as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    Plain,
    Regex,
    Cidr,
    Num(NumOp),
    Exists,
    Time(TimePart),
    FieldRef,
}

fn value_kind(mods: &[Modifier]) -> Result<ValueKind, ItemError> {
    use Modifier as M;
    let mut kind = ValueKind::Plain;
    let mut set = |k: ValueKind, name: &str| {
        if kind != ValueKind::Plain {
            return Err(ItemError::Chain(format!(
                "`{name}` cannot be combined with another comparison modifier"
            )));
        }
        kind = k;
        Ok(())
    };
    for m in mods {
        match m {
            M::Re => set(ValueKind::Regex, "re")?,
            M::Cidr => set(ValueKind::Cidr, "cidr")?,
            M::Gt => set(ValueKind::Num(NumOp::Gt), "gt")?,
            M::Gte => set(ValueKind::Num(NumOp::Gte), "gte")?,
            M::Lt => set(ValueKind::Num(NumOp::Lt), "lt")?,
            M::Lte => set(ValueKind::Num(NumOp::Lte), "lte")?,
            M::Exists => set(ValueKind::Exists, "exists")?,
            M::Minute => set(ValueKind::Time(TimePart::Minute), "minute")?,
            M::Hour => set(ValueKind::Time(TimePart::Hour), "hour")?,
            M::Day => set(ValueKind::Time(TimePart::Day), "day")?,
            M::Week => set(ValueKind::Time(TimePart::Week), "week")?,
            M::Month => set(ValueKind::Time(TimePart::Month), "month")?,
            M::Year => set(ValueKind::Time(TimePart::Year), "year")?,
            M::FieldRef => set(ValueKind::FieldRef, "fieldref")?,
            _ => {}
        }
    }
    let string_shaping = |m: &Modifier| {
        matches!(
            m,
            M::Contains
                | M::StartsWith
                | M::EndsWith
                | M::Windash
                | M::Base64
                | M::Base64Offset
                | M::Utf16Le
                | M::Utf16Be
                | M::Utf16
                | M::Expand
        )
    };
    let shapes = mods
        .iter()
        .filter(|m| matches!(m, M::Contains | M::StartsWith | M::EndsWith))
        .count();
    if shapes > 1 {
        return Err(ItemError::Chain(
            "only one of `contains`, `startswith`, `endswith` may be used".into(),
        ));
    }
    for m in mods {
        let ok = match (kind, m) {
            (_, M::All) => !matches!(kind, ValueKind::Exists),
            (ValueKind::Plain, M::ReI | M::ReM | M::ReS) => false,
            (ValueKind::Plain, _) => true,
            (ValueKind::Regex, M::Re | M::ReI | M::ReM | M::ReS | M::Neq) => true,
            (
                ValueKind::FieldRef,
                M::FieldRef | M::Contains | M::StartsWith | M::EndsWith | M::Cased | M::Neq,
            ) => true,
            (ValueKind::Cidr, M::Cidr | M::Neq) => true,
            (ValueKind::Num(_), M::Gt | M::Gte | M::Lt | M::Lte) => true,
            (ValueKind::Exists, M::Exists) => true,
            (ValueKind::Time(_), M::Minute | M::Hour | M::Day | M::Week | M::Month | M::Year) => {
                true
            }
            _ => false,
        };
        if !ok {
            let what = if string_shaping(m) {
                "a string modifier"
            } else {
                "this modifier"
            };
            return Err(ItemError::Chain(format!(
                "{what} `{}` cannot be used with {kind:?}",
                modifier_name(*m)
            )));
        }
    }
    Ok(kind)
}

fn modifier_name(m: Modifier) -> &'static str {
    use Modifier as M;
    match m {
        M::Contains => "contains",
        M::StartsWith => "startswith",
        M::EndsWith => "endswith",
        M::All => "all",
        M::Exists => "exists",
        M::Cased => "cased",
        M::Neq => "neq",
        M::Windash => "windash",
        M::Re => "re",
        M::ReI => "i",
        M::ReM => "m",
        M::ReS => "s",
        M::Base64 => "base64",
        M::Base64Offset => "base64offset",
        M::Utf16Le => "utf16le",
        M::Utf16Be => "utf16be",
        M::Utf16 => "utf16",
        M::Cidr => "cidr",
        M::Gt => "gt",
        M::Gte => "gte",
        M::Lt => "lt",
        M::Lte => "lte",
        M::Minute => "minute",
        M::Hour => "hour",
        M::Day => "day",
        M::Week => "week",
        M::Month => "month",
        M::Year => "year",
        M::Expand => "expand",
        M::FieldRef => "fieldref",
    }
}

fn compile_value(
    out: &mut Vec<Pattern>,
    raw: &Node,
    mods: &[Modifier],
    kind: ValueKind,
    cased: bool,
    placeholders: &Placeholders,
) -> Result<(), ItemError> {
    let text = || {
        raw.scalar_text().ok_or_else(|| {
            ItemError::Value(format!(
                "expected a scalar value, found {}",
                raw.value.kind()
            ))
        })
    };
    match kind {
        ValueKind::Exists => match raw.value {
            Value::Bool(b) => out.push(Pattern::Exists(b)),
            _ => return Err(ItemError::Value("`exists` takes true or false".into())),
        },
        ValueKind::Num(op) => {
            let n = match raw.value {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                _ => {
                    return Err(ItemError::Value(format!(
                        "`{op:?}` takes a number",
                        op = op
                    )));
                }
            };
            out.push(Pattern::Num { op, value: n });
        }
        ValueKind::Time(part) => match raw.value {
            Value::Int(i) => out.push(Pattern::Time { part, value: i }),
            _ => return Err(ItemError::Value("time modifiers take an integer".into())),
        },
        ValueKind::Cidr => {
            let t = text()?;
            let c = Cidr::parse(&t)
                .ok_or_else(|| ItemError::Value(format!("`{t}` is not an IP network")))?;
            out.push(Pattern::Cidr(c));
        }
        ValueKind::Regex => {
            let t = text()?;
            out.push(Pattern::Regex {
                re: t,
                insensitive: mods.contains(&Modifier::ReI),
                multiline: mods.contains(&Modifier::ReM),
                dot_all: mods.contains(&Modifier::ReS),
            });
        }
        ValueKind::FieldRef => {
            let t = text()?;
            out.push(Pattern::FieldRef {
                field: t,
                before: mods
                    .iter()
                    .any(|m| matches!(m, Modifier::Contains | Modifier::EndsWith)),
                after: mods
                    .iter()
                    .any(|m| matches!(m, Modifier::Contains | Modifier::StartsWith)),
                cased,
            });
        }
        ValueKind::Plain => {
            if raw.value == Value::Null {
                if mods
                    .iter()
                    .any(|m| !matches!(m, Modifier::All | Modifier::Neq))
                {
                    return Err(ItemError::Value("null cannot take string modifiers".into()));
                }
                out.push(Pattern::Null);
                return Ok(());
            }
            let t = text()?;
            // Numbers and booleans are compared as their text; they have no wildcards.
            let start = match raw.value {
                Value::Str(_) => SigmaString::parse(&t),
                _ => SigmaString::literal(&t),
            };
            for s in transform(start, mods, placeholders)? {
                out.push(Pattern::Str { s, cased });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
