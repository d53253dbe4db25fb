//! Footprint: what one group's hits touched, in bounded sketches.
//!
//! Each kind of thing touched (secrets, resources, hosts, regions, services) keeps up to
//! [`SKETCH`] distinct value hashes exactly; beyond that, values set bits of a 256-bit map and
//! their number is estimated by linear counting. A chain that sweeps ten thousand buckets costs
//! the same memory as one that reads three secrets. A few example values are kept for the
//! alert's `resources`.
//!
//! Most states touch nothing or a handful of values, and there may be a million of them, so
//! the footprint is one pointer until the first value arrives, the exact hashes of all kinds
//! share one list (the kind in a hash's top bits), and the counting maps exist only once some
//! kind outgrows its exact set.

use xxhash_rust::xxh3::xxh3_64;

use crate::score::Touched;
use crate::vocab::TouchKind;

/// Distinct values tracked exactly per kind.
pub const SKETCH: usize = 32;
/// Example values kept for the alert.
pub const EXAMPLES: usize = 8;

const KINDS: usize = 5;
/// A hash's kind lives in its top three bits.
const KIND_SHIFT: u32 = 61;

fn index(kind: TouchKind) -> usize {
    match kind {
        TouchKind::Secret => 0,
        TouchKind::Resource => 1,
        TouchKind::Host => 2,
        TouchKind::Region => 3,
        TouchKind::Service => 4,
    }
}

/// The bounded footprint of one group: nothing allocated until something is touched.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint(Option<Box<Sketch>>);

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct Sketch {
    /// Exact distinct values of every kind: hashes tagged with their kind.
    hashes: Vec<u64>,
    /// Per kind, the values beyond its exact set, as bits of a linear-counting map.
    overflow: Option<Box<[[u64; 4]; KINDS]>>,
    examples: Vec<(TouchKind, Box<str>)>,
}

impl Footprint {
    /// Records one touched value.
    pub fn add(&mut self, kind: TouchKind, value: &str) {
        let i = index(kind);
        let raw = xxh3_64(value.as_bytes());
        let tagged = (raw & (u64::MAX >> (64 - KIND_SHIFT))) | ((i as u64) << KIND_SHIFT);
        let s = self.0.get_or_insert_with(Box::default);
        if s.hashes.contains(&tagged) {
            return;
        }
        if s.hashes.iter().filter(|h| kind_of(**h) == i).count() < SKETCH {
            s.hashes.push(tagged);
        } else {
            let bit = (raw >> 56) as usize; // 0..256
            s.overflow.get_or_insert_with(Box::default)[i][bit / 64] |= 1 << (bit % 64);
        }
        if s.examples.len() < EXAMPLES
            && matches!(
                kind,
                TouchKind::Secret | TouchKind::Resource | TouchKind::Host
            )
        {
            // At most EXAMPLES pushes per state: grow by one rather than by doubling.
            s.examples.reserve_exact(1);
            s.examples.push((kind, value.into()));
        }
    }

    pub fn counts(&self) -> Touched {
        let Some(s) = &self.0 else {
            return Touched::default();
        };
        let c = |k: TouchKind| {
            let i = index(k);
            let exact = s.hashes.iter().filter(|h| kind_of(**h) == i).count() as u32;
            exact + s.overflow.as_ref().map_or(0, |o| linear_count(&o[i]))
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
        self.0.as_ref().map_or(&[], |s| &s.examples)
    }

    /// The heap bytes the footprint holds.
    pub fn approx_bytes(&self) -> usize {
        let Some(s) = &self.0 else {
            return 0;
        };
        size_of::<Sketch>()
            + s.hashes.capacity() * size_of::<u64>()
            + s.overflow
                .as_ref()
                .map_or(0, |_| size_of::<[[u64; 4]; KINDS]>())
            + s.examples.capacity() * size_of::<(TouchKind, Box<str>)>()
            + s.examples.iter().map(|(_, v)| v.len()).sum::<usize>()
    }
}

fn kind_of(tagged: u64) -> usize {
    (tagged >> KIND_SHIFT) as usize
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
        let sketch = f.0.as_ref().expect("touched");
        let exact = |k| {
            sketch
                .hashes
                .iter()
                .filter(|h| kind_of(**h) == index(k))
                .count()
        };
        assert_eq!(exact(TouchKind::Resource), SKETCH);
        assert_eq!(exact(TouchKind::Secret), 1);
        assert!(f.examples().len() <= EXAMPLES);
    }

    #[test]
    fn an_untouched_footprint_is_one_pointer_and_holds_nothing() {
        let f = Footprint::default();
        assert_eq!(size_of::<Footprint>(), size_of::<usize>());
        assert_eq!(f.approx_bytes(), 0);
        assert_eq!(f.counts(), Touched::default());
    }

    #[test]
    fn kinds_sharing_one_list_are_counted_apart() {
        let mut f = Footprint::default();
        for i in 0..40 {
            f.add(TouchKind::Host, &format!("host-{i}"));
        }
        f.add(TouchKind::Region, "us-east-1");
        // The same text as another kind is another value.
        f.add(TouchKind::Service, "us-east-1");
        let c = f.counts();
        assert_eq!((c.regions, c.services, c.secrets), (1, 1, 0));
        assert!((38..=42).contains(&c.hosts), "{}", c.hosts);
    }
}
