//! Our DiagABT and DiagATB: the same products as [`crate::matmul`], with far fewer key switches,
//! no more ciphertext multiplications and no more depth; and a compact layout for the weights
//! and the gradient, [`PackedMatrix`], with its conversions.
//!
//! Everything is written once against [`CkksOps`], so it runs encrypted and on
//! the simulator; the `*_cost` functions give the exact counters a run shows (the tests assert
//! them on both backends), and [`CostModel`] weighs them into an estimate of CPU time.
//!
//! Notation as in [`crate::matmul`]: `A·Bᵀ` and `Aᵀ·B` on `(s0, s1)` blocks, `na × nb` the block
//! grid of the features, `c` the padded class count, `h = c/2` (two diagonals share one
//! complex product), `F` a full key switch (its own decomposition), `H` a hoisted one (sharing
//! the decomposition of its batch: ≈ 45 % of `F` on this engine). A batch of one rotation is
//! issued as a plain rotation and counted as `F`; `batch(k)` below is `0` for `k = 0`, `1 F`
//! for `k = 1`, `k H` (one decomposition) for `k ≥ 2`.
//!
//! # DiagABT: [`abt`] (logits `X·Wᵀ`)
//!
//! Same operands and output as [`diag_abt`](crate::diag_abt): `X` in
//! [`Layout::Blocks`](crate::Layout::Blocks), `W` in `RowTiled { period: c }`, logits in
//! `Blocks` with `C[i][k]` in slot `(i, k)`. Depth 3, as HETAL's.
//!
//! 1. **Hoisted, baby-step giant-step shifts.** HETAL rotates `Z[t] = W~[t] + i·Rot(W~[t], s1)`
//!    by `2j·s1` for every `j < h` and every block column: `(h − 1)·nb` full key switches.
//!    We write `j = j1 + B·j2` (`B·G = h`, [`AbtPlan`]) and use
//!    `Σ_t X[t] ⊙ Rot(Z[t], 2j·s1) = Rot(Σ_t Rot(X[t], −2B·j2·s1) ⊙ Rot(Z[t], 2j1·s1), 2B·j2·s1)`:
//!    the `B − 1` baby steps of each `Z[t]` form one hoisted batch, the `G − 1` giant steps of
//!    each `X[r][t]` another, and the outer rotation costs nothing (below). Per block column:
//!    `1 F` (the imaginary part of `Z`) `+ batch(B − 1) + na·batch(G − 1)` instead of `h F`.
//! 2. **One row sum per diagonal, merged placement.** HETAL runs RowSum, a column-0 mask and
//!    RowFill (`2·log2 s1` rotations) per diagonal. We keep the RowSum (`log2 s1`) and the
//!    column-0 mask (with the `½` of the real part), then rotate each diagonal's column 0 into
//!    column `2j`, in the same rotation undoing the giant step's row shift
//!    (`Rot(·, 2B·j2·s1 − 2j)`): `h − 1` rotations for all diagonals together. One more
//!    rotation puts `−i·T_j` into column `2j + 1` (the imaginary part), and the
//!    row-dependent diagonal placement (`C[i][(i + 2j) mod c]`) becomes a per-row cyclic shift
//!    by `i mod c` inside the first `c` columns: `Y2 = Y + Rot(Y, −c)` (`1 F`) and the hoisted
//!    batch `Rot(Y2, c − ρ)`, `ρ < c`, each masked to the rows `≡ ρ (mod c)`: `batch(c)`.
//!    When `c = s1` (no room for `Y2`) the batch reads `Rot(Y, −ρ)` and `Rot(Y, s1 − ρ)` under
//!    split masks: `batch(2c − 2)` and no `Y2`.
//! 3. **Windowed row sums, merged** ([`AbtPlan::windowed`], when `s1 ≥ 4c`). The placement
//!    rotation moves before the row sum: each diagonal's product is rotated so that its rows
//!    start in column `c + 2j` (`h` rotations), summed over windows of `L1` columns
//!    (`log2 L1`), and masked with `½` at the window starts `≡ c + 2j + d·L1 (mod L)`,
//!    `d < L2`, `L = L1·L2`, into `L2` accumulators shared by all diagonals. Then
//!    `Σ_d Rot(Y_d, d·L1)` (Horner, `L2 − 1`), the imaginary copy (1), a ladder over the strides
//!    `L, 2L, …` (`log2(s1/L)`) and `Y2 = Y + Rot(Y, c)` (1) complete every row sum at once.
//!    [`AbtPlan::best`] picks the split and the row sums by [`CostModel`].
//!
//! Counts (ours vs HETAL's `Rot = h·(nb + 2·na·log2 s1)`, `CMult = c·na`):
//!
//! | | ours |
//! |---|---|
//! | ct×ct | `h·na·nb` (HETAL's) |
//! | rotations of weights and features | `nb·(1 F + batch(B − 1) + na·batch(G − 1))` |
//! | rotations, whole row sums (per block row) | `(h·log2 s1 + h + 1) F + batch(c)`; `c = s1`: `(h·log2 s1 + h) F + batch(2c − 2)` |
//! | rotations, windowed row sums (per block row) | `(h·(1 + log2 L1) + L2 + log2(s1/L) + 1) F + batch(c)` |
//! | plaintext mults (per block row) | `h + c`; `c = s1`: `h + 2c − 1`; windowed: `h·L2 + c` |
//! | conjugations | `na` (HETAL's) |
//! | depth | 3 (HETAL's) |
//!
//! # DiagATB: [`atb`] (gradient `Eᵀ·X`)
//!
//! Same operands as [`diag_atb`](crate::diag_atb): `E` (`a × c'`) in `ColTiled { period: c }`,
//! `X` in `Blocks`. Output: a [`PackedMatrix`] (below); [`to_blocks`] converts to HETAL's
//! output layout when needed.
//!
//! 1. **Hoisted shifts of `E`, one level.** All `RotLeft(E~, k)`, `k < c`, come from one hoisted
//!    batch of `2(c − 1)` rotations (`k` and `k − s1`) and one mask level, so `Zj` sits one level
//!    below `E` instead of two: `E` loses 3 levels, not 4 (and not PRotUp's 3 on both sides),
//!    `X` loses 2. Per block row: `batch(2c − 2)` instead of `c F`.
//! 2. **Merged partial column sums, baby-step giant-step masks.** HETAL reduces each of the
//!    `h·nb` products `P_{j,t}` over its `s0` rows on its own (`log2 s0` rotations each), then
//!    masks it into rows. We reduce each product only over windows of `L1` rows (`log2 L1`
//!    rotations), then fold the mask into the reduction: with `L = L1·L2`, the masked product
//!    for the shift `d < L2` goes into an accumulator `Y_d` shared by all products of one output
//!    ciphertext, and `Y = Σ_d Rot(Y_d, d·L1·s1)` (Horner: `L2 − 1` rotations, all by `L1·s1`)
//!    followed by a ladder over the strides `L·s1, 2L·s1, …` (`log2(s0/L)` rotations) completes
//!    every column sum at once. Each product's two parts (real, imaginary) land in their own
//!    rows modulo `L`, so one output ciphertext holds `L/c` block columns. The price is `L2`
//!    plaintext masks per product instead of one, which [`AtbPlan::best`] weighs.
//!
//! Counts, with `groups = ⌈nb / (L/c)⌉` output ciphertexts (HETAL:
//! `Rot = h·(2·na + nb·log2 s0)`, `CMult = h·(na + nb)`):
//!
//! | | ours |
//! |---|---|
//! | ct×ct | `h·na·nb` (HETAL's) |
//! | full rotations | `h·nb·log2 L1 + groups·(L2 − 1 + log2(s0/L))` |
//! | hoisted rotations | `na·(2c − 2)` |
//! | plaintext mults | `na·(c − 1) + h·nb·L2` |
//! | conjugations | `groups` (HETAL: `nb`) |
//! | depth | `E`: 3 (HETAL 4), `X`: 2 (HETAL 2) |
//!
//! # The packed layout and its conversions
//!
//! HETAL keeps the `c × b` weights tiled, `s0/c` copies in each of `nb` ciphertexts, and each
//! one is bootstrapped every step. A [`PackedMatrix`] with period `L` stacks the `c`-row
//! blocks of `L/c` block columns in the rows of one ciphertext, repeated with period `L` down
//! the `s0` rows: `⌈nb·c/L⌉` ciphertexts, one when `L ≥ nb·c` (all Table 7 shapes: 784 of 2048
//! rows at (2048, 769, 16)). The conversions the trainer needs:
//!
//! * [`atb`] writes the gradient directly in a packed layout (period `L` of its plan);
//! * [`repack`] merges it into a larger period (the weights' compact period) **with masks
//!   only**, since every source ciphertext is already repeated with its period; a factor (the
//!   learning rate) rides on the masks, so the level it costs is the one the update's scaling
//!   costs anyway: `#sources` plaintext mults, no rotation, 1 level;
//! * [`expand`] turns packed weights into HETAL's `RowTiled` weights for [`abt`]: per block
//!   column `G1` masks and `log2(L/(c·G1))` rotations, with a shared hoisted batch of `G1 − 1`
//!   rotations per source: 1 level (0 when the period is already `c`);
//! * [`to_blocks`] gives HETAL's DiagATB output layout: a hoisted batch of `L/c − 1` per source,
//!   one mask per block column, 1 level.
//!
//! # Cost model
//!
//! [`CostModel`] turns counts into full-key-switch equivalents: a full key switch is 1, a
//! hoisted one 0.45 plus 0.55 per batch (its shared decomposition), a relinearized product
//! 1.70, a plaintext mult with its addition 0.06, a rescale 0.24, a mask encoding 0.144
//! (measured at N = 2^16 with HETAL's parameters, see [`CostModel::default`]). Masks are
//! encoded once per call and counted in [`Cost::encodes`]; a trainer that keeps them across
//! steps can plan with `encode = 0` ([`AbtPlan::best_with`], [`AtbPlan::best_with`]).
//!
//! The model does not see levels. A key switch one level lower is cheaper, by a whole digit
//! where the level crosses a digit boundary (with 13 primes and 3 digits: 3 digits at level 10,
//! 2 at level 9). Our DiagATB saves `E` a level, so from the same inputs its rotations run one
//! level above HETAL's; from inputs one level lower (the same output level as HETAL's) they
//! run at the same level. Measured at N = 2^16 (`timing_at_n16`, one thread), ours / HETAL's
//! wall time, model in parentheses:
//!
//! | (a, b, c) | DiagABT | DiagATB, same inputs | DiagATB, same output level |
//! |---|---|---|---|
//! | (128, 128, 4) | 0.61 (0.65) | 0.77 (0.75) | 0.66 |
//! | (256, 256, 8) | 0.68 (0.66) | 0.68 (0.60) | 0.57 |
//! | (512, 769, 4) | 0.86 (0.92) | 0.58 (0.50) | 0.48 |
//! | (1024, 769, 8) | 0.91 (0.87) | 0.53 (0.44) | 0.53 |
//! | (2048, 769, 16) | 0.88 (0.82) | 0.59 (0.41) | 0.48 |
//!
//! **Lazy relinearization.** Both products sum `ct×ct` products before any rotation (DiagABT
//! over the `nb` block columns of a diagonal, DiagATB over the `na` block rows of a product):
//! the degree-2 tensors are summed and relinearized once
//! ([`CkksOps::mul_sum_relin`]), so a sum of `k` products costs one key switch instead of `k`
//! (`h·na·(nb − 1)` fewer in DiagABT, `h·nb·(na − 1)` in DiagATB), with the same `ct×ct` count
//! and less key-switching noise.

mod abt;
mod atb;
mod packed;

pub use abt::{abt, abt_cost, abt_rotations, abt_with, AbtPlan, OURS_ABT_DEPTH};
pub use atb::{atb, atb_cost, atb_rotations, atb_with, AtbPlan, OURS_ATB_DEPTHS};
pub use packed::{
    expand, expand_cost, expand_rotations, repack, repack_cost, repack_with, to_blocks,
    to_blocks_cost, to_blocks_rotations, PackedLayout, PackedMatrix,
};

use hetal_ckks::{CkksError, OpCounts};
use num_complex::Complex64;

use crate::error::MlError;
use crate::matrix::BlockShape;
use crate::ops::CkksOps;

/// Exact counters of one of our algorithms, plus what the evaluator does not count: hoisted
/// batches (each shares one decomposition) and plaintext encodings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// The counters a run shows, as [`CkksOps::counts`] reports them.
    pub counts: OpCounts,
    /// Hoisted batches (calls of [`CkksOps::rotate_hoisted`] with at least two rotations).
    pub hoisted_batches: u64,
    /// Masks encoded (calls of [`CkksOps::encode_plain`]); a caller running the same shapes at
    /// the same levels every step could encode them once.
    pub encodes: u64,
}

impl Cost {
    /// All key switches: `keyswitch_full + keyswitch_hoisted` (relinearizations and
    /// conjugations included).
    pub fn key_switches(&self) -> u64 {
        self.counts.keyswitch_full + self.counts.keyswitch_hoisted
    }

    /// Key switches of rotations and conjugations only (relinearizations left out): what
    /// compares with HETAL's `Rot` (plus its conjugations). Every rotation our algorithms
    /// issue switches keys (none is by a multiple of the slot count).
    pub fn rotation_key_switches(&self) -> u64 {
        self.counts.rotations + self.counts.conjugations
    }

    /// Full rotations (rotations that are not hoisted).
    pub fn full_rotations(&self) -> u64 {
        self.counts
            .rotations
            .saturating_sub(self.counts.keyswitch_hoisted)
    }

    fn add(&mut self, other: &Cost) {
        let (a, b) = (&mut self.counts, &other.counts);
        a.ct_mult += b.ct_mult;
        a.pt_mult += b.pt_mult;
        a.const_mult += b.const_mult;
        a.rotations += b.rotations;
        a.keyswitch_full += b.keyswitch_full;
        a.keyswitch_hoisted += b.keyswitch_hoisted;
        a.rescales += b.rescales;
        a.conjugations += b.conjugations;
        self.hoisted_batches += other.hoisted_batches;
        self.encodes += other.encodes;
    }

    /// `k` rotations: none, one full, or one hoisted batch.
    fn batch(k: u64) -> Cost {
        let mut c = Cost::default();
        match k {
            0 => {}
            1 => {
                c.counts.rotations = 1;
                c.counts.keyswitch_full = 1;
            }
            _ => {
                c.counts.rotations = k;
                c.counts.keyswitch_hoisted = k;
                c.hoisted_batches = 1;
            }
        }
        c
    }

    /// `k` full rotations.
    fn full(k: u64) -> Cost {
        let mut c = Cost::default();
        c.counts.rotations = k;
        c.counts.keyswitch_full = k;
        c
    }

    /// `sums` sums of `terms` products each, one relinearization per sum
    /// ([`CkksOps::mul_sum_relin`]).
    fn products(sums: u64, terms: u64) -> Cost {
        let mut c = Cost::default();
        c.counts.ct_mult = sums * terms;
        c.counts.keyswitch_full = sums;
        c
    }

    /// `k` conjugations.
    fn conjugations(k: u64) -> Cost {
        let mut c = Cost::default();
        c.counts.conjugations = k;
        c.counts.keyswitch_full = k;
        c
    }

    /// `pt` plaintext mults, `cm` constant mults, `rs` rescales.
    fn light(pt: u64, cm: u64, rs: u64) -> Cost {
        let mut c = Cost::default();
        c.counts.pt_mult = pt;
        c.counts.const_mult = cm;
        c.counts.rescales = rs;
        c
    }

    /// `self` repeated `k` times.
    fn times(&self, k: u64) -> Cost {
        let (a, mut out) = (&self.counts, Cost::default());
        out.counts = OpCounts {
            ct_mult: a.ct_mult * k,
            pt_mult: a.pt_mult * k,
            const_mult: a.const_mult * k,
            rotations: a.rotations * k,
            keyswitch_full: a.keyswitch_full * k,
            keyswitch_hoisted: a.keyswitch_hoisted * k,
            rescales: a.rescales * k,
            conjugations: a.conjugations * k,
        };
        out.hoisted_batches = self.hoisted_batches * k;
        out.encodes = self.encodes * k;
        out
    }

    /// `k` plaintext encodings.
    fn encoded(k: u64) -> Cost {
        Cost {
            encodes: k,
            ..Cost::default()
        }
    }

    /// The sum of `parts`.
    fn sum<'a>(parts: impl IntoIterator<Item = &'a Cost>) -> Cost {
        let mut c = Cost::default();
        for p in parts {
            c.add(p);
        }
        c
    }
}

/// Relative CPU costs of the operations, in full key switches (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    /// A hoisted key switch (inner product and ModDowns), without its batch's decomposition.
    pub hoisted: f64,
    /// The decomposition (ModUp) a hoisted batch shares.
    pub decomposition: f64,
    /// A ct×ct product apart from its relinearization key switch (the tensor).
    pub tensor: f64,
    /// A plaintext or constant multiplication, with the addition that follows it.
    pub pt_mult: f64,
    /// A rescale.
    pub rescale: f64,
    /// A plaintext encoding (an FFT and the NTTs of every prime).
    pub encode: f64,
}

impl Default for CostModel {
    /// A hoisted key switch 0.45 of a full one, its batch's decomposition 0.55 (the engine's
    /// figures; measured 0.51 and 0.49 below). The rest measured on this engine at N = 2^16
    /// with HETAL's Table 7 setting (13 primes, level 11, dnum 3, one thread; rotation
    /// 123–125 ms): relinearized product 1.16–1.70 across runs (tensor 0.70 taken; products
    /// are as many in ours as in HETAL's, so a larger weight only pulls ratios towards 1),
    /// plaintext mult 0.045 and addition 0.017, rescale 0.24, encoding 0.14
    /// (`timing_at_n16` in `tests/ours.rs`).
    fn default() -> Self {
        Self {
            hoisted: 0.45,
            decomposition: 0.55,
            tensor: 0.70,
            pt_mult: 0.06,
            rescale: 0.24,
            encode: 0.144,
        }
    }
}

impl CostModel {
    /// The weighted cost of `counts` run with `hoisted_batches` batches and `encodes`
    /// encodings, in full key switches.
    pub fn weigh(&self, counts: &OpCounts, hoisted_batches: u64, encodes: u64) -> f64 {
        counts.keyswitch_full as f64
            + self.hoisted * counts.keyswitch_hoisted as f64
            + self.decomposition * hoisted_batches as f64
            + self.tensor * counts.ct_mult as f64
            + self.pt_mult * (counts.pt_mult + counts.const_mult) as f64
            + self.rescale * counts.rescales as f64
            + self.encode * encodes as f64
    }

    /// [`CostModel::weigh`] of a [`Cost`].
    pub fn cost(&self, cost: &Cost) -> f64 {
        self.weigh(&cost.counts, cost.hoisted_batches, cost.encodes)
    }
}

/// Rotations of one ciphertext: a plain rotation for one amount, a hoisted batch for more.
fn rotations<O: CkksOps>(ops: &O, ct: &O::Ct, ks: &[i64]) -> Result<Vec<O::Ct>, CkksError> {
    match ks {
        [] => Ok(Vec::new()),
        [k] => Ok(vec![ops.rotate(ct, *k)?]),
        _ => ops.rotate_hoisted(ct, ks),
    }
}

/// `p += Rot(p, stride·2^e)` for `e < steps`: every slot gets the sum of the `2^steps` slots
/// `stride` apart from it (cyclically).
fn ladder<O: CkksOps>(ops: &O, p: &mut O::Ct, stride: i64, steps: u32) -> Result<(), CkksError> {
    for e in 0..steps {
        let r = ops.rotate(p, stride << e)?;
        ops.add_assign(p, &r)?;
    }
    Ok(())
}

/// The rotation amounts [`ladder`] uses.
fn ladder_amounts(stride: i64, steps: u32) -> impl Iterator<Item = i64> {
    (0..steps).map(move |e| stride << e)
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

/// Rescales, then `x + conj(x)` (the masks carry the `½`).
fn rescale_real<O: CkksOps>(ops: &O, acc: Option<O::Ct>) -> Result<O::Ct, MlError> {
    let mut x = acc.ok_or(MlError::Empty)?;
    ops.rescale_assign(&mut x)?;
    let conj = ops.conjugate(&x)?;
    ops.add_assign(&mut x, &conj)?;
    Ok(x)
}

/// `level − need`, or [`MlError::NotEnoughLevels`].
fn levels_left(operand: &'static str, level: usize, need: usize) -> Result<usize, MlError> {
    level.checked_sub(need).ok_or(MlError::NotEnoughLevels {
        operand,
        have: level,
        need,
    })
}

/// Drops every block to `level`.
fn drop_all<O: CkksOps>(ops: &O, blocks: &[O::Ct], level: usize) -> Result<Vec<O::Ct>, CkksError> {
    blocks.iter().map(|x| ops.drop_to_level(x, level)).collect()
}

/// A slot mask over one block: `f(row, column)` at slot `row·s1 + column`.
fn mask(shape: BlockShape, f: impl Fn(usize, usize) -> Complex64) -> Vec<Complex64> {
    (0..shape.slots())
        .map(|s| f(s / shape.s1(), s % shape.s1()))
        .collect()
}

/// `1` where `keep(row, column)`, else `0`, times `factor`.
fn select(
    shape: BlockShape,
    factor: Complex64,
    keep: impl Fn(usize, usize) -> bool,
) -> Vec<Complex64> {
    mask(shape, |i, k| {
        if keep(i, k) {
            factor
        } else {
            Complex64::new(0.0, 0.0)
        }
    })
}

/// `log2` of a power of two, as `u64`.
fn log2(x: usize) -> u64 {
    u64::from(x.trailing_zeros())
}
