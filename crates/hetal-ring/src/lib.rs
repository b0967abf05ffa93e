//! # hetal-ring: the ring layer of hetal
//!
//! Arithmetic in `Z_Q[X]/(X^N + 1)` with `Q` a product of word-sized NTT-friendly primes
//! (the residue number system, RNS). This crate knows nothing of CKKS: it offers
//!
//! - [`Modulus`]: Barrett and Shoup modular arithmetic for one prime below 2^62 (and, where
//!   the CPU has AVX-512 IFMA, vector kernels for primes below 2^50);
//! - [`primes`]: generation of primes `q ≡ 1 (mod 2N)`;
//! - [`Prime`]: a modulus together with its negacyclic NTT plan (the `tfhe-ntt` crate);
//! - [`RnsPoly`]: a polynomial as a list of residues ("limbs"), one per prime of a basis;
//! - [`BasisConverter`], [`DivideAndRound`] and [`MixedRadix`]: fast basis extension (ModUp),
//!   exact division by a sub-basis (ModDown and rescaling) and CRT reconstruction;
//! - [`Automorphism`]: the Galois maps `X -> X^g` on coefficients and in NTT form;
//! - [`sampling`]: uniform, ternary, fixed-Hamming-weight and discrete Gaussian samplers
//!   over a CSPRNG.
//!
//! Every operation works on a slice of [`Prime`]s that names the basis of its operands; the
//! caller (the CKKS layer) decides which primes a polynomial lives on. Polynomials in NTT form
//! hold evaluations at the odd powers of a primitive 2N-th root of unity, in the order of
//! [`NttOrder`]. Operations over limbs run in parallel with `rayon`.

#![forbid(unsafe_code)]

mod automorphism;
mod basis;
mod error;
#[cfg(target_arch = "x86_64")]
mod ifma;
pub mod kernels;
mod modulus;
mod ntt;
mod poly;
pub mod primes;
pub mod sampling;
mod scratch;

pub use automorphism::{galois_inverse, galois_power, Automorphism};
pub use basis::{BasisConverter, DivideAndRound, MixedRadix};
pub use error::RingError;
pub use modulus::Modulus;
pub use ntt::{NttOrder, Prime};
pub use poly::RnsPoly;
