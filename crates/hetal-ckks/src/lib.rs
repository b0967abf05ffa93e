//! # hetal-ckks: the RNS-CKKS scheme
//!
//! Approximate homomorphic encryption over `Z_Q[X]/(X^N + 1)` (Cheon–Kim–Kim–Song, Asiacrypt
//! 2017) in its full-RNS form (Cheon–Han–Kim–Kim–Song, SAC 2018) with hybrid key switching
//! (Han–Ki, CT-RSA 2020), built on [`hetal_ring`].
//!
//! ```
//! use hetal_ckks::{presets, Encoder, Evaluator, KeyGenerator, Params};
//! use rand::SeedableRng;
//! use std::sync::Arc;
//!
//! // Insecure toy parameters (N = 2^10): for examples and tests only.
//! let params = Params::new_insecure(presets::insecure_test(10, 2)).unwrap();
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let mut keygen = KeyGenerator::with_rng(&params, rand_chacha::ChaCha20Rng::seed_from_u64(2));
//! let sk = keygen.gen_secret_key();
//! let keys = Arc::new(keygen.gen_eval_keys(&sk, &[1], false));
//! let enc = Encoder::new(&params);
//! let pt = enc.encode_real(&[1.0, 2.0, 3.0, 4.0], 4, params.max_level(), params.default_scale()).unwrap();
//! let ct = sk.encrypt(&pt, &mut rng).unwrap();
//! let eval = Evaluator::new(&params, keys);
//! let sq = eval.rescale(&eval.mul_relin(&ct, &ct).unwrap()).unwrap();
//! let rot = eval.rotate(&sq, 1).unwrap();
//! let out = enc.decode_real(&sk.decrypt(&rot).unwrap());
//! assert!((out[0] - 4.0).abs() < 1e-6 && (out[3] - 1.0).abs() < 1e-6);
//! ```
//!
//! Objects are saved and loaded with [`serial`], a versioned binary format whose decoders
//! validate everything against the parameters and never panic on hostile input.
//!
//! Terms used throughout: `level` is the number of ciphertext primes − 1 (a fresh ciphertext
//! is at `max_level()`); `depth` is the number of levels an operation consumes; `scale` (Δ) is
//! the factor the message is multiplied by, `log_scale` its log2.

#![forbid(unsafe_code)]

pub mod boot;
mod ciphertext;
pub mod dft;
mod encoding;
mod error;
mod evaluator;
mod keys;
mod keyswitch;
pub mod lintrans;
mod params;
pub mod poly_eval;
mod precision;
pub mod serial;

pub use boot::{BootKeys, BootParams, Bootstrapper};
pub use ciphertext::{Ciphertext, Plaintext};
pub use encoding::Encoder;
pub use error::CkksError;
pub use evaluator::{Evaluator, OpCounts, SCALE_TOLERANCE};
pub use keys::{EvalKeySet, KeyGenerator, PublicKey, SecretKey, SwitchingKey};
pub use lintrans::{EncodedLinearTransform, LinearTransform};
pub use params::{max_log_qp, presets, Params, ParamsLiteral, SecretDist};
pub use precision::PrecisionStats;
pub use serial::{DecodeError, DecodeLimits, ObjectKind};
