//! Footprint: what one group's hits touched, in bounded sketches.
//!
//! Each kind of thing touched (secrets, resources, hosts, regions, services) keeps up to
//! [`SKETCH`] distinct value hashes exactly; beyond that, values set bits of a 256-bit map and
//! their number is estimated by linear counting. A chain that sweeps ten thousand buckets costs
//! the same memory as one that reads three secrets. A few example values are kept for the
//! alert's `resources`.

use xxhash_rust::xxh3::xxh3_64;

use crate::decode::TouchKind;
use crate::score::Touched;

/// Distinct values tracked exactly per kind.
pub const SKETCH: usize = 32;
/// Example values kept for the alert.
pub const EXAMPLES: usize = 8;

const KINDS: usize = 5;

fn index(kind: TouchKind) -> usize {
    match kind {
        TouchKind::Secret => 0,
        TouchKind::Resource => 1,
        TouchKind::Host => 2,
        TouchKind::Region => 3,
        TouchKind::Service => 4,
    }
}

/// The bounded footprint of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    hashes: [Vec<u64>; KINDS],
    /// Values beyond the exact set, as bits of a linear-counting map.
    overflow: [[u64; 4]; KINDS],
    examples: Vec<(TouchKind, Box<str>)>,
}

impl Footprint {
    /// Records one touched value.
    pub fn add(&mut self, kind: TouchKind, value: &str) {
        let i = index(kind);
        let h = xxh3_64(value.as_bytes());
        let set = &mut self.hashes[i];
        if set.contains(&h) {
            return;
        }
        if set.len() < SKETCH {
            set.push(h);
        } else {
            let bit = (h >> 56) as usize; // 0..256
            self.overflow[i][bit / 64] |= 1 << (bit % 64);
        }
        if self.examples.len() < EXAMPLES
            && matches!(
                kind,
                TouchKind::Secret | TouchKind::Resource | TouchKind::Host
            )
        {
            self.examples.push((kind, value.into()));
        }
    }

    pub fn counts(&self) -> Touched {
        let c = |k: TouchKind| {
            self.hashes[index(k)].len() as u32 + linear_count(&self.overflow[index(k)])
        };
        Touched {
            secrets: c(TouchKind::Secret),
            resources: c(TouchKind::Resource),
            hosts: c(TouchKind::Host),
            regions: c(TouchKind::Region),
            services: c(TouchKind::Service),
        }
    }

    pub fn examples(&self) -> &[(TouchKind, Box<str>)] {
        &self.examples
    }

    pub fn approx_bytes(&self) -> usize {
        self.hashes.iter().map(|h| h.capacity() * 8).sum::<usize>()
            + self
                .examples
                .iter()
                .map(|(_, v)| v.len() + 24)
                .sum::<usize>()
    }
}

/// Linear counting: the number of distinct hashes that set the bits of a 256-bit map.
fn linear_count(bits: &[u64; 4]) -> u32 {
    let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
    if set == 0 {
        return 0;
    }
    let m = 256.0f64;
    let zero = (m - set as f64).max(0.5);
    (-m * (zero / m).ln()).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_are_counted_and_bounded() {
        let mut f = Footprint::default();
        for i in 0..1000 {
            f.add(TouchKind::Resource, &format!("bucket-{}", i % 100));
        }
        f.add(TouchKind::Secret, "prod/db");
        f.add(TouchKind::Secret, "prod/db");
        let c = f.counts();
        assert_eq!(c.secrets, 1);
        // 32 exact plus about 68 estimated past the cap; repeats are not counted twice.
        assert!((90..=110).contains(&c.resources), "{}", c.resources);
        assert!(f.hashes[index(TouchKind::Resource)].len() <= SKETCH);
        assert!(f.examples().len() <= EXAMPLES);
    }
}
