//! Frontier: a reader's event time from the stamps of the input partitions it depends on.
//!
//! One [`Frontier`] per partition read (a partition of the hits topic for stage 2, of the
//! lineage topic for stage 1). Each input partition's latest stamp only moves forward: a
//! restarted owner stamps lower values while it replays, which say nothing new. The frontier is
//! the minimum over every input partition the cluster reads; one that has not stamped yet holds
//! it at the beginning of time, so a partition whose owner died holds time back until the group
//! gives it to another instance, which stamps it again.
//!
//! Because an owner stamps `F` only after producing every hit older than `F` (see
//! [`super`]), a hit older than its partition's frontier is a copy a restarted owner produced
//! again: [`Frontier::admits`] says to drop it (its first copy was decided already).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::record::Stamp;
use crate::time::EventTime;

/// The most partitions of one input topic a frontier keeps stamps for.
pub const MAX_PARTITIONS: i32 = 4096;

/// An input partition: topic and partition number.
pub type InputPartition = (Arc<str>, i32);

/// The input partitions a cluster reads, shared by every frontier.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Topic to its partition count.
    topics: BTreeMap<Arc<str>, i32>,
    /// Not known in advance (a replay of record files, which end): any partition that stamps
    /// counts, up to this many.
    open: Option<usize>,
}

impl Inputs {
    /// `topics`: (name, partition count) of every input topic.
    pub fn new(topics: impl IntoIterator<Item = (String, i32)>) -> Inputs {
        Inputs {
            topics: topics
                .into_iter()
                .map(|(t, n)| (Arc::from(t), n.max(0)))
                .collect(),
            open: None,
        }
    }

    /// Inputs learnt from the stamps read, at most `bound` of them: for record files, whose
    /// end releases everything anyway.
    pub fn open(bound: usize) -> Inputs {
        Inputs {
            topics: BTreeMap::new(),
            open: Some(bound),
        }
    }

    /// The topic's name as kept, if `topic` is an input topic and `partition` one of its
    /// partitions: those it had at start, or one added since (up to [`MAX_PARTITIONS`]), which
    /// counts from its first stamp on.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<str>> {
        if self.open.is_some() {
            return (partition >= 0).then(|| Arc::from(topic));
        }
        let (name, &n) = self.topics.get_key_value(topic)?;
        (0..n.max(MAX_PARTITIONS))
            .contains(&partition)
            .then(|| name.clone())
    }

    pub fn count(&self) -> usize {
        self.topics.values().map(|&n| n as usize).sum()
    }
}

/// Why a stamp or a hit was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StampError {
    #[error("{topic}/{partition} is not an input partition of this cluster")]
    NotAnInput { topic: String, partition: i32 },
    #[error("stamps of more than {0} input partitions")]
    TooMany(usize),
}

/// The stamps read in one partition.
#[derive(Clone, Debug)]
pub struct Frontier {
    inputs: Arc<Inputs>,
    stamps: HashMap<InputPartition, EventTime>,
}

impl Frontier {
    pub fn new(inputs: Arc<Inputs>) -> Frontier {
        Frontier {
            inputs,
            stamps: HashMap::new(),
        }
    }

    /// Takes a stamp; true when it moved its input partition's frontier. A stamp of a partition
    /// that is not an input is refused (it would hold no one back, and could grow the table).
    pub fn stamp(&mut self, s: &Stamp) -> Result<bool, StampError> {
        let Some(topic) = self.inputs.get(&s.topic, s.partition) else {
            return Err(StampError::NotAnInput {
                topic: s.topic.clone(),
                partition: s.partition,
            });
        };
        let at = EventTime(s.frontier);
        if let Some(bound) = self.inputs.open
            && self.stamps.len() >= bound
            && !self.stamps.contains_key(&(topic.clone(), s.partition))
        {
            return Err(StampError::TooMany(bound));
        }
        let old = self
            .stamps
            .entry((topic, s.partition))
            .or_insert(EventTime::MIN);
        let moved = at > *old;
        *old = (*old).max(at);
        Ok(moved)
    }

    /// Every input partition's latest stamp: topic, partition, frontier (a changelog marker
    /// carries them), sorted.
    pub fn stamps(&self) -> Vec<(String, i32, i64)> {
        let mut out: Vec<_> = (self.stamps.iter())
            .map(|((t, p), at)| (t.to_string(), *p, at.0))
            .collect();
        out.sort();
        out
    }

    /// The minimum over every input partition's latest stamp; [`EventTime::MIN`] while one has
    /// not stamped.
    pub fn time(&self) -> EventTime {
        if self.inputs.open.is_some() {
            return self
                .stamps
                .values()
                .copied()
                .min()
                .unwrap_or(EventTime::MIN);
        }
        if self.stamps.len() < self.inputs.count() {
            return EventTime::MIN;
        }
        self.stamps
            .values()
            .copied()
            .min()
            .unwrap_or(EventTime::MAX)
    }

    /// The input partitions at the frontier (holding time back), for the log line and gauge.
    pub fn holders(&self) -> Vec<(Arc<str>, i32)> {
        let t = self.time();
        let known: Vec<InputPartition> = match self.inputs.open {
            Some(_) => self.stamps.keys().cloned().collect(),
            None => self
                .inputs
                .topics
                .iter()
                .flat_map(|(name, &n)| (0..n).map(move |p| (name.clone(), p)))
                .collect(),
        };
        let mut out: Vec<_> = known
            .into_iter()
            .filter(|k| self.stamps.get(k).copied().unwrap_or(EventTime::MIN) <= t)
            .collect();
        out.sort();
        out
    }

    /// Whether a record of event time `t` from `(topic, partition)` is new: false for a copy
    /// produced again after a restart (older than that partition's stamp); an error for a
    /// partition that is not an input.
    pub fn admits(&self, topic: &str, partition: i32, t: EventTime) -> Result<bool, StampError> {
        let Some(name) = self.inputs.get(topic, partition) else {
            return Err(StampError::NotAnInput {
                topic: topic.to_string(),
                partition,
            });
        };
        Ok(self
            .stamps
            .get(&(name, partition))
            .is_none_or(|&stamped| t >= stamped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::record::VERSION;

    fn stamp(topic: &str, partition: i32, at: i64) -> Stamp {
        Stamp {
            v: VERSION,
            topic: topic.into(),
            partition,
            frontier: at,
        }
    }

    fn two_by_two() -> Frontier {
        Frontier::new(Arc::new(Inputs::new([
            ("cloudtrail".to_string(), 2),
            ("windows".to_string(), 1),
        ])))
    }

    /// [`two_by_two`] with every input partition stamped at `at`.
    fn all_stamped_at(at: i64) -> Frontier {
        let mut f = two_by_two();
        for (t, p) in [("cloudtrail", 0), ("cloudtrail", 1), ("windows", 0)] {
            f.stamp(&stamp(t, p, at)).unwrap();
        }
        f
    }

    #[test]
    fn the_frontier_waits_for_every_input_partition_then_is_their_minimum() {
        let mut f = two_by_two();
        assert_eq!(f.stamp(&stamp("cloudtrail", 0, 50)), Ok(true));
        assert_eq!(f.stamp(&stamp("cloudtrail", 1, 70)), Ok(true));
        assert_eq!(f.time(), EventTime::MIN, "windows/0 has not stamped");
        assert_eq!(f.holders(), vec![(Arc::from("windows"), 0)]);
        f.stamp(&stamp("windows", 0, 60)).unwrap();
        assert_eq!(f.time(), EventTime(50));
        f.stamp(&stamp("cloudtrail", 0, i64::MAX)).unwrap();
        assert_eq!(f.time(), EventTime(60));
    }

    #[test]
    fn a_restarted_owners_lower_stamp_moves_nothing_and_its_old_hits_are_copies() {
        let mut f = all_stamped_at(100);
        assert_eq!(f.stamp(&stamp("cloudtrail", 0, 40)), Ok(false));
        assert_eq!(f.time(), EventTime(100));
        assert_eq!(
            f.admits("cloudtrail", 0, EventTime(99)),
            Ok(false),
            "produced again"
        );
        assert_eq!(f.admits("cloudtrail", 0, EventTime(100)), Ok(true));
        assert!(f.admits("nope", 0, EventTime(500)).is_err());
    }

    /// Regression: the hits of a partition added to an input topic after start were dropped as
    /// copies (its stamps were refused, and a hit of an unknown partition was never admitted).
    #[test]
    fn a_partition_added_after_start_is_admitted_and_counts_from_its_first_stamp() {
        let mut f = all_stamped_at(100);
        assert_eq!(
            f.admits("cloudtrail", 2, EventTime(5)),
            Ok(true),
            "not stamped yet"
        );
        assert_eq!(f.stamp(&stamp("cloudtrail", 2, 50)), Ok(true));
        assert_eq!(f.time(), EventTime(50));
        assert_eq!(f.admits("cloudtrail", 2, EventTime(49)), Ok(false));
    }

    #[test]
    fn open_inputs_learn_partitions_from_their_stamps_up_to_a_bound() {
        let mut f = Frontier::new(Arc::new(Inputs::open(2)));
        assert_eq!(f.time(), EventTime::MIN);
        f.stamp(&stamp("a.jsonl", 0, 30)).unwrap();
        f.stamp(&stamp("b.jsonl", 0, 20)).unwrap();
        assert_eq!(f.time(), EventTime(20));
        assert_eq!(
            f.stamp(&stamp("c.jsonl", 0, 9)),
            Err(StampError::TooMany(2))
        );
        assert_eq!(f.stamp(&stamp("a.jsonl", 0, 40)), Ok(true));
    }

    #[test]
    fn stamps_of_partitions_outside_the_inputs_are_refused() {
        let mut f = two_by_two();
        for (t, p) in [
            ("cloudtrail", MAX_PARTITIONS),
            ("cloudtrail", -1),
            ("linux", 0),
        ] {
            assert_eq!(
                f.stamp(&stamp(t, p, 1)),
                Err(StampError::NotAnInput {
                    topic: t.into(),
                    partition: p
                })
            );
        }
        assert_eq!(f.stamps.len(), 0);
    }
}
