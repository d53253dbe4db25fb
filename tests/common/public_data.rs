//! Where the public data the tests and benches read lives (the public datasets, the SigmaHQ
//! rules): one root, so a clean clone fetches it once and CI keeps its copy next to the project.
//! Standard library only: the benches include this file with `#[path]`.

use std::path::{Path, PathBuf};

/// The root of the public data: `CREDTRAIL_SHARED` if set (relative to the project root), else
/// `../shared` next to the project if it exists, else `target/shared`, where
/// `datasets/public/fetch.sh` puts it by default.
pub fn shared_root() -> PathBuf {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(dir) = std::env::var_os("CREDTRAIL_SHARED") {
        return project.join(dir);
    }
    let sibling = project.join("../shared");
    if sibling.is_dir() {
        sibling
    } else {
        project.join("target/shared")
    }
}

/// `rel` under [`shared_root`] (`datasets/...`, `sigma`, `sigmahq-full`).
///
/// # Panics
///
/// When it does not exist, naming the path and the command that fetches it: a test that needs
/// public data fails without it rather than passing on nothing.
#[track_caller]
pub fn shared_path(rel: &str) -> PathBuf {
    let root = shared_root();
    let path = root.join(rel);
    assert!(
        path.exists(),
        "public test data missing: {}\n\
         fetch it (needs internet) with `datasets/public/fetch.sh {}`, \
         or set CREDTRAIL_SHARED to a directory that holds it",
        path.display(),
        root.display(),
    );
    path
}
