//! The homomorphic evaluator: arithmetic, multiplication with relinearization, rescaling,
//! rotations (single and hoisted), conjugation, and op counters.
//!
//! The evaluator is handed an [`EvalKeySet`] (public keys only) and never sees a secret key.
//! Every op checks its operands: levels must match ([`CkksError::LevelMismatch`]), scales must
//! be equal up to floating-point rounding ([`CkksError::ScaleMismatch`]); aligning them is an
//! explicit call ([`Evaluator::drop_to_level`], [`Ciphertext::set_scale`]), never silent.
//!
//! Costs (key switches): `mul_relin`, `rotate` and `conjugate` one each; `rotate_hoisted` one
//! decomposition for all its rotations plus one inner product and ModDown per rotation;
//! `mul_i` and `mul_const` none. Only `rescale` consumes a level; `mul_sum_relin_rescale`
//! multiplies, relinearizes and rescales with one division by `q_level·P`, the rescale's own
//! NTTs saved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use num_complex::Complex64;
use rayon::prelude::*;

use hetal_ring::{kernels, Automorphism, RnsPoly};

use crate::ciphertext::{ExtCiphertext, ExtPlaintext};
use crate::keyswitch::{self, Addend};
use crate::{Ciphertext, CkksError, EvalKeySet, Params, Plaintext, SwitchingKey};

/// Relative difference under which two scales count as equal (floating-point rounding only).
pub const SCALE_TOLERANCE: f64 = 1e-12;

/// Operation counts of an evaluator (a snapshot of [`Evaluator::counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Ciphertext × ciphertext multiplications.
    pub ct_mult: u64,
    /// Plaintext × ciphertext multiplications.
    pub pt_mult: u64,
    /// Constant × ciphertext multiplications.
    pub const_mult: u64,
    /// Slot rotations (single and hoisted).
    pub rotations: u64,
    /// Key switches with their own decomposition (relinearizations, single rotations,
    /// conjugations).
    pub keyswitch_full: u64,
    /// Key switches that reuse a shared decomposition (hoisted rotations).
    pub keyswitch_hoisted: u64,
    /// Rescalings.
    pub rescales: u64,
    /// Conjugations.
    pub conjugations: u64,
}

#[derive(Default)]
struct Counters([AtomicU64; 8]);

#[derive(Clone, Copy)]
enum Op {
    CtMult,
    PtMult,
    ConstMult,
    Rotation,
    KeySwitchFull,
    KeySwitchHoisted,
    Rescale,
    Conjugation,
}

impl Counters {
    fn add(&self, op: Op, k: u64) {
        self.0[op as usize].fetch_add(k, Ordering::Relaxed);
    }

    fn snapshot(&self) -> OpCounts {
        let g = |op: Op| self.0[op as usize].load(Ordering::Relaxed);
        OpCounts {
            ct_mult: g(Op::CtMult),
            pt_mult: g(Op::PtMult),
            const_mult: g(Op::ConstMult),
            rotations: g(Op::Rotation),
            keyswitch_full: g(Op::KeySwitchFull),
            keyswitch_hoisted: g(Op::KeySwitchHoisted),
            rescales: g(Op::Rescale),
            conjugations: g(Op::Conjugation),
        }
    }
}

/// The summed degree-2 tensor of a sum of products, before relinearization.
struct Tensor<'a> {
    pairs: Vec<(&'a Ciphertext, &'a Ciphertext)>,
    level: usize,
    scale: f64,
    slots: usize,
}

impl<'a> Tensor<'a> {
    /// The products summed in component `k`: `x_u·y_v` over `u + v = k`, for every pair.
    fn products(&self, k: usize) -> Vec<(&'a RnsPoly, &'a RnsPoly)> {
        self.pairs
            .iter()
            .flat_map(|&(x, y)| {
                let (xs, ys) = ([&x.c0, &x.c1], [&y.c0, &y.c1]);
                (k.saturating_sub(1)..=k.min(1)).map(move |u| (xs[u], ys[k - u]))
            })
            .collect()
    }
}

/// Evaluates homomorphic operations with public evaluation keys.
pub struct Evaluator {
    params: Params,
    keys: Arc<EvalKeySet>,
    counters: Counters,
    /// The NTT-form permutations of the Galois elements used so far (each costs a pass over
    /// `N` table lookups to build, a few tenths of a millisecond at `N = 2^16`).
    automorphisms: Mutex<HashMap<u64, Arc<Automorphism>>>,
}

impl Evaluator {
    /// An evaluator for `params` using the given public evaluation keys.
    pub fn new(params: &Params, keys: Arc<EvalKeySet>) -> Self {
        Self {
            params: params.clone(),
            keys,
            counters: Counters::default(),
            automorphisms: Mutex::default(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Operation counts since creation or the last [`Evaluator::reset_counts`].
    pub fn counts(&self) -> OpCounts {
        self.counters.snapshot()
    }

    /// Zeroes the operation counters.
    pub fn reset_counts(&self) {
        self.counters
            .0
            .iter()
            .for_each(|c| c.store(0, Ordering::Relaxed));
    }

    fn check_ct(&self, ct: &Ciphertext) -> Result<(), CkksError> {
        if ct.n() != self.params.n()
            || ct.level() > self.params.max_level()
            || ct.c1.num_limbs() != ct.c0.num_limbs()
        {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(())
    }

    fn check_pair(
        &self,
        level_a: usize,
        scale_a: f64,
        level_b: usize,
        scale_b: f64,
    ) -> Result<(), CkksError> {
        Self::check_level(level_a, level_b)?;
        if (scale_a - scale_b).abs() > SCALE_TOLERANCE * scale_a.abs().max(scale_b.abs()) {
            return Err(CkksError::ScaleMismatch {
                lhs_log2: scale_a.log2(),
                rhs_log2: scale_b.log2(),
            });
        }
        Ok(())
    }

    fn check_level(lhs: usize, rhs: usize) -> Result<(), CkksError> {
        if lhs != rhs {
            return Err(CkksError::LevelMismatch { lhs, rhs });
        }
        Ok(())
    }

    fn check_slots(a: usize, b: usize) -> Result<(), CkksError> {
        if a != b {
            return Err(CkksError::SlotMismatch { lhs: a, rhs: b });
        }
        Ok(())
    }

    /// `a + b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let mut out = a.clone();
        self.add_assign(&mut out, b)?;
        Ok(out)
    }

    /// `a += b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.combine_assign(a, b, RnsPoly::add_assign)
    }

    /// Checks that `a` and `b` can be added, then applies `op` to both components.
    fn combine_assign(
        &self,
        a: &mut Ciphertext,
        b: &Ciphertext,
        op: fn(&mut RnsPoly, &RnsPoly, &[hetal_ring::Prime]),
    ) -> Result<(), CkksError> {
        self.check_ct(a)?;
        self.check_ct(b)?;
        self.check_pair(a.level(), a.scale, b.level(), b.scale)?;
        Self::check_slots(a.slots, b.slots)?;
        let primes = self.params.q_primes(a.level());
        op(&mut a.c0, &b.c0, primes);
        op(&mut a.c1, &b.c1, primes);
        Ok(())
    }

    /// `a - b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let mut out = a.clone();
        self.sub_assign(&mut out, b)?;
        Ok(out)
    }

    /// `a -= b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    pub fn sub_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.combine_assign(a, b, RnsPoly::sub_assign)
    }

    /// `-a`.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] for a foreign ciphertext.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let mut out = a.clone();
        let primes = self.params.q_primes(a.level());
        out.c0.neg_assign(primes);
        out.c1.neg_assign(primes);
        Ok(out)
    }

    /// `a + pt`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    pub fn add_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        self.check_pair(a.level(), a.scale, pt.level(), pt.scale)?;
        Self::check_slots(a.slots, pt.slots)?;
        let mut out = a.clone();
        out.c0.add_assign(&pt.poly, self.params.q_primes(a.level()));
        Ok(out)
    }

    /// `a · pt` (no rescale): the scale becomes the product of the scales.
    ///
    /// # Errors
    /// Level or slot mismatch.
    pub fn mul_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.mul_plain_sum(&[(a, pt)])
    }

    /// `Σ_i a_i · pt_i` (no rescale), each residue's sum of products reduced once instead of
    /// once per term: the inner sum of plaintext-matrix × ciphertext products. Every product
    /// must have the scale of the first; `n` plaintext multiplications.
    ///
    /// # Errors
    /// [`CkksError::NoOperands`] for an empty sum; level, scale or slot mismatch.
    pub fn mul_plain_sum(
        &self,
        terms: &[(&Ciphertext, &Plaintext)],
    ) -> Result<Ciphertext, CkksError> {
        let &(a, pt) = terms
            .first()
            .ok_or(CkksError::NoOperands("a sum of plaintext products"))?;
        let scale = a.scale * pt.scale;
        for &(x, p) in terms {
            self.check_plain_operand(x, p)?;
            Self::check_slots(a.slots, x.slots)?;
            self.check_pair(a.level(), scale, x.level(), x.scale * p.scale)?;
        }
        let [c0, c1] = self.sums_of_products(a.level(), |k, i| {
            terms
                .iter()
                .map(|(x, p)| ([&x.c0, &x.c1][k].limb(i), p.poly.limb(i)))
                .collect()
        });
        self.counters.add(Op::PtMult, terms.len() as u64);
        Ok(Ciphertext {
            c0,
            c1,
            scale,
            slots: a.slots,
        })
    }

    fn check_plain_operand(&self, a: &Ciphertext, pt: &Plaintext) -> Result<(), CkksError> {
        self.check_ct(a)?;
        Self::check_level(a.level(), pt.level())?;
        Self::check_slots(a.slots, pt.slots)
    }

    /// Per-limb residues of `round(c.re·s) + round(c.im·s)·X^{N/2}` in NTT form: the
    /// evaluation is `A + B·ψ^{N/2·e_j}`, so two values per limb chosen by the sign of
    /// `X^{N/2}` at each index.
    fn complex_constant(
        &self,
        level: usize,
        c: Complex64,
        s: f64,
    ) -> Result<Vec<[u64; 2]>, CkksError> {
        let (re, im) = ((c.re * s).round(), (c.im * s).round());
        if !(re.is_finite() && im.is_finite()) || re.abs() >= 1.7e38 || im.abs() >= 1.7e38 {
            return Err(CkksError::Encode {
                slot: 0,
                reason: format!("constant {c} times scale {s} is out of range"),
            });
        }
        Ok(self
            .params
            .q_primes(level)
            .iter()
            .map(|p| {
                let m = p.modulus();
                let (a, b) = (m.reduce_i128(re as i128), m.reduce_i128(im as i128));
                let bi = m.mul(b, p.sqrt_minus_one());
                [m.add(a, bi), m.sub(a, bi)]
            })
            .collect())
    }

    fn apply_constant(&self, poly: &mut RnsPoly, level: usize, consts: &[[u64; 2]], add: bool) {
        let order = self.params.ntt_order();
        poly.par_limbs_mut()
            .zip(self.params.q_primes(level))
            .zip(consts)
            .for_each(|((l, p), c)| {
                let m = p.modulus();
                let shoup = [m.shoup(c[0]), m.shoup(c[1])];
                for (j, x) in l.iter_mut().enumerate() {
                    let s = usize::from(!order.half_monomial_is_positive(j));
                    *x = if add {
                        m.add(*x, c[s])
                    } else {
                        m.mul_shoup(*x, c[s], shoup[s])
                    };
                }
            });
    }

    /// `a + c` in every slot.
    ///
    /// # Errors
    /// [`CkksError::Encode`] if `c·scale` is out of range.
    pub fn add_const(&self, a: &Ciphertext, c: Complex64) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let consts = self.complex_constant(a.level(), c, a.scale)?;
        let mut out = a.clone();
        self.apply_constant(&mut out.c0, a.level(), &consts, true);
        Ok(out)
    }

    /// `a · c` in every slot, without rescaling. The constant is scaled by the top prime
    /// `q_level`, so that the following [`Evaluator::rescale`] restores `a`'s scale exactly.
    ///
    /// # Errors
    /// [`CkksError::Encode`] if the constant is not finite.
    pub fn mul_const(&self, a: &Ciphertext, c: Complex64) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let level = a.level();
        let q = self.params.q_primes(level)[level].value() as f64;
        self.mul_const_with_scale(a, c, q)
    }

    /// `a · c` in every slot with the constant encoded as `round(c · const_scale)`: the result's
    /// scale is `a.scale() · const_scale`. Choosing `const_scale` lets a caller land a product on
    /// any target scale after the next rescale (`target · q_level / a.scale()`).
    ///
    /// # Errors
    /// [`CkksError::Encode`] if `c · const_scale` is not finite or above 2^127.
    pub fn mul_const_with_scale(
        &self,
        a: &Ciphertext,
        c: Complex64,
        const_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let level = a.level();
        let consts = self.complex_constant(level, c, const_scale)?;
        let mut out = a.clone();
        self.apply_constant(&mut out.c0, level, &consts, false);
        self.apply_constant(&mut out.c1, level, &consts, false);
        out.scale *= const_scale;
        self.counters.add(Op::ConstMult, 1);
        Ok(out)
    }

    /// `acc += a · c` in every slot, with the constant encoded as in
    /// [`Evaluator::mul_const_with_scale`], so `acc`'s scale must be `a.scale() · const_scale`.
    /// The product is accumulated limb by limb, without a temporary ciphertext (sums of
    /// constant multiples are most of polynomial evaluation's non-key-switching work).
    ///
    /// # Errors
    /// Level, scale or slot mismatch; [`CkksError::Encode`] as for
    /// [`Evaluator::mul_const_with_scale`].
    pub fn mul_const_add_assign(
        &self,
        acc: &mut Ciphertext,
        a: &Ciphertext,
        c: Complex64,
        const_scale: f64,
    ) -> Result<(), CkksError> {
        self.check_ct(acc)?;
        self.check_ct(a)?;
        self.check_pair(acc.level(), acc.scale, a.level(), a.scale * const_scale)?;
        Self::check_slots(acc.slots, a.slots)?;
        let level = a.level();
        let consts = self.complex_constant(level, c, const_scale)?;
        self.accumulate_constant(&mut acc.c0, &a.c0, level, &consts);
        self.accumulate_constant(&mut acc.c1, &a.c1, level, &consts);
        self.counters.add(Op::ConstMult, 1);
        Ok(())
    }

    /// `acc += a · c` with `c` as from [`Evaluator::complex_constant`].
    fn accumulate_constant(
        &self,
        acc: &mut RnsPoly,
        a: &RnsPoly,
        level: usize,
        consts: &[[u64; 2]],
    ) {
        let order = self.params.ntt_order();
        acc.par_limbs_mut()
            .zip(a.par_limbs())
            .zip(self.params.q_primes(level))
            .zip(consts)
            .for_each(|(((out, x), p), c)| {
                let m = p.modulus();
                let shoup = [m.shoup(c[0]), m.shoup(c[1])];
                for (j, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                    let s = usize::from(!order.half_monomial_is_positive(j));
                    *o = m.add(*o, m.mul_shoup(x, c[s], shoup[s]));
                }
            });
    }

    /// `a · i` (or `a · (−i)` when `negative`): a product by the monomial `±X^{N/2}`; uses no
    /// level and no key.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] for a foreign ciphertext.
    pub fn mul_i(&self, a: &Ciphertext, negative: bool) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let sign = if negative { -1.0 } else { 1.0 };
        let consts = self.complex_constant(a.level(), Complex64::new(0.0, sign), 1.0)?;
        let mut out = a.clone();
        self.apply_constant(&mut out.c0, a.level(), &consts, false);
        self.apply_constant(&mut out.c1, a.level(), &consts, false);
        Ok(out)
    }

    /// `a · b` with relinearization (no rescale): the scale becomes the product.
    ///
    /// # Errors
    /// Level or slot mismatch, or [`CkksError::MissingRelinKey`].
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.mul_sum_relin(&[(a, b)])
    }

    /// `Σ_i a_i · b_i` with **one** relinearization (no rescale): the degree-2 tensors are
    /// summed before the key switch, so `n` products cost `n` ct×ct mults but one key switch
    /// (and add its noise once). The scale is the products' (which must agree).
    ///
    /// # Errors
    /// [`CkksError::NoOperands`] for an empty sum; level, scale or slot mismatch between any
    /// operands; [`CkksError::MissingRelinKey`].
    pub fn mul_sum_relin(
        &self,
        pairs: &[(&Ciphertext, &Ciphertext)],
    ) -> Result<Ciphertext, CkksError> {
        let t = self.tensor(pairs)?;
        let rlk = self.keys.relin.as_ref().ok_or(CkksError::MissingRelinKey)?;
        // d2 is decomposed; d0 and d1 are summed limb by limb into the key switch's output.
        let [d2] = self.tensor_components(&t, [2]);
        let addends = [0, 1].map(|k| Some(Addend::Products(t.products(k))));
        let [c0, c1] = keyswitch::switch(&self.params, &d2, rlk, addends);
        self.counters.add(Op::CtMult, pairs.len() as u64);
        self.counters.add(Op::KeySwitchFull, 1);
        Ok(Ciphertext {
            c0,
            c1,
            scale: t.scale,
            slots: t.slots,
        })
    }

    /// `rescale(Σ_i a_i · b_i + addend)`: [`Evaluator::mul_sum_relin`], the optional `addend`
    /// (same level, scale and slots as the products) and [`Evaluator::rescale`], with the
    /// rescale folded into the relinearization's ModDown (one division by `q_level · P`): the
    /// rescale's NTTs are saved and the result is rounded once. Counted as the three ops.
    ///
    /// # Errors
    /// As [`Evaluator::mul_sum_relin`]; [`CkksError::NotEnoughLevels`] at level 0; level,
    /// scale or slot mismatch of `addend`.
    pub fn mul_sum_relin_rescale(
        &self,
        pairs: &[(&Ciphertext, &Ciphertext)],
        addend: Option<&Ciphertext>,
    ) -> Result<Ciphertext, CkksError> {
        let t = self.tensor(pairs)?;
        if t.level == 0 {
            return Err(CkksError::NotEnoughLevels { have: 0, need: 1 });
        }
        let rlk = self.keys.relin.as_ref().ok_or(CkksError::MissingRelinKey)?;
        let primes = self.params.q_primes(t.level);
        let [mut d0, mut d1, d2] = self.tensor_components(&t, [0, 1, 2]);
        if let Some(x) = addend {
            self.check_ct(x)?;
            self.check_pair(t.level, t.scale, x.level(), x.scale)?;
            Self::check_slots(t.slots, x.slots)?;
            d0.add_assign(&x.c0, primes);
            d1.add_assign(&x.c1, primes);
        }
        // The relinearization before its ModDown is over Q·P and P times too large: add P·d
        // to it and divide by q_level·P once.
        let dec = keyswitch::decompose(&self.params, &d2);
        let [mut e0, mut e1] = keyswitch::inner_product(&self.params, &dec, rlk);
        let level = t.level;
        let (c0, c1) = rayon::join(
            || {
                keyswitch::add_times_p(&self.params, &mut e0, &d0);
                keyswitch::mod_down_rescale(&self.params, e0, level)
            },
            || {
                keyswitch::add_times_p(&self.params, &mut e1, &d1);
                keyswitch::mod_down_rescale(&self.params, e1, level)
            },
        );
        self.counters.add(Op::CtMult, pairs.len() as u64);
        self.counters.add(Op::KeySwitchFull, 1);
        self.counters.add(Op::Rescale, 1);
        Ok(Ciphertext {
            c0,
            c1,
            scale: t.scale / primes[level].value() as f64,
            slots: t.slots,
        })
    }

    /// `K` polynomials over `Q_level` whose limb `i` of polynomial `k` is `Σ x·w mod q_i` over
    /// the pairs of limbs `terms(k, i)`: every residue one sum of products, reduced once.
    fn sums_of_products<'a, const K: usize>(
        &self,
        level: usize,
        terms: impl Fn(usize, usize) -> Vec<(&'a [u64], &'a [u64])> + Sync,
    ) -> [RnsPoly; K] {
        let primes = self.params.q_primes(level);
        // Every residue is written by the kernel.
        let mut out: [RnsPoly; K] =
            std::array::from_fn(|_| RnsPoly::scratch(self.params.n(), level + 1));
        // Limb-major, so that operands shared by several polynomials are read once.
        let mut rows: Vec<Vec<&mut [u64]>> = (0..=level).map(|_| Vec::with_capacity(K)).collect();
        for poly in out.iter_mut() {
            for (row, limb) in rows.iter_mut().zip(poly.limbs_mut()) {
                row.push(limb);
            }
        }
        rows.into_par_iter()
            .zip(primes)
            .enumerate()
            .for_each(|(i, (row, q))| {
                for (k, limb) in row.into_iter().enumerate() {
                    kernels::dot_product(&terms(k, i), q.modulus(), limb);
                }
            });
        out
    }

    /// Components `ks` of a tensor, computed.
    fn tensor_components<const K: usize>(&self, t: &Tensor, ks: [usize; K]) -> [RnsPoly; K] {
        let products = ks.map(|k| t.products(k));
        self.sums_of_products(t.level, |c, i| {
            products[c]
                .iter()
                .map(|(x, y)| (x.limb(i), y.limb(i)))
                .collect()
        })
    }

    /// The summed degree-2 tensors `(Σ x0·y0, Σ x0·y1 + x1·y0, Σ x1·y1)` of `pairs`, after
    /// checking that every operand shares the first's level and slots and every product its
    /// scale: the checked operands, whose components are computed where they are used.
    fn tensor<'a>(
        &self,
        pairs: &[(&'a Ciphertext, &'a Ciphertext)],
    ) -> Result<Tensor<'a>, CkksError> {
        let &(a, b) = pairs
            .first()
            .ok_or(CkksError::NoOperands("a sum of products"))?;
        let scale = a.scale * b.scale;
        for &(x, y) in pairs {
            for z in [x, y] {
                self.check_ct(z)?;
                Self::check_level(a.level(), z.level())?;
                Self::check_slots(a.slots, z.slots)?;
            }
            self.check_pair(a.level(), scale, a.level(), x.scale * y.scale)?;
        }
        Ok(Tensor {
            pairs: pairs.to_vec(),
            level: a.level(),
            scale,
            slots: a.slots,
        })
    }

    /// Divides by the top prime `q_level` with rounding: one level down, scale `/ q_level`.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] at level 0.
    pub fn rescale(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let mut out = a.clone();
        self.rescale_assign(&mut out)?;
        Ok(out)
    }

    /// In-place [`Evaluator::rescale`].
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] at level 0.
    pub fn rescale_assign(&self, a: &mut Ciphertext) -> Result<(), CkksError> {
        self.check_ct(a)?;
        let level = a.level();
        if level == 0 {
            return Err(CkksError::NotEnoughLevels { have: 0, need: 1 });
        }
        let top = &self.params.q_primes(level)[level];
        let keep = self.params.q_primes(level - 1);
        let rescaler = self.params.rescaler(level);
        // The top limb is the one divided out.
        let divide = |c: &mut RnsPoly| rescaler.apply_ntt(c, keep, &[top]);
        let (c0, c1) = (&mut a.c0, &mut a.c1);
        rayon::join(|| divide(c0), || divide(c1));
        a.scale /= top.value() as f64;
        self.counters.add(Op::Rescale, 1);
        Ok(())
    }

    /// Drops to `level` without dividing (the value and scale are unchanged).
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] if `level` is above the current one.
    pub fn drop_to_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        if level > a.level() {
            return Err(CkksError::NotEnoughLevels {
                have: a.level(),
                need: level,
            });
        }
        let mut out = a.clone();
        out.c0.truncate(level + 1);
        out.c1.truncate(level + 1);
        Ok(out)
    }

    /// Switches the key under which `a` decrypts, with a key from
    /// [`KeyGenerator::gen_switching_key_between`](crate::KeyGenerator::gen_switching_key_between).
    /// Uses no level.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] for a key or ciphertext of other parameters.
    pub fn switch_key(&self, a: &Ciphertext, key: &SwitchingKey) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let qp = self.params.qp_primes().len();
        if key.level != self.params.max_level()
            || key.digits.len() != self.params.digits(self.params.max_level()).count()
            || key
                .digits
                .iter()
                .any(|[b, k]| b.num_limbs() != qp || k.num_limbs() != qp || b.n() != a.n())
        {
            return Err(CkksError::ParamsMismatch);
        }
        let [c0, c1] =
            keyswitch::switch(&self.params, &a.c1, key, [Some(Addend::Poly(&a.c0)), None]);
        self.counters.add(Op::KeySwitchFull, 1);
        Ok(Ciphertext {
            c0,
            c1,
            scale: a.scale,
            slots: a.slots,
        })
    }

    /// ModRaise: a ciphertext at level 0 (modulo `q_0`) becomes a ciphertext at the top level
    /// by lifting its coefficients centred. It then decrypts to `m + q_0·I` with `I` a small
    /// integer polynomial (`|I| ≤ (h + 1)/2` for a secret of Hamming weight `h`): the input of
    /// bootstrapping's CoeffsToSlots. `a` may come from other parameters with the same `N` and
    /// the same `q_0` (the bootstrapper checks that).
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] unless `a` is at level 0; [`CkksError::ParamsMismatch`]
    /// for another ring degree.
    pub fn mod_raise(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        if a.n() != self.params.n() || a.c1.num_limbs() != a.c0.num_limbs() {
            return Err(CkksError::ParamsMismatch);
        }
        if a.level() != 0 {
            return Err(CkksError::NotEnoughLevels {
                have: a.level(),
                need: 0,
            });
        }
        let top = self.params.max_level();
        let q0 = &self.params.q_primes(0)[0];
        let raise = |c: &RnsPoly| {
            let mut coeffs = c.limb(0).to_vec();
            q0.inverse(&mut coeffs);
            let centred: Vec<i64> = coeffs.iter().map(|&x| q0.modulus().center(x)).collect();
            let primes = self.params.q_primes(top);
            let mut out = RnsPoly::from_signed(&centred, primes);
            out.ntt(primes);
            out
        };
        let (c0, c1) = rayon::join(|| raise(&a.c0), || raise(&a.c1));
        Ok(Ciphertext {
            c0,
            c1,
            scale: a.scale,
            slots: a.slots,
        })
    }

    fn automorphism(&self, g: u64) -> Result<Arc<Automorphism>, CkksError> {
        // A panic while holding the lock leaves the map consistent (inserts only).
        let mut built = self.automorphisms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(auto) = built.get(&g) {
            return Ok(Arc::clone(auto));
        }
        let auto = Arc::new(Automorphism::new(g, self.params.ntt_order()).ok_or(
            CkksError::InvalidParams(format!("Galois element {g} is even")),
        )?);
        built.insert(g, Arc::clone(&auto));
        Ok(auto)
    }

    /// Applies `σ_g` to a ciphertext whose `c1` was decomposed in `dec`: with the Galois key
    /// switching `s` to `σ_g^{-1}(s)`, `(u0, u1) = KS(c1)` and the result is
    /// `(σ_g(c0 + u0), σ_g(u1))`, so only the two output polynomials are permuted.
    fn apply_galois(
        &self,
        a: &Ciphertext,
        dec: &keyswitch::Decomposed,
        g: u64,
        rotation: i64,
    ) -> Result<Ciphertext, CkksError> {
        let level = a.level();
        let key = self.keys.galois_key(g, rotation, level)?;
        let auto = self.automorphism(g)?;
        let [c0, c1] = keyswitch::switch_decomposed(
            &self.params,
            dec,
            key,
            [Some(Addend::Poly(&a.c0)), None],
            Some(&auto),
        );
        Ok(Ciphertext {
            c0,
            c1,
            scale: a.scale,
            slots: a.slots,
        })
    }

    /// Rotates the slots left by `k` (right for negative `k`).
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when no key for `k` was generated.
    pub fn rotate(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let g = self.params.galois_element(k);
        if g == 1 {
            return Ok(a.clone());
        }
        self.keys.galois_key(g, k, a.level())?;
        let dec = keyswitch::decompose(&self.params, &a.c1);
        let out = self.apply_galois(a, &dec, g, k)?;
        self.counters.add(Op::Rotation, 1);
        self.counters.add(Op::KeySwitchFull, 1);
        Ok(out)
    }

    /// Rotates by each of `ks`, sharing one decomposition of `c1` (hoisting).
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when a key is missing (checked before any work).
    pub fn rotate_hoisted(&self, a: &Ciphertext, ks: &[i64]) -> Result<Vec<Ciphertext>, CkksError> {
        self.check_ct(a)?;
        let gs: Vec<u64> = ks.iter().map(|&k| self.params.galois_element(k)).collect();
        for (&g, &k) in gs.iter().zip(ks) {
            if g != 1 {
                self.keys.galois_key(g, k, a.level())?;
            }
        }
        let dec = keyswitch::decompose(&self.params, &a.c1);
        let mut out = Vec::with_capacity(ks.len());
        for (&g, &k) in gs.iter().zip(ks) {
            if g == 1 {
                out.push(a.clone());
            } else {
                out.push(self.apply_galois(a, &dec, g, k)?);
                self.counters.add(Op::Rotation, 1);
                self.counters.add(Op::KeySwitchHoisted, 1);
            }
        }
        Ok(out)
    }

    /// Double hoisting, step 1: the rotations of `a` by each of `ks` kept over `Q·P` (as
    /// [`ExtCiphertext`]s: no ModDown), sharing one decomposition of `c1`. A rotation by 0 is
    /// `P·a`. Counted as hoisted rotations.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when a key is missing (checked before any work).
    pub(crate) fn rotate_hoisted_ext(
        &self,
        a: &Ciphertext,
        ks: &[i64],
    ) -> Result<Vec<ExtCiphertext>, CkksError> {
        self.check_ct(a)?;
        let gs: Vec<u64> = ks.iter().map(|&k| self.params.galois_element(k)).collect();
        for (&g, &k) in gs.iter().zip(ks) {
            if g != 1 {
                self.keys.galois_key(g, k, a.level())?;
            }
        }
        let dec = gs
            .iter()
            .any(|&g| g != 1)
            .then(|| keyswitch::decompose(&self.params, &a.c1));
        let ext = |c: [RnsPoly; 2]| ExtCiphertext {
            c,
            level: a.level(),
            scale: a.scale,
            slots: a.slots,
        };
        gs.iter()
            .zip(ks)
            .map(|(&g, &k)| match &dec {
                Some(dec) if g != 1 => {
                    let key = self.keys.galois_key(g, k, a.level())?;
                    let [mut e0, e1] = keyswitch::inner_product(&self.params, dec, key);
                    keyswitch::add_times_p(&self.params, &mut e0, &a.c0);
                    self.counters.add(Op::Rotation, 1);
                    self.counters.add(Op::KeySwitchHoisted, 1);
                    Ok(ext(galois_pair(&*self.automorphism(g)?, [e0, e1])))
                }
                _ => Ok(ext([&a.c0, &a.c1].map(|c| {
                    let mut e = RnsPoly::zero(a.n(), self.params.ext_limbs(a.level()));
                    keyswitch::add_times_p(&self.params, &mut e, c);
                    e
                }))),
            })
            .collect()
    }

    /// Double hoisting, step 2: `Σ_i x_i · pt_i` over `Q·P`, each residue reduced once. Every
    /// product must have the scale of the first; `n` plaintext multiplications.
    ///
    /// # Errors
    /// [`CkksError::NoOperands`] for an empty sum; level, scale or slot mismatch.
    pub(crate) fn mul_plain_sum_ext(
        &self,
        terms: &[(&ExtCiphertext, &ExtPlaintext)],
    ) -> Result<ExtCiphertext, CkksError> {
        let &(a, pt) = terms
            .first()
            .ok_or(CkksError::NoOperands("a sum of plaintext products"))?;
        let (level, scale) = (a.level, a.scale * pt.scale);
        for &(x, p) in terms {
            Self::check_level(level, x.level)?;
            Self::check_level(level, p.level)?;
            Self::check_slots(a.slots, x.slots)?;
            Self::check_slots(a.slots, p.slots)?;
            self.check_pair(level, scale, level, x.scale * p.scale)?;
        }
        let limbs = self.params.ext_limbs(level);
        let mut c = [0, 1].map(|_| RnsPoly::zero(self.params.n(), limbs));
        let [c0, c1] = &mut c;
        c0.par_limbs_mut()
            .zip(c1.par_limbs_mut())
            .enumerate()
            .for_each(|(i, (o0, o1))| {
                let m = self.params.ext_prime(level, i).modulus();
                let limbs: Vec<(&[u64], &[u64], &[u64])> = terms
                    .iter()
                    .map(|(x, p)| (p.poly.limb(i), x.c[0].limb(i), x.c[1].limb(i)))
                    .collect();
                kernels::dot_product_pair_montgomery(&limbs, m, o0, o1);
            });
        self.counters.add(Op::PtMult, terms.len() as u64);
        Ok(ExtCiphertext {
            c,
            level,
            scale,
            slots: a.slots,
        })
    }

    /// Double hoisting, step 3: rotates `x` (over `Q·P`) by `k` and stays over `Q·P`: only
    /// `c1` is brought down (one ModDown), decomposed and key-switched; `P·c0` is added to
    /// the key switch's output as it is. Counted as a rotation with its own key switch.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when no key for `k` was generated.
    pub(crate) fn rotate_ext(&self, x: &ExtCiphertext, k: i64) -> Result<ExtCiphertext, CkksError> {
        let g = self.params.galois_element(k);
        if g == 1 {
            return Ok(x.clone());
        }
        let key = self.keys.galois_key(g, k, x.level)?;
        let c1 = keyswitch::mod_down(&self.params, x.c[1].clone(), x.level);
        let dec = keyswitch::decompose(&self.params, &c1);
        let [mut f0, f1] = keyswitch::inner_product(&self.params, &dec, key);
        keyswitch::ext_add_assign(&self.params, x.level, &mut f0, &x.c[0]);
        self.counters.add(Op::Rotation, 1);
        self.counters.add(Op::KeySwitchFull, 1);
        Ok(ExtCiphertext {
            c: galois_pair(&*self.automorphism(g)?, [f0, f1]),
            level: x.level,
            scale: x.scale,
            slots: x.slots,
        })
    }

    /// `acc += x` over `Q·P`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    pub(crate) fn add_ext_assign(
        &self,
        acc: &mut ExtCiphertext,
        x: &ExtCiphertext,
    ) -> Result<(), CkksError> {
        self.check_pair(acc.level, acc.scale, x.level, x.scale)?;
        Self::check_slots(acc.slots, x.slots)?;
        let level = acc.level;
        let [a0, a1] = &mut acc.c;
        rayon::join(
            || keyswitch::ext_add_assign(&self.params, level, a0, &x.c[0]),
            || keyswitch::ext_add_assign(&self.params, level, a1, &x.c[1]),
        );
        Ok(())
    }

    /// Double hoisting, last step: divides `x` by `q_level · P` with one rounding, back to a
    /// ciphertext one level down at scale `x.scale / q_level` (ModDown and rescale at once).
    /// Counted as a rescale.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] at level 0.
    pub(crate) fn mod_down_rescale_ext(&self, x: ExtCiphertext) -> Result<Ciphertext, CkksError> {
        if x.level == 0 {
            return Err(CkksError::NotEnoughLevels { have: 0, need: 1 });
        }
        let q = self.params.q_primes(x.level)[x.level].value() as f64;
        let [e0, e1] = x.c;
        let (c0, c1) = rayon::join(
            || keyswitch::mod_down_rescale(&self.params, e0, x.level),
            || keyswitch::mod_down_rescale(&self.params, e1, x.level),
        );
        self.counters.add(Op::Rescale, 1);
        Ok(Ciphertext {
            c0,
            c1,
            scale: x.scale / q,
            slots: x.slots,
        })
    }

    /// Complex conjugation of every slot.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] (rotation 0) when no conjugation key was generated.
    pub fn conjugate(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check_ct(a)?;
        let g = self.params.conjugation_element();
        self.keys.galois_key(g, 0, a.level())?;
        let dec = keyswitch::decompose(&self.params, &a.c1);
        let out = self.apply_galois(a, &dec, g, 0)?;
        self.counters.add(Op::Conjugation, 1);
        self.counters.add(Op::KeySwitchFull, 1);
        Ok(out)
    }

    /// Rotate-and-sum: slot `i` of the result is `Σ_{t < count} a[i + t·stride]` (cyclically),
    /// in `log2(count)` rotations by `stride·2^s`. `count` must be a power of two.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] if `count` is not a power of two; missing keys.
    pub fn rotate_sum(
        &self,
        a: &Ciphertext,
        stride: i64,
        count: usize,
    ) -> Result<Ciphertext, CkksError> {
        if !count.is_power_of_two() {
            return Err(CkksError::InvalidParams(format!(
                "rotate_sum count {count} is not a power of two"
            )));
        }
        let mut acc = a.clone();
        let mut step = stride;
        for _ in 0..count.trailing_zeros() {
            let r = self.rotate(&acc, step)?;
            self.add_assign(&mut acc, &r)?;
            step *= 2;
        }
        Ok(acc)
    }

    /// The rotations [`Evaluator::rotate_sum`] needs keys for.
    pub fn rotate_sum_rotations(stride: i64, count: usize) -> Vec<i64> {
        (0..count.trailing_zeros()).map(|s| stride << s).collect()
    }
}

/// `σ(c)` for both components of `c` (NTT form, any limbs).
fn galois_pair(auto: &Automorphism, c: [RnsPoly; 2]) -> [RnsPoly; 2] {
    let [u0, u1] = c;
    // A permutation writes every residue.
    let mut out = [&u0, &u1].map(|u| RnsPoly::scratch(u.n(), u.num_limbs()));
    let [o0, o1] = &mut out;
    rayon::join(|| auto.apply_ntt(&u0, o0), || auto.apply_ntt(&u1, o1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, Encoder, KeyGenerator, PrecisionStats};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn rotate_left(v: &[Complex64], k: usize) -> Vec<Complex64> {
        (0..v.len()).map(|i| v[(i + k) % v.len()]).collect()
    }

    /// Double hoisting's steps against the cleartext: hoisted rotations over `Q·P`, a sum of
    /// plaintext products there, a rotation of that sum, and the single division by
    /// `q_level·P` at the end, with the precision asserted in bits and the counts.
    #[test]
    fn extended_basis_steps_match_plaintext() {
        let params = Params::new_insecure(presets::insecure_test(12, 3)).unwrap();
        let mut kg = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(21));
        let sk = kg.gen_secret_key();
        let keys = Arc::new(kg.gen_eval_keys(&sk, &[1, 5, 16], false));
        let (enc, eval) = (Encoder::new(&params), Evaluator::new(&params, keys));
        let slots = params.max_slots();
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let mut random = |bound: f64| -> Vec<Complex64> {
            (0..slots)
                .map(|_| {
                    Complex64::new(
                        rng.random_range(-bound..bound),
                        rng.random_range(-bound..bound),
                    )
                })
                .collect()
        };
        let (v, d0, d1) = (random(1.0), random(1.0), random(1.0));
        let level = params.max_level();
        let scale = params.default_scale();
        let pt = enc.encode(&v, slots, level, scale).unwrap();
        let ct = sk
            .encrypt(&pt, &mut ChaCha20Rng::seed_from_u64(23))
            .unwrap();
        let q = params.q_primes(level)[level].value() as f64;
        let p0 = enc.encode_ext(&d0, slots, level, q).unwrap();
        let p1 = enc.encode_ext(&d1, slots, level, q).unwrap();
        let decrypt = |c: &Ciphertext| enc.decode(&sk.decrypt(c).unwrap());

        // rot(d0 ⊙ v + d1 ⊙ rot(v, 5), 16): baby steps 0 and 5, one giant step of 16.
        let babies = eval.rotate_hoisted_ext(&ct, &[0, 5]).unwrap();
        let inner = eval
            .mul_plain_sum_ext(&[(&babies[0], &p0), (&babies[1], &p1)])
            .unwrap();
        let mut sum = eval.rotate_ext(&inner, 16).unwrap();
        // Plus rot(v, 1) ⊙ d0, hoisted with the others' decomposition skipped.
        let extra = eval.rotate_hoisted_ext(&ct, &[1]).unwrap();
        eval.add_ext_assign(
            &mut sum,
            &eval.mul_plain_sum_ext(&[(&extra[0], &p0)]).unwrap(),
        )
        .unwrap();
        let out = eval.mod_down_rescale_ext(sum).unwrap();
        assert_eq!((out.level(), out.scale()), (level - 1, scale));

        let v5 = rotate_left(&v, 5);
        let inner: Vec<Complex64> = (0..slots).map(|i| d0[i] * v[i] + d1[i] * v5[i]).collect();
        let v1 = rotate_left(&v, 1);
        let want: Vec<Complex64> = rotate_left(&inner, 16)
            .iter()
            .zip(v1.iter().zip(&d0))
            .map(|(a, (b, c))| a + b * c)
            .collect();
        let stats = PrecisionStats::new(&want, &decrypt(&out));
        assert!(stats.min_bits >= 20.0, "{stats}");
        let c = eval.counts();
        assert_eq!(
            (c.rotations, c.keyswitch_hoisted, c.keyswitch_full),
            (3, 2, 1)
        );
        assert_eq!((c.pt_mult, c.rescales), (3, 1));

        // Misuse is an error: a product of mismatched scales, a missing key, level 0.
        let off = enc.encode_ext(&d0, slots, level, 2.0 * q).unwrap();
        assert!(matches!(
            eval.mul_plain_sum_ext(&[(&babies[0], &p0), (&babies[1], &off)]),
            Err(CkksError::ScaleMismatch { .. })
        ));
        assert!(matches!(
            eval.rotate_hoisted_ext(&ct, &[3]),
            Err(CkksError::MissingGaloisKey { .. })
        ));
        let bottom = eval.drop_to_level(&ct, 0).unwrap();
        let lifted = eval.rotate_hoisted_ext(&bottom, &[0]).unwrap();
        assert!(matches!(
            eval.mod_down_rescale_ext(lifted[0].clone()),
            Err(CkksError::NotEnoughLevels { .. })
        ));
    }
    /// A Galois key below the top level serves ciphertexts at or below its level, with the
    /// precision of a full key, single and hoisted, and refuses higher ones.
    #[test]
    fn lower_level_keys_rotate_up_to_their_level() {
        let params = Params::new_insecure(presets::insecure_test(12, 5)).unwrap();
        let mut kg = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(31));
        let sk = kg.gen_secret_key();
        let mut keys = kg.gen_eval_keys(&sk, &[], false);
        kg.add_rotation_keys_at(&mut keys, &sk, &[3, -2], 2)
            .unwrap();
        let (enc, eval) = (
            Encoder::new(&params),
            Evaluator::new(&params, Arc::new(keys)),
        );
        let slots = params.max_slots();
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        let v: Vec<Complex64> = (0..slots)
            .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect();
        let top = params.max_level();
        let pt = enc.encode(&v, slots, top, params.default_scale()).unwrap();
        let ct = sk.encrypt(&pt, &mut rng).unwrap();
        for level in [2, 1, 0] {
            let x = eval.drop_to_level(&ct, level).unwrap();
            let single = eval.rotate(&x, 3).unwrap();
            let hoisted = eval.rotate_hoisted(&x, &[3, -2]).unwrap();
            for (got, k) in [(&single, 3), (&hoisted[0], 3), (&hoisted[1], slots - 2)] {
                let stats = PrecisionStats::new(
                    &rotate_left(&v, k),
                    &enc.decode(&sk.decrypt(got).unwrap()),
                );
                assert!(
                    stats.min_bits >= 25.0,
                    "level {level}, rotation {k}: {stats}"
                );
            }
        }
        for level in [3, top] {
            let x = eval.drop_to_level(&ct, level).unwrap();
            assert!(matches!(
                eval.rotate(&x, 3),
                Err(CkksError::KeyLevel { rotation: 3, key_level: 2, level: l }) if l == level
            ));
            assert!(matches!(
                eval.rotate_hoisted(&x, &[-2]),
                Err(CkksError::KeyLevel { .. })
            ));
        }
        // Above the top is refused at generation.
        let mut set = EvalKeySet::default();
        assert!(matches!(
            kg.add_rotation_keys_at(&mut set, &sk, &[1], top + 1),
            Err(CkksError::NotEnoughLevels { .. })
        ));
    }
}
