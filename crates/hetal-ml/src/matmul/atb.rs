//! DiagATB: `C = Aᵀ·B` for `A` (`a × c'`, the error `P − Y`, [`Layout::ColTiled`] with period
//! `c`) and `B` (`a × b`, the features, [`Layout::Blocks`]), giving the gradient `c' × b` in
//! [`Layout::Blocks`]: rows `0 .. c'` of each block column.
//!
//! ```text
//! RotLeft(M, k) = Rot(M, k − s1) + mask_k ⊙ (Rot(M, k) − Rot(M, k − s1))
//!                 cyclic shift by k columns inside each row; mask_k = 1 on columns < s1 − k;
//!                 2 Rot, 1 CMult, 1 level
//! Z[r] = A~[r] + i·RotLeft(A~[r], 1)
//! for j in 0 .. c/2:
//!     Zj[r] = RotLeft(Z[r], 2j)    (j > 0)
//!     for each column block t of B:
//!         P = ColSum(Σ_r Zj[r] ⊙ B[r][t])           ct×ct, 1 level
//!         C[t] += P ⊙ (E_2j − i·E_2j+1)/2            E_k: 1 at (row (m+k) mod c, column m), 1 level
//! C[t] = C[t] + conj(C[t])
//! ```
//! Column `m` of `Zj` holds `A[·][(m+2j) mod c] + i·A[·][(m+2j+1) mod c]` (the columns of `A~`
//! are `c`-periodic and `c | s1`); `ColSum` (`log2 s0` rotations by `2^l·s1`) leaves in every
//! row of column `m` the value `C[(m+2j) mod c][m] + i·C[(m+2j+1) mod c][m]`, and the last mask
//! puts each part in its row. Levels (`c ≥ 4`): A loses 4 (two `RotLeft`s, the product, the
//! mask), B loses 2; the output sits at `min(level(A) − 4, level(B) − 2)`.
//!
//! **PRotUp** ([`AtbVariant::PRotUp`], for when `A` is lower than `B`): `Zj = Rot(Z, 2j)`
//! without the mask. That is `RotLeft(Z, 2j)` except in the last `2j` columns, where it reads
//! the next row (`i + 1`, cyclically inside the block). Since `ColSum` adds all rows, pairing
//! those columns with `B` shifted up one row gives the same column sums:
//! `Bj = B + up_2j ⊙ (Rot(B, s1) − B)`, `up_2j = 1` on columns `≥ s1 − 2j`. The mask moves
//! onto `B`: A loses 3 levels, B 3. It costs `na·nb` rotations (`Rot(B, s1)`, shared by all
//! `j`) instead of `(c/2 − 1)·na`, and `(c/2 − 1)·na·nb` plaintext multiplications instead of
//! `(c/2 − 1)·na`. (The reference says PRotUp costs more Rot; with `Rot(B, s1)` shared it costs
//! fewer when `nb < c/2 − 1`, e.g. 71 instead of 72 at `(256, 256, 8)`.)
//!
//! The products of one `(j, t)` are summed before one rescale and the diagonal terms of each
//! `C[t]` before one rescale.

use num_complex::Complex64;

use super::{
    accumulate, drop_all, levels_left, mask, min_level, rescale_real, rotate_sum, sum_of_products,
};
use crate::error::MlError;
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::{CkksOps, Leveled};

/// Which DiagATB to run (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AtbVariant {
    /// HETAL's default: every shift is an exact in-row `RotLeft` on `A`.
    #[default]
    Standard,
    /// The mask of the shifted copies moves onto `B` (saves `A` a level).
    PRotUp,
}

impl AtbVariant {
    /// The variant that keeps the output highest for inputs at these levels: `PRotUp` when
    /// `A` is lower than `B`.
    pub fn for_levels(level_a: usize, level_b: usize) -> Self {
        if level_a < level_b {
            Self::PRotUp
        } else {
            Self::Standard
        }
    }

    /// Levels consumed on `A`'s and `B`'s side before the product, for period `c`.
    fn pre_depths(self, c: usize) -> (usize, usize) {
        let shifted = usize::from(c > 2);
        match self {
            Self::Standard => (1 + shifted, 0),
            Self::PRotUp => (1, shifted),
        }
    }

    /// Levels the product consumes from `A` and from `B`, for period `c`: the output sits at
    /// `min(level(A) − depth_a, level(B) − depth_b)`.
    pub fn depths(self, c: usize) -> (usize, usize) {
        let (da, db) = self.pre_depths(c);
        (da + 2, db + 2)
    }
}

/// Checks DiagATB's operands (shared by our variant); returns the period `c`.
pub(crate) fn check_atb<C>(a: &EncMatrix<C>, b: &EncMatrix<C>) -> Result<usize, MlError> {
    if b.layout() != Layout::Blocks {
        return Err(MlError::LayoutMismatch {
            operand: "DiagATB B",
            expected: Layout::Blocks,
            found: b.layout(),
        });
    }
    let c = match a.layout() {
        Layout::ColTiled { period } => period,
        found => {
            return Err(MlError::LayoutMismatch {
                operand: "DiagATB A",
                expected: Layout::ColTiled { period: a.cols() },
                found,
            })
        }
    };
    let shape = b.shape();
    if a.shape() != shape {
        return Err(MlError::DimensionMismatch {
            what: "DiagATB block rows s0",
            lhs: a.shape().s0(),
            rhs: shape.s0(),
        });
    }
    if a.rows() != b.rows() {
        return Err(MlError::DimensionMismatch {
            what: "DiagATB inner dimension (rows of A and B)",
            lhs: a.rows(),
            rhs: b.rows(),
        });
    }
    if c < 2 || c > shape.s0() {
        return Err(MlError::BadPeriod {
            period: c,
            s0: shape.s0(),
            s1: shape.s1(),
            reason: "DiagATB needs 2 ≤ c ≤ s0 (the output has c rows)".into(),
        });
    }
    Ok(c)
}

/// `RotLeft(m, k)`: 2 rotations, 1 plaintext multiplication, 1 level. `mask` is
/// [`rot_left_mask`]`(k)` at `m`'s level.
fn rot_left<O: CkksOps>(
    ops: &O,
    m: &O::Ct,
    k: usize,
    s1: usize,
    mask: &O::Pt,
) -> Result<O::Ct, MlError> {
    let x = ops.rotate(m, k as i64)?;
    let y = ops.rotate(m, k as i64 - s1 as i64)?;
    let mut d = ops.mul_plain(&ops.sub(&x, &y)?, mask)?;
    ops.rescale_assign(&mut d)?;
    let y = ops.drop_to_level(&y, d.level())?;
    Ok(ops.add(&y, &d)?)
}

/// `C = Aᵀ·B` by HETAL's DiagATB (see the module doc).
///
/// # Errors
/// [`MlError::LayoutMismatch`], [`MlError::DimensionMismatch`] or [`MlError::BadPeriod`] for
/// operands that do not fit; [`MlError::NotEnoughLevels`] when the inputs are below
/// [`AtbVariant::depths`]; CKKS errors (a missing rotation or conjugation key: see
/// [`atb_rotations`]).
pub fn diag_atb<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    variant: AtbVariant,
) -> Result<EncMatrix<O::Ct>, MlError> {
    let c = check_atb(a, b)?;
    let shape = b.shape();
    let (na, nb) = b.grid();
    let s1 = shape.s1();
    let (pre_a, pre_b) = variant.pre_depths(c);
    // The level of the products, then the levels each input is first brought down to.
    let lp = levels_left("DiagATB A", a.level(), pre_a)?.min(levels_left(
        "DiagATB B",
        b.level(),
        pre_b,
    )?);
    levels_left("DiagATB product", lp, 2)?;
    let a_top = lp + pre_a;
    let b_top = lp + pre_b;

    // Z[r] = A~[r] + i·RotLeft(A~[r], 1), at a_top − 1.
    let mask1 = ops.encode_plain(&rot_left_mask(shape, 1), a_top)?;
    let z = drop_all(ops, a.blocks(), a_top)?
        .iter()
        .map(|ar| {
            let left = rot_left(ops, ar, 1, s1, &mask1)?;
            let ar = ops.drop_to_level(ar, left.level())?;
            Ok(ops.add(&ar, &ops.mul_i(&left, false)?)?)
        })
        .collect::<Result<Vec<_>, MlError>>()?;
    let z0 = drop_all(ops, &z, lp)?;
    let b_lp = drop_all(ops, b.blocks(), lp)?;
    // PRotUp: B at lp + 1 and Rot(B, s1) − B, shared by all shifted copies.
    let (b_hi, b_up) = if variant == AtbVariant::PRotUp && c > 2 {
        let hi = drop_all(ops, b.blocks(), b_top)?;
        let up = hi
            .iter()
            .map(|x| ops.sub(&ops.rotate(x, s1 as i64)?, x))
            .collect::<Result<Vec<_>, _>>()?;
        (hi, up)
    } else {
        (Vec::new(), Vec::new())
    };

    let mut acc: Vec<Option<O::Ct>> = vec![None; nb];
    for j in 0..c / 2 {
        let shifted;
        let zj: &[O::Ct] = if j == 0 {
            &z0
        } else {
            shifted = match variant {
                AtbVariant::Standard => {
                    let m = ops.encode_plain(&rot_left_mask(shape, 2 * j), min_level(&z))?;
                    z.iter()
                        .map(|zr| rot_left(ops, zr, 2 * j, s1, &m))
                        .collect::<Result<Vec<_>, _>>()?
                }
                AtbVariant::PRotUp => z
                    .iter()
                    .map(|zr| ops.rotate(zr, 2 * j as i64))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            &shifted
        };
        // PRotUp: the up-shift mask for B, at b_top.
        let up_mask = if variant == AtbVariant::PRotUp && j > 0 {
            Some(ops.encode_plain(&up_mask(shape, 2 * j), b_top)?)
        } else {
            None
        };
        let diag = ops.encode_plain(&diag_mask(shape, c, j), lp - 1)?;
        for (t, acc_t) in acc.iter_mut().enumerate() {
            let owned: Vec<O::Ct>;
            let column: Vec<&O::Ct> = match &up_mask {
                None => (0..na).filter_map(|r| b_lp.get(r * nb + t)).collect(),
                Some(m) => {
                    owned = (0..na)
                        .filter_map(|r| b_hi.get(r * nb + t).zip(b_up.get(r * nb + t)))
                        .map(|(hi, up)| {
                            let mut d = ops.mul_plain(up, m)?;
                            ops.rescale_assign(&mut d)?;
                            Ok(ops.add(&ops.drop_to_level(hi, d.level())?, &d)?)
                        })
                        .collect::<Result<Vec<_>, MlError>>()?;
                    owned.iter().collect()
                }
            };
            if column.len() != na || zj.len() != na {
                return Err(MlError::BadBlocks {
                    what: "DiagATB block rows",
                    expected: na,
                    found: column.len().min(zj.len()),
                });
            }
            let mut p = sum_of_products(ops, zj.iter().zip(column.iter().copied()))?;
            ops.rescale_assign(&mut p)?;
            rotate_sum(ops, &mut p, s1 as i64, shape.s0())?;
            accumulate(ops, acc_t, ops.mul_plain(&p, &diag)?)?;
        }
    }
    let out = acc
        .into_iter()
        .map(|x| rescale_real(ops, x))
        .collect::<Result<Vec<_>, _>>()?;
    EncMatrix::from_blocks(a.cols(), b.cols(), shape, Layout::Blocks, out)
}

/// 1 on the columns `< s1 − k` (where an in-row left shift by `k` reads the same row).
fn rot_left_mask(shape: BlockShape, k: usize) -> Vec<Complex64> {
    let edge = shape.s1().saturating_sub(k);
    mask(shape, |_, m| {
        Complex64::new(if m < edge { 1.0 } else { 0.0 }, 0.0)
    })
}

/// 1 on the columns `≥ s1 − k` (where a plain rotation by `k` reads the next row).
fn up_mask(shape: BlockShape, k: usize) -> Vec<Complex64> {
    let edge = shape.s1().saturating_sub(k);
    mask(shape, |_, m| {
        Complex64::new(if m >= edge { 1.0 } else { 0.0 }, 0.0)
    })
}

/// `(E_2j − i·E_2j+1)/2`, `E_k` being 1 at `(row (m+k) mod c, column m)`.
fn diag_mask(shape: BlockShape, c: usize, j: usize) -> Vec<Complex64> {
    mask(shape, |i, m| {
        if i == (m + 2 * j) % c {
            Complex64::new(0.5, 0.0)
        } else if i == (m + 2 * j + 1) % c {
            Complex64::new(0.0, -0.5)
        } else {
            Complex64::new(0.0, 0.0)
        }
    })
}

/// The rotations DiagATB uses with blocks `shape` and period `c` (sorted): `1` and `1 − s1`;
/// for `0 < j < c/2`, `2j` and (standard variant) `2j − s1`; (PRotUp, `c > 2`) `s1`; and
/// `2^l·s1` for `l < log2 s0`. It also needs the conjugation key.
pub fn atb_rotations(shape: BlockShape, c: usize, variant: AtbVariant) -> Vec<i64> {
    let s1 = shape.s1() as i64;
    let mut ks = vec![1, 1 - s1];
    for j in 1..c / 2 {
        let k = 2 * j as i64;
        ks.push(k);
        if variant == AtbVariant::Standard {
            ks.push(k - s1);
        }
    }
    if variant == AtbVariant::PRotUp && c > 2 {
        ks.push(s1);
    }
    ks.extend((0..shape.log_s0()).map(|l| s1 << l));
    ks.sort_unstable();
    ks.dedup();
    ks
}
