//! Building blocks shared by both softmaxes: what they need beyond [`CkksOps`]
//! ([`SoftmaxOps`]: the primes, noiseless constants and plaintexts of a chosen scale), exact
//! scale bookkeeping, row windows and slot masks.
//!
//! # Scales
//!
//! The backends track scales exactly: a constant or a mask is encoded at the top prime `q_ℓ`, a
//! ciphertext product multiplies scales, a rescale divides by `q_ℓ`, and `add`/`sub` need equal
//! scales. With real primes (not powers of two) a product of two values of scale `Δ` lands on
//! `Δ·(Δ/q_ℓ)`, and a polynomial of degree `n` multiplies the relative deviation of its input's
//! scale by `n`: chained high-degree polynomials (HETAL's comparisons, our tournament) would
//! drive scales to 0 or infinity within a few dozen levels. Every polynomial therefore *lands*
//! its output on a chosen scale: its leading coefficient is a noiseless constant ciphertext
//! ([`SoftmaxOps::constant`]) whose scale is solved for from the scales of the other leaves and
//! the primes of the levels its products rescale at ([`SoftmaxOps::prime`]); a leaf of degree 1
//! lands it with a plaintext of a solved-for scale instead ([`SoftmaxOps::encode_scaled`]: no
//! key switch). Everything else only ever adds values on the same scale (rotations of one
//! ciphertext, or values landed on the same target scale and dropped to the same level).

use std::cell::RefCell;
use std::collections::BTreeMap;

use hetal_ckks::CkksError;
use num_complex::Complex64;

use crate::error::MlError;
use crate::matrix::BlockShape;
use crate::ops::{ensure_levels, Bootstrap, CkksOps, Leveled};
use crate::{CkksBackend, SimCt, SimPt, SlotSim};

/// What the softmaxes need beyond [`CkksOps`]: the primes, and noiseless constants of a chosen
/// scale. Implemented by both backends; neither operation touches a key or is counted as a
/// multiplication.
pub trait SoftmaxOps: CkksOps {
    /// The prime `q_level` a rescale at `level` divides the scale by.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] for level 0 or a level above the top.
    fn prime(&self, level: usize) -> Result<f64, CkksError>;

    /// A noiseless ciphertext holding `value` in every slot, with the level and slot count of
    /// `like` and the scale `scale` (a trivial encryption: no noise, no key).
    ///
    /// # Errors
    /// A constant out of range for the scale.
    fn constant(&self, like: &Self::Ct, value: f64, scale: f64) -> Result<Self::Ct, CkksError>;

    /// Encodes `values` as a multiplier for ciphertexts at `level` at the scale `scale` (where
    /// [`CkksOps::encode_plain`] takes the top prime): a mask whose product lands on a chosen
    /// scale, without the key switch a product with a noiseless ciphertext would pay.
    ///
    /// # Errors
    /// As [`CkksOps::encode_plain`]; a scale out of range.
    fn encode_scaled(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<Self::Pt, CkksError>;
}

impl SoftmaxOps for CkksBackend {
    fn prime(&self, level: usize) -> Result<f64, CkksError> {
        let params = self.params();
        if level == 0 || level > params.max_level() {
            return Err(CkksError::NotEnoughLevels {
                have: params.max_level(),
                need: level,
            });
        }
        params
            .q_primes(level)
            .last()
            .map(|q| q.value() as f64)
            .ok_or(CkksError::ParamsMismatch)
    }

    fn constant(
        &self,
        like: &hetal_ckks::Ciphertext,
        value: f64,
        scale: f64,
    ) -> Result<hetal_ckks::Ciphertext, CkksError> {
        let eval = self.evaluator();
        let mut zero = eval.sub(like, like)?;
        zero.set_scale(scale);
        eval.add_const(&zero, re(value))
    }

    fn encode_scaled(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<hetal_ckks::Plaintext, CkksError> {
        self.encoder().encode(values, values.len(), level, scale)
    }
}

impl SoftmaxOps for SlotSim {
    fn prime(&self, level: usize) -> Result<f64, CkksError> {
        // The simulated primes are private: one rescale of a one-slot value of scale 1 reads
        // q_level off (counted as a rescale only).
        let probe = self.ciphertext(vec![re(0.0)], level, 1.0)?;
        Ok(1.0 / self.rescale(&probe)?.scale())
    }

    fn constant(&self, like: &SimCt, value: f64, scale: f64) -> Result<SimCt, CkksError> {
        self.ciphertext(vec![re(value); like.slots()], like.level(), scale)
    }

    fn encode_scaled(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<SimPt, CkksError> {
        self.plaintext(values, level, scale)
    }
}

/// The primes a run rescales by, read once per level.
pub(crate) struct Primes<'a, O> {
    ops: &'a O,
    cache: RefCell<BTreeMap<usize, f64>>,
}

impl<'a, O: SoftmaxOps> Primes<'a, O> {
    /// An empty cache over `ops`.
    pub fn new(ops: &'a O) -> Self {
        Self {
            ops,
            cache: RefCell::new(BTreeMap::new()),
        }
    }

    /// `q_level`.
    pub fn at(&self, level: usize) -> Result<f64, MlError> {
        if let Some(&q) = self.cache.borrow().get(&level) {
            return Ok(q);
        }
        let q = self.ops.prime(level)?;
        self.cache.borrow_mut().insert(level, q);
        Ok(q)
    }
}

/// The `(scale, level)` a ciphertext product of operands at `(sa, la)` and `(sb, lb)` lands on
/// after its rescale (both brought to the lower level first, as [`mul_rescale`] does).
pub(crate) fn product_scale<O: SoftmaxOps>(
    primes: &Primes<'_, O>,
    (sa, la): (f64, usize),
    (sb, lb): (f64, usize),
) -> Result<(f64, usize), MlError> {
    let level = la.min(lb);
    let q = primes.at(level)?;
    Ok((sa * sb / q, level.saturating_sub(1)))
}

/// A real constant as the complex constant the backends take.
pub(crate) fn re(x: f64) -> Complex64 {
    Complex64::new(x, 0.0)
}

/// Drops `a` to `level` unless it is already there.
pub(crate) fn at_level<O: CkksOps>(ops: &O, a: &O::Ct, level: usize) -> Result<O::Ct, MlError> {
    if a.level() == level {
        Ok(a.clone())
    } else {
        Ok(ops.drop_to_level(a, level)?)
    }
}

/// `a · b`, both brought to the lower of their levels, relinearized and rescaled: one level.
pub(crate) fn mul_rescale<O: CkksOps>(ops: &O, a: &O::Ct, b: &O::Ct) -> Result<O::Ct, MlError> {
    let level = a.level().min(b.level());
    let a = at_level(ops, a, level)?;
    let b = at_level(ops, b, level)?;
    Ok(ops.mul_sum_relin_rescale(&[(&a, &b)])?)
}

/// `a · m` for a slot mask `m`, rescaled: one level, the scale of `a` kept.
pub(crate) fn mask_rescale<O: CkksOps>(
    ops: &O,
    a: &O::Ct,
    m: &[Complex64],
) -> Result<O::Ct, MlError> {
    let mut p = ops.mul_plain(a, &ops.encode_plain(m, a.level())?)?;
    ops.rescale_assign(&mut p)?;
    Ok(p)
}

/// `a · m` for a slot mask `m`, rescaled and landed exactly on the scale `target` (the mask
/// encoded at the scale that makes the rescale land there): one level.
pub(crate) fn mask_to_scale<O: SoftmaxOps>(
    ops: &O,
    a: &O::Ct,
    m: &[Complex64],
    target: f64,
) -> Result<O::Ct, MlError> {
    let pt = ops.encode_scaled(m, a.level(), multiplier_scale(ops, a, target)?)?;
    let mut p = ops.mul_plain(a, &pt)?;
    ops.rescale_assign(&mut p)?;
    Ok(p)
}

/// The scale a multiplier of `a` needs for the product, once rescaled, to land on `target`.
fn multiplier_scale<O: SoftmaxOps>(ops: &O, a: &O::Ct, target: f64) -> Result<f64, MlError> {
    Ok(target * ops.prime(a.level())? / a.scale())
}

/// `value · a`, rescaled and landed exactly on the scale `target` (the constant encoded at the
/// scale that makes the rescale land there): one level.
pub(crate) fn land<O: SoftmaxOps>(
    ops: &O,
    a: &O::Ct,
    value: f64,
    target: f64,
) -> Result<O::Ct, MlError> {
    let mut p = ops.mul_const_with_scale(a, re(value), multiplier_scale(ops, a, target)?)?;
    ops.rescale_assign(&mut p)?;
    Ok(p)
}

/// A noiseless ciphertext of value `c` in every slot, with the level and scale of `a`.
pub(crate) fn constant_like<O: SoftmaxOps>(ops: &O, a: &O::Ct, c: f64) -> Result<O::Ct, MlError> {
    Ok(ops.constant(a, c, a.scale())?)
}

/// [`constant_like`] with `c = 1`.
pub(crate) fn one_like<O: SoftmaxOps>(ops: &O, a: &O::Ct) -> Result<O::Ct, MlError> {
    constant_like(ops, a, 1.0)
}

/// A noiseless `value · mask` one level below `like`, with scale `scale`: a constant of that
/// scale at `like`'s level, times the mask, rescaled.
pub(crate) fn masked_constant<O: SoftmaxOps>(
    ops: &O,
    like: &O::Ct,
    mask: &[Complex64],
    value: f64,
    scale: f64,
) -> Result<O::Ct, MlError> {
    let scaled: Vec<Complex64> = mask.iter().map(|m| m * value).collect();
    mask_rescale(ops, &ops.constant(like, 1.0, scale)?, &scaled)
}

/// The level planner on one value: `a` with at least `need` levels, bootstrapped if short (see
/// [`ensure_levels`]); `stage` names it in errors.
pub(crate) fn refresh<O: Bootstrap>(
    ops: &O,
    a: O::Ct,
    need: usize,
    stage: &'static str,
) -> Result<O::Ct, MlError> {
    ensure_levels(ops, vec![a], need, stage)?
        .into_iter()
        .next()
        .ok_or(MlError::Empty)
}

/// `1 − a`.
pub(crate) fn one_minus<O: CkksOps>(ops: &O, a: &O::Ct) -> Result<O::Ct, MlError> {
    Ok(ops.add_const(&ops.neg(a)?, re(1.0))?)
}

/// `a + Rot(b, k)` (just `a + b` for a shift of 0).
fn add_rotated<O: CkksOps>(ops: &O, a: &O::Ct, b: &O::Ct, k: i64) -> Result<O::Ct, MlError> {
    if k == 0 {
        return Ok(ops.add(a, b)?);
    }
    Ok(ops.add(a, &ops.rotate(b, k)?)?)
}

/// `Σ_{m < len} Rot(a, step·m)`: slot `j` receives the sum of the `len` slots
/// `j, j + step, …` (a left window for `step = 1`, a fill to the right for `step = −1`).
///
/// Built from power-of-two windows `W_{2l} = W_l + Rot(W_l, step·l)` and combined low bits
/// first (`P ← W_l + Rot(P, step·l)`), so every rotation is by `±2^j`: `⌊log2 len⌋` doublings
/// plus one rotation per further set bit of `len`. No level.
pub(crate) fn window_sum<O: CkksOps>(
    ops: &O,
    a: &O::Ct,
    len: usize,
    step: i64,
) -> Result<O::Ct, MlError> {
    if len == 0 {
        return Ok(ops.sub(a, a)?);
    }
    let mut w = a.clone();
    let mut acc: Option<O::Ct> = None;
    let mut j = 0u32;
    loop {
        let l = 1usize << j;
        let shift = step * l as i64;
        if len & l != 0 {
            acc = Some(match acc {
                None => w.clone(),
                Some(p) => add_rotated(ops, &w, &p, shift)?,
            });
        }
        if (l << 1) > len {
            break;
        }
        w = add_rotated(ops, &w, &w, shift)?;
        j += 1;
    }
    acc.ok_or(MlError::Empty)
}

/// The rotations [`window_sum`] uses for `len` and `step` (sorted).
pub(crate) fn window_rotations(len: usize, step: i64) -> Vec<i64> {
    let mut ks = Vec::new();
    let mut j = 0u32;
    let mut have_acc = false;
    loop {
        let l = 1usize << j;
        let shift = step * l as i64;
        if len & l != 0 {
            if have_acc {
                ks.push(shift);
            }
            have_acc = true;
        }
        if (l << 1) > len {
            break;
        }
        ks.push(shift);
        j += 1;
    }
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// `⌈log2 n⌉` for `n ≥ 1` (0 for 1).
pub(crate) fn ceil_log2(n: usize) -> usize {
    n.max(1).next_power_of_two().trailing_zeros() as usize
}

/// A slot mask over one block: `f(i, k)` at slot `i·s1 + k`.
pub(crate) fn block_mask(shape: BlockShape, f: impl Fn(usize, usize) -> f64) -> Vec<Complex64> {
    (0..shape.slots())
        .map(|s| re(f(s / shape.s1(), s % shape.s1())))
        .collect()
}

/// `v` in the class columns `k < c` of every row, 0 elsewhere.
pub(crate) fn class_mask(shape: BlockShape, c: usize, v: f64) -> Vec<Complex64> {
    block_mask(shape, |_, k| if k < c { v } else { 0.0 })
}

/// `v` in column 0 of every row, 0 elsewhere.
pub(crate) fn col0_mask(shape: BlockShape, v: f64) -> Vec<Complex64> {
    class_mask(shape, 1, v)
}

/// An error for numerical set-up failures (a polynomial that cannot be factored).
pub(crate) fn numeric(msg: String) -> MlError {
    MlError::Ckks(CkksError::InvalidParams(msg))
}
