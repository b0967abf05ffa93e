//! Errors of the CKKS layer.

use hetal_ring::RingError;

/// Everything that can go wrong in a CKKS operation on caller-supplied input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CkksError {
    /// A ring-layer construction failed (bad prime, degree…).
    #[error(transparent)]
    Ring(#[from] RingError),
    /// The parameter set is below 128-bit security.
    #[error(
        "parameters are below 128-bit security: log2(QP) = {log_qp:.1} exceeds the bound {bound} for N = 2^{log_n} ({secret}); use fewer or smaller primes"
    )]
    Insecure {
        /// log2 N.
        log_n: u32,
        /// log2 of the whole modulus QP.
        log_qp: f64,
        /// The largest log2 QP allowed for 128-bit security (0 if unknown).
        bound: u32,
        /// The secret distribution.
        secret: String,
    },
    /// The parameter literal is malformed.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// Two operands are at different levels.
    #[error("level mismatch: {lhs} vs {rhs} (drop the higher operand's level explicitly)")]
    LevelMismatch {
        /// Left operand's level.
        lhs: usize,
        /// Right operand's level.
        rhs: usize,
    },
    /// Two operands have different scales.
    #[error(
        "scale mismatch: 2^{lhs_log2:.6} vs 2^{rhs_log2:.6} (align them explicitly with set_scale)"
    )]
    ScaleMismatch {
        /// log2 of the left scale.
        lhs_log2: f64,
        /// log2 of the right scale.
        rhs_log2: f64,
    },
    /// Two operands have different numbers of slots.
    #[error("slot count mismatch: {lhs} vs {rhs}")]
    SlotMismatch {
        /// Left operand's slots.
        lhs: usize,
        /// Right operand's slots.
        rhs: usize,
    },
    /// The operation needs more levels than the ciphertext has.
    #[error("not enough levels: have {have}, need {need}")]
    NotEnoughLevels {
        /// Levels available.
        have: usize,
        /// Levels needed.
        need: usize,
    },
    /// No rotation key for this rotation.
    #[error("no Galois key for rotation by {rotation} (Galois element {galois_element}); generate it with the key generator")]
    MissingGaloisKey {
        /// The rotation asked for (0 for conjugation).
        rotation: i64,
        /// Its Galois element.
        galois_element: u64,
    },
    /// The rotation key serves lower levels than the ciphertext's.
    #[error("the Galois key for rotation by {rotation} serves levels up to {key_level}, the ciphertext is at level {level}; generate it for higher levels or drop the ciphertext first")]
    KeyLevel {
        /// The rotation asked for (0 for conjugation).
        rotation: i64,
        /// The highest level the key serves.
        key_level: usize,
        /// The ciphertext's level.
        level: usize,
    },
    /// No relinearization key was given to the evaluator.
    #[error("no relinearization key in the evaluation key set")]
    MissingRelinKey,
    /// A value to encode is not finite or too large for the scale.
    #[error("cannot encode value at slot {slot}: {reason}")]
    Encode {
        /// Slot index.
        slot: usize,
        /// Why.
        reason: String,
    },
    /// The slot count is not a power of two in [1, N/2], or the input is longer than it.
    #[error("bad slot count {slots} for N = {n} (input length {len})")]
    BadSlots {
        /// Requested slots.
        slots: usize,
        /// Ring degree.
        n: usize,
        /// Input length.
        len: usize,
    },
    /// An operation over a list was given an empty one.
    #[error("no operands for {0}")]
    NoOperands(&'static str),
    /// An object was made for other parameters.
    #[error("object belongs to other parameters")]
    ParamsMismatch,
    /// A serialized object could not be decoded (see [`crate::serial`]).
    #[error("cannot decode: {0}")]
    Decode(#[from] crate::serial::DecodeError),
}
