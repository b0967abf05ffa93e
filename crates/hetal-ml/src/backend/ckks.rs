//! The real backend: [`hetal_ckks::Evaluator`] and [`hetal_ckks::Encoder`] behind
//! [`CkksOps`], and a secret-key [`SlotClient`] for tests and the client side.
//!
//! Only the public API of `hetal-ckks` is used; nothing here sees an RNS limb.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hetal_ckks::{
    BootKeys, Bootstrapper, Ciphertext, CkksError, Encoder, EvalKeySet, Evaluator, OpCounts,
    Params, Plaintext, SecretKey,
};
use num_complex::Complex64;
use rand::CryptoRng;

use crate::error::MlError;
use crate::ops::{Bootstrap, CkksOps, SlotClient};

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

/// Server-side backend: an [`Evaluator`] (public keys only), an [`Encoder`] for masks, and
/// optionally a [`Bootstrapper`] with its encapsulation keys.
pub struct CkksBackend {
    eval: Evaluator,
    encoder: Encoder,
    boot: Option<(Arc<Bootstrapper>, Option<Arc<BootKeys>>)>,
    bootstraps: AtomicU64,
    /// Wall-clock nanoseconds spent in bootstrapping.
    boot_nanos: AtomicU64,
}

impl CkksBackend {
    /// A backend for `params` with the given public evaluation keys.
    pub fn new(params: &Params, keys: Arc<EvalKeySet>) -> Self {
        Self::from_evaluator(Evaluator::new(params, keys))
    }

    /// Wraps an existing evaluator.
    pub fn from_evaluator(eval: Evaluator) -> Self {
        let encoder = Encoder::new(eval.params());
        Self {
            eval,
            encoder,
            boot: None,
            bootstraps: AtomicU64::new(0),
            boot_nanos: AtomicU64::new(0),
        }
    }

    /// Adds bootstrapping with `bootstrapper` (built for these parameters) and its
    /// encapsulation keys (`None` for a circuit without encapsulation). The evaluation keys
    /// must include the bootstrapper's rotations, the conjugation and relinearization keys.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] when the bootstrapper is for other parameters.
    pub fn with_bootstrapping(
        mut self,
        bootstrapper: Arc<Bootstrapper>,
        keys: Option<Arc<BootKeys>>,
    ) -> Result<Self, CkksError> {
        if bootstrapper.encoder().params() != self.eval.params() {
            return Err(CkksError::ParamsMismatch);
        }
        self.boot = Some((bootstrapper, keys));
        Ok(self)
    }

    fn bootstrapper(&self) -> Result<&(Arc<Bootstrapper>, Option<Arc<BootKeys>>), MlError> {
        self.boot.as_ref().ok_or(MlError::NotEnoughLevels {
            operand: "bootstrapping (not configured on this backend)",
            have: 0,
            need: 1,
        })
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Evaluator {
        &self.eval
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        self.eval.params()
    }

    /// The encoder (for plaintexts at a chosen scale).
    pub(crate) fn encoder(&self) -> &Encoder {
        &self.encoder
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

    fn mul_sum_relin(&self, pairs: &[(&Ciphertext, &Ciphertext)]) -> Result<Ciphertext, CkksError> {
        self.eval.mul_sum_relin(pairs)
    }

    fn mul_sum_relin_rescale(
        &self,
        pairs: &[(&Ciphertext, &Ciphertext)],
    ) -> Result<Ciphertext, CkksError> {
        self.eval.mul_sum_relin_rescale(pairs, None)
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

    fn mul_const_with_scale(
        &self,
        a: &Ciphertext,
        c: Complex64,
        const_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        self.eval.mul_const_with_scale(a, c, const_scale)
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
        self.bootstraps.store(0, Ordering::Relaxed);
    }
}

impl Bootstrap for CkksBackend {
    fn refreshed_level(&self) -> Option<usize> {
        self.boot.as_ref().map(|(b, _)| b.levels_after())
    }

    fn bootstrap(&self, a: &Ciphertext) -> Result<Ciphertext, MlError> {
        let (b, keys) = self.bootstrapper()?;
        let start = Instant::now();
        let out = b.bootstrap(&self.eval, a, keys.as_deref())?;
        self.count_bootstrap(start);
        Ok(out)
    }

    fn bootstrap_pair_to(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        out_scale: f64,
    ) -> Result<(Ciphertext, Ciphertext), MlError> {
        let (boot, keys) = self.bootstrapper()?;
        let start = Instant::now();
        let out = boot.bootstrap_pair_to(&self.eval, a, b, keys.as_deref(), out_scale)?;
        self.count_bootstrap(start);
        Ok(out)
    }

    fn bootstraps(&self) -> u64 {
        self.bootstraps.load(Ordering::Relaxed)
    }

    fn bootstrap_seconds(&self) -> f64 {
        self.boot_nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

impl CkksBackend {
    /// Counts one bootstrapping circuit that began at `start`.
    fn count_bootstrap(&self, start: Instant) {
        self.bootstraps.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.boot_nanos.fetch_add(nanos, Ordering::Relaxed);
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

    fn encrypt_scaled(
        &mut self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        let pt = self.encoder.encode(values, values.len(), level, scale)?;
        self.sk.encrypt(&pt, &mut self.rng)
    }

    fn default_scale(&self) -> f64 {
        self.params.default_scale()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<Complex64>, CkksError> {
        Ok(self.encoder.decode(&self.sk.decrypt(ct)?))
    }

    fn max_level(&self) -> usize {
        self.params.max_level()
    }
}
