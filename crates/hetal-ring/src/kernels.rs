//! The inner product of key switching, `Σ_j x_j·w_j mod q` coefficient-wise.
//!
//! Scalar 64×64→128-bit products summed lazily, one Barrett reduction per residue. The number
//! of terms (dnum) is made a compile-time constant, so the loop over them unrolls and each
//! residue's sum stays in registers; on AVX2 this beats splitting residues into 25-bit halves
//! for 32-bit vector multiplies (`cargo bench -p hetal-ring`, `dot_4`).

use crate::Modulus;

/// Most terms summed before a reduction: 15 products of residues below 2^62 stay below 2^128.
const MAX_TERMS: usize = 15;

/// `out[c] = Σ_j x_j[c]·w_j[c] mod m` with `D` terms, `D ≤ MAX_TERMS`.
#[inline(always)]
fn fixed<const D: usize>(terms: &[(&[u64], &[u64])], m: &Modulus, out: &mut [u64]) {
    let n = out.len();
    let xs: [&[u64]; D] = std::array::from_fn(|j| &terms[j].0[..n]);
    let ws: [&[u64]; D] = std::array::from_fn(|j| &terms[j].1[..n]);
    for (c, o) in out.iter_mut().enumerate() {
        let sum = xs
            .iter()
            .zip(&ws)
            .fold(0u128, |s, (x, w)| s + x[c] as u128 * w[c] as u128);
        *o = m.reduce_u128(sum);
    }
}

/// `out[c] = Σ_j x_j[c]·w_j[c] mod m`: the inner product of key switching, one lazy
/// reduction per residue (one per 15 terms). All slices have the length of `out`.
pub fn dot_product(terms: &[(&[u64], &[u64])], m: &Modulus, out: &mut [u64]) {
    macro_rules! fixed_sizes {
        ($($d:literal)*) => {
            match terms.len() {
                0 => out.fill(0),
                $($d => fixed::<$d>(terms, m, out),)*
                _ => {
                    let (head, tail) = terms.split_at(MAX_TERMS);
                    fixed::<MAX_TERMS>(head, m, out);
                    let mut rest = vec![0; out.len()];
                    dot_product(tail, m, &mut rest);
                    out.iter_mut().zip(rest).for_each(|(o, r)| *o = m.add(*o, r));
                }
            }
        };
    }
    fixed_sizes!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn dot_product_matches_u128_oracle() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for q in [
            (1u64 << 50) - 27,
            (1 << 40) - 87,
            (1 << 61) - 1,
            (1 << 62) - 57,
        ] {
            let m = Modulus::new(q).unwrap();
            let n = 300;
            let xs: Vec<Vec<u64>> = (0..40)
                .map(|_| (0..n).map(|_| rng.random_range(0..q)).collect())
                .collect();
            let ws: Vec<Vec<u64>> = (0..40)
                .map(|_| (0..n).map(|_| rng.random_range(0..q)).collect())
                .collect();
            let terms: Vec<(&[u64], &[u64])> =
                xs.iter().zip(&ws).map(|(x, w)| (&x[..], &w[..])).collect();
            // Every unrolled term count, and more than one lazy sum takes.
            for count in (0..=16).chain([40]) {
                let mut out = vec![1u64; n];
                dot_product(&terms[..count], &m, &mut out);
                for (c, &o) in out.iter().enumerate() {
                    let want = terms[..count].iter().fold(0u128, |a, (x, w)| {
                        (a + x[c] as u128 * w[c] as u128) % q as u128
                    });
                    assert_eq!(o as u128, want, "{count} terms mod {q}");
                }
            }
        }
    }
}
