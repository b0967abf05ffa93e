//! Our DiagATB: the gradient `Aᵀ·B` with hoisted shifts of `A` and merged partial column sums
//! under baby-step giant-step masks, written straight into a [`PackedMatrix`] (see the module
//! doc of [`crate::ours`]).
//!
//! ```text
//! R_k[r] = Rot(E~[r], k), Rot(E~[r], k − s1), 0 < k < c             one hoisted batch per r
//! RotLeft_k = R_{k−s1} + mask_k ⊙ (R_k − R_{k−s1})                  1 level
//! Z_j[r] = RotLeft_2j + i·RotLeft_2j+1                               (RotLeft_0 = E~[r])
//! for each output ciphertext q (block columns t = q·L/c + u, u < L/c):
//!     for t in q, j < c/2:
//!         P  = Σ_r Z_j[r] ⊙ X[r][t]                                 ct×ct, 1 level
//!         P  = Σ_{e<L1} Rot(P, e·s1)                                ladder, log2 L1 F
//!         Y_d += P ⊙ M_{j,u,d},  d < L2                             L2 plaintext mults
//!     Y = Σ_d Rot(Y_d, d·L1·s1)                                     Horner, L2 − 1 F
//!     Y = Σ_{g < s0/L} Rot(Y, g·L·s1)                               ladder, log2(s0/L) F
//!     out[q] = Y + conj(Y)                                          mask level, 1 conj
//! ```
//! `M_{j,u,d}` is `½` in column `m` on the rows `x` with `x ≡ u·c + (m+2j) mod c + d·L1`
//! and `−i/2` on the rows `x ≡ u·c + (m+2j+1) mod c + d·L1 (mod L)`. Row `x` of `Y_d` then
//! collects the `L1`-row window starting at `x`, and row `ρ` of the result the windows starting
//! at `ρ + d·L1 + g·L` for all `d, g`: the whole column, in the row (modulo `L`) of the class it
//! belongs to. Levels: `E` loses 3 (the shift masks, the product, the placement masks), `X` 2.

use num_complex::Complex64;
use rayon::prelude::*;

use super::packed::{PackedLayout, PackedMatrix};
use super::{
    accumulate, drop_all, ladder, ladder_amounts, levels_left, log2, mask, rescale_real, rotations,
    select, Cost, CostModel,
};
use crate::error::MlError;
use crate::matrix::{BlockShape, EncMatrix};
use crate::ops::{CkksOps, Leveled};

/// Levels our DiagATB consumes from `A` (the error `P − Y`) and from `B` (the features): the
/// output sits at `min(level(A) − 3, level(B) − 2)` (HETAL: 4 and 2, PRotUp 3 and 3).
pub const OURS_ATB_DEPTHS: (usize, usize) = (3, 2);

/// Masks are encoded once per call when there are at most this many distinct ones, else at
/// each use.
const MASK_CACHE: usize = 256;

/// How our DiagATB sums the columns: windows of `window = L1` rows by a ladder on each
/// product, then `shifts = L2` masks per product and one Horner chain per output ciphertext;
/// the output's period is `L = L1·L2` (`c ≤ L ≤ s0`), `L/c` block columns per ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AtbPlan {
    c: usize,
    window: usize,
    shifts: usize,
}

impl AtbPlan {
    /// A plan with windows of `window` rows and `shifts` masks per product.
    ///
    /// # Errors
    /// [`MlError::BadPeriod`] unless `c ≥ 2`, `window` and `shifts` are powers of two and
    /// `c ≤ window·shifts ≤ s0`.
    pub fn new(shape: BlockShape, c: usize, window: usize, shifts: usize) -> Result<Self, MlError> {
        let bad = |reason: String| MlError::BadPeriod {
            period: c,
            s0: shape.s0(),
            s1: shape.s1(),
            reason,
        };
        if c < 2 || !c.is_power_of_two() || c > shape.s0() {
            return Err(bad("DiagATB needs 2 ≤ c ≤ s0, a power of two".into()));
        }
        if !window.is_power_of_two() || !shifts.is_power_of_two() {
            return Err(bad("window and shifts must be powers of two".into()));
        }
        let period = window.saturating_mul(shifts);
        if period < c || period > shape.s0() {
            return Err(bad(format!(
                "the period window·shifts = {period} must lie in [c, s0]"
            )));
        }
        Ok(Self { c, window, shifts })
    }

    /// [`AtbPlan::best_with`] the default [`CostModel`].
    ///
    /// # Errors
    /// [`MlError::BadPeriod`] unless `2 ≤ c ≤ s0` is a power of two.
    pub fn best(a: usize, b: usize, c: usize, shape: BlockShape) -> Result<Self, MlError> {
        Self::best_with(&CostModel::default(), a, b, c, shape)
    }

    /// The plan with the lowest `model` cost for `Aᵀ (c × a) · B (a × b)` (ties: fewer key
    /// switches, then fewer output ciphertexts).
    ///
    /// # Errors
    /// [`MlError::BadPeriod`] unless `2 ≤ c ≤ s0` is a power of two.
    pub fn best_with(
        model: &CostModel,
        a: usize,
        b: usize,
        c: usize,
        shape: BlockShape,
    ) -> Result<Self, MlError> {
        let mut best: Option<(f64, u64, usize, Self)> = None;
        let log_s0 = shape.log_s0();
        for l1 in 0..=log_s0 {
            for l2 in 0..=log_s0 - l1 {
                let Ok(plan) = Self::new(shape, c, 1 << l1, 1 << l2) else {
                    continue;
                };
                let cost = atb_cost(a, b, shape, plan);
                let key = (
                    model.cost(&cost),
                    cost.key_switches(),
                    plan.outputs(b, shape),
                );
                let better = best.is_none_or(|(w, k, n, _)| {
                    key.0 < w - 1e-9 || (key.0 <= w + 1e-9 && (key.1, key.2) < (k, n))
                });
                if better {
                    best = Some((key.0, key.1, key.2, plan));
                }
            }
        }
        // Checked by `new` for l1 = l2 = 0 … log2 s0 unless c is bad.
        best.map(|b| b.3)
            .map_or_else(|| Self::new(shape, c, c, 1), Ok)
    }

    /// The period `c`.
    pub fn c(&self) -> usize {
        self.c
    }

    /// Rows per window, `L1`.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Masks per product, `L2`.
    pub fn shifts(&self) -> usize {
        self.shifts
    }

    /// The output's period `L = L1·L2`.
    pub fn period(&self) -> usize {
        self.window * self.shifts
    }

    /// Output ciphertexts for `b` feature columns: `⌈nb / (L/c)⌉`.
    pub fn outputs(&self, b: usize, shape: BlockShape) -> usize {
        b.div_ceil(shape.s1()).div_ceil(self.period() / self.c)
    }
}

/// `C = Aᵀ·B` by our DiagATB with the best [`AtbPlan`]: same operands as
/// [`diag_atb`](crate::diag_atb) (`A` in `ColTiled { period: c }`, `B` in `Blocks`); the
/// gradient comes out packed with the plan's period ([`to_blocks`](super::to_blocks) gives
/// HETAL's layout). Levels: [`OURS_ATB_DEPTHS`]; counts: [`atb_cost`].
///
/// # Errors
/// As [`diag_atb`](crate::diag_atb); the rotation keys needed are [`atb_rotations`].
pub fn atb<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
) -> Result<PackedMatrix<O::Ct>, MlError> {
    let c = crate::matmul::check_atb(a, b)?;
    let plan = AtbPlan::best(a.rows(), b.cols(), c, b.shape())?;
    atb_with(ops, a, b, plan)
}

/// The masks `M_{j,u,d}`, encoded once when there are few of them.
struct Masks<'a, O: CkksOps> {
    ops: &'a O,
    shape: BlockShape,
    plan: AtbPlan,
    level: usize,
    cache: Option<Vec<O::Pt>>,
}

impl<'a, O: CkksOps> Masks<'a, O> {
    fn new(ops: &'a O, shape: BlockShape, plan: AtbPlan, level: usize) -> Result<Self, MlError> {
        let per_ct = plan.period() / plan.c;
        let count = per_ct * (plan.c / 2) * plan.shifts;
        let mut masks = Self {
            ops,
            shape,
            plan,
            level,
            cache: None,
        };
        if count <= MASK_CACHE {
            let mut all = Vec::with_capacity(count);
            for u in 0..per_ct {
                for j in 0..plan.c / 2 {
                    for d in 0..plan.shifts {
                        all.push(masks.encode(j, u, d)?);
                    }
                }
            }
            masks.cache = Some(all);
        }
        Ok(masks)
    }

    fn values(&self, j: usize, u: usize, d: usize) -> Vec<Complex64> {
        let (c, period) = (self.plan.c, self.plan.period());
        let offset = d * self.plan.window;
        mask(self.shape, |x, m| {
            let row = x % period;
            let re = (u * c + (m + 2 * j) % c + offset) % period;
            let im = (u * c + (m + 2 * j + 1) % c + offset) % period;
            if row == re {
                Complex64::new(0.5, 0.0)
            } else if row == im {
                Complex64::new(0.0, -0.5)
            } else {
                Complex64::new(0.0, 0.0)
            }
        })
    }

    fn encode(&self, j: usize, u: usize, d: usize) -> Result<O::Pt, MlError> {
        Ok(self.ops.encode_plain(&self.values(j, u, d), self.level)?)
    }

    /// `acc += p ⊙ M_{j,u,d}`.
    fn apply(
        &self,
        acc: &mut Option<O::Ct>,
        p: &O::Ct,
        (j, u, d): (usize, usize, usize),
    ) -> Result<(), MlError> {
        let term = match &self.cache {
            Some(all) => {
                let idx = (u * (self.plan.c / 2) + j) * self.plan.shifts + d;
                let m = all.get(idx).ok_or(MlError::BadBlocks {
                    what: "ours::atb masks",
                    expected: idx + 1,
                    found: all.len(),
                })?;
                self.ops.mul_plain(p, m)?
            }
            None => self.ops.mul_plain(p, &self.encode(j, u, d)?)?,
        };
        accumulate(self.ops, acc, term)?;
        Ok(())
    }
}

/// `Z_j` for every `j < c/2` from one block row of `E~` at `top` (one level above the
/// products).
fn shifted_copies<O: CkksOps>(
    ops: &O,
    er: &O::Ct,
    c: usize,
    s1: usize,
    left_masks: &[O::Pt],
) -> Result<Vec<O::Ct>, MlError> {
    let s1i = s1 as i64;
    let ks: Vec<i64> = (1..c as i64).flat_map(|k| [k, k - s1i]).collect();
    let rots = rotations(ops, er, &ks)?;
    // RotLeft_k as (unmasked part R_{k−s1}, masked part mask_k ⊙ (R_k − R_{k−s1})).
    let left = |k: usize| -> Result<(&O::Ct, Option<O::Ct>), MlError> {
        if k == 0 {
            return Ok((er, None));
        }
        let missing = MlError::BadBlocks {
            what: "ours::atb shifted copies",
            expected: ks.len(),
            found: rots.len(),
        };
        let r = rots.get(2 * (k - 1)).ok_or(missing.clone())?;
        let low = rots.get(2 * (k - 1) + 1).ok_or(missing.clone())?;
        let m = left_masks.get(k - 1).ok_or(missing)?;
        Ok((low, Some(ops.mul_plain(&ops.sub(r, low)?, m)?)))
    };
    (0..c / 2)
        .map(|j| {
            let (re_low, re_masked) = left(2 * j)?;
            let (im_low, im_masked) = left(2 * j + 1)?;
            let low = ops.add(re_low, &ops.mul_i(im_low, false)?)?;
            let mut masked = im_masked
                .map(|x| ops.mul_i(&x, false))
                .transpose()?
                .ok_or(MlError::Empty)?;
            if let Some(re) = re_masked {
                ops.add_assign(&mut masked, &re)?;
            }
            ops.rescale_assign(&mut masked)?;
            let low = ops.drop_to_level(&low, masked.level())?;
            Ok(ops.add(&low, &masked)?)
        })
        .collect()
}

/// [`atb`] with a given plan.
///
/// # Errors
/// As [`atb`]; [`MlError::BadPeriod`] when the plan is for another `c`.
pub fn atb_with<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    plan: AtbPlan,
) -> Result<PackedMatrix<O::Ct>, MlError> {
    let c = crate::matmul::check_atb(a, b)?;
    let shape = b.shape();
    if plan.c != c {
        return Err(MlError::BadPeriod {
            period: c,
            s0: shape.s0(),
            s1: shape.s1(),
            reason: format!("the DiagATB plan is for c = {}", plan.c),
        });
    }
    let (na, nb) = b.grid();
    let s1 = shape.s1();
    let period = plan.period();
    let per_ct = period / c;
    let lp = levels_left("ours::atb A", a.level(), 1)?.min(b.level());
    levels_left("ours::atb product", lp, 2)?;
    let layout = PackedLayout::new(a.cols(), b.cols(), shape, c, period)?;

    // Z_j[r] at lp.
    let left_masks = (1..c)
        .map(|k| {
            ops.encode_plain(
                &select(shape, Complex64::new(1.0, 0.0), |_, m| m + k < s1),
                lp + 1,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let zs = drop_all(ops, a.blocks(), lp + 1)?
        .iter()
        .map(|er| shifted_copies(ops, er, c, s1, &left_masks))
        .collect::<Result<Vec<_>, _>>()?;
    let xs = drop_all(ops, b.blocks(), lp)?;
    let masks = Masks::new(ops, shape, plan, lp - 1)?;
    let step = (plan.window * s1) as i64;

    // Each output ciphertext is independent of the others: they run in parallel, which keeps
    // both cores busy where the low-level operations alone parallelize poorly.
    let output = |q: usize| -> Result<O::Ct, MlError> {
        let mut ys: Vec<Option<O::Ct>> = vec![None; plan.shifts];
        for u in 0..per_ct {
            let t = q * per_ct + u;
            if t >= nb {
                break;
            }
            for j in 0..c / 2 {
                let pairs = zs
                    .iter()
                    .enumerate()
                    .map(|(r, zr)| {
                        let z = zr.get(j).ok_or(MlError::Empty)?;
                        let x = xs.get(r * nb + t).ok_or(MlError::BadBlocks {
                            what: "ours::atb B blocks",
                            expected: na * nb,
                            found: xs.len(),
                        })?;
                        Ok((z, x))
                    })
                    .collect::<Result<Vec<_>, MlError>>()?;
                let mut p = ops.mul_sum_relin_rescale(&pairs)?;
                ladder(ops, &mut p, s1 as i64, plan.window.trailing_zeros())?;
                for (d, y) in ys.iter_mut().enumerate() {
                    masks.apply(y, &p, (j, u, d))?;
                }
            }
        }
        // Horner: Y = Y_0 + Rot(Y_1 + Rot(Y_2 + …, L1·s1), L1·s1).
        let mut acc: Option<O::Ct> = None;
        for y in ys.into_iter().rev() {
            let y = y.ok_or(MlError::Empty)?;
            acc = Some(match acc {
                None => y,
                Some(prev) => ops.add(&y, &ops.rotate(&prev, step)?)?,
            });
        }
        let mut y = acc.ok_or(MlError::Empty)?;
        ladder(
            ops,
            &mut y,
            (period * s1) as i64,
            (shape.s0() / period).trailing_zeros(),
        )?;
        rescale_real(ops, Some(y))
    };
    let out = (0..layout.cts())
        .into_par_iter()
        .map(output)
        .collect::<Result<Vec<_>, _>>()?;
    PackedMatrix::from_blocks(layout, out)
}

/// The exact counters of [`atb_with`] for `Aᵀ (c × a) · B (a × b)` in blocks `shape`.
pub fn atb_cost(a: usize, b: usize, shape: BlockShape, plan: AtbPlan) -> Cost {
    let (na, nb) = shape.grid(a, b);
    let (na, nb) = (na as u64, nb as u64);
    let c = plan.c as u64;
    let h = c / 2;
    let products = h * nb;
    let groups = plan.outputs(b, shape) as u64;
    let period = plan.period();
    let per_row = Cost::sum(&[Cost::batch(2 * c - 2), Cost::light(c - 1, 0, h)]);
    let per_product = Cost::sum(&[
        Cost::full(log2(plan.window)),
        Cost::light(plan.shifts as u64, 0, 1),
    ]);
    let per_group = Cost::sum(&[
        Cost::full(plan.shifts as u64 - 1 + log2(shape.s0() / period)),
        Cost::light(0, 0, 1),
        Cost::conjugations(1),
    ]);
    let distinct = (period / plan.c) as u64 * h * plan.shifts as u64;
    let masks = if distinct <= MASK_CACHE as u64 {
        distinct
    } else {
        products * plan.shifts as u64
    };
    Cost::sum(&[
        per_row.times(na),
        Cost::products(h * nb, na),
        per_product.times(products),
        per_group.times(groups),
        Cost::encoded(c - 1 + masks),
    ])
}

/// The rotations [`atb_with`] uses (sorted); it also needs the conjugation key.
pub fn atb_rotations(shape: BlockShape, plan: AtbPlan) -> Vec<i64> {
    let s1 = shape.s1() as i64;
    let mut ks: Vec<i64> = (1..plan.c as i64).flat_map(|k| [k, k - s1]).collect();
    ks.extend(ladder_amounts(s1, plan.window.trailing_zeros()));
    if plan.shifts > 1 {
        ks.push(plan.window as i64 * s1);
    }
    ks.extend(ladder_amounts(
        (plan.period() * shape.s1()) as i64,
        (shape.s0() / plan.period()).trailing_zeros(),
    ));
    ks.sort_unstable();
    ks.dedup();
    ks
}
