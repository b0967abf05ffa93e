//! The client–server protocol of encrypted training: the two roles as types, and the
//! versioned binary messages that are the only thing passing between them.
//!
//! * The [`Client`] owns the secret key (inside its [`SlotClient`]): it encrypts the data
//!   ([`Setup`], [`Data`]), decrypts each epoch's validation logits and decides whether to go
//!   on ([`Validation`] → [`Decision`]), and decrypts the final model ([`Model`]).
//! * The [`Server`] holds a backend with public evaluation keys only (no field of any of its
//!   types can hold a secret key) and trains ([`Trainer`]), writing a [`Checkpoint`] after
//!   every step from which [`Server::resume`] goes on exactly where it stopped.
//!
//! Both are generic over the backend, so the simulator runs the very same protocol, messages
//! included ([`WireCt`] for [`SimCt`] writes the exact slot values).
//!
//! # Message format
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `HETALMSG` |
//! | 2 | format version, little-endian ([`VERSION`]) |
//! | 2 | message kind ([`MessageKind`]) |
//! | 8 | payload length |
//! | n | payload: little-endian integers and `f64`s, length-prefixed lists and blobs |
//! | 8 | the first 8 bytes of SHA-256 over everything before |
//!
//! Ciphertexts inside are blobs in their own format (`hetal_ckks::serial`, with its parameter
//! fingerprint and checksum). Every count is checked against the bytes left before anything is
//! allocated, and every decoded structure is validated as its constructor validates it: a
//! truncated, corrupted or foreign message is an error, never a panic.

use std::time::Instant;

use hetal_ckks::{serial, Ciphertext, DecodeLimits, Params};
use ndarray::{Array2, Axis, Slice};
use num_complex::Complex64;
use sha2::{Digest, Sha256};

use crate::data::{Dataset, Split};
use crate::error::MlError;
use crate::matrix::{BlockShape, EncMatrix, Layout};
use crate::ops::{Bootstrap, Leveled, SlotClient};
use crate::ours::{PackedLayout, PackedMatrix};
use crate::plain::{EpochMetrics, Model as PlainModel, TrainConfig};
use crate::softmax::SoftmaxOps;
use crate::train::{EncBatch, Geometry, TrainAlgo, Trainer, Weights};
use crate::{SimCt, SlotSim};

/// Leading bytes of every message.
pub const MAGIC: &[u8; 8] = b"HETALMSG";
/// The message format version (2: [`Setup`] carries the training algorithms).
pub const VERSION: u16 = 2;
const HEADER: usize = 8 + 2 + 2 + 8;
const CHECKSUM: usize = 8;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// [`Setup`].
    Setup = 1,
    /// [`Data`].
    Data = 2,
    /// [`Validation`].
    Validation = 3,
    /// [`Decision`].
    Decision = 4,
    /// [`Model`].
    Model = 5,
    /// [`Checkpoint`].
    Checkpoint = 6,
}

fn bad(reason: impl Into<String>) -> MlError {
    MlError::Message(reason.into())
}

/// Writes a message payload.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }

    fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// A length-prefixed blob.
    pub fn bytes(&mut self, b: &[u8]) {
        self.usize(b.len());
        self.buf.extend_from_slice(b);
    }

    fn seal(self, kind: MessageKind) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.buf.len() + CHECKSUM);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(kind as u16).to_le_bytes());
        out.extend_from_slice(&(self.buf.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.buf);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(sum.get(..CHECKSUM).unwrap_or_default());
        out
    }
}

/// Reads a message payload; every read is bounds-checked.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn open(bytes: &'a [u8], kind: MessageKind) -> Result<Self, MlError> {
        if bytes.len() < HEADER + CHECKSUM {
            return Err(bad("truncated message"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err(bad("not a hetal message (bad magic)"));
        }
        let mut r = Reader {
            rest: body.get(8..).unwrap_or_default(),
        };
        let version = r.u16()?;
        if version != VERSION {
            return Err(bad(format!(
                "message format version {version}, expected {VERSION}"
            )));
        }
        let found = r.u16()?;
        if found != kind as u16 {
            return Err(bad(format!("message kind {found}, expected {:?}", kind)));
        }
        let len = r.u64()?;
        if len != r.rest.len() as u64 {
            return Err(bad("message length does not match its header (truncated?)"));
        }
        if Sha256::digest(body).get(..CHECKSUM) != Some(sum) {
            return Err(bad("message checksum mismatch (corrupted)"));
        }
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MlError> {
        if n > self.rest.len() {
            return Err(bad("truncated message payload"));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MlError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u16(&mut self) -> Result<u16, MlError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, MlError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn usize(&mut self) -> Result<usize, MlError> {
        usize::try_from(self.u64()?).map_err(|_| bad("size out of range"))
    }

    fn f64(&mut self) -> Result<f64, MlError> {
        let v = f64::from_le_bytes(self.array()?);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(bad("non-finite number in message"))
        }
    }

    fn u8(&mut self) -> Result<u8, MlError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn bool(&mut self) -> Result<bool, MlError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("bad boolean")),
        }
    }

    /// A length-prefixed blob.
    pub fn bytes(&mut self) -> Result<&'a [u8], MlError> {
        let n = self.usize()?;
        self.take(n)
    }

    /// A count of items of at least `min_size` bytes each, checked against the bytes left.
    fn count(&mut self, min_size: usize) -> Result<usize, MlError> {
        let n = self.usize()?;
        if n.saturating_mul(min_size.max(1)) > self.rest.len() {
            return Err(bad("list longer than the message"));
        }
        Ok(n)
    }

    fn finish(self) -> Result<(), MlError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes in message"))
        }
    }
}

/// How a ciphertext type travels in messages.
pub trait WireCt: Sized + Clone + Leveled {
    /// What decoding needs (the parameters, or the simulator).
    type Ctx;

    /// Appends the ciphertext.
    fn put(&self, ctx: &Self::Ctx, w: &mut Writer);

    /// Reads one ciphertext.
    ///
    /// # Errors
    /// Malformed or foreign input.
    fn get(r: &mut Reader<'_>, ctx: &Self::Ctx) -> Result<Self, MlError>;
}

impl WireCt for Ciphertext {
    type Ctx = Params;

    fn put(&self, ctx: &Params, w: &mut Writer) {
        w.bytes(&serial::encode_ciphertext(self, ctx));
    }

    fn get(r: &mut Reader<'_>, ctx: &Params) -> Result<Self, MlError> {
        let b = r.bytes()?;
        Ok(serial::decode_ciphertext(
            b,
            ctx,
            DecodeLimits::new(b.len()),
        )?)
    }
}

impl WireCt for SimCt {
    type Ctx = SlotSim;

    fn put(&self, _: &SlotSim, w: &mut Writer) {
        w.usize(self.level());
        w.f64(self.scale());
        w.usize(self.values().len());
        for v in self.values() {
            w.f64(v.re);
            w.f64(v.im);
        }
    }

    fn get(r: &mut Reader<'_>, ctx: &SlotSim) -> Result<Self, MlError> {
        let level = r.usize()?;
        let scale = r.f64()?;
        let n = r.count(16)?;
        let values = (0..n)
            .map(|_| Ok(Complex64::new(r.f64()?, r.f64()?)))
            .collect::<Result<Vec<_>, MlError>>()?;
        Ok(ctx.ciphertext(values, level, scale)?)
    }
}

fn put_cts<C: WireCt>(cts: &[C], ctx: &C::Ctx, w: &mut Writer) {
    w.usize(cts.len());
    cts.iter().for_each(|c| c.put(ctx, w));
}

fn get_cts<C: WireCt>(r: &mut Reader<'_>, ctx: &C::Ctx) -> Result<Vec<C>, MlError> {
    let n = r.count(8)?;
    (0..n).map(|_| C::get(r, ctx)).collect()
}

fn put_matrix<C: WireCt>(m: &EncMatrix<C>, ctx: &C::Ctx, w: &mut Writer) {
    w.usize(m.rows());
    w.usize(m.cols());
    w.usize(m.shape().s0());
    w.usize(m.shape().s1());
    let (tag, period) = match m.layout() {
        Layout::Blocks => (0, 0),
        Layout::RowTiled { period } => (1, period),
        Layout::ColTiled { period } => (2, period),
    };
    w.usize(tag);
    w.usize(period);
    put_cts(m.blocks(), ctx, w);
}

fn get_matrix<C: WireCt>(r: &mut Reader<'_>, ctx: &C::Ctx) -> Result<EncMatrix<C>, MlError> {
    let (rows, cols) = (r.usize()?, r.usize()?);
    let shape = BlockShape::new(r.usize()?, r.usize()?)?;
    let (tag, period) = (r.usize()?, r.usize()?);
    let layout = match tag {
        0 => Layout::Blocks,
        1 => Layout::RowTiled { period },
        2 => Layout::ColTiled { period },
        _ => return Err(bad("unknown matrix layout")),
    };
    EncMatrix::from_blocks(rows, cols, shape, layout, get_cts(r, ctx)?)
}

fn put_packed<C: WireCt>(m: &PackedMatrix<C>, ctx: &C::Ctx, w: &mut Writer) {
    let l = m.layout();
    for v in [
        l.rows(),
        l.cols(),
        l.shape().s0(),
        l.shape().s1(),
        l.classes(),
        l.period(),
    ] {
        w.usize(v);
    }
    put_cts(m.blocks(), ctx, w);
}

fn get_packed<C: WireCt>(r: &mut Reader<'_>, ctx: &C::Ctx) -> Result<PackedMatrix<C>, MlError> {
    let (rows, cols) = (r.usize()?, r.usize()?);
    let shape = BlockShape::new(r.usize()?, r.usize()?)?;
    let layout = PackedLayout::new(rows, cols, shape, r.usize()?, r.usize()?)?;
    PackedMatrix::from_blocks(layout, get_cts(r, ctx)?)
}

fn put_weights<C: WireCt>(s: &Weights<C>, ctx: &C::Ctx, w: &mut Writer) {
    put_packed(&s.w, ctx, w);
    put_packed(&s.v, ctx, w);
}

fn get_weights<C: WireCt>(r: &mut Reader<'_>, ctx: &C::Ctx) -> Result<Weights<C>, MlError> {
    Ok(Weights {
        w: get_packed(r, ctx)?,
        v: get_packed(r, ctx)?,
    })
}

/// The sizes and hyperparameters of a run (client → server, before the data).
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// Slots per ciphertext.
    pub slots: usize,
    /// Input features (without the bias).
    pub features: usize,
    /// Classes.
    pub classes: usize,
    /// Hyperparameters (the batch size is the block height).
    pub config: TrainConfig,
    /// The training algorithms.
    pub algo: TrainAlgo,
}

/// The byte of a training algorithm in [`Setup`].
fn algo_tag(algo: TrainAlgo) -> u8 {
    match algo {
        TrainAlgo::Ours => 0,
        TrainAlgo::Hetal => 1,
    }
}

impl Setup {
    /// The block geometry.
    ///
    /// # Errors
    /// As [`Geometry::with_algo`].
    pub fn geometry(&self) -> Result<Geometry, MlError> {
        Geometry::with_algo(
            self.slots,
            self.features,
            self.classes,
            self.config.batch_size,
            self.algo,
        )
    }

    /// Serializes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for v in [self.slots, self.features, self.classes] {
            w.usize(v);
        }
        let c = &self.config;
        w.f64(c.lr);
        w.f64(c.momentum);
        for v in [c.batch_size, c.epochs, c.patience] {
            w.usize(v);
        }
        w.u8(algo_tag(self.algo));
        w.seal(MessageKind::Setup)
    }

    /// Deserializes and validates (the geometry must be valid).
    ///
    /// # Errors
    /// Malformed input; an invalid geometry or configuration.
    pub fn decode(bytes: &[u8]) -> Result<Self, MlError> {
        let mut r = Reader::open(bytes, MessageKind::Setup)?;
        let (slots, features, classes) = (r.usize()?, r.usize()?, r.usize()?);
        let (lr, momentum) = (r.f64()?, r.f64()?);
        let config = TrainConfig {
            lr,
            momentum,
            batch_size: r.usize()?,
            epochs: r.usize()?,
            patience: r.usize()?,
        };
        let tag = r.u8()?;
        let algo = [TrainAlgo::Ours, TrainAlgo::Hetal]
            .into_iter()
            .find(|&a| algo_tag(a) == tag)
            .ok_or_else(|| bad(format!("unknown training algorithm {tag}")))?;
        r.finish()?;
        let setup = Self {
            slots,
            features,
            classes,
            config,
            algo,
        };
        setup.geometry()?;
        if setup.config.epochs == 0 {
            return Err(bad("zero epochs"));
        }
        Ok(setup)
    }
}

/// The encrypted data and initial state (client → server).
#[derive(Clone, Debug)]
pub struct Data<C> {
    /// Training mini-batches, in order.
    pub batches: Vec<EncBatch<C>>,
    /// Validation features, in blocks of at most a batch of rows.
    pub val: Vec<EncMatrix<C>>,
    /// The initial weights and momentum.
    pub initial: Weights<C>,
}

impl<C: WireCt> Data<C> {
    /// Serializes.
    pub fn encode(&self, ctx: &C::Ctx) -> Vec<u8> {
        let mut w = Writer::default();
        w.usize(self.batches.len());
        for b in &self.batches {
            put_matrix(&b.features, ctx, &mut w);
            put_matrix(&b.labels, ctx, &mut w);
        }
        w.usize(self.val.len());
        self.val.iter().for_each(|m| put_matrix(m, ctx, &mut w));
        put_weights(&self.initial, ctx, &mut w);
        w.seal(MessageKind::Data)
    }

    /// Deserializes and checks it against the run's geometry.
    ///
    /// # Errors
    /// Malformed input; matrices that do not fit the geometry.
    pub fn decode(bytes: &[u8], ctx: &C::Ctx, geometry: &Geometry) -> Result<Self, MlError> {
        let mut r = Reader::open(bytes, MessageKind::Data)?;
        let n = r.count(64)?;
        let batches = (0..n)
            .map(|_| {
                Ok(EncBatch {
                    features: get_matrix(&mut r, ctx)?,
                    labels: get_matrix(&mut r, ctx)?,
                })
            })
            .collect::<Result<Vec<_>, MlError>>()?;
        let n = r.count(64)?;
        let val = (0..n)
            .map(|_| get_matrix(&mut r, ctx))
            .collect::<Result<Vec<_>, _>>()?;
        let initial = get_weights(&mut r, ctx)?;
        r.finish()?;
        let data = Self {
            batches,
            val,
            initial,
        };
        data.check(geometry)?;
        Ok(data)
    }

    fn check(&self, g: &Geometry) -> Result<(), MlError> {
        let shape_ok = |m: &EncMatrix<C>, cols: usize| m.shape() == g.shape() && m.cols() == cols;
        let ok = !self.batches.is_empty()
            && self.batches.iter().all(|b| {
                shape_ok(&b.features, g.features() + 1)
                    && shape_ok(&b.labels, g.classes())
                    && b.features.rows() == b.labels.rows()
            })
            && self.val.iter().all(|m| shape_ok(m, g.features() + 1))
            && self.initial.w.layout() == g.weights_layout()
            && self.initial.v.layout() == g.weights_layout();
        if ok {
            Ok(())
        } else {
            Err(bad("data does not fit the run's geometry"))
        }
    }
}

/// One epoch's encrypted validation logits (server → client).
#[derive(Clone, Debug)]
pub struct Validation<C> {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Mean wall-clock seconds of the steps the server ran for this message (those after a
    /// resume only), for the client's report.
    pub step_s: f64,
    /// Mean bootstraps of those steps.
    pub bootstraps: f64,
    /// Logits of each validation block.
    pub logits: Vec<EncMatrix<C>>,
}

impl<C: WireCt> Validation<C> {
    /// Serializes.
    pub fn encode(&self, ctx: &C::Ctx) -> Vec<u8> {
        let mut w = Writer::default();
        w.usize(self.epoch);
        w.f64(self.step_s);
        w.f64(self.bootstraps);
        w.usize(self.logits.len());
        self.logits.iter().for_each(|m| put_matrix(m, ctx, &mut w));
        w.seal(MessageKind::Validation)
    }

    /// Deserializes.
    ///
    /// # Errors
    /// Malformed input.
    pub fn decode(bytes: &[u8], ctx: &C::Ctx) -> Result<Self, MlError> {
        let mut r = Reader::open(bytes, MessageKind::Validation)?;
        let (epoch, step_s, bootstraps) = (r.usize()?, r.f64()?, r.f64()?);
        let n = r.count(64)?;
        let logits = (0..n)
            .map(|_| get_matrix(&mut r, ctx))
            .collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(Self {
            epoch,
            step_s,
            bootstraps,
            logits,
        })
    }
}

/// The client's answer to a [`Validation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The epoch answered.
    pub epoch: usize,
    /// This epoch's model is the best so far: the server keeps it.
    pub best: bool,
    /// Stop training.
    pub stop: bool,
}

impl Decision {
    /// Serializes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.usize(self.epoch);
        w.bool(self.best);
        w.bool(self.stop);
        w.seal(MessageKind::Decision)
    }

    /// Deserializes.
    ///
    /// # Errors
    /// Malformed input.
    pub fn decode(bytes: &[u8]) -> Result<Self, MlError> {
        let mut r = Reader::open(bytes, MessageKind::Decision)?;
        let d = Self {
            epoch: r.usize()?,
            best: r.bool()?,
            stop: r.bool()?,
        };
        r.finish()?;
        Ok(d)
    }
}

/// The encrypted weights of the best epoch (server → client).
#[derive(Clone, Debug)]
pub struct Model<C> {
    /// The epoch they are from.
    pub epoch: usize,
    /// The weights.
    pub weights: PackedMatrix<C>,
}

impl<C: WireCt> Model<C> {
    /// Serializes.
    pub fn encode(&self, ctx: &C::Ctx) -> Vec<u8> {
        let mut w = Writer::default();
        w.usize(self.epoch);
        put_packed(&self.weights, ctx, &mut w);
        w.seal(MessageKind::Model)
    }

    /// Deserializes.
    ///
    /// # Errors
    /// Malformed input.
    pub fn decode(bytes: &[u8], ctx: &C::Ctx) -> Result<Self, MlError> {
        let mut r = Reader::open(bytes, MessageKind::Model)?;
        let epoch = r.usize()?;
        let weights = get_packed(&mut r, ctx)?;
        r.finish()?;
        Ok(Self { epoch, weights })
    }
}

/// Where the server stands: written after every step and every decision.
#[derive(Clone, Debug)]
pub struct Checkpoint<C> {
    /// The current epoch, from 1.
    pub epoch: usize,
    /// Steps of the current epoch done.
    pub step: usize,
    /// Weights and momentum after them.
    pub state: Weights<C>,
    /// The best epoch so far and its weights.
    pub best: Option<(usize, PackedMatrix<C>)>,
    /// Training is over.
    pub finished: bool,
}

impl<C: Clone> Checkpoint<C> {
    /// The best epoch's encrypted weights, what the server returns once training is over.
    ///
    /// # Errors
    /// No epoch was ever marked best.
    pub fn model(&self) -> Result<Model<C>, MlError> {
        let (epoch, weights) = self.best.clone().ok_or(MlError::Empty)?;
        Ok(Model { epoch, weights })
    }
}

impl<C: WireCt> Checkpoint<C> {
    /// Serializes.
    pub fn encode(&self, ctx: &C::Ctx) -> Vec<u8> {
        let mut w = Writer::default();
        w.usize(self.epoch);
        w.usize(self.step);
        w.bool(self.finished);
        put_weights(&self.state, ctx, &mut w);
        w.bool(self.best.is_some());
        if let Some((e, m)) = &self.best {
            w.usize(*e);
            put_packed(m, ctx, &mut w);
        }
        w.seal(MessageKind::Checkpoint)
    }

    /// Deserializes.
    ///
    /// # Errors
    /// Malformed input.
    pub fn decode(bytes: &[u8], ctx: &C::Ctx) -> Result<Self, MlError> {
        let mut r = Reader::open(bytes, MessageKind::Checkpoint)?;
        let (epoch, step, finished) = (r.usize()?, r.usize()?, r.bool()?);
        let state = get_weights(&mut r, ctx)?;
        let best = if r.bool()? {
            Some((r.usize()?, get_packed(&mut r, ctx)?))
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            epoch,
            step,
            state,
            best,
            finished,
        })
    }
}

/// What [`Server::train_epoch`] reports after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Steps of this epoch done (from 1).
    pub step: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Wall-clock seconds of the step.
    pub seconds: f64,
    /// Bootstraps of the step.
    pub bootstraps: u64,
}

/// The server: a backend with evaluation keys only, the run's setup and data, and its
/// progress.
pub struct Server<O: SoftmaxOps + Bootstrap> {
    ops: O,
    setup: Setup,
    geometry: Geometry,
    data: Data<O::Ct>,
    at: Checkpoint<O::Ct>,
}

impl<O: SoftmaxOps + Bootstrap> Server<O>
where
    O::Ct: WireCt,
{
    /// A server starting a run.
    ///
    /// # Errors
    /// An invalid setup; data that does not fit it.
    pub fn new(ops: O, setup: Setup, data: Data<O::Ct>) -> Result<Self, MlError> {
        let at = Checkpoint {
            epoch: 1,
            step: 0,
            state: data.initial.clone(),
            best: None,
            finished: false,
        };
        Self::resume(ops, setup, data, at)
    }

    /// A server going on from a checkpoint.
    ///
    /// # Errors
    /// As [`Server::new`]; a checkpoint that does not fit the run.
    pub fn resume(
        ops: O,
        setup: Setup,
        data: Data<O::Ct>,
        at: Checkpoint<O::Ct>,
    ) -> Result<Self, MlError> {
        let geometry = setup.geometry()?;
        data.check(&geometry)?;
        let fits = at.epoch >= 1
            && at.step <= data.batches.len()
            && at.state.w.layout() == geometry.weights_layout()
            && at.state.v.layout() == geometry.weights_layout();
        if !fits {
            return Err(bad("checkpoint does not fit the run"));
        }
        Ok(Self {
            ops,
            setup,
            geometry,
            data,
            at,
        })
    }

    /// The backend.
    pub fn ops(&self) -> &O {
        &self.ops
    }

    /// Where the run stands.
    pub fn checkpoint(&self) -> &Checkpoint<O::Ct> {
        &self.at
    }

    /// Whether training is over.
    pub fn finished(&self) -> bool {
        self.at.finished
    }

    /// Steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.batches.len()
    }

    fn trainer(&self) -> Result<Trainer<'_, O>, MlError> {
        Trainer::new(
            &self.ops,
            self.geometry,
            self.setup.config.lr,
            self.setup.config.momentum,
        )
    }

    /// Runs the remaining steps of the current epoch, calling `after_step` after each with
    /// its report and the new checkpoint (persist it there), then returns the encrypted
    /// validation logits for the client.
    ///
    /// # Errors
    /// Training errors; the first error of `after_step`; training already over.
    pub fn train_epoch(
        &mut self,
        mut after_step: impl FnMut(&StepReport, &Checkpoint<O::Ct>) -> Result<(), MlError>,
    ) -> Result<Validation<O::Ct>, MlError> {
        if self.at.finished {
            return Err(bad("training is over"));
        }
        let steps = self.data.batches.len();
        let (mut seconds, mut bootstraps, mut ran) = (0.0, 0u64, 0u64);
        while self.at.step < steps {
            let start = Instant::now();
            let boots = self.ops.bootstraps();
            let batch = self.data.batches.get(self.at.step).ok_or(MlError::Empty)?;
            let state = self.trainer()?.step(self.at.state.clone(), batch)?;
            self.at.state = state;
            self.at.step += 1;
            let report = StepReport {
                epoch: self.at.epoch,
                step: self.at.step,
                steps,
                seconds: start.elapsed().as_secs_f64(),
                bootstraps: self.ops.bootstraps() - boots,
            };
            seconds += report.seconds;
            bootstraps += report.bootstraps;
            ran += 1;
            after_step(&report, &self.at)?;
        }
        // One refresh shared by validation and the next epoch's first step.
        let state = self.trainer()?.refresh(self.at.state.clone())?;
        self.at.state = state;
        let trainer = self.trainer()?;
        let logits = self
            .data
            .val
            .iter()
            .map(|x| trainer.logits(&self.at.state, x))
            .collect::<Result<Vec<_>, _>>()?;
        let ran = ran.max(1) as f64;
        Ok(Validation {
            epoch: self.at.epoch,
            step_s: seconds / ran,
            bootstraps: bootstraps as f64 / ran,
            logits,
        })
    }

    /// Applies the client's decision on the current epoch; returns whether training goes on.
    ///
    /// # Errors
    /// A decision for another epoch, or before the epoch's steps are done.
    pub fn decide(&mut self, d: Decision) -> Result<bool, MlError> {
        if d.epoch != self.at.epoch || self.at.step != self.data.batches.len() {
            return Err(bad(format!(
                "decision for epoch {} while at epoch {} step {}",
                d.epoch, self.at.epoch, self.at.step
            )));
        }
        if d.best {
            self.at.best = Some((d.epoch, self.at.state.w.clone()));
        }
        self.at.finished = d.stop || self.at.epoch >= self.setup.config.epochs;
        if !self.at.finished {
            self.at.epoch += 1;
            self.at.step = 0;
        }
        Ok(!self.at.finished)
    }

    /// The best epoch's encrypted weights.
    ///
    /// # Errors
    /// No epoch was ever marked best.
    pub fn model(&self) -> Result<Model<O::Ct>, MlError> {
        self.at.model()
    }
}

/// The client: the secret key (inside `K`), the validation labels, and the early-stopping
/// state.
pub struct Client<K: SlotClient> {
    inner: K,
    geometry: Geometry,
    val_labels: Vec<usize>,
    config: TrainConfig,
    best_loss: f64,
    since_best: usize,
    metrics: Vec<EpochMetrics>,
}

fn chunks(split: &Split, rows: usize) -> impl Iterator<Item = (Array2<f64>, &[usize])> + '_ {
    let n = split.len();
    let labels = split.labels.as_slice().unwrap_or_default();
    (0..n).step_by(rows.max(1)).map(move |s| {
        let e = (s + rows).min(n);
        (
            split
                .features
                .slice_axis(Axis(0), Slice::from(s..e))
                .to_owned(),
            labels.get(s..e).unwrap_or_default(),
        )
    })
}

impl<K: SlotClient> Client<K>
where
    K::Ct: Leveled,
{
    /// Encrypts a dataset (already scaled by the client) for training with `config` and the
    /// algorithms `algo`, at `level` (the level bootstrapping returns to): the client, and the
    /// [`Setup`] and [`Data`] to send.
    ///
    /// # Errors
    /// A geometry that does not fit (see [`Geometry::new`]); an empty split; encryption errors.
    pub fn prepare(
        mut inner: K,
        data: &Dataset,
        config: &TrainConfig,
        algo: TrainAlgo,
        slots: usize,
        level: usize,
    ) -> Result<(Self, Setup, Data<K::Ct>), MlError> {
        let setup = Setup {
            slots,
            features: data.train.features.ncols(),
            classes: data.classes,
            config: config.clone(),
            algo,
        };
        let geometry = setup.geometry()?;
        if data.train.is_empty() || data.val.is_empty() {
            return Err(MlError::Empty);
        }
        let batch = config.batch_size;
        let batches = chunks(&data.train, batch)
            .map(|(x, y)| geometry.encrypt_batch(&mut inner, &x, y, level))
            .collect::<Result<Vec<_>, _>>()?;
        let val = chunks(&data.val, batch)
            .map(|(x, _)| geometry.encrypt_features(&mut inner, &x, level))
            .collect::<Result<Vec<_>, _>>()?;
        let initial = geometry.encrypt_initial(&mut inner, level)?;
        let client = Self::resume(inner, data, &setup, Vec::new())?;
        Ok((
            client,
            setup,
            Data {
                batches,
                val,
                initial,
            },
        ))
    }

    /// A client going on after `metrics` (the epochs it already answered), for the run
    /// `setup` on `data` (only its validation labels are read).
    ///
    /// # Errors
    /// An invalid setup.
    pub fn resume(
        inner: K,
        data: &Dataset,
        setup: &Setup,
        metrics: Vec<EpochMetrics>,
    ) -> Result<Self, MlError> {
        let mut client = Self {
            inner,
            geometry: setup.geometry()?,
            val_labels: data.val.labels.to_vec(),
            config: setup.config.clone(),
            best_loss: f64::INFINITY,
            since_best: 0,
            metrics: Vec::new(),
        };
        for m in metrics {
            client.record(m);
        }
        Ok(client)
    }

    /// Records an epoch's metrics; returns whether it is the best so far.
    fn record(&mut self, m: EpochMetrics) -> bool {
        let best = m.val_loss < self.best_loss;
        if best {
            self.best_loss = m.val_loss;
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        self.metrics.push(m);
        best
    }

    /// The slot client (and its secret key).
    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// Validation metrics of every epoch answered.
    pub fn metrics(&self) -> &[EpochMetrics] {
        &self.metrics
    }

    /// Decrypts an epoch's validation logits, computes loss and accuracy (exact softmax, in
    /// plaintext), and decides as [`plain::train`](crate::plain::train) does.
    ///
    /// # Errors
    /// Decryption errors; logits that do not cover the validation set.
    pub fn decide(&mut self, v: &Validation<K::Ct>) -> Result<Decision, MlError> {
        let mut blocks = Vec::with_capacity(v.logits.len());
        for m in &v.logits {
            blocks.push(m.decrypt(&self.inner)?);
        }
        let views: Vec<_> = blocks.iter().map(Array2::view).collect();
        let z = ndarray::concatenate(Axis(0), &views).map_err(|_| MlError::Empty)?;
        if z.nrows() != self.val_labels.len() || z.ncols() != self.geometry.classes() {
            return Err(bad("validation logits do not cover the validation set"));
        }
        let (val_loss, val_accuracy) = crate::plain::loss_and_accuracy(&z, &self.val_labels);
        let best = self.record(EpochMetrics {
            epoch: v.epoch,
            val_loss,
            val_accuracy,
        });
        Ok(Decision {
            epoch: v.epoch,
            best,
            stop: self.since_best >= self.config.patience || v.epoch >= self.config.epochs,
        })
    }

    /// Decrypts the final model (`c' × (d + 1)`, the bias last).
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt_model(&self, m: &Model<K::Ct>) -> Result<PlainModel, MlError> {
        Ok(PlainModel {
            weights: m.weights.decrypt(&self.inner)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// `bytes` with its checksum recomputed (a corruption the checksum does not catch).
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let body = bytes.len() - CHECKSUM;
        let sum = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&sum[..CHECKSUM]);
        bytes
    }

    #[test]
    fn setup_carries_the_algorithms_and_refuses_unknown_ones() {
        for algo in [TrainAlgo::Ours, TrainAlgo::Hetal] {
            let setup = Setup {
                slots: 1 << 12,
                features: 64,
                classes: 10,
                config: TrainConfig {
                    batch_size: 64,
                    ..TrainConfig::default()
                },
                algo,
            };
            let b = setup.encode();
            assert_eq!(Setup::decode(&b).unwrap(), setup);
            assert_eq!(setup.geometry().unwrap().algo(), algo);
            // The algorithm is the last payload byte.
            let at = b.len() - CHECKSUM - 1;
            assert_eq!(b[at], algo_tag(algo));
            assert_eq!(Setup::decode(&reseal(b.clone())).unwrap(), setup);
            for bad_tag in [2u8, 0x80, 0xff] {
                let mut c = b.clone();
                c[at] = bad_tag;
                let err = Setup::decode(&reseal(c)).unwrap_err().to_string();
                assert!(err.contains("unknown training algorithm"), "{err}");
            }
            // A version-1 message (no algorithm byte) is refused by its version.
            let mut old = b[..at].to_vec();
            old.extend_from_slice(&[0; CHECKSUM]);
            old[8..10].copy_from_slice(&1u16.to_le_bytes());
            let len = (at - HEADER) as u64;
            old[12..20].copy_from_slice(&len.to_le_bytes());
            let err = Setup::decode(&reseal(old)).unwrap_err().to_string();
            assert!(err.contains("version 1"), "{err}");
        }
    }
}
