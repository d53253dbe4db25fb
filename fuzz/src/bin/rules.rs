//! Fuzz target: one rule file's text, parsed, resolved and compiled as `rules lint` would.
//! Loading must fail with errors (never a panic) and stay within the loader's budgets.

use std::path::Path;

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};

fn main() {
    let opts = LoadOptions::default();
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        sigma::parse_text(Path::new("fuzz.yml"), text, &opts, &mut rules, &mut errors);
        let catalog = sigma::resolve(rules, &mut errors);
        if errors.is_empty() {
            let _ = matcher::compile(&catalog, &CompileOptions::default());
        }
    });
}
