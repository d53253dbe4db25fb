//! The runner: each case of a test file prepared, replayed through the pipeline, compared, and
//! its variants run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::check::{Actual, RuleKey, actual, compare, with_dead_letters};
use super::events::{self, Built};
use super::spec::{Case, TestFile};
use super::variants::{self, Check, Named, Variant};
use super::{CaseResult, RuleTestError, Run, Status, TestOptions, explain};
use crate::correlate::ShardLimits;
use crate::decode::ProfileKind;
use crate::input::ReadLimits;
use crate::matcher::{self, CompileOptions, RuleSet};
use crate::pipeline::{self, ReplayOptions};
use crate::sigma::{self, Body, Catalog, LoadErrors};
use crate::time::{EventTime, Span};

pub(super) struct Runner {
    /// The rules that load.
    pub(super) catalog: Catalog,
    /// Ids and names of the rules that did not load (each already a failed result).
    pub(super) not_loaded: HashSet<String>,
    pub(super) base: Arc<RuleSet>,
    /// Rule sets in which a rule that only feeds a correlation alerts on its own.
    pub(super) forced: HashMap<usize, Arc<RuleSet>>,
    pub(super) scratch: Scratch,
    pub(super) opts: TestOptions,
}

/// The default `base_time`.
const BASE_TIME: &str = "2024-01-01T00:00:00Z";
/// The default allowed lateness of a case.
const LATENESS: &str = "5m";

impl Runner {
    /// Runs every case of test file `file`, appending one result per case and variant.
    pub(super) fn run_file(&mut self, file: &Path, out: &mut Vec<CaseResult>) {
        let fail = |line: u64, message: String| CaseResult {
            file: file.to_path_buf(),
            line,
            col: 0,
            case: "(test file)".into(),
            variant: None,
            status: Status::Fail,
            message,
            explain: Vec::new(),
        };
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => return out.push(fail(0, format!("cannot read: {e}"))),
        };
        let parsed: TestFile = match serde_saphyr::from_str(&text) {
            Ok(t) => t,
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("{}:{}: ", l.line(), l.column()))
                    .unwrap_or_default();
                let line = e.location().map_or(0, |l| l.line());
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or("");
                return out.push(fail(line, format!("{at}{first}")));
            }
        };
        let base_time = match &parsed.base_time {
            None => EventTime::parse(BASE_TIME),
            Some(s) => EventTime::parse(&s.value),
        };
        let Some(base_time) = base_time else {
            let line = parsed.base_time.as_ref().map_or(0, |s| s.referenced.line());
            return out.push(fail(
                line,
                format!("{line}: base_time is not an RFC 3339 time"),
            ));
        };
        let stem = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("test")
            .trim_end_matches(".yaml")
            .trim_end_matches(".yml")
            .to_string();
        for (i, case) in parsed.tests.iter().enumerate() {
            let id_prefix = format!("{stem}-{i}");
            self.run_case(file, case, base_time, &id_prefix, out);
        }
    }

    fn run_case(
        &mut self,
        file: &Path,
        case: &Case,
        base_time: EventTime,
        id_prefix: &str,
        out: &mut Vec<CaseResult>,
    ) {
        let result = |variant: Option<String>, status: Status, message: String| CaseResult {
            file: file.to_path_buf(),
            line: case.name.referenced.line(),
            col: case.name.referenced.column(),
            case: case.name.value.clone(),
            variant,
            status,
            message,
            explain: Vec::new(),
        };
        let prepared = match self.prepare(case, base_time, id_prefix) {
            Ok(p) => p,
            Err(message) => return out.push(result(None, Status::Fail, message)),
        };
        let base = match self.replay(&prepared.rules, &prepared.built, prepared.lateness, 1) {
            Ok(run) => run,
            Err(message) => return out.push(result(None, Status::Fail, message)),
        };
        let alerts = self.of_rule(prepared.rule, base.alerts);
        let verdict = compare(&case.expect, &alerts);
        let passed = verdict.is_ok();
        let mut first = match verdict {
            Ok(()) => result(None, Status::Pass, String::new()),
            Err(m) => result(
                None,
                Status::Fail,
                with_dead_letters(m, base.late, base.dead_letters),
            ),
        };
        if self.opts.explain {
            first.explain = explain::explain(&explain::Case {
                rules: &prepared.rules,
                rule: prepared.rule,
                events: &prepared.built,
                base_time,
                expected: case.expect.len(),
                got: alerts.len(),
                late: base.late,
            });
        }
        out.push(first);
        let Body::Correlation(_) = &self.catalog.rules[prepared.rule].body else {
            return; // variants are for correlations
        };
        let Some(corr) = prepared
            .rules
            .correlations
            .iter()
            .find(|c| c.rule as usize == prepared.rule)
        else {
            return;
        };
        let inner = |r: u32| prepared.rules.correlations.iter().find(|c| c.rule == r);
        let mut derived = 0u64;
        let mut derived_at_close = false;
        for (k, &r) in corr.stages.iter().enumerate() {
            if let Some(c) = inner(r) {
                derived |= 1 << k;
                derived_at_close |= c.decide == matcher::Decide::AtWindowClose;
            }
        }
        let plan = variants::Plan {
            corr,
            case,
            lateness: prepared.lateness,
            built: &prepared.built,
            kinds: &prepared.kinds,
            base: &alerts,
            shuffles: self.opts.shuffles,
            seed: self.opts.seed,
            id_prefix,
            derived,
            derived_at_close,
        };
        for v in variants::plan(&plan) {
            let skipped = case
                .skip_variants
                .iter()
                .any(|s| v.name().starts_with(s.as_str()));
            match v {
                _ if skipped => {}
                Err((name, reason)) => out.push(result(Some(name), Status::Skip, reason)),
                Ok(_) if !passed => out.push(result(
                    Some(v.name().to_string()),
                    Status::Skip,
                    "the case itself failed".into(),
                )),
                Ok(v) => {
                    let r = self.check_variant(&prepared, case, &alerts, &v);
                    out.push(match r {
                        Ok(()) => result(Some(v.name), Status::Pass, String::new()),
                        Err(m) => result(Some(v.name), Status::Fail, m),
                    });
                }
            }
        }
    }

    fn check_variant(
        &mut self,
        prepared: &Prepared,
        case: &Case,
        base: &[Actual],
        v: &Variant,
    ) -> Result<(), String> {
        let run = self.replay(&prepared.rules, &v.events, prepared.lateness, v.shards)?;
        if run.late > 0 {
            return Err(with_dead_letters(
                "events were late".into(),
                run.late,
                run.dead_letters,
            ));
        }
        let alerts = self.of_rule(prepared.rule, run.alerts);
        match &v.check {
            Check::Expected => compare(&case.expect, &alerts),
            Check::SameIds => {
                compare(&case.expect, &alerts)?;
                let want: Vec<&str> = base.iter().map(|a| a.uid.as_str()).collect();
                let got: Vec<&str> = alerts.iter().map(|a| a.uid.as_str()).collect();
                if want == got {
                    Ok(())
                } else {
                    Err(format!("alert ids differ: expected {want:?}, got {got:?}"))
                }
            }
            Check::NoAlert => match alerts.first() {
                None => Ok(()),
                Some(a) => Err(format!(
                    "expected no alert, got {} (first: group {:?}, events {:?})",
                    alerts.len(),
                    a.group,
                    a.indices()
                )),
            },
        }
    }

    fn prepare(
        &mut self,
        case: &Case,
        base_time: EventTime,
        id_prefix: &str,
    ) -> Result<Prepared, String> {
        let rule = self.resolve(&case.rule.value).ok_or_else(|| {
            let line = case.rule.referenced.line();
            if let Some(h) = self.catalog.held_back.iter().find(|h| {
                sigma::declared_by(&h.rule).contains(&case.rule.value)
            }) {
                return format!(
                    "line {line}: rule `{}` did not load: it references `{}`, which did not load (see its load error)",
                    case.rule.value, h.needs
                );
            }
            if self.not_loaded.contains(&case.rule.value) {
                return format!(
                    "line {line}: rule `{}` did not load (see its load error)",
                    case.rule.value
                );
            }
            let names = self
                .catalog
                .rules
                .iter()
                .flat_map(|r| r.meta.id.iter().chain(r.meta.name.iter()))
                .map(String::as_str);
            format!(
                "line {}: rule `{}` is not loaded (by id or name){}; add its directory with --rules",
                case.rule.referenced.line(),
                case.rule.value,
                crate::sigma::suggest::hint(&case.rule.value, names)
            )
        })?;
        let rules = self.rules_for(rule).map_err(|e| e.to_string())?;
        let lateness = match &case.lateness {
            None => Span::parse(LATENESS).unwrap_or(Span::ZERO),
            Some(l) => Span::parse(&l.value)
                .map_err(|e| format!("line {}: lateness: {e}", l.referenced.line()))?,
        };
        let mut built = Vec::with_capacity(case.events.len());
        let mut kinds = Vec::with_capacity(case.events.len());
        for (i, e) in case.events.iter().enumerate() {
            let at = Span::parse(&e.at.value)
                .map_err(|err| format!("event {i} (line {}): at: {err}", e.at.referenced.line()))?;
            let (b, kind) =
                events::build(i, &e.event, base_time.plus(at), &format!("{id_prefix}-{i}"))
                    .map_err(|err| format!("event {i} (line {}): {err}", e.at.referenced.line()))?;
            built.push(b);
            kinds.push(kind);
        }
        Ok(Prepared {
            rule,
            rules,
            lateness,
            built,
            kinds,
        })
    }

    /// The rule (index in the catalog) a test names by id or name.
    fn resolve(&self, reference: &str) -> Option<usize> {
        self.catalog.rules.iter().position(|r| {
            r.meta.id.as_deref() == Some(reference) || r.meta.name.as_deref() == Some(reference)
        })
    }

    /// The rule set to test `rule` with: the loaded one, or one where the rule, which only
    /// feeds correlations, alerts on its own too.
    fn rules_for(&mut self, rule: usize) -> Result<Arc<RuleSet>, LoadErrors> {
        if !self.catalog.is_silenced(rule) {
            return Ok(self.base.clone());
        }
        if let Some(r) = self.forced.get(&rule) {
            return Ok(r.clone());
        }
        let mut set = matcher::compile(&self.catalog, &CompileOptions::default())?;
        for d in &mut set.detections {
            if d.rule as usize == rule {
                d.standalone = true;
            }
        }
        for c in &mut set.correlations {
            if c.rule as usize == rule {
                c.standalone = true;
            }
        }
        let set = Arc::new(set);
        self.forced.insert(rule, set.clone());
        Ok(set)
    }

    /// Replays `deliveries` (in that order) through the pipeline.
    fn replay(
        &mut self,
        rules: &Arc<RuleSet>,
        deliveries: &[Built],
        lateness: Span,
        shards: usize,
    ) -> Result<Run, String> {
        let (input, alerts_path, dead) = self.scratch.next();
        let mut text = String::new();
        for b in deliveries {
            text.push_str(&b.json.to_string());
            text.push('\n');
        }
        std::fs::write(&input, text)
            .map_err(|e| format!("cannot write {}: {e}", input.display()))?;
        let opts = ReplayOptions {
            inputs: vec![input.clone()],
            shards,
            workers: 1,
            lateness,
            max_future: crate::pipeline::clock::DEFAULT_MAX_FUTURE,
            out: Some(alerts_path.clone()),
            dead_letter: dead.clone(),
            progress: false,
            read: ReadLimits::default(),
            shard_limits: ShardLimits::default(),
            mint: Default::default(),
            lineage: Default::default(),
            assessor: Default::default(),
            signed_out: None,
            cluster: Default::default(),
            cutting: Default::default(),
            // Cases count findings (one alert line each, no incident lines) and compare every
            // evidence (cases are small: no bound needed).
            alert: crate::alert::AlertOptions {
                incidents: None,
                max_evidences: usize::MAX,
                max_bytes: usize::MAX,
            },
        };
        let summary = pipeline::replay(rules.clone(), &opts).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(&alerts_path).unwrap_or_default();
        let mut alerts = Vec::new();
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("unreadable alert: {e}"))?;
            alerts.push(v);
        }
        for p in [&input, &alerts_path, &dead] {
            let _ = std::fs::remove_file(p);
        }
        let parsed = alerts
            .iter()
            .map(|a| actual(a, deliveries))
            .collect::<Vec<_>>();
        Ok(Run {
            alerts: parsed.into_iter().flatten().collect(),
            late: summary.sequencer.late,
            dead_letters: summary.sequencer.dead_letters,
        })
    }

    /// The alerts of catalog rule `rule`.
    fn of_rule(&self, rule: usize, alerts: Vec<(Actual, RuleKey)>) -> Vec<Actual> {
        let meta = &self.catalog.rules[rule].meta;
        alerts
            .into_iter()
            .filter(|(_, key)| match &meta.id {
                Some(id) => key.uid.as_deref() == Some(id.as_str()),
                None => key.uid.is_none() && key.title == meta.title,
            })
            .map(|(a, _)| a)
            .collect()
    }
}

struct Prepared {
    rule: usize,
    rules: Arc<RuleSet>,
    lateness: Span,
    built: Vec<Built>,
    kinds: Vec<ProfileKind>,
}

/// A private scratch directory, removed when dropped.
pub(super) struct Scratch {
    dir: PathBuf,
    n: u64,
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    pub(super) fn new() -> Result<Scratch, RuleTestError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "credtrail-rules-test-{}-{nanos}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|source| RuleTestError::Scratch {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Scratch { dir, n: 0 })
    }

    fn next(&mut self) -> (PathBuf, PathBuf, PathBuf) {
        self.n += 1;
        let n = self.n;
        (
            self.dir.join(format!("input-{n}.jsonl")),
            self.dir.join(format!("alerts-{n}.jsonl")),
            self.dir.join(format!("dead-{n}.jsonl")),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
