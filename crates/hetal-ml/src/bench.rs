//! Measurement helpers for benchmarks and reports: run a product and return its output, its
//! operation counts and its wall time; or count a product at any size on the simulator.
//!
//! Timings are wall-clock [`Duration`]s of the product alone (inputs already encrypted, keys
//! already made). Nothing here asserts a timing.

use std::time::{Duration, Instant};

use hetal_ckks::OpCounts;
use ndarray::Array2;

use crate::error::MlError;
use crate::matmul::{diag_abt, diag_atb, AtbVariant, HetalCounts};
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::{counts_delta, CkksOps, Leveled, SlotClient};
use crate::SlotSim;

/// The result of one measured product.
#[derive(Clone, Debug)]
pub struct MatmulRun<C> {
    /// The product.
    pub output: EncMatrix<C>,
    /// The operations it took (counter differences over the run).
    pub counts: OpCounts,
    /// Wall time of the product.
    pub wall: Duration,
    /// Levels consumed: the lower input level minus the output level.
    pub depth: usize,
}

impl<C> MatmulRun<C> {
    /// The counts in HETAL's `CMult / Mult / Rot` terms.
    pub fn hetal_counts(&self) -> HetalCounts {
        HetalCounts::from_counts(&self.counts)
    }
}

fn measure<O: CkksOps>(
    ops: &O,
    input_level: usize,
    f: impl FnOnce() -> Result<EncMatrix<O::Ct>, MlError>,
) -> Result<MatmulRun<O::Ct>, MlError> {
    let before = ops.counts();
    let start = Instant::now();
    let output = f()?;
    let wall = start.elapsed();
    let counts = counts_delta(&ops.counts(), &before);
    let depth = input_level.saturating_sub(output.level());
    Ok(MatmulRun {
        output,
        counts,
        wall,
        depth,
    })
}

/// Runs and measures [`diag_abt`].
///
/// # Errors
/// As [`diag_abt`].
pub fn run_abt<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
) -> Result<MatmulRun<O::Ct>, MlError> {
    measure(ops, a.level().min(b.level()), || diag_abt(ops, a, b))
}

/// Runs and measures [`diag_atb`].
///
/// # Errors
/// As [`diag_atb`].
pub fn run_atb<O: CkksOps>(
    ops: &O,
    a: &EncMatrix<O::Ct>,
    b: &EncMatrix<O::Ct>,
    variant: AtbVariant,
) -> Result<MatmulRun<O::Ct>, MlError> {
    measure(ops, a.level().min(b.level()), || {
        diag_atb(ops, a, b, variant)
    })
}

/// A simulated zero matrix (counts do not depend on the values).
fn zeros(
    sim: &mut SlotSim,
    rows: usize,
    cols: usize,
    shape: BlockShape,
    layout: Layout,
    level: usize,
) -> Result<EncMatrix<crate::SimCt>, MlError> {
    let (gr, gc) = layout.grid(rows, cols, shape)?;
    let blocks = (0..gr * gc)
        .map(|_| {
            sim.encrypt(
                &vec![num_complex::Complex64::new(0.0, 0.0); shape.slots()],
                level,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let m = EncMatrix::from_blocks(rows, cols, shape, layout, blocks)?;
    debug_assert!(m.blocks().iter().all(|b| b.level() == level));
    Ok(m)
}

/// DiagABT of `A (a × b) · Bᵀ (b × c)` on the simulator at any size: no keys, exact counts.
/// Inputs at `level` (HETAL: 12) with `shape.slots()` slots.
///
/// # Errors
/// As [`diag_abt`].
pub fn simulate_abt(
    a: usize,
    b: usize,
    c: usize,
    shape: BlockShape,
    level: usize,
) -> Result<MatmulRun<crate::SimCt>, MlError> {
    let mut sim = SlotSim::uniform(shape.slots(), level, 40);
    let ma = zeros(&mut sim, a, b, shape, Layout::Blocks, level)?;
    let mb = zeros(&mut sim, c, b, shape, Layout::RowTiled { period: c }, level)?;
    run_abt(&sim, &ma, &mb)
}

/// DiagATB of `Aᵀ (c × a) · B (a × b)` on the simulator at any size: no keys, exact counts.
/// Inputs at `level` with `shape.slots()` slots.
///
/// # Errors
/// As [`diag_atb`].
pub fn simulate_atb(
    a: usize,
    b: usize,
    c: usize,
    shape: BlockShape,
    level: usize,
    variant: AtbVariant,
) -> Result<MatmulRun<crate::SimCt>, MlError> {
    let mut sim = SlotSim::uniform(shape.slots(), level, 40);
    let ma = zeros(&mut sim, a, c, shape, Layout::ColTiled { period: c }, level)?;
    let mb = zeros(&mut sim, a, b, shape, Layout::Blocks, level)?;
    run_atb(&sim, &ma, &mb, variant)
}

/// The plaintext reference `A·Bᵀ`.
pub fn plain_abt(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    a.dot(&b.t())
}

/// The plaintext reference `Aᵀ·B`.
pub fn plain_atb(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    a.t().dot(b)
}
