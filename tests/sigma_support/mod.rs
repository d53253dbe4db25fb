//! Helpers for the Sigma language tests: load rules from text, match one JSON event.
#![allow(dead_code)]

use std::path::Path;

use credtrail::decode::{Decoder, GenericPaths, ProfileKind};
use credtrail::matcher::{self, CompileOptions, Matcher, RuleSet};
use credtrail::sigma::{self, LoadError, LoadOptions, Placeholders};

/// The time field the tests' `generic` profile reads (added to events that lack it).
pub const TIME_FIELD: &str = "ts";

/// Compile options that decode every event with the `generic` profile (any JSON object).
pub fn generic_options() -> CompileOptions {
    CompileOptions {
        forced_profile: Some(ProfileKind::Generic),
        generic: GenericPaths {
            time: vec![TIME_FIELD.into()],
            id: Vec::new(),
            identity: Vec::new(),
        },
        ..CompileOptions::default()
    }
}

/// Loads and compiles the rules of `text` (one or more YAML documents); every error otherwise.
pub fn load_text(
    text: &str,
    placeholders: &Placeholders,
    opts: &CompileOptions,
) -> Result<RuleSet, Vec<LoadError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let load = LoadOptions {
        placeholders: placeholders.clone(),
        ..LoadOptions::default()
    };
    sigma::parse_text(Path::new("case.yml"), text, &load, &mut rules, &mut errors);
    let catalog = sigma::resolve(rules, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    matcher::compile(&catalog, opts).map_err(|e| e.0)
}

/// Titles of the detections `event` matches, or the reason it could not be decoded.
pub fn matched(rules: &RuleSet, event: &str) -> Result<Vec<String>, String> {
    let mut decoder = Decoder::new(&rules.schema);
    let mut m = Matcher::new(rules);
    decoder.decode(&rules.schema, event.as_bytes(), event.len(), |view| {
        let view = view.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        m.matches(rules, &view, &mut out);
        Ok(out
            .iter()
            .map(|&d| rules.detection_meta(d).title.clone())
            .collect())
    })
}

/// `event` with the generic profile's time field added when absent.
pub fn with_time(mut event: serde_json::Value) -> String {
    if let Some(map) = event.as_object_mut() {
        map.entry(TIME_FIELD)
            .or_insert_with(|| serde_json::Value::from("2024-01-01T00:00:00Z"));
    }
    event.to_string()
}
