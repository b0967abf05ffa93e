//! HETAL's matrix packing: a matrix cut into `(s0, s1)` blocks, one ciphertext per block.
//!
//! With `slots = s0·s1` (both powers of two), an `m × n` matrix is cut into a grid of
//! `⌈m/s0⌉ × ⌈n/s1⌉` blocks; block `(R, T)` holds rows `R·s0 ..` and columns `T·s1 ..`,
//! **row-major** inside the block (entry `(i, k)` of the block in slot `i·s1 + k`), zero-padded
//! past the matrix. Blocks are stored row-major over the grid. This is [`Layout::Blocks`].
//!
//! HETAL's products also take operands that repeat with the padded class count `c` as period
//! (HETAL stores the weights this way, "tiled"):
//! * [`Layout::RowTiled`]: a `c' × n` matrix (`c' ≤ c`, padded to `c` rows) repeated down the
//!   `s0` rows of a single block row, so row `i` of every block is row `i mod c`
//!   (the `B~` of DiagABT);
//! * [`Layout::ColTiled`]: an `m × c'` matrix (`c' ≤ c`) repeated across the `s1` columns of a
//!   single block column, so column `k` is column `k mod c` (the `A~` of DiagATB).
//!
//! [`EncMatrix`] is generic over the ciphertext type, so the same matrix code serves the real
//! backend and the simulator. Level and scale are read off the blocks.

use ndarray::Array2;
use num_complex::Complex64;

use crate::error::MlError;
use crate::ops::{Leveled, SlotClient};

/// The shape `(s0, s1)` of one block: `s0` rows of `s1` columns, `s0·s1` slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockShape {
    s0: usize,
    s1: usize,
}

impl BlockShape {
    /// A block of `s0` rows and `s1` columns.
    ///
    /// # Errors
    /// [`MlError::BadBlockShape`] unless both are powers of two.
    pub fn new(s0: usize, s1: usize) -> Result<Self, MlError> {
        if !s0.is_power_of_two() || !s1.is_power_of_two() {
            return Err(MlError::BadBlockShape {
                s0,
                s1,
                reason: "s0 and s1 must be powers of two".into(),
            });
        }
        if s0.checked_mul(s1).is_none() {
            return Err(MlError::BadBlockShape {
                s0,
                s1,
                reason: "s0·s1 overflows".into(),
            });
        }
        Ok(Self { s0, s1 })
    }

    /// The block of `s0` rows filling `slots` slots (`s1 = slots / s0`).
    ///
    /// # Errors
    /// [`MlError::BadBlockShape`] unless `slots` and `s0 ≤ slots` are powers of two.
    pub fn with_slots(s0: usize, slots: usize) -> Result<Self, MlError> {
        if !slots.is_power_of_two() || !s0.is_power_of_two() || s0 > slots {
            return Err(MlError::BadBlockShape {
                s0,
                s1: 0,
                reason: format!("s0 must be a power of two dividing the {slots} slots"),
            });
        }
        Self::new(s0, slots / s0)
    }

    /// Rows per block.
    pub fn s0(&self) -> usize {
        self.s0
    }

    /// Columns per block.
    pub fn s1(&self) -> usize {
        self.s1
    }

    /// Slots per block, `s0·s1`.
    pub fn slots(&self) -> usize {
        self.s0 * self.s1
    }

    /// `log2 s0`.
    pub fn log_s0(&self) -> u32 {
        self.s0.trailing_zeros()
    }

    /// `log2 s1`.
    pub fn log_s1(&self) -> u32 {
        self.s1.trailing_zeros()
    }

    /// Number of blocks needed to cover `rows × cols`: `(⌈rows/s0⌉, ⌈cols/s1⌉)`.
    pub fn grid(&self, rows: usize, cols: usize) -> (usize, usize) {
        (rows.div_ceil(self.s0), cols.div_ceil(self.s1))
    }
}

/// How a matrix is laid out over its blocks (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Plain blocks, zero-padded.
    Blocks,
    /// Rows repeated with `period` down one block row (`period` a power of two dividing `s0`,
    /// at least the number of rows).
    RowTiled {
        /// The period (HETAL's padded class count `c`).
        period: usize,
    },
    /// Columns repeated with `period` across one block column (`period` a power of two
    /// dividing `s1`, at least the number of columns).
    ColTiled {
        /// The period (HETAL's padded class count `c`).
        period: usize,
    },
}

impl Layout {
    /// Checks the layout against the matrix size and block shape; returns the block grid
    /// `(block rows, block columns)`.
    ///
    /// # Errors
    /// [`MlError::Empty`] for an empty matrix, [`MlError::BadPeriod`] for a period that is not
    /// a power of two, does not divide the block side, or is smaller than the tiled dimension.
    pub fn grid(
        &self,
        rows: usize,
        cols: usize,
        shape: BlockShape,
    ) -> Result<(usize, usize), MlError> {
        if rows == 0 || cols == 0 {
            return Err(MlError::Empty);
        }
        let bad = |period: usize, reason: String| MlError::BadPeriod {
            period,
            s0: shape.s0(),
            s1: shape.s1(),
            reason,
        };
        match *self {
            Layout::Blocks => Ok(shape.grid(rows, cols)),
            Layout::RowTiled { period } => {
                if !period.is_power_of_two() || period > shape.s0() {
                    return Err(bad(period, "must be a power of two ≤ s0".into()));
                }
                if rows > period {
                    return Err(bad(period, format!("smaller than the {rows} rows")));
                }
                Ok((1, shape.grid(rows, cols).1))
            }
            Layout::ColTiled { period } => {
                if !period.is_power_of_two() || period > shape.s1() {
                    return Err(bad(period, "must be a power of two ≤ s1".into()));
                }
                if cols > period {
                    return Err(bad(period, format!("smaller than the {cols} columns")));
                }
                Ok((shape.grid(rows, cols).0, 1))
            }
        }
    }

    /// The matrix entry `(row, col)` shown in slot `(i, k)` of block `(br, bc)`, if any.
    fn source(
        &self,
        shape: BlockShape,
        br: usize,
        bc: usize,
        i: usize,
        k: usize,
    ) -> (usize, usize) {
        match *self {
            Layout::Blocks => (br * shape.s0() + i, bc * shape.s1() + k),
            Layout::RowTiled { period } => (i % period, bc * shape.s1() + k),
            Layout::ColTiled { period } => (br * shape.s0() + i, k % period),
        }
    }
}

/// Packs `m` into one slot vector per block (row-major over the grid).
///
/// # Errors
/// As [`Layout::grid`].
pub fn pack(
    m: &Array2<f64>,
    shape: BlockShape,
    layout: Layout,
) -> Result<Vec<Vec<Complex64>>, MlError> {
    let (rows, cols) = m.dim();
    let (grid_rows, grid_cols) = layout.grid(rows, cols, shape)?;
    let mut blocks = Vec::with_capacity(grid_rows * grid_cols);
    for br in 0..grid_rows {
        for bc in 0..grid_cols {
            let mut v = Vec::with_capacity(shape.slots());
            for i in 0..shape.s0() {
                for k in 0..shape.s1() {
                    let x = m
                        .get(layout.source(shape, br, bc, i, k))
                        .copied()
                        .unwrap_or(0.0);
                    v.push(Complex64::new(x, 0.0));
                }
            }
            blocks.push(v);
        }
    }
    Ok(blocks)
}

/// Reads a `rows × cols` matrix back from its blocks' slot vectors (real parts; for tiled
/// layouts, from the first tile).
///
/// # Errors
/// As [`Layout::grid`]; [`MlError::BadBlocks`] for a wrong number or length of blocks.
pub fn unpack(
    blocks: &[Vec<Complex64>],
    rows: usize,
    cols: usize,
    shape: BlockShape,
    layout: Layout,
) -> Result<Array2<f64>, MlError> {
    let (grid_rows, grid_cols) = layout.grid(rows, cols, shape)?;
    if blocks.len() != grid_rows * grid_cols {
        return Err(MlError::BadBlocks {
            what: "blocks",
            expected: grid_rows * grid_cols,
            found: blocks.len(),
        });
    }
    if let Some(b) = blocks.iter().find(|b| b.len() != shape.slots()) {
        return Err(MlError::BadBlocks {
            what: "slots per block",
            expected: shape.slots(),
            found: b.len(),
        });
    }
    let mut out = Array2::zeros((rows, cols));
    for (idx, block) in blocks.iter().enumerate() {
        let (br, bc) = (idx / grid_cols, idx % grid_cols);
        for (slot, z) in block.iter().enumerate() {
            let (i, k) = (slot / shape.s1(), slot % shape.s1());
            let (r, c) = layout.source(shape, br, bc, i, k);
            let first_tile = match layout {
                Layout::Blocks => true,
                Layout::RowTiled { period } => i < period,
                Layout::ColTiled { period } => k < period,
            };
            if first_tile {
                if let Some(x) = out.get_mut((r, c)) {
                    *x = z.re;
                }
            }
        }
    }
    Ok(out)
}

/// An encrypted matrix: a `rows × cols` matrix in `(s0, s1)` blocks, one ciphertext per block
/// (see the module doc). `C` is the ciphertext type of a backend.
#[derive(Clone, Debug)]
pub struct EncMatrix<C> {
    rows: usize,
    cols: usize,
    shape: BlockShape,
    layout: Layout,
    grid: (usize, usize),
    blocks: Vec<C>,
}

impl<C: Leveled> EncMatrix<C> {
    /// Assembles a matrix from its blocks (row-major over the grid).
    ///
    /// # Errors
    /// As [`Layout::grid`]; [`MlError::BadBlocks`] for a wrong number of blocks or a block
    /// with another slot count than `s0·s1`.
    pub fn from_blocks(
        rows: usize,
        cols: usize,
        shape: BlockShape,
        layout: Layout,
        blocks: Vec<C>,
    ) -> Result<Self, MlError> {
        let grid = layout.grid(rows, cols, shape)?;
        if blocks.len() != grid.0 * grid.1 {
            return Err(MlError::BadBlocks {
                what: "blocks",
                expected: grid.0 * grid.1,
                found: blocks.len(),
            });
        }
        if let Some(b) = blocks.iter().find(|b| b.slots() != shape.slots()) {
            return Err(MlError::BadBlocks {
                what: "slots per block",
                expected: shape.slots(),
                found: b.slots(),
            });
        }
        Ok(Self {
            rows,
            cols,
            shape,
            layout,
            grid,
            blocks,
        })
    }

    /// Encrypts `m` block by block at `level`.
    ///
    /// # Errors
    /// As [`pack`]; encryption errors.
    pub fn encrypt<K: SlotClient<Ct = C>>(
        client: &mut K,
        m: &Array2<f64>,
        shape: BlockShape,
        layout: Layout,
        level: usize,
    ) -> Result<Self, MlError> {
        let scale = client.default_scale();
        Self::encrypt_scaled(client, m, shape, layout, level, scale)
    }

    /// [`EncMatrix::encrypt`] at `scale` instead of the default scale.
    ///
    /// # Errors
    /// As [`EncMatrix::encrypt`].
    pub fn encrypt_scaled<K: SlotClient<Ct = C>>(
        client: &mut K,
        m: &Array2<f64>,
        shape: BlockShape,
        layout: Layout,
        level: usize,
        scale: f64,
    ) -> Result<Self, MlError> {
        let blocks = pack(m, shape, layout)?
            .iter()
            .map(|v| client.encrypt_scaled(v, level, scale))
            .collect::<Result<Vec<_>, _>>()?;
        let (rows, cols) = m.dim();
        Self::from_blocks(rows, cols, shape, layout, blocks)
    }

    /// Decrypts every block to its slot values (row-major over the grid).
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt_slots<K: SlotClient<Ct = C>>(
        &self,
        client: &K,
    ) -> Result<Vec<Vec<Complex64>>, MlError> {
        Ok(self
            .blocks
            .iter()
            .map(|b| client.decrypt(b))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Decrypts to the `rows × cols` matrix (real parts).
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt<K: SlotClient<Ct = C>>(&self, client: &K) -> Result<Array2<f64>, MlError> {
        unpack(
            &self.decrypt_slots(client)?,
            self.rows,
            self.cols,
            self.shape,
            self.layout,
        )
    }

    /// The lowest level of the blocks.
    pub fn level(&self) -> usize {
        self.blocks.iter().map(Leveled::level).min().unwrap_or(0)
    }

    /// The scale of the first block (all blocks share it when built by this crate).
    pub fn scale(&self) -> f64 {
        self.blocks.first().map(Leveled::scale).unwrap_or(0.0)
    }
}

impl<C> EncMatrix<C> {
    /// Number of rows of the matrix (not padded).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns of the matrix (not padded).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The block shape.
    pub fn shape(&self) -> BlockShape {
        self.shape
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The block grid `(block rows, block columns)`.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// The blocks, row-major over the grid.
    pub fn blocks(&self) -> &[C] {
        &self.blocks
    }

    /// Block `(r, t)` of the grid.
    pub fn block(&self, r: usize, t: usize) -> Option<&C> {
        if r >= self.grid.0 || t >= self.grid.1 {
            return None;
        }
        self.blocks.get(r * self.grid.1 + t)
    }

    /// The blocks, row-major over the grid.
    pub fn into_blocks(self) -> Vec<C> {
        self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rows: usize, cols: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |(i, j)| (i * 100 + j) as f64 + 1.0)
    }

    #[test]
    fn blocks_are_row_major_and_zero_padded() {
        let shape = BlockShape::new(2, 4).unwrap();
        let m = sample(3, 5);
        let blocks = pack(&m, shape, Layout::Blocks).unwrap();
        assert_eq!(blocks.len(), 4);
        // Block (0, 1): columns 4..8 of rows 0..2.
        let re: Vec<f64> = blocks[1].iter().map(|z| z.re).collect();
        assert_eq!(re, [5.0, 0.0, 0.0, 0.0, 105.0, 0.0, 0.0, 0.0]);
        // Block (1, 0): row 2, then a zero row.
        let re: Vec<f64> = blocks[2].iter().map(|z| z.re).collect();
        assert_eq!(re, [201.0, 202.0, 203.0, 204.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(unpack(&blocks, 3, 5, shape, Layout::Blocks).unwrap(), m);
    }

    #[test]
    fn tiled_layouts_repeat_with_the_period() {
        let shape = BlockShape::new(4, 4).unwrap();
        let w = sample(2, 6);
        let rows = Layout::RowTiled { period: 2 };
        let blocks = pack(&w, shape, rows).unwrap();
        assert_eq!(blocks.len(), 2);
        let re: Vec<f64> = blocks[0].iter().map(|z| z.re).collect();
        assert_eq!(&re[..4], &re[8..12]);
        assert_eq!(&re[4..8], &[101.0, 102.0, 103.0, 104.0]);
        assert_eq!(unpack(&blocks, 2, 6, shape, rows).unwrap(), w);

        let a = sample(5, 3);
        let cols = Layout::ColTiled { period: 4 };
        let blocks = pack(&a, shape, cols).unwrap();
        assert_eq!(blocks.len(), 2);
        let re: Vec<f64> = blocks[0].iter().map(|z| z.re).collect();
        assert_eq!(&re[..4], &[1.0, 2.0, 3.0, 0.0]);
        assert_eq!(unpack(&blocks, 5, 3, shape, cols).unwrap(), a);

        assert!(matches!(
            Layout::RowTiled { period: 3 }.grid(2, 6, shape),
            Err(MlError::BadPeriod { .. })
        ));
        assert!(matches!(
            Layout::ColTiled { period: 2 }.grid(5, 3, shape),
            Err(MlError::BadPeriod { .. })
        ));
    }
}
