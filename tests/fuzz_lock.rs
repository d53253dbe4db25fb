//! The fuzz crate (`fuzz/`) is a workspace of its own with its own `Cargo.lock`, built by CI with
//! `--locked`. When the engine gains or changes a dependency and only the engine's lock file is
//! updated, that build refuses to run after the whole test suite has passed (it did, for
//! minijinja). This test fails in a second instead: the engine's entry in `fuzz/Cargo.lock` must
//! list exactly the engine's own dependencies from `Cargo.lock` minus its dev-dependencies, and
//! every package both files hold must be locked at the same versions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Package name → the versions a lock file holds, and the engine's dependency list.
struct Lock {
    versions: BTreeMap<String, BTreeSet<String>>,
    engine_deps: BTreeSet<String>,
}

fn read_lock(path: &Path) -> Lock {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is no TOML: {e}", path.display()));
    let packages = value
        .get("package")
        .and_then(|p| p.as_array())
        .unwrap_or_else(|| panic!("{} has no [[package]]", path.display()));
    let mut versions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut engine_deps = None;
    for package in packages {
        let field = |key: &str| package.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let name = field("name").to_string();
        versions
            .entry(name.clone())
            .or_default()
            .insert(field("version").to_string());
        if name == "credtrail" {
            let deps = package.get("dependencies").and_then(|d| d.as_array());
            engine_deps = Some(
                deps.into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str())
                    // "name version" when two versions are locked: keep the name only.
                    .map(|d| d.split(' ').next().unwrap_or(d).to_string())
                    .collect(),
            );
        }
    }
    let engine_deps =
        engine_deps.unwrap_or_else(|| panic!("{} holds no credtrail package", path.display()));
    Lock {
        versions,
        engine_deps,
    }
}

fn dev_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("Cargo.toml");
    let value: toml::Value = toml::from_str(&text).expect("Cargo.toml is TOML");
    value
        .get("dev-dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn fuzz_lock_file_follows_the_engine_lock_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = read_lock(&root.join("Cargo.lock"));
    let fuzz = read_lock(&root.join("fuzz/Cargo.lock"));
    let dev = dev_dependencies(&root.join("Cargo.toml"));

    let expected: BTreeSet<String> = engine.engine_deps.difference(&dev).cloned().collect();
    let missing: Vec<_> = expected.difference(&fuzz.engine_deps).collect();
    let extra: Vec<_> = fuzz.engine_deps.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "fuzz/Cargo.lock lists other dependencies of credtrail than Cargo.lock: missing {missing:?}, \
         extra {extra:?}; run `cargo update --workspace` in fuzz/ and commit fuzz/Cargo.lock"
    );

    let mut differ = Vec::new();
    for (name, versions) in &fuzz.versions {
        if let Some(ours) = engine.versions.get(name)
            && !versions.is_subset(ours)
        {
            differ.push(format!("{name}: fuzz {versions:?}, engine {ours:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "fuzz/Cargo.lock locks other versions than Cargo.lock (the fuzzers would test other code): \
         {differ:#?}"
    );
}
