//! The homomorphic DFT of bootstrapping, as plaintext matrices in diagonal form.
//!
//! The encoder's special FFT (evaluation at `ζ^{5^j}`, see [`crate::Encoder`]) factors into
//! `log2(slots)` butterfly stages, each a matrix with three nonzero diagonals, after a
//! bit-reversal permutation. Bootstrapping never applies the permutation: CoeffsToSlots
//! leaves its output in bit-reversed order, EvalMod works slot by slot, and SlotsToCoeffs
//! takes bit-reversed input (Cheon–Han–Hhan, "Faster homomorphic DFT and speeding up
//! bootstrapping", ePrint 2018/1073; Bossuat et al., Eurocrypt 2021, §5).
//!
//! [`grouped`] multiplies consecutive stages together so that the transform costs `levels`
//! levels instead of `log2(slots)`: a group of `r` radix-2 stages has at most `2^{r+1} − 1`
//! diagonals. The matrices here are exact `f64` data and come with a plaintext twin
//! ([`apply`]); encrypted evaluation goes through the linear-transform evaluator.
//!
//! Convention: a matrix `M` is a map from diagonal index `k ∈ [0, slots)` to the vector
//! `d_k[i] = M[i][(i + k) mod slots]`, so that `M·v = Σ_k d_k ⊙ rot(v, k)` with
//! `rot(v, k)[i] = v[(i + k) mod slots]` (a left rotation by `k`).

use std::collections::BTreeMap;

use num_complex::Complex64;

use crate::Encoder;

/// A matrix in diagonal form: diagonal index to diagonal vector.
pub type Diagonals = BTreeMap<usize, Vec<Complex64>>;

/// `M·v` in plaintext, with the same diagonal decomposition as the encrypted evaluation.
pub fn apply(m: &Diagonals, v: &[Complex64]) -> Vec<Complex64> {
    let n = v.len();
    let mut out = vec![Complex64::new(0.0, 0.0); n];
    for (&k, d) in m {
        for (i, o) in out.iter_mut().enumerate() {
            *o += d[i] * v[(i + k) % n];
        }
    }
    out
}

/// The product `a·b` (apply `b` first), in diagonal form: `C_{x+y} += d^a_x ⊙ rot(d^b_y, x)`.
pub fn compose(a: &Diagonals, b: &Diagonals, slots: usize) -> Diagonals {
    let mut c = Diagonals::new();
    for (&x, da) in a {
        for (&y, db) in b {
            let entry = c
                .entry((x + y) % slots)
                .or_insert_with(|| vec![Complex64::new(0.0, 0.0); slots]);
            for (i, e) in entry.iter_mut().enumerate() {
                *e += da[i] * db[(i + x) % slots];
            }
        }
    }
    // Diagonals that cancel exactly are dropped (they would cost a rotation for nothing).
    c.retain(|_, d| d.iter().any(|z| z.norm_sqr() > 0.0));
    c
}

fn zeros(slots: usize) -> Vec<Complex64> {
    vec![Complex64::new(0.0, 0.0); slots]
}

/// The butterfly stages of the decoding direction (coefficients to slot values), in the order
/// they apply, for input in bit-reversed order: `special_fft(v) = S_last ⋯ S_first · bitrev(v)`.
pub fn decode_stages(encoder: &Encoder, slots: usize) -> Vec<Diagonals> {
    let m = 2 * encoder.params().n();
    let mut stages = Vec::new();
    let mut len = 2;
    while len <= slots {
        let (lenh, lenq) = (len / 2, len * 4);
        let gap = m / lenq;
        let (mut d0, mut dp, mut dm) = (zeros(slots), zeros(slots), zeros(slots));
        for start in (0..slots).step_by(len) {
            for j in 0..lenh {
                let w = encoder.root((encoder.rot_group(j) as usize % lenq) * gap);
                let (p, q) = (start + j, start + j + lenh);
                // out[p] = v[p] + w·v[q];  out[q] = v[p] − w·v[q].
                d0[p] = Complex64::new(1.0, 0.0);
                dp[p] = w;
                dm[q] = Complex64::new(1.0, 0.0);
                d0[q] = -w;
            }
        }
        let mut s = Diagonals::new();
        s.insert(0, d0);
        s.insert(lenh % slots, dp);
        let neg = (slots - lenh) % slots;
        match s.get_mut(&neg) {
            // slots == 2: +lenh and −lenh are the same diagonal.
            Some(d) => d.iter_mut().zip(&dm).for_each(|(a, b)| *a += b),
            None => {
                s.insert(neg, dm);
            }
        }
        stages.push(s);
        len *= 2;
    }
    stages
}

/// The stages of the encoding direction (slot values to coefficients), in the order they
/// apply; their product, divided by `slots` and followed by a bit reversal, is the inverse
/// special FFT. The `1/slots` factor is folded into the first stage.
pub fn encode_stages(encoder: &Encoder, slots: usize) -> Vec<Diagonals> {
    let m = 2 * encoder.params().n();
    let mut stages = Vec::new();
    let mut len = slots;
    while len >= 2 {
        let (lenh, lenq) = (len / 2, len * 4);
        let gap = m / lenq;
        let (mut d0, mut dp, mut dm) = (zeros(slots), zeros(slots), zeros(slots));
        for start in (0..slots).step_by(len) {
            for j in 0..lenh {
                let w = encoder.root((lenq - (encoder.rot_group(j) as usize % lenq)) * gap);
                let (p, q) = (start + j, start + j + lenh);
                // out[p] = v[p] + v[q];  out[q] = (v[p] − v[q])·w.
                d0[p] = Complex64::new(1.0, 0.0);
                dp[p] = Complex64::new(1.0, 0.0);
                dm[q] = w;
                d0[q] = -w;
            }
        }
        let mut s = Diagonals::new();
        s.insert(0, d0);
        s.insert(lenh % slots, dp);
        let neg = (slots - lenh) % slots;
        match s.get_mut(&neg) {
            Some(d) => d.iter_mut().zip(&dm).for_each(|(a, b)| *a += b),
            None => {
                s.insert(neg, dm);
            }
        }
        stages.push(s);
        len /= 2;
    }
    if let Some(first) = stages.first_mut() {
        let inv = 1.0 / slots as f64;
        first
            .values_mut()
            .for_each(|d| d.iter_mut().for_each(|z| *z *= inv));
    }
    stages
}

/// Merges consecutive stages into `levels` groups (as even as possible, later groups larger),
/// each group the product of its stages in application order.
pub fn grouped(stages: &[Diagonals], levels: usize, slots: usize) -> Vec<Diagonals> {
    let levels = levels.clamp(1, stages.len().max(1));
    let mut out = Vec::with_capacity(levels);
    let mut start = 0;
    for g in 0..levels {
        let size = (stages.len() - start) / (levels - g);
        let mut acc: Option<Diagonals> = None;
        for s in &stages[start..start + size] {
            acc = Some(match acc {
                None => s.clone(),
                Some(prev) => compose(s, &prev, slots),
            });
        }
        if let Some(a) = acc {
            out.push(a);
        }
        start += size;
    }
    out
}

/// Bit-reversal permutation of a vector whose length is a power of two.
pub fn bit_reversed<T: Clone>(v: &[T]) -> Vec<T> {
    let n = v.len();
    let bits = n.trailing_zeros();
    (0..n)
        .map(|i| {
            v[if bits == 0 {
                0
            } else {
                i.reverse_bits() >> (usize::BITS - bits)
            }]
            .clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, Params};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn random(rng: &mut ChaCha20Rng, n: usize) -> Vec<Complex64> {
        (0..n)
            .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect()
    }

    fn max_diff(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
    }

    #[test]
    fn stages_factor_the_special_fft() {
        let params = Params::new_insecure(presets::insecure_test(10, 1)).unwrap();
        let enc = Encoder::new(&params);
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        for slots in [2usize, 4, 32, 512] {
            let v = random(&mut rng, slots);
            // Decoding: stages applied to the bit-reversed input.
            let mut want = v.clone();
            enc.special_fft(&mut want);
            let mut got = bit_reversed(&v);
            for s in decode_stages(&enc, slots) {
                assert!(s.len() <= 3);
                got = apply(&s, &got);
            }
            assert!(max_diff(&got, &want) < 1e-12, "decode, slots {slots}");
            // Encoding: stages then bit reversal.
            let mut want = v.clone();
            enc.special_fft_inv(&mut want);
            let mut got = v.clone();
            for s in encode_stages(&enc, slots) {
                got = apply(&s, &got);
            }
            assert!(
                max_diff(&bit_reversed(&got), &want) < 1e-12,
                "encode, slots {slots}"
            );
        }
    }

    #[test]
    fn grouping_keeps_the_product_and_bounds_the_diagonals() {
        let params = Params::new_insecure(presets::insecure_test(11, 1)).unwrap();
        let enc = Encoder::new(&params);
        let slots = 1024;
        let stages = decode_stages(&enc, slots);
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        let v = random(&mut rng, slots);
        let mut want = v.clone();
        for s in &stages {
            want = apply(s, &want);
        }
        for levels in [1, 3, 4, 10] {
            let groups = grouped(&stages, levels, slots);
            assert_eq!(groups.len(), levels);
            let mut got = v.clone();
            let mut start = 0;
            for (g, group) in groups.iter().enumerate() {
                got = apply(group, &got);
                // A group of r radix-2 stages has at most 2^{r+1} − 1 diagonals.
                let r = (stages.len() - start) / (levels - g);
                assert!(
                    group.len() < 1 << (r + 1),
                    "{} diagonals for {r} stages",
                    group.len()
                );
                start += r;
            }
            assert!(max_diff(&got, &want) < 1e-9, "levels {levels}");
        }
    }
}
