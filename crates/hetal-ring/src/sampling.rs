//! Samplers for RLWE secrets, errors and masks, driven by a caller-supplied CSPRNG.
//!
//! Every function takes `&mut R` with `R: CryptoRng`; callers seed `rand_chacha::ChaCha20Rng`
//! from the operating system (`getrandom`) in production and from a fixed seed in tests.

use rand::{CryptoRng, Rng};
use rand_distr::{Distribution, Normal};

use crate::{Prime, RnsPoly};

/// A polynomial with each limb uniform modulo its prime (uniform modulo the product, by CRT).
pub fn uniform<R: CryptoRng + ?Sized>(rng: &mut R, n: usize, primes: &[Prime]) -> RnsPoly {
    let mut p = RnsPoly::zero(n, primes.len());
    for (limb, q) in p.limbs_mut().zip(primes) {
        let q = q.value();
        limb.iter_mut().for_each(|x| *x = rng.random_range(0..q));
    }
    p
}

/// Uniform ternary coefficients in {-1, 0, 1}.
pub fn ternary<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<i64> {
    (0..n).map(|_| rng.random_range(-1i64..=1)).collect()
}

/// Ternary coefficients with exactly `h` nonzero entries (random positions and signs).
/// `h` is clamped to `n`.
pub fn fixed_hamming_weight<R: CryptoRng + ?Sized>(rng: &mut R, n: usize, h: usize) -> Vec<i64> {
    let mut s = vec![0i64; n];
    for i in rand::seq::index::sample(rng, n, h.min(n)) {
        s[i] = if rng.random::<bool>() { 1 } else { -1 };
    }
    s
}

/// Rounded Gaussian coefficients of standard deviation `sigma`, cut at `6·sigma`.
pub fn gaussian<R: CryptoRng + ?Sized>(rng: &mut R, n: usize, sigma: f64) -> Vec<i64> {
    let bound = (6.0 * sigma).ceil();
    let normal =
        Normal::new(0.0, sigma.max(f64::MIN_POSITIVE)).unwrap_or_else(|_| unreachable_normal());
    (0..n)
        .map(|_| loop {
            let v: f64 = normal.sample(rng).round();
            if v.abs() <= bound {
                break v as i64;
            }
        })
        .collect()
}

// `Normal::new` only fails for a non-finite or negative deviation, which the clamp excludes.
fn unreachable_normal() -> Normal<f64> {
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn distributions_have_the_right_shape() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let n = 1 << 14;
        let t = ternary(&mut rng, n);
        let counts = [-1, 0, 1].map(|v| t.iter().filter(|&&x| x == v).count() as f64 / n as f64);
        assert!(
            counts.iter().all(|&c| (c - 1.0 / 3.0).abs() < 0.02),
            "{counts:?}"
        );
        let h = fixed_hamming_weight(&mut rng, n, 32);
        assert_eq!(h.iter().filter(|&&x| x != 0).count(), 32);
        assert!(h.iter().all(|&x| (-1..=1).contains(&x)));
        let g = gaussian(&mut rng, n, 3.2);
        let var = g.iter().map(|&x| (x * x) as f64).sum::<f64>() / n as f64;
        assert!((var.sqrt() - 3.2).abs() < 0.1, "std {}", var.sqrt());
        assert!(g.iter().all(|&x| x.abs() <= 20));
    }
}
