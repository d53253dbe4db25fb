//! credtrail: a streaming detection engine for credential-abuse chains.
//!
//! Security events (CloudTrail, Windows, Kubernetes audit, ECS, OCSF JSON) are decoded,
//! matched against Sigma detection rules, correlated per identity in event time by Sigma
//! correlation rules, and emitted as OCSF Detection Findings whose evidence points back at every
//! contributing event.
//!
//! # Layout
//!
//! Two layers. The engine, below, turns events into alerts; the [`tooling`], above, makes data
//! and judges rules with it. Within the engine each module imports only modules listed before
//! it, so the layers can be drawn without a circle (`tests/module_graph.rs` keeps it so):
//!
//! ```text
//! engine:  time, vocab, cores < input < decode < sigma < matcher < identity < inventory < score
//!            < correlate < alert < deadletter < cluster < pipeline < config < metrics < service
//! tooling: generator < eval, ruletest;  lint;  sarif < lint, ruletest  (each may use any engine module)
//! ```
//!
//! ## The engine, bottom up
//!
//! An event runs through input, decode, matcher, identity, correlate and alert, in the threads
//! of the [`pipeline`], which a replay (files) and the service (Kafka) drive alike.
//!
//! - [`time`]: event time and durations.
//! - [`cores`]: how many cores there are, and work spread over them with results in input order
//!   (loading rules).
//! - [`vocab`]: the words every stage shares and none owns: where an event was read
//!   ([`Position`](vocab::Position)) and the [`EventRef`](vocab::EventRef) evidence points at,
//!   the [`Hit`](vocab::Hit) and its [`Target`](vocab::Target), the evidence details the
//!   decoder takes from an event ([`EventDetails`](vocab::EventDetails)), the group key (separator,
//!   identity mark, shard hash), what an event touched, a rule's
//!   [`StateBudget`](vocab::StateBudget), and who acts ([`IdentityRef`](vocab::IdentityRef),
//!   credential [`Link`](vocab::Link)s). It imports nothing of the engine but [`time`]; the
//!   stages re-export these items at their old paths (`correlate::Hit`, `identity::Link`,
//!   `input::Position`, ...).
//! - [`input`]: where events come from (files, standard input; Kafka records through
//!   [`service`]) and the registry of their sources, cut into batches of lines.
//! - [`decode`]: one JSON event to a borrowed view of the fields rules need (simd-json tape,
//!   reused buffers, size/depth/field limits), by source profile; event time, identity, what
//!   the event touched and what its evidence shows; each profile's built-in field map from
//!   Sigma's canonical names to its own ([`decode::fieldmap`]); one spelling per account
//!   ([`decode::principal`]) and the credential an event acted with ([`decode::credential`]).
//! - [`sigma`]: rule files to typed Sigma rules (detections, correlations), loudly; stage
//!   selectors that take rules by ATT&CK tag ([`sigma::selector`]).
//! - [`matcher`]: rules compiled to predicates, an Aho-Corasick prefilter per field, literal
//!   wildcard matchers and one small regex engine per `re` pattern; per event, the detections
//!   it satisfies. On a rule reload, which correlations of the old set carry their open state
//!   into the new one. Log-source guards per profile ([`matcher::logsource`]), which also pick
//!   the plan an event gets ([`matcher::partition`]); field scanners that skip text no literal
//!   can start in ([`matcher::scanner`]); what a scanner found in a long text walked a
//!   moment ago, per worker ([`matcher::memo`]); a public corpus
//!   loaded best-effort ([`matcher::corpus`]); a rule set with errors loaded as far as it can
//!   for the rule tools ([`matcher::loadable`]).
//! - [`identity`]: who is really acting: credential lineage across `AssumeRole` and new access
//!   keys, resolved in event-time order to a root identity that hits are grouped by; credentials
//!   seen acting as their owner ([`identity::sighting`]).
//! - [`inventory`]: what each identity can reach (identity context file, and in the service a
//!   compacted topic applied live as an overlay), canaries.
//! - [`score`]: blast radius 0-100 from reach, what the chain touched, stage and tempo, with a
//!   breakdown whose points add up to the score.
//! - [`correlate`]: the per-shard event-time state machines (`temporal_ordered`, `temporal`,
//!   `event_count`, `value_count`, the value aggregations, windows decided at close, the
//!   `credtrail:` extension's gaps, `until` and absence) with watermarks, timers and budgets;
//!   a shard's states written out and read back ([`correlate::engine::Snapshot`]).
//! - [`alert`]: a finding as an OCSF Detection Finding with a deterministic id: evidence in
//!   OCSF's own objects ([`alert::evidence`], bounded), severity, confidence, risk in words,
//!   message and remediation ([`alert::triage`]), incidents ([`alert::incident`]: findings of one
//!   identity grouped under one id, Create, Update, Close), strings escaped ([`alert::escape`]);
//!   ATT&CK from tags.
//! - [`deadletter`]: events that could not be processed, with their reason.
//! - [`cluster`]: what instances of one consumer group exchange through Kafka to give one
//!   answer: hit, credential-link and stamp records ([`cluster::record`]), where a group key's
//!   hits go ([`cluster::placement`]), and event time from stamps ([`cluster::frontier`]).
//! - [`pipeline`]: the one dataflow of the engine (workers, sequence, shards, output) and the
//!   bounded channels between them, driven by a front end through [`pipeline::Item`]s and a
//!   [`pipeline::Sink`]; [`pipeline::replay()`] is the file front end ([`pipeline::front`]:
//!   the files cut by the replay's thread, or by the workers through a [`pipeline::feed`]);
//!   [`pipeline::budget`] splits the one memory budget over state, hits, links and caches;
//!   a cluster's stage 2 suspended into a snapshot and restored from one ([`pipeline::suspend`]).
//! - [`config`]: the `credtrail run` service's settings (TOML, `CREDTRAIL_*` environment,
//!   secret files), validated.
//! - [`metrics`]: the service's Prometheus metrics and its `/metrics`, `/livez`, `/readyz`
//!   endpoint; a cluster member's two engines each with their gauges ([`metrics::Gauges`]).
//! - [`service`]: `credtrail run`, the Kafka front end of the same engine: intake (consumer
//!   group, per-partition batches), the delivery sink (alert and dead-letter producer, the
//!   ledger that decides which offsets may be committed), checkpoints, the live inventory and
//!   hot rule reload.
//!
//! ## The tooling, on top of the engine
//!
//! - [`tooling::generator`]: seeded, streaming, labelled datasets of every source
//!   (`credtrail gen`), the W500 rule set, and the bundled demo dataset.
//! - [`tooling::eval`]: detection quality of a replay against labels (`credtrail eval`).
//! - [`tooling::ruletest`]: `rules test`: the cases rules carry, replayed through the engine,
//!   and the generated variants (shuffled, duplicated, stretched, `until`/`absence` inserted).
//! - [`tooling::report`]: a replay's alerts grouped by incident as one self-contained HTML page
//!   (`credtrail report`, `replay --report`) or a terminal summary (`replay --format text`).
//! - [`tooling::lint`]: rule-set diagnostics for `credtrail rules lint`: every load error once
//!   (no follow-on errors), warnings for rules no source profile can match or fields no
//!   profile schema has, with a "did you mean".
//! - [`tooling::sarif`]: lint findings and failed rule tests as SARIF 2.1.0 for code scanning.
//!
//! An alert is built in [`alert::render`] from a [`correlate::Finding`].

pub mod alert;
pub mod cluster;
pub mod config;
pub mod cores;
pub mod correlate;
pub mod deadletter;
pub mod decode;
pub mod identity;
pub mod input;
pub mod inventory;
pub mod matcher;
pub mod metrics;
pub mod pipeline;
pub mod score;
pub mod service;
pub mod sigma;
pub mod time;
pub mod tooling;
pub mod vocab;
