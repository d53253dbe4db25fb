//! A rule set that loads what loads: the detection engineer's view of rules with errors.
//!
//! The service and `replay` refuse a rule set with any error ([`crate::sigma::load`] and
//! [`compile()`]). `rules lint` and `rules test` must instead show every error once and keep
//! working with every rule that is fine, so that one bad rule does not hide the results of
//! the rules next to it. [`load_loadable`] parses every file (each document on its own),
//! then resolves and compiles in rounds: a round's errors name the rules they stop, those
//! rules leave the set with their ids and names marked as not loaded, and the next round runs
//! without them. A correlation that needs a rule which did not load is held back
//! ([`Catalog::held_back`]), never reported as a second error.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{CompileOptions, RuleSet, compile};
use crate::sigma::{self, Catalog, LoadError, LoadOptions, Rule};

/// Most resolve-and-compile rounds: each round leaves out at least one rule, and errors of one
/// kind surface together, so a few suffice.
const MAX_ROUNDS: usize = 8;

/// What the caller needs of the rules that load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Only the errors and counts (`rules lint`): after the first compile that fails, the
    /// rules it names leave the set and the rest is not compiled again. One compile reports
    /// every compile error (it does not stop at the first), and a smaller set cannot fail
    /// where the larger one did not, so nothing is missed, and a hostile set is refused at
    /// the price of one budget check rather than built.
    Errors,
    /// The compiled rule set of what loads (`rules test`), at the price of compiling again.
    RuleSet,
}

/// What loading a rule set found, bad rules and all.
#[derive(Default)]
pub struct Loadable {
    /// Rule files read.
    pub files: usize,
    /// Rule documents found, filters included (a file that is not YAML at all counts as one).
    pub documents: usize,
    /// Every rule that parsed, as written (before filters are merged): what warnings judge.
    pub parsed: Vec<Rule>,
    /// The rules that load, resolved.
    pub catalog: Catalog,
    /// The catalog compiled; `None` with [`Want::Errors`] after a compile error, or when errors
    /// that name no rule kept it from compiling.
    pub rules: Option<RuleSet>,
    /// Every error, each once, in the order found: one per rule that does not load (or file
    /// that cannot be read), and none that only follows from another.
    pub errors: Vec<LoadError>,
    /// Rule documents that load (neither failed nor held back).
    pub loaded: usize,
}

/// Loads every rule file under `paths` as one set, keeping every rule that loads (see the
/// module doc). Never fails: what cannot load is in [`Loadable::errors`].
pub fn load_loadable(
    paths: &[PathBuf],
    load: &LoadOptions,
    opts: &CompileOptions,
    want: Want,
) -> Loadable {
    let mut out = Loadable::default();
    let files = match sigma::collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    out.files = files.len();
    let (mut rules, errors) = sigma::parse_files(&files, load);
    // Each document is a rule or an error.
    out.documents = rules.len() + errors.len();
    out.errors.extend(errors);
    out.parsed = rules.clone();
    for _ in 0..MAX_ROUNDS {
        let mut round = out.errors.clone();
        let catalog = sigma::resolve(rules.clone(), &mut round);
        let mut new = round.split_off(out.errors.len());
        let mut compile_failed = false;
        if new.is_empty() {
            match compile(&catalog, opts) {
                Ok(set) => {
                    out.loaded = rules.len() - catalog.held_back.len();
                    out.catalog = catalog;
                    out.rules = Some(set);
                    return out;
                }
                Err(e) => {
                    new = e.0;
                    compile_failed = true;
                }
            }
        }
        // The rules this round's errors name leave the set, their names marked as not loaded.
        let named: HashMap<(PathBuf, String), Vec<String>> = rules
            .iter()
            .map(|r| ((r.meta.file.clone(), r.meta.label()), sigma::declared_by(r)))
            .collect();
        let mut failed = std::collections::HashSet::new();
        for e in &mut new {
            if let Some(label) = &e.rule
                && let Some(names) = named.get(&(e.file.clone(), label.clone()))
            {
                failed.insert((e.file.clone(), label.clone()));
                if e.declared.is_empty() {
                    e.declared = names.clone();
                }
            }
        }
        let before = rules.len();
        rules.retain(|r| !failed.contains(&(r.meta.file.clone(), r.meta.label())));
        for e in new {
            if !out.errors.contains(&e) {
                out.errors.push(e);
            }
        }
        if rules.len() == before {
            out.loaded = rules.len() - catalog.held_back.len();
            out.catalog = catalog;
            return out;
        }
        if compile_failed && want == Want::Errors {
            // Resolve once more for what the failed rules hold back; no second compile.
            let mut round = out.errors.clone();
            let catalog = sigma::resolve(rules.clone(), &mut round);
            for e in round.split_off(out.errors.len()) {
                if !out.errors.contains(&e) {
                    out.errors.push(e);
                }
            }
            out.loaded = rules.len() - catalog.held_back.len();
            out.catalog = catalog;
            return out;
        }
    }
    out
}
