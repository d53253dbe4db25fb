//! Cluster: what several `credtrail run` instances in one consumer group exchange through Kafka
//! so that they give the answer one `replay` gives, whatever partition an event was read from.
//!
//! Input is not keyed by identity (shippers key by account, host or nothing), and lineage moves
//! an `AssumeRole` session onto its caller, so no partitioning of the input can put a chain on
//! one instance. The work is cut in two stages joined by topics:
//!
//! ```text
//!  input topics ──> stage 1 (every instance, input group)            stage 2 (hits group)
//!                   decode, match, lateness, resolve identity ──hits──> correlate, score, alert
//!                        │   ^                                 topic      (the partitions of the
//!                        v   │ links + stamps of every instance            hits topic it owns)
//!                   lineage topic (compacted, read whole by every instance)
//! ```
//!
//! - **Hits** ([`record::HitRecord`]) are keyed and placed by their group key
//!   ([`placement::partition_of`], a hash fixed across processes and versions), so every hit of
//!   one chain reaches the one stage-2 owner of that key.
//! - **Links** ([`record::LinkRecord`]): the credentials an event minted, produced to the
//!   lineage topic by the instance that read the event; every instance applies all of them, so
//!   a session's hits are keyed by their caller on any instance.
//! - **Stamps** ([`record::Stamp`]): after what it produced, the owner of an input partition
//!   writes to every partition of the hits and lineage topics how far that input partition's
//!   output is complete: no hit (or link) of it older than the stamp follows. A reader's time is
//!   the minimum over the input partitions of their latest stamp ([`frontier::Frontier`]); an
//!   input partition nobody owns, or that nobody stamped yet, holds time back, so a rebalance
//!   delays alerts and never decides a chain before its hits are in.
//!
//! Stage 1 releases a hit only when the lineage frontier (every input partition's links) has
//! passed it, as one engine releases a hit only when every source's watermark has: the links a
//! hit resolves through are applied first. A restarted stage 1 produces again what it produced
//! after its last commit; stage 2 drops a record whose input position it has seen
//! ([`frontier::Frontier::admits`]), so a hit counts once.
//!
//! Records are JSON, one per Kafka message, validated into engine types before use: a record of
//! another rule set (instances must load the same rules, [`placement::RulesFingerprint`]), of an
//! unknown version or out of bounds is refused with its reason, never guessed at.

pub mod changelog;
pub mod frontier;
pub mod placement;
pub mod record;
