//! [`RnsPoly`]: a polynomial of `Z_Q[X]/(X^N + 1)` stored as one residue vector per prime.
//!
//! The polynomial does not know its primes or whether it is in NTT form: every operation takes
//! the slice of [`Prime`]s its limbs live on, and the caller keeps track of the domain
//! (coefficient-wise operations are valid in both). Limb `i` lives modulo `primes[i]`.

use rayon::prelude::*;

use crate::kernels::{mul_const_assign, vectorized, Before};
use crate::Prime;

/// A polynomial in RNS form: `limbs` residue vectors of length `n`, stored contiguously.
///
/// Its storage comes from, and goes back to when dropped, a bounded pool of buffers (the
/// `scratch` module): at N = 2^16 a polynomial is megabytes, and fresh allocations of that
/// size are zeroed by the allocator or page-faulted in by the kernel, which costs as much as
/// the arithmetic of a key switch's cheaper steps.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct RnsPoly {
    n: usize,
    data: Vec<u64>,
}

impl Clone for RnsPoly {
    fn clone(&self) -> Self {
        let mut c = Self::scratch(self.n, self.num_limbs());
        c.data.copy_from_slice(&self.data);
        c
    }
}

impl Drop for RnsPoly {
    fn drop(&mut self) {
        crate::scratch::give(std::mem::take(&mut self.data));
    }
}

impl RnsPoly {
    /// The zero polynomial with `limbs` residues of degree `n`.
    pub fn zero(n: usize, limbs: usize) -> Self {
        let mut p = Self::scratch(n, limbs);
        p.data.fill(0);
        p
    }

    /// A polynomial of `limbs` residues of degree `n` with **arbitrary values** (those of a
    /// dropped polynomial): for results whose every residue the caller writes before reading.
    pub fn scratch(n: usize, limbs: usize) -> Self {
        Self {
            n,
            data: crate::scratch::take(n * limbs, true),
        }
    }

    /// As [`RnsPoly::scratch`], for a temporary dropped within the operation that makes it:
    /// its storage may be any recycled buffer large enough (spare capacity does not matter).
    pub fn temporary(n: usize, limbs: usize) -> Self {
        Self {
            n,
            data: crate::scratch::take(n * limbs, false),
        }
    }

    /// Wraps residues laid out limb after limb; `data.len()` must be a multiple of `n`.
    pub fn from_data(n: usize, data: Vec<u64>) -> Option<Self> {
        (n > 0 && data.len() % n == 0).then_some(Self { n, data })
    }

    /// Encodes small signed coefficients (|c| < every prime) in every limb.
    pub fn from_signed(coeffs: &[i64], primes: &[Prime]) -> Self {
        let n = coeffs.len();
        let mut p = Self::zero(n, primes.len());
        p.limbs_mut().zip(primes).for_each(|(limb, q)| {
            for (x, &c) in limb.iter_mut().zip(coeffs) {
                *x = q.modulus().reduce_i64(c);
            }
        });
        p
    }

    /// The ring degree.
    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }

    /// The number of residues (primes) held.
    #[inline]
    pub fn num_limbs(&self) -> usize {
        self.data.len().checked_div(self.n).unwrap_or(0)
    }

    /// All residues, limb after limb.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// All residues, limb after limb, mutably.
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Limb `i` (residues modulo the i-th prime).
    #[inline]
    pub fn limb(&self, i: usize) -> &[u64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// Limb `i`, mutably.
    #[inline]
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        &mut self.data[i * self.n..(i + 1) * self.n]
    }

    /// Iterates over the limbs.
    pub fn limbs(&self) -> std::slice::ChunksExact<'_, u64> {
        self.data.chunks_exact(self.n)
    }

    /// Iterates over the limbs, mutably.
    pub fn limbs_mut(&mut self) -> std::slice::ChunksExactMut<'_, u64> {
        self.data.chunks_exact_mut(self.n)
    }

    /// Parallel iterator over the limbs, mutably.
    pub fn par_limbs_mut(&mut self) -> rayon::slice::ChunksExactMut<'_, u64> {
        self.data.par_chunks_exact_mut(self.n)
    }

    /// Parallel iterator over the limbs.
    pub fn par_limbs(&self) -> rayon::slice::ChunksExact<'_, u64> {
        self.data.par_chunks_exact(self.n)
    }

    /// Keeps only the first `limbs` residues (dropping the top primes).
    pub fn truncate(&mut self, limbs: usize) {
        self.data.truncate(limbs * self.n);
    }

    /// Appends the limbs of `other` after those of `self`, growing the storage to the exact
    /// size (no amortized doubling: at N = 2^16 a limb is 512 KiB, and spare capacity over a
    /// key set or a bootstrapping circuit would be gigabytes).
    pub fn extend_from(&mut self, other: &RnsPoly) {
        debug_assert_eq!(self.n, other.n);
        self.data.reserve_exact(other.data.len());
        self.data.extend_from_slice(&other.data);
    }

    /// Splits off the limbs from index `at` on into a new polynomial.
    pub fn split_off(&mut self, at: usize) -> RnsPoly {
        let mut tail = Self::scratch(self.n, self.num_limbs() - at);
        tail.data.copy_from_slice(&self.data[at * self.n..]);
        self.truncate(at);
        tail
    }

    /// A copy of limbs `range`.
    pub fn sub_limbs(&self, range: std::ops::Range<usize>) -> RnsPoly {
        let mut out = Self::scratch(self.n, range.len());
        out.data
            .copy_from_slice(&self.data[range.start * self.n..range.end * self.n]);
        out
    }

    /// Forward NTT of every limb.
    pub fn ntt(&mut self, primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut()
            .zip(primes)
            .for_each(|(l, p)| p.forward(l));
    }

    /// Inverse NTT of every limb.
    pub fn intt(&mut self, primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut()
            .zip(primes)
            .for_each(|(l, p)| p.inverse(l));
    }

    /// `self += other`.
    pub fn add_assign(&mut self, other: &RnsPoly, primes: &[Prime]) {
        self.zip_apply(other, primes, |m, a, b| m.add(a, b));
    }

    /// `self -= other`.
    pub fn sub_assign(&mut self, other: &RnsPoly, primes: &[Prime]) {
        self.zip_apply(other, primes, |m, a, b| m.sub(a, b));
    }

    /// `self = other - self`.
    pub fn rsub_assign(&mut self, other: &RnsPoly, primes: &[Prime]) {
        self.zip_apply(other, primes, |m, a, b| m.sub(b, a));
    }

    /// `self = -self`.
    pub fn neg_assign(&mut self, primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut().zip(primes).for_each(|(l, p)| {
            let m = p.modulus();
            vectorized(
                #[inline(always)]
                || l.iter_mut().for_each(|x| *x = m.neg(*x)),
            );
        });
    }

    /// Pointwise `self *= other` (a ring product when both are in NTT form).
    pub fn mul_assign(&mut self, other: &RnsPoly, primes: &[Prime]) {
        self.zip_apply(other, primes, |m, a, b| m.mul(a, b));
    }

    /// Pointwise `self += a * b`.
    pub fn mul_add_assign(&mut self, a: &RnsPoly, b: &RnsPoly, primes: &[Prime]) {
        self.check(primes);
        debug_assert!(a.num_limbs() >= primes.len() && b.num_limbs() >= primes.len());
        self.par_limbs_mut()
            .zip(a.par_limbs())
            .zip(b.par_limbs())
            .zip(primes)
            .for_each(|(((s, x), y), p)| {
                let m = p.modulus();
                for ((s, &x), &y) in s.iter_mut().zip(x).zip(y) {
                    *s = m.reduce_u128(*s as u128 + x as u128 * y as u128);
                }
            });
    }

    /// Puts every residue in Montgomery form, `x·2^64 mod q` (one Shoup product each): the
    /// form in which a constant operand of [`kernels::dot_product_pair_montgomery`] is stored.
    ///
    /// [`kernels::dot_product_pair_montgomery`]: crate::kernels::dot_product_pair_montgomery
    pub fn to_montgomery(&mut self, primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut().zip(primes).for_each(|(l, p)| {
            let m = p.modulus();
            let r = m.to_montgomery(1);
            let rs = m.shoup(r);
            l.iter_mut().for_each(|x| *x = m.mul_shoup(*x, r, rs));
        });
    }

    /// Undoes [`RnsPoly::to_montgomery`]: `x·2^-64 mod q` for every residue.
    pub fn from_montgomery(&mut self, primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut().zip(primes).for_each(|(l, p)| {
            let m = p.modulus();
            l.iter_mut().for_each(|x| *x = m.redc(*x as u128));
        });
    }

    /// Multiplies limb `i` by the constant `c[i]` (already reduced mod prime `i`).
    pub fn mul_scalar_assign(&mut self, c: &[u64], primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut()
            .zip(primes)
            .zip(c)
            .for_each(|((l, p), &c)| {
                let m = p.modulus();
                mul_const_assign(l, Before::Nothing, (c, m.shoup(c)), m);
            });
    }

    /// Adds the constant `c[i]` to every residue of limb `i`: adds the constant polynomial in
    /// NTT form, or `c` to every coefficient in coefficient form.
    pub fn add_scalar_assign(&mut self, c: &[u64], primes: &[Prime]) {
        self.check(primes);
        self.par_limbs_mut()
            .zip(primes)
            .zip(c)
            .for_each(|((l, p), &c)| {
                let m = p.modulus();
                l.iter_mut().for_each(|x| *x = m.add(*x, c));
            });
    }

    fn zip_apply(
        &mut self,
        other: &RnsPoly,
        primes: &[Prime],
        f: impl Fn(&crate::Modulus, u64, u64) -> u64 + Sync,
    ) {
        self.check(primes);
        debug_assert!(other.num_limbs() >= primes.len() && other.n == self.n);
        self.par_limbs_mut()
            .zip(other.par_limbs())
            .zip(primes)
            .for_each(|((a, b), p)| {
                let m = p.modulus();
                vectorized(
                    #[inline(always)]
                    || a.iter_mut().zip(b).for_each(|(x, &y)| *x = f(m, *x, y)),
                );
            });
    }

    #[inline]
    fn check(&self, primes: &[Prime]) {
        debug_assert_eq!(
            self.num_limbs(),
            primes.len(),
            "limb count does not match the basis"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntt::NttOrder;

    #[test]
    fn ring_ops_agree_in_both_domains() {
        let n = 32;
        let order = NttOrder::new(n).unwrap();
        let primes: Vec<Prime> = crate::primes::primes_below(40, n, 3, &[])
            .unwrap()
            .into_iter()
            .map(|q| Prime::new(q, &order).unwrap())
            .collect();
        let a: Vec<i64> = (0..n as i64).map(|i| i * 7 - 100).collect();
        let b: Vec<i64> = (0..n as i64).map(|i| 3 - i).collect();
        // Schoolbook product over the integers, then reduced: an independent oracle.
        let mut want = vec![0i64; n];
        for i in 0..n {
            for j in 0..n {
                let p = a[i] * b[j];
                if i + j < n {
                    want[i + j] += p;
                } else {
                    want[i + j - n] -= p;
                }
            }
        }
        let (mut pa, mut pb) = (
            RnsPoly::from_signed(&a, &primes),
            RnsPoly::from_signed(&b, &primes),
        );
        pa.ntt(&primes);
        pb.ntt(&primes);
        let mut acc = RnsPoly::zero(n, 3);
        acc.mul_add_assign(&pa, &pb, &primes);
        pa.mul_assign(&pb, &primes);
        assert_eq!(acc, pa);
        pa.intt(&primes);
        assert_eq!(pa, RnsPoly::from_signed(&want, &primes));
        let mut s = RnsPoly::from_signed(&a, &primes);
        s.sub_assign(&RnsPoly::from_signed(&b, &primes), &primes);
        s.neg_assign(&primes);
        let diff: Vec<i64> = a.iter().zip(&b).map(|(x, y)| y - x).collect();
        assert_eq!(s, RnsPoly::from_signed(&diff, &primes));
    }
}
