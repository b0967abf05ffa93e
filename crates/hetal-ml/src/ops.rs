//! The operations HETAL's algorithms need, as a trait with two backends.
//!
//! [`CkksOps`] is the server side: everything an algorithm may do to ciphertexts. It is
//! implemented by [`CkksBackend`](crate::CkksBackend) (the real evaluator, on
//! [`hetal_ckks::Ciphertext`]) and by [`SlotSim`](crate::SlotSim) (exact complex slot vectors,
//! level and scale tracked, every operation counted). An algorithm written once against
//! [`CkksOps`] therefore runs encrypted, and also runs keyless at full size to give its exact
//! operation counts and depth.
//!
//! [`SlotClient`] is the client side: encryption and decryption of slot vectors, which needs
//! the secret key (or, for the simulator, nothing).
//!
//! The semantics and the counters follow [`hetal_ckks::Evaluator`] exactly:
//!
//! | op | level | counters |
//! |---|---|---|
//! | `add`, `sub`, `neg`, `add_const`, `mul_i`, `drop_to_level` | — | none |
//! | `mul_relin` | none (no rescale) | `ct_mult`, `keyswitch_full` |
//! | `mul_sum_relin` of `n` pairs | none (no rescale) | `ct_mult` × n, `keyswitch_full` × 1 |
//! | `mul_sum_relin_rescale` of `n` pairs | −1 | `ct_mult` × n, `keyswitch_full` × 1, `rescales` |
//! | `mul_plain` | none | `pt_mult` |
//! | `mul_const` | none | `const_mult` |
//! | `rescale` | −1 | `rescales` |
//! | `rotate` | — | `rotations`, `keyswitch_full` (none for a rotation by a multiple of N/2) |
//! | `rotate_hoisted` | — | per rotation: `rotations`, `keyswitch_hoisted` |
//! | `conjugate` | — | `conjugations`, `keyswitch_full` |
//!
//! Operands of `add`/`sub` must agree in level, scale (relative tolerance
//! [`hetal_ckks::SCALE_TOLERANCE`]) and slot count; products need equal levels. Both backends
//! return the same [`CkksError`] variants on a mismatch.

use hetal_ckks::{Ciphertext, CkksError, OpCounts};
use num_complex::Complex64;

use crate::error::MlError;

/// Metadata every ciphertext-like value carries.
pub trait Leveled {
    /// The level (number of primes − 1).
    fn level(&self) -> usize;
    /// The scale Δ the message is multiplied by.
    fn scale(&self) -> f64;
    /// The number of slots.
    fn slots(&self) -> usize;
}

impl Leveled for Ciphertext {
    fn level(&self) -> usize {
        Ciphertext::level(self)
    }

    fn scale(&self) -> f64 {
        Ciphertext::scale(self)
    }

    fn slots(&self) -> usize {
        Ciphertext::slots(self)
    }
}

/// The homomorphic operations HETAL's algorithms use (server side, no secret key).
///
/// All operations allocate their result except the `_assign` forms. See the module doc for
/// levels and counters. Backends are shared between threads: an algorithm may run independent
/// outputs in parallel (the counters are totals either way).
pub trait CkksOps: Sync {
    /// The ciphertext type.
    type Ct: Clone + Leveled + Send + Sync;
    /// An encoded plaintext multiplier (see [`CkksOps::encode_plain`]).
    type Pt: Send + Sync;

    /// `a + b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    fn add(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct, CkksError>;

    /// `a += b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    fn add_assign(&self, a: &mut Self::Ct, b: &Self::Ct) -> Result<(), CkksError>;

    /// `a − b`.
    ///
    /// # Errors
    /// Level, scale or slot mismatch.
    fn sub(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct, CkksError>;

    /// `−a`.
    ///
    /// # Errors
    /// A foreign ciphertext.
    fn neg(&self, a: &Self::Ct) -> Result<Self::Ct, CkksError>;

    /// `a · b` with relinearization, without rescaling: the scale is the product.
    ///
    /// # Errors
    /// Level or slot mismatch; a missing relinearization key.
    fn mul_relin(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct, CkksError>;

    /// `Σ_i a_i ⊙ b_i` with one relinearization for the whole sum (no rescale): `n` ct×ct
    /// mults, one full key switch.
    ///
    /// # Errors
    /// An empty list; level, scale or slot mismatch; a missing relinearization key.
    fn mul_sum_relin(&self, pairs: &[(&Self::Ct, &Self::Ct)]) -> Result<Self::Ct, CkksError>;

    /// [`CkksOps::mul_sum_relin`] then [`CkksOps::rescale`], counted as both. The CKKS
    /// backend folds the rescale into the relinearization (one division by `q_level·P`).
    ///
    /// # Errors
    /// As the two ops.
    fn mul_sum_relin_rescale(
        &self,
        pairs: &[(&Self::Ct, &Self::Ct)],
    ) -> Result<Self::Ct, CkksError> {
        let mut p = self.mul_sum_relin(pairs)?;
        self.rescale_assign(&mut p)?;
        Ok(p)
    }

    /// Encodes a slot vector as a multiplier for ciphertexts at `level`: its scale is the top
    /// prime `q_level`, so that [`CkksOps::mul_plain`] followed by [`CkksOps::rescale`] gives
    /// back the ciphertext's scale (to floating-point rounding). `values.len()` is the slot
    /// count.
    ///
    /// # Errors
    /// A bad slot count, a non-finite value, or a level above the top.
    fn encode_plain(&self, values: &[Complex64], level: usize) -> Result<Self::Pt, CkksError>;

    /// `a ⊙ p` slot-wise, without rescaling.
    ///
    /// # Errors
    /// Level or slot mismatch.
    fn mul_plain(&self, a: &Self::Ct, p: &Self::Pt) -> Result<Self::Ct, CkksError>;

    /// `a · c` in every slot, without rescaling; the constant is scaled by `q_level`, so the
    /// next rescale restores `a`'s scale.
    ///
    /// # Errors
    /// A non-finite constant.
    fn mul_const(&self, a: &Self::Ct, c: Complex64) -> Result<Self::Ct, CkksError>;

    /// `a · c` in every slot with the constant encoded at `const_scale`, without rescaling: the
    /// scale becomes `a.scale()·const_scale`. With `const_scale = target·q_level/a.scale()` the
    /// next rescale lands exactly on `target`.
    ///
    /// # Errors
    /// A non-finite or out-of-range constant.
    fn mul_const_with_scale(
        &self,
        a: &Self::Ct,
        c: Complex64,
        const_scale: f64,
    ) -> Result<Self::Ct, CkksError>;

    /// `a + c` in every slot.
    ///
    /// # Errors
    /// A constant out of range for the scale.
    fn add_const(&self, a: &Self::Ct, c: Complex64) -> Result<Self::Ct, CkksError>;

    /// `a · i`, or `a · (−i)` when `negative`: free (no level, no key, not counted).
    ///
    /// # Errors
    /// A foreign ciphertext.
    fn mul_i(&self, a: &Self::Ct, negative: bool) -> Result<Self::Ct, CkksError>;

    /// Divides by the top prime: one level down.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] at level 0.
    fn rescale(&self, a: &Self::Ct) -> Result<Self::Ct, CkksError>;

    /// In-place [`CkksOps::rescale`].
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] at level 0.
    fn rescale_assign(&self, a: &mut Self::Ct) -> Result<(), CkksError>;

    /// Drops to `level` without dividing (value and scale unchanged).
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] if `level` is above the current one.
    fn drop_to_level(&self, a: &Self::Ct, level: usize) -> Result<Self::Ct, CkksError>;

    /// Rotates the slots left by `k` (right for negative `k`), cyclically.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when the key for `k` is missing.
    fn rotate(&self, a: &Self::Ct, k: i64) -> Result<Self::Ct, CkksError>;

    /// Rotates by each of `ks`, sharing one decomposition (hoisting).
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when a key is missing.
    fn rotate_hoisted(&self, a: &Self::Ct, ks: &[i64]) -> Result<Vec<Self::Ct>, CkksError>;

    /// Complex conjugation of every slot.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] when the conjugation key is missing.
    fn conjugate(&self, a: &Self::Ct) -> Result<Self::Ct, CkksError>;

    /// Operation counts since creation or the last [`CkksOps::reset_counts`].
    fn counts(&self) -> OpCounts;

    /// Zeroes the counters.
    fn reset_counts(&self);
}

/// Bootstrapping: the one operation that gives levels back.
///
/// A bootstrapped ciphertext is at [`Bootstrap::refreshed_level`] with the input's scale. The
/// circuit refreshes messages whose slots (real and imaginary parts) are at most
/// `bound·Δ/scale` in magnitude, with `Δ` the default scale and `bound` the circuit's message
/// bound: a value of magnitude up to `B` is bootstrapped at a scale of at most `bound·Δ/B`,
/// at an absolute precision of about `B` times the circuit's. The real circuit cannot check
/// this on ciphertexts; the simulator does, so a simulated run proves the bounds of the
/// encrypted one. Bootstrapping's own operations are counted by the real backend (they are
/// evaluator operations) but not by the simulator: compare counts between backends on
/// bootstrap-free runs, and bootstraps with [`Bootstrap::bootstraps`].
pub trait Bootstrap: CkksOps {
    /// The level of a bootstrapped ciphertext, `None` when the backend has no bootstrapping.
    fn refreshed_level(&self) -> Option<usize>;

    /// Bootstraps `a`.
    ///
    /// # Errors
    /// No bootstrapping configured; a wrong slot count; (simulator) a value out of bounds.
    fn bootstrap(&self, a: &Self::Ct) -> Result<Self::Ct, MlError>;

    /// Bootstraps two real-valued ciphertexts of the same level and scale for the price of one
    /// (packed as `a + i·b`).
    ///
    /// # Errors
    /// As [`Bootstrap::bootstrap`]; level or scale mismatch; (simulator) non-real values.
    fn bootstrap_pair(&self, a: &Self::Ct, b: &Self::Ct) -> Result<(Self::Ct, Self::Ct), MlError> {
        self.bootstrap_pair_to(a, b, a.scale())
    }

    /// [`Bootstrap::bootstrap_pair`] with both outputs at the scale `out_scale`, their values
    /// kept (the change of scale is free inside the circuit): values too large for the
    /// circuit's bound at their natural scale go in at a lower one and come back at it.
    ///
    /// # Errors
    /// As [`Bootstrap::bootstrap_pair`]; a non-finite or non-positive scale.
    fn bootstrap_pair_to(
        &self,
        a: &Self::Ct,
        b: &Self::Ct,
        out_scale: f64,
    ) -> Result<(Self::Ct, Self::Ct), MlError>;

    /// Bootstrapping circuits run since creation (a pair counts once).
    fn bootstraps(&self) -> u64;

    /// Wall-clock seconds spent bootstrapping since creation (0 where nothing is computed:
    /// the simulator).
    fn bootstrap_seconds(&self) -> f64 {
        0.0
    }
}

/// The level planner's one rule: before a stage that consumes `need` levels, every value it
/// reads must hold `need` levels. If any of `cts` has fewer, those are bootstrapped (two at a
/// time when they share a scale, as real values); then all are brought to the lowest level
/// among them, so that the stage sees operands of one level. Values with enough levels are
/// never bootstrapped, so a run bootstraps exactly where its depth runs out.
///
/// # Errors
/// [`MlError::NotEnoughLevels`] when a value is short and the backend cannot bootstrap, or
/// when `need` exceeds what a bootstrap gives; errors of [`Bootstrap`].
pub fn ensure_levels<O: Bootstrap>(
    ops: &O,
    cts: Vec<O::Ct>,
    need: usize,
    operand: &'static str,
) -> Result<Vec<O::Ct>, MlError> {
    let cts = ensure_each(ops, cts.into_iter().map(|c| (c, need)).collect(), operand)?;
    let low = cts.iter().map(Leveled::level).min().unwrap_or(0);
    cts.iter().map(|c| Ok(ops.drop_to_level(c, low)?)).collect()
}

/// [`ensure_levels`] with a need per value (`(value, need)` pairs) and no levelling
/// afterwards: each value below its own need is bootstrapped, two at a time when they share a
/// scale, so that values bound for different stages can share a bootstrap (the trainer
/// refreshes the momentum with the softmax errors this way).
///
/// # Errors
/// As [`ensure_levels`].
pub fn ensure_each<O: Bootstrap>(
    ops: &O,
    items: Vec<(O::Ct, usize)>,
    operand: &'static str,
) -> Result<Vec<O::Ct>, MlError> {
    // Name the operand in the simulator's out-of-bound errors.
    let named = |e: MlError| match e {
        MlError::BootstrapRange {
            value, limit, real, ..
        } => MlError::BootstrapRange {
            operand,
            value,
            limit,
            real,
        },
        e => e,
    };
    let short: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (c, n))| c.level() < *n)
        .map(|(i, _)| i)
        .collect();
    let worst = short
        .iter()
        .filter_map(|&i| items.get(i))
        .max_by_key(|(_, n)| *n);
    if let Some((c, need)) = worst {
        match ops.refreshed_level() {
            Some(l) if l >= *need => {}
            _ => {
                return Err(MlError::NotEnoughLevels {
                    operand,
                    have: c.level(),
                    need: *need,
                })
            }
        }
    }
    let mut cts: Vec<O::Ct> = items.into_iter().map(|(c, _)| c).collect();
    let mut pending = short.into_iter().peekable();
    while let Some(i) = pending.next() {
        let a = cts.get(i).ok_or(MlError::Empty)?.clone();
        let partner = pending.next_if(|&j| {
            cts.get(j).is_some_and(|b| {
                (b.scale() - a.scale()).abs() <= hetal_ckks::SCALE_TOLERANCE * a.scale().abs()
            })
        });
        match partner {
            Some(j) => {
                let b = cts.get(j).ok_or(MlError::Empty)?;
                let level = a.level().min(b.level());
                let (x, y) = ops
                    .bootstrap_pair(
                        &ops.drop_to_level(&a, level)?,
                        &ops.drop_to_level(b, level)?,
                    )
                    .map_err(named)?;
                set(&mut cts, i, x)?;
                set(&mut cts, j, y)?;
            }
            None => {
                let x = ops.bootstrap(&a).map_err(named)?;
                set(&mut cts, i, x)?;
            }
        }
    }
    Ok(cts)
}

fn set<T>(v: &mut [T], i: usize, x: T) -> Result<(), MlError> {
    *v.get_mut(i).ok_or(MlError::Empty)? = x;
    Ok(())
}

/// The client side: encrypts and decrypts slot vectors.
pub trait SlotClient {
    /// The ciphertext type.
    type Ct;

    /// Encrypts `values` (their length is the slot count) at `level` and the default scale.
    ///
    /// # Errors
    /// A bad slot count, a non-finite value, or a level above the top.
    fn encrypt(&mut self, values: &[Complex64], level: usize) -> Result<Self::Ct, CkksError> {
        let scale = self.default_scale();
        self.encrypt_scaled(values, level, scale)
    }

    /// Encrypts `values` at `level` and `scale`.
    ///
    /// # Errors
    /// A bad slot count, a non-finite value, a level above the top, or a scale out of range.
    fn encrypt_scaled(
        &mut self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<Self::Ct, CkksError>;

    /// The scale of [`SlotClient::encrypt`].
    fn default_scale(&self) -> f64;

    /// Decrypts to the slot values.
    ///
    /// # Errors
    /// A foreign ciphertext.
    fn decrypt(&self, ct: &Self::Ct) -> Result<Vec<Complex64>, CkksError>;

    /// The level of a fresh ciphertext.
    fn max_level(&self) -> usize;
}

/// `after − before`, counter by counter (saturating at 0).
pub fn counts_delta(after: &OpCounts, before: &OpCounts) -> OpCounts {
    OpCounts {
        ct_mult: after.ct_mult.saturating_sub(before.ct_mult),
        pt_mult: after.pt_mult.saturating_sub(before.pt_mult),
        const_mult: after.const_mult.saturating_sub(before.const_mult),
        rotations: after.rotations.saturating_sub(before.rotations),
        keyswitch_full: after.keyswitch_full.saturating_sub(before.keyswitch_full),
        keyswitch_hoisted: after
            .keyswitch_hoisted
            .saturating_sub(before.keyswitch_hoisted),
        rescales: after.rescales.saturating_sub(before.rescales),
        conjugations: after.conjugations.saturating_sub(before.conjugations),
    }
}
