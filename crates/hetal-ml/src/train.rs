//! Encrypted training of the softmax head: one Nesterov step on ciphertexts, written once over
//! [`CkksOps`](crate::CkksOps) + [`SoftmaxOps`] + [`Bootstrap`], so that the very same code trains encrypted
//! ([`CkksBackend`](crate::CkksBackend)) and on the slot simulator (the plaintext twin of every
//! approximation, which also checks every bootstrapped value against the circuit's bound).
//!
//! # Model and layout
//!
//! Softmax regression with a bias, `W: c' × (d + 1)` (`c'` classes, padded to `c`, a power of
//! two), as in [`plain`](crate::plain), which is the reference. A mini-batch of `a ≤ s0` rows is
//! one block row of `(s0, s1)` blocks (`s0` the batch size, `s0·s1` the slots): the features
//! with their bias column in [`Layout::Blocks`], the one-hot labels in
//! [`Layout::ColTiled`] (DiagATB's operand). The weights and the momentum are
//! [`PackedMatrix`]es in the compact layout ([`Geometry::weights_layout`]): for
//! `d + 1 ≤ s1·s0/c` they take one ciphertext each, so that their refresh is one paired
//! bootstrap. Our DiagATB writes the gradient in the period it does cheapest (often far below
//! the compact one: at (1024, 769, 16) period 16 in 25 ciphertexts, 1068 key-switch
//! equivalents by the cost model against 1943 for writing the compact period directly), and
//! [`repack_with`](crate::ours::repack_with) merges it into the compact layout with one
//! plaintext mask per source, the masks carrying the learning rate and the landing on `V`'s
//! scale (the level the update's scaling takes anyway). [`expand`](crate::ours::expand)
//! turns the look-ahead into DiagABT's tiled operand (one level).
//!
//! # Scales
//!
//! The weights live at scale `Δ/WEIGHT_UNIT` and the features at `Δ·WEIGHT_UNIT`, so that the
//! logits come out at `Δ·(Δ/q) ≈ Δ`, the scale the softmax's exact-scale bookkeeping needs,
//! while weights up to `WEIGHT_UNIT·bound` in magnitude stay bootstrappable (`bound` the
//! circuit's message bound: see [`Bootstrap`]). Every update lands exactly on the weights'
//! scale (a constant encoded at the scale that makes the rescale land there), so the weights'
//! scale never drifts over thousands of steps.
//!
//! # One step (Nesterov, as [`plain::train`](crate::plain::train))
//!
//! ```text
//! look = W + μ·V                                   1 level
//! Z    = X·lookᵀ          (our DiagABT)            3 levels (+1 when the weights expand)
//! P    = softmax(Z)       (ours, landed on V's scale) bootstraps inside as needed
//! E    = tile(P) − Y      (Y landed on P's scale)  0 levels on P
//! G    = (η/a)·Eᵀ·X       (our DiagATB, repacked)  4 levels on E
//! V'   = μ·V − G;  W' = W + V'                     1 level on V
//! ```
//!
//! The level planner ([`ensure_levels`], [`ensure_each`]) bootstraps only where a stage would
//! not fit: the softmax's stages, and `E` (bounded by 1 in magnitude, so the circuit's bound
//! must be at least 1 + the softmax's error: use a bound of 2) together with `μ·V` when that
//! is short of the levels the next step needs. `E` and `μ·V` share the weights' scale (the
//! softmax lands `P` there for free), so they share one paired bootstrap; `V'` and `W'`
//! inherit those levels, and the weights never need a refresh of their own in the steady
//! state (one bootstrap per step fewer every other step than refreshing `(W, V)`).
//! [`Trainer::refresh`] still refreshes `(W, V)` when they arrive short (a state encrypted
//! at a low level).
//!
//! # HETAL's pipeline ([`TrainAlgo::Hetal`], for comparisons)
//!
//! The same step with HETAL's algorithms, faithfully: the weights and the momentum in the
//! packed layout of period `c`, which is HETAL's tiled `B~` (`s0/c` copies of each block
//! column, one ciphertext per block column: 25 each at 769 features and `s1 = 32`), so that
//! DiagABT reads them as they are; [`diag_abt`] (3 levels); HETAL's softmax; [`diag_atb`]
//! ([`AtbVariant::for_levels`]: 3 or 4 levels on `E`), whose gradient holds rows `0 .. c` of
//! each block column and zeros below, tiled to the `s0/c` copies by `log2(s0/c)` rotations
//! `G += Rot(G, −c·s1·2^l)` (no level); the update as ours. A refresh bootstraps every block
//! column of `W` and `V`, two at a time.

use std::time::Instant;

use ndarray::Array2;
use num_complex::Complex64;

use crate::error::MlError;
use crate::matmul::{atb_rotations, diag_abt, diag_atb, rotate_sum, AtbVariant, ABT_DEPTH};
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::{ensure_each, ensure_levels, Bootstrap, Leveled, SlotClient};
use crate::ours::{
    self, AtbPlan, CostModel, PackedLayout, PackedMatrix, OURS_ABT_DEPTH, OURS_ATB_DEPTHS,
};
use crate::plain::with_bias;
use crate::softmax::{land, softmax_to_scale, SoftmaxAlgo, SoftmaxOps};
use crate::SlotSim;

/// The weights' unit: weights at scale `Δ/WEIGHT_UNIT`, features at `Δ·WEIGHT_UNIT`.
pub const WEIGHT_UNIT: f64 = 8.0;

/// The message bound of the bootstrapping circuit training uses (see [`Bootstrap`]): the
/// errors `P − Y` reach `1 +` the softmax's error, the weights `WEIGHT_UNIT·BOOT_BOUND`.
pub const BOOT_BOUND: f64 = 2.0;

/// The bootstrapping circuit for training: full slots, the default circuit with
/// [`BOOT_BOUND`].
pub fn boot_params() -> hetal_ckks::BootParams {
    hetal_ckks::BootParams {
        message_bound: BOOT_BOUND,
        ..hetal_ckks::BootParams::default()
    }
}

/// Which algorithms a training step uses (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrainAlgo {
    /// Ours: compact weights, our DiagABT, softmax and DiagATB.
    #[default]
    Ours,
    /// HETAL's, faithfully: tiled weights, DiagABT, HETAL's softmax, DiagATB.
    Hetal,
}

impl TrainAlgo {
    /// The softmax of the pipeline.
    pub fn softmax(self) -> SoftmaxAlgo {
        match self {
            Self::Ours => SoftmaxAlgo::Ours,
            Self::Hetal => SoftmaxAlgo::Hetal,
        }
    }
}

impl std::fmt::Display for TrainAlgo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.softmax().fmt(f)
    }
}

/// What a step runs after the softmax.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pipeline {
    /// Our DiagATB with this plan, straight into the weights' compact layout.
    Ours(AtbPlan),
    /// HETAL's DiagATB, its gradient tiled.
    Hetal,
}

/// The block geometry of one training run: everything both sides derive from the sizes and
/// the algorithms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    shape: BlockShape,
    features: usize,
    classes: usize,
    padded: usize,
    weights: PackedLayout,
    pipeline: Pipeline,
}

impl Geometry {
    /// The geometry for `features` input features (without the bias), `classes` classes and
    /// mini-batches of `batch` rows, in ciphertexts of `slots` slots, for our algorithms.
    ///
    /// # Errors
    /// As [`Geometry::with_algo`].
    pub fn new(
        slots: usize,
        features: usize,
        classes: usize,
        batch: usize,
    ) -> Result<Self, MlError> {
        Self::with_algo(slots, features, classes, batch, TrainAlgo::Ours)
    }

    /// [`Geometry::new`] for the algorithms `algo`.
    ///
    /// # Errors
    /// [`MlError::BadBlockShape`] unless `batch` is a power of two below `slots`;
    /// [`MlError::DimensionMismatch`] for fewer than 2 or more than 16 classes, or more padded
    /// classes than a block row holds; [`MlError::BadPeriod`] (HETAL) for more padded classes
    /// than the batch.
    pub fn with_algo(
        slots: usize,
        features: usize,
        classes: usize,
        batch: usize,
        algo: TrainAlgo,
    ) -> Result<Self, MlError> {
        let shape = BlockShape::with_slots(batch, slots)?;
        if !(2..=ours_max_classes()).contains(&classes) {
            return Err(MlError::DimensionMismatch {
                what: "classes (2 ≤ c ≤ 16)",
                lhs: classes,
                rhs: ours_max_classes(),
            });
        }
        let padded = classes.next_power_of_two();
        if padded > shape.s1() || features == 0 {
            return Err(MlError::DimensionMismatch {
                what: "padded classes against the block width s1 = slots / batch",
                lhs: padded,
                rhs: shape.s1(),
            });
        }
        let cols = features + 1;
        let (weights, pipeline) = match algo {
            TrainAlgo::Ours => {
                let weights = PackedLayout::compact(classes, cols, shape, padded)?;
                let atb = gradient_atb_plan(batch, cols, shape, weights)?;
                (weights, Pipeline::Ours(atb))
            }
            TrainAlgo::Hetal => (
                PackedLayout::new(classes, cols, shape, padded, padded)?,
                Pipeline::Hetal,
            ),
        };
        Ok(Self {
            shape,
            features,
            classes,
            padded,
            weights,
            pipeline,
        })
    }

    /// The algorithms.
    pub fn algo(&self) -> TrainAlgo {
        match self.pipeline {
            Pipeline::Ours(_) => TrainAlgo::Ours,
            Pipeline::Hetal => TrainAlgo::Hetal,
        }
    }

    /// The block shape `(batch, slots/batch)`.
    pub fn shape(&self) -> BlockShape {
        self.shape
    }

    /// Input features, without the bias.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The layout of the weights, the momentum and the gradient.
    pub fn weights_layout(&self) -> PackedLayout {
        self.weights
    }

    fn check_rows(&self, x: &Array2<f64>, what: &'static str) -> Result<(), MlError> {
        if x.nrows() == 0 || x.nrows() > self.shape.s0() {
            return Err(MlError::DimensionMismatch {
                what,
                lhs: x.nrows(),
                rhs: self.shape.s0(),
            });
        }
        if x.ncols() != self.features {
            return Err(MlError::DimensionMismatch {
                what: "feature columns",
                lhs: x.ncols(),
                rhs: self.features,
            });
        }
        Ok(())
    }

    /// Client: encrypts up to `batch` rows of features (`a × d`, without the bias column) at
    /// `level`, for [`Trainer::step`] and [`Trainer::logits`].
    ///
    /// # Errors
    /// Too many rows or the wrong width; encryption errors.
    pub fn encrypt_features<K: SlotClient<Ct: Leveled>>(
        &self,
        client: &mut K,
        x: &Array2<f64>,
        level: usize,
    ) -> Result<EncMatrix<K::Ct>, MlError> {
        self.check_rows(x, "rows of a batch")?;
        let scale = client.default_scale() * WEIGHT_UNIT;
        EncMatrix::encrypt_scaled(
            client,
            &with_bias(x),
            self.shape,
            Layout::Blocks,
            level,
            scale,
        )
    }

    /// Client: encrypts one mini-batch, features and one-hot labels, at `level`.
    ///
    /// # Errors
    /// As [`Geometry::encrypt_features`]; a label count that differs from the rows, or a label
    /// out of range.
    pub fn encrypt_batch<K: SlotClient<Ct: Leveled>>(
        &self,
        client: &mut K,
        x: &Array2<f64>,
        labels: &[usize],
        level: usize,
    ) -> Result<EncBatch<K::Ct>, MlError> {
        if labels.len() != x.nrows() {
            return Err(MlError::DimensionMismatch {
                what: "labels against feature rows",
                lhs: labels.len(),
                rhs: x.nrows(),
            });
        }
        let mut y = Array2::zeros((labels.len(), self.classes));
        for (i, &l) in labels.iter().enumerate() {
            *y.get_mut((i, l)).ok_or(MlError::DimensionMismatch {
                what: "label against the class count",
                lhs: l,
                rhs: self.classes,
            })? = 1.0;
        }
        let features = self.encrypt_features(client, x, level)?;
        let labels = EncMatrix::encrypt(
            client,
            &y,
            self.shape,
            Layout::ColTiled {
                period: self.padded,
            },
            level,
        )?;
        Ok(EncBatch { features, labels })
    }

    /// Client: the initial state, zero weights and momentum (as [`plain::train`]), at `level`.
    ///
    /// # Errors
    /// Encryption errors.
    ///
    /// [`plain::train`]: crate::plain::train
    pub fn encrypt_initial<K: SlotClient<Ct: Leveled>>(
        &self,
        client: &mut K,
        level: usize,
    ) -> Result<Weights<K::Ct>, MlError> {
        let zero = Array2::zeros((self.classes, self.features + 1));
        let scale = client.default_scale() / WEIGHT_UNIT;
        let enc = |c: &mut K| PackedMatrix::encrypt_scaled(c, &zero, self.weights, level, scale);
        Ok(Weights {
            w: enc(client)?,
            v: enc(client)?,
        })
    }

    /// The rotations a step, a refresh and validation logits use (the Galois keys the server
    /// needs besides bootstrapping's; it also needs the conjugation and relinearization keys):
    /// read off a run of the same code on the simulator. HETAL's DiagATB picks its variant by
    /// the levels of its inputs, which vary with the bootstraps: both variants' are included.
    ///
    /// # Errors
    /// Errors of that run (none for a valid geometry).
    pub fn rotations(&self) -> Result<Vec<i64>, MlError> {
        let slots = self.shape.slots();
        // Levels enough for a step without bootstrapping (HETAL's takes 85), primes all 2^40.
        let levels = 100;
        let mut sim = SlotSim::uniform(slots, levels, 40);
        let x = Array2::zeros((self.shape.s0(), self.features));
        let labels = vec![0; self.shape.s0()];
        let batch = self.encrypt_batch(&mut sim, &x, &labels, levels)?;
        let state = self.encrypt_initial(&mut sim, levels)?;
        let trainer = Trainer::new(&sim, *self, 1.0, 0.9)?;
        let state = trainer.step(state, &batch)?;
        trainer.logits(&state, &batch.features)?;
        let mut ks = sim.rotations_used();
        if self.pipeline == Pipeline::Hetal {
            for variant in [AtbVariant::Standard, AtbVariant::PRotUp] {
                ks.extend(atb_rotations(self.shape, self.padded, variant));
            }
            ks.sort_unstable();
            ks.dedup();
        }
        Ok(ks)
    }
}

/// The cheapest DiagATB plan (by [`CostModel::default`]) for the gradient, counting its
/// repacking into the weights' compact layout: every period `L` from `c` to the compact one
/// and every split `L = L1·L2`. A small period packs the gradient in more ciphertexts
/// (`⌈nb·c/L⌉`) but needs far fewer rotations; the repack to the compact period costs one
/// plaintext mask per source and no rotation, in the level the learning rate's landing takes
/// anyway.
fn gradient_atb_plan(
    batch: usize,
    cols: usize,
    shape: BlockShape,
    weights: PackedLayout,
) -> Result<AtbPlan, MlError> {
    let model = CostModel::default();
    let c = weights.classes();
    let mut best: Option<(f64, AtbPlan)> = None;
    let mut period = c;
    while period <= weights.period() {
        let layout = PackedLayout::new(weights.rows(), cols, shape, c, period)?;
        let repack = model.cost(&ours::repack_cost(&layout, weights.period()));
        let mut window = 1;
        while window <= period {
            let plan = AtbPlan::new(shape, c, window, period / window)?;
            let cost = model.cost(&ours::atb_cost(batch, cols, shape, plan)) + repack;
            if best.is_none_or(|(w, _)| cost < w) {
                best = Some((cost, plan));
            }
            window *= 2;
        }
        period *= 2;
    }
    best.map(|(_, plan)| plan).ok_or(MlError::Empty)
}

fn ours_max_classes() -> usize {
    crate::softmax::ours::MAX_CLASSES
}

/// One encrypted mini-batch.
#[derive(Clone, Debug)]
pub struct EncBatch<C> {
    /// Features with the bias column, `a × (d + 1)`, [`Layout::Blocks`].
    pub features: EncMatrix<C>,
    /// One-hot labels, `a × c'`, [`Layout::ColTiled`] with period `c`.
    pub labels: EncMatrix<C>,
}

/// The training state: weights and momentum.
#[derive(Clone, Debug)]
pub struct Weights<C> {
    /// The weights `W`.
    pub w: PackedMatrix<C>,
    /// The momentum `V`.
    pub v: PackedMatrix<C>,
}

impl<C> Weights<C> {
    /// The level of the weights.
    pub fn level(&self) -> usize
    where
        C: Leveled,
    {
        self.w.level().min(self.v.level())
    }
}

/// The server's trainer: hyperparameters over a backend.
pub struct Trainer<'o, O> {
    ops: &'o O,
    geometry: Geometry,
    lr: f64,
    momentum: f64,
}

/// Levels the weights need before a step: the look-ahead, the expansion (none for HETAL's
/// tiled weights), the DiagABT, and the one level of the softmax's first stage.
fn step_levels(g: &Geometry) -> usize {
    let abt = match g.pipeline {
        Pipeline::Ours(_) => OURS_ABT_DEPTH,
        Pipeline::Hetal => ABT_DEPTH,
    };
    1 + usize::from(g.weights.blocks_per_ct() > 1) + abt + 1
}

impl<'o, O: SoftmaxOps + Bootstrap> Trainer<'o, O> {
    /// A trainer with learning rate `lr` and Nesterov momentum `momentum`.
    ///
    /// # Errors
    /// [`MlError::DimensionMismatch`] for a non-finite rate or momentum (reported as 0).
    pub fn new(ops: &'o O, geometry: Geometry, lr: f64, momentum: f64) -> Result<Self, MlError> {
        if !(lr.is_finite() && momentum.is_finite()) {
            return Err(MlError::DimensionMismatch {
                what: "finite learning rate and momentum",
                lhs: 0,
                rhs: 1,
            });
        }
        Ok(Self {
            ops,
            geometry,
            lr,
            momentum,
        })
    }

    fn packed(&self, blocks: Vec<O::Ct>) -> Result<PackedMatrix<O::Ct>, MlError> {
        PackedMatrix::from_blocks(self.geometry.weights, blocks)
    }

    /// Brings the weights and the momentum to the levels a step needs (bootstrapping them
    /// together when short). Steps and [`Trainer::logits`] call it themselves; call it at the
    /// end of an epoch to share one refresh between validation and the next step.
    ///
    /// # Errors
    /// Bootstrapping errors; a state of another layout.
    pub fn refresh(&self, state: Weights<O::Ct>) -> Result<Weights<O::Ct>, MlError> {
        let n = state.w.blocks().len();
        let all: Vec<O::Ct> = state
            .w
            .into_blocks()
            .into_iter()
            .chain(state.v.into_blocks())
            .collect();
        let mut all = ensure_levels(
            self.ops,
            all,
            step_levels(&self.geometry),
            "weights and momentum",
        )?;
        let v = all.split_off(n);
        Ok(Weights {
            w: self.packed(all)?,
            v: self.packed(v)?,
        })
    }

    /// The DiagABT of features (as [`Geometry::encrypt_features`] makes them) by the weights
    /// `w`: the logits, `a × c'` in [`Layout::Blocks`]. HETAL's weights are already tiled
    /// (expanding them only relabels their ciphertexts).
    fn abt(
        &self,
        x: &EncMatrix<O::Ct>,
        w: &PackedMatrix<O::Ct>,
    ) -> Result<EncMatrix<O::Ct>, MlError> {
        let wt = ours::expand(self.ops, w)?;
        match self.geometry.pipeline {
            Pipeline::Ours(_) => ours::abt(self.ops, x, &wt),
            Pipeline::Hetal => diag_abt(self.ops, x, &wt),
        }
    }

    /// Validation (or test) logits `X·Wᵀ` for up to `batch` rows: what the server returns to
    /// the client, which decrypts them and computes loss and accuracy. Weights short of levels
    /// are bootstrapped for this use only: call [`Trainer::refresh`] first to share it.
    ///
    /// # Errors
    /// Shape, level and bootstrapping errors.
    pub fn logits(
        &self,
        state: &Weights<O::Ct>,
        x: &EncMatrix<O::Ct>,
    ) -> Result<EncMatrix<O::Ct>, MlError> {
        let w = ensure_levels(
            self.ops,
            state.w.blocks().to_vec(),
            step_levels(&self.geometry) - 1,
            "weights",
        )?;
        self.abt(x, &self.packed(w)?)
    }

    /// `factor·Eᵀ·X` in the weights' layout (its ciphertexts), landed exactly on `scale`, from
    /// the blocks of `E = P − Y`. Ours: DiagATB in its cheapest period, merged into the
    /// compact layout by masks that carry the factor and the landing; HETAL's: DiagATB, its
    /// rows tiled, then landed.
    fn gradient(
        &self,
        e_blocks: Vec<O::Ct>,
        batch: &EncBatch<O::Ct>,
        factor: f64,
        scale: f64,
    ) -> Result<Vec<O::Ct>, MlError> {
        let (ops, g) = (self.ops, &self.geometry);
        let x = &batch.features;
        let tiled = |blocks| {
            EncMatrix::from_blocks(
                x.rows(),
                g.classes,
                g.shape,
                Layout::ColTiled { period: g.padded },
                blocks,
            )
        };
        let grad = match g.pipeline {
            Pipeline::Ours(plan) => {
                let e =
                    ensure_levels(ops, e_blocks, OURS_ATB_DEPTHS.0 + 1, "softmax errors P − Y")?;
                let grad = ours::atb_with(ops, &tiled(e)?, x, plan)?;
                let gscale = grad.blocks().first().ok_or(MlError::Empty)?.scale();
                let mask_scale = scale * ops.prime(grad.level())? / gscale;
                let grad =
                    ours::repack_with(ops, &grad, g.weights.period(), factor, |values, level| {
                        ops.encode_scaled(values, level, mask_scale)
                    })?;
                if grad.layout() != g.weights {
                    return Err(MlError::DimensionMismatch {
                        what: "gradient layout against the weights' (ciphertexts)",
                        lhs: grad.layout().cts(),
                        rhs: g.weights.cts(),
                    });
                }
                grad.into_blocks()
            }
            Pipeline::Hetal => {
                let level = e_blocks.iter().map(Leveled::level).min().unwrap_or(0);
                let need = AtbVariant::for_levels(level, x.level()).depths(g.padded).0 + 1;
                let e = tiled(ensure_levels(ops, e_blocks, need, "softmax errors P − Y")?)?;
                let variant = AtbVariant::for_levels(e.level(), x.level());
                let mut blocks = diag_atb(ops, &e, x, variant)?.into_blocks();
                // Rows 0..c of each block column hold the gradient, zeros below: tiled to the
                // s0/c copies of the weights' layout.
                let stride = -((g.padded * g.shape.s1()) as i64);
                for b in &mut blocks {
                    rotate_sum(ops, b, stride, g.shape.s0() / g.padded)?;
                }
                blocks
                    .iter()
                    .map(|b| land(ops, b, factor, scale))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(grad)
    }

    /// One Nesterov step on a mini-batch; returns the new state.
    ///
    /// # Errors
    /// Shape, level and bootstrapping errors.
    pub fn step(
        &self,
        state: Weights<O::Ct>,
        batch: &EncBatch<O::Ct>,
    ) -> Result<Weights<O::Ct>, MlError> {
        self.step_timed(state, batch).map(|(w, _)| w)
    }

    /// [`Trainer::step`], also returning the wall-clock time of each stage.
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn step_timed(
        &self,
        state: Weights<O::Ct>,
        batch: &EncBatch<O::Ct>,
    ) -> Result<(Weights<O::Ct>, StageTimes), MlError> {
        let ops = self.ops;
        let g = &self.geometry;
        let rows = batch.features.rows();
        let mut times = StageTimes::default();
        let mut clock = Instant::now();
        let mut lap = || {
            let t = clock.elapsed().as_secs_f64();
            clock = Instant::now();
            t
        };
        let Weights { w, v } = self.refresh(state)?;
        // look = W + μ·V (μ·V lands on V's scale, which is W's).
        let mu_v: Vec<O::Ct> = v
            .blocks()
            .iter()
            .map(|b| Ok(ops.rescale(&ops.mul_const(b, Complex64::new(self.momentum, 0.0))?)?))
            .collect::<Result<_, MlError>>()?;
        let look = w
            .blocks()
            .iter()
            .zip(&mu_v)
            .map(|(a, b)| Ok(ops.add(&ops.drop_to_level(a, b.level())?, b)?))
            .collect::<Result<Vec<_>, MlError>>()?;
        // Forward: logits and probabilities (ours: landed on V's scale, so that the errors
        // can share a bootstrap with μ·V).
        let v_scale = v.blocks().first().ok_or(MlError::Empty)?.scale();
        let z = self.abt(&batch.features, &self.packed(look)?)?;
        times.forward = lap();
        let landing = match g.pipeline {
            Pipeline::Ours(_) => Some(v_scale),
            Pipeline::Hetal => None,
        };
        let p = softmax_to_scale(ops, &z, g.algo().softmax(), landing)?;
        times.softmax = lap();
        // E = tile(P) − Y, Y landed on P's scale.
        let mut e_blocks = Vec::with_capacity(p.blocks().len());
        for (pb, yb) in p.blocks().iter().zip(batch.labels.blocks()) {
            let mut t = pb.clone();
            rotate_sum(ops, &mut t, -(g.padded as i64), g.shape.s1() / g.padded)?;
            let y = land(ops, yb, 1.0, t.scale())?;
            let level = t.level().min(y.level());
            e_blocks.push(ops.sub(
                &ops.drop_to_level(&t, level)?,
                &ops.drop_to_level(&y, level)?,
            )?);
        }
        // Ours: E and μ·V refreshed together where short (E for DiagATB, μ·V for the next
        // step's levels, which V' = μ·V − G and W' = W + V' inherit), so that the weights never
        // need a refresh of their own.
        let (e_blocks, mu_v) = match g.pipeline {
            Pipeline::Ours(_) => {
                let ne = e_blocks.len();
                let items = e_blocks
                    .into_iter()
                    .map(|e| (e, OURS_ATB_DEPTHS.0 + 1))
                    .chain(mu_v.into_iter().map(|m| (m, step_levels(g))))
                    .collect();
                let mut all = ensure_each(ops, items, "softmax errors P − Y and momentum")?;
                let mu_v = all.split_off(ne);
                (all, mu_v)
            }
            Pipeline::Hetal => (e_blocks, mu_v),
        };
        times.errors = lap();
        // The gradient scaled by η/a and landed on V's scale.
        let grad = self.gradient(e_blocks, batch, self.lr / rows as f64, v_scale)?;
        times.gradient = lap();
        let mut new_v = Vec::with_capacity(mu_v.len());
        let mut new_w = Vec::with_capacity(mu_v.len());
        for ((gl, mv), wb) in grad.iter().zip(&mu_v).zip(w.blocks()) {
            // W may sit below both (it inherits the lower of its last update's operands).
            let level = gl.level().min(mv.level()).min(wb.level());
            let nv = ops.sub(
                &ops.drop_to_level(mv, level)?,
                &ops.drop_to_level(gl, level)?,
            )?;
            new_w.push(ops.add(&ops.drop_to_level(wb, level)?, &nv)?);
            new_v.push(nv);
        }
        let state = Weights {
            w: self.packed(new_w)?,
            v: self.packed(new_v)?,
        };
        times.update = lap();
        Ok((state, times))
    }
}

/// Wall-clock seconds of the stages of one training step ([`Trainer::step_timed`]), each with
/// the bootstraps it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// The weights' refresh (if any), the look-ahead and DiagABT.
    pub forward: f64,
    /// The softmax (ours: landed on the momentum's scale).
    pub softmax: f64,
    /// `E = P − Y` (ours: refreshed together with `μ·V` where short).
    pub errors: f64,
    /// DiagATB (with our repacking into the weights' layout).
    pub gradient: f64,
    /// The momentum and weights update.
    pub update: f64,
}

impl StageTimes {
    /// The stages by name, in the order they run.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("forward", self.forward),
            ("softmax", self.softmax),
            ("errors", self.errors),
            ("gradient", self.gradient),
            ("update", self.update),
        ]
    }
}
