//! Tooling: what is built on the engine to make, replay and judge data and rules. It is the
//! second layer of the crate: these modules use the engine's public items, and no engine module
//! imports them (`tests/module_graph.rs` fails if one does), so the engine's path from an input
//! line to an alert never runs through a generator or a report.
//!
//! - [`generator`]: seeded, streaming, labelled datasets of every source (`credtrail gen`),
//!   the W500 rule set, and the bundled demo dataset ([`generator::demo`]).
//! - [`eval`]: detection quality of a replay against the generator's labels (`credtrail eval`).
//! - [`ruletest`]: `rules test`: the cases rules carry, replayed through the engine, and the
//!   generated variants (shuffled, duplicated, stretched, `until`/`absence` inserted).
//! - [`report`]: a replay's alerts grouped by incident, as one self-contained HTML page
//!   (`credtrail report`, `replay --report`) or a terminal summary (`replay --format text`).
//! - [`lint`]: rule-set diagnostics for `credtrail rules lint`: every load error, and warnings
//!   for rules no source profile can match.
//! - [`sarif`]: lint findings and failed rule tests as a SARIF 2.1.0 log, for code scanning.
//!
//! Among themselves they point one way: [`eval`] reads the generator's labels and [`ruletest`]
//! draws from its random stream; the generator uses neither; [`lint`] and [`ruletest`] write
//! [`sarif`], which uses neither.

pub mod eval;
pub mod generator;
pub mod lint;
pub mod report;
pub mod ruletest;
pub mod sarif;
