//! The generator: seeded, byte-reproducible, streaming security event datasets with labels.
//!
//! No public dataset holds a whole credential-abuse chain under one identity, so credtrail makes
//! its own: benign background modelled on the public data (Terraform reading secrets,
//! administrators listing users, CI roles, scheduled maintenance tasks), with chains injected at
//! machine speed (seconds) and human speed (tens of minutes), near misses that must not alert,
//! Zipf-distributed identities, and delivery out of order within a bounded jitter.
//!
//! - [`Preset`]: what to write (`mixed`, `w500`, `demo`); [`Overrides`] scale it.
//! - [`generate`]: writes the events (JSON lines) and the labels ([`labels`]), streaming: memory
//!   is bounded by the events in flight, so 10^8 events need no more than 10^3.
//! - [`rules`]: the W500 rule set (100 rules, 10 correlations), generated the same way.
//!
//! The layouts of each source are in [`sources`]; the benign roles in [`background`]; the
//! injected chains in [`chains`] and [`w500`]; the scheduling and delivery in [`stream`]; the
//! bundled demo dataset, a fixed script rather than a plan, in [`demo`]. Every random draw comes
//! from [`rng`].

pub mod background;
pub mod chains;
pub mod demo;
pub mod json;
pub mod labels;
pub mod rng;
pub mod rules;
pub mod sources;
pub mod stream;
pub mod w500;

use std::io::{self, Write};

use chains::Scenario;
use stream::{Background, ChainPlan, Injected, Plan, Written};

use crate::time::{EventTime, Span};

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Every source, every chain scenario once per hour of event time, 10 events/s, 5,000
    /// identities per source, 2 hours (72,000 background events) by default.
    Mixed,
    /// The W500 workload: ~500-byte CloudTrail and Sysmon events at 5,000 events/s of event
    /// time, 100,000 identities per source, a W500 chain every 20,000 events, 1,000,000 events
    /// by default. Its rules come from [`rules`].
    W500,
    /// The bundled demo dataset (`datasets/demo/events.jsonl`), written by [`demo`]; it
    /// has no labels and takes no overrides.
    Demo,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Mixed, Preset::W500, Preset::Demo];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Mixed => "mixed",
            Preset::W500 => "w500",
            Preset::Demo => "demo",
        }
    }

    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's plan with `overrides` applied; `None` for `demo`.
    pub fn plan(self, overrides: &Overrides) -> Option<Plan> {
        let start = EventTime::parse("2026-11-02T09:00:00Z").unwrap_or(EventTime(0));
        let mut plan = match self {
            Preset::Demo => return None,
            Preset::Mixed => Plan {
                start,
                events: 72_000,
                rate: 10.0,
                identities: 5_000,
                zipf_exponent: 1.1,
                // cloudtrail, windows flat, windows nested, linux, k8s audit, agent
                weights: [45, 15, 5, 15, 12, 8],
                jitter: Span::from_secs(20),
                chains: ChainPlan::Hourly(
                    Scenario::ALL
                        .iter()
                        .enumerate()
                        .map(|(i, &s)| {
                            (Injected::Standard(s), Span::from_secs(60 + 150 * i as i64))
                        })
                        .collect(),
                ),
                background: Background::Standard,
            },
            Preset::W500 => Plan {
                start,
                events: 1_000_000,
                rate: 5_000.0,
                identities: 100_000,
                zipf_exponent: 1.1,
                weights: [50, 50, 0, 0, 0, 0],
                jitter: Span::from_secs(5),
                chains: ChainPlan::Every {
                    every: 20_000,
                    chains: w500::Scenario::ALL
                        .iter()
                        .map(|&s| Injected::W500(s))
                        .collect(),
                },
                background: Background::W500,
            },
        };
        if let Some(n) = overrides.events {
            plan.events = n;
        }
        if let Some(n) = overrides.identities {
            plan.identities = n.max(1);
        }
        if let Some(r) = overrides.rate {
            plan.rate = r;
        }
        if let Some(j) = overrides.jitter {
            plan.jitter = j;
        }
        if let Some(z) = overrides.zipf_exponent {
            plan.zipf_exponent = z;
        }
        Some(plan)
    }
}

/// Changes to a preset's plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Background events.
    pub events: Option<u64>,
    /// Identities per source population.
    pub identities: Option<u64>,
    /// Background events per second of event time.
    pub rate: Option<f64>,
    /// Largest delivery delay.
    pub jitter: Option<Span>,
    /// Exponent of the identities' Zipf law (lower is flatter: more distinct identities).
    pub zipf_exponent: Option<f64>,
}

/// Writes `preset` with `seed`: events into `out`, labels into `labels` (ignored by `demo`).
pub fn generate(
    preset: Preset,
    seed: u64,
    overrides: &Overrides,
    out: &mut dyn Write,
    labels: Option<&mut dyn Write>,
) -> io::Result<Written> {
    match preset.plan(overrides) {
        Some(plan) => stream::run(&plan, seed, out, labels),
        None => {
            let mut counted = Counted {
                inner: out,
                bytes: 0,
            };
            let events = demo::generate(demo::Preset::Demo, seed, &mut counted)?;
            Ok(Written {
                events,
                bytes: counted.bytes,
                ..Written::default()
            })
        }
    }
}

/// A writer that counts the bytes through it.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
