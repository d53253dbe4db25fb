//! The ledger: which input offset each partition may commit, and what a restart needs to replay
//! exactly. Pure: no threads, no Kafka; the delivery thread feeds it and asks it at barriers.
//!
//! # The rule
//!
//! Correlation state lives in shard memory, so a restart rebuilds it by replaying input. A
//! partition's committed offset `C` is therefore held back to the oldest event anything still
//! needs:
//!
//! - events consumed but not yet sequenced (everything from `D`, the barrier's sequenced end);
//! - hits waiting in a shard's reorder buffer, and events referenced by live state;
//! - events of alerts not yet acknowledged by the producer (waiting in the merge or in flight);
//! - dead letters not yet acknowledged;
//! - events of acknowledged alerts that a replay from `C` would see only in part (see below).
//!
//! A replay from `C` must see every acknowledged alert either whole or not at all: replaying the
//! tail of an alert without its head would start a chain the first run had already closed. So an
//! acknowledged alert ("unit") that has any event at or after `C` in any partition holds every
//! partition it touches at its earliest event there; this is iterated to a fixpoint. Such units
//! will fire again on replay with the same id; their ids travel in the commit metadata and the
//! replay suppresses them, so a restart re-emits nothing already delivered.
//!
//! # Incidents
//!
//! With incidents on, a unit is a whole incident: every line written for it (its `Create`, its
//! `Update`s, its `Close`), with the events of all its findings. Its state lives only in the
//! output thread, so a restart rebuilds it the way it rebuilds a chain: by replaying input. An
//! incident is pending until its `Close` is decided and every one of its lines acknowledged, and
//! a pending unit holds `C` at its earliest event; a closed incident seen in part pulls `C` back
//! like any acknowledged alert. A replay from `C` therefore sees each incident whole or not at
//! all, decides its findings again in the same output order, and the grouping gives the same
//! lines with the same ids (the incident's id is its first finding's own deterministic id). The
//! ids of the lines already acknowledged, an open incident's included, travel in the metadata and
//! are suppressed: after a restart no incident gets a second `Create`, and its next `Update`
//! follows the `Create` already on the topic. The price: an open incident holds its partitions
//! back to its first event until it closes (its last event plus the incident window plus the
//! longest correlation timespan, in event time), so a restart replays that much input.
//!
//! The metadata also carries the sequenced end `D`, the partition's event-time clock at `D`, and
//! the offsets in `[C, D)` that were late, so the replay makes the same lateness decisions as the
//! first run (a replay starts with an empty clock, which would otherwise accept them).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use xxhash_rust::xxh3::xxh3_64;

pub use crate::pipeline::{Resume, SequencedEnd};
use crate::time::EventTime;

/// Most alert ids carried in one partition's checkpoint record (17 bytes each, so a record stays
/// far below the checkpoint producer's `message.max.bytes`). An incident's `Create` ids come
/// first; beyond the bound a replay may re-emit a line (with the same id), counted in
/// `suppress_overflow`.
pub const MAX_SUPPRESS_IDS: usize = 1024;
/// Most late offsets carried in one partition's commit metadata.
pub const MAX_LATE_OFFSETS: usize = 64;
/// Most units the ledger keeps; beyond it the oldest acknowledged units are forgotten (a replay
/// may then re-emit them, same id), counted in `units_forgotten`.
pub const MAX_UNITS: usize = 1 << 16;

/// The short id of an alert in commit metadata: 64 bits of its `finding_info.uid`.
pub fn short_id(alert_uid: &str) -> u64 {
    xxh3_64(alert_uid.as_bytes())
}

const METADATA_TAG: &str = "ct1";

impl Resume {
    /// The commit metadata text: `ct1 e=<end> c=<clock ns> l=<offsets> s=<hex ids>`.
    pub fn encode(&self) -> String {
        let mut s = format!("{METADATA_TAG} e={}", self.end);
        if let Some(c) = self.clock {
            s.push_str(&format!(" c={}", c.0));
        }
        if !self.late.is_empty() {
            let l: Vec<String> = self.late.iter().map(u64::to_string).collect();
            s.push_str(&format!(" l={}", l.join(",")));
        }
        if !self.suppress.is_empty() {
            let ids: Vec<String> = self.suppress.iter().map(|x| format!("{x:016x}")).collect();
            s.push_str(&format!(" s={}", ids.join(",")));
        }
        s
    }

    /// Parses [`Resume::encode`]'s text. `Ok(None)` for empty metadata (committed by another
    /// tool, or never); an error for text that claims to be ours but does not parse.
    pub fn decode(text: &str) -> Result<Option<Resume>, String> {
        let mut parts = text.split_ascii_whitespace();
        match parts.next() {
            None => return Ok(None),
            Some(METADATA_TAG) => {}
            Some(other) => return Err(format!("unknown metadata format `{other}`")),
        }
        let mut r = Resume::default();
        let mut has_end = false;
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let num = |x: &str| x.parse::<u64>().map_err(|e| format!("`{part}`: {e}"));
            match k {
                "e" => {
                    r.end = num(v)?;
                    has_end = true;
                }
                "c" => {
                    r.clock = Some(EventTime(
                        v.parse::<i64>().map_err(|e| format!("`{part}`: {e}"))?,
                    ))
                }
                "l" => r.late = v.split(',').map(num).collect::<Result<_, _>>()?,
                "s" => {
                    r.suppress = v
                        .split(',')
                        .map(|x| u64::from_str_radix(x, 16).map_err(|e| format!("`{part}`: {e}")))
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(format!("unknown key `{k}`")),
            }
        }
        if !has_end {
            return Err("missing e=".into());
        }
        Ok(Some(r))
    }
}

/// How far an acknowledged or pending alert reaches into one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub source: u32,
    pub min: u64,
    pub max: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnitState {
    /// Decided, not yet acknowledged (in the merge, or produced and in flight).
    Pending,
    /// Acknowledged by the producer (or suppressed because it was delivered before).
    Delivered,
}

/// An alert alone, or an incident with all its lines.
#[derive(Clone, Debug)]
struct Unit {
    spans: Vec<Span>,
    state: UnitState,
    /// Short ids of its acknowledged lines in acknowledgement order (an incident's `Create`
    /// first), at most [`MAX_SUPPRESS_IDS`].
    delivered: Vec<u64>,
    /// Lines decided and not yet acknowledged.
    unacked: u32,
    /// No line will join any more: an alert alone always, an incident once its `Close` is
    /// decided.
    complete: bool,
}

/// Which unit an alert line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// One alert per finding: the line is its own unit.
    Alone,
    /// A line of the incident with this short id; `closes`: it is the incident's `Close`, the
    /// last line it gets.
    Incident { id: u64, closes: bool },
}

/// What to commit for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPoint {
    pub source: u32,
    pub offset: u64,
    pub resume: Resume,
}

/// Counters of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerStats {
    pub suppress_overflow: u64,
    pub late_overflow: u64,
    pub units_forgotten: u64,
    /// Acknowledged line ids of one incident beyond [`MAX_SUPPRESS_IDS`], not remembered.
    pub lines_forgotten: u64,
}

#[derive(Clone, Debug, Default)]
struct Partition {
    committed: Option<u64>,
    /// Unacknowledged dead letters: offset -> how many.
    dead: BTreeMap<u64, u32>,
    late: BTreeSet<u64>,
    /// Ids restored from metadata whose alerts have not been decided again yet, with the
    /// restored end beyond which they can no longer be replayed.
    restored: Vec<u64>,
    restored_end: u64,
}

/// The per-partition bookkeeping of delivery. Partitions are sources ([`crate::input::Sources`]).
#[derive(Debug, Default)]
pub struct Ledger {
    parts: HashMap<u32, Partition>,
    units: BTreeMap<u64, Unit>,
    next_unit: u64,
    /// Incidents not yet complete: short id to unit key.
    incidents: HashMap<u64, u64>,
    pub stats: LedgerStats,
}

/// A handle on one decided line: its unit in the ledger and its own short id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnitId {
    key: u64,
    line: u64,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// A partition was assigned; `resume` is what its committed metadata said.
    pub fn assign(&mut self, source: u32, committed: Option<u64>, resume: Option<&Resume>) {
        let mut p = Partition {
            committed,
            ..Partition::default()
        };
        if let Some(r) = resume {
            p.late = r.late.iter().copied().collect();
            p.restored = r.suppress.clone();
            p.restored_end = r.end;
        }
        self.parts.insert(source, p);
    }

    /// A partition restored from its changelog reads on from the changelog's end, past its
    /// committed offset: commits stay at or after `committed` (they are held back to the
    /// restored state's events as to any), not at the end reading resumed from.
    /// `suppress` (ids of alerts acknowledged before the commit, up to `end`) goes on being
    /// suppressed, as a replay from the commit would.
    pub fn keep_commit(
        &mut self,
        source: u32,
        committed: Option<u64>,
        suppress: Vec<u64>,
        end: u64,
    ) {
        if let Some(p) = self.parts.get_mut(&source) {
            p.committed = committed;
            if !suppress.is_empty() {
                p.restored = suppress;
                p.restored_end = end;
            }
        }
    }

    /// The partitions with an alert decided and not acknowledged, or a dead letter not
    /// acknowledged: what a changelog marker must wait for.
    pub fn unsettled(&self) -> std::collections::HashSet<u32> {
        let mut out: std::collections::HashSet<u32> = (self.parts.iter())
            .filter(|(_, p)| !p.dead.is_empty())
            .map(|(s, _)| *s)
            .collect();
        for u in self.units.values() {
            if u.state == UnitState::Pending || !u.complete {
                out.extend(u.spans.iter().map(|s| s.source));
            }
        }
        out
    }

    /// A partition was revoked: forget it (units touching it stay until delivered).
    pub fn revoke(&mut self, source: u32) {
        self.parts.remove(&source);
    }

    /// Whether the alert with this short id was delivered before a restart and is being decided
    /// again by the replay; if so it is consumed from the restored list.
    pub fn take_restored(&mut self, id: u64, spans: &[Span]) -> bool {
        for s in spans {
            if let Some(p) = self.parts.get_mut(&s.source)
                && let Some(i) = p.restored.iter().position(|x| *x == id)
            {
                p.restored.swap_remove(i);
                return true;
            }
        }
        false
    }

    /// A decided alert enters the ledger as a unit of its own (before it is produced).
    pub fn decided(&mut self, id: u64, spans: Vec<Span>) -> UnitId {
        self.line(Owner::Alone, id, spans)
    }

    /// A decided alert line enters the ledger (before it is produced): `line` is its short id,
    /// `owner` says whether it is a unit of its own or joins its incident's unit.
    pub fn line(&mut self, owner: Owner, line: u64, spans: Vec<Span>) -> UnitId {
        let open = match owner {
            Owner::Incident { id, .. } => self
                .incidents
                .get(&id)
                .copied()
                .filter(|k| self.units.contains_key(k)),
            Owner::Alone => None,
        };
        let key = match open {
            Some(key) => key,
            None => {
                let key = self.next_unit;
                self.next_unit += 1;
                self.units.insert(
                    key,
                    Unit {
                        spans: Vec::new(),
                        state: UnitState::Pending,
                        delivered: Vec::new(),
                        unacked: 0,
                        complete: false,
                    },
                );
                if let Owner::Incident { id, .. } = owner {
                    self.incidents.insert(id, key);
                }
                self.forget_oldest();
                key
            }
        };
        if let Some(u) = self.units.get_mut(&key) {
            merge_spans(&mut u.spans, &spans);
            u.unacked += 1;
            u.state = UnitState::Pending;
            match owner {
                Owner::Alone => u.complete = true,
                Owner::Incident { id, closes } => {
                    if closes {
                        u.complete = true;
                        self.incidents.remove(&id);
                    }
                }
            }
        }
        UnitId { key, line }
    }

    /// Beyond [`MAX_UNITS`], forgets the oldest delivered unit.
    fn forget_oldest(&mut self) {
        if self.units.len() > MAX_UNITS {
            let oldest_delivered = self
                .units
                .iter()
                .find(|(_, u)| u.state == UnitState::Delivered)
                .map(|(k, _)| *k);
            if let Some(k) = oldest_delivered {
                self.units.remove(&k);
                self.stats.units_forgotten += 1;
            }
        }
    }

    /// The producer acknowledged the line (or it was suppressed as already delivered); its
    /// unit is delivered once complete and every line of it is acknowledged.
    pub fn delivered(&mut self, unit: UnitId) {
        if let Some(u) = self.units.get_mut(&unit.key) {
            if u.delivered.len() < MAX_SUPPRESS_IDS {
                u.delivered.push(unit.line);
            } else {
                self.stats.lines_forgotten += 1;
            }
            u.unacked = u.unacked.saturating_sub(1);
            if u.complete && u.unacked == 0 {
                u.state = UnitState::Delivered;
            }
        }
    }

    /// A dead letter was handed to the producer.
    pub fn dead_letter_sent(&mut self, source: u32, offset: u64) {
        if let Some(p) = self.parts.get_mut(&source) {
            *p.dead.entry(offset).or_insert(0) += 1;
        }
    }

    /// The producer acknowledged a dead letter.
    pub fn dead_letter_acked(&mut self, source: u32, offset: u64) {
        if let Some(p) = self.parts.get_mut(&source)
            && let Some(n) = p.dead.get_mut(&offset)
        {
            *n -= 1;
            if *n == 0 {
                p.dead.remove(&offset);
            }
        }
    }

    /// An event was judged late (whether or not its dead letter is produced again).
    pub fn late(&mut self, source: u32, offset: u64) {
        if let Some(p) = self.parts.get_mut(&source) {
            p.late.insert(offset);
        }
    }

    /// Computes what each partition may commit at a barrier. `ends` is the sequencer's view,
    /// `holds` the oldest offset per source still held by shards (reorder buffers and live
    /// state). Partitions not in `ends` are left out. Never goes back from a previous commit.
    pub fn commit_points(
        &mut self,
        ends: &[SequencedEnd],
        holds: &HashMap<u32, u64>,
    ) -> Vec<CommitPoint> {
        let mut c: HashMap<u32, u64> = HashMap::new();
        for e in ends {
            let Some(p) = self.parts.get(&e.source) else {
                continue;
            };
            let mut v = e.end;
            if let Some(h) = holds.get(&e.source) {
                v = v.min(*h);
            }
            if let Some(h) = e.hold {
                v = v.min(h);
            }
            if let Some((o, _)) = p.dead.first_key_value() {
                v = v.min(*o);
            }
            c.insert(e.source, v);
        }
        for u in self.units.values() {
            if u.state == UnitState::Pending {
                for s in &u.spans {
                    if let Some(v) = c.get_mut(&s.source) {
                        *v = (*v).min(s.min);
                    }
                }
            }
        }
        // Acknowledged units seen in part by a replay from `c` pull `c` back to their start.
        loop {
            let mut changed = false;
            for u in self.units.values() {
                if u.state != UnitState::Delivered {
                    continue;
                }
                let active = u
                    .spans
                    .iter()
                    .any(|s| c.get(&s.source).is_some_and(|v| s.max >= *v));
                if !active {
                    continue;
                }
                for s in &u.spans {
                    if let Some(v) = c.get_mut(&s.source)
                        && s.min < *v
                    {
                        *v = s.min;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut out = Vec::new();
        for e in ends {
            let Some(&v) = c.get(&e.source) else { continue };
            let Some(p) = self.parts.get_mut(&e.source) else {
                continue;
            };
            let offset = p.committed.map_or(v, |prev| prev.max(v));
            p.committed = Some(offset);
            p.late = p.late.split_off(&offset);
            if offset >= p.restored_end {
                p.restored.clear();
            }
            // Mid-replay the checkpoint names the restored end, the end its clock belongs to:
            // a process killed before its replay passed it replays the same range with the
            // same lateness decisions, not every record as late against a clock from further on.
            let mut late: Vec<u64> = p.late.range(..e.decided).copied().collect();
            if late.len() > MAX_LATE_OFFSETS {
                self.stats.late_overflow += (late.len() - MAX_LATE_OFFSETS) as u64;
                late.truncate(MAX_LATE_OFFSETS);
            }
            let mut suppress: Vec<u64> = p.restored.clone();
            out.push(CommitPoint {
                source: e.source,
                offset,
                resume: Resume {
                    end: e.decided,
                    clock: (e.clock != EventTime::MIN).then_some(e.clock),
                    late,
                    suppress: std::mem::take(&mut suppress),
                },
            });
        }
        // Forget units no replay can reach; list the acknowledged lines of the others (an open
        // incident's too) in the metadata of every partition they touch, each unit's first line
        // (an incident's `Create`) before any later one, so a bound cuts `Update`s first.
        let committed: HashMap<u32, u64> = out.iter().map(|p| (p.source, p.offset)).collect();
        self.units.retain(|_, u| {
            u.state == UnitState::Pending
                || u.spans
                    .iter()
                    .any(|s| committed.get(&s.source).is_some_and(|v| s.max >= *v))
        });
        let incidents = &mut self.incidents;
        let units = &self.units;
        incidents.retain(|_, k| units.contains_key(k));
        for point in &mut out {
            let touching = || {
                (self.units.values()).filter(|u| u.spans.iter().any(|s| s.source == point.source))
            };
            let firsts = touching().flat_map(|u| u.delivered.first());
            let rest = touching().flat_map(|u| u.delivered.iter().skip(1));
            for id in firsts.chain(rest) {
                if point.resume.suppress.len() >= MAX_SUPPRESS_IDS {
                    self.stats.suppress_overflow += 1;
                } else if !point.resume.suppress.contains(id) {
                    point.resume.suppress.push(*id);
                }
            }
            if point.resume.suppress.len() > MAX_SUPPRESS_IDS {
                self.stats.suppress_overflow +=
                    (point.resume.suppress.len() - MAX_SUPPRESS_IDS) as u64;
                point.resume.suppress.truncate(MAX_SUPPRESS_IDS);
            }
        }
        out
    }

    /// Units still tracked (pending or reachable by a replay), for metrics and tests.
    pub fn units(&self) -> usize {
        self.units.len()
    }

    /// Unacknowledged units.
    pub fn pending_units(&self) -> usize {
        self.units
            .values()
            .filter(|u| u.state == UnitState::Pending)
            .count()
    }

    pub fn committed(&self, source: u32) -> Option<u64> {
        self.parts.get(&source).and_then(|p| p.committed)
    }
}

/// Widens `into` to cover `from`, partition by partition.
fn merge_spans(into: &mut Vec<Span>, from: &[Span]) {
    for f in from {
        match into.iter_mut().find(|s| s.source == f.source) {
            Some(s) => {
                s.min = s.min.min(f.min);
                s.max = s.max.max(f.max);
            }
            None => into.push(*f),
        }
    }
}

/// The spans of an alert from its events' positions.
pub fn spans_of(positions: impl IntoIterator<Item = (u32, u64)>) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (source, offset) in positions {
        match spans.iter_mut().find(|s| s.source == source) {
            Some(s) => {
                s.min = s.min.min(offset);
                s.max = s.max.max(offset);
            }
            None => spans.push(Span {
                source,
                min: offset,
                max: offset,
            }),
        }
    }
    spans
}

#[cfg(test)]
mod tests;
