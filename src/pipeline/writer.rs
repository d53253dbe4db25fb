//! The alert writer: merges the findings of every shard into one deterministic order and
//! writes them as OCSF JSON lines.
//!
//! Each shard emits findings in event-time order and reports its progress (the watermark it
//! has processed up to). A finding is written once every shard has progressed past its time,
//! so the file is sorted by (time, event key, rule, group) whatever the number of shards.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::correlate::Finding;
use crate::time::EventTime;

/// What the merge orders: a finding, possibly with what travels with it (the service keeps
/// the rule set that decided it).
pub trait AsFinding {
    fn finding(&self) -> &Finding;
}

impl AsFinding for Finding {
    fn finding(&self) -> &Finding {
        self
    }
}

#[derive(Debug)]
struct Ordered<T>(T);

impl<T: AsFinding> PartialEq for Ordered<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.finding().sort_key() == other.0.finding().sort_key()
    }
}
impl<T: AsFinding> Eq for Ordered<T> {}
impl<T: AsFinding> PartialOrd for Ordered<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: AsFinding> Ord for Ordered<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .finding()
            .sort_key()
            .cmp(&other.0.finding().sort_key())
    }
}

/// Merges per-shard finding streams by progress.
pub struct Merge<T = Finding> {
    heap: BinaryHeap<Reverse<Ordered<T>>>,
    progress: Vec<EventTime>,
}

impl<T: AsFinding> Merge<T> {
    pub fn new(shards: usize) -> Merge<T> {
        Merge {
            heap: BinaryHeap::new(),
            progress: vec![EventTime::MIN; shards],
        }
    }

    pub fn push(&mut self, f: T) {
        self.heap.push(Reverse(Ordered(f)));
    }

    /// Records that `shard` has processed everything before `watermark`.
    pub fn progress(&mut self, shard: usize, watermark: EventTime) {
        if let Some(p) = self.progress.get_mut(shard) {
            *p = (*p).max(watermark);
        }
    }

    /// Pops, in order, every finding no shard can still precede.
    pub fn ready(&mut self, out: &mut Vec<T>) {
        let frontier = self
            .progress
            .iter()
            .copied()
            .min()
            .unwrap_or(EventTime::MAX);
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(o)| o.0.finding().time < frontier || frontier == EventTime::MAX)
        {
            if let Some(Reverse(o)) = self.heap.pop() {
                out.push(o.0);
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::{EventRef, Target};
    use crate::input::Position;

    fn f(secs: i64, group: &str) -> Finding {
        let time = EventTime::from_millis(secs * 1000);
        Finding {
            target: Target::Detection(0),
            group: group.into(),
            events: vec![(
                EventRef {
                    time,
                    key: 1,
                    pos: Position {
                        source: 0,
                        offset: 1,
                    },
                    id: "e".into(),
                    actor: None,
                    parts: None,
                },
                0,
            )],
            time,
            score: Default::default(),
            touched: Default::default(),
            resources: Vec::new(),
            stage: (1, 1),
            canary: false,
            update: false,
            is_alert: true,
            measure: None,
        }
    }

    #[test]
    fn findings_wait_for_every_shard() {
        let mut m: Merge = Merge::new(2);
        m.push(f(5, "b"));
        m.push(f(3, "a"));
        m.progress(0, EventTime::from_millis(10_000));
        let mut out = Vec::new();
        m.ready(&mut out);
        assert!(out.is_empty(), "shard 1 has not progressed");
        m.progress(1, EventTime::from_millis(4_000));
        m.ready(&mut out);
        assert_eq!(out.iter().map(|f| &*f.group).collect::<Vec<_>>(), vec!["a"]);
        m.progress(1, EventTime::MAX);
        m.progress(0, EventTime::MAX);
        m.ready(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(m.pending(), 0);
    }
}
