//! DiagABT: `C = A·Bᵀ` for `A` (`a × b`, the features, [`Layout::Blocks`]) and `B`
//! (`c' × b`, the weights, [`Layout::RowTiled`] with period `c`), giving the logits `a × c'`
//! in [`Layout::Blocks`] with `C[i][j]` in slot `(i, j)`: the layout a row-wise softmax needs.
//!
//! ```text
//! Z[t] = B~[t] + i·Rot(B~[t], s1)                 B~ shifted up one row rides in Im
//! for j in 0 .. c/2:
//!     Zj[t] = Rot(Z[t], 2j·s1)     (j > 0)         up 2j rows
//!     for each block row r of A:
//!         P = Σ_t A[r][t] ⊙ Zj[t]                   ct×ct, 1 level
//!         P = RowFill(RowSum(P) ⊙ e_col0)           mask column 0, 1 level
//!         C[r] += P ⊙ (D_2j − i·D_2j+1)/2           D_k: 1 at (i, (i+k) mod c), 1 level
//! C[r] = C[r] + conj(C[r])
//! ```
//! Row `i` of `Zj` holds `B[(i+2j) mod c] + i·B[(i+2j+1) mod c]` (the rows of `B~` are
//! `c`-periodic and `c | s0`, so shifting the whole block is cyclic in the rows); after the row
//! sum, column 0 of row `i` is `C[i][(i+2j) mod c] + i·C[i][(i+2j+1) mod c]`, and the last mask
//! puts each part on its own diagonal. `RowSum` is `log2 s1` rotations by `2^l`, `RowFill`
//! `log2 s1` rotations by `−2^l`.
//!
//! The products of one `(j, r)` are summed before one rescale, and the `c/2` diagonal terms of
//! each `C[r]` are summed before one rescale (lazy rescaling; it changes no count in
//! HETAL's terms). Depth [`ABT_DEPTH`]: the output sits 3 levels below the lower input.

use num_complex::Complex64;

use super::{accumulate, drop_all, levels_left, mask, rescale_real, rotate_sum, sum_of_products};
use crate::error::MlError;
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::CkksOps;

/// Levels DiagABT consumes (from the lower of its two inputs).
pub const ABT_DEPTH: usize = 3;

/// Checks DiagABT's operands (shared by our variant); returns the period `c`.
pub(crate) fn check_abt<C>(a: &EncMatrix<C>, b: &EncMatrix<C>) -> Result<usize, MlError> {
    if a.layout() != Layout::Blocks {
        return Err(MlError::LayoutMismatch {
            operand: "DiagABT A",
            expected: Layout::Blocks,
            found: a.layout(),
        });
    }
    let c = match b.layout() {
        Layout::RowTiled { period } => period,
        found => {
            return Err(MlError::LayoutMismatch {
                operand: "DiagABT B",
                expected: Layout::RowTiled { period: b.rows() },
                found,
            })
        }
    };
    let shape = a.shape();
    if b.shape() != shape {
        return Err(MlError::DimensionMismatch {
            what: "DiagABT block rows s0",
            lhs: shape.s0(),
            rhs: b.shape().s0(),
        });
    }
    if a.cols() != b.cols() {
        return Err(MlError::DimensionMismatch {
            what: "DiagABT inner dimension (columns of A and B)",
            lhs: a.cols(),
            rhs: b.cols(),
        });
    }
    if c < 2 || c > shape.s1() {
        return Err(MlError::BadPeriod {
            period: c,
            s0: shape.s0(),
            s1: shape.s1(),
            reason: "DiagABT needs 2 ≤ c ≤ s1 (the output has c columns)".into(),
        });
    }
    Ok(c)
}

/// `C = A·Bᵀ` by HETAL's DiagABT (see the module doc).
///
/// # Errors
/// [`MlError::LayoutMismatch`], [`MlError::DimensionMismatch`] or [`MlError::BadPeriod`] for
/// operands that do not fit; [`MlError::NotEnoughLevels`] below [`ABT_DEPTH`] levels;
/// CKKS errors (a missing rotation or conjugation key: see [`abt_rotations`]).
pub fn diag_abt<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
) -> Result<EncMatrix<O::Ct>, MlError> {
    let c = check_abt(a, b)?;
    let shape = a.shape();
    let (na, nb) = a.grid();
    let s1 = shape.s1() as i64;
    let level = a.level().min(b.level());
    levels_left("DiagABT inputs", level, ABT_DEPTH)?;

    let a_blocks = drop_all(ops, a.blocks(), level)?;
    let z = drop_all(ops, b.blocks(), level)?
        .iter()
        .map(|bt| {
            let up = ops.rotate(bt, s1)?;
            ops.add(bt, &ops.mul_i(&up, false)?)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let col0 = ops.encode_plain(&col0_mask(shape), level - 1)?;
    let mut acc: Vec<Option<O::Ct>> = vec![None; na];
    for j in 0..c / 2 {
        let shifted;
        let zj: &[O::Ct] = if j == 0 {
            &z
        } else {
            shifted = z
                .iter()
                .map(|zt| ops.rotate(zt, 2 * j as i64 * s1))
                .collect::<Result<Vec<_>, _>>()?;
            &shifted
        };
        let diag = ops.encode_plain(&diag_mask(shape, c, j), level - 2)?;
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let row = a_blocks.iter().skip(r * nb).take(nb);
            let mut p = sum_of_products(ops, row.zip(zj))?;
            ops.rescale_assign(&mut p)?;
            rotate_sum(ops, &mut p, 1, shape.s1())?;
            let mut p = ops.mul_plain(&p, &col0)?;
            ops.rescale_assign(&mut p)?;
            rotate_sum(ops, &mut p, -1, shape.s1())?;
            accumulate(ops, acc_r, ops.mul_plain(&p, &diag)?)?;
        }
    }
    let out = acc
        .into_iter()
        .map(|x| rescale_real(ops, x))
        .collect::<Result<Vec<_>, _>>()?;
    EncMatrix::from_blocks(a.rows(), b.rows(), shape, Layout::Blocks, out)
}

/// 1 in column 0 of every row.
fn col0_mask(shape: BlockShape) -> Vec<Complex64> {
    mask(shape, |_, k| {
        Complex64::new(if k == 0 { 1.0 } else { 0.0 }, 0.0)
    })
}

/// `(D_2j − i·D_2j+1)/2`, `D_k` being 1 at `(i, (i+k) mod c)`.
fn diag_mask(shape: BlockShape, c: usize, j: usize) -> Vec<Complex64> {
    mask(shape, |i, k| {
        if k == (i + 2 * j) % c {
            Complex64::new(0.5, 0.0)
        } else if k == (i + 2 * j + 1) % c {
            Complex64::new(0.0, -0.5)
        } else {
            Complex64::new(0.0, 0.0)
        }
    })
}

/// The rotations DiagABT uses with blocks `shape` and period `c` (sorted): `s1`, `2j·s1` for
/// `0 < j < c/2`, and `±2^l` for `l < log2 s1`. It also needs the conjugation key.
pub fn abt_rotations(shape: BlockShape, c: usize) -> Vec<i64> {
    let s1 = shape.s1() as i64;
    let mut ks: Vec<i64> = std::iter::once(s1)
        .chain((1..c / 2).map(|j| 2 * j as i64 * s1))
        .chain((0..shape.log_s1()).flat_map(|l| [1i64 << l, -(1i64 << l)]))
        .collect();
    ks.sort_unstable();
    ks.dedup();
    ks
}
