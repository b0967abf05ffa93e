//! Moving residues between RNS bases.
//!
//! - [`BasisConverter`]: fast basis extension (Bajard et al., SAC 2016; Cheon–Han–Kim–Kim–Song,
//!   SAC 2018): from residues modulo `D = d_1⋯d_k`, residues of `x + u·D` modulo other primes,
//!   with `0 ≤ u < k`. This is ModUp of hybrid key switching. Cost: `k` Shoup products plus
//!   `k` lazily accumulated products per output residue.
//!   [`BasisConverter::convert_into`] with the overflow removes `u` with a floating-point estimate of
//!   `floor(Σ y_i / d_i)` (Halevi–Polyakov–Shoup, CT-RSA 2019).
//! - [`DivideAndRound`]: from `x` modulo `B·C`, `round(x / C)` modulo `B`. This is ModDown
//!   (`C = P`) and rescaling (`C = q_l`); exact rounding keeps the key-switching noise at
//!   `ε0 + ε1·s` with `|ε| ≤ 1/2`. Works with `x mod B` in NTT form and `x mod C` in
//!   coefficient form.
//! - [`MixedRadix`]: exact CRT reconstruction of the centred value as `f64`, by Garner's
//!   mixed-radix digits; used to decode plaintexts.

use rayon::prelude::*;

use crate::kernels::{mul_const_assign, Before};
use crate::modulus::ifma_terms;
use crate::{Modulus, Prime, RingError, RnsPoly};

/// Coefficients per block of a basis conversion (its sources' block stays in L1).
const CONVERT_BLOCK: usize = 256;

fn check_distinct(moduli: &[&Modulus]) -> Result<(), RingError> {
    for (i, a) in moduli.iter().enumerate() {
        if moduli[..i].iter().any(|b| b.value() == a.value()) {
            return Err(RingError::RepeatedPrime { q: a.value() });
        }
    }
    Ok(())
}

/// `prod(moduli) mod m`.
fn product_mod(moduli: &[Modulus], m: &Modulus) -> u64 {
    moduli
        .iter()
        .fold(1 % m.value(), |acc, q| m.mul(acc, m.reduce(q.value())))
}

/// A constant modulo `t` as a converter keeps it: times `2^64` when its sums are reduced by
/// Montgomery reduction, as it is otherwise.
fn stored_form(montgomery: bool, t: &Modulus, w: u64) -> u64 {
    if montgomery {
        t.to_montgomery(w)
    } else {
        w
    }
}

/// Fast basis extension from a source basis `D` to a target basis `T`.
#[derive(Clone, Debug)]
pub struct BasisConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    /// `(D/d_i)^{-1} mod d_i` with its Shoup companion.
    dhat_inv: Vec<(u64, u64)>,
    /// `dhat_mod_t[j][i] = (D/d_i) mod t_j`.
    dhat_mod_t: Vec<Vec<u64>>,
    /// `-D mod t_j`, to take off the overflow `v·D` in exact conversion.
    neg_d_mod_t: Vec<u64>,
    /// `1 / d_i` in floating point.
    d_inv_f64: Vec<f64>,
    /// Every lazy sum stays below `t_j · 2^64`, so it is reduced by Montgomery reduction and
    /// the constants `dhat_mod_t`, `neg_d_mod_t` and `offset` are kept times `2^64 mod t_j`;
    /// otherwise by Barrett reduction, with the constants as they are.
    montgomery: bool,
    /// A constant added to every output residue of target `j` (empty: none).
    offset: Vec<u64>,
    /// For each target, its constants for the IFMA kernel where that kernel serves it.
    ifma: Vec<Option<IfmaTarget>>,
}

/// A target prime's constants for the IFMA kernel of a conversion, all times `2^52`.
#[derive(Clone, Debug)]
struct IfmaTarget {
    /// `(D/d_i) mod t`.
    row: Vec<u64>,
    /// `−D mod t`.
    neg_d: u64,
    /// The offset of [`BasisConverter::set_offset`] (zero if none).
    offset: u64,
}

impl BasisConverter {
    /// Precomputes the conversion; the two bases must be disjoint, and `k` sources of at most
    /// `b` bits need `k + 2 < 2^(128 − 2b)` (up to 62 sources of 61 bits).
    ///
    /// # Errors
    /// [`RingError::RepeatedPrime`] if a prime repeats; [`RingError::ConversionTooWide`] for
    /// too many or too large primes.
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Result<Self, RingError> {
        let all: Vec<&Modulus> = from.iter().chain(to).collect();
        check_distinct(&all)?;
        // The sums are accumulated lazily: `k` products of residues, the overflow term `v·D`
        // (v < k) and an offset must stay below 2^128.
        let largest = all.iter().map(|m| m.value()).max().unwrap_or(0) as u128;
        let terms = from.len() as u128 + 2;
        if largest
            .checked_mul(largest)
            .and_then(|p| p.checked_mul(terms))
            .is_none()
        {
            return Err(RingError::ConversionTooWide {
                sources: from.len(),
                bits: 128 - largest.leading_zeros(),
            });
        }
        let dhat = |i: usize, m: &Modulus| {
            from.iter()
                .enumerate()
                .filter(|&(k, _)| k != i)
                .fold(1 % m.value(), |acc, (_, d)| m.mul(acc, m.reduce(d.value())))
        };
        let dhat_inv = from
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let v = d.inv(dhat(i, d)).unwrap_or(0); // nonzero: the primes are distinct
                (v, d.shoup(v))
            })
            .collect();
        // A sum is `Σ_i y_i·r_i + v·(−D) + offset` with `y_i < d_i`, `v < k` and every
        // constant below `t_j`: below `t_j · (Σ_i d_i + k + 1)`.
        let bound = from.iter().map(|d| d.value() as u128).sum::<u128>() + terms - 1;
        let montgomery = bound <= 1 << 64;
        let dhat_mod_t = to
            .iter()
            .map(|t| {
                (0..from.len())
                    .map(|i| stored_form(montgomery, t, dhat(i, t)))
                    .collect()
            })
            .collect();
        let neg_d_mod_t = to
            .iter()
            .map(|t| stored_form(montgomery, t, t.neg(product_mod(from, t))))
            .collect();
        let d_inv_f64 = from.iter().map(|d| 1.0 / d.value() as f64).collect();
        // The IFMA kernel takes sources below 2^50 and a sum of `k` products, the overflow
        // term and the offset.
        let source_bits = from.iter().map(Modulus::bits).max().unwrap_or(0);
        let ifma = to
            .iter()
            .map(|t| {
                let fits = t.uses_ifma()
                    && source_bits <= 50
                    && from.len() + 2 <= ifma_terms(source_bits, t.bits());
                fits.then(|| IfmaTarget {
                    row: (0..from.len()).map(|i| t.shl_mod(dhat(i, t), 52)).collect(),
                    neg_d: t.shl_mod(t.neg(product_mod(from, t)), 52),
                    offset: 0,
                })
            })
            .collect();
        Ok(Self {
            from: from.to_vec(),
            to: to.to_vec(),
            dhat_inv,
            dhat_mod_t,
            neg_d_mod_t,
            d_inv_f64,
            montgomery,
            offset: Vec::new(),
            ifma,
        })
    }

    /// Adds `offset[j]` (below `t_j`) to every output residue of target `j`.
    fn set_offset(&mut self, offset: Vec<u64>) {
        for ((target, &c), t) in self.ifma.iter_mut().zip(&offset).zip(&self.to) {
            if let Some(target) = target {
                target.offset = t.shl_mod(c, 52);
            }
        }
        self.offset = offset
            .into_iter()
            .zip(&self.to)
            .map(|(c, t)| stored_form(self.montgomery, t, c))
            .collect();
    }

    /// Number of source primes.
    pub fn num_from(&self) -> usize {
        self.from.len()
    }

    /// Number of target primes.
    pub fn num_to(&self) -> usize {
        self.to.len()
    }

    /// First step, in place on source limb `i` (coefficient form):
    /// `x_i <- x_i · (D/d_i)^{-1} mod d_i`.
    pub fn prepare_limb(&self, i: usize, limb: &mut [u64]) {
        mul_const_assign(limb, Before::Nothing, self.dhat_inv[i], &self.from[i]);
    }

    /// [`prepare_limb`](Self::prepare_limb) of source limb `i` given in NTT form over `prime`
    /// (source prime `i`): the inverse NTT's normalisation folds into the constant.
    pub fn prepare_ntt_limb(&self, i: usize, limb: &mut [u64], prime: &Prime) {
        let m = &self.from[i];
        debug_assert_eq!(m.value(), prime.value());
        prime.inverse_unnormalized(limb);
        let w = m.mul(self.dhat_inv[i].0, prime.n_inv());
        mul_const_assign(limb, Before::Nothing, (w, m.shoup(w)), m);
    }

    /// The overflow `v = floor(Σ_i y_i / d_i)` of each coefficient of a block (`ys`: the
    /// source limbs' slices), so that `x = Σ_i y_i·(D/d_i) − v·D` exactly (wrong by one only
    /// when `x/D` lies within about 2^-45 of an integer).
    fn overflow_into(&self, ys: &[&[u64]], v: &mut [u64]) {
        // Vector conversions between u64 and f64 need AVX-512: compiled for it where it runs.
        crate::kernels::vectorized(
            #[inline(always)]
            || {
                let mut acc = [0f64; CONVERT_BLOCK];
                let acc = &mut acc[..v.len()];
                for (yi, &inv) in ys.iter().zip(&self.d_inv_f64) {
                    acc.iter_mut()
                        .zip(*yi)
                        .for_each(|(a, &x)| *a += x as f64 * inv);
                }
                v.iter_mut().zip(acc).for_each(|(v, a)| *v = *a as u64);
            },
        )
    }

    /// Second step: for each `(j, out)` in `outs`, the residues modulo target `j` from `y`, the
    /// source limbs after [`prepare_limb`](Self::prepare_limb) (`n` = length of each out).
    /// If `exact`, each block's overflow is taken off and the result is `x mod D` in `[0, D)`;
    /// otherwise it is `x + u·D` with `0 ≤ u < k`.
    ///
    /// The work is cut into blocks of coefficients, in parallel. Each block of `y` is first
    /// laid out coefficient-major (the `k` residues of one coefficient side by side, in L1), so
    /// that every output residue is one sum over consecutive words held in registers: scalar
    /// 64×64→128-bit products, then one Montgomery (or Barrett) reduction. On AVX2 this beats
    /// splitting the residues for 32-bit vector multiplies, narrow primes included. Where the
    /// CPU has AVX-512 IFMA, targets below 2^50 of sources below 2^50 are served by its
    /// kernel instead, straight from the limbs: eight coefficients at a time.
    pub fn convert_into(&self, y: &[u64], exact: bool, outs: Vec<(usize, &mut [u64])>) {
        const BLOCK: usize = CONVERT_BLOCK;
        let Some(n) = outs.first().map(|(_, o)| o.len()) else {
            return;
        };
        let k = self.from.len();
        let mut blocks: Vec<Vec<(usize, &mut [u64])>> = (0..n.div_ceil(BLOCK))
            .map(|_| Vec::with_capacity(outs.len()))
            .collect();
        for (j, out) in outs {
            for (blk, chunk) in blocks.iter_mut().zip(out.chunks_mut(BLOCK)) {
                blk.push((j, chunk));
            }
        }
        // One coefficient-major buffer per worker, reused across its blocks.
        let buffer = || vec![0u64; BLOCK * k];
        blocks
            .into_par_iter()
            .enumerate()
            .for_each_init(buffer, |block, (b, outs)| {
                let start = b * BLOCK;
                let len = outs.first().map_or(0, |(_, o)| o.len());
                let ys: Vec<&[u64]> = y
                    .chunks_exact(n)
                    .map(|yi| &yi[start..start + len])
                    .collect();
                let mut overflow = [0u64; BLOCK];
                let v = exact.then(|| {
                    self.overflow_into(&ys, &mut overflow[..len]);
                    &overflow[..len]
                });
                // The targets the IFMA kernel serves read the limbs as they are.
                let rest = self.convert_ifma(&ys, v, outs);
                if rest.is_empty() {
                    return;
                }
                let block = &mut block[..len * k];
                for (c, dst) in block.chunks_exact_mut(k).enumerate() {
                    for (d, yi) in dst.iter_mut().zip(&ys) {
                        *d = yi[c];
                    }
                }
                for (j, o) in rest {
                    let target = Target {
                        modulus: &self.to[j],
                        row: &self.dhat_mod_t[j],
                        offset: self.offset.get(j).map_or(0, |&c| c as u128),
                        neg_d: self.neg_d_mod_t[j] as u128,
                        montgomery: self.montgomery,
                    };
                    target.residues(block, v, o);
                }
            });
    }

    /// Converts the block's targets that the IFMA kernel serves (where the block's length is a
    /// multiple of 8), in one pass; returns the others.
    fn convert_ifma<'a>(
        &self,
        ys: &[&[u64]],
        v: Option<&[u64]>,
        outs: Vec<(usize, &'a mut [u64])>,
    ) -> Vec<(usize, &'a mut [u64])> {
        #[cfg(target_arch = "x86_64")]
        if ys
            .first()
            .is_some_and(|y| y.len() % crate::ifma::LANES == 0)
        {
            let (mut targets, mut rest) = (Vec::new(), Vec::with_capacity(outs.len()));
            for (j, out) in outs {
                match &self.ifma[j] {
                    Some(t) => targets.push(crate::ifma::ConvertTarget {
                        modulus: &self.to[j],
                        row: &t.row,
                        neg_d: t.neg_d,
                        offset: t.offset,
                        out,
                    }),
                    None => rest.push((j, out)),
                }
            }
            crate::ifma::convert_block(ys, v, &mut targets);
            return rest;
        }
        let _ = (ys, v);
        outs
    }

    /// Both steps: converts `input` (source limbs, coefficient form) into the first
    /// `out.num_limbs()` target primes.
    pub fn convert(&self, input: &[u64], out: &mut RnsPoly) {
        let n = out.n();
        let mut y = RnsPoly::temporary(n, self.from.len());
        y.data_mut().copy_from_slice(input);
        y.par_limbs_mut()
            .enumerate()
            .for_each(|(i, l)| self.prepare_limb(i, l));
        self.convert_into(y.data(), false, out.limbs_mut().enumerate().collect());
    }
}

/// What one target prime of a conversion needs to turn sums into residues.
struct Target<'a> {
    modulus: &'a Modulus,
    row: &'a [u64],
    offset: u128,
    neg_d: u128,
    montgomery: bool,
}

impl Target<'_> {
    /// `out[c] = (offset + Σ_i block[c·k + i]·row[i] + v[c]·(−D)) mod t` over a
    /// coefficient-major block, `k = row.len()`. Up to 16 sources the count is a compile-time
    /// constant, so the loop unrolls and the row stays in registers: about 1.5× the speed of
    /// the runtime-length loop that serves more sources.
    fn residues(&self, block: &[u64], v: Option<&[u64]>, out: &mut [u64]) {
        macro_rules! fixed_sizes {
            ($($k:literal)*) => {
                $(if let Ok(row) = <&[u64; $k]>::try_from(self.row) {
                    let sums = block.chunks_exact($k).map(|y| dot(y, row));
                    return self.reduce(sums, v, out);
                })*
            };
        }
        fixed_sizes!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        let sums = block
            .chunks_exact(self.row.len().max(1))
            .map(|y| dot(y, self.row));
        self.reduce(sums, v, out);
    }

    #[inline(always)]
    fn reduce(&self, sums: impl Iterator<Item = u128>, v: Option<&[u64]>, out: &mut [u64]) {
        let finish = |s: u128| {
            if self.montgomery {
                self.modulus.redc(s + self.offset)
            } else {
                self.modulus.reduce_u128(s + self.offset)
            }
        };
        match v {
            Some(v) => {
                for ((o, s), &v) in out.iter_mut().zip(sums).zip(v) {
                    *o = finish(s + v as u128 * self.neg_d);
                }
            }
            None => out.iter_mut().zip(sums).for_each(|(o, s)| *o = finish(s)),
        }
    }
}

/// `Σ_i y_i·r_i`, lazily in 128 bits.
#[inline(always)]
fn dot(y: &[u64], r: &[u64]) -> u128 {
    y.iter()
        .zip(r)
        .fold(0, |a, (&y, &r)| a + y as u128 * r as u128)
}

/// Division by a sub-basis `C` with rounding: ModDown and rescaling.
#[derive(Clone, Debug)]
pub struct DivideAndRound {
    conv: BasisConverter,
    /// `floor(C/2) mod c_i`, added before the conversion so that flooring becomes rounding.
    half_mod_drop: Vec<u64>,
    /// `C^{-1} mod b_j` with its Shoup companion.
    c_inv: Vec<(u64, u64)>,
}

impl DivideAndRound {
    /// Precomputes division of values modulo `keep · drop` by `drop`.
    ///
    /// # Errors
    /// [`RingError::RepeatedPrime`] if a prime repeats.
    pub fn new(keep: &[Modulus], drop: &[Modulus]) -> Result<Self, RingError> {
        let mut conv = BasisConverter::new(drop, keep)?;
        let half = |m: &Modulus| {
            let c = product_mod(drop, m);
            // floor(C/2) = (C - 1)/2 for odd C: computed as (C - 1) · 2^{-1} mod m.
            m.mul(m.sub(c, 1 % m.value()), m.inv(2).unwrap_or(0))
        };
        // floor(C/2) is taken off again by the conversion itself, as an offset.
        conv.set_offset(keep.iter().map(|m| m.neg(half(m))).collect());
        Ok(Self {
            half_mod_drop: drop.iter().map(half).collect(),
            c_inv: keep
                .iter()
                .map(|b| {
                    let v = b.inv(product_mod(drop, b)).unwrap_or(0);
                    (v, b.shoup(v))
                })
                .collect(),
            conv,
        })
    }

    /// `x <- round(x / C)` in NTT form: `x` holds `x mod b_j` for the keep primes `keep`
    /// followed by `x mod c_i` for the drop primes `drop`, and is left with the keep limbs only
    /// (its storage keeps the capacity of the dropped limbs).
    pub fn apply_ntt(&self, x: &mut RnsPoly, keep: &[Prime], drop: &[&Prime]) {
        let n = x.n();
        let mut rem = self.remainder_ntt(&mut x.data_mut()[keep.len() * n..], n, keep.len(), drop);
        rem.par_limbs_mut()
            .zip(x.par_limbs_mut())
            .zip(keep)
            .enumerate()
            .for_each(|(j, ((r, x), p))| self.finish_ntt_limb(j, x, r, p));
        x.truncate(keep.len());
    }

    /// The division in two steps, for callers that produce the keep limbs one at a time
    /// (while each is in cache). First: from the drop limbs (`drop`: in NTT form over
    /// `primes`, overwritten), the remainder to take off each of the first `keep` keep limbs,
    /// in coefficient form.
    pub fn remainder_ntt(
        &self,
        drop: &mut [u64],
        n: usize,
        keep: usize,
        primes: &[&Prime],
    ) -> RnsPoly {
        self.remainder(drop, n, keep, Some(primes))
    }

    /// Second step, on keep limb `j` (NTT form over `prime`): `x <- (x − r)·C^{-1}` with `r`
    /// the limb `j` of [`remainder_ntt`](Self::remainder_ntt) (taken to NTT form in place).
    pub fn finish_ntt_limb(&self, j: usize, x: &mut [u64], r: &mut [u64], prime: &Prime) {
        prime.forward(r);
        self.finish_limb(x, r, j, prime.modulus());
    }

    /// The same division with every limb of `x` in coefficient form.
    pub fn apply_coeff(&self, x: &mut RnsPoly, keep: &[Modulus]) {
        let n = x.n();
        let rem = self.remainder(&mut x.data_mut()[keep.len() * n..], n, keep.len(), None);
        rem.par_limbs()
            .zip(x.par_limbs_mut())
            .zip(keep)
            .enumerate()
            .for_each(|(j, ((r, x), m))| {
                self.finish_limb(x, r, j, m);
            });
        x.truncate(keep.len());
    }

    /// `((x + floor(C/2)) mod C) − floor(C/2)` modulo the first `keep` keep primes, in
    /// coefficient form, from the drop limbs `drop` of `x` (overwritten; in NTT form over
    /// `drop_ntt` where given, else in coefficient form): adding `floor(C/2)` before the exact
    /// conversion turns the floor of the division into a rounding.
    fn remainder(
        &self,
        drop: &mut [u64],
        n: usize,
        keep: usize,
        drop_ntt: Option<&[&Prime]>,
    ) -> RnsPoly {
        let conv = &self.conv;
        debug_assert_eq!(drop.len(), n * conv.from.len());
        debug_assert!(drop_ntt.is_none_or(|d| d.len() == conv.from.len()));
        drop.par_chunks_exact_mut(n)
            .zip(&conv.from)
            .zip(&self.half_mod_drop)
            .zip(&conv.dhat_inv)
            .enumerate()
            .for_each(|(i, (((l, m), &h), &w))| match drop_ntt {
                // The unnormalised inverse leaves N·x: (N·x + N·h)·(w·N^{-1}) = (x + h)·w.
                Some(primes) => {
                    let p = primes[i];
                    debug_assert_eq!(p.value(), m.value());
                    p.inverse_unnormalized(l);
                    let h = m.mul(h, m.reduce(n as u64));
                    let w = m.mul(w.0, p.n_inv());
                    mul_const_assign(l, Before::Add(h), (w, m.shoup(w)), m);
                }
                None => mul_const_assign(l, Before::Add(h), w, m),
            });
        let y = &*drop;
        // Every residue is written by the conversion.
        let mut rem = RnsPoly::temporary(n, keep);
        // The converter's offset takes floor(C/2) off again.
        conv.convert_into(y, true, rem.limbs_mut().enumerate().collect());
        rem
    }

    /// `x <- (x − remainder) · C^{-1}` on keep prime `j`, in whichever domain both are.
    fn finish_limb(&self, x: &mut [u64], remainder: &[u64], j: usize, m: &Modulus) {
        mul_const_assign(x, Before::Sub(remainder), self.c_inv[j], m);
    }
}

/// Exact CRT reconstruction by Garner's algorithm with centred mixed-radix digits.
#[derive(Clone, Debug)]
pub struct MixedRadix {
    moduli: Vec<Modulus>,
    /// `inv[j][i] = q_i^{-1} mod q_j` for `i < j`, with Shoup companions.
    inv: Vec<Vec<(u64, u64)>>,
}

impl MixedRadix {
    /// Precomputes the reconstruction for a basis of distinct primes.
    ///
    /// # Errors
    /// [`RingError::RepeatedPrime`] if a prime repeats.
    pub fn new(moduli: &[Modulus]) -> Result<Self, RingError> {
        check_distinct(&moduli.iter().collect::<Vec<_>>())?;
        let inv = moduli
            .iter()
            .enumerate()
            .map(|(j, qj)| {
                moduli[..j]
                    .iter()
                    .map(|qi| {
                        let v = qj.inv(qi.value()).unwrap_or(0);
                        (v, qj.shoup(v))
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            moduli: moduli.to_vec(),
            inv,
        })
    }

    /// The centred digits `a_i ∈ (-q_i/2, q_i/2]` with `x = a_0 + q_0(a_1 + q_1(a_2 + …))`,
    /// for the residues `r` of one coefficient over the first `r.len()` primes (overwritten).
    pub fn digits(&self, r: &mut [u64], out: &mut [i64]) {
        let k = r.len();
        for i in 0..k {
            let a = self.moduli[i].center(r[i]);
            out[i] = a;
            for (j, rj) in r.iter_mut().enumerate().skip(i + 1) {
                let m = &self.moduli[j];
                let (w, ws) = self.inv[j][i];
                *rj = m.mul_shoup(m.sub(*rj, m.reduce_i64(a)), w, ws);
            }
        }
    }

    /// The centred value of one coefficient, as `f64` (relative error about 2^-52).
    pub fn to_f64(&self, r: &mut [u64], scratch: &mut [i64]) -> f64 {
        let k = r.len();
        self.digits(r, &mut scratch[..k]);
        let mut v = 0.0f64;
        for i in (0..k).rev() {
            v = v * self.moduli[i].value() as f64 + scratch[i] as f64;
        }
        v
    }

    /// The centred values of every coefficient of `poly` (coefficient form), over its limbs.
    pub fn poly_to_f64(&self, poly: &RnsPoly) -> Vec<f64> {
        let (n, k) = (poly.n(), poly.num_limbs());
        let mut out = vec![0.0; n];
        out.par_chunks_mut(1024).enumerate().for_each(|(chunk, o)| {
            let mut r = vec![0u64; k];
            let mut s = vec![0i64; k];
            for (c, v) in o.iter_mut().enumerate() {
                let idx = chunk * 1024 + c;
                for (i, ri) in r.iter_mut().enumerate() {
                    *ri = poly.limb(i)[idx];
                }
                *v = self.to_f64(&mut r, &mut s);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntt::NttOrder;
    use num_bigint::{BigInt, BigUint};
    use num_traits::{One, Signed, ToPrimitive, Zero};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn big_product(ms: &[Modulus]) -> BigUint {
        ms.iter().fold(BigUint::one(), |acc, m| acc * m.value())
    }

    /// Residues of a big integer: the CRT oracle's forward direction.
    fn residues(x: &BigInt, ms: &[Modulus]) -> Vec<u64> {
        ms.iter()
            .map(|m| {
                let q = BigInt::from(m.value());
                (((x % &q) + &q) % &q).to_u64().unwrap()
            })
            .collect()
    }

    fn random_big(rng: &mut ChaCha20Rng, modulus: &BigUint) -> BigInt {
        let words: Vec<u32> = (0..modulus.bits().div_ceil(32) + 2)
            .map(|_| rng.random())
            .collect();
        let x = BigUint::from_slice(&words) % modulus;
        BigInt::from(x) - BigInt::from(modulus.clone() / 2u32)
    }

    fn moduli(bits: u32, count: usize, avoid: &[u64]) -> Vec<Modulus> {
        crate::primes::primes_below(bits, 1 << 5, count, avoid)
            .unwrap()
            .into_iter()
            .map(|q| Modulus::new(q).unwrap())
            .collect()
    }

    #[test]
    fn mixed_radix_round_trips_big_integers() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let ms = moduli(50, 6, &[]);
        let mr = MixedRadix::new(&ms).unwrap();
        let q = big_product(&ms);
        let mut digits = vec![0i64; 6];
        for _ in 0..500 {
            let x = random_big(&mut rng, &q);
            let mut r = residues(&x, &ms);
            mr.digits(&mut r, &mut digits);
            let back = digits
                .iter()
                .zip(&ms)
                .rev()
                .fold(BigInt::zero(), |acc, (&a, m)| acc * m.value() + a);
            assert_eq!(back, x);
            let mut r = residues(&x, &ms);
            let f = mr.to_f64(&mut r, &mut digits);
            let want = x.to_f64().unwrap();
            assert!((f - want).abs() <= want.abs() * 1e-15, "{f} vs {want}");
        }
        // Small values come back exactly.
        let mut r = residues(&BigInt::from(-123456789i64), &ms);
        assert_eq!(mr.to_f64(&mut r, &mut digits), -123456789.0);
    }

    #[test]
    fn conversions_whose_sums_could_overflow_are_refused() {
        let d = moduli(61, 63, &[]);
        let avoid: Vec<u64> = d.iter().map(|m| m.value()).collect();
        let t = moduli(61, 1, &avoid);
        assert!(matches!(
            BasisConverter::new(&d, &t),
            Err(RingError::ConversionTooWide {
                sources: 63,
                bits: 61
            })
        ));
        assert!(BasisConverter::new(&d[..60], &t).is_ok());
    }

    /// Narrow and wide sources and targets, a length that crosses a block of the conversion,
    /// source counts that are unrolled (4) and not (20), sums too large for Montgomery
    /// reduction (20 sources of 61 bits: Barrett), and lengths of 12 and 32 IFMA vectors
    /// (groups of sums side by side, with and without a rest).
    #[test]
    fn mod_up_matches_big_integer_lift() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        for (source_bits, sources, target_bits, n, rounds) in [
            (50, 4, 45, 16, 50),
            (60, 4, 45, 16, 20),
            (45, 4, 61, 16, 20),
            (58, 4, 60, 300, 4),
            (61, 20, 58, 16, 5),
            (40, 9, 50, 300, 4),
            (50, 4, 45, 96, 10),
        ] {
            let d = moduli(source_bits, sources, &[]);
            for portable in [false, true] {
                mod_up_case(&mut rng, &d, target_bits, n, rounds, portable);
            }
        }
    }

    fn mod_up_case(
        rng: &mut ChaCha20Rng,
        d: &[Modulus],
        target_bits: u32,
        n: usize,
        rounds: usize,
        portable: bool,
    ) {
        let k = d.len();
        let avoid: Vec<u64> = d.iter().map(|m| m.value()).collect();
        let mut t = moduli(target_bits, 5, &avoid);
        if portable {
            t.iter_mut().for_each(|m| *m = m.portable());
        }
        let conv = BasisConverter::new(d, &t).unwrap();
        assert_eq!(conv.montgomery, k == 4 || k == 9);
        // The IFMA kernel serves exactly the narrow targets of narrow sources, where it runs.
        let narrow = d.iter().all(|m| m.value() < 1 << 50);
        for (target, m) in conv.ifma.iter().zip(&t) {
            assert_eq!(target.is_some(), narrow && m.uses_ifma());
        }
        let dq = big_product(d);
        for _ in 0..rounds {
            let xs: Vec<BigInt> = (0..n).map(|_| random_big(rng, &dq)).collect();
            let mut input = vec![0u64; k * n];
            for (c, x) in xs.iter().enumerate() {
                for (i, r) in residues(x, d).into_iter().enumerate() {
                    input[i * n + c] = r;
                }
            }
            let mut out = RnsPoly::zero(n, 5);
            conv.convert(&input, &mut out);
            for (c, x) in xs.iter().enumerate() {
                let x_pos = ((x % BigInt::from(dq.clone())) + BigInt::from(dq.clone()))
                    % BigInt::from(dq.clone());
                // The output must be x_pos + u·D for one u in [0, k), the same for every target.
                let u = (0..k as u32)
                    .find(|&u| {
                        let v = &x_pos + BigInt::from(dq.clone()) * u;
                        residues(&v, &t)
                            .iter()
                            .enumerate()
                            .all(|(j, &r)| out.limb(j)[c] == r)
                    })
                    .expect("no u in [0, k) explains the conversion");
                assert!(u < k as u32);
            }
        }
    }

    #[test]
    fn divide_and_round_matches_big_integer_division() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let n = 32;
        let order = NttOrder::new(n).unwrap();
        // Narrow and wide primes on either side, one and several dropped primes.
        for case in [
            (45, 50, 1usize),
            (45, 50, 3),
            (58, 60, 3),
            (40, 61, 2),
            (60, 45, 2),
            (40, 50, 8),
        ]
        .into_iter()
        .flat_map(|case| [(case, false), (case, true)])
        {
            let ((keep_bits, drop_bits, drop_count), portable) = case;
            let keep_q = crate::primes::primes_below(keep_bits, n, 4, &[]).unwrap();
            let drop_q = crate::primes::primes_below(drop_bits, n, drop_count, &keep_q).unwrap();
            let keep: Vec<Prime> = keep_q
                .iter()
                .map(|&q| Prime::new(q, &order).unwrap())
                .collect();
            // The portable pass takes the scalar kernels where the IFMA ones would serve.
            let keep_m: Vec<Modulus> = keep
                .iter()
                .map(|p| match portable {
                    true => p.modulus().portable(),
                    false => *p.modulus(),
                })
                .collect();
            let drop_m: Vec<Modulus> = drop_q.iter().map(|&q| Modulus::new(q).unwrap()).collect();
            let dr = DivideAndRound::new(&keep_m, &drop_m).unwrap();
            let all: Vec<Modulus> = keep_m.iter().chain(&drop_m).copied().collect();
            let total = big_product(&all);
            let c = BigInt::from(big_product(&drop_m));
            let xs: Vec<BigInt> = (0..n).map(|_| random_big(&mut rng, &total)).collect();
            // Keep limbs first, then the dropped ones.
            let mut xk = RnsPoly::zero(n, 4 + drop_count);
            for (ci, x) in xs.iter().enumerate() {
                for (i, r) in residues(x, &all).into_iter().enumerate() {
                    xk.limb_mut(i)[ci] = r;
                }
            }
            let mut xk_coeff = xk.clone();
            dr.apply_coeff(&mut xk_coeff, &keep_m);
            let drop: Vec<Prime> = drop_q
                .iter()
                .map(|&q| Prime::new(q, &order).unwrap())
                .collect();
            xk.ntt(&keep.iter().chain(&drop).cloned().collect::<Vec<_>>());
            dr.apply_ntt(&mut xk, &keep, &drop.iter().collect::<Vec<_>>());
            xk.intt(&keep);
            assert_eq!(xk, xk_coeff);
            for (ci, x) in xs.iter().enumerate() {
                // round(x / C) as floor((2x + C) / 2C).
                let two_c: BigInt = &c * 2i32;
                let num: BigInt = x * 2i32 + &c;
                let rounded: BigInt = if num.is_negative() {
                    -((-num + &two_c - 1i32) / &two_c)
                } else {
                    num / &two_c
                };
                let ok = residues(&rounded, &keep_m)
                    .iter()
                    .enumerate()
                    .all(|(j, &r)| xk.limb(j)[ci] == r);
                assert!(ok, "coefficient {ci} is not round(x/C)");
            }
        }
    }
}
