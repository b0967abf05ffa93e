//! AVX-512 IFMA kernels for primes below 2^50.
//!
//! IFMA (`vpmadd52luq` / `vpmadd52huq`) adds the low or the high 52 bits of the 104-bit
//! products of eight pairs of 52-bit lanes to eight 64-bit accumulators: eight products per
//! instruction pair, where the portable path does one 64×64→128-bit product. Residues modulo
//! primes below 2^50 fit, with room in the accumulators for lazy sums.
//!
//! A lazy sum is kept as two accumulators, `S = lo + hi·2^52`, and reduced to `S·2^-52 mod q`
//! ([`Ifma::reduce`]): `hi mod q` by a Barrett estimate, and `lo·2^-52` by a Montgomery step.
//! Constant factors stored times `2^52` then give `Σ x·w mod q` directly; the callers that
//! hold constants times `2^64` (switching keys, see [`Modulus::to_montgomery`]) or no
//! constant at all finish with one Montgomery product by `2^40` or `2^104 mod q`.
//!
//! The instructions are reached through `pulp`, whose token type proves at run time that the
//! CPU has them; every entry point returns `false` (and does nothing) where it does not.

use pulp::cast;
use std::arch::x86_64::__m512i;

use crate::kernels::Before;
use crate::modulus::{ifma_terms, Modulus};

pulp::simd_type! {
    /// AVX-512 with IFMA.
    pub(crate) struct Ifma {
        pub sse: "sse",
        pub sse2: "sse2",
        pub fxsr: "fxsr",
        pub sse3: "sse3",
        pub ssse3: "ssse3",
        pub sse4_1: "sse4.1",
        pub sse4_2: "sse4.2",
        pub popcnt: "popcnt",
        pub avx: "avx",
        pub avx2: "avx2",
        pub bmi1: "bmi1",
        pub bmi2: "bmi2",
        pub fma: "fma",
        pub lzcnt: "lzcnt",
        pub avx512f: "avx512f",
        pub avx512bw: "avx512bw",
        pub avx512cd: "avx512cd",
        pub avx512dq: "avx512dq",
        pub avx512vl: "avx512vl",
        pub avx512ifma: "avx512ifma",
    }
}

/// Lanes per vector.
pub(crate) const LANES: usize = 8;

/// Vectors summed side by side in the long sums of products.
const UNROLL: usize = 8;

/// A slice seen as vectors of eight words.
type Vectors<'a> = &'a [[u64; LANES]];

/// The first `n` words of `s` (a multiple of 8) as vectors.
fn vectors(s: &[u64], n: usize) -> Vectors<'_> {
    pulp::as_arrays::<LANES, _>(&s[..n]).0
}

const MASK52: u64 = (1 << 52) - 1;

/// The token, where the CPU has the instructions (`pulp` caches the check).
pub(crate) fn token() -> Option<Ifma> {
    Ifma::try_new()
}

/// One modulus's constants, broadcast.
#[derive(Clone, Copy)]
pub(crate) struct Consts {
    q: __m512i,
    /// `q^{-1} mod 2^52`.
    q_inv: __m512i,
    /// `floor(2^(51+b) / q)` for `q` of `b` bits: in `[2^51, 2^52)`.
    mu: __m512i,
    /// `b − 1`, as a per-lane shift.
    shift: __m512i,
}

impl Ifma {
    /// The constants of `m` (below 2^50).
    #[inline(always)]
    pub(crate) fn consts(self, m: &Modulus) -> Consts {
        let q = m.value();
        debug_assert!(q < 1 << 50);
        let b = m.bits();
        Consts {
            q: self.splat(q),
            q_inv: self.splat(m.inv_word() & MASK52),
            mu: self.splat(m.ratio52()),
            shift: self.splat(u64::from(b - 1)),
        }
    }

    #[inline(always)]
    pub(crate) fn splat(self, w: u64) -> __m512i {
        self.avx512f._mm512_set1_epi64(w as i64)
    }

    #[inline(always)]
    pub(crate) fn zero(self) -> __m512i {
        self.avx512f._mm512_setzero_si512()
    }

    /// Adds the 104-bit products `x·w` lane-wise to the accumulators `(lo, hi)`.
    #[inline(always)]
    pub(crate) fn mac(self, acc: (__m512i, __m512i), x: __m512i, w: __m512i) -> (__m512i, __m512i) {
        let f = self.avx512ifma;
        (
            f._mm512_madd52lo_epu64(acc.0, x, w),
            f._mm512_madd52hi_epu64(acc.1, x, w),
        )
    }

    /// `(lo + hi·2^52)·2^-52 mod q` in `[0, q)`, for `lo < 2^64` and `hi + lo/2^52 < 2^52`.
    #[inline(always)]
    pub(crate) fn reduce(self, c: &Consts, acc: (__m512i, __m512i)) -> __m512i {
        let (f, i) = (self.avx512f, self.avx512ifma);
        let zero = self.zero();
        let hi = f._mm512_add_epi64(acc.1, f._mm512_srli_epi64::<52>(acc.0));
        let lo = f._mm512_and_si512(acc.0, self.splat(MASK52));
        // hi mod q: the estimate floor(hi·mu / 2^(51+b)) is short by at most one.
        let quot = f._mm512_srlv_epi64(i._mm512_madd52hi_epu64(zero, hi, c.mu), c.shift);
        let r = f._mm512_sub_epi64(hi, i._mm512_madd52lo_epu64(zero, quot, c.q));
        let r = f._mm512_min_epu64(r, f._mm512_sub_epi64(r, c.q));
        // lo·2^-52: with m = lo·q^{-1} mod 2^52, lo − m·q is −high(m·q)·2^52 exactly.
        let m = i._mm512_madd52lo_epu64(zero, lo, c.q_inv);
        let t = f._mm512_sub_epi64(r, i._mm512_madd52hi_epu64(zero, m, c.q));
        f._mm512_min_epu64(t, f._mm512_add_epi64(t, c.q))
    }

    /// `x·w·2^-52 mod q` for `x, w < q`: one product, so no Barrett step.
    #[inline(always)]
    pub(crate) fn mont_mul(self, c: &Consts, x: __m512i, w: __m512i) -> __m512i {
        let (f, i) = (self.avx512f, self.avx512ifma);
        let zero = self.zero();
        let (lo, hi) = (
            i._mm512_madd52lo_epu64(zero, x, w),
            i._mm512_madd52hi_epu64(zero, x, w),
        );
        let m = i._mm512_madd52lo_epu64(zero, lo, c.q_inv);
        let t = f._mm512_sub_epi64(hi, i._mm512_madd52hi_epu64(zero, m, c.q));
        f._mm512_min_epu64(t, f._mm512_add_epi64(t, c.q))
    }

    /// `out[u] = (offset + Σ_i ys[i][k+u]·row[i] + v[k+u]·neg_d)·2^-52 mod q` for the `U`
    /// vectors from `k`: `U` independent sums side by side.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn convert_sums<const U: usize>(
        self,
        c: &Consts,
        ys: &[Vectors],
        v: Option<Vectors>,
        row: &[u64],
        (offset, neg_d): (__m512i, __m512i),
        k: usize,
        out: &mut [[u64; LANES]],
    ) {
        let mut acc = [(offset, self.zero()); U];
        for (y, &w) in ys.iter().zip(row) {
            let w = self.splat(w);
            for (u, a) in acc.iter_mut().enumerate() {
                *a = self.mac(*a, cast(y[k + u]), w);
            }
        }
        if let Some(v) = v {
            for (u, a) in acc.iter_mut().enumerate() {
                *a = self.mac(*a, cast(v[k + u]), neg_d);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = cast(self.reduce(c, a));
        }
    }
}

/// Where the CPU has IFMA and `m < 2^50`: `(out0, out1)[c] = Σ_j x_j[c]·(w0_j[c], w1_j[c])
/// mod m` for weights stored times `2^64` ([`Modulus::to_montgomery`]), and returns `true`;
/// otherwise (or for more than [`ifma_terms`]`(50, 50)` terms, or a length that is not a
/// multiple of 8) `false`. All slices have the outputs' length.
pub(crate) fn dot_pair_montgomery64(
    terms: &[(&[u64], &[u64], &[u64])],
    m: &Modulus,
    out0: &mut [u64],
    out1: &mut [u64],
) -> bool {
    let Some(simd) = m.uses_ifma().then(token).flatten() else {
        return false;
    };
    let n = out0.len();
    if n % LANES != 0 || terms.len() > ifma_terms(50, 50) {
        return false;
    }
    assert_eq!(n, out1.len());
    simd.vectorize(
        #[inline(always)]
        || {
            let c = simd.consts(m);
            // Σ x·w·2^64 reduces to Σ x·w·2^12; one Montgomery product by 2^40 takes 2^12 off.
            let fix = simd.splat(((1u64 << 40) as u128 % m.value() as u128) as u64);
            let rows: Vec<(Vectors, Vectors, Vectors)> = terms
                .iter()
                .map(|t| (vectors(t.0, n), vectors(t.1, n), vectors(t.2, n)))
                .collect();
            let o0 = pulp::as_arrays_mut::<LANES, _>(out0).0;
            let o1 = pulp::as_arrays_mut::<LANES, _>(out1).0;
            for (k, (o0, o1)) in o0.iter_mut().zip(o1.iter_mut()).enumerate() {
                let (mut a0, mut a1) = ((simd.zero(), simd.zero()), (simd.zero(), simd.zero()));
                for &(x, w0, w1) in &rows {
                    let x: __m512i = cast(x[k]);
                    a0 = simd.mac(a0, x, cast(w0[k]));
                    a1 = simd.mac(a1, x, cast(w1[k]));
                }
                *o0 = cast(simd.mont_mul(&c, simd.reduce(&c, a0), fix));
                *o1 = cast(simd.mont_mul(&c, simd.reduce(&c, a1), fix));
            }
        },
    );
    true
}

/// Where the CPU has IFMA and `m < 2^50`: `out[c] = Σ_j x_j[c]·w_j[c] mod m` for residues
/// `x_j, w_j < m`, and returns `true`; otherwise (or for more than [`ifma_terms`]`(50, 50)`
/// terms, or a length that is not a multiple of 8) `false`. All slices have the output's
/// length.
///
/// With `accumulate`, `out[c]` (below `m`) is added to its sum: `out += Σ_j x_j·w_j`.
pub(crate) fn dot(
    terms: &[(&[u64], &[u64])],
    m: &Modulus,
    out: &mut [u64],
    accumulate: bool,
) -> bool {
    let Some(simd) = m.uses_ifma().then(token).flatten() else {
        return false;
    };
    let n = out.len();
    // An accumulated residue takes the room of one more term.
    if n % LANES != 0 || terms.len() + usize::from(accumulate) > ifma_terms(50, 50) {
        return false;
    }
    simd.vectorize(
        #[inline(always)]
        || {
            let c = simd.consts(m);
            // S·2^-52 times 2^104·2^-52 is S.
            let fix = simd.splat(m.shl_mod(m.shl_mod(1, 52), 52));
            let rows: Vec<(Vectors, Vectors)> = terms
                .iter()
                .map(|t| (vectors(t.0, n), vectors(t.1, n)))
                .collect();
            for (k, o) in pulp::as_arrays_mut::<LANES, _>(out)
                .0
                .iter_mut()
                .enumerate()
            {
                let mut acc = match accumulate {
                    true => (cast(*o), simd.zero()),
                    false => (simd.zero(), simd.zero()),
                };
                for &(x, w) in &rows {
                    acc = simd.mac(acc, cast(x[k]), cast(w[k]));
                }
                *o = cast(simd.mont_mul(&c, simd.reduce(&c, acc), fix));
            }
        },
    );
    true
}

/// One target of a basis conversion for [`convert_block`]: its modulus, its constants
/// (below the modulus, stored times `2^52`: `row[i]` for source `i`, `neg_d` for the overflow,
/// `offset`) and its output.
pub(crate) struct ConvertTarget<'a> {
    pub(crate) modulus: &'a Modulus,
    pub(crate) row: &'a [u64],
    pub(crate) neg_d: u64,
    pub(crate) offset: u64,
    pub(crate) out: &'a mut [u64],
}

/// For each target (whose modulus uses IFMA, so the CPU has it), `out[c] = (offset +
/// Σ_i y_i[c]·row[i] + v[c]·neg_d)·2^-52 mod m` for sources `y_i` below 2^50, at most
/// [`ifma_terms`] products in all (the caller's check). One block of coefficients of a
/// conversion: `ys[i]`, `v` and every `out` have the same length, a multiple of 8.
pub(crate) fn convert_block(ys: &[&[u64]], v: Option<&[u64]>, targets: &mut [ConvertTarget]) {
    let n = ys.first().map_or(0, |y| y.len());
    assert!(n % LANES == 0 && targets.iter().all(|t| t.modulus.uses_ifma()));
    if targets.is_empty() {
        return;
    }
    let Some(simd) = token() else {
        unreachable!("a modulus uses IFMA only where the CPU has it");
    };
    simd.vectorize(
        #[inline(always)]
        || {
            let ys: Vec<Vectors> = ys.iter().map(|y| vectors(y, n)).collect();
            let v = v.map(|v| vectors(v, n));
            for t in targets.iter_mut() {
                assert_eq!(t.row.len(), ys.len());
                let c = simd.consts(t.modulus);
                let (offset, neg_d) = (simd.splat(t.offset), simd.splat(t.neg_d));
                let out = pulp::as_arrays_mut::<LANES, _>(&mut t.out[..n]).0;
                // UNROLL vectors at a time: independent sums hide the multiply-adds' latency
                // (one vector's sum is a chain of dependent instructions).
                let (head, tail) = out.split_at_mut(out.len() - out.len() % UNROLL);
                let consts = (offset, neg_d);
                for (b, o) in head.chunks_exact_mut(UNROLL).enumerate() {
                    simd.convert_sums::<UNROLL>(&c, &ys, v, t.row, consts, b * UNROLL, o);
                }
                let k0 = head.len();
                for (k, o) in tail.chunks_exact_mut(1).enumerate() {
                    simd.convert_sums::<1>(&c, &ys, v, t.row, consts, k0 + k, o);
                }
            }
        },
    );
}

/// Where the CPU has IFMA and `m < 2^50`: `x[c] ← (x[c] ∘ before)·w mod m` for residues
/// `x[c] < m` and a constant `w < m` with its Shoup companion (Shoup's method, the companion
/// cut to 52 bits), and returns
/// `true`; otherwise (or for a length that is not a multiple of 8) `false`.
pub(crate) fn mul_const_assign(
    x: &mut [u64],
    before: Before,
    (w, w_shoup): (u64, u64),
    m: &Modulus,
) -> bool {
    let Some(simd) = m.uses_ifma().then(token).flatten() else {
        return false;
    };
    let n = x.len();
    if n % LANES != 0 {
        return false;
    }
    simd.vectorize(
        #[inline(always)]
        || {
            let (f, i) = (simd.avx512f, simd.avx512ifma);
            let q = simd.splat(m.value());
            // floor(w·2^52/q) is the 64-bit companion floor(w·2^64/q) shifted down.
            let ws = simd.splat(w_shoup >> 12);
            let (w, mask, zero) = (simd.splat(w), simd.splat(MASK52), simd.zero());
            let sub = match before {
                Before::Sub(r) => Some(vectors(r, n)),
                _ => None,
            };
            let add = simd.splat(match before {
                Before::Add(h) => h,
                _ => 0,
            });
            for (k, x) in pulp::as_arrays_mut::<LANES, _>(x).0.iter_mut().enumerate() {
                let mut v: __m512i = cast(*x);
                if let Some(r) = sub {
                    let d = f._mm512_sub_epi64(v, cast(r[k]));
                    v = f._mm512_min_epu64(d, f._mm512_add_epi64(d, q));
                } else {
                    let s = f._mm512_add_epi64(v, add);
                    v = f._mm512_min_epu64(s, f._mm512_sub_epi64(s, q));
                }
                // quot = floor(v·ws / 2^52) is floor(v·w / q) or one less: v·w − quot·q is in
                // [0, 2q), and below 2^52 its low 52 bits are all of it.
                let quot = i._mm512_madd52hi_epu64(zero, v, ws);
                let r = f._mm512_sub_epi64(
                    i._mm512_madd52lo_epu64(zero, v, w),
                    i._mm512_madd52lo_epu64(zero, quot, q),
                );
                let r = f._mm512_and_si512(r, mask);
                *x = cast(f._mm512_min_epu64(r, f._mm512_sub_epi64(r, q)));
            }
        },
    );
    true
}
