//! Loading a public rule corpus (SigmaHQ's 3,780 rules) next to one's own rules.
//!
//! One's own rules load strictly: any error fails the load. A corpus is written for many
//! backends and a few of its rules use what credtrail refuses (aggregations after `|`,
//! placeholders without values, ...). Those rules are left out, each one returned with the
//! error that excluded it, so the caller reports every one (`credtrail replay --corpus`
//! prints them and their count): nothing is skipped silently, and nothing the user wrote is
//! skipped at all. Corpus rules feed the stages whose `select:` takes them and never alert on
//! their own (thousands of single-event alerts are what chains exist to avoid).

use std::collections::HashSet;
use std::path::PathBuf;

use super::{CompileOptions, RuleSet, compile};
use crate::sigma::{self, LoadError, LoadErrors, LoadOptions, Rule};

/// How many times resolving and compiling are retried after leaving out the corpus rules an
/// attempt named; each attempt leaves out at least one rule, and errors of one kind surface
/// together, so a few suffice.
const MAX_ATTEMPTS: usize = 6;

/// A compiled rule set and the corpus rules left out of it.
pub struct WithCorpus {
    pub rules: RuleSet,
    /// One error per corpus rule (or unparsable corpus document) left out.
    pub left_out: Vec<LoadError>,
    /// Corpus rules loaded.
    pub corpus_loaded: usize,
}

/// Loads `paths` strictly and `corpus` best-effort (see the module doc), and compiles both as
/// one rule set.
///
/// # Errors
///
/// Every error of a rule under `paths`, or, when the corpus keeps failing after
/// `MAX_ATTEMPTS` (6) rounds of leaving rules out, the last round's errors.
pub fn load_with_corpus(
    paths: &[PathBuf],
    corpus: &[PathBuf],
    load: &LoadOptions,
    opts: &CompileOptions,
) -> Result<WithCorpus, LoadErrors> {
    let own_files = sigma::collect_files(paths).map_err(|e| LoadErrors(vec![e]))?;
    let corpus_files: Vec<PathBuf> = sigma::collect_files(corpus)
        .map_err(|e| LoadErrors(vec![e]))?
        .into_iter()
        .filter(|f| !own_files.contains(f))
        .collect();
    let (mut rules, errors): (Vec<Rule>, _) = sigma::parse_files(&own_files, load);
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    let own = rules.len();
    let (corpus_rules, mut left_out) = sigma::parse_files(&corpus_files, load);
    rules.extend(corpus_rules);
    let in_corpus: HashSet<&PathBuf> = corpus_files.iter().collect();
    let mut last = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let mut errors = Vec::new();
        let catalog = sigma::resolve(rules.clone(), &mut errors);
        if errors.is_empty() {
            match compile(&catalog, opts) {
                Ok(mut set) => {
                    // Corpus rules are stage material: they never alert on their own.
                    for d in &mut set.detections {
                        if in_corpus.contains(&set.meta[d.rule as usize].file) {
                            d.standalone = false;
                        }
                    }
                    return Ok(WithCorpus {
                        rules: set,
                        corpus_loaded: rules.len() - own,
                        left_out,
                    });
                }
                Err(e) => errors = e.0,
            }
        }
        let (theirs, ours): (Vec<LoadError>, Vec<LoadError>) = errors
            .into_iter()
            .partition(|e| in_corpus.contains(&e.file));
        if !ours.is_empty() {
            return Err(LoadErrors(ours));
        }
        let failed: HashSet<(PathBuf, Option<String>)> = theirs
            .iter()
            .map(|e| (e.file.clone(), e.rule.clone()))
            .collect();
        let before = rules.len();
        rules.retain(|r| {
            !failed.contains(&(r.meta.file.clone(), Some(r.meta.label())))
                && !failed.contains(&(r.meta.file.clone(), None))
        });
        if rules.len() == before {
            return Err(LoadErrors(theirs));
        }
        let mut seen = HashSet::new();
        left_out.extend(
            theirs
                .iter()
                .filter(|e| seen.insert((e.file.clone(), e.rule.clone())))
                .cloned(),
        );
        last = theirs;
    }
    Err(LoadErrors(last))
}
