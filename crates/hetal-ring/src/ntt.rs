//! A prime with its negacyclic NTT, and the order in which NTT outputs are laid out.
//!
//! The transform itself is the `tfhe-ntt` crate's (`prime64::Plan`), whose forward output lists
//! the evaluations `a(ψ^e)` at the odd powers `e` of a primitive 2N-th root `ψ` in bit-reversed
//! order. [`NttOrder`] records which exponent `e_j` sits at each index `j`; it is measured, not
//! assumed, and checked for every prime, so that automorphisms and monomial products can be
//! applied directly in NTT form.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Modulus, RingError};
use tfhe_ntt::prime64::Plan;

/// For each NTT output index `j`, the odd exponent `e_j` with output `j` = `a(ψ^{e_j})`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NttOrder {
    n: usize,
    exponent: Vec<u32>,
    /// `index_of[e / 2]` is the output index holding `a(ψ^e)`, for odd `e < 2N`.
    index_of: Vec<u32>,
}

impl NttOrder {
    /// Measures the output order of `tfhe-ntt` for degree `n`.
    ///
    /// # Errors
    /// [`RingError::BadDegree`] if `n` is not a power of two in `[16, 2^17]`.
    pub fn new(n: usize) -> Result<Arc<Self>, RingError> {
        if !n.is_power_of_two() || !(16..=1 << 17).contains(&n) {
            return Err(RingError::BadDegree { n });
        }
        let q = crate::primes::primes_below(50, n, 1, &[])?[0];
        let m = Modulus::new(q)?;
        let plan = Plan::try_new(n, q).ok_or(RingError::NotNttFriendly { q, n })?;
        let mut x = vec![0u64; n];
        x[1] = 1;
        plan.fwd(&mut x); // x[j] = ψ^{e_j}; call ψ := x[0], so e_0 = 1.
        let psi = x[0];
        let mut log = HashMap::with_capacity(n);
        let (mut pow, psi2) = (psi, m.mul(psi, psi));
        for e in (1..2 * n as u32).step_by(2) {
            log.insert(pow, e);
            pow = m.mul(pow, psi2);
        }
        let mut exponent = Vec::with_capacity(n);
        for v in &x {
            exponent.push(*log.get(v).ok_or(RingError::NotNttFriendly { q, n })?);
        }
        let mut index_of = vec![0u32; n];
        for (j, &e) in exponent.iter().enumerate() {
            index_of[(e / 2) as usize] = j as u32;
        }
        Ok(Arc::new(Self {
            n,
            exponent,
            index_of,
        }))
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The odd exponent `e_j` of output index `j`.
    #[inline]
    pub fn exponent(&self, j: usize) -> u32 {
        self.exponent[j]
    }

    /// Whether the monomial `X^{N/2}` takes the value `+ψ^{N/2}` (rather than `-ψ^{N/2}`) at
    /// output index `j`: `(ψ^{e_j})^{N/2} = (ψ^{N/2})^{e_j}` and `(ψ^{N/2})^2 = -1`.
    #[inline]
    pub fn half_monomial_is_positive(&self, j: usize) -> bool {
        self.exponent[j] % 4 == 1
    }

    /// The output index that holds `a(ψ^e)`, for odd `e` (taken mod 2N).
    #[inline]
    pub fn index_of(&self, e: u64) -> usize {
        let e = e % (2 * self.n as u64);
        self.index_of[(e / 2) as usize] as usize
    }
}

/// A prime modulus with its negacyclic NTT plan of degree N.
#[derive(Clone, Debug)]
pub struct Prime {
    modulus: Modulus,
    plan: Plan,
    /// `N^{-1} mod q` and its Shoup companion, to normalise the inverse transform.
    n_inv: (u64, u64),
    /// `ψ^{N/2}`, a square root of -1 mod q, for monomial products in NTT form.
    sqrt_minus_one: u64,
}

impl Prime {
    /// Builds the NTT plan for `q` at the degree of `order`, checking that its outputs follow
    /// `order` (the same exponent at every index, for this prime's own root `ψ`).
    ///
    /// # Errors
    /// [`RingError::BadModulus`] or [`RingError::NotNttFriendly`].
    pub fn new(q: u64, order: &NttOrder) -> Result<Self, RingError> {
        let n = order.n();
        let modulus = Modulus::new(q)?;
        if q % (2 * n as u64) != 1 {
            return Err(RingError::NotNttFriendly { q, n });
        }
        let plan = Plan::try_new(n, q).ok_or(RingError::NotNttFriendly { q, n })?;
        let mut x = vec![0u64; n];
        x[1] = 1;
        plan.fwd(&mut x);
        let psi = x[0];
        let mut pows = Vec::with_capacity(2 * n);
        let mut p = 1u64;
        for _ in 0..2 * n {
            pows.push(p);
            p = modulus.mul(p, psi);
        }
        if p != 1
            || pows[n] != q - 1
            || x.iter()
                .enumerate()
                .any(|(j, &v)| pows[order.exponent(j) as usize] != v)
        {
            return Err(RingError::NotNttFriendly { q, n });
        }
        let inv = modulus.inv(n as u64).ok_or(RingError::BadModulus { q })?;
        Ok(Self {
            modulus,
            plan,
            n_inv: (inv, modulus.shoup(inv)),
            sqrt_minus_one: pows[n / 2],
        })
    }

    /// The modulus.
    #[inline(always)]
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// The prime's value.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.modulus.value()
    }

    /// `ψ^{N/2}`: the square root of -1 that the monomial `X^{N/2}` takes at `ψ`.
    pub fn sqrt_minus_one(&self) -> u64 {
        self.sqrt_minus_one
    }

    /// Forward negacyclic NTT in place (coefficients to evaluations, in [`NttOrder`]).
    #[inline]
    pub fn forward(&self, a: &mut [u64]) {
        self.plan.fwd(a);
    }

    /// Inverse negacyclic NTT in place, normalised (evaluations back to coefficients).
    #[inline]
    pub fn inverse(&self, a: &mut [u64]) {
        self.plan.inv(a);
        let (w, ws) = self.n_inv;
        for x in a.iter_mut() {
            *x = self.modulus.mul_shoup(*x, w, ws);
        }
    }

    /// Inverse negacyclic NTT in place without the normalisation: leaves `N·a` (reduced), for
    /// callers that multiply by a constant next and fold [`n_inv`](Self::n_inv) into it (the
    /// normalising pass is over a third of the inverse transform's time).
    #[inline]
    pub fn inverse_unnormalized(&self, a: &mut [u64]) {
        self.plan.inv(a);
    }

    /// `N^{-1} mod q`.
    #[inline]
    pub fn n_inv(&self) -> u64 {
        self.n_inv.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Schoolbook product in Z_q[X]/(X^N + 1): the slow, independent oracle.
    fn negacyclic_schoolbook(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let p = m.mul(a[i], b[j]);
                if i + j < n {
                    c[i + j] = m.add(c[i + j], p);
                } else {
                    c[i + j - n] = m.sub(c[i + j - n], p);
                }
            }
        }
        c
    }

    #[test]
    fn ntt_product_matches_schoolbook() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for log_n in [4, 6, 9] {
            let n = 1 << log_n;
            let order = NttOrder::new(n).unwrap();
            for bits in [30, 45, 50, 61] {
                let q = crate::primes::primes_below(bits, n, 1, &[]).unwrap()[0];
                let p = Prime::new(q, &order).unwrap();
                let m = *p.modulus();
                let a: Vec<u64> = (0..n).map(|_| rng.random_range(0..q)).collect();
                let b: Vec<u64> = (0..n).map(|_| rng.random_range(0..q)).collect();
                let want = negacyclic_schoolbook(&a, &b, &m);
                let (mut fa, mut fb) = (a.clone(), b.clone());
                p.forward(&mut fa);
                p.forward(&mut fb);
                let mut c: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| m.mul(x, y)).collect();
                p.inverse(&mut c);
                assert_eq!(c, want, "n = {n}, q = {q}");
                p.inverse(&mut fa);
                assert_eq!(fa, a);
            }
        }
    }

    #[test]
    fn ntt_outputs_are_evaluations_at_recorded_exponents() {
        let n = 64;
        let order = NttOrder::new(n).unwrap();
        let q = crate::primes::primes_below(40, n, 1, &[]).unwrap()[0];
        let p = Prime::new(q, &order).unwrap();
        let m = *p.modulus();
        let mut x = vec![0u64; n];
        x[1] = 1;
        p.forward(&mut x);
        let psi = x[0];
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let a: Vec<u64> = (0..n).map(|_| rng.random_range(0..q)).collect();
        let mut fa = a.clone();
        p.forward(&mut fa);
        for (j, &v) in fa.iter().enumerate() {
            let point = m.pow(psi, order.exponent(j) as u64);
            let direct = a
                .iter()
                .rev()
                .fold(0, |acc, &c| m.add(m.mul(acc, point), c));
            assert_eq!(v, direct);
            assert_eq!(order.index_of(order.exponent(j) as u64), j);
        }
    }
}
