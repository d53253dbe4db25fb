//! Sightings: which credentials a worker has already shown acting as their owner.
//!
//! Every CloudTrail event that names both its principal and its access key shows who owns the
//! key (see [`decode::credential`](crate::decode::credential)); passing each one on as a
//! [`LinkKind::KeyOwner`](crate::vocab::LinkKind::KeyOwner) link would send the resolver a
//! link per event. A worker passes a credential on when it has not passed it on yet, when the
//! event is older than every sighting it passed on (the resolver applies links in event time,
//! so an earlier sighting must reach it too), or when the last one it passed on is half a
//! lifetime old (so the link never expires while the key is in use).
//!
//! Bounded: past [`Sightings::MAX`] credentials the map starts over, which costs only some
//! sightings sent again.

use std::collections::HashMap;

use crate::time::{EventTime, Span};

/// The credentials one worker passed on, with the earliest and latest event time of the
/// sightings it sent.
#[derive(Debug)]
pub struct Sightings {
    sent: HashMap<Box<str>, (EventTime, EventTime)>,
    refresh: Span,
}

impl Sightings {
    /// Most credentials remembered.
    pub const MAX: usize = 1 << 16;

    /// Sightings of links that live `lifetime` are sent again after half of it.
    pub fn new(lifetime: Span) -> Sightings {
        Sightings {
            sent: HashMap::new(),
            refresh: Span(lifetime.0 / 2),
        }
    }

    /// Whether a sighting of `credential` at `time` should be passed on.
    pub fn wants(&self, credential: &str, time: EventTime) -> bool {
        match self.sent.get(credential) {
            None => true,
            Some(&(earliest, latest)) => time < earliest || time > latest.plus(self.refresh),
        }
    }

    /// Records that a sighting of `credential` at `time` was passed on.
    pub fn sent(&mut self, credential: &str, time: EventTime) {
        if let Some((earliest, latest)) = self.sent.get_mut(credential) {
            *earliest = (*earliest).min(time);
            *latest = (*latest).max(time);
            return;
        }
        if self.sent.len() >= Self::MAX {
            self.sent.clear();
        }
        self.sent.insert(credential.into(), (time, time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> EventTime {
        EventTime::from_millis(secs * 1000)
    }

    #[test]
    fn new_earlier_and_stale_sightings_are_passed_on() {
        let mut s = Sightings::new(Span::from_secs(100));
        assert!(s.wants("AKIA1", t(10)));
        s.sent("AKIA1", t(10));
        assert!(!s.wants("AKIA1", t(10)), "the same sighting again");
        assert!(!s.wants("AKIA1", t(60)), "within half a lifetime");
        assert!(s.wants("AKIA1", t(61)), "half a lifetime later");
        assert!(s.wants("AKIA1", t(9)), "earlier than anything sent");
        assert!(s.wants("AKIA2", t(10)), "another credential");
    }

    #[test]
    fn the_map_is_bounded() {
        let mut s = Sightings::new(Span::from_secs(100));
        for i in 0..Sightings::MAX + 10 {
            s.sent(&format!("AKIA{i}"), t(0));
        }
        assert!(s.sent.len() <= Sightings::MAX);
    }
}
