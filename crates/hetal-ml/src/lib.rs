//! # hetal-ml: HETAL's machine learning layer on CKKS
//!
//! Privacy-preserving transfer learning after HETAL (Lee et al., ICML 2023): a client encrypts
//! the features its frozen encoder produced and the one-hot labels; a server trains a softmax
//! classifier on the ciphertexts. This crate holds the pieces above the CKKS scheme
//! ([`hetal_ckks`]); it uses only that crate's public API and never sees an RNS limb.
//!
//! So far:
//! * [`CkksOps`]: the operations HETAL's algorithms need, implemented by [`CkksBackend`] (the
//!   real evaluator on [`hetal_ckks::Ciphertext`]) and [`SlotSim`] (a slot-level simulator:
//!   exact complex slot vectors, levels and scales tracked as the evaluator tracks them, every
//!   operation counted with the same [`OpCounts`](hetal_ckks::OpCounts)). Algorithms are
//!   written once; the simulator runs them keyless at the real size N = 2^16 to give exact
//!   operation counts, depths and the rotation keys needed.
//! * [`matrix`]: HETAL's packing, an [`EncMatrix`] of `(s0, s1)` blocks with `s0·s1 = slots`,
//!   one ciphertext per block, row-major inside a block, zero-padded; plus the tiled layouts
//!   of the weights and of the error matrix.
//! * [`matmul`]: DiagABT (`A·Bᵀ`, forward pass) and DiagATB (`Aᵀ·B`, gradient), faithful to
//!   HETAL, with their operation counts matching HETAL's corrected Table 7 ([`TABLE7`]).
//! * [`bench`](mod@bench): run-and-measure helpers, and keyless counting at any size.
//! * [`data`]: the client's data: HETAL's `.npy` layout, validation, the bundled digits set,
//!   scaling; [`plain`]: exact plaintext training, the reference for every encrypted run.
//!
//! ```
//! use hetal_ml::{diag_abt, BlockShape, EncMatrix, Layout, SlotSim, HetalCounts, CkksOps};
//! use ndarray::array;
//!
//! // The simulator: 8 slots, 3 levels, primes 2^40; as a client, encryption is the identity.
//! let mut sim = SlotSim::uniform(8, 3, 40);
//! let shape = BlockShape::new(2, 4).unwrap();
//! let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
//! let w = array![[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
//! let ea = EncMatrix::encrypt(&mut sim, &a, shape, Layout::Blocks, 3).unwrap();
//! let ew = EncMatrix::encrypt(&mut sim, &w, shape, Layout::RowTiled { period: 2 }, 3).unwrap();
//! let logits = diag_abt(&sim, &ea, &ew).unwrap().decrypt(&sim).unwrap();
//! assert!((&logits - &a.dot(&w.t())).iter().all(|e| e.abs() < 1e-12));
//! assert_eq!(HetalCounts::from_counts(&sim.counts()), HetalCounts::new(2, 1, 5));
//! ```
//!
//! Terms: `level` is the number of ciphertext primes − 1, `depth` the number of levels an
//! algorithm consumes (as in [`hetal_ckks`]); `a, b, c` are HETAL's matrix sizes (batch,
//! feature dimension, padded class count); `na × nb` is the block grid of the features.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod backend;
pub mod bench;
pub mod data;
mod error;
pub mod matmul;
pub mod matrix;
mod ops;
pub mod ours;
pub mod plain;
pub mod protocol;
pub mod softmax;
pub mod train;

pub use backend::{CkksBackend, CkksClient, SimCt, SimPt, SlotSim};
pub use error::MlError;
pub use matmul::{
    abt_cost, abt_rotations, atb_cost, atb_rotations, diag_abt, diag_atb, AtbVariant, HetalCounts,
    Table7Row, ABT_DEPTH, TABLE7,
};
pub use matrix::{BlockShape, EncMatrix, Layout};
pub use ops::{counts_delta, ensure_each, ensure_levels, Bootstrap, CkksOps, Leveled, SlotClient};
pub use softmax::{bench_softmax, softmax_to_scale, SoftmaxAlgo, SoftmaxOps, SoftmaxReport};
