//! Event time of one source: its clock, and the two guards that keep a single event from
//! moving it where it must not go.
//!
//! - **Too late.** The largest event time seen, minus the source's allowed lateness, is its
//!   watermark; an event older than it is dead-lettered as `late`.
//! - **Too far ahead.** An event more than the source's `max_future` skew ahead of a reference
//!   is dead-lettered as `future` and never moves the clock, so one forged or broken timestamp
//!   (a record dated 2099) cannot make every later event late. The reference is the wall clock
//!   in the service ([`Reference::WallClock`]) and, in a replay of old files, the median of the
//!   source's recent event times ([`Reference::RecentMedian`]). There an event beyond the
//!   median is *held* (at most [`WINDOW`] of them, in bounded memory): it is accepted once the
//!   median catches up with it (the stream really jumped: half of the recent events agree) or
//!   its source ends (nothing after it can be made late), and dead-lettered as `future` when
//!   [`WINDOW`] later events have not confirmed it.
//!
//! A source also says whether it holds engine time back: a quiet one (idle for the idle
//! timeout, or revoked) does not, a finished one is at the end of time.

use std::collections::VecDeque;
use std::time::SystemTime;

use crate::correlate::Hit;
use crate::deadletter::DeadLetter;
use crate::time::{EventTime, Span};
use crate::vocab::{IdentityRef, Link};

/// The default largest skew ahead of the reference: 15 minutes.
pub const DEFAULT_MAX_FUTURE: Span = Span(15 * 60 * 1_000_000_000);

/// Recent event times a source keeps for its median, and the most events it holds.
pub const WINDOW: usize = 32;

/// The median is trusted once this many recent times are known; before, nothing is held.
pub const MIN_SAMPLES: usize = 16;

/// Bytes of a held event's raw line kept for its dead letter (the rest is counted, not kept).
const HELD_RAW_BYTES: usize = 64 * 1024;

/// What "too far ahead" is measured against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reference {
    /// The machine's clock, read once per batch (the service: events are live).
    WallClock,
    /// The median of the source's recent event times (a replay: the wall clock says nothing
    /// about old files).
    #[default]
    RecentMedian,
}

/// How late and how far ahead an event of one source may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceTime {
    /// Allowed lateness behind the source's largest event time.
    pub lateness: Span,
    /// Largest skew ahead of the [`Reference`].
    pub max_future: Span,
    /// The source carries cluster records: its time is the frontier of the stamps it carries
    /// (see [`crate::cluster::frontier`]), never its hits' times, and it never goes quiet
    /// (a silent hits partition still holds what its stamps say).
    pub stamped: bool,
}

impl SourceTime {
    /// `lateness` with the default future skew.
    pub fn with_lateness(lateness: Span) -> SourceTime {
        SourceTime {
            lateness,
            max_future: DEFAULT_MAX_FUTURE,
            stamped: false,
        }
    }

    /// A source of cluster records: no lateness, no skew; time from stamps.
    pub fn stamped() -> SourceTime {
        SourceTime {
            lateness: Span::ZERO,
            max_future: Span(i64::MAX),
            stamped: true,
        }
    }
}

/// The wall clock as event time.
pub fn wall_now() -> EventTime {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    EventTime(nanos)
}

/// The last [`WINDOW`] event times of a source, kept sorted too for the median.
#[derive(Clone, Debug, Default)]
pub struct RecentTimes {
    arrival: VecDeque<EventTime>,
    sorted: Vec<EventTime>,
}

impl RecentTimes {
    pub fn push(&mut self, t: EventTime) {
        if self.arrival.len() == WINDOW
            && let Some(old) = self.arrival.pop_front()
            && let Ok(i) = self.sorted.binary_search(&old)
        {
            self.sorted.remove(i);
        }
        self.arrival.push_back(t);
        let at = self.sorted.partition_point(|x| *x <= t);
        self.sorted.insert(at, t);
    }

    /// The median, once [`MIN_SAMPLES`] times are known.
    pub fn median(&self) -> Option<EventTime> {
        (self.sorted.len() >= MIN_SAMPLES).then(|| self.sorted[self.sorted.len() / 2])
    }
}

/// An event ahead of its source's median, waiting for the stream to confirm it.
#[derive(Debug)]
pub struct Held {
    pub time: EventTime,
    /// The source's event count when it was held.
    pub at: u64,
    pub hits: Vec<(Hit, Option<IdentityRef>)>,
    pub links: Vec<Link>,
    /// Its dead letter, should it never be confirmed.
    pub letter: DeadLetter,
}

/// What a held event became.
pub enum Decided {
    Accepted(Held),
    Future(Held, EventTime),
}

/// Event time of one source.
#[derive(Clone, Debug)]
pub struct SourceClock {
    pub max_seen: EventTime,
    pub time: SourceTime,
    /// The source ended: its watermark is the end of time.
    pub done: bool,
    /// Idle for the idle timeout, or revoked: it does not hold engine time back.
    pub quiet: bool,
    /// Events judged so far (not late, not failed).
    pub events: u64,
    recent: RecentTimes,
}

/// Where an event stands against its source's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    InTime,
    Late {
        watermark: EventTime,
    },
    /// Beyond the skew: dead-letter it now (wall clock) ...
    Future {
        reference: EventTime,
    },
    /// ... or hold it until the median confirms or refutes it.
    Hold,
}

impl SourceClock {
    pub fn new(time: SourceTime) -> SourceClock {
        SourceClock {
            max_seen: EventTime::MIN,
            time,
            done: false,
            quiet: false,
            events: 0,
            recent: RecentTimes::default(),
        }
    }

    /// The largest seen time minus the lateness (`MIN` before the first event, `MAX` when
    /// done).
    pub fn watermark(&self) -> EventTime {
        if self.done {
            EventTime::MAX
        } else if self.max_seen == EventTime::MIN {
            EventTime::MIN
        } else {
            self.max_seen.minus(self.time.lateness)
        }
    }

    /// The watermark if this source holds engine time back (`None`: quiet).
    pub fn holding(&self) -> Option<EventTime> {
        (self.done || !self.quiet).then(|| self.watermark())
    }

    /// Judges event time `t`; `wall` is the wall clock for [`Reference::WallClock`], `None` for
    /// [`Reference::RecentMedian`]. Does not move the clock: call [`SourceClock::accept`] for
    /// an event in time.
    pub fn judge(&mut self, t: EventTime, wall: Option<EventTime>) -> Verdict {
        let watermark = self.watermark();
        if t < watermark {
            return Verdict::Late { watermark };
        }
        self.events += 1;
        match wall {
            Some(reference) => {
                if t > reference.plus(self.time.max_future) {
                    return Verdict::Future { reference };
                }
                Verdict::InTime
            }
            None => {
                let median = self.recent.median();
                self.recent.push(t);
                match median {
                    Some(m) if t > m.plus(self.time.max_future) => Verdict::Hold,
                    _ => Verdict::InTime,
                }
            }
        }
    }

    pub fn accept(&mut self, t: EventTime) {
        self.max_seen = self.max_seen.max(t);
    }

    /// Whether a held event at `t` is now confirmed (the median caught up, or the source ended:
    /// a real tail of a file after a gap must not be lost, and a forged one can no longer make
    /// a later event of its source late), refuted (held for [`WINDOW`] events), or still
    /// waiting (`None`).
    pub fn review(&self, t: EventTime, at: u64) -> Option<Result<(), EventTime>> {
        let median = self.recent.median().unwrap_or(EventTime::MIN);
        if self.done || t <= median.plus(self.time.max_future) {
            Some(Ok(()))
        } else if self.events.saturating_sub(at) >= WINDOW as u64 {
            Some(Err(median))
        } else {
            None
        }
    }
}

/// Decides the held events of `clock` that can be decided, oldest first.
pub fn review_held(clock: &SourceClock, held: &mut VecDeque<Held>, out: &mut Vec<Decided>) {
    let mut i = 0;
    while i < held.len() {
        match clock.review(held[i].time, held[i].at) {
            None => i += 1,
            Some(verdict) => {
                if let Some(h) = held.remove(i) {
                    out.push(match verdict {
                        Ok(()) => Decided::Accepted(h),
                        Err(median) => Decided::Future(h, median),
                    });
                }
            }
        }
    }
}

/// Cuts a held event's raw line to what a dead letter keeps.
pub fn held_raw(raw: &[u8]) -> Vec<u8> {
    raw[..raw.len().min(HELD_RAW_BYTES)].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> EventTime {
        EventTime(min * 60 * 1_000_000_000)
    }

    fn clock() -> SourceClock {
        SourceClock::new(SourceTime::with_lateness(Span::from_secs(300)))
    }

    #[test]
    fn the_wall_clock_refutes_a_far_future_event_at_once() {
        let mut c = clock();
        let wall = Some(at(1000));
        assert_eq!(c.judge(at(1010), wall), Verdict::InTime);
        assert_eq!(
            c.judge(at(1016), wall),
            Verdict::Future {
                reference: at(1000)
            }
        );
    }

    #[test]
    fn the_median_holds_an_outlier_and_follows_a_real_jump() {
        let mut c = clock();
        for m in 0..20 {
            assert_eq!(c.judge(at(m), None), Verdict::InTime);
            c.accept(at(m));
        }
        // One outlier: held, then refuted after WINDOW events that do not agree.
        assert_eq!(c.judge(at(1_000_000), None), Verdict::Hold);
        let held_at = c.events;
        for m in 20..20 + WINDOW as i64 - 1 {
            assert_eq!(c.judge(at(m), None), Verdict::InTime);
            assert_eq!(c.review(at(1_000_000), held_at), None);
        }
        assert_eq!(c.judge(at(50), None), Verdict::InTime);
        assert!(matches!(c.review(at(1_000_000), held_at), Some(Err(_))));
        // A real jump of a day: held until half the window agrees, then confirmed.
        let mut confirmed = None;
        for k in 0..WINDOW as i64 {
            let v = c.judge(at(1440 + k), None);
            if c.review(at(1440), 0) == Some(Ok(())) {
                confirmed = Some(k);
                break;
            }
            assert_eq!(v, Verdict::Hold);
        }
        assert_eq!(confirmed, Some(WINDOW as i64 / 2 - 1));
    }

    #[test]
    fn a_quiet_source_holds_nothing_back_and_a_done_one_is_at_the_end_of_time() {
        let mut c = clock();
        assert_eq!(c.holding(), Some(EventTime::MIN));
        c.quiet = true;
        assert_eq!(c.holding(), None);
        c.done = true;
        assert_eq!(c.holding(), Some(EventTime::MAX));
    }
}
