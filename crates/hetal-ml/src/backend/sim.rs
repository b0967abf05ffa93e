//! The slot-level simulator: exact complex slot vectors with CKKS bookkeeping.
//!
//! A [`SimCt`] is the message itself (`slots` complex `f64` values, no noise, no scaling) with
//! the level and scale a real ciphertext would have. Every operation checks its operands as
//! [`hetal_ckks::Evaluator`] does (returning the same [`CkksError`] variants), moves level and
//! scale as the evaluator does (a rescale divides the scale by the simulated prime `q_level`
//! and costs one level), and increments the same [`OpCounts`] counters. Rotations are cyclic
//! shifts, conjugation is slot-wise, and nothing needs a key, so an algorithm runs at full size
//! (N = 2^16) in well under a second and reports its exact operation counts, depth, and every
//! rotation it needs a key for ([`SlotSim::rotations_used`]).
//!
//! What it does not model: noise and precision (results are exact up to `f64` rounding), key
//! availability (any rotation succeeds), and running time.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use hetal_ckks::{CkksError, OpCounts, Params, SCALE_TOLERANCE};
use num_complex::Complex64;

use crate::error::MlError;
use crate::ops::{Bootstrap, CkksOps, Leveled, SlotClient};

/// A simulated ciphertext: the exact slot values, with level and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct SimCt {
    values: Vec<Complex64>,
    level: usize,
    scale: f64,
}

impl SimCt {
    /// The slot values (exact; what decryption would give without noise).
    pub fn values(&self) -> &[Complex64] {
        &self.values
    }
}

impl Leveled for SimCt {
    fn level(&self) -> usize {
        self.level
    }

    fn scale(&self) -> f64 {
        self.scale
    }

    fn slots(&self) -> usize {
        self.values.len()
    }
}

/// A simulated plaintext multiplier (see [`CkksOps::encode_plain`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SimPt {
    values: Vec<Complex64>,
    level: usize,
    scale: f64,
}

#[derive(Default)]
struct SimState {
    counts: OpCounts,
    rotations: BTreeSet<i64>,
    conjugation: bool,
    bootstraps: u64,
}

/// What a simulated bootstrap does: the level it returns to, and the circuit's message bound.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SimBoot {
    level: usize,
    bound: f64,
}

/// The simulator backend; also a [`SlotClient`] (encryption is the identity).
pub struct SlotSim {
    /// Simulated primes `q_0 ..= q_L` as floats.
    moduli: Vec<f64>,
    default_scale: f64,
    /// `N/2`: a rotation by a multiple of it is the identity and, as in the evaluator, free.
    max_slots: usize,
    boot: Option<SimBoot>,
    state: Mutex<SimState>,
}

impl SlotSim {
    /// A simulator whose primes are those of `params`: levels and scales evolve exactly as
    /// with the real evaluator.
    pub fn from_params(params: &Params) -> Self {
        let moduli = params
            .q_primes(params.max_level())
            .iter()
            .map(|q| q.value() as f64)
            .collect();
        Self::with_moduli(params.max_slots(), moduli, params.default_scale())
    }

    /// A simulator with `max_level` levels whose primes are all exactly `2^log_scale`, fresh
    /// ciphertexts at scale `2^log_scale`, and `N/2 = max_slots`. Needs no parameter set: for
    /// counting at full size (e.g. HETAL's N = 2^16, level 12, scale 2^42).
    pub fn uniform(max_slots: usize, max_level: usize, log_scale: u32) -> Self {
        let q = f64::from(log_scale).exp2();
        Self::with_moduli(max_slots, vec![q; max_level + 1], q)
    }

    /// A simulator with the given primes `q_0 ..= q_L` (as floats) and fresh scale.
    pub fn with_moduli(max_slots: usize, moduli: Vec<f64>, default_scale: f64) -> Self {
        Self {
            moduli,
            default_scale,
            max_slots: max_slots.max(1),
            boot: None,
            state: Mutex::new(SimState::default()),
        }
    }

    /// Adds bootstrapping: a bootstrap returns to `level` and accepts slots of magnitude up to
    /// `bound·Δ/scale` (see [`Bootstrap`]); out-of-bound or, for pairs, non-real values are
    /// errors, which is what makes a simulated run a proof of the encrypted run's bounds.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] for a level above the top; a non-positive bound.
    pub fn with_bootstrapping(mut self, level: usize, bound: f64) -> Result<Self, CkksError> {
        self.check_level(level)?;
        if !(bound.is_finite() && bound > 0.0) {
            return Err(CkksError::InvalidParams(format!(
                "bootstrap bound {bound} must be positive"
            )));
        }
        self.boot = Some(SimBoot { level, bound });
        Ok(self)
    }

    /// The configured bootstrapping, or an error.
    fn boot(&self) -> Result<SimBoot, MlError> {
        self.boot.ok_or(MlError::NotEnoughLevels {
            operand: "bootstrapping (not configured on this simulator)",
            have: 0,
            need: 1,
        })
    }

    /// Checks that every real and imaginary part of `a` (only real parts when `real`, and
    /// then imaginary parts must vanish) is within the bootstrap bound at `a`'s scale.
    fn check_bootable(&self, a: &SimCt, boot: SimBoot, real: bool) -> Result<(), MlError> {
        self.check_ct(a)?;
        let limit = boot.bound * self.default_scale / a.scale;
        // Imaginary parts of "real" values: f64 rounding of the algorithms' conjugation tricks
        // leaves ~1e-16 relative; anything visible would corrupt the partner of a pair.
        let imag_limit = if real { 1e-9 * limit } else { limit };
        let worst = a
            .values
            .iter()
            .map(|v| (v.re.abs() / limit).max(v.im.abs() / imag_limit))
            .fold(0.0, f64::max);
        if worst.is_nan() || worst > 1.0 {
            let value = a
                .values
                .iter()
                .map(|v| v.re.abs().max(v.im.abs()))
                .fold(0.0, f64::max);
            return Err(MlError::BootstrapRange {
                operand: "a ciphertext",
                value,
                limit,
                real,
            });
        }
        Ok(())
    }

    fn refreshed(&self, a: &SimCt, boot: SimBoot, values: Vec<Complex64>) -> SimCt {
        SimCt {
            values,
            level: boot.level,
            scale: a.scale,
        }
    }

    /// A simulated ciphertext holding `values` at `level` and `scale`.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] for a level above the top; [`CkksError::BadSlots`] if
    /// the length is not a power of two ≤ N/2.
    pub fn ciphertext(
        &self,
        values: Vec<Complex64>,
        level: usize,
        scale: f64,
    ) -> Result<SimCt, CkksError> {
        self.check_level(level)?;
        if !values.len().is_power_of_two() || values.len() > self.max_slots {
            return Err(CkksError::BadSlots {
                slots: values.len(),
                n: 2 * self.max_slots,
                len: values.len(),
            });
        }
        Ok(SimCt {
            values,
            level,
            scale,
        })
    }

    /// A simulated plaintext multiplier holding `values` for ciphertexts at `level`, at `scale`.
    ///
    /// # Errors
    /// [`CkksError::BadSlots`] for a bad slot count, [`CkksError::Encode`] for a non-finite
    /// value, [`CkksError::NotEnoughLevels`] for a level above the top, a bad scale.
    pub(crate) fn plaintext(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<SimPt, CkksError> {
        self.check_level(level)?;
        // As the encoder: a scale it would refuse must not pass in the twin.
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(CkksError::Encode {
                slot: 0,
                reason: format!("scale {scale} must be finite and ≥ 1"),
            });
        }
        if !values.len().is_power_of_two() || values.len() > self.max_slots {
            return Err(CkksError::BadSlots {
                slots: values.len(),
                n: 2 * self.max_slots,
                len: values.len(),
            });
        }
        if let Some(slot) = values
            .iter()
            .position(|v| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(CkksError::Encode {
                slot,
                reason: "value is not finite".into(),
            });
        }
        Ok(SimPt {
            values: values.to_vec(),
            level,
            scale,
        })
    }

    /// `N/2`: the most slots a ciphertext holds.
    pub fn max_slots(&self) -> usize {
        self.max_slots
    }

    /// The top level.
    pub fn max_level(&self) -> usize {
        self.moduli.len().saturating_sub(1)
    }

    /// Every rotation amount used since creation or the last [`CkksOps::reset_counts`]
    /// (as passed, not reduced), sorted: the Galois keys the real run needs.
    pub fn rotations_used(&self) -> Vec<i64> {
        self.lock().rotations.iter().copied().collect()
    }

    /// Whether a conjugation was used (the real run then needs the conjugation key).
    pub fn conjugation_used(&self) -> bool {
        self.lock().conjugation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, f: impl FnOnce(&mut SimState)) {
        f(&mut self.lock());
    }

    fn check_level(&self, level: usize) -> Result<(), CkksError> {
        if level > self.max_level() {
            return Err(CkksError::NotEnoughLevels {
                have: self.max_level(),
                need: level,
            });
        }
        Ok(())
    }

    fn top_prime(&self, level: usize) -> Result<f64, CkksError> {
        self.check_level(level)?;
        self.moduli
            .get(level)
            .copied()
            .ok_or(CkksError::ParamsMismatch)
    }

    fn check_ct(&self, a: &SimCt) -> Result<(), CkksError> {
        if a.level > self.max_level() || a.values.len() > self.max_slots {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(())
    }

    /// Operands of a slot-wise product: one level, one slot count (scales may differ).
    fn check_aligned(
        (a_level, a_slots): (usize, usize),
        (b_level, b_slots): (usize, usize),
    ) -> Result<(), CkksError> {
        if a_level != b_level {
            return Err(CkksError::LevelMismatch {
                lhs: a_level,
                rhs: b_level,
            });
        }
        Self::check_slots(a_slots, b_slots)
    }

    fn check_pair(a: &SimCt, b: &SimCt) -> Result<(), CkksError> {
        Self::check_aligned((a.level, a.values.len()), (b.level, b.values.len()))?;
        if (a.scale - b.scale).abs() > SCALE_TOLERANCE * a.scale.abs().max(b.scale.abs()) {
            return Err(CkksError::ScaleMismatch {
                lhs_log2: a.scale.log2(),
                rhs_log2: b.scale.log2(),
            });
        }
        Ok(())
    }

    fn check_slots(a: usize, b: usize) -> Result<(), CkksError> {
        if a != b {
            return Err(CkksError::SlotMismatch { lhs: a, rhs: b });
        }
        Ok(())
    }

    fn check_finite(c: Complex64, scale: f64) -> Result<(), CkksError> {
        let (re, im) = ((c.re * scale).round(), (c.im * scale).round());
        if !(re.is_finite() && im.is_finite()) || re.abs() >= 1.7e38 || im.abs() >= 1.7e38 {
            return Err(CkksError::Encode {
                slot: 0,
                reason: format!("constant {c} times scale {scale} is out of range"),
            });
        }
        Ok(())
    }

    fn map(a: &SimCt, f: impl Fn(Complex64) -> Complex64) -> SimCt {
        SimCt {
            values: a.values.iter().map(|&x| f(x)).collect(),
            level: a.level,
            scale: a.scale,
        }
    }

    fn zip_assign(a: &mut SimCt, b: &SimCt, f: impl Fn(&mut Complex64, Complex64)) {
        a.values
            .iter_mut()
            .zip(&b.values)
            .for_each(|(x, &y)| f(x, y));
    }

    /// Whether a rotation by `k` is the identity for the evaluator (Galois element 1).
    fn is_identity(&self, k: i64) -> bool {
        k.rem_euclid(self.max_slots as i64) == 0
    }

    fn rotated(a: &SimCt, k: i64) -> SimCt {
        let n = a.values.len();
        let shift = k.rem_euclid(n.max(1) as i64) as usize;
        SimCt {
            values: a
                .values
                .iter()
                .cycle()
                .skip(shift)
                .take(n)
                .copied()
                .collect(),
            level: a.level,
            scale: a.scale,
        }
    }
}

impl CkksOps for SlotSim {
    type Ct = SimCt;
    type Pt = SimPt;

    fn add(&self, a: &SimCt, b: &SimCt) -> Result<SimCt, CkksError> {
        let mut out = a.clone();
        self.add_assign(&mut out, b)?;
        Ok(out)
    }

    fn add_assign(&self, a: &mut SimCt, b: &SimCt) -> Result<(), CkksError> {
        self.check_ct(a)?;
        self.check_ct(b)?;
        Self::check_pair(a, b)?;
        Self::zip_assign(a, b, |x, y| *x += y);
        Ok(())
    }

    fn sub(&self, a: &SimCt, b: &SimCt) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        self.check_ct(b)?;
        Self::check_pair(a, b)?;
        let mut out = a.clone();
        Self::zip_assign(&mut out, b, |x, y| *x -= y);
        Ok(out)
    }

    fn neg(&self, a: &SimCt) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        Ok(Self::map(a, |x| -x))
    }

    fn mul_relin(&self, a: &SimCt, b: &SimCt) -> Result<SimCt, CkksError> {
        self.mul_sum_relin(&[(a, b)])
    }

    fn mul_sum_relin(&self, pairs: &[(&SimCt, &SimCt)]) -> Result<SimCt, CkksError> {
        let product = |&(x, y): &(&SimCt, &SimCt)| -> Result<SimCt, CkksError> {
            self.check_ct(x)?;
            self.check_ct(y)?;
            Self::check_aligned((x.level, x.values.len()), (y.level, y.values.len()))?;
            let mut p = x.clone();
            Self::zip_assign(&mut p, y, |u, v| *u *= v);
            p.scale = x.scale * y.scale;
            Ok(p)
        };
        let (first, rest) = pairs
            .split_first()
            .ok_or(CkksError::NoOperands("a sum of products"))?;
        let mut acc = product(first)?;
        for pair in rest {
            let p = product(pair)?;
            Self::check_pair(&acc, &p)?;
            Self::zip_assign(&mut acc, &p, |u, v| *u += v);
        }
        self.count(|s| {
            s.counts.ct_mult += pairs.len() as u64;
            s.counts.keyswitch_full += 1;
        });
        Ok(acc)
    }

    fn encode_plain(&self, values: &[Complex64], level: usize) -> Result<SimPt, CkksError> {
        self.plaintext(values, level, self.top_prime(level)?)
    }

    fn mul_plain(&self, a: &SimCt, p: &SimPt) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        Self::check_aligned((a.level, a.values.len()), (p.level, p.values.len()))?;
        let mut out = a.clone();
        out.values
            .iter_mut()
            .zip(&p.values)
            .for_each(|(x, &y)| *x *= y);
        out.scale *= p.scale;
        self.count(|s| s.counts.pt_mult += 1);
        Ok(out)
    }

    fn mul_const(&self, a: &SimCt, c: Complex64) -> Result<SimCt, CkksError> {
        let q = self.top_prime(a.level)?;
        self.mul_const_with_scale(a, c, q)
    }

    fn mul_const_with_scale(
        &self,
        a: &SimCt,
        c: Complex64,
        const_scale: f64,
    ) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        Self::check_finite(c, const_scale)?;
        let mut out = Self::map(a, |x| x * c);
        out.scale *= const_scale;
        self.count(|s| s.counts.const_mult += 1);
        Ok(out)
    }

    fn add_const(&self, a: &SimCt, c: Complex64) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        Self::check_finite(c, a.scale)?;
        Ok(Self::map(a, |x| x + c))
    }

    fn mul_i(&self, a: &SimCt, negative: bool) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        let i = Complex64::new(0.0, if negative { -1.0 } else { 1.0 });
        Ok(Self::map(a, |x| x * i))
    }

    fn rescale(&self, a: &SimCt) -> Result<SimCt, CkksError> {
        let mut out = a.clone();
        self.rescale_assign(&mut out)?;
        Ok(out)
    }

    fn rescale_assign(&self, a: &mut SimCt) -> Result<(), CkksError> {
        self.check_ct(a)?;
        if a.level == 0 {
            return Err(CkksError::NotEnoughLevels { have: 0, need: 1 });
        }
        a.scale /= self.top_prime(a.level)?;
        a.level -= 1;
        self.count(|s| s.counts.rescales += 1);
        Ok(())
    }

    fn drop_to_level(&self, a: &SimCt, level: usize) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        if level > a.level {
            return Err(CkksError::NotEnoughLevels {
                have: a.level,
                need: level,
            });
        }
        let mut out = a.clone();
        out.level = level;
        Ok(out)
    }

    fn rotate(&self, a: &SimCt, k: i64) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        if self.is_identity(k) {
            return Ok(a.clone());
        }
        self.count(|s| {
            s.counts.rotations += 1;
            s.counts.keyswitch_full += 1;
            s.rotations.insert(k);
        });
        Ok(Self::rotated(a, k))
    }

    fn rotate_hoisted(&self, a: &SimCt, ks: &[i64]) -> Result<Vec<SimCt>, CkksError> {
        self.check_ct(a)?;
        let mut out = Vec::with_capacity(ks.len());
        for &k in ks {
            if self.is_identity(k) {
                out.push(a.clone());
            } else {
                self.count(|s| {
                    s.counts.rotations += 1;
                    s.counts.keyswitch_hoisted += 1;
                    s.rotations.insert(k);
                });
                out.push(Self::rotated(a, k));
            }
        }
        Ok(out)
    }

    fn conjugate(&self, a: &SimCt) -> Result<SimCt, CkksError> {
        self.check_ct(a)?;
        self.count(|s| {
            s.counts.conjugations += 1;
            s.counts.keyswitch_full += 1;
            s.conjugation = true;
        });
        Ok(Self::map(a, |x| x.conj()))
    }

    fn counts(&self) -> OpCounts {
        self.lock().counts
    }

    fn reset_counts(&self) {
        *self.lock() = SimState::default();
    }
}

impl Bootstrap for SlotSim {
    fn refreshed_level(&self) -> Option<usize> {
        self.boot.map(|b| b.level)
    }

    fn bootstrap(&self, a: &SimCt) -> Result<SimCt, MlError> {
        let boot = self.boot()?;
        self.check_bootable(a, boot, false)?;
        self.count(|s| s.bootstraps += 1);
        Ok(self.refreshed(a, boot, a.values.clone()))
    }

    fn bootstrap_pair_to(
        &self,
        a: &SimCt,
        b: &SimCt,
        out_scale: f64,
    ) -> Result<(SimCt, SimCt), MlError> {
        if !(out_scale.is_finite() && out_scale > 0.0) {
            return Err(
                CkksError::InvalidParams(format!("bootstrapping to scale {out_scale}")).into(),
            );
        }
        let boot = self.boot()?;
        Self::check_pair(a, b)?;
        self.check_bootable(a, boot, true)?;
        self.check_bootable(b, boot, true)?;
        self.count(|s| s.bootstraps += 1);
        // As the real circuit: z = a + i·b; the outputs are Re z and Im z.
        let z: Vec<Complex64> = a
            .values
            .iter()
            .zip(&b.values)
            .map(|(&x, &y)| x + Complex64::i() * y)
            .collect();
        let re = z.iter().map(|v| Complex64::new(v.re, 0.0)).collect();
        let im = z.iter().map(|v| Complex64::new(v.im, 0.0)).collect();
        let at = |mut c: SimCt| {
            c.scale = out_scale;
            c
        };
        Ok((
            at(self.refreshed(a, boot, re)),
            at(self.refreshed(b, boot, im)),
        ))
    }

    fn bootstraps(&self) -> u64 {
        self.lock().bootstraps
    }
}

impl SlotClient for SlotSim {
    type Ct = SimCt;

    fn encrypt_scaled(
        &mut self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<SimCt, CkksError> {
        // As the encoder: a scale it would refuse must not pass in the twin.
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(CkksError::Encode {
                slot: 0,
                reason: format!("scale {scale} must be finite and ≥ 1"),
            });
        }
        for &v in values {
            Self::check_finite(v, scale)?;
        }
        self.ciphertext(values.to_vec(), level, scale)
    }

    fn default_scale(&self) -> f64 {
        self.default_scale
    }

    fn decrypt(&self, ct: &SimCt) -> Result<Vec<Complex64>, CkksError> {
        self.check_ct(ct)?;
        Ok(ct.values.clone())
    }

    fn max_level(&self) -> usize {
        SlotSim::max_level(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(re: f64) -> Complex64 {
        Complex64::new(re, 0.0)
    }

    #[test]
    fn rotations_are_cyclic_and_counted() {
        let sim = SlotSim::uniform(4, 3, 40);
        let a = sim
            .ciphertext((0..4).map(|x| c(x as f64)).collect(), 3, 1.0)
            .unwrap();
        let r = sim.rotate(&a, 1).unwrap();
        assert_eq!(r.values(), &[c(1.0), c(2.0), c(3.0), c(0.0)]);
        let r = sim.rotate(&a, -1).unwrap();
        assert_eq!(r.values(), &[c(3.0), c(0.0), c(1.0), c(2.0)]);
        let same = sim.rotate(&a, 4).unwrap();
        assert_eq!(same, a);
        let h = sim.rotate_hoisted(&a, &[0, 2]).unwrap();
        assert_eq!(h[1].values(), &[c(2.0), c(3.0), c(0.0), c(1.0)]);
        let k = sim.counts();
        assert_eq!(
            (k.rotations, k.keyswitch_full, k.keyswitch_hoisted),
            (3, 2, 1)
        );
        assert_eq!(sim.rotations_used(), vec![-1, 1, 2]);
    }

    #[test]
    fn levels_and_scales_follow_the_evaluator() {
        let sim = SlotSim::with_moduli(2, vec![7.0, 3.0, 5.0], 4.0);
        let a = sim.ciphertext(vec![c(1.0), c(2.0)], 2, 4.0).unwrap();
        let b = sim.ciphertext(vec![c(3.0), c(4.0)], 1, 4.0).unwrap();
        assert!(matches!(
            sim.add(&a, &b),
            Err(CkksError::LevelMismatch { lhs: 2, rhs: 1 })
        ));
        let p = sim.mul_relin(&a, &a).unwrap();
        assert_eq!(p.scale(), 16.0);
        let p = sim.rescale(&p).unwrap();
        assert_eq!((p.level(), p.scale()), (1, 16.0 / 5.0));
        assert!(matches!(
            sim.add(&p, &b),
            Err(CkksError::ScaleMismatch { .. })
        ));
        let m = sim.encode_plain(&[c(2.0), c(0.5)], 1).unwrap();
        let q = sim.rescale(&sim.mul_plain(&b, &m).unwrap()).unwrap();
        assert_eq!(
            (q.level(), q.scale(), q.values()),
            (0, 4.0, &[c(6.0), c(2.0)][..])
        );
        assert!(matches!(
            sim.rescale(&q),
            Err(CkksError::NotEnoughLevels { have: 0, need: 1 })
        ));
        let k = sim.counts();
        assert_eq!((k.ct_mult, k.pt_mult, k.rescales), (1, 1, 2));
    }
}
