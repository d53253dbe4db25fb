//! The streaming driver: background at a steady event-time rate, chains injected on a plan,
//! delivery shuffled within a bounded jitter, written as it goes.
//!
//! Memory is bounded by what is in flight, never by the length of the output: chain events wait
//! in a heap until the background clock reaches them, and every event waits in a delivery heap
//! for at most `jitter` of event time (about `rate × jitter` events). Events leave in order of
//! their delivery time `event time + uniform(0, jitter)`, so an event is never delivered more
//! than `jitter` after a later one: with `jitter` below the engine's allowed lateness no event
//! is late, yet the file is out of order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use super::background::{self, Source};
use super::chains::Scenario;
use super::labels::ChainLabel;
use super::rng::Zipf;
use super::sources::{Factory, Generated};
use super::w500;
use crate::time::{EventTime, Span};

/// A chain the plan can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    Standard(Scenario),
    W500(w500::Scenario),
}

impl Injected {
    fn write(self, f: &mut Factory, n: u64, t0: EventTime) -> (Vec<Generated>, ChainLabel) {
        match self {
            Injected::Standard(s) => s.write(f, n, t0),
            Injected::W500(s) => s.write(f, n, t0),
        }
    }
}

/// When chains start.
#[derive(Clone, Debug, PartialEq)]
pub enum ChainPlan {
    /// Each hour of event time, every listed chain once, at its offset into the hour.
    Hourly(Vec<(Injected, Span)>),
    /// One chain every `every` background events, cycling through the list.
    Every { every: u64, chains: Vec<Injected> },
}

/// Which background the stream writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Background {
    /// The role models of `background`.
    Standard,
    /// The W500 workload's background (`w500`).
    W500,
}

/// Everything that shapes a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub start: EventTime,
    /// Background events to write (chains come on top).
    pub events: u64,
    /// Background events per second of event time.
    pub rate: f64,
    /// Identities per source population (Zipf ranks).
    pub identities: u64,
    pub zipf_exponent: f64,
    /// Relative weight of each of [`Source::ALL`].
    pub weights: [u32; 6],
    /// Largest delivery delay; keep it below the engine's allowed lateness.
    pub jitter: Span,
    pub chains: ChainPlan,
    pub background: Background,
}

/// What a stream wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub events: u64,
    pub bytes: u64,
    pub chains: u64,
    /// Largest number of events held at once (scheduled plus waiting for delivery).
    pub peak_in_flight: usize,
}

struct Pending {
    at: i64,
    seq: u64,
    event: Generated,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Driver<'p, 'o, 'l> {
    f: Factory,
    plan: &'p Plan,
    out: &'o mut dyn Write,
    labels: Option<&'l mut dyn Write>,
    scheduled: BinaryHeap<Reverse<Pending>>,
    delivery: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    written: Written,
}

/// Writes the stream `plan` describes with `seed`: events as JSON lines into `out`, chain
/// labels into `labels`. The same plan and seed give the same bytes.
pub fn run(
    plan: &Plan,
    seed: u64,
    out: &mut dyn Write,
    labels: Option<&mut dyn Write>,
) -> io::Result<Written> {
    let mut f = Factory::new(seed);
    f.compact = plan.background == Background::W500;
    let mut d = Driver {
        f,
        plan,
        out,
        labels,
        scheduled: BinaryHeap::new(),
        delivery: BinaryHeap::new(),
        seq: 0,
        written: Written::default(),
    };
    let zipf = Zipf::new(plan.identities.max(1), plan.zipf_exponent);
    let step_ns = 1e9 / plan.rate.max(1e-3);
    let mut clock = plan.start.0 as f64;
    let mut hour = i64::MIN;
    let mut chain_no = 0u64;
    for i in 0..plan.events {
        // Poisson arrivals: exponential gaps with the plan's mean.
        clock += -(1.0 - d.f.rng.unit()).ln() * step_ns;
        let t = EventTime(clock as i64);
        match &plan.chains {
            ChainPlan::Hourly(list) => {
                let h = t.since(plan.start).0.div_euclid(3_600_000_000_000);
                if h != hour {
                    hour = h;
                    let hour_start = plan.start.plus(Span(h * 3_600_000_000_000));
                    for &(chain, offset) in list {
                        let t0 = hour_start.plus(offset).max(t);
                        d.inject(chain, chain_no, t0)?;
                        chain_no += 1;
                    }
                }
            }
            ChainPlan::Every { every, chains } => {
                let every = (*every).max(1);
                if !chains.is_empty() && i % every == every / 2 {
                    let chain = chains[(chain_no % chains.len() as u64) as usize];
                    d.inject(chain, chain_no, t.plus(Span::from_secs(1)))?;
                    chain_no += 1;
                }
            }
        }
        while d.scheduled.peek().is_some_and(|Reverse(p)| p.at <= t.0) {
            if let Some(Reverse(p)) = d.scheduled.pop() {
                d.deliver(p.event);
            }
        }
        let weights = &plan.weights;
        let source = Source::ALL[d.f.rng.weighted(weights)];
        let rank = zipf.sample(&mut d.f.rng);
        let e = match plan.background {
            Background::Standard => background::event(&mut d.f, source, rank, plan.identities, t),
            Background::W500 => w500::background(&mut d.f, source, rank, plan.identities, t),
        };
        d.deliver(e);
        d.flush(t.0)?;
    }
    while let Some(Reverse(p)) = d.scheduled.pop() {
        d.deliver(p.event);
    }
    d.flush(i64::MAX)?;
    d.written.chains = chain_no;
    Ok(d.written)
}

impl Driver<'_, '_, '_> {
    fn inject(&mut self, chain: Injected, n: u64, t0: EventTime) -> io::Result<()> {
        let (events, label) = chain.write(&mut self.f, n, t0);
        for e in events {
            self.seq += 1;
            self.scheduled.push(Reverse(Pending {
                at: e.time.0,
                seq: self.seq,
                event: e,
            }));
        }
        if let Some(out) = self.labels.as_mut() {
            serde_json::to_writer(&mut **out, &label)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn deliver(&mut self, e: Generated) {
        let jitter = self.plan.jitter.0.max(0) as u64;
        let at = e
            .time
            .0
            .saturating_add(self.f.rng.below(jitter.max(1)) as i64);
        self.seq += 1;
        self.delivery.push(Reverse(Pending {
            at,
            seq: self.seq,
            event: e,
        }));
        let in_flight = self.delivery.len() + self.scheduled.len();
        self.written.peak_in_flight = self.written.peak_in_flight.max(in_flight);
    }

    /// Writes every event whose delivery time is at or before `now`.
    fn flush(&mut self, now: i64) -> io::Result<()> {
        while self.delivery.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = self.delivery.pop() else {
                break;
            };
            self.out.write_all(&p.event.bytes)?;
            self.out.write_all(b"\n")?;
            self.written.events += 1;
            self.written.bytes += p.event.bytes.len() as u64 + 1;
        }
        Ok(())
    }
}
