//! Rule reload for `credtrail run`: SIGHUP, or a change under the rule paths when
//! `rules.watch` is on, compiles the whole rule set again off the hot path. A set that does not
//! load is refused (logged with every error, counted) and the last good one stays; a good one
//! is offered to the intake, which swaps it in at one point of the ordered stream: batches
//! before it are matched with the old set, batches after it with the new one, and the shards
//! carry the state of unchanged rules over (see [`crate::matcher::TargetMap`]).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::ServiceConfig;
use crate::identity::config::IdentityConfigError;
use crate::matcher::{self, CompileOptions, RuleSet};
use crate::metrics::Metrics;
use crate::sigma::processing::PipelineError;
use crate::sigma::{self, LoadErrors, LoadOptions, YamlBudget};

use super::Control;

/// Why a rule set could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Identity(#[from] IdentityConfigError),
    #[error(transparent)]
    Rules(#[from] LoadErrors),
    #[error("no rules found under {0}")]
    Empty(String),
}

/// Loads and compiles the rule set the config names (paths, pipelines, identity file, limits).
pub fn compile_rules(config: &ServiceConfig) -> Result<RuleSet, ReloadError> {
    let identity = match &config.rules.identity {
        None => Default::default(),
        Some(p) => crate::identity::config::load(p)?,
    };
    let pipelines = sigma::processing::load(&config.rules.pipelines, YamlBudget::default())?;
    let catalog = sigma::load(&config.rules.paths, &LoadOptions::with_pipelines(pipelines))?;
    if catalog.rules.is_empty() {
        let paths: Vec<String> = config
            .rules
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(ReloadError::Empty(paths.join(", ")));
    }
    let opts = CompileOptions {
        limits: config.engine.decode_limits(),
        identity: identity.templates,
        aws_sso: identity.aws_sso,
        regex_cache_budget: Some(config.engine.split().regex_cache_per_worker),
        ..CompileOptions::default()
    };
    Ok(matcher::compile(&catalog, &opts)?)
}

/// A fingerprint of the files a rule set is built from: every file under the rule paths, the
/// pipelines and the identity file, by path, size and modification time.
pub fn fingerprint(config: &ServiceConfig) -> u64 {
    let mut files = Vec::new();
    for p in &config.rules.paths {
        walk(p, &mut files);
    }
    files.extend(config.rules.pipelines.iter().cloned());
    files.extend(config.rules.identity.iter().cloned());
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        f.hash(&mut h);
        match std::fs::metadata(f) {
            Ok(m) => {
                m.len().hash(&mut h);
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .hash(&mut h);
            }
            Err(e) => e.kind().hash(&mut h),
        }
    }
    h.finish()
}

/// Files under `path` (the path itself when it is a file); unreadable directories count as
/// empty (the load reports them).
fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for e in entries.flatten() {
                walk(&e.path(), out);
            }
        }
        Err(_) => out.push(path.to_path_buf()),
    }
}

/// Reloads on request or on change, and hands good sets to the intake.
pub struct Reloader {
    config: ServiceConfig,
    seen: u64,
}

impl Reloader {
    pub fn new(config: ServiceConfig) -> Reloader {
        let seen = fingerprint(&config);
        Reloader { config, seen }
    }

    /// How often to look for changed rule files (`rules.watch`), if at all.
    pub fn watch_interval(&self) -> Option<std::time::Duration> {
        self.config
            .rules
            .watch
            .then_some(self.config.rules.watch_interval)
    }

    /// Whether the rule files changed since the last load (or the last check).
    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.config);
        let changed = now != self.seen;
        self.seen = now;
        changed
    }

    /// Compiles the rule set again; offers it to `control` when it loads, else logs every
    /// error and counts the failure. Returns whether a set was offered.
    pub fn reload(&mut self, why: &str, control: &Control, metrics: &Metrics) -> bool {
        self.seen = fingerprint(&self.config);
        match compile_rules(&self.config) {
            Ok(rules) => {
                tracing::info!(
                    reason = why,
                    detections = rules.detections.len(),
                    correlations = rules.correlations.len(),
                    "rules compiled; swapping them in"
                );
                control.offer_rules(Arc::new(rules));
                true
            }
            Err(e) => {
                Metrics::add(&metrics.rule_reload_failures, 1);
                if let ReloadError::Rules(errors) = &e {
                    for err in &errors.0 {
                        tracing::error!(error = %err, "rule error");
                    }
                }
                tracing::error!(reason = why, error = %e, "rule reload failed; the last good rules stay");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "title: t\nid: 11111111-1111-1111-1111-111111111111\nlogsource: {product: aws, service: cloudtrail}\ndetection: {sel: {eventName: ListUsers}, condition: sel}\n";

    fn config(dir: &Path) -> ServiceConfig {
        let text =
            "[kafka]\nbrokers = \"b:1\"\n[[input]]\ntopic = \"in\"\n[rules]\npaths = [\"rules\"]\n";
        crate::config::load_str(text, &dir.join("c.toml"), Vec::new())
            .unwrap()
            .0
    }

    #[test]
    fn a_changed_file_is_noticed_a_bad_set_is_refused_and_counted_a_good_one_offered() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(rules.join("a.yml"), RULE).unwrap();
        let (control, metrics) = (Control::new(), Metrics::default());
        let mut r = Reloader::new(config(dir.path()));
        assert!(!r.changed(), "nothing changed since the load");

        std::fs::write(
            rules.join("b.yml"),
            "title: broken\ndetection: {condition: nope}\n",
        )
        .unwrap();
        assert!(r.changed(), "a new file");
        assert!(!r.reload("test", &control, &metrics));
        assert_eq!(
            metrics
                .rule_reload_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert!(control.take_rules().is_none(), "the last good set stays");
        match compile_rules(&config(dir.path())) {
            Err(ReloadError::Rules(e)) => {
                assert!(e.to_string().contains("b.yml"), "{e}");
            }
            other => panic!("expected rule errors, got {:?}", other.map(|_| ())),
        }

        std::fs::write(
            rules.join("b.yml"),
            RULE.replace("ListUsers", "ListRoles")
                .replace("1111-111111111111", "1111-222222222222"),
        )
        .unwrap();
        assert!(r.reload("test", &control, &metrics));
        let offered = control.take_rules().expect("a good set is offered");
        assert_eq!(offered.detections.len(), 2);
        assert!(!r.changed(), "the reload took the files as they are now");
    }

    #[test]
    fn a_directory_without_rules_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let e = compile_rules(&config(dir.path())).err().expect("no rules");
        assert!(matches!(e, ReloadError::Empty(_)), "{e}");
    }
}
