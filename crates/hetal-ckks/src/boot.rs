//! CKKS bootstrapping: a level-0 ciphertext back to many levels.
//!
//! The circuit (Cheon–Han–Kim–Kim–Song, Eurocrypt 2018; full-RNS and BSGS refinements of
//! Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, Eurocrypt 2021):
//!
//! 1. **ModRaise** ([`Evaluator::mod_raise`]): the level-0 ciphertext, read modulo the top
//!    modulus, decrypts to `t = m + q_0·I` with `I` a small integer polynomial.
//! 2. **SubSum** (fewer than N/2 slots only): `log2(N/(2n))` rotations project `t` onto the
//!    subring of the `n` slots.
//! 3. **CoeffsToSlots**: the inverse special FFT as `cts_levels` BSGS linear transforms
//!    ([`crate::dft`], [`crate::lintrans`]), scaled so that the slots hold
//!    `t_i/(q_0·K)`; a conjugation splits the real and imaginary parts into two ciphertexts.
//! 4. **EvalMod**: `sin(2π K x)/(2π)`, a Chebyshev interpolant of degree `eval_mod_degree` on
//!    `[−1, 1]` ([`crate::poly_eval`]), which maps `t_i/q_0 = m_i/q_0 + I_i` to about
//!    `m_i/q_0`. Its error is the sine's curvature, `(2π m/q_0)²/6` relative: precision grows
//!    with `q_0/Δ`.
//! 5. **SlotsToCoeffs**: the special FFT as `stc_levels` linear transforms, scaled by
//!    `q_0/Δ`, brings back the slots `z` of the input.
//!
//! Depth: `cts_levels + ⌈log2(eval_mod_degree + 1)⌉ + stc_levels`. Keys: relinearization,
//! conjugation and the rotations of [`Bootstrapper::rotations`]. The scale of the output equals
//! that of the input.
//!
//! Not here yet: sparse-secret encapsulation is available as building blocks
//! ([`Evaluator::switch_key`], [`SecretKey::reinterpret`](crate::SecretKey::reinterpret)) but
//! not wired in; no arcsine correction; no double hoisting; real-valued pairs are not
//! bootstrapped together.

use std::collections::BTreeSet;
use std::f64::consts::PI;

use crate::dft::{self, Diagonals};
use crate::lintrans::{EncodedLinearTransform, LinearTransform};
use crate::poly_eval::{ChebyshevPoly, PolyEvaluator};
use crate::{Ciphertext, CkksError, Encoder, Evaluator, Params};

/// The choices of a bootstrapping circuit. `Default` gives full slots.
#[derive(Clone, Debug, PartialEq)]
pub struct BootParams {
    /// Number of slots bootstrapped (a power of two ≤ N/2; 0 means N/2).
    pub slots: usize,
    /// Levels of CoeffsToSlots (default 3).
    pub cts_levels: usize,
    /// Levels of SlotsToCoeffs (default 3).
    pub stc_levels: usize,
    /// Bound `K` on `|I|` in `t = m + q_0·I` (default 12: with a secret of Hamming weight 32,
    /// `I` has standard deviation about 1.7, so 12 is 7 standard deviations).
    pub k: f64,
    /// Degree of the EvalMod interpolant (default 127).
    pub eval_mod_degree: usize,
}

impl Default for BootParams {
    fn default() -> Self {
        Self {
            slots: 0,
            cts_levels: 3,
            stc_levels: 3,
            k: 12.0,
            eval_mod_degree: 127,
        }
    }
}

/// A bootstrapping circuit for one parameter set, with its linear transforms pre-encoded.
pub struct Bootstrapper {
    params: Params,
    encoder: Encoder,
    slots: usize,
    /// The scale the raised ciphertext is relabelled with before CoeffsToSlots.
    sigma: f64,
    /// The scale EvalMod works at: the prime of its first level.
    delta_em: f64,
    cts: Vec<EncodedLinearTransform>,
    stc: Vec<EncodedLinearTransform>,
    eval_mod: ChebyshevPoly,
    rotations: Vec<i64>,
}

fn scale_group(group: &mut Diagonals, factor: f64) {
    group
        .values_mut()
        .for_each(|d| d.iter_mut().for_each(|z| *z *= factor));
}

fn transforms(groups: &[Diagonals], slots: usize) -> Result<Vec<LinearTransform>, CkksError> {
    groups
        .iter()
        .map(|g| {
            LinearTransform::from_diagonals(slots, g.iter().map(|(&k, d)| (k as i64, d.clone())))
        })
        .collect()
}

impl Bootstrapper {
    /// Builds the circuit for `params`.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] for a bad slot count or degree;
    /// [`CkksError::NotEnoughLevels`] when the parameters have fewer levels than the depth.
    pub fn new(params: &Params, boot: &BootParams) -> Result<Self, CkksError> {
        let n = params.n();
        let slots = if boot.slots == 0 { n / 2 } else { boot.slots };
        if !slots.is_power_of_two() || slots > n / 2 || slots < 2 {
            return Err(CkksError::InvalidParams(format!(
                "bootstrapping slots {slots} must be a power of two in [2, N/2]"
            )));
        }
        if !(boot.k.is_finite() && boot.k >= 1.0) || boot.eval_mod_degree < 1 {
            return Err(CkksError::InvalidParams(
                "EvalMod needs K ≥ 1 and a degree ≥ 1".into(),
            ));
        }
        let eval_mod = ChebyshevPoly::interpolate(
            |x| (2.0 * PI * boot.k * x).sin() / (2.0 * PI),
            -1.0,
            1.0,
            boot.eval_mod_degree,
        );
        let depth = boot.cts_levels + eval_mod.depth() + boot.stc_levels;
        let top = params.max_level();
        if depth > top {
            return Err(CkksError::NotEnoughLevels {
                have: top,
                need: depth,
            });
        }
        let encoder = Encoder::new(params);
        let delta = params.default_scale();
        let q0 = params.q_primes(0)[0].value() as f64;
        let gap = (n / 2 / slots) as f64;

        // CoeffsToSlots. The raised ciphertext is relabelled with the scale σ = 2·q_0·K·gap, so
        // that it decodes to t(ζ)/σ and the plain inverse DFT gives t_i/(2·q_0·K·gap): the 2
        // is that of the real/imaginary split, the gap that of SubSum. No small factor is folded
        // into the diagonals (it would cost their encoding precision): the 1/slots of the DFT
        // is spread evenly over the groups, and each group's plaintext scale is q_level·ρ with
        // ρ = (Δ/σ)^{1/levels}, which brings the scale from σ down to Δ for EvalMod.
        let sigma = 2.0 * q0 * boot.k * gap;
        let mut cts_groups =
            dft::grouped(&dft::encode_stages(&encoder, slots), boot.cts_levels, slots);
        let spread = (slots as f64).powf(-1.0 / cts_groups.len() as f64);
        for (i, g) in cts_groups.iter_mut().enumerate() {
            scale_group(
                g,
                if i == 0 {
                    spread * slots as f64
                } else {
                    spread
                },
            );
        }
        // EvalMod works at the scale of its own primes, so that the powers keep their scale.
        let em_level = top - boot.cts_levels;
        let delta_em = params.q_primes(em_level)[em_level].value() as f64;
        let rho = (delta_em / sigma).powf(1.0 / cts_groups.len() as f64);
        let cts = transforms(&cts_groups, slots)?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let level = top - i;
                let q = params.q_primes(level)[level].value() as f64;
                t.encode_with(&encoder, level, t.default_baby_steps(), q * rho)
            })
            .collect::<Result<Vec<_>, _>>()?;

        // SlotsToCoeffs: from m_i/q_0 at scale Δ_em back to the slots z at scale Δ. The values
        // grow by q_0/Δ (folded into the first group) and the scale shrinks by Δ/Δ_em (spread
        // over the groups' plaintext scales).
        let mut stc_groups =
            dft::grouped(&dft::decode_stages(&encoder, slots), boot.stc_levels, slots);
        if let Some(first) = stc_groups.first_mut() {
            scale_group(first, q0 / delta);
        }
        let rho_stc = (delta / delta_em).powf(1.0 / stc_groups.len() as f64);
        let stc_top = em_level - eval_mod.depth();
        let stc = transforms(&stc_groups, slots)?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let level = stc_top - i;
                let q = params.q_primes(level)[level].value() as f64;
                t.encode_with(&encoder, level, t.default_baby_steps(), q * rho_stc)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut rotations: BTreeSet<i64> = cts
            .iter()
            .chain(&stc)
            .flat_map(|t| t.rotations_needed())
            .collect();
        rotations.extend(Evaluator::rotate_sum_rotations(slots as i64, n / 2 / slots));
        rotations.remove(&0);
        Ok(Self {
            params: params.clone(),
            encoder,
            slots,
            sigma,
            delta_em,
            cts,
            stc,
            eval_mod,
            rotations: rotations.into_iter().collect(),
        })
    }

    /// The slot rotations whose keys bootstrapping needs (it also needs the conjugation key
    /// and the relinearization key).
    pub fn rotations(&self) -> &[i64] {
        &self.rotations
    }

    /// Levels consumed: CoeffsToSlots + EvalMod + SlotsToCoeffs.
    pub fn depth(&self) -> usize {
        self.cts.len() + self.eval_mod.depth() + self.stc.len()
    }

    /// Levels left after bootstrapping.
    pub fn levels_after(&self) -> usize {
        self.params.max_level() - self.depth()
    }

    /// The number of slots bootstrapped.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bootstraps `ct` (at any level; it is first dropped to level 0). The result has
    /// [`Bootstrapper::levels_after`] levels and the input's scale.
    ///
    /// # Errors
    /// [`CkksError::SlotMismatch`] if `ct` has another slot count; missing keys; mismatched
    /// parameters.
    pub fn bootstrap(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        if ct.slots() != self.slots {
            return Err(CkksError::SlotMismatch {
                lhs: ct.slots(),
                rhs: self.slots,
            });
        }
        if eval.params() != &self.params {
            return Err(CkksError::ParamsMismatch);
        }
        let input_scale = ct.scale();
        let delta = self.params.default_scale();
        // The transforms assume the input is at scale Δ: relabelling multiplies the message by
        // input_scale/Δ, and the output label undoes it.
        let mut x = eval.drop_to_level(ct, 0)?;
        x.set_scale(delta);
        x = eval.mod_raise(&x)?;
        x.set_scale(self.sigma);
        let gap = self.params.n() / 2 / self.slots;
        if gap > 1 {
            x = eval.rotate_sum(&x, self.slots as i64, gap)?;
        }
        for t in &self.cts {
            x = t.apply(eval, &x)?;
        }
        let conj = eval.conjugate(&x)?;
        let re = eval.add(&x, &conj)?;
        let im = eval.mul_i(&eval.sub(&x, &conj)?, true)?;
        let poly = PolyEvaluator::new(eval);
        let (re, im) = rayon::join(
            || poly.evaluate_to_scale(&re, &self.eval_mod, self.delta_em),
            || poly.evaluate_to_scale(&im, &self.eval_mod, self.delta_em),
        );
        let mut y = eval.add(&re?, &eval.mul_i(&im?, false)?)?;
        for t in &self.stc {
            y = t.apply(eval, &y)?;
        }
        y.set_scale(input_scale);
        Ok(y)
    }

    /// The encoder of the parameters.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, KeyGenerator, ParamsLiteral, SecretDist};
    use num_complex::Complex64;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;
    use std::sync::Arc;

    #[test]
    fn coeffs_to_slots_puts_the_raised_coefficients_in_slots() {
        let params = Params::new_insecure(ParamsLiteral {
            secret: SecretDist::FixedWeight { h: 32 },
            ..presets::insecure_test(11, 17)
        })
        .unwrap();
        let boot = Bootstrapper::new(&params, &BootParams::default()).unwrap();
        let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(51));
        let sk = keygen.gen_secret_key();
        let eval = Evaluator::new(
            &params,
            Arc::new(keygen.gen_eval_keys(&sk, boot.rotations(), true)),
        );
        let enc = &boot.encoder;
        let mut rng = ChaCha20Rng::seed_from_u64(52);
        let slots = boot.slots;
        let z: Vec<Complex64> = (0..slots)
            .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect();
        let pt = enc.encode(&z, slots, 0, params.default_scale()).unwrap();
        let ct = sk.encrypt(&pt, &mut rng).unwrap();
        let dec = |c: &Ciphertext| enc.decode(&sk.decrypt(c).unwrap());
        let raised = eval.mod_raise(&ct).unwrap();
        // t coefficients
        let ptr = sk.decrypt(&raised).unwrap();
        let mut poly = ptr.poly.clone();
        poly.intt(params.q_primes(raised.level()));
        let coeffs = params.mixed_radix().poly_to_f64(&poly);
        let q0 = params.q_primes(0)[0].value() as f64;
        let n = params.n();
        let c: Vec<Complex64> = (0..n / 2)
            .map(|i| Complex64::new(coeffs[i], coeffs[i + n / 2]))
            .collect();
        let max_i = coeffs
            .iter()
            .map(|x| (x / q0).round().abs())
            .fold(0.0, f64::max);
        assert!(
            max_i >= 1.0 && max_i <= BootParams::default().k,
            "|I| = {max_i}"
        );
        let mut x = raised.clone();
        x.set_scale(boot.sigma);
        for t in &boot.cts {
            x = t.apply(&eval, &x).unwrap();
        }
        let got = dec(&x);
        let want: Vec<Complex64> = dft::bit_reversed(&c)
            .iter()
            .map(|v| v / boot.sigma)
            .collect();
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max);
        // Values up to 1/2, at the EvalMod scale: about 30 bits at these 40-bit primes.
        assert!(err < 1e-8, "CoeffsToSlots error {err}");
    }
}
