//! Incidents: the findings of several rules about one identity, as one thing to triage.
//!
//! The grouping rule: a finding joins the open incident of its group key (the identity) when
//! its first event lies no later than [`IncidentOptions::window`] after the incident's last
//! event (its events overlap the incident's, or follow within one window); otherwise it opens a
//! new incident. Findings with an empty group key are never grouped. A sub-chain decided before
//! the longer chain that contains it, or after it, lands in the same incident, so it is
//! reported inside it, not beside it.
//!
//! Findings are fed in output order (the writer's merge, which is the same for any shard
//! count), so the first finding of an incident is always its `Create`, every later one an
//! `Update` carrying the same id, and the id (the first finding's own deterministic id) is the
//! same in every run. An incident is closed (`Close`) once no finding can join it any more:
//! when the output frontier has passed its last event by the window plus the longest
//! correlation timespan of the rule set (a chain decided later may have started that early).
//! At most [`IncidentOptions::max_open`] incidents are open; beyond it the one that ended
//! first is closed early (counted).

use crate::time::{EventTime, Span};

/// How findings are grouped into incidents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentOptions {
    /// A finding joins an incident when it starts at most this long after the incident's
    /// last event.
    pub window: Span,
    /// Incidents open at once; beyond it the one that ended first is closed.
    pub max_open: usize,
}

impl Default for IncidentOptions {
    fn default() -> Self {
        IncidentOptions {
            window: Span::from_secs(3600),
            max_open: 100_000,
        }
    }
}

/// Most rules listed per incident (a rule joining beyond it is counted in `findings` only).
pub const MAX_RULES: usize = 32;

/// What a line does to its incident (OCSF `activity_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Create,
    Update,
    Close,
}

impl Activity {
    pub fn id(self) -> u8 {
        match self {
            Activity::Create => 1,
            Activity::Update => 2,
            Activity::Close => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Update => "Update",
            Activity::Close => "Close",
        }
    }
}

/// One incident, open or just closed; `T` is what the writer keeps to render its `Close` (the
/// highest-scoring finding so far).
#[derive(Debug)]
pub struct Incident<T> {
    pub uid: String,
    pub group: Box<str>,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    /// The rules that matched, each once, in the order they joined.
    pub rules: Vec<String>,
    pub findings: u32,
    /// The highest score so far and the finding that had it.
    pub best: (u32, T),
    /// Closed once the frontier passes this.
    closes_after: EventTime,
}

/// What [`Incidents::join`] decided for one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub activity: Activity,
    pub uid: String,
    pub rules: Vec<String>,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub findings: u32,
}

/// One finding, as the grouping sees it.
pub struct Candidate<'a> {
    pub group: &'a str,
    /// Its first and last event.
    pub start: EventTime,
    pub end: EventTime,
    /// The rule, as listed in the incident.
    pub rule: &'a str,
    /// The finding's own deterministic id (the incident's id if it opens one).
    pub uid: &'a str,
    pub score: u32,
    /// The longest correlation timespan of the rule set that decided it.
    pub longest_timespan: Span,
}

/// The open incidents, in the output thread.
#[derive(Debug)]
pub struct Incidents<T> {
    options: IncidentOptions,
    open: Vec<Incident<T>>,
    /// No open incident closes before this: a lower bound, since a join only moves an
    /// incident's close later. Most calls of [`Incidents::close_before`] stop at it.
    next_close: EventTime,
    /// Incidents closed early because `max_open` was reached.
    pub evicted: u64,
}

impl<T: Clone> Incidents<T> {
    pub fn new(options: IncidentOptions) -> Incidents<T> {
        Incidents {
            options,
            open: Vec::new(),
            next_close: EventTime::MAX,
            evicted: 0,
        }
    }

    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Places one finding (in output order); `keep` is what a `Close` would render if this
    /// finding stays the incident's highest-scoring one. Incidents evicted to make room are
    /// pushed to `closed`.
    pub fn join(&mut self, c: &Candidate<'_>, keep: &T, closed: &mut Vec<Incident<T>>) -> Joined {
        let window = self.options.window;
        let linger = Span(window.0.saturating_add(c.longest_timespan.0));
        let found = (!c.group.is_empty())
            .then(|| {
                self.open
                    .iter()
                    .rposition(|i| *i.group == *c.group && c.start <= i.last_seen.plus(window))
            })
            .flatten();
        let (activity, i) = match found {
            Some(i) => {
                let inc = &mut self.open[i];
                inc.findings += 1;
                inc.first_seen = inc.first_seen.min(c.start);
                inc.last_seen = inc.last_seen.max(c.end);
                inc.closes_after = inc.closes_after.max(c.end.plus(linger));
                if !inc.rules.iter().any(|r| r == c.rule) && inc.rules.len() < MAX_RULES {
                    inc.rules.push(c.rule.to_string());
                }
                if c.score >= inc.best.0 {
                    inc.best = (c.score, keep.clone());
                }
                (Activity::Update, i)
            }
            None => {
                if self.open.len() >= self.options.max_open.max(1) {
                    let oldest = (0..self.open.len())
                        .min_by_key(|&i| (self.open[i].closes_after, i))
                        .unwrap_or(0);
                    closed.push(self.open.remove(oldest));
                    self.evicted += 1;
                }
                self.open.push(Incident {
                    uid: c.uid.to_string(),
                    group: c.group.into(),
                    first_seen: c.start,
                    last_seen: c.end,
                    rules: vec![c.rule.to_string()],
                    findings: 1,
                    best: (c.score, keep.clone()),
                    closes_after: c.end.plus(linger),
                });
                self.next_close = self.next_close.min(c.end.plus(linger));
                (Activity::Create, self.open.len() - 1)
            }
        };
        let inc = &self.open[i];
        Joined {
            activity,
            uid: inc.uid.clone(),
            rules: inc.rules.clone(),
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            findings: inc.findings,
        }
    }

    /// Closes every incident no finding can join any more once every finding before
    /// `frontier` has been placed (`EventTime::MAX`: all of them), in the order of the time
    /// each closed at, then the order they were opened. Called before each finding is placed
    /// with its time, and at every frontier, it puts each `Close` after the findings up to its
    /// time and before those after it, however the frontier moved.
    pub fn close_before(&mut self, frontier: EventTime, closed: &mut Vec<Incident<T>>) {
        let all = frontier == EventTime::MAX;
        if !all && frontier <= self.next_close {
            return;
        }
        let first = closed.len();
        closed.extend(
            self.open
                .extract_if(.., |i| all || i.closes_after < frontier),
        );
        closed[first..].sort_by_key(|c| c.closes_after);
        self.next_close = self
            .open
            .iter()
            .map(|i| i.closes_after)
            .min()
            .unwrap_or(EventTime::MAX);
    }
}

impl<T> Incident<T> {
    /// The incident as its `Close` line shows it.
    pub fn closing(&self) -> Joined {
        Joined {
            activity: Activity::Close,
            uid: self.uid.clone(),
            rules: self.rules.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            findings: self.findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> EventTime {
        EventTime::from_millis(s * 1000)
    }

    fn cand<'a>(
        group: &'a str,
        start: i64,
        end: i64,
        rule: &'a str,
        uid: &'a str,
    ) -> Candidate<'a> {
        Candidate {
            group,
            start: t(start),
            end: t(end),
            rule,
            uid,
            score: 50,
            longest_timespan: Span::from_secs(3600),
        }
    }

    #[test]
    fn overlapping_findings_of_one_identity_form_one_incident() {
        let mut inc: Incidents<u32> = Incidents::new(IncidentOptions::default());
        let mut closed = Vec::new();
        let a = inc.join(&cand("eve", 0, 20, "three", "u1"), &1, &mut closed);
        let b = inc.join(&cand("eve", 0, 30, "four", "u2"), &2, &mut closed);
        let c = inc.join(&cand("bob", 5, 25, "three", "u3"), &3, &mut closed);
        // Far beyond the window: a new incident of the same identity.
        let d = inc.join(&cand("eve", 9000, 9010, "three", "u4"), &4, &mut closed);
        assert_eq!(
            (a.activity, b.activity),
            (Activity::Create, Activity::Update)
        );
        assert_eq!(a.uid, "u1");
        assert_eq!(b.uid, "u1");
        assert_eq!(b.rules, vec!["three", "four"]);
        assert_eq!((c.activity, c.uid.as_str()), (Activity::Create, "u3"));
        assert_eq!((d.activity, d.uid.as_str()), (Activity::Create, "u4"));
        // An empty group is never grouped.
        let e = inc.join(&cand("", 0, 1, "x", "u5"), &5, &mut closed);
        let f = inc.join(&cand("", 0, 1, "x", "u6"), &6, &mut closed);
        assert_eq!(
            (e.activity, f.activity),
            (Activity::Create, Activity::Create)
        );
        assert!(closed.is_empty());
        inc.close_before(t(25 + 3600 + 3600 + 1), &mut closed);
        let uids: Vec<&str> = closed.iter().map(|c| c.uid.as_str()).collect();
        // In the order they closed (u5 and u6 end at 1 s, u3 at 25 s), not opened.
        assert_eq!(uids, vec!["u5", "u6", "u3"], "u1 lasts until 30 s + linger");
        inc.close_before(EventTime::MAX, &mut closed);
        assert_eq!(inc.open(), 0);
        let u1 = closed.iter().find(|c| c.uid == "u1").unwrap();
        assert_eq!(u1.best.1, 2, "the highest score, latest on ties");
        assert_eq!(u1.closing().activity, Activity::Close);
    }

    /// `close_before` stops early at the earliest close it knows of; an incident whose close
    /// a join moved later, and one opened after it, still close at their own times.
    #[test]
    fn incidents_close_at_their_own_times_when_joins_move_them() {
        let mut inc: Incidents<u32> = Incidents::new(IncidentOptions::default());
        let linger = 3600 + 3600;
        let mut closed = Vec::new();
        let uids =
            |closed: &mut Vec<Incident<u32>>| closed.drain(..).map(|c| c.uid).collect::<Vec<_>>();
        inc.join(&cand("a", 0, 0, "r", "ua"), &1, &mut closed);
        inc.join(&cand("b", 0, 5, "r", "ub"), &2, &mut closed);
        inc.join(&cand("a", 0, 8, "r", "ua2"), &3, &mut closed);
        inc.close_before(t(linger), &mut closed);
        assert!(closed.is_empty());
        inc.close_before(t(linger + 6), &mut closed);
        assert_eq!(uids(&mut closed), ["ub"]);
        inc.close_before(t(linger + 8), &mut closed);
        assert!(closed.is_empty(), "a closes after {} s", linger + 8);
        // Opened later, closing earlier than the bound known so far.
        inc.join(&cand("c", 1, 2, "r", "uc"), &4, &mut closed);
        inc.close_before(t(linger + 3), &mut closed);
        assert_eq!(uids(&mut closed), ["uc"]);
        inc.close_before(t(linger + 9), &mut closed);
        assert_eq!(uids(&mut closed), ["ua"]);
        assert_eq!(inc.open(), 0);
    }

    #[test]
    fn open_incidents_are_bounded() {
        let mut inc: Incidents<u32> = Incidents::new(IncidentOptions {
            window: Span::from_secs(60),
            max_open: 2,
        });
        let mut closed = Vec::new();
        for (i, g) in ["a", "b", "c"].iter().enumerate() {
            inc.join(&cand(g, i as i64, i as i64, "r", g), &0, &mut closed);
        }
        assert_eq!(inc.open(), 2);
        assert_eq!(inc.evicted, 1);
        assert_eq!(closed[0].uid, "a");
    }
}
