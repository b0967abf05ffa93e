//! Our DiagABT: logits `A·Bᵀ` with hoisted baby-step giant-step shifts and merged placement
//! (see the module doc of [`crate::ours`]).
//!
//! ```text
//! Z[t]      = W~[t] + i·Rot(W~[t], s1)                            1 F per block column
//! Z_j1[t]   = Rot(Z[t], 2·j1·s1),  j1 < B                         hoisted batch per t
//! X_j2[r,t] = Rot(X[r,t], −2B·j2·s1), j2 < G                      hoisted batch per (r, t)
//! for each block row r:
//!     for j = j1 + B·j2 < c/2:
//!         Q   = RowSum(Σ_t X_j2[r,t] ⊙ Z_j1[t])                   ct×ct, log2 s1 F
//!         Ye += Rot(Q ⊙ ½e_col0, 2B·j2·s1 − 2j)                   1 F for j > 0
//!     Y  = Ye − i·Rot(Ye, −1)                                     1 F
//!     Y2 = Y + Rot(Y, −c)                                         1 F  (c < s1)
//!     C[r] = Σ_ρ Rot(Y2, c − ρ) ⊙ [rows ≡ ρ (mod c), columns < c]  hoisted batch of c
//!     C[r] = C[r] + conj(C[r])
//! ```
//! Row `i` of `Ye` holds `T_j(i)/2 = (C[i][(i+2j) mod c] + i·C[i][(i+2j+1) mod c])/2` in
//! column `2j`, and `Y` holds `−i·T_j(i)/2` in column `2j + 1`; output column `k` of row `i`
//! reads column `(k − i) mod c` of `Y`, a cyclic shift by `ρ = i mod c` inside the first `c`
//! columns, which `Y2` (the first `c` columns repeated once) turns into plain rotations. With
//! `c = s1` there is no room for `Y2`: the batch is `Rot(Y, −ρ)` (columns `≥ ρ`) and
//! `Rot(Y, s1 − ρ)` (columns `< ρ`) under split masks.
//!
//! **Windowed row sums** (`AbtPlan::windowed`, when `s1 ≥ 4c`): each diagonal's product is
//! first rotated so that its rows start in column `c + 2j` (the same rotation undoes the
//! giant step), summed over windows of `L1` columns (`log2 L1` F), and masked with `½` at the
//! window starts `≡ c + 2j + d·L1 (mod L)`, `d < L2`, `L = L1·L2`, into accumulators shared
//! by all diagonals; `Σ_d Rot(Y_d, d·L1)` (Horner, `L2 − 1` F), the imaginary copy
//! (`1 F`), a ladder over the strides `L, 2L, …` (`log2(s1/L)` F) and `Y2 = Y + Rot(Y, c)`
//! (`1 F`) leave the row sums exact in columns `[0, 2c)` (zeros around them need
//! `L ≥ 4c`), and the same hoisted placement follows. Per block row:
//! `h·(1 + log2 L1) + L2 + log2(s1/L) + 1` F instead of `h·log2 s1 + h + 1`, for `h·L2`
//! column masks instead of `h`.
//!
//! Levels: the product, the column mask, the placement masks: [`OURS_ABT_DEPTH`] = 3, as
//! HETAL's.

use num_complex::Complex64;
use rayon::prelude::*;

use super::{
    accumulate, drop_all, ladder, ladder_amounts, levels_left, log2, rescale_real, rotations,
    select, Cost, CostModel,
};
use crate::error::MlError;
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::CkksOps;

/// Levels our DiagABT consumes (from the lower of its two inputs): 3, as HETAL's.
pub const OURS_ABT_DEPTH: usize = 3;

/// A plan for our DiagABT: the baby-step giant-step split `c/2 = babies · giants` (the baby
/// steps rotate the weights, one hoisted batch per block column; the giant steps the
/// features, one hoisted batch per block), and how each row is summed: whole (`log2 s1`
/// rotations per diagonal) or by windows of `L1` columns with `L2` masks per diagonal (see
/// the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbtPlan {
    c: usize,
    babies: usize,
    giants: usize,
    windows: Option<(usize, usize)>,
}

impl AbtPlan {
    /// Whole row sums, `babies` baby steps, for period `c`.
    ///
    /// # Errors
    /// [`MlError::BadPeriod`] unless `c ≥ 2` is a power of two and `babies` divides `c/2`.
    pub fn new(c: usize, babies: usize) -> Result<Self, MlError> {
        let h = c / 2;
        if c < 2 || !c.is_power_of_two() || babies == 0 || h % babies != 0 {
            return Err(MlError::BadPeriod {
                period: c,
                s0: 0,
                s1: 0,
                reason: format!("{babies} baby steps do not divide the c/2 diagonals"),
            });
        }
        Ok(Self {
            c,
            babies,
            giants: h / babies,
            windows: None,
        })
    }

    /// Windowed row sums: windows of `window` columns, `shifts` masks per diagonal.
    ///
    /// # Errors
    /// As [`AbtPlan::new`]; [`MlError::BadPeriod`] unless `window` and `shifts` are powers of
    /// two with `4c ≤ window·shifts ≤ s1`.
    pub fn windowed(
        shape: BlockShape,
        c: usize,
        babies: usize,
        window: usize,
        shifts: usize,
    ) -> Result<Self, MlError> {
        let plan = Self::new(c, babies)?;
        let period = window.saturating_mul(shifts);
        let ok = window.is_power_of_two()
            && shifts.is_power_of_two()
            && period >= c.saturating_mul(4)
            && period <= shape.s1();
        if !ok {
            return Err(MlError::BadPeriod {
                period: c,
                s0: shape.s0(),
                s1: shape.s1(),
                reason: format!(
                    "row windows need powers of two with 4c ≤ window·shifts = {period} ≤ s1"
                ),
            });
        }
        Ok(Self {
            windows: Some((window, shifts)),
            ..plan
        })
    }

    /// [`AbtPlan::best_with`] the default [`CostModel`].
    ///
    /// # Errors
    /// [`MlError::BadPeriod`] unless `c ≥ 2` is a power of two.
    pub fn best(a: usize, b: usize, c: usize, shape: BlockShape) -> Result<Self, MlError> {
        Self::best_with(&CostModel::default(), a, b, c, shape)
    }

    /// The plan with the lowest `model` cost for `A (a × b) · Bᵀ (b × c)` (ties: fewer key
    /// switches).
    ///
    /// # Errors
    /// [`MlError::BadPeriod`] unless `c ≥ 2` is a power of two.
    pub fn best_with(
        model: &CostModel,
        a: usize,
        b: usize,
        c: usize,
        shape: BlockShape,
    ) -> Result<Self, MlError> {
        let mut plans = Vec::new();
        let mut babies = 1;
        while babies <= c / 2 {
            plans.push(Self::new(c, babies)?);
            for l1 in 0..=shape.log_s1() {
                for l2 in 0..=shape.log_s1() - l1 {
                    if let Ok(p) = Self::windowed(shape, c, babies, 1 << l1, 1 << l2) {
                        plans.push(p);
                    }
                }
            }
            babies *= 2;
        }
        let mut best: Option<(f64, u64, Self)> = None;
        for plan in plans {
            let cost = abt_cost(a, b, shape, plan);
            let key = (model.cost(&cost), cost.key_switches());
            if best.is_none_or(|(w, k, _)| key.0 < w - 1e-9 || (key.0 <= w + 1e-9 && key.1 < k)) {
                best = Some((key.0, key.1, plan));
            }
        }
        best.map(|(_, _, p)| p).ok_or(MlError::BadPeriod {
            period: c,
            s0: shape.s0(),
            s1: shape.s1(),
            reason: "no DiagABT plan".into(),
        })
    }

    /// The period `c`.
    pub fn c(&self) -> usize {
        self.c
    }

    /// Baby steps (shifts of the weights).
    pub fn babies(&self) -> usize {
        self.babies
    }

    /// Giant steps (shifts of the features).
    pub fn giants(&self) -> usize {
        self.giants
    }

    /// `(L1, L2)` for windowed row sums, `None` for whole ones.
    pub fn windows(&self) -> Option<(usize, usize)> {
        self.windows
    }
}

/// `C = A·Bᵀ` by our DiagABT with the best [`AbtPlan`]: same operands and output layout as
/// [`diag_abt`](crate::diag_abt) (`A` in `Blocks`, `B` in `RowTiled { period: c }`, the
/// logits in `Blocks`), [`OURS_ABT_DEPTH`] levels, counts [`abt_cost`].
///
/// # Errors
/// As [`diag_abt`](crate::diag_abt); the rotation keys needed are [`abt_rotations`].
pub fn abt<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
) -> Result<EncMatrix<O::Ct>, MlError> {
    let c = crate::matmul::check_abt(a, b)?;
    let plan = AbtPlan::best(a.rows(), a.cols(), c, a.shape())?;
    abt_with(ops, a, b, plan)
}

/// [`abt`] with a given plan.
///
/// # Errors
/// As [`abt`]; [`MlError::BadPeriod`] when the plan is for another `c`.
pub fn abt_with<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    plan: AbtPlan,
) -> Result<EncMatrix<O::Ct>, MlError> {
    let c = crate::matmul::check_abt(a, b)?;
    let shape = a.shape();
    if plan.c != c {
        return Err(MlError::BadPeriod {
            period: c,
            s0: shape.s0(),
            s1: shape.s1(),
            reason: format!("the DiagABT plan is for c = {}", plan.c),
        });
    }
    let (na, nb) = a.grid();
    let s1 = shape.s1() as i64;
    let ci = c as i64;
    let (bb, gg) = (plan.babies, plan.giants);
    let level = a.level().min(b.level());
    levels_left("ours::abt inputs", level, OURS_ABT_DEPTH)?;

    // Z[t] and its baby steps: zs[t][j1] = Rot(Z[t], 2·j1·s1).
    let baby: Vec<i64> = (1..bb).map(|j1| 2 * j1 as i64 * s1).collect();
    // Block columns are independent: their rotations run in parallel (here and for `xs`).
    let zs = drop_all(ops, b.blocks(), level)?
        .par_iter()
        .map(|wt| {
            let up = ops.rotate(wt, s1)?;
            let z = ops.add(wt, &ops.mul_i(&up, false)?)?;
            let more = rotations(ops, &z, &baby)?;
            Ok(std::iter::once(z).chain(more).collect::<Vec<_>>())
        })
        .collect::<Result<Vec<_>, MlError>>()?;
    let giant: Vec<i64> = (1..gg).map(|j2| -2 * (bb * j2) as i64 * s1).collect();

    let one = Complex64::new(1.0, 0.0);
    let half = Complex64::new(0.5, 0.0);
    // Column masks at level − 1: column 0 (whole sums) or the window starts (windowed).
    let col_masks = match plan.windows {
        None => vec![ops.encode_plain(&select(shape, half, |_, k| k == 0), level - 1)?],
        Some((window, shifts)) => {
            let period = window * shifts;
            let mut m = Vec::with_capacity(c / 2 * shifts);
            for j in 0..c / 2 {
                for d in 0..shifts {
                    let start = (c + 2 * j + d * window) % period;
                    m.push(ops.encode_plain(
                        &select(shape, half, |_, k| k % period == start),
                        level - 1,
                    )?);
                }
            }
            m
        }
    };
    let split = 2 * c > shape.s1();
    // Placement masks at level − 2: rows ≡ ρ (mod c), columns < c (split: columns ≥ ρ for
    // Rot(Y, −ρ) then columns < ρ for Rot(Y, s1 − ρ)).
    let place = if split {
        let mut m =
            vec![ops.encode_plain(&select(shape, one, |i, k| i % c == 0 && k < c), level - 2)?];
        for rho in 1..c {
            m.push(ops.encode_plain(
                &select(shape, one, |i, k| i % c == rho && k >= rho && k < c),
                level - 2,
            )?);
            m.push(ops.encode_plain(
                &select(shape, one, |i, k| i % c == rho && k < rho),
                level - 2,
            )?);
        }
        m
    } else {
        (0..c)
            .map(|rho| {
                ops.encode_plain(&select(shape, one, |i, k| i % c == rho && k < c), level - 2)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let place_amounts: Vec<i64> = if split {
        (1..ci).flat_map(|rho| [-rho, s1 - rho]).collect()
    } else {
        (0..ci).map(|rho| ci - rho).collect()
    };

    let mut out = Vec::with_capacity(na);
    for r in 0..na {
        // The giant steps of this block row: xs[t][j2] = Rot(X[r][t], −2B·j2·s1).
        let xs = (0..nb)
            .into_par_iter()
            .map(|t| {
                let x = a.block(r, t).ok_or(MlError::BadBlocks {
                    what: "ours::abt A blocks",
                    expected: na * nb,
                    found: a.blocks().len(),
                })?;
                let x = ops.drop_to_level(x, level)?;
                let more = rotations(ops, &x, &giant)?;
                Ok(std::iter::once(x).chain(more).collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>, MlError>>()?;
        // Diagonal j's rescaled product, row i holding sample i + 2B·j2.
        let product = |j1: usize, j2: usize| -> Result<O::Ct, MlError> {
            let pairs = xs
                .iter()
                .zip(&zs)
                .map(|(xt, zt)| {
                    xt.get(j2).zip(zt.get(j1)).ok_or(MlError::BadBlocks {
                        what: "ours::abt shifted blocks",
                        expected: bb.max(gg),
                        found: xt.len().min(zt.len()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ops.mul_sum_relin_rescale(&pairs)?)
        };
        // Y2: the row sums, exact in columns [0, 2c) (whole sums: Y, exact in [0, c), zero
        // up to s1 − c, when `split`).
        let y2 = match plan.windows {
            None => {
                let col0 = col_masks.first().ok_or(MlError::Empty)?;
                let mut ye: Option<O::Ct> = None;
                for j2 in 0..gg {
                    for j1 in 0..bb {
                        let mut q = product(j1, j2)?;
                        ladder(ops, &mut q, 1, shape.log_s1())?;
                        let m = ops.mul_plain(&q, col0)?;
                        let shift = 2 * (bb * j2) as i64 * s1 - 2 * (j1 + bb * j2) as i64;
                        let m = if shift == 0 {
                            m
                        } else {
                            ops.rotate(&m, shift)?
                        };
                        accumulate(ops, &mut ye, m)?;
                    }
                }
                let mut ye = ye.ok_or(MlError::Empty)?;
                ops.rescale_assign(&mut ye)?;
                let im = ops.mul_i(&ops.rotate(&ye, -1)?, true)?;
                let y = ops.add(&ye, &im)?;
                if split {
                    y
                } else {
                    ops.add(&y, &ops.rotate(&y, -ci)?)?
                }
            }
            Some((window, shifts)) => {
                let period = window * shifts;
                let mut ys: Vec<Option<O::Ct>> = vec![None; shifts];
                for j2 in 0..gg {
                    for j1 in 0..bb {
                        let j = j1 + bb * j2;
                        let q = product(j1, j2)?;
                        let shift = 2 * (bb * j2) as i64 * s1 - (c + 2 * j) as i64;
                        let mut q = ops.rotate(&q, shift)?;
                        ladder(ops, &mut q, 1, window.trailing_zeros())?;
                        for (d, y) in ys.iter_mut().enumerate() {
                            let m = col_masks.get(j * shifts + d).ok_or(MlError::Empty)?;
                            accumulate(ops, y, ops.mul_plain(&q, m)?)?;
                        }
                    }
                }
                let mut acc: Option<O::Ct> = None;
                for y in ys.into_iter().rev() {
                    let y = y.ok_or(MlError::Empty)?;
                    acc = Some(match acc {
                        None => y,
                        Some(prev) => ops.add(&y, &ops.rotate(&prev, window as i64)?)?,
                    });
                }
                let mut ye = acc.ok_or(MlError::Empty)?;
                ops.rescale_assign(&mut ye)?;
                let im = ops.mul_i(&ops.rotate(&ye, -1)?, true)?;
                let mut y = ops.add(&ye, &im)?;
                ladder(
                    ops,
                    &mut y,
                    period as i64,
                    (shape.s1() / period).trailing_zeros(),
                )?;
                ops.add(&y, &ops.rotate(&y, ci)?)?
            }
        };
        let mut x: Option<O::Ct> = None;
        let rots = rotations(ops, &y2, &place_amounts)?;
        if split {
            let sources = std::iter::once(&y2).chain(rots.iter());
            for (src, m) in sources.zip(&place) {
                accumulate(ops, &mut x, ops.mul_plain(src, m)?)?;
            }
        } else {
            for (src, m) in rots.iter().zip(&place) {
                accumulate(ops, &mut x, ops.mul_plain(src, m)?)?;
            }
        }
        out.push(rescale_real(ops, x)?);
    }
    EncMatrix::from_blocks(a.rows(), b.rows(), shape, Layout::Blocks, out)
}

/// The exact counters of [`abt_with`] for `A (a × b) · Bᵀ (b × c)` in blocks `shape`.
pub fn abt_cost(a: usize, b: usize, shape: BlockShape, plan: AbtPlan) -> Cost {
    let (na, nb) = shape.grid(a, b);
    let (na, nb) = (na as u64, nb as u64);
    let c = plan.c as u64;
    let h = c / 2;
    let split = 2 * plan.c > shape.s1();
    let per_column = Cost::sum(&[
        Cost::full(1),
        Cost::batch(plan.babies as u64 - 1),
        Cost::batch(plan.giants as u64 - 1).times(na),
    ]);
    let placement = if split {
        Cost::sum(&[Cost::batch(2 * c - 2), Cost::light(2 * c - 1, 0, 0)])
    } else {
        Cost::sum(&[Cost::batch(c), Cost::light(c, 0, 0)])
    };
    let masks = match plan.windows {
        None => 1,
        Some((_, shifts)) => h * shifts as u64,
    } + if split { 2 * c - 1 } else { c };
    let sums = match plan.windows {
        None => Cost::sum(&[
            Cost::full(h * log2(shape.s1()) + (h - 1) + 1 + u64::from(!split)),
            Cost::light(h, 0, 0),
        ]),
        Some((window, shifts)) => Cost::sum(&[
            Cost::full(
                h * (1 + log2(window))
                    + (shifts as u64 - 1)
                    + 1
                    + log2(shape.s1() / (window * shifts))
                    + 1,
            ),
            Cost::light(h * shifts as u64, 0, 0),
        ]),
    };
    let per_row = Cost::sum(&[
        Cost::products(h, nb),
        sums,
        Cost::light(0, 0, h + 2),
        placement,
        Cost::conjugations(1),
    ]);
    Cost::sum(&[
        per_column.times(nb),
        per_row.times(na),
        Cost::encoded(masks),
    ])
}

/// The rotations [`abt_with`] uses (sorted); it also needs the conjugation key.
pub fn abt_rotations(shape: BlockShape, plan: AbtPlan) -> Vec<i64> {
    let s1 = shape.s1() as i64;
    let (c, bb, gg) = (plan.c as i64, plan.babies as i64, plan.giants as i64);
    let mut ks = vec![s1, -1];
    ks.extend((1..bb).map(|j1| 2 * j1 * s1));
    ks.extend((1..gg).map(|j2| -2 * bb * j2 * s1));
    let base = if plan.windows.is_some() { c } else { 0 };
    for j2 in 0..gg {
        for j1 in 0..bb {
            let shift = 2 * bb * j2 * s1 - base - 2 * (j1 + bb * j2);
            if shift != 0 {
                ks.push(shift);
            }
        }
    }
    match plan.windows {
        None => {
            ks.extend(ladder_amounts(1, shape.log_s1()));
            if 2 * plan.c <= shape.s1() {
                ks.push(-c);
            }
        }
        Some((window, shifts)) => {
            let period = window * shifts;
            ks.extend(ladder_amounts(1, window.trailing_zeros()));
            if shifts > 1 {
                ks.push(window as i64);
            }
            ks.extend(ladder_amounts(
                period as i64,
                (shape.s1() / period).trailing_zeros(),
            ));
            ks.push(c);
        }
    }
    if 2 * plan.c > shape.s1() {
        ks.extend((1..c).flat_map(|rho| [-rho, s1 - rho]));
    } else {
        ks.extend(1..=c);
    }
    ks.sort_unstable();
    ks.dedup();
    ks
}
