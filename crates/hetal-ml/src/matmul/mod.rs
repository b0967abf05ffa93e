//! HETAL's encrypted matrix products, DiagABT (`A·Bᵀ`) and DiagATB (`Aᵀ·B`), written once
//! against [`CkksOps`].
//!
//! Source: Lee, Lee, Kim, Shin, Lee, *HETAL: Efficient Privacy-preserving Transfer Learning
//! with Homomorphic Encryption* (ICML 2023), §4 and Appendix, as reconstructed in the
//! project's reference notes (the encrypted code is closed; the reconstruction reproduces every
//! operation count of the corrected Table 7, which [`TABLE7`] holds and the tests assert).
//!
//! Both products use the **complex trick**: two diagonals of the result share one ciphertext
//! product, the second riding in the imaginary part (multiplying by `i` is free), and a final
//! `Re(x) = x + conj(x)` (with the `1/2` folded into the last masks) separates them. With `c`
//! the padded class count, `na × nb` the block grid of the features:
//!
//! | | ct×ct `Mult` | plaintext `CMult` | `Rot` | depth |
//! |---|---|---|---|---|
//! | [`diag_abt`] | `(c/2)·na·nb` | `c·na` | `(c/2)·(nb + 2·na·log2 s1)` | 3 |
//! | [`diag_atb`] | `(c/2)·na·nb` | `(c/2)·(na + nb)` | `(c/2)·(2·na + nb·log2 s0)` | A: 4, B: 2 |
//! | [`diag_atb`], [`AtbVariant::PRotUp`] | `(c/2)·na·nb` | `c/2·nb + na + (c/2−1)·na·nb` | `2·na + (c/2−1)·na + na·nb + (c/2)·nb·log2 s0` | A: 3, B: 3 |
//!
//! (DiagATB's depths are for `c ≥ 4`; with `c = 2` the shifted copies are not needed and both
//! variants take A 3 and B 2 levels.) [`abt_cost`] and [`atb_cost`] give these counts;
//! [`reference_abt_cost`] and [`reference_atb_cost`] are the reference's formulas, equal to ours
//! whenever `na = 1` (always so in HETAL's training, where `s0` is the batch size); for
//! `na > 1` the reference's DiagATB formula charges the first `RotLeft` once instead of once
//! per block row, which its own pseudo-code does not do.
//!
//! One conjugation per output block is not counted in `CMult / Mult / Rot` (HETAL does not
//! count it either). No hoisting, no baby-step giant-step: these are the faithful algorithms;
//! faster variants are for later.
//!
//! Every rotation a product needs is listed by [`abt_rotations`] / [`atb_rotations`]
//! (the simulator's [`SlotSim::rotations_used`](crate::SlotSim::rotations_used) gives the same
//! list); the conjugation key is needed too.

mod abt;
mod atb;

pub(crate) use abt::check_abt;
pub use abt::{abt_rotations, diag_abt, ABT_DEPTH};
pub(crate) use atb::check_atb;
pub use atb::{atb_rotations, diag_atb, AtbVariant};

use std::fmt;

use hetal_ckks::{CkksError, OpCounts};

use crate::error::MlError;
use crate::matrix::BlockShape;
use crate::ops::{CkksOps, Leveled};

/// Operation counts in HETAL's terms: `CMult` (plaintext or constant multiplications),
/// `Mult` (ciphertext multiplications), `Rot` (rotations). Conjugations are not included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HetalCounts {
    /// Plaintext (mask) and constant multiplications.
    pub cmult: u64,
    /// Ciphertext × ciphertext multiplications.
    pub mult: u64,
    /// Rotations.
    pub rot: u64,
}

impl HetalCounts {
    /// `CMult / Mult / Rot` as listed in HETAL's Table 7.
    pub const fn new(cmult: u64, mult: u64, rot: u64) -> Self {
        Self { cmult, mult, rot }
    }

    /// Reads HETAL's three counts off the backend counters.
    pub fn from_counts(c: &OpCounts) -> Self {
        Self {
            cmult: c.pt_mult + c.const_mult,
            mult: c.ct_mult,
            rot: c.rotations,
        }
    }
}

impl fmt::Display for HetalCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {} / {}", self.cmult, self.mult, self.rot)
    }
}

/// One row of HETAL's corrected Table 7: counts `CMult / Mult / Rot` at `2^15` slots, level 12,
/// with `s0 = a` (the batch), for DiagABT, DiagATB and the prior-art baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table7Row {
    /// Rows of the features (the batch), also `s0`.
    pub a: usize,
    /// Feature dimension.
    pub b: usize,
    /// Padded class count.
    pub c: usize,
    /// DiagABT.
    pub diag_abt: HetalCounts,
    /// Prior art for `A·Bᵀ` (column-major packing).
    pub col_major: HetalCounts,
    /// DiagATB.
    pub diag_atb: HetalCounts,
    /// Prior art for `Aᵀ·B` (row-major packing).
    pub row_major: HetalCounts,
}

impl Table7Row {
    /// The block shape of the row: `s0 = a`, `s1 = 2^15 / a`.
    ///
    /// # Errors
    /// [`MlError::BadBlockShape`] (not for the rows of [`TABLE7`]).
    pub fn shape(&self) -> Result<BlockShape, MlError> {
        BlockShape::with_slots(self.a, TABLE7_SLOTS)
    }
}

/// Slots of HETAL's parameters (N = 2^16).
pub const TABLE7_SLOTS: usize = 1 << 15;

/// The level Table 7 was measured at.
pub const TABLE7_LEVEL: usize = 12;

const fn h(cmult: u64, mult: u64, rot: u64) -> HetalCounts {
    HetalCounts::new(cmult, mult, rot)
}

/// HETAL's corrected Table 7 (the published table had counting bugs), `CMult / Mult / Rot`.
pub const TABLE7: [Table7Row; 5] = [
    Table7Row {
        a: 128,
        b: 128,
        c: 4,
        diag_abt: h(4, 2, 34),
        col_major: h(8, 4, 63),
        diag_atb: h(4, 2, 18),
        row_major: h(8, 4, 63),
    },
    Table7Row {
        a: 256,
        b: 256,
        c: 8,
        diag_abt: h(8, 8, 64),
        col_major: h(24, 16, 191),
        diag_atb: h(12, 8, 72),
        row_major: h(24, 16, 191),
    },
    Table7Row {
        a: 512,
        b: 769,
        c: 4,
        diag_abt: h(4, 26, 50),
        col_major: h(56, 52, 495),
        diag_atb: h(28, 26, 238),
        row_major: h(56, 52, 495),
    },
    Table7Row {
        a: 1024,
        b: 769,
        c: 8,
        diag_abt: h(8, 100, 140),
        col_major: h(208, 200, 2047),
        diag_atb: h(104, 100, 1008),
        row_major: h(208, 200, 2047),
    },
    Table7Row {
        a: 2048,
        b: 769,
        c: 16,
        diag_abt: h(16, 392, 456),
        col_major: h(800, 784, 8703),
        diag_atb: h(400, 392, 4328),
        row_major: h(800, 784, 8703),
    },
];

fn grid(a: usize, b: usize, shape: BlockShape) -> (u64, u64) {
    let (na, nb) = shape.grid(a, b);
    (na as u64, nb as u64)
}

/// Our DiagABT's exact counts for `A (a × b) · Bᵀ (b × c)` in blocks `shape`.
pub fn abt_cost(a: usize, b: usize, c: usize, shape: BlockShape) -> HetalCounts {
    let (na, nb) = grid(a, b, shape);
    let half = (c / 2) as u64;
    HetalCounts {
        cmult: 2 * half * na,
        mult: half * na * nb,
        rot: half * (nb + 2 * na * u64::from(shape.log_s1())),
    }
}

/// Our DiagATB's exact counts for `Aᵀ (c × a) · B (a × b)` in blocks `shape`.
pub fn atb_cost(
    a: usize,
    b: usize,
    c: usize,
    shape: BlockShape,
    variant: AtbVariant,
) -> HetalCounts {
    let (na, nb) = grid(a, b, shape);
    let half = (c / 2) as u64;
    let log_s0 = u64::from(shape.log_s0());
    let shifted = half.saturating_sub(1);
    match variant {
        AtbVariant::Standard => HetalCounts {
            cmult: half * (na + nb),
            mult: half * na * nb,
            rot: half * (2 * na + log_s0 * nb),
        },
        AtbVariant::PRotUp => HetalCounts {
            cmult: na + shifted * na * nb + half * nb,
            mult: half * na * nb,
            rot: 2 * na + shifted * na + if shifted > 0 { na * nb } else { 0 } + half * nb * log_s0,
        },
    }
}

/// The reference's DiagABT formulas (equal to [`abt_cost`]).
pub fn reference_abt_cost(a: usize, b: usize, c: usize, shape: BlockShape) -> HetalCounts {
    let (na, nb) = grid(a, b, shape);
    let half = (c / 2) as u64;
    HetalCounts {
        cmult: c as u64 * na,
        mult: half * na * nb,
        rot: half * (nb + 2 * na * u64::from(shape.log_s1())),
    }
}

/// The reference's DiagATB formulas:
/// `Rot = 2 + (c/2)·(2·na + log2 s0·nb) − 2·na`, `CMult = 1 + (c/2)·(na + nb) − na`; equal to
/// [`atb_cost`] (standard variant) when `na = 1`.
pub fn reference_atb_cost(a: usize, b: usize, c: usize, shape: BlockShape) -> HetalCounts {
    let (na, nb) = grid(a, b, shape);
    let half = (c / 2) as u64;
    let log_s0 = u64::from(shape.log_s0());
    HetalCounts {
        cmult: (1 + half * (na + nb)).saturating_sub(na),
        mult: half * na * nb,
        rot: (2 + half * (2 * na + log_s0 * nb)).saturating_sub(2 * na),
    }
}

/// `P += Rot(P, stride·2^l)` for `l < log2(count)`: every slot receives the sum of the `count`
/// slots `stride` apart starting at it (cyclically). `log2(count)` rotations.
pub(crate) fn rotate_sum<O: CkksOps>(
    ops: &O,
    p: &mut O::Ct,
    stride: i64,
    count: usize,
) -> Result<(), CkksError> {
    for l in 0..count.trailing_zeros() {
        let r = ops.rotate(p, stride << l)?;
        ops.add_assign(p, &r)?;
    }
    Ok(())
}

/// `Σ_i x_i ⊙ y_i` with one relinearization per product, not rescaled.
fn sum_of_products<'a, O: CkksOps + 'a>(
    ops: &O,
    mut pairs: impl Iterator<Item = (&'a O::Ct, &'a O::Ct)>,
) -> Result<O::Ct, MlError> {
    let (x, y) = pairs.next().ok_or(MlError::Empty)?;
    let mut acc = ops.mul_relin(x, y)?;
    for (x, y) in pairs {
        let p = ops.mul_relin(x, y)?;
        ops.add_assign(&mut acc, &p)?;
    }
    Ok(acc)
}

/// `acc += term`, or `acc = term` for the first one.
fn accumulate<O: CkksOps>(ops: &O, acc: &mut Option<O::Ct>, term: O::Ct) -> Result<(), CkksError> {
    match acc {
        Some(a) => ops.add_assign(a, &term),
        None => {
            *acc = Some(term);
            Ok(())
        }
    }
}

/// Rescales and takes the real part: `x + conj(x)` (the masks carry the `1/2`).
fn rescale_real<O: CkksOps>(ops: &O, acc: Option<O::Ct>) -> Result<O::Ct, MlError> {
    let mut x = acc.ok_or(MlError::Empty)?;
    ops.rescale_assign(&mut x)?;
    let conj = ops.conjugate(&x)?;
    ops.add_assign(&mut x, &conj)?;
    Ok(x)
}

/// Drops every block to `level`.
fn drop_all<O: CkksOps>(ops: &O, blocks: &[O::Ct], level: usize) -> Result<Vec<O::Ct>, CkksError> {
    blocks.iter().map(|x| ops.drop_to_level(x, level)).collect()
}

/// `level − need`, or [`MlError::NotEnoughLevels`].
fn levels_left(operand: &'static str, level: usize, need: usize) -> Result<usize, MlError> {
    level.checked_sub(need).ok_or(MlError::NotEnoughLevels {
        operand,
        have: level,
        need,
    })
}

/// The lowest level of a set of blocks (0 for none).
fn min_level<C: Leveled>(blocks: &[C]) -> usize {
    blocks.iter().map(Leveled::level).min().unwrap_or(0)
}

/// A slot mask over one block: `f(i, k)` at slot `i·s1 + k`.
fn mask(
    shape: BlockShape,
    f: impl Fn(usize, usize) -> num_complex::Complex64,
) -> Vec<num_complex::Complex64> {
    (0..shape.slots())
        .map(|s| f(s / shape.s1(), s % shape.s1()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_cost_model_and_the_reference_formulas_give_table7() {
        for r in TABLE7 {
            let shape = r.shape().unwrap();
            assert_eq!(abt_cost(r.a, r.b, r.c, shape), r.diag_abt, "{r:?}");
            assert_eq!(
                reference_abt_cost(r.a, r.b, r.c, shape),
                r.diag_abt,
                "{r:?}"
            );
            assert_eq!(
                atb_cost(r.a, r.b, r.c, shape, AtbVariant::Standard),
                r.diag_atb,
                "{r:?}"
            );
            assert_eq!(
                reference_atb_cost(r.a, r.b, r.c, shape),
                r.diag_atb,
                "{r:?}"
            );
        }
    }
}
