//! Sums of products `Σ_j x_j·w_j mod q` coefficient-wise: key switching's inner product and
//! the sums of ciphertext products.
//!
//! Scalar 64×64→128-bit products summed lazily, one reduction per residue. The number of
//! terms (dnum) is made a compile-time constant, so the loop over them unrolls and each
//! residue's sum stays in registers; on AVX2 this beats splitting residues into 25-bit halves
//! for 32-bit vector multiplies (`cargo bench -p hetal-ring`, `dot_4`). [`dot_product`]
//! reduces by Barrett (any operands); [`dot_product_pair_montgomery`] serves key switching,
//! whose keys are constants stored in Montgomery form: it reads each digit once for both key
//! components and reduces by Montgomery (two multiplies against Barrett's five).
//!
//! Where the CPU has AVX-512 IFMA, primes below 2^50 take the vector kernels of the `ifma`
//! module instead (eight products per instruction pair); the results are the same.

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
    #[cfg(target_arch = "x86_64")]
    if crate::ifma::dot(terms, m, out, false) {
        return;
    }
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

/// `out[c] += Σ_j x_j[c]·w_j[c] mod m`: [`dot_product`] added to residues `out[c] < m`.
pub fn dot_product_add(terms: &[(&[u64], &[u64])], m: &Modulus, out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::ifma::dot(terms, m, out, true) {
        return;
    }
    let mut sum = vec![0; out.len()];
    dot_product(terms, m, &mut sum);
    add_assign(out, &sum, m);
}

/// Runs `f` compiled for the widest vector instructions this CPU has (AVX-512 or AVX2, by
/// `pulp`'s run-time dispatch), so that the compiler can vectorize its element-wise loops
/// (the default target, x86-64 with SSE2 only, has no 64-bit unsigned `min` for modular
/// additions, nor gathers for automorphisms). `f` should be marked `#[inline(always)]`.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `x[c] ← x[c] + y[c] mod m` for residues below `m`.
pub fn add_assign(x: &mut [u64], y: &[u64], m: &Modulus) {
    vectorized(
        #[inline(always)]
        || x.iter_mut().zip(y).for_each(|(x, &y)| *x = m.add(*x, y)),
    );
}

/// What [`mul_const_assign`] does to each residue before the product.
#[derive(Clone, Copy)]
pub(crate) enum Before<'a> {
    /// Nothing.
    Nothing,
    /// Adds a constant below the modulus.
    Add(u64),
    /// Subtracts the matching residue of a slice of `x`'s length.
    Sub(&'a [u64]),
}

/// `x[c] ← (x[c] ∘ before)·w mod m` for residues `x[c] < m` and a constant `w < m` with its
/// Shoup companion `ws`.
pub(crate) fn mul_const_assign(x: &mut [u64], before: Before, (w, ws): (u64, u64), m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if crate::ifma::mul_const_assign(x, before, (w, ws), m) {
        return;
    }
    match before {
        Before::Nothing => x.iter_mut().for_each(|x| *x = m.mul_shoup(*x, w, ws)),
        Before::Add(h) => x
            .iter_mut()
            .for_each(|x| *x = m.mul_shoup(m.add(*x, h), w, ws)),
        Before::Sub(r) => x
            .iter_mut()
            .zip(r)
            .for_each(|(x, &r)| *x = m.mul_shoup(m.sub(*x, r), w, ws)),
    }
}

/// Most terms unrolled by [`dot_product_pair_montgomery`] (more are summed in parts).
const MAX_PAIR_TERMS: usize = 16;

/// `(out0, out1)[c] = Σ_j x_j[c]·(w0_j[c], w1_j[c])·2^-64 mod m` for `terms` `(x_j, w0_j,
/// w1_j)` with `D ≤ min(MAX_PAIR_TERMS, m.redc_terms())` terms.
#[inline(always)]
fn fixed_pair<const D: usize>(
    terms: &[(&[u64], &[u64], &[u64])],
    m: &Modulus,
    out0: &mut [u64],
    out1: &mut [u64],
) {
    let n = out0.len().min(out1.len());
    let xs: [&[u64]; D] = std::array::from_fn(|j| &terms[j].0[..n]);
    let w0: [&[u64]; D] = std::array::from_fn(|j| &terms[j].1[..n]);
    let w1: [&[u64]; D] = std::array::from_fn(|j| &terms[j].2[..n]);
    for (c, (o0, o1)) in out0.iter_mut().zip(out1.iter_mut()).enumerate() {
        let (mut s0, mut s1) = (0u128, 0u128);
        for j in 0..D {
            let x = xs[j][c] as u128;
            s0 += x * w0[j][c] as u128;
            s1 += x * w1[j][c] as u128;
        }
        *o0 = m.redc(s0);
        *o1 = m.redc(s1);
    }
}

/// `(out0, out1)[c] = Σ_j x_j[c]·(w0_j[c], w1_j[c]) mod m`, for `terms` `(x_j, w0_j, w1_j)`
/// whose weights `w0_j`, `w1_j` are stored in Montgomery form (`w·2^64 mod m`, see
/// [`RnsPoly::to_montgomery`](crate::RnsPoly::to_montgomery)) and `x_j < m`: the two inner
/// products of key switching (a key's two components against the same digits) in one pass,
/// one Montgomery reduction per residue. All slices have the length of the outputs.
pub fn dot_product_pair_montgomery(
    terms: &[(&[u64], &[u64], &[u64])],
    m: &Modulus,
    out0: &mut [u64],
    out1: &mut [u64],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::ifma::dot_pair_montgomery64(terms, m, out0, out1) {
        return;
    }
    macro_rules! fixed_sizes {
        ($($d:literal)*) => {{
            let limit = m.redc_terms().min(MAX_PAIR_TERMS);
            match terms.len() {
                0 => {
                    out0.fill(0);
                    out1.fill(0);
                }
                $($d if $d <= limit => fixed_pair::<$d>(terms, m, out0, out1),)*
                _ => {
                    // Sums of up to `limit` terms, reduced and added.
                    let (head, tail) = terms.split_at(limit.min(terms.len()));
                    dot_product_pair_montgomery(head, m, out0, out1);
                    let mut rest0 = vec![0; out0.len()];
                    let mut rest1 = vec![0; out1.len()];
                    dot_product_pair_montgomery(tail, m, &mut rest0, &mut rest1);
                    for (o, r) in out0.iter_mut().zip(rest0).chain(out1.iter_mut().zip(rest1)) {
                        *o = m.add(*o, r);
                    }
                }
            }
        }};
    }
    fixed_sizes!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
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
            let n = 304;
            // Random residues, and the largest in the first coefficient: the widest sums.
            let limb = |rng: &mut ChaCha20Rng| -> Vec<u64> {
                std::iter::once(q - 1)
                    .chain((1..n).map(|_| rng.random_range(0..q)))
                    .collect()
            };
            let xs: Vec<Vec<u64>> = (0..40).map(|_| limb(&mut rng)).collect();
            let ws: Vec<Vec<u64>> = (0..40).map(|_| limb(&mut rng)).collect();
            let terms: Vec<(&[u64], &[u64])> =
                xs.iter().zip(&ws).map(|(x, w)| (&x[..], &w[..])).collect();
            // Every unrolled term count, and more than one lazy sum takes; by the IFMA kernel
            // (where it serves) and the portable one.
            for (count, m) in (0..=16)
                .chain([40])
                .flat_map(|c| [(c, m), (c, m.portable())])
            {
                let mut out = vec![1u64; n];
                dot_product(&terms[..count], &m, &mut out);
                // The same sums added to residues (the largest first).
                let base = limb(&mut rng);
                let mut added = base.clone();
                dot_product_add(&terms[..count], &m, &mut added);
                for (c, (&o, &a)) in out.iter().zip(&added).enumerate() {
                    let want = terms[..count].iter().fold(0u128, |a, (x, w)| {
                        (a + x[c] as u128 * w[c] as u128) % q as u128
                    });
                    assert_eq!(o as u128, want, "{count} terms mod {q}");
                    let want_added = (want + base[c] as u128) % q as u128;
                    assert_eq!(a as u128, want_added, "{count} terms added mod {q}");
                }
            }
        }
    }

    #[test]
    fn constant_products_match_u128_oracle() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for q in [(1u64 << 50) - 27, (1 << 40) - 87, (1 << 61) - 1] {
            let n = 304;
            let limb = |rng: &mut ChaCha20Rng| -> Vec<u64> {
                [q - 1, 0]
                    .into_iter()
                    .chain((2..n).map(|_| rng.random_range(0..q)))
                    .collect()
            };
            let (x, r) = (limb(&mut rng), limb(&mut rng));
            let m = Modulus::new(q).unwrap();
            for w in [q - 1, 1, rng.random_range(0..q)] {
                let h = rng.random_range(0..q);
                let mul = |a: u64| (a as u128 * w as u128 % q as u128) as u64;
                for (m, before) in [Before::Nothing, Before::Add(h), Before::Sub(&r)]
                    .into_iter()
                    .flat_map(|b| [(m, b), (m.portable(), b)])
                {
                    let mut got = x.clone();
                    mul_const_assign(&mut got, before, (w, m.shoup(w)), &m);
                    for (c, (&g, &a)) in got.iter().zip(&x).enumerate() {
                        let want = match before {
                            Before::Nothing => mul(a),
                            Before::Add(h) => mul(m.add(a, h)),
                            Before::Sub(r) => mul(m.sub(a, r[c])),
                        };
                        assert_eq!(g, want, "coefficient {c} mod {q}");
                    }
                }
            }
        }
    }

    #[test]
    fn montgomery_pair_matches_u128_oracle() {
        use crate::{primes, NttOrder, Prime, RnsPoly};
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let n = 64;
        let order = NttOrder::new(n).unwrap();
        // The widest prime takes the fewest terms per lazy sum (4 below 2^62), so 40 terms
        // exercise the split into parts.
        for bits in [50, 61, 62] {
            let q = primes::primes_below(bits, n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            let prime = [Prime::new(q, &order).unwrap()];
            let limbs = |rng: &mut ChaCha20Rng| -> Vec<Vec<u64>> {
                (0..40)
                    .map(|_| {
                        std::iter::once(q - 1)
                            .chain((1..n).map(|_| rng.random_range(0..q)))
                            .collect()
                    })
                    .collect()
            };
            let (xs, w0, w1) = (limbs(&mut rng), limbs(&mut rng), limbs(&mut rng));
            // The weights in Montgomery form (the round trip checked too).
            let mont = |w: &Vec<Vec<u64>>| -> Vec<Vec<u64>> {
                w.iter()
                    .map(|limb| {
                        let mut p = RnsPoly::from_data(n, limb.clone()).unwrap();
                        p.to_montgomery(&prime);
                        let mut back = p.clone();
                        back.from_montgomery(&prime);
                        assert_eq!(back.data(), &limb[..]);
                        p.data().to_vec()
                    })
                    .collect()
            };
            let (m0, m1) = (mont(&w0), mont(&w1));
            for (count, m) in (0..=17)
                .chain([40])
                .flat_map(|c| [(c, m), (c, m.portable())])
            {
                let terms: Vec<(&[u64], &[u64], &[u64])> = (0..count)
                    .map(|j| (&xs[j][..], &m0[j][..], &m1[j][..]))
                    .collect();
                let (mut o0, mut o1) = (vec![1u64; n], vec![2u64; n]);
                dot_product_pair_montgomery(&terms, &m, &mut o0, &mut o1);
                for c in 0..n {
                    for (o, w) in [(&o0, &w0), (&o1, &w1)] {
                        let want = (0..count).fold(0u128, |a, j| {
                            (a + xs[j][c] as u128 * w[j][c] as u128) % q as u128
                        });
                        assert_eq!(o[c] as u128, want, "{count} terms mod {q}");
                    }
                }
            }
        }
    }
}
