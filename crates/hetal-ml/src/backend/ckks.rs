//! The real backend: [`hetal_ckks::Evaluator`] and [`hetal_ckks::Encoder`] behind
//! [`CkksOps`], and a secret-key [`SlotClient`] for tests and the client side.
//!
//! Only the public API of `hetal-ckks` is used; nothing here sees an RNS limb.

use std::sync::Arc;

use hetal_ckks::{
    Ciphertext, CkksError, Encoder, EvalKeySet, Evaluator, OpCounts, Params, Plaintext, SecretKey,
};
use num_complex::Complex64;
use rand::CryptoRng;

use crate::ops::{CkksOps, SlotClient};

/// The top prime `q_level` as a float, or an error for a level above the top.
fn top_prime(params: &Params, level: usize) -> Result<f64, CkksError> {
    if level > params.max_level() {
        return Err(CkksError::NotEnoughLevels {
            have: params.max_level(),
            need: level,
        });
    }
    params
        .q_primes(level)
        .last()
        .map(|q| q.value() as f64)
        .ok_or(CkksError::ParamsMismatch)
}

/// Server-side backend: an [`Evaluator`] (public keys only) and an [`Encoder`] for masks.
pub struct CkksBackend {
    eval: Evaluator,
    encoder: Encoder,
}

impl CkksBackend {
    /// A backend for `params` with the given public evaluation keys.
    pub fn new(params: &Params, keys: Arc<EvalKeySet>) -> Self {
        Self::from_evaluator(Evaluator::new(params, keys))
    }

    /// Wraps an existing evaluator.
    pub fn from_evaluator(eval: Evaluator) -> Self {
        let encoder = Encoder::new(eval.params());
        Self { eval, encoder }
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Evaluator {
        &self.eval
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        self.eval.params()
    }
}

impl CkksOps for CkksBackend {
    type Ct = Ciphertext;
    type Pt = Plaintext;

    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.add(a, b)
    }

    fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.eval.add_assign(a, b)
    }

    fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.sub(a, b)
    }

    fn neg(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.neg(a)
    }

    fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.mul_relin(a, b)
    }

    fn encode_plain(&self, values: &[Complex64], level: usize) -> Result<Plaintext, CkksError> {
        let scale = top_prime(self.eval.params(), level)?;
        self.encoder.encode(values, values.len(), level, scale)
    }

    fn mul_plain(&self, a: &Ciphertext, p: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.eval.mul_plain(a, p)
    }

    fn mul_const(&self, a: &Ciphertext, c: Complex64) -> Result<Ciphertext, CkksError> {
        self.eval.mul_const(a, c)
    }

    fn add_const(&self, a: &Ciphertext, c: Complex64) -> Result<Ciphertext, CkksError> {
        self.eval.add_const(a, c)
    }

    fn mul_i(&self, a: &Ciphertext, negative: bool) -> Result<Ciphertext, CkksError> {
        self.eval.mul_i(a, negative)
    }

    fn rescale(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.rescale(a)
    }

    fn rescale_assign(&self, a: &mut Ciphertext) -> Result<(), CkksError> {
        self.eval.rescale_assign(a)
    }

    fn drop_to_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        self.eval.drop_to_level(a, level)
    }

    fn rotate(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext, CkksError> {
        self.eval.rotate(a, k)
    }

    fn rotate_hoisted(&self, a: &Ciphertext, ks: &[i64]) -> Result<Vec<Ciphertext>, CkksError> {
        self.eval.rotate_hoisted(a, ks)
    }

    fn conjugate(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.conjugate(a)
    }

    fn counts(&self) -> OpCounts {
        self.eval.counts()
    }

    fn reset_counts(&self) {
        self.eval.reset_counts();
    }
}

/// Client side with the secret key: encrypts (secret-key encryption) and decrypts.
pub struct CkksClient<R> {
    params: Params,
    encoder: Encoder,
    sk: SecretKey,
    rng: R,
}

impl<R: CryptoRng> CkksClient<R> {
    /// A client holding `sk`, drawing encryption randomness from `rng`.
    pub fn new(sk: SecretKey, rng: R) -> Self {
        let params = sk.params().clone();
        let encoder = Encoder::new(&params);
        Self {
            params,
            encoder,
            sk,
            rng,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
}

impl<R: CryptoRng> SlotClient for CkksClient<R> {
    type Ct = Ciphertext;

    fn encrypt(&mut self, values: &[Complex64], level: usize) -> Result<Ciphertext, CkksError> {
        let pt = self
            .encoder
            .encode(values, values.len(), level, self.params.default_scale())?;
        self.sk.encrypt(&pt, &mut self.rng)
    }

    fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<Complex64>, CkksError> {
        Ok(self.encoder.decode(&self.sk.decrypt(ct)?))
    }

    fn max_level(&self) -> usize {
        self.params.max_level()
    }
}
