//! Row-wise softmax over `c` classes on HETAL's logits layout, written once over [`CkksOps`]
//! (plus [`SoftmaxOps`]): HETAL's algorithm, the baseline, and ours, with at most half its
//! depth and an error below 10⁻³.
//!
//! # Layout
//!
//! The input is what [`diag_abt`](crate::diag_abt) returns: an [`EncMatrix`] in
//! [`Layout::Blocks`] whose row `i` holds the logits `C[i][k]` in slot `(i, k)` of its block,
//! `k < c`, and zeros in the other `s1 − c` slots of the row (`2 ≤ c ≤ s1`, one block column).
//! Both softmaxes treat each block on its own. Every row-wise step is a rotation to the left by
//! `2^j` and is exact in column 0 (a window starting in column 0 and at most `c` wide never
//! leaves its row); a column-0 mask followed by a fill (`Σ_m Rot(·, −m)`, no level) brings a
//! row's value to its class columns. The output has the same layout: probabilities in the class
//! columns, zeros elsewhere. No free slots are needed after the classes (`c = s1` works).
//!
//! # Scales
//!
//! The backends track scales exactly, and the primes are not powers of two: a product of two
//! values of scale `Δ` lands on `Δ·(Δ/q)`, and a polynomial of degree `n` multiplies the
//! relative deviation of its input's scale by `n`. Chained high-degree polynomials would drive
//! the scales to 0 or infinity within a few dozen levels (they do, without the following).
//! Every polynomial here is evaluated in *product form* — monic quadratic leaves
//! `x·(x + β) + γ` (one product each), multiplied in a balanced tree, with the leading
//! coefficient as one more leaf: a noiseless constant ciphertext whose scale is solved for, so
//! that the result lands exactly on a chosen scale. [`SoftmaxOps`] gives what that needs beyond
//! [`CkksOps`]: the primes, and noiseless constants of a chosen scale; both backends implement it.
//! Only values with the same history of scales are ever added. The product form also fixes the
//! *units*: leaves are of order 1 (so that no subtree spans many orders of magnitude across
//! slots, where the CKKS noise, uniform across slots, would swamp the small values) only if the
//! variable is scaled right, so each algorithm picks the unit of its values accordingly, and the
//! leaves are ordered so that every subtree holds roots spread over the whole interval.
//!
//! Depths below count levels with these primitives: every product (ciphertext, plaintext or
//! constant) costs the level of its rescale on its path; masks and constants ride on paths with
//! slack or in constant leaves where possible.
//!
//! # HETAL's softmax ([`SoftmaxAlgo::Hetal`])
//!
//! HETAL's numpy reference (`approx_softmax_wide` in its repository's benchmark script, with its
//! defaults), step by step; constants in [`hetal`]:
//!
//! | step | what | levels |
//! |---|---|---|
//! | 1 | `v = x/(2·128)` in the class columns, `−1/2` in the others (the padding to `c_pad = 2^⌈log2 c⌉`) | 1 |
//! | 2 | row max: `log2 c_pad` rounds of `max(a, Rot(a, 2^i)) = a·s + b·(1 − s)`, `s = (f(g(g(a − b))) + 1)/2`, `f`, `g` of degree 7 (3 levels each); column 0 kept and filled to the classes | `10·log2 c_pad` |
//! | 3 | `x − max`, then 5 domain extensions `x ← x − 4x³/(27R²) = (−k·x)·(x² − 1/k)`, `R = 128, 64, 32, 16, 8` (into `[−8, 0]`) | 10 |
//! | 4 | `exp(x) ≈ p(x/8)^8`, `p` of degree 8 near Taylor (monic in the unit the last extension leaves), 3 squarings | 3 + 3 |
//! | 5 | `z` = row sum over the `c` classes, `z/100` masked to column 0 and filled to the row | 1 |
//! | 6 | `1/z` by Goldschmidt, `R = 100`, 16 iterations | 17 |
//! | 7 | `exp · (1/z)` | 1 |
//!
//! Depth `36 + 10·log2 c_pad`: **46, 56, 66, 76** for `c_pad = 2, 4, 8, 16` ([`hetal::depth`];
//! the reference says "≈ 50–75"). Counting HETAL with our primitives only lowers it (a
//! degree-8 polynomial in 3 levels, masks on slack paths, the `2·R_max` and `1/2` factors
//! folded into constants).
//!
//! Accuracy, measured on the simulator, which equals the numpy twin [`hetal::twin`] to 10⁻¹³: on
//! the inputs of the reference's script (a quarter each uniform in `[−4, 4]`, `[−8, 8]`,
//! `[−32, 32]`, `[−128, 128]`, 10⁵ rows) the largest per-row error is **3.72·10⁻³** for `c = 3`
//! and **1.50·10⁻²** for `c = 10`: the reference states 3.7·10⁻³ and 1.5·10⁻² to 2·10⁻². On 10⁵
//! rows uniform in `[−128, 128]`: 1.9·10⁻³, 3.7·10⁻³, 4.3·10⁻³, 1.9·10⁻², 1.6·10⁻² for
//! `c = 2, 3, 4, 10, 16`. The error comes from the domain extension, which is not the identity on
//! `[−8, 0]` (it moves `−4` to `−3.85`), and from the blurred max when two logits are close.
//!
//! # Ours ([`SoftmaxAlgo::Ours`])
//!
//! `softmax(x)_k = exp(x_k − LSE(x))` with `LSE(x) = ln Σ_j e^{x_j}`. We approximate the
//! log-sum-exp itself (not the max) by a tournament, take one exponential, and divide by a row
//! sum whose range no longer depends on `c`. Constants and designs in [`ours`].
//!
//! 0. **Scale** (1 level): `σ_t·x` in the class columns, `−128·σ_t` in the others (low enough to
//!    vanish in the exponential, high enough to keep the tournament's differences within its
//!    domain). `σ_t ≈ 0.0069` makes ψ's leaves of order 1. When a window of `c` slots could cover
//!    the classes of two rows (`s1 < 2c − 1`), the same product splits the block into its even
//!    and its odd rows (two ciphertexts, recombined at the end for free), so that row sums in
//!    other columns than 0 only ever hold partial sums of one row.
//! 1. **Tournament** (`R = ⌈log2 c⌉` rounds, 6 levels each, the third of four 5). Windows of `2^j` columns merge
//!    pairwise, as a sum would in the exponential domain but in the log domain:
//!    `LSE(a, b) = (a + b)/2 + ψ(a − b)`, `ψ(d) = ln(e^{d/2} + e^{−d/2})`, with ψ replaced by
//!    ψ₆₂, its degree-62 minimax polynomial on `[−264, 264]` (error `ε = 0.372`,
//!    [`ours::PSI_ERROR`]). ψ₆₂ is even: it is evaluated in `u = (σ_t·d)²` (one square), as 15
//!    monic quadratics in `u` and one linear factor carrying the leading coefficient, which lands
//!    the tree on the target scale through a plaintext product (no key switch); depth 6.
//!    The third round of four uses ψ₃₀ instead (degree 30, error `ε' = 0.997`,
//!    [`ours::PSI_SHALLOW_ERROR`]; 7 quadratics and a linear factor, depth 5), and a round with
//!    one merge and nothing else live, whose window has at least 2 levels but not the round's,
//!    forms ψ's variable and the half sum first and bootstraps them as one pair (they enter
//!    at a quarter of the variable's scale, since `u` reaches 3.3, and come back at it for
//!    free): at 10 levels per bootstrap the second round then ends with exactly the 5 levels
//!    the third needs, and a four-round tournament takes three bootstraps instead of four (for
//!    `c` a power of two; a carried partial window keeps the rounds apart otherwise). For `c` not a power of two, the window of the low bits of `c` is carried and merged in the
//!    same rounds. Every value lands on the same target scale, so `(a + b)/2` is one constant (or,
//!    in the last round, mask) product and `x` and carried windows are only dropped to the level
//!    of what they meet; the level planner refreshes what a round reads (the window and the
//!    partial window: one paired bootstrap). LSE is 1-Lipschitz in each argument with weights summing to
//!    1, so the errors add at most linearly: `|L̃ − LSE(x)| ≤ Σ_rounds ε` ([`ours::lse_error`]:
//!    0.37, 0.74, 1.12, 2.11 for `R = 1..4`), and rows of equal logits reach it. In the last round the constant leaf carries the column-0 mask and
//!    the change to the exponential's unit; a fill brings `L̃` to the class columns.
//! 2. **Exponential** (3 + 4 levels). `t = x − L̃ ∈ [−262, δ]`; `y = p(t)^16`, `p` of degree 8
//!    designed (minimax by linear programming) so that `|p(t)^16 − e^t| ≤ τ = 4.4·10⁻⁷` on all of
//!    `[−264, 2.6]`: accurate near the top, `|p| ≤ 0.40` on the long tail, which the 4 squarings
//!    crush. `p` is monic in the unit the tournament hands over, so it needs no constant leaf.
//! 3. **Normalization** (`d_G + 1` levels). `S = Σ_k y_k` (exact in column 0) is
//!    `e^{LSE − L̃}·(1 ± c·τ·e^δ) ∈ [e^{−δ}, e^{δ}]`, `δ_R = 1.01·Σε + 0.01`, whatever `c` and the
//!    spread of the logits: the division only undoes the tournament's error. `G_R ≈ 1/S` is a
//!    minimax polynomial of relative error `η_R` on `[e^{−δ}, e^{δ}]`, and bounded (by `G_BOUND`)
//!    on `[0, 1.02·e^{δ}]`, where the other slots of the row sum are (partial sums of one row: a
//!    polynomial that blew up there would spoil the whole ciphertext). Degree 6, 14, 14, 46 for
//!    `R = 1..4` plus the constant leaf carrying the column-0 mask: 3, 4, 4, 6 levels;
//!    `η = 1.1·10⁻⁴, 7.9·10⁻⁶, 9.3·10⁻⁵, 3.4·10⁻⁵` (`G_4` covers the shallow round's
//!    `δ_4 = 2.14`; its extra level is the one ψ₃₀ saves). A fill brings `G_R(S)` to the class columns;
//!    one product gives `y·G_R(S)`.
//!
//! **Error.** With `p_k` the exact probabilities, `|y_k − e^{t_k}| ≤ τ`, `S ≥ e^{−δ}` and
//! `G(S) = (1 ± η)/S`: `|out_k − p_k| ≤ η + (c + 1)·τ·e^{δ}·(1 + η)`, i.e. ≤ 1.1·10⁻⁴, 1.3·10⁻⁵,
//! 1.1·10⁻⁴, 9.7·10⁻⁵ for `R = 1..4`, plus CKKS noise encrypted. Measured on the simulator,
//! largest error over 10⁵ rows uniform in `[−128, 128]` and ~2000 adversarial rows (all equal,
//! one large entry, ±128 extremes, clusters, a single entry above a floor): **1.06·10⁻⁴**
//! (`c = 2`), **9.2·10⁻⁶** (`c = 4`), **3.6·10⁻⁵** (`c = 10`), **3.9·10⁻⁵** (`c = 16`).
//! Encrypted at `N = 2^11` with 40-bit primes: within 5·10⁻⁷ of the simulator.
//!
//! **Depth** `1 + 6R + 7 + d_G + 1`, less the shallow round's level ([`ours::depth`]):
//!
//! | c | R | ours | HETAL | ratio |
//! |---|---|---|---|---|
//! | 2 | 1 | 18 | 46 | 0.39 |
//! | 3–4 | 2 | 25 | 56 | 0.45 |
//! | 5–8 | 3 | 31 | 66 | 0.47 |
//! | 9–16 | 4 | 38 | 76 | 0.50 |
//!
//! **Why not normalize-and-square alone.** Cho, Hanrot, Kim, Park and Stehlé (arXiv 2410.11184)
//! compute `softmax(x/2^r)` and square `r` times, renormalizing by the row sum. Each doubling
//! costs a squaring plus an approximate inverse of a row sum whose range is at least `[1/c, 1]`
//! (a uniform row loses a factor `c` per squaring). Solving (by linear programming) for the
//! best polynomial `g` such that `y ← y²·g(Σy)` keeps the row sum in a fixed window: degree 2
//! only works for `c = 2`, degree 4 up to `c = 4`, degree 8 up to `c = 12`, more for `c = 16`.
//! From a range of 256, `r = 7–8` doublings at 2–5 levels each come to 25–45 levels before the
//! base exponential and the final division, against 18–38 for the tournament, which pays for
//! the spread of the logits once (ψ₆₂ and the exponential's squarings) and divides once, over a
//! range set by its own error. The squarings of the exponential are what is left of
//! normalize-and-square: `e^t = (e^{t/16})^16`, safe here because the tournament anchored `t`
//! below `δ`.
//!
//! # Twins
//!
//! The simulator ([`SlotSim`]) is the plaintext twin of the encrypted runs (the very same code);
//! [`twin_softmax`] is an independent `f64` model of each algorithm (HETAL's numpy steps; our
//! tournament with the Chebyshev series instead of the product forms), and [`reference_softmax`]
//! the exact softmax.

pub mod hetal;
mod kit;
pub mod ours;
mod poly;

pub(crate) use kit::land;
pub use kit::SoftmaxOps;

use std::fmt;

use hetal_ckks::OpCounts;
use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::MlError;
use crate::matmul::HetalCounts;
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::{counts_delta, Bootstrap, CkksOps};
use crate::SlotSim;

/// Which softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SoftmaxAlgo {
    /// HETAL's: approximate max, domain extension, exponential, Goldschmidt inverse.
    Hetal,
    /// Ours: log-sum-exp tournament, exponential, bounded inverse.
    Ours,
}

impl fmt::Display for SoftmaxAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SoftmaxAlgo::Hetal => "hetal",
            SoftmaxAlgo::Ours => "ours",
        })
    }
}

/// The design of one algorithm for one class count (polynomials factored once).
enum Design {
    Hetal(hetal::Design),
    Ours(ours::Design),
}

impl Design {
    fn new(classes: usize, algo: SoftmaxAlgo) -> Result<Self, MlError> {
        Ok(match algo {
            SoftmaxAlgo::Hetal => Design::Hetal(hetal::Design::new(classes)?),
            SoftmaxAlgo::Ours => Design::Ours(ours::Design::new(classes)?),
        })
    }

    fn depth(&self) -> usize {
        match self {
            Design::Hetal(d) => d.depth(),
            Design::Ours(d) => d.depth(),
        }
    }

    fn block<O: SoftmaxOps + Bootstrap>(
        &self,
        ops: &O,
        x: &O::Ct,
        shape: BlockShape,
        out_scale: Option<f64>,
    ) -> Result<O::Ct, MlError> {
        match (self, out_scale) {
            (Design::Hetal(d), None) => hetal::block(ops, x, shape, d),
            // HETAL's last product has no free factor: one more constant product lands it.
            (Design::Hetal(d), Some(scale)) => {
                let p = kit::refresh(ops, hetal::block(ops, x, shape, d)?, 1, "softmax output")?;
                land(ops, &p, 1.0, scale)
            }
            (Design::Ours(d), _) => ours::block(ops, x, shape, d, out_scale),
        }
    }
}

/// Levels the softmax consumes for `classes` classes (the output is this many levels below
/// the input).
///
/// # Errors
/// [`MlError::DimensionMismatch`] for fewer than 2 classes, or more than
/// [`ours::MAX_CLASSES`] for [`SoftmaxAlgo::Ours`].
pub fn softmax_depth(classes: usize, algo: SoftmaxAlgo) -> Result<usize, MlError> {
    check_classes(classes, algo)?;
    Ok(match algo {
        SoftmaxAlgo::Hetal => hetal::depth(classes),
        SoftmaxAlgo::Ours => ours::depth(classes),
    })
}

/// The rotations the softmax uses for `classes` classes in blocks of rows of `s1` slots (the
/// Galois keys an encrypted run needs; no conjugation). Sorted.
///
/// # Errors
/// As [`softmax_depth`].
pub fn softmax_rotations(
    classes: usize,
    shape: BlockShape,
    algo: SoftmaxAlgo,
) -> Result<Vec<i64>, MlError> {
    check_classes(classes, algo)?;
    Ok(match algo {
        SoftmaxAlgo::Hetal => hetal::rotations(classes, shape.s1()),
        SoftmaxAlgo::Ours => ours::rotations(classes, shape.s1()),
    })
}

fn check_classes(classes: usize, algo: SoftmaxAlgo) -> Result<(), MlError> {
    let max = match algo {
        SoftmaxAlgo::Hetal => usize::MAX,
        SoftmaxAlgo::Ours => ours::MAX_CLASSES,
    };
    if classes < 2 || classes > max {
        return Err(MlError::DimensionMismatch {
            what: "softmax classes (2 ≤ c, and c ≤ 16 for ours)",
            lhs: classes,
            rhs: max.min(ours::MAX_CLASSES),
        });
    }
    Ok(())
}

/// The row-wise softmax of encrypted logits (see the module documentation for the layout).
///
/// # Errors
/// [`MlError::LayoutMismatch`] unless the logits are in [`Layout::Blocks`];
/// [`MlError::DimensionMismatch`] for a class count out of range or above `s1`;
/// [`MlError::NotEnoughLevels`] below [`softmax_depth`] when the backend cannot bootstrap,
/// below the first stage's one level when it can; CKKS errors (a missing rotation key: see
/// [`softmax_rotations`]).
///
/// Both run at any depth on a backend with bootstrapping: the level planner
/// ([`ensure_levels`](crate::ensure_levels)) refreshes the live values between their stages
/// exactly when a stage would not fit, and nothing on a backend with levels enough. Every value
/// it may bootstrap is below 2 in magnitude (ours: below 1, the tournament's in its unit σ_t,
/// the exponential's by the design of its unit; HETAL's: see [`hetal`]), so with logits at the
/// default scale all are within training's bound (see [`Bootstrap`]); the logits themselves
/// are only bootstrapped when they arrive without the one level of the first stage, and then
/// they must be within the bound at their own scale.
pub fn softmax<O: SoftmaxOps + Bootstrap>(
    ops: &O,
    logits: &EncMatrix<O::Ct>,
    algo: SoftmaxAlgo,
) -> Result<EncMatrix<O::Ct>, MlError> {
    softmax_to_scale(ops, logits, algo, None)
}

/// [`softmax`] with the probabilities landed exactly on the scale `out_scale` (`None`: the
/// logits' scale). Free for ours (the inverse's constant leaf lands the last product); one
/// more level for HETAL's (a constant product, after a bootstrap if none is left).
///
/// # Errors
/// As [`softmax`].
pub fn softmax_to_scale<O: SoftmaxOps + Bootstrap>(
    ops: &O,
    logits: &EncMatrix<O::Ct>,
    algo: SoftmaxAlgo,
    out_scale: Option<f64>,
) -> Result<EncMatrix<O::Ct>, MlError> {
    if logits.layout() != Layout::Blocks {
        return Err(MlError::LayoutMismatch {
            operand: "softmax logits",
            expected: Layout::Blocks,
            found: logits.layout(),
        });
    }
    let classes = logits.cols();
    let shape = logits.shape();
    if classes > shape.s1() {
        return Err(MlError::DimensionMismatch {
            what: "softmax classes against the block width s1",
            lhs: classes,
            rhs: shape.s1(),
        });
    }
    check_classes(classes, algo)?;
    let design = Design::new(classes, algo)?;
    let need = match ops.refreshed_level() {
        Some(_) => 1,
        None => design.depth(),
    };
    let level = logits.level();
    if level < need {
        return Err(MlError::NotEnoughLevels {
            operand: "softmax logits",
            have: level,
            need,
        });
    }
    let out = logits
        .blocks()
        .iter()
        .map(|x| design.block(ops, &ops.drop_to_level(x, level)?, shape, out_scale))
        .collect::<Result<Vec<_>, _>>()?;
    EncMatrix::from_blocks(logits.rows(), classes, shape, Layout::Blocks, out)
}

/// The exact softmax of each row (max-subtracted, in `f64`).
pub fn reference_softmax(logits: &Array2<f64>) -> Array2<f64> {
    let mut out = logits.clone();
    for mut row in out.axis_iter_mut(Axis(0)) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.mapv_inplace(|v| (v - m).exp());
        let s: f64 = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    out
}

/// The `f64` model of an algorithm on the rows of `logits` (see the module documentation).
///
/// # Errors
/// As [`softmax_depth`].
pub fn twin_softmax(logits: &Array2<f64>, algo: SoftmaxAlgo) -> Result<Array2<f64>, MlError> {
    let classes = logits.ncols();
    check_classes(classes, algo)?;
    Ok(match algo {
        SoftmaxAlgo::Hetal => hetal::twin(logits),
        SoftmaxAlgo::Ours => ours::twin(logits, &ours::Design::new(classes)?),
    })
}

/// `(max, mean)` over rows of the row's largest absolute error of `approx` against `exact`
/// (the measure of HETAL's reference script). `(0, 0)` for no rows.
pub fn softmax_errors(approx: &Array2<f64>, exact: &Array2<f64>) -> (f64, f64) {
    let per_row: Vec<f64> = approx
        .axis_iter(Axis(0))
        .zip(exact.axis_iter(Axis(0)))
        .map(|(a, e)| {
            a.iter()
                .zip(e.iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max)
        })
        .collect();
    let max = per_row.iter().copied().fold(0.0, f64::max);
    let mean = if per_row.is_empty() {
        0.0
    } else {
        per_row.iter().sum::<f64>() / per_row.len() as f64
    };
    (max, mean)
}

/// What [`bench_softmax`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxReport {
    /// The algorithm.
    pub algo: SoftmaxAlgo,
    /// Number of classes.
    pub classes: usize,
    /// Inputs were uniform in `[−range, range]`.
    pub range: f64,
    /// Number of rows.
    pub rows: usize,
    /// Largest absolute error of any probability against [`reference_softmax`].
    pub max_err: f64,
    /// Mean over the rows of the row's largest absolute error.
    pub mean_err: f64,
    /// Levels consumed.
    pub depth: usize,
    /// Operation counts of the whole run, all blocks.
    pub counts: OpCounts,
}

impl SoftmaxReport {
    /// The counts in HETAL's `CMult / Mult / Rot` terms.
    pub fn hetal_counts(&self) -> HetalCounts {
        HetalCounts::from_counts(&self.counts)
    }
}

/// Slots of the simulated ciphertexts of [`bench_softmax`]: HETAL's `N = 2^16`.
pub const BENCH_SLOTS: usize = 1 << 15;

/// Runs a softmax on the simulator (`2^15` slots, rows of `s1 = 2^⌈log2 c⌉` slots, many rows
/// per ciphertext) over `rows` random rows uniform in `[−range, range]` drawn from `seed`, and
/// measures its error against [`reference_softmax`] and its depth.
///
/// # Errors
/// [`MlError::DimensionMismatch`] for a class count out of range (see [`softmax_depth`]) or a
/// range outside `(0, 128]` (the supported input domain), [`MlError::Empty`] for no rows.
pub fn bench_softmax(
    classes: usize,
    range: f64,
    algo: SoftmaxAlgo,
    rows: usize,
    seed: u64,
) -> Result<SoftmaxReport, MlError> {
    let x = bench_logits(classes, range, rows, seed)?;
    let (y, depth, counts) = simulate(&x, algo)?;
    let (max_err, mean_err) = softmax_errors(&y, &reference_softmax(&x));
    Ok(SoftmaxReport {
        algo,
        classes,
        range,
        rows,
        max_err,
        mean_err,
        depth,
        counts,
    })
}

/// The rows [`bench_softmax`] measures: `rows` rows of `classes` values uniform in
/// `[−range, range]`, drawn from `seed`. Public so that other runs (encrypted ones, at other
/// parameters) measure the very same rows.
///
/// # Errors
/// [`MlError::DimensionMismatch`] for a range outside `(0, 128]`, [`MlError::Empty`] for no
/// rows.
pub fn bench_logits(
    classes: usize,
    range: f64,
    rows: usize,
    seed: u64,
) -> Result<Array2<f64>, MlError> {
    if !(range > 0.0 && range <= hetal::RMAX) {
        return Err(MlError::DimensionMismatch {
            what: "softmax bench range (0 < R ≤ 128), rounded",
            lhs: range.max(0.0).round() as usize,
            rhs: hetal::RMAX as usize,
        });
    }
    if rows == 0 {
        return Err(MlError::Empty);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(Array2::from_shape_fn((rows, classes), |_| {
        rng.random_range(-range..=range)
    }))
}

/// Runs a softmax on the simulator on the rows of `logits` (as [`bench_softmax`] lays them out)
/// and returns the decrypted probabilities, the depth and the operation counts.
///
/// # Errors
/// As [`bench_softmax`].
pub fn simulate(
    logits: &Array2<f64>,
    algo: SoftmaxAlgo,
) -> Result<(Array2<f64>, usize, OpCounts), MlError> {
    let classes = logits.ncols();
    let depth = softmax_depth(classes, algo)?;
    let s1 = classes.next_power_of_two();
    let shape = BlockShape::with_slots(BENCH_SLOTS / s1, BENCH_SLOTS)?;
    let mut sim = SlotSim::uniform(BENCH_SLOTS, depth, 40);
    let ex = EncMatrix::encrypt(&mut sim, logits, shape, Layout::Blocks, depth)?;
    let before = sim.counts();
    let out = softmax(&sim, &ex, algo)?;
    let counts = counts_delta(&sim.counts(), &before);
    let used = depth.saturating_sub(out.level());
    Ok((out.decrypt(&sim)?, used, counts))
}
