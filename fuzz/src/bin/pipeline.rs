//! Fuzz target: a processing pipeline (pySigma YAML), parsed and applied to the shipped
//! CloudTrail rules as `--pipeline` would.

use std::path::{Path, PathBuf};

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions, YamlBudget, processing};

fn main() {
    let rules_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/cloudtrail");
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(pipeline) = processing::parse_text(Path::new("fuzz.yml"), text, YamlBudget::default())
        else {
            return;
        };
        let opts = LoadOptions::with_pipelines(vec![pipeline]);
        if let Ok(catalog) = sigma::load(std::slice::from_ref(&rules_dir), &opts) {
            let _ = matcher::compile(&catalog, &CompileOptions::default());
        }
    });
}
