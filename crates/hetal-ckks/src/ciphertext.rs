//! Plaintexts and ciphertexts: RNS polynomials in NTT form with their level, scale and slots,
//! and their crate-internal forms over the extended basis `Q_level · P` (double hoisting).

use hetal_ring::RnsPoly;

/// An encoded message: `m` in NTT form over `q_0..=q_level`, whose decoding divided by
/// `scale` gives the slot values.
#[derive(Clone, Debug, PartialEq)]
pub struct Plaintext {
    pub(crate) poly: RnsPoly,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}

/// An RLWE ciphertext `(c0, c1)` in NTT form over `q_0..=q_level` with
/// `c0 + c1·s ≈ Δ·m (mod Q_level)`, where `Δ = scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext {
    pub(crate) c0: RnsPoly,
    pub(crate) c1: RnsPoly,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}

macro_rules! level_scale_slots {
    ($t:ty, $poly:ident) => {
        impl $t {
            /// The level: number of primes − 1.
            pub fn level(&self) -> usize {
                self.$poly.num_limbs() - 1
            }

            /// The scale Δ the message is multiplied by.
            pub fn scale(&self) -> f64 {
                self.scale
            }

            /// Relabels the scale without touching the data. The decoded values are multiplied by
            /// `old / new`: this is the explicit way to align operands whose scales differ.
            pub fn set_scale(&mut self, scale: f64) {
                self.scale = scale;
            }

            /// Number of slots the message occupies (a power of two ≤ N/2).
            pub fn slots(&self) -> usize {
                self.slots
            }
        }
    };
}

level_scale_slots!(Plaintext, poly);
level_scale_slots!(Ciphertext, c0);

impl Plaintext {
    /// The polynomial (NTT form).
    pub fn poly(&self) -> &RnsPoly {
        &self.poly
    }
}

impl Ciphertext {
    /// The two components `(c0, c1)` (NTT form).
    pub fn parts(&self) -> (&RnsPoly, &RnsPoly) {
        (&self.c0, &self.c1)
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.c0.n()
    }
}

/// `P·(c0, c1)` over the extended basis `Q_level · P` (NTT form, limbs `q_0..=q_level` then
/// `P`) for a ciphertext `(c0, c1)` at `scale`: a key switch's output before its ModDown.
/// Double-hoisted linear transforms sum their baby-step rotations, plaintext products and
/// giant-step rotations in this form and divide by `P` (and `q_level`) once at the end.
#[derive(Clone, Debug)]
pub(crate) struct ExtCiphertext {
    pub(crate) c: [RnsPoly; 2],
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}

/// A plaintext encoded over `Q_level · P`, in Montgomery form (`x·2^64 mod q`: the constant
/// operand of [`hetal_ring::kernels::dot_product_pair_montgomery`]), to multiply
/// [`ExtCiphertext`]s.
#[derive(Clone, Debug)]
pub(crate) struct ExtPlaintext {
    pub(crate) poly: RnsPoly,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}
