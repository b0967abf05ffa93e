//! The packed layout of a `c' × b` matrix (the weights, the gradient) and its conversions.
//!
//! With `c` the padded class count, `s1`-wide block columns `t < nb` and a period `L`
//! (`c ≤ L ≤ s0`, powers of two), block column `t` goes to ciphertext `t / (L/c)` at block
//! slot `u = t mod (L/c)`: entry `(k, t·s1 + m)` sits in column `m` of every row `x` with
//! `x mod L = u·c + k`. So each ciphertext repeats `L` rows `s0/L` times, and the matrix takes
//! `⌈nb / (L/c)⌉` ciphertexts; with `L ≥ nb·c` it takes one. With `L = c` a ciphertext holds a
//! single block column, repeated with period `c`: exactly HETAL's `RowTiled` block.

use hetal_ckks::CkksError;
use ndarray::Array2;
use num_complex::Complex64;

use super::{accumulate, ladder, ladder_amounts, log2, rotations, select, Cost, CostModel};
use crate::error::MlError;
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::{CkksOps, Leveled, SlotClient};

/// The shape of a packed matrix (see the module doc): sizes, block shape, padded class count
/// `c` and period `L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackedLayout {
    rows: usize,
    cols: usize,
    shape: BlockShape,
    classes: usize,
    period: usize,
}

impl PackedLayout {
    /// A `rows × cols` matrix, `rows ≤ classes`, packed with period `period`.
    ///
    /// # Errors
    /// [`MlError::Empty`] for an empty matrix; [`MlError::BadPeriod`] unless `classes` and
    /// `period` are powers of two with `rows ≤ classes ≤ period ≤ s0`.
    pub fn new(
        rows: usize,
        cols: usize,
        shape: BlockShape,
        classes: usize,
        period: usize,
    ) -> Result<Self, MlError> {
        if rows == 0 || cols == 0 {
            return Err(MlError::Empty);
        }
        let ok = classes.is_power_of_two()
            && period.is_power_of_two()
            && rows <= classes
            && classes <= period
            && period <= shape.s0();
        if !ok {
            return Err(MlError::BadPeriod {
                period: classes,
                s0: shape.s0(),
                s1: shape.s1(),
                reason: format!(
                    "packing {rows} rows needs powers of two rows ≤ c ≤ L ≤ s0 (L = {period})"
                ),
            });
        }
        Ok(Self {
            rows,
            cols,
            shape,
            classes,
            period,
        })
    }

    /// The compact layout: the smallest period that puts every block column in one ciphertext
    /// (`L ≥ nb·c`), or `s0` when they do not fit in one.
    ///
    /// # Errors
    /// As [`PackedLayout::new`].
    pub fn compact(
        rows: usize,
        cols: usize,
        shape: BlockShape,
        classes: usize,
    ) -> Result<Self, MlError> {
        let nb = cols.div_ceil(shape.s1());
        let period = nb
            .saturating_mul(classes)
            .next_power_of_two()
            .clamp(classes, shape.s0().max(classes));
        Self::new(rows, cols, shape, classes, period)
    }

    /// Rows of the matrix (the logical class count `c'`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The block shape.
    pub fn shape(&self) -> BlockShape {
        self.shape
    }

    /// The padded class count `c`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The period `L`.
    pub fn period(&self) -> usize {
        self.period
    }

    /// Block columns `nb = ⌈cols / s1⌉`.
    pub fn block_columns(&self) -> usize {
        self.cols.div_ceil(self.shape.s1())
    }

    /// Block columns per ciphertext, `L/c`.
    pub fn blocks_per_ct(&self) -> usize {
        self.period / self.classes
    }

    /// Ciphertexts, `⌈nb / (L/c)⌉`.
    pub fn cts(&self) -> usize {
        self.block_columns().div_ceil(self.blocks_per_ct())
    }

    /// Block columns held by ciphertext `q`.
    fn blocks_in(&self, q: usize) -> usize {
        let g = self.blocks_per_ct();
        self.block_columns().saturating_sub(q * g).min(g)
    }

    /// The matrix entry `(row, column)` shown in slot `(x, m)` of ciphertext `q`, if any.
    fn source(&self, q: usize, x: usize, m: usize) -> Option<(usize, usize)> {
        let rho = x % self.period;
        let (u, k) = (rho / self.classes, rho % self.classes);
        let t = q * self.blocks_per_ct() + u;
        let col = t * self.shape.s1() + m;
        (k < self.rows && t < self.block_columns() && col < self.cols).then_some((k, col))
    }

    /// Packs `m` (`rows × cols`) into one slot vector per ciphertext.
    ///
    /// # Errors
    /// [`MlError::DimensionMismatch`] if `m` is not `rows × cols`.
    pub fn pack(&self, m: &Array2<f64>) -> Result<Vec<Vec<Complex64>>, MlError> {
        if m.dim() != (self.rows, self.cols) {
            return Err(MlError::DimensionMismatch {
                what: "packed matrix rows·cols",
                lhs: self.rows * self.cols,
                rhs: m.len(),
            });
        }
        Ok((0..self.cts())
            .map(|q| {
                (0..self.shape.slots())
                    .map(|s| {
                        let x = self
                            .source(q, s / self.shape.s1(), s % self.shape.s1())
                            .and_then(|idx| m.get(idx).copied())
                            .unwrap_or(0.0);
                        Complex64::new(x, 0.0)
                    })
                    .collect()
            })
            .collect())
    }

    /// Reads the matrix back from the ciphertexts' slot vectors (real parts, first period).
    ///
    /// # Errors
    /// [`MlError::BadBlocks`] for a wrong number or length of slot vectors.
    pub fn unpack(&self, blocks: &[Vec<Complex64>]) -> Result<Array2<f64>, MlError> {
        if blocks.len() != self.cts() {
            return Err(MlError::BadBlocks {
                what: "packed ciphertexts",
                expected: self.cts(),
                found: blocks.len(),
            });
        }
        let mut out = Array2::zeros((self.rows, self.cols));
        for (q, block) in blocks.iter().enumerate() {
            if block.len() != self.shape.slots() {
                return Err(MlError::BadBlocks {
                    what: "slots per ciphertext",
                    expected: self.shape.slots(),
                    found: block.len(),
                });
            }
            for (s, z) in block.iter().enumerate().take(self.period * self.shape.s1()) {
                if let Some(idx) = self.source(q, s / self.shape.s1(), s % self.shape.s1()) {
                    if let Some(v) = out.get_mut(idx) {
                        *v = z.re;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A packed encrypted matrix: a [`PackedLayout`] and its ciphertexts.
#[derive(Clone, Debug)]
pub struct PackedMatrix<C> {
    layout: PackedLayout,
    blocks: Vec<C>,
}

impl<C: Leveled> PackedMatrix<C> {
    /// Assembles a packed matrix.
    ///
    /// # Errors
    /// [`MlError::BadBlocks`] for a wrong number of ciphertexts or slot count.
    pub fn from_blocks(layout: PackedLayout, blocks: Vec<C>) -> Result<Self, MlError> {
        if blocks.len() != layout.cts() {
            return Err(MlError::BadBlocks {
                what: "packed ciphertexts",
                expected: layout.cts(),
                found: blocks.len(),
            });
        }
        if let Some(b) = blocks.iter().find(|b| b.slots() != layout.shape.slots()) {
            return Err(MlError::BadBlocks {
                what: "slots per ciphertext",
                expected: layout.shape.slots(),
                found: b.slots(),
            });
        }
        Ok(Self { layout, blocks })
    }

    /// Encrypts `m` in `layout` at `level`.
    ///
    /// # Errors
    /// As [`PackedLayout::pack`]; encryption errors.
    pub fn encrypt<K: SlotClient<Ct = C>>(
        client: &mut K,
        m: &Array2<f64>,
        layout: PackedLayout,
        level: usize,
    ) -> Result<Self, MlError> {
        let scale = client.default_scale();
        Self::encrypt_scaled(client, m, layout, level, scale)
    }

    /// [`PackedMatrix::encrypt`] at `scale` instead of the default scale.
    ///
    /// # Errors
    /// As [`PackedMatrix::encrypt`].
    pub fn encrypt_scaled<K: SlotClient<Ct = C>>(
        client: &mut K,
        m: &Array2<f64>,
        layout: PackedLayout,
        level: usize,
        scale: f64,
    ) -> Result<Self, MlError> {
        let blocks = layout
            .pack(m)?
            .iter()
            .map(|v| client.encrypt_scaled(v, level, scale))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_blocks(layout, blocks)
    }

    /// Decrypts every ciphertext to its slot values.
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

    /// Decrypts to the `rows × cols` matrix.
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt<K: SlotClient<Ct = C>>(&self, client: &K) -> Result<Array2<f64>, MlError> {
        self.layout.unpack(&self.decrypt_slots(client)?)
    }

    /// The lowest level of the ciphertexts.
    pub fn level(&self) -> usize {
        self.blocks.iter().map(Leveled::level).min().unwrap_or(0)
    }
}

impl<C> PackedMatrix<C> {
    /// The layout.
    pub fn layout(&self) -> PackedLayout {
        self.layout
    }

    /// The ciphertexts.
    pub fn blocks(&self) -> &[C] {
        &self.blocks
    }

    /// The ciphertexts, by value.
    pub fn into_blocks(self) -> Vec<C> {
        self.blocks
    }
}

/// `m` in the larger period `period` (a multiple of `m`'s), every entry times `factor`: target
/// ciphertext `Q` is `Σ_v mask_v ⊙ src[Q·k + v]` (`k` = the ratio of the periods), `mask_v`
/// being `factor` on the rows `x` with `⌊(x mod period) / L⌋ = v`; each source already repeats
/// its `L` rows, so no rotation is needed. One level; [`repack_cost`]. With `period = L` it is
/// a constant multiplication by `factor`.
///
/// # Errors
/// [`MlError::BadPeriod`] for a period that is not a multiple of `m`'s or exceeds `s0`;
/// CKKS errors.
pub fn repack<O: CkksOps>(
    ops: &O,
    m: &PackedMatrix<O::Ct>,
    period: usize,
    factor: f64,
) -> Result<PackedMatrix<O::Ct>, MlError> {
    if period != m.layout.period {
        return repack_with(ops, m, period, factor, |v, level| {
            ops.encode_plain(v, level)
        });
    }
    let level = m.level();
    let blocks = m
        .blocks
        .iter()
        .map(|x| {
            let y = ops.mul_const(&ops.drop_to_level(x, level)?, Complex64::new(factor, 0.0))?;
            ops.rescale(&y)
        })
        .collect::<Result<Vec<_>, _>>()?;
    PackedMatrix::from_blocks(m.layout, blocks)
}

/// [`repack`] by masks in every case (one mask when the periods agree), each encoded by
/// `encode(values, level)`: a caller that encodes them at a chosen scale lands the result
/// on any scale it needs, in the same level. Counts as [`repack_cost`] to a larger period.
///
/// # Errors
/// As [`repack`].
pub fn repack_with<O: CkksOps>(
    ops: &O,
    m: &PackedMatrix<O::Ct>,
    period: usize,
    factor: f64,
    encode: impl Fn(&[Complex64], usize) -> Result<O::Pt, CkksError>,
) -> Result<PackedMatrix<O::Ct>, MlError> {
    let src = m.layout;
    let dst = PackedLayout::new(src.rows, src.cols, src.shape, src.classes, period)?;
    if period < src.period {
        return Err(MlError::BadPeriod {
            period,
            s0: src.shape.s0(),
            s1: src.shape.s1(),
            reason: format!("repacking needs a multiple of the period {}", src.period),
        });
    }
    let k = period / src.period;
    let level = m.level();
    let masks = (0..k)
        .map(|v| {
            encode(
                &select(src.shape, Complex64::new(factor, 0.0), |x, _| {
                    (x % period) / src.period == v
                }),
                level,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(dst.cts());
    for chunk in m.blocks.chunks(k) {
        let mut acc: Option<O::Ct> = None;
        for (x, mv) in chunk.iter().zip(&masks) {
            let term = ops.mul_plain(&ops.drop_to_level(x, level)?, mv)?;
            accumulate(ops, &mut acc, term)?;
        }
        let mut y = acc.ok_or(MlError::Empty)?;
        ops.rescale_assign(&mut y)?;
        out.push(y);
    }
    PackedMatrix::from_blocks(dst, out)
}

/// The exact counters of [`repack`] from `layout` to `period` (of [`repack_with`] too, for a
/// larger period).
pub fn repack_cost(layout: &PackedLayout, period: usize) -> Cost {
    let n = layout.cts() as u64;
    if period <= layout.period {
        Cost::light(0, n, n)
    } else {
        let k = (period / layout.period).max(1);
        Cost::sum(&[
            Cost::light(n, 0, layout.cts().div_ceil(k) as u64),
            Cost::encoded(k as u64),
        ])
    }
}

/// Baby steps of [`expand`]: the first `G1` block slots come from a hoisted batch on each
/// source, the remaining `log2(L/(c·G1))` by a ladder; `G1` minimizes [`CostModel::default`].
fn expand_babies(layout: &PackedLayout) -> usize {
    let model = CostModel::default();
    let mut best = (f64::INFINITY, 1);
    let mut g1 = 1;
    while g1 <= layout.blocks_per_ct() {
        let w = model.cost(&expand_cost_with(layout, g1));
        if w < best.0 - 1e-9 {
            best = (w, g1);
        }
        g1 *= 2;
    }
    best.1
}

fn expand_cost_with(layout: &PackedLayout, g1: usize) -> Cost {
    let g = layout.blocks_per_ct();
    if g == 1 {
        return Cost::default();
    }
    let nb = layout.block_columns() as u64;
    let per_block = Cost::sum(&[Cost::full(log2(g / g1)), Cost::light(g1 as u64, 0, 1)]);
    Cost::sum(&[
        Cost::batch(g1 as u64 - 1).times(layout.cts() as u64),
        per_block.times(nb),
        Cost::encoded(g as u64),
    ])
}

/// Packed weights to HETAL's tiled weights (`RowTiled { period: c }`, one ciphertext per block
/// column), the input of [`abt`](super::abt): block column `t` (slot `u` of source `q`) is
/// `Fill(mask_u ⊙ src[q])`, `mask_u` keeping the rows `x` with `x mod L ∈ [u·c, u·c + c)` and
/// `Fill` summing the `L/c` block slots. The first `G1` slots come from masks applied to a
/// shared hoisted batch `Rot(src[q], g·c·s1)`, `g < G1` (since
/// `Rot(mask_u ⊙ s, g·c·s1) = mask_{u−g} ⊙ Rot(s, g·c·s1)`), the rest by a ladder of
/// `log2(L/(c·G1))` rotations. One level, none when `L = c` (the blocks are already tiled);
/// [`expand_cost`].
///
/// # Errors
/// CKKS errors (missing keys: [`expand_rotations`]).
pub fn expand<O: CkksOps>(ops: &O, w: &PackedMatrix<O::Ct>) -> Result<EncMatrix<O::Ct>, MlError> {
    let layout = w.layout;
    let (shape, c, g) = (layout.shape, layout.classes, layout.blocks_per_ct());
    let tiled = Layout::RowTiled { period: c };
    if g == 1 {
        return EncMatrix::from_blocks(layout.rows, layout.cols, shape, tiled, w.blocks.clone());
    }
    let g1 = expand_babies(&layout);
    let level = w.level();
    let slot = |v: usize| {
        ops.encode_plain(
            &select(shape, Complex64::new(1.0, 0.0), |x, _| {
                (x % layout.period) / c == v
            }),
            level,
        )
    };
    let masks = (0..g).map(slot).collect::<Result<Vec<_>, _>>()?;
    let stride = (c * shape.s1()) as i64;
    let mut out = Vec::with_capacity(layout.block_columns());
    for (q, src) in w.blocks.iter().enumerate() {
        let src = ops.drop_to_level(src, level)?;
        let ks: Vec<i64> = (1..g1).map(|v| v as i64 * stride).collect();
        let rots: Vec<O::Ct> = std::iter::once(src.clone())
            .chain(rotations(ops, &src, &ks)?)
            .collect();
        for u in 0..layout.blocks_in(q) {
            let mut acc: Option<O::Ct> = None;
            for (v, r) in rots.iter().enumerate() {
                let m = masks.get((u + g - v) % g).ok_or(MlError::Empty)?;
                accumulate(ops, &mut acc, ops.mul_plain(r, m)?)?;
            }
            let mut y = acc.ok_or(MlError::Empty)?;
            ops.rescale_assign(&mut y)?;
            ladder(ops, &mut y, stride * g1 as i64, (g / g1).trailing_zeros())?;
            out.push(y);
        }
    }
    EncMatrix::from_blocks(layout.rows, layout.cols, shape, tiled, out)
}

/// The exact counters of [`expand`].
pub fn expand_cost(layout: &PackedLayout) -> Cost {
    expand_cost_with(layout, expand_babies(layout))
}

/// The rotations [`expand`] uses (sorted).
pub fn expand_rotations(layout: &PackedLayout) -> Vec<i64> {
    let g = layout.blocks_per_ct();
    if g == 1 {
        return Vec::new();
    }
    let g1 = expand_babies(layout);
    let stride = (layout.classes * layout.shape.s1()) as i64;
    let mut ks: Vec<i64> = (1..g1).map(|v| v as i64 * stride).collect();
    ks.extend(ladder_amounts(
        stride * g1 as i64,
        (g / g1).trailing_zeros(),
    ));
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// Packed matrix to HETAL's DiagATB output layout (`Blocks`, rows `0 .. c'` of each block
/// column, zeros below): block column `t` (slot `u` of source `q`) is
/// `Rot(src[q], u·c·s1) ⊙ [rows < c]`, the rotations of one source forming one hoisted
/// batch. One level; [`to_blocks_cost`].
///
/// # Errors
/// CKKS errors (missing keys: [`to_blocks_rotations`]).
pub fn to_blocks<O: CkksOps>(
    ops: &O,
    m: &PackedMatrix<O::Ct>,
) -> Result<EncMatrix<O::Ct>, MlError> {
    let layout = m.layout;
    let (shape, c) = (layout.shape, layout.classes);
    let level = m.level();
    let top = ops.encode_plain(
        &select(shape, Complex64::new(1.0, 0.0), |x, _| x < c),
        level,
    )?;
    let stride = (c * shape.s1()) as i64;
    let mut out = Vec::with_capacity(layout.block_columns());
    for (q, src) in m.blocks.iter().enumerate() {
        let src = ops.drop_to_level(src, level)?;
        let ks: Vec<i64> = (1..layout.blocks_in(q))
            .map(|u| u as i64 * stride)
            .collect();
        let rots = rotations(ops, &src, &ks)?;
        for r in std::iter::once(&src).chain(rots.iter()) {
            out.push(ops.rescale(&ops.mul_plain(r, &top)?)?);
        }
    }
    EncMatrix::from_blocks(layout.rows, layout.cols, shape, Layout::Blocks, out)
}

/// The exact counters of [`to_blocks`].
pub fn to_blocks_cost(layout: &PackedLayout) -> Cost {
    let nb = layout.block_columns() as u64;
    let batches: Vec<Cost> = (0..layout.cts())
        .map(|q| Cost::batch(layout.blocks_in(q).saturating_sub(1) as u64))
        .collect();
    let masks = Cost::sum(&[Cost::light(nb, 0, nb), Cost::encoded(1)]);
    Cost::sum(batches.iter().chain(std::iter::once(&masks)))
}

/// The rotations [`to_blocks`] uses (sorted).
pub fn to_blocks_rotations(layout: &PackedLayout) -> Vec<i64> {
    let stride = (layout.classes * layout.shape.s1()) as i64;
    let most = (0..layout.cts())
        .map(|q| layout.blocks_in(q))
        .max()
        .unwrap_or(0);
    (1..most).map(|u| u as i64 * stride).collect()
}
