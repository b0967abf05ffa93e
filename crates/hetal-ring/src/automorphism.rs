//! Galois automorphisms `σ_g: a(X) -> a(X^g)` of `Z_Q[X]/(X^N + 1)`, for odd `g`.
//!
//! On coefficients, `X^i` goes to `±X^{i·g mod N}` (the sign flips when `i·g mod 2N ≥ N`).
//! In NTT form, `σ_g(a)` evaluated at `ψ^e` is `a(ψ^{e·g})`, so the map is a permutation of
//! the evaluations, the same for every prime ([`NttOrder`]). CKKS rotates slots with
//! `g = 5^k mod 2N` and conjugates with `g = 2N - 1`.

use rayon::prelude::*;

use crate::{ntt::NttOrder, Prime, RnsPoly};

/// `base^e mod 2n`: Galois elements are powers (5^k for rotations) in `(Z/2nZ)^*`.
pub fn galois_power(base: u64, mut e: u64, n: usize) -> u64 {
    let two_n = 2 * n as u64;
    let (mut acc, mut b) = (1 % two_n, base % two_n);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * b % two_n;
        }
        b = b * b % two_n;
        e >>= 1;
    }
    acc
}

/// The inverse of the Galois element `g` modulo `2n` (`σ_g^{-1} = σ_{g^{-1}}`), or `None` for
/// an even `g`. `(Z/2nZ)^*` has exponent `n/2` (`n ≥ 4`), so `g^{-1} = g^{n/2 − 1}`.
pub fn galois_inverse(g: u64, n: usize) -> Option<u64> {
    (g % 2 == 1).then(|| galois_power(g, (n / 2).saturating_sub(1) as u64, n))
}

/// A precomputed Galois automorphism.
#[derive(Clone, Debug)]
pub struct Automorphism {
    g: u64,
    n: usize,
    /// In NTT form, output index `j` takes input index `perm[j]`.
    perm: Vec<u32>,
    /// A block size `B` such that each aligned block of `B` outputs reads one aligned block
    /// of `B` inputs (NTT outputs in bit-reversed order have this structure): the permutation
    /// then streams its input block by block and gathers from a copy in L1, instead of
    /// gathering across a limb that the caches do not hold. `N` where the structure is absent.
    block: usize,
}

/// The block size tried for [`Automorphism`]'s permutation (8 KiB of words).
const PERMUTE_BLOCK: usize = 1024;

impl Automorphism {
    /// Precomputes `σ_g` for odd `g` (taken mod 2N). Returns `None` for even `g`.
    pub fn new(g: u64, order: &NttOrder) -> Option<Self> {
        let n = order.n();
        let g = g % (2 * n as u64);
        if g % 2 == 0 {
            return None;
        }
        let perm: Vec<u32> = (0..n)
            .map(|j| order.index_of(order.exponent(j) as u64 * g) as u32)
            .collect();
        let block = PERMUTE_BLOCK.min(n);
        let blocked = perm.chunks_exact(block).all(|c| {
            let start = c[0] as usize / block;
            c.iter().all(|&p| p as usize / block == start)
        });
        let block = if blocked { block } else { n };
        Some(Self { g, n, perm, block })
    }

    /// `o[j] = x[perm[j]]`, block by block: each input block is copied into `t` (streamed
    /// in order), then gathered from there.
    #[inline(always)]
    fn permute_by_blocks(&self, x: &[u64], o: &mut [u64]) {
        let b = self.block;
        let mut t = vec![0u64; b];
        for (o, perm) in o.chunks_exact_mut(b).zip(self.perm.chunks_exact(b)) {
            let start = perm[0] as usize / b * b;
            t.copy_from_slice(&x[start..start + b]);
            for (o, &p) in o.iter_mut().zip(perm) {
                *o = t[p as usize - start];
            }
        }
    }

    /// The Galois element `g`.
    pub fn galois_element(&self) -> u64 {
        self.g
    }

    /// The NTT-form permutation: output index `j` takes input index `permutation()[j]`.
    pub fn permutation(&self) -> &[u32] {
        &self.perm
    }

    /// `out = σ_g(a)` for `a` in NTT form (any number of limbs, any primes).
    pub fn apply_ntt(&self, a: &RnsPoly, out: &mut RnsPoly) {
        debug_assert_eq!(a.num_limbs(), out.num_limbs());
        out.par_limbs_mut().zip(a.par_limbs()).for_each(|(o, x)| {
            crate::kernels::vectorized(
                #[inline(always)]
                || self.permute_by_blocks(x, o),
            );
        });
    }

    /// `out = σ_g(x)` for one limb `x` in NTT form that the caches hold (read straight
    /// through the permutation, without [`apply_ntt`](Self::apply_ntt)'s staging).
    pub fn permute_limb(&self, x: &[u64], out: &mut [u64]) {
        crate::kernels::vectorized(
            #[inline(always)]
            || {
                for (o, &p) in out.iter_mut().zip(&self.perm) {
                    *o = x[p as usize];
                }
            },
        );
    }

    /// `out = σ_g(a)` for `a` in coefficient form over `primes`.
    pub fn apply_coeff(&self, a: &RnsPoly, out: &mut RnsPoly, primes: &[Prime]) {
        let (n, two_n) = (self.n as u64, 2 * self.n as u64);
        out.par_limbs_mut()
            .zip(a.par_limbs())
            .zip(primes)
            .for_each(|((o, x), p)| {
                let m = p.modulus();
                for (i, &c) in x.iter().enumerate() {
                    let k = (i as u64 * self.g) % two_n;
                    if k < n {
                        o[k as usize] = c;
                    } else {
                        o[(k - n) as usize] = m.neg(c);
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Every form of `σ_g` against its definition on integer coefficients, at degree `n`.
    fn check_against_definition(n: usize) {
        let order = NttOrder::new(n).unwrap();
        let primes: Vec<Prime> = crate::primes::primes_below(45, n, 2, &[])
            .unwrap()
            .into_iter()
            .map(|q| Prime::new(q, &order).unwrap())
            .collect();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let coeffs: Vec<i64> = (0..n).map(|_| rng.random_range(-1000..1000)).collect();
        for g in [5u64, 25, 125, 2 * n as u64 - 1, 3] {
            // Definition: a(X^g) computed on integer coefficients, reducing X^N = -1.
            let mut want = vec![0i64; n];
            for (i, &c) in coeffs.iter().enumerate() {
                let k = (i as u64 * g) % (2 * n as u64);
                if k < n as u64 {
                    want[k as usize] += c;
                } else {
                    want[k as usize - n] -= c;
                }
            }
            let want = RnsPoly::from_signed(&want, &primes);
            let a = RnsPoly::from_signed(&coeffs, &primes);
            let auto = Automorphism::new(g, &order).unwrap();
            if g == 5 {
                assert_eq!(auto.block, PERMUTE_BLOCK.min(n), "block structure, n = {n}");
            }
            let mut out = RnsPoly::zero(n, 2);
            auto.apply_coeff(&a, &mut out, &primes);
            assert_eq!(out, want, "coefficient form, g = {g}");
            let mut a_ntt = a.clone();
            a_ntt.ntt(&primes);
            auto.apply_ntt(&a_ntt, &mut out);
            out.intt(&primes);
            assert_eq!(out, want, "NTT form, g = {g}");
            let mut limb = vec![0; n];
            auto.permute_limb(a_ntt.limb(1), &mut limb);
            primes[1].inverse(&mut limb);
            assert_eq!(limb, want.limb(1), "one limb in NTT form, g = {g}");
        }
    }

    #[test]
    fn ntt_and_coefficient_forms_match_the_definition() {
        // At 2^12 the NTT-form permutation goes block by block; at 64, in one block.
        for n in [64, 1 << 12] {
            check_against_definition(n);
        }
        let n = 64;
        let order = NttOrder::new(n).unwrap();
        assert!(Automorphism::new(4, &order).is_none());
        for g in [5u64, 25, 2 * n as u64 - 1, 3, 77] {
            let inv = galois_inverse(g, n).unwrap();
            assert_eq!(g * inv % (2 * n as u64), 1, "g = {g}");
        }
        assert_eq!(galois_inverse(6, n), None);
        assert_eq!(galois_power(5, 3, n), 125);
    }
}
