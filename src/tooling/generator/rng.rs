//! Randomness of the generator: a seeded SplitMix64 stream and a Zipf sampler.
//!
//! Everything the generator decides is drawn from one [`Rng`] in a fixed order on one thread, so
//! a seed always gives the same bytes. SplitMix64 is tiny, fast and specified bit for bit; the
//! Zipf sampler uses only `exp`/`ln`, which give the same results on one platform and build.

/// SplitMix64: the same stream on every platform for a given seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; `n == 0` is treated as 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether an event of probability `p` happens.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn with the given relative weights (not all zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len().saturating_sub(1)
    }

    /// A UUID-shaped hex string (version 4 layout).
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Zipf-distributed ranks in `1..=n`: rank k is drawn with probability proportional to
/// `k^-exponent`. Rejection-inversion sampling (Hörmann and Derflinger, 1996): constant time
/// and constant memory whatever `n`, so a million identities cost nothing to draw from.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    squeeze: f64,
}

impl Zipf {
    /// `n >= 1`, `exponent > 0`.
    pub fn new(n: u64, exponent: f64) -> Zipf {
        let n = n.max(1) as f64;
        let exponent = exponent.max(1e-6);
        let mut z = Zipf {
            n,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            squeeze: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.squeeze = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// One rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            // Accept at once inside the squeeze, else compare with the exact hat.
            if k - x <= self.squeeze || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// The density `x^-exponent`.
    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    /// An antiderivative of `h`, written so that exponent 1 (the logarithm) needs no branch.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (ln1p_over_x(t) * x).exp()
    }
}

/// `(e^x - 1) / x`, continuous at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x / 2.0 * (1.0 + x / 3.0)
    }
}

/// `ln(1 + x) / x`, continuous at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x / 2.0 * (1.0 - 2.0 * x / 3.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_ranks_stay_in_range_and_follow_the_power_law() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; 1001];
        for _ in 0..200_000 {
            let k = z.sample(&mut rng);
            assert!((1..=1000).contains(&k));
            counts[k as usize] += 1;
        }
        // P(1)/P(2) = 2 and P(1)/P(10) = 10 for exponent 1; allow sampling noise.
        let r2 = f64::from(counts[1]) / f64::from(counts[2]);
        let r10 = f64::from(counts[1]) / f64::from(counts[10]);
        assert!((1.8..2.2).contains(&r2), "P1/P2 = {r2}");
        assert!((8.5..11.5).contains(&r10), "P1/P10 = {r10}");
        assert!(counts[1000] < counts[1]);
    }

    #[test]
    fn zipf_handles_one_rank_and_steep_exponents() {
        let mut rng = Rng::new(3);
        assert!((0..100).all(|_| Zipf::new(1, 1.2).sample(&mut rng) == 1));
        let z = Zipf::new(1_000_000, 1.3);
        assert!((0..10_000).all(|_| (1..=1_000_000).contains(&z.sample(&mut rng))));
    }

    #[test]
    fn weighted_choice_respects_zero_weights() {
        let mut rng = Rng::new(5);
        for _ in 0..1000 {
            assert_ne!(rng.weighted(&[3, 0, 1]), 1);
        }
    }
}
