//! Key choice: a tiny seeded generator and the two key distributions.
//!
//! Everything here runs once per request inside the timed section, so it is
//! allocation-free and branch-light: SplitMix64 is one add and three
//! multiply-xorshift steps (~1 ns), a uniform index is one 64×64→128 multiply
//! (Lemire's method, bias below 2⁻³² for any key space we can hold), and a
//! Zipfian index is one `powf` (~20 ns) after a set-up that computes
//! ζ(N, θ) once per run (exact up to a million keys, ~10 ms; integrated
//! beyond).

/// SplitMix64 (Steele, Lea, Flood 2014): tiny state, passes BigCrush, and
/// every seed (even 0) is a good seed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// A uniform index in `0..bound` (`bound > 0`).
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The SplitMix64 output function; also a good 64-bit hash for seeding.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed that differs between runs: monotonic and wall time, the pid and a
/// stack address, mixed (the ingredients upstream uses for its key prefix,
/// §6.2).
pub fn fresh_seed() -> u64 {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let marker = 0u8;
    let address = std::ptr::addr_of!(marker) as u64;
    mix64(wall as u64 ^ mix64(u64::from(std::process::id())) ^ mix64(address))
}

/// Zipfian ranks over `0..items`, rank 0 the most popular, by the method of
/// Gray et al., "Quickly generating billion-record synthetic databases"
/// (SIGMOD 1994), as YCSB uses it. `theta` must lie in `(0, 1)`; YCSB's
/// default is 0.99.
#[derive(Debug, Clone, Copy)]
pub struct Zipf {
    items: u64,
    theta: f64,
    zeta_n: f64,
    alpha: f64,
    eta: f64,
    /// `1 + 0.5^theta`: the threshold below which the rank is 1.
    rank_one_bound: f64,
}

impl Zipf {
    /// Computes ζ(items, θ) once.
    pub fn new(items: u64, theta: f64) -> Zipf {
        assert!(items > 0 && theta > 0.0 && theta < 1.0, "validated by the argument parser");
        let zeta_n = zeta(items, theta);
        let zeta_2 = zeta(2.min(items), theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta =
            if items <= 2 { 1.0 } else { (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n) };
        Zipf { items, theta, zeta_n, alpha, eta, rank_one_bound: 1.0 + 0.5f64.powf(theta) }
    }

    pub fn theta(&self) -> f64 {
        self.theta
    }

    #[inline]
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.unit_f64();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.rank_one_bound && self.items > 1 {
            return 1;
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }
}

/// Terms of ζ summed exactly; the tail beyond is integrated.
const ZETA_EXACT_TERMS: u64 = 1 << 20;

/// ζ(n, θ) = Σ_{i=1..n} 1/i^θ: exact for the first [`ZETA_EXACT_TERMS`]
/// terms, then the midpoint-rule integral ∫ x^-θ dx over the rest (relative
/// error far below 1e-9 there), so a billion-key space costs milliseconds.
fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS);
    let head: f64 = (1..=exact).map(|i| (i as f64).powf(-theta)).sum();
    if n == exact {
        return head;
    }
    let antiderivative = |x: f64| x.powf(1.0 - theta) / (1.0 - theta);
    head + antiderivative(n as f64 + 0.5) - antiderivative(exact as f64 + 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&count| (800..1200).contains(&count)), "{seen:?}");
    }

    #[test]
    fn zipf_ranks_are_in_range_and_skewed_towards_zero() {
        let zipf = Zipf::new(1000, 0.99);
        let mut rng = SplitMix64::new(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // With θ = 0.99 over 1000 items, rank 0 takes about 1/ζ ≈ 13% of draws.
        assert!((10_000..16_000).contains(&counts[0]), "rank 0 drew {}", counts[0]);
    }

    #[test]
    fn zeta_tail_integral_matches_the_exact_sum() {
        let n = ZETA_EXACT_TERMS + 300_000;
        let exact: f64 = (1..=n).map(|i| (i as f64).powf(-0.99)).sum();
        assert!((zeta(n, 0.99) - exact).abs() / exact < 1e-9);
    }

    #[test]
    fn zipf_handles_tiny_key_spaces() {
        for items in [1, 2, 3] {
            let zipf = Zipf::new(items, 0.5);
            let mut rng = SplitMix64::new(3);
            assert!((0..1000).all(|_| zipf.sample(&mut rng) < items));
        }
    }
}
