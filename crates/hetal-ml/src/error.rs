//! Errors of the ML layer.
//!
//! Everything derived from caller input (matrix sizes, block shapes, class counts, levels)
//! returns an [`MlError`]; errors of the CKKS operations underneath are wrapped unchanged.

use hetal_ckks::CkksError;

use crate::matrix::Layout;

/// Everything that can go wrong in the ML layer on caller-supplied input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// A CKKS operation failed (level or scale mismatch, missing key, …).
    #[error(transparent)]
    Ckks(#[from] CkksError),
    /// The block shape `(s0, s1)` is not made of powers of two, or `s0·s1` is not the slot
    /// count asked for.
    #[error("bad block shape ({s0}, {s1}): {reason}")]
    BadBlockShape {
        /// Rows per block.
        s0: usize,
        /// Columns per block.
        s1: usize,
        /// Why.
        reason: String,
    },
    /// A tiling period (the padded class count `c`) does not fit the block shape.
    #[error("bad tiling period {period} for block shape ({s0}, {s1}): {reason}")]
    BadPeriod {
        /// The period.
        period: usize,
        /// Rows per block.
        s0: usize,
        /// Columns per block.
        s1: usize,
        /// Why.
        reason: String,
    },
    /// Two matrices that must agree in some dimension do not.
    #[error("dimension mismatch ({what}): {lhs} vs {rhs}")]
    DimensionMismatch {
        /// Which dimension.
        what: &'static str,
        /// Left operand's value.
        lhs: usize,
        /// Right operand's value.
        rhs: usize,
    },
    /// An operand has the wrong layout for the algorithm.
    #[error("layout mismatch for {operand}: expected {expected:?}, found {found:?}")]
    LayoutMismatch {
        /// Which operand.
        operand: &'static str,
        /// The layout the algorithm needs.
        expected: Layout,
        /// The layout given.
        found: Layout,
    },
    /// A block's slot vector has the wrong length, or a matrix has the wrong number of blocks.
    #[error("bad block data ({what}): expected {expected}, found {found}")]
    BadBlocks {
        /// What was counted.
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Count found.
        found: usize,
    },
    /// An operand has too few levels left for the algorithm.
    #[error("{operand} needs {need} levels, has {have}")]
    NotEnoughLevels {
        /// Which operand.
        operand: &'static str,
        /// Levels available.
        have: usize,
        /// Levels needed.
        need: usize,
    },
    /// A value is too large for the bootstrapping circuit at its scale (found by the
    /// simulator, which checks what the encrypted circuit cannot).
    #[error(
        "bootstrapping {operand} needs |value| ≤ {limit:e} at its scale, found {value:e}{}",
        if *real { " (or a non-real value in a real pair)" } else { "" }
    )]
    BootstrapRange {
        /// What was bootstrapped (as the caller of the level planner named it).
        operand: &'static str,
        /// The largest magnitude found.
        value: f64,
        /// The largest allowed at the ciphertext's scale.
        limit: f64,
        /// Whether real values were required (a pair).
        real: bool,
    },
    /// A protocol message is malformed, corrupted, foreign or out of order.
    #[error("bad message: {0}")]
    Message(String),
    /// A matrix has no rows, no columns or no blocks.
    #[error("empty matrix")]
    Empty,
}
