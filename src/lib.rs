//! credtrail: a streaming detection engine for credential-abuse chains.
//!
//! Security events (CloudTrail, Windows, Kubernetes audit, ECS, OCSF JSON) are decoded,
//! matched against Sigma detection rules, correlated per identity in event time by Sigma
//! correlation rules, and emitted as OCSF Detection Findings whose evidence points back at every
//! contributing event.
//!
//! # Layout
//!
//! The path of one event, in module order:
//!
//! - [`input`]: where events come from (files, standard input; Kafka records through
//!   [`service`]) and their [`Position`](input::Position), cut into batches of lines.
//! - [`decode`]: one JSON event to a borrowed view of the fields rules need (simd-json tape,
//!   reused buffers, size/depth/field limits), by source profile; event time and identity.
//! - [`sigma`]: rule files to typed Sigma rules (detections, correlations), loudly.
//! - [`identity`]: who is really acting: identity references, credential lineage across
//!   `AssumeRole` and new access keys, resolved in event-time order to a root identity.
//! - [`matcher`]: rules compiled to predicates, an Aho-Corasick prefilter per field and
//!   multi-pattern regexes; per event, the detections it satisfies. On a rule reload, which
//!   correlations of the old set carry their open state into the new one.
//! - [`correlate`]: the per-shard event-time state machines (`temporal_ordered`, `temporal`,
//!   `event_count`, `value_count`, the value aggregations, windows decided at close, the
//!   `credtrail:` extension's gaps, `until` and absence) with watermarks, timers and budgets.
//! - [`pipeline`]: the threads of a replay (reader, workers, sequencer, shards, writer) and the
//!   bounded channels between them.
//! - [`inventory`]: what each identity can reach (identity context file, and in the service a
//!   compacted topic applied live as an overlay), canaries.
//! - [`score`]: blast radius 0-100 from reach, what the chain touched, stage and tempo, with a
//!   breakdown whose points add up to the score.
//! - [`alert`]: a finding as an OCSF Detection Finding with a deterministic id; ATT&CK from tags.
//! - [`deadletter`]: events that could not be processed, with their reason.
//! - [`lint`]: rule-set diagnostics for `credtrail rules lint`: every load error, and warnings
//!   for rules no source profile can match.
//! - [`demo`]: the seeded generator of the bundled demo dataset.
//! - [`ruletest`]: `rules test`: the cases rules carry, replayed through the engine, and the
//!   generated variants (shuffled, duplicated, stretched, `until`/`absence` inserted).
//! - [`generator`]: seeded, streaming, labelled datasets of every source (`credtrail gen`) and
//!   the W500 rule set.
//! - [`eval`]: detection quality of a replay against labels (`credtrail eval`).
//! - [`time`]: event time and durations.
//! - [`vocab`]: the words every stage shares and none owns (event position and reference, hit
//!   and target, group key, touched kinds, rule state budget, identity and credential link);
//!   it imports nothing of the engine but [`time`], and the stages re-export its items.
//! - [`config`]: the `credtrail run` service's settings (TOML, `CREDTRAIL_*` environment,
//!   secret files), validated.
//! - [`service`]: `credtrail run`, the Kafka consumer group feeding the engine: intake,
//!   per-partition event time, alert and dead-letter producer, the ledger that decides which
//!   offsets may be committed, checkpoints, the live inventory and hot rule reload.
//! - [`metrics`]: the service's Prometheus metrics and its `/metrics`, `/livez`, `/readyz`
//!   endpoint.
//!
//! An alert is built in [`alert::render`] from a [`correlate::Finding`].

pub mod alert;
pub mod config;
pub mod correlate;
pub mod deadletter;
pub mod decode;
pub mod demo;
pub mod eval;
pub mod generator;
pub mod identity;
pub mod input;
pub mod inventory;
pub mod lint;
pub mod matcher;
pub mod metrics;
pub mod pipeline;
pub mod ruletest;
pub mod score;
pub mod service;
pub mod sigma;
pub mod time;
pub mod vocab;
