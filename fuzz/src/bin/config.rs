//! Fuzz target: the service's config text (TOML), loaded and validated as `config check`
//! would, without environment variables.

use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let _ = credtrail::config::load_str(text, Path::new("/nonexistent/credtrail.toml"), Vec::new());
    });
}
