//! One word-sized prime modulus and its arithmetic.
//!
//! Barrett reduction handles products of two variables (and lazily accumulated sums of them);
//! Shoup multiplication handles a variable times a precomputed constant. Both need `q < 2^62`
//! so that intermediate values stay in range; the CKKS layer uses primes of at most 61 bits.
//! Montgomery reduction is the cheap way to reduce a lazy sum of products below `q·2^64` when
//! one factor of each product is a constant that can be stored times `2^64` (two multiplies
//! against Barrett's five).

use crate::RingError;

/// Whether this CPU has AVX-512 IFMA.
fn ifma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::ifma::token().is_some();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// How many products of `x < 2^bx` by `w < 2^bw` (both at most 52 bits) one lazy sum of the
/// IFMA kernels may hold: every product adds below `2^(bx+bw−52)` (plus a carry) to the high
/// accumulator, which must stay below 2^52 for its Barrett estimate, and below 2^52 to the low
/// one, which must stay below 2^64.
pub(crate) fn ifma_terms(bx: u32, bw: u32) -> usize {
    let per_term = (1u64 << (bx + bw).saturating_sub(52)) + 1;
    (((1u64 << 52) - 1) / per_term).min(4095) as usize
}

/// A prime modulus `q < 2^62` with precomputed Barrett constants. Two moduli are equal when
/// their values are, whichever kernels serve them.
#[derive(Clone, Copy, Debug)]
pub struct Modulus {
    q: u64,
    /// floor(2^128 / q), split in two words (low, high).
    ratio: (u64, u64),
    /// `q^{-1} mod 2^64`, for Montgomery reduction.
    q_inv_word: u64,
    /// Whether the AVX-512 IFMA kernels serve this modulus: `q < 2^50` on a CPU that has them.
    ifma: bool,
}

impl PartialEq for Modulus {
    fn eq(&self, other: &Self) -> bool {
        self.q == other.q
    }
}

impl Eq for Modulus {}

impl Modulus {
    /// Builds the modulus, checking that `q` is a prime in `[3, 2^62)`.
    ///
    /// # Errors
    /// [`RingError::BadModulus`] otherwise.
    pub fn new(q: u64) -> Result<Self, RingError> {
        if !(3..1 << 62).contains(&q) || !crate::primes::is_prime(q) {
            return Err(RingError::BadModulus { q });
        }
        // floor((2^128 - 1) / q) == floor(2^128 / q) for odd q.
        let r = u128::MAX / q as u128;
        // Newton's iteration for the inverse mod 2^64 doubles the correct low bits each step,
        // from the 3 that `q` itself gives (q·q ≡ 1 mod 8 for odd q).
        let q_inv_word = (0..5).fold(q, |x, _| {
            x.wrapping_mul(2u64.wrapping_sub(q.wrapping_mul(x)))
        });
        Ok(Self {
            q,
            ratio: (r as u64, (r >> 64) as u64),
            q_inv_word,
            ifma: q < 1 << 50 && ifma_available(),
        })
    }

    /// The same modulus, served by the portable kernels only: to compare the two paths.
    pub fn portable(self) -> Self {
        Self {
            ifma: false,
            ..self
        }
    }

    /// Whether the AVX-512 IFMA kernels serve this modulus (`q < 2^50` and a CPU that has
    /// them); the results are the same either way.
    #[inline(always)]
    pub fn uses_ifma(&self) -> bool {
        self.ifma
    }

    /// `q^{-1} mod 2^64`.
    #[inline(always)]
    pub(crate) fn inv_word(&self) -> u64 {
        self.q_inv_word
    }

    /// `floor(2^(51+b) / q)` for `q` of `b ≤ 50` bits, in `[2^51, 2^52)`: the Barrett ratio
    /// shifted down (`floor(floor(x/q)/2^s) = floor(x/(q·2^s))`), no division.
    #[inline(always)]
    pub(crate) fn ratio52(&self) -> u64 {
        let ratio = (u128::from(self.ratio.1) << 64) | u128::from(self.ratio.0);
        (ratio >> (77 - self.bits())) as u64
    }

    /// The modulus value.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.q
    }

    /// Number of bits of `q`.
    pub fn bits(&self) -> u32 {
        64 - self.q.leading_zeros()
    }

    /// `a + b mod q` for `a, b < q`.
    ///
    /// Branch-free (residues are random, so a branch would mispredict half the time): of `s`
    /// and `s - q` (wrapping), the smaller is the reduced sum.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        s.min(s.wrapping_sub(self.q))
    }

    /// `a - b mod q` for `a, b < q`, branch-free like [`Modulus::add`].
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.q))
    }

    /// `-a mod q` for `a < q`.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.q - a
        }
    }

    /// Reduces any 128-bit value mod q (Barrett with the 128-bit ratio).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let (x0, x1) = (x as u64, (x >> 64) as u64);
        let (r0, r1) = self.ratio;
        // High 128 bits of the 256-bit product x * ratio, up to the dropped low carries: the
        // estimate of floor(x / q) is then short by at most 2, fixed by the subtractions below.
        let carry = ((x0 as u128 * r0 as u128) >> 64) as u64;
        let mid1 = x0 as u128 * r1 as u128 + carry as u128;
        let mid2 = x1 as u128 * r0 as u128 + (mid1 as u64) as u128;
        let quot = (x1 as u128 * r1 as u128)
            .wrapping_add(mid1 >> 64)
            .wrapping_add(mid2 >> 64) as u64;
        let r = x0.wrapping_sub(quot.wrapping_mul(self.q));
        // x - quot*q < 3q < 2^64 for q < 2^62.
        let r = r.min(r.wrapping_sub(self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// `w · 2^64 mod q`: the Montgomery form of a constant `w`, for [`Modulus::redc`].
    pub fn to_montgomery(&self, w: u64) -> u64 {
        self.shl_mod(w, 64)
    }

    /// `w · 2^bits mod q`, for `bits ≤ 64`.
    pub(crate) fn shl_mod(&self, w: u64, bits: u32) -> u64 {
        (((w as u128) << bits) % self.q as u128) as u64
    }

    /// How many products of two residues a lazy sum may hold before [`Modulus::redc`]: the
    /// largest `t` with `t·q·(q − 1) < q·2^64`, i.e. `t·q < 2^64` (at least 4, as `q < 2^62`).
    pub fn redc_terms(&self) -> usize {
        (u64::MAX / self.q) as usize
    }

    /// `x · 2^-64 mod q` in `[0, q)`, for `x < q · 2^64` (Montgomery reduction): a sum of
    /// products `Σ a_i · to_montgomery(w_i)` reduces to `Σ a_i · w_i mod q`.
    #[inline(always)]
    pub fn redc(&self, x: u128) -> u64 {
        let (lo, hi) = (x as u64, (x >> 64) as u64);
        // m·q ≡ x (mod 2^64), so x − m·q is an exact multiple of 2^64 and its high word is
        // hi − high(m·q), in (−q, q) because hi < q.
        let m = lo.wrapping_mul(self.q_inv_word);
        let mq_hi = ((m as u128 * self.q as u128) >> 64) as u64;
        let t = hi.wrapping_sub(mq_hi);
        t.min(t.wrapping_add(self.q))
    }

    /// Reduces a 64-bit value mod q.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        self.reduce_u128(x as u128)
    }

    /// Reduces a signed value mod q.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        if x < 0 {
            self.neg(r)
        } else {
            r
        }
    }

    /// Reduces a signed 128-bit value mod q.
    #[inline(always)]
    pub fn reduce_i128(&self, x: i128) -> u64 {
        let r = self.reduce_u128(x.unsigned_abs());
        if x < 0 {
            self.neg(r)
        } else {
            r
        }
    }

    /// `a * b mod q` (Barrett), for any `a, b < 2^64`.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// The Shoup companion `floor(w * 2^64 / q)` of a constant `w < q`.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// `a * w mod q` with `w_shoup = self.shoup(w)`, for `a < 2^64`, `w < q`; result in `[0, 2q)`.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let quot = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w).wrapping_sub(quot.wrapping_mul(self.q))
    }

    /// `a * w mod q` with `w_shoup = self.shoup(w)`; result in `[0, q)`.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        r.min(r.wrapping_sub(self.q))
    }

    /// `a^e mod q`.
    pub fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1 % self.q;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// The inverse of `a` mod q, or `None` when `a ≡ 0`.
    pub fn inv(&self, a: u64) -> Option<u64> {
        let a = self.reduce(a);
        (a != 0).then(|| self.pow(a, self.q - 2))
    }

    /// Maps `x mod q` to its centred representative in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, x: u64) -> i64 {
        if x > self.q / 2 {
            x as i64 - self.q as i64
        } else {
            x as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn moduli() -> Vec<Modulus> {
        [
            3u64,
            65537,
            (1 << 40) - 87,
            1125899906826241,
            2305843009213554689,
        ]
        .iter()
        .filter_map(|&q| Modulus::new(q).ok())
        .collect()
    }

    #[test]
    fn rejects_non_primes_and_large() {
        assert!(Modulus::new(1 << 40).is_err());
        assert!(Modulus::new(1).is_err());
        assert!(Modulus::new((1 << 62) + 135).is_err());
    }

    #[test]
    fn barrett_and_shoup_match_remainder_oracle() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ms = moduli();
        assert!(ms.len() >= 4);
        for m in ms {
            let q = m.value();
            for _ in 0..20_000 {
                let x: u128 = rng.random();
                assert_eq!(m.reduce_u128(x), (x % q as u128) as u64);
                let (a, b) = (rng.random_range(0..q), rng.random_range(0..q));
                let want = ((a as u128 * b as u128) % q as u128) as u64;
                assert_eq!(m.mul(a, b), want);
                assert_eq!(m.mul_shoup(a, b, m.shoup(b)), want);
                let any: u64 = rng.random();
                let w = ((any as u128 * b as u128) % q as u128) as u64;
                assert_eq!(m.mul_shoup(any, b, m.shoup(b)), w);
                assert_eq!(m.add(a, b) as u128, (a as u128 + b as u128) % q as u128);
                assert_eq!(m.add(m.sub(a, b), b), a);
                let s: i64 = rng.random();
                assert_eq!(m.reduce_i64(s) as i128, (s as i128).rem_euclid(q as i128));
            }
            for a in 1..200u64.min(q) {
                let ai = m.inv(a).unwrap();
                assert_eq!(m.mul(a, ai), 1);
            }
        }
    }

    #[test]
    fn ratio52_is_the_shifted_quotient() {
        for m in moduli().into_iter().filter(|m| m.bits() <= 50) {
            let want = (1u128 << (51 + m.bits())) / m.value() as u128;
            assert_eq!(m.ratio52() as u128, want, "q = {}", m.value());
        }
    }

    #[test]
    fn montgomery_reduction_matches_remainder_oracle() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for m in moduli() {
            let q = m.value() as u128;
            // 2^64 · 2^-64 ≡ 1: the Montgomery form of w reduces back to w.
            let r_inv = m.inv(m.reduce_u128(1 << 64)).unwrap() as u128;
            let edges = [0, 1, q - 1, q << 64, (q << 64) - 1, (q - 1) << 64];
            for x in (0..20_000)
                .map(|_| rng.random_range(0..q << 64))
                .chain(edges.into_iter().filter(|&x| x < q << 64))
            {
                assert_eq!(m.redc(x) as u128, x % q * r_inv % q, "x = {x}, q = {q}");
            }
            // Lazy sums of products against Montgomery-form constants.
            for _ in 0..2_000 {
                let terms: Vec<(u64, u64)> = (0..3)
                    .map(|_| (rng.random_range(0..q as u64), rng.random_range(0..q as u64)))
                    .collect();
                let acc: u128 = terms
                    .iter()
                    .map(|&(a, w)| a as u128 * m.to_montgomery(w) as u128)
                    .sum();
                let want = terms
                    .iter()
                    .map(|&(a, w)| a as u128 * w as u128 % q)
                    .sum::<u128>()
                    % q;
                assert_eq!(m.redc(acc) as u128, want);
            }
        }
    }
}
