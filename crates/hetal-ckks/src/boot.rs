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
//!    `[−1, 1]` ([`crate::poly_eval`]), which maps `t_i/q_0 = m_i/q_0 + I_i` to
//!    `sin(2π m_i/q_0)/(2π)`, then (by default) an arcsine interpolant that undoes the sine's
//!    curvature, so that the result is `m_i/q_0` and `q_0/Δ` can stay small (the noise that
//!    SlotsToCoeffs magnifies grows with it).
//! 5. **SlotsToCoeffs**: the special FFT as `stc_levels` linear transforms, scaled by
//!    `q_0/Δ`, brings back the slots `z` of the input.
//!
//! Depth: `cts_levels + ⌈log2(eval_mod_degree + 1)⌉ + ⌈log2(arcsine_degree + 1)⌉ + stc_levels`. Keys: relinearization,
//! conjugation and the rotations of [`Bootstrapper::rotations`]. The scale of the output equals
//! that of the input.
//!
//! **Sparse-secret encapsulation** (Bossuat et al., ePrint 2022/024): with
//! `ephemeral_weight = Some(h)`, the level-0 ciphertext is first switched from the dense main
//! secret to an ephemeral secret of Hamming weight `h` in a small parameter set (`q_0` and one
//! special prime, so its modulus is far below the sparse-secret bound), raised, and switched
//! back to the main secret at the top level ([`BootKeys`]). `I` is then as small as a sparse
//! secret makes it while every key stays as secure as the main parameters.
//!
//! Not here yet: double hoisting; meta-bootstrapping.

use std::collections::BTreeSet;
use std::f64::consts::PI;

use crate::dft::{self, Diagonals};
use crate::lintrans::{EncodedLinearTransform, LinearTransform};
use crate::poly_eval::{ChebyshevPoly, PolyEvaluator};
use std::sync::Arc;

use rand::{CryptoRng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{
    Ciphertext, CkksError, Encoder, EvalKeySet, Evaluator, KeyGenerator, Params, ParamsLiteral,
    SecretDist, SecretKey, SwitchingKey,
};

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
    /// Degree of the arcsine correction after the sine (default `Some(5)`, 3 levels): with `Some(d)`,
    /// EvalMod is `arcsin(2π·v)/(2π)` of the sine's output `v`, which is exactly
    /// `m/q_0` instead of `sin(2π·m/q_0)/(2π)`, for `⌈log2(d + 1)⌉` more levels. It removes the
    /// sine's curvature error, so `q_0/Δ` can be smaller, which lowers the noise SlotsToCoeffs
    /// magnifies.
    pub arcsine_degree: Option<usize>,
    /// Bound on the magnitude of the slots (real and imaginary parts) to bootstrap (default 1).
    /// Only the arcsine correction uses it: its interpolant covers `|m/q_0| ≤ bound·Δ/q_0`.
    pub message_bound: f64,
    /// Hamming weight of the ephemeral secret of sparse-secret encapsulation (default
    /// `Some(32)`); `None` bootstraps under the main secret directly, which is only
    /// accurate when the main secret is itself sparse.
    pub ephemeral_weight: Option<usize>,
}

impl Default for BootParams {
    fn default() -> Self {
        Self {
            slots: 0,
            cts_levels: 3,
            stc_levels: 3,
            k: 12.0,
            eval_mod_degree: 127,
            arcsine_degree: Some(5),
            message_bound: 1.0,
            ephemeral_weight: Some(32),
        }
    }
}

impl BootParams {
    /// Levels the circuit consumes (what [`Bootstrapper::depth`] reports once built), without
    /// building it: CoeffsToSlots, the sine, the arcsine correction, SlotsToCoeffs.
    pub fn depth(&self) -> usize {
        self.cts_levels
            + crate::poly_eval::depth(self.eval_mod_degree)
            + self.arcsine_degree.map_or(0, crate::poly_eval::depth)
            + self.stc_levels
    }
}

/// The public keys of sparse-secret encapsulation: from the main secret to the ephemeral one
/// (in the small parameter set, at level 0) and back (in the main parameters).
#[derive(Clone, Debug, PartialEq)]
pub struct BootKeys {
    /// Main secret to ephemeral secret, over `q_0` and the ephemeral special prime.
    pub to_sparse: SwitchingKey,
    /// Ephemeral secret to main secret, over the main `Q·P`.
    pub to_dense: SwitchingKey,
}

impl BootKeys {
    /// Size of the key material in bytes.
    pub fn size_bytes(&self) -> usize {
        self.to_sparse.size_bytes() + self.to_dense.size_bytes()
    }
}

/// The small parameter set of the ephemeral secret (the main `q_0`, one 61-bit special
/// prime) with an evaluator for its one key switch.
struct Ephemeral {
    params: Params,
    eval: Evaluator,
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
    /// EvalMod as a chain of polynomials (the sine, then the optional arcsine).
    eval_mod: Vec<ChebyshevPoly>,
    rotations: Vec<i64>,
    ephemeral: Option<Ephemeral>,
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
        let q0 = params.q_primes(0)[0].value() as f64;
        let delta = params.default_scale();
        let (k, degree) = (boot.k, boot.eval_mod_degree);
        let eval_mod = match boot.arcsine_degree {
            None => vec![ChebyshevPoly::interpolate(
                |x| (2.0 * PI * k * x).sin() / (2.0 * PI),
                -1.0,
                1.0,
                degree,
            )
            .odd_part()?],
            Some(d) => {
                // The sine is scaled to [−1, 1] on the message range, so that the arcsine's
                // interpolant needs no affine map (and no level for it).
                let range = boot.message_bound * delta / q0;
                if !(range.is_finite() && range > 0.0 && 2.0 * PI * range < 0.5) {
                    return Err(CkksError::InvalidParams(format!(
                        "message bound {} is too large for q_0/Δ = {:.1}",
                        boot.message_bound,
                        q0 / delta
                    )));
                }
                // Both are odd functions: their odd parts skip the unneeded even powers.
                vec![
                    ChebyshevPoly::interpolate(
                        |x| (2.0 * PI * k * x).sin() / (2.0 * PI * range),
                        -1.0,
                        1.0,
                        degree,
                    )
                    .odd_part()?,
                    ChebyshevPoly::interpolate(
                        |y| (2.0 * PI * range * y).asin() / (2.0 * PI),
                        -1.0,
                        1.0,
                        d,
                    )
                    .odd_part()?,
                ]
            }
        };
        let eval_mod_depth: usize = eval_mod.iter().map(ChebyshevPoly::depth).sum();
        let depth = boot.cts_levels + eval_mod_depth + boot.stc_levels;
        let top = params.max_level();
        if depth > top {
            return Err(CkksError::NotEnoughLevels {
                have: top,
                need: depth,
            });
        }
        let encoder = Encoder::new(params);
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
        let stc_top = em_level - eval_mod_depth;
        let stc = transforms(&stc_groups, slots)?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let level = stc_top - i;
                let q = params.q_primes(level)[level].value() as f64;
                t.encode_with(&encoder, level, t.default_baby_steps(), q * rho_stc)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let ephemeral = match boot.ephemeral_weight {
            None => None,
            Some(h) => {
                let main = params.literal();
                let literal = ParamsLiteral {
                    log_q: vec![main.log_q[0]],
                    log_p: vec![61],
                    dnum: 1,
                    secret: SecretDist::FixedWeight { h },
                    ..main.clone()
                };
                // As secure as the main set: checked against the sparse-secret bound.
                let eph = if params.is_secure() {
                    Params::new(literal)?
                } else {
                    Params::new_insecure(literal)?
                };
                if eph.q_primes(0)[0].value() != params.q_primes(0)[0].value() {
                    return Err(CkksError::InvalidParams(
                        "the ephemeral parameters do not share q_0".into(),
                    ));
                }
                let eval = Evaluator::new(&eph, Arc::new(EvalKeySet::default()));
                Some(Ephemeral { params: eph, eval })
            }
        };
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
            ephemeral,
        })
    }

    /// Generates the encapsulation keys for the main secret `sk` (client side), or `None`
    /// without encapsulation.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] if `sk` is not a key of these parameters.
    pub fn gen_boot_keys<R: CryptoRng>(
        &self,
        sk: &SecretKey,
        rng: R,
    ) -> Result<Option<BootKeys>, CkksError> {
        let Some(eph) = &self.ephemeral else {
            return Ok(None);
        };
        if sk.params() != &self.params {
            return Err(CkksError::ParamsMismatch);
        }
        let mut kg_eph = KeyGenerator::with_rng(&eph.params, rng);
        let sparse = kg_eph.gen_secret_key();
        let to_sparse = kg_eph.gen_switching_key_between(&sk.reinterpret(&eph.params)?, &sparse)?;
        let mut kg_main = KeyGenerator::with_rng(&self.params, ChaCha20Rng::from_os_rng());
        let to_dense = kg_main.gen_switching_key_between(&sparse.reinterpret(&self.params)?, sk)?;
        Ok(Some(BootKeys {
            to_sparse,
            to_dense,
        }))
    }

    /// The slot rotations whose keys bootstrapping needs (it also needs the conjugation key
    /// and the relinearization key).
    pub fn rotations(&self) -> &[i64] {
        &self.rotations
    }

    /// Levels consumed: CoeffsToSlots + EvalMod + SlotsToCoeffs.
    pub fn depth(&self) -> usize {
        self.cts.len()
            + self
                .eval_mod
                .iter()
                .map(ChebyshevPoly::depth)
                .sum::<usize>()
            + self.stc.len()
    }

    /// Levels left after bootstrapping.
    pub fn levels_after(&self) -> usize {
        self.params.max_level() - self.depth()
    }

    /// The number of slots bootstrapped.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The parameters the circuit was built for.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The small parameter set of the ephemeral secret (the main `q_0` and one special prime),
    /// over which [`BootKeys::to_sparse`] is made, or `None` without encapsulation.
    pub fn ephemeral_params(&self) -> Option<&Params> {
        self.ephemeral.as_ref().map(|e| &e.params)
    }

    /// Bootstraps `ct` (at any level; it is first dropped to level 0). The result has
    /// [`Bootstrapper::levels_after`] levels and the input's scale. `keys` are the
    /// encapsulation keys ([`Bootstrapper::gen_boot_keys`]), required when the circuit uses
    /// encapsulation.
    ///
    /// # Errors
    /// [`CkksError::SlotMismatch`] if `ct` has another slot count; missing keys; mismatched
    /// parameters.
    pub fn bootstrap(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        keys: Option<&BootKeys>,
    ) -> Result<Ciphertext, CkksError> {
        self.bootstrap_divided(eval, ct, keys, 1.0)
    }

    /// Bootstraps `ct / divisor`; the division is free (a change of scale label after
    /// EvalMod). The output has the input's scale.
    fn bootstrap_divided(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        keys: Option<&BootKeys>,
        divisor: f64,
    ) -> Result<Ciphertext, CkksError> {
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
        x = match (&self.ephemeral, keys) {
            (None, _) => eval.mod_raise(&x)?,
            (Some(eph), Some(k)) => {
                let sparse = eph.eval.switch_key(&x, &k.to_sparse)?;
                eval.switch_key(&eval.mod_raise(&sparse)?, &k.to_dense)?
            }
            (Some(_), None) => {
                return Err(CkksError::InvalidParams(
                    "bootstrapping with encapsulation needs its keys".into(),
                ))
            }
        };
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
        // EvalMod lands on Δ_em/divisor and is relabelled Δ_em: this divides m (and only m:
        // the q_0·I part is gone by now) by `divisor` for free.
        let poly = PolyEvaluator::new(eval);
        let target = self.delta_em / divisor;
        let chain = |mut c: Ciphertext| -> Result<Ciphertext, CkksError> {
            for (i, p) in self.eval_mod.iter().enumerate() {
                let last = i + 1 == self.eval_mod.len();
                c = poly.evaluate_to_scale(&c, p, if last { target } else { self.delta_em })?;
            }
            Ok(c)
        };
        let (re, im) = rayon::join(|| chain(re), || chain(im));
        let (mut re, mut im) = (re?, im?);
        re.set_scale(self.delta_em);
        im.set_scale(self.delta_em);
        let mut y = eval.add(&re, &eval.mul_i(&im, false)?)?;
        for t in &self.stc {
            y = t.apply(eval, &y)?;
        }
        y.set_scale(input_scale);
        Ok(y)
    }

    /// Bootstraps two real-valued ciphertexts for the price of one: they are packed as
    /// `z = x + i·y`, bootstrapped together as `z/2` (halved for free after EvalMod), and
    /// separated by a conjugation, `x = z/2 + conj(z/2)`, `y = −i·(z/2 − conj(z/2))`. Both inputs need the same level, scale and slots,
    /// and real slot values; both outputs have the inputs' scale.
    ///
    /// # Errors
    /// As [`Bootstrapper::bootstrap`], and level/scale mismatches between `x` and `y`.
    pub fn bootstrap_pair(
        &self,
        eval: &Evaluator,
        x: &Ciphertext,
        y: &Ciphertext,
        keys: Option<&BootKeys>,
    ) -> Result<(Ciphertext, Ciphertext), CkksError> {
        self.bootstrap_pair_to(eval, x, y, keys, x.scale())
    }

    /// [`Bootstrapper::bootstrap_pair`] with both outputs at the scale `out_scale`, their
    /// values kept: the ratio to the inputs' scale rides on EvalMod's free division. Inputs at a
    /// low scale keep large values within the circuit's message bound (their messages are
    /// `value · scale / Δ`), and come back at a scale that suits what follows.
    ///
    /// # Errors
    /// As [`Bootstrapper::bootstrap_pair`]; a non-finite or non-positive `out_scale`.
    pub fn bootstrap_pair_to(
        &self,
        eval: &Evaluator,
        x: &Ciphertext,
        y: &Ciphertext,
        keys: Option<&BootKeys>,
        out_scale: f64,
    ) -> Result<(Ciphertext, Ciphertext), CkksError> {
        if !(out_scale.is_finite() && out_scale > 0.0) {
            return Err(CkksError::InvalidParams(format!(
                "bootstrapping to scale {out_scale}"
            )));
        }
        let z = eval.add(x, &eval.mul_i(y, false)?)?;
        // The output holds z/divisor at z's scale label: z/2 at out_scale once relabelled.
        let mut half = self.bootstrap_divided(eval, &z, keys, 2.0 * z.scale() / out_scale)?;
        half.set_scale(out_scale);
        let conj = eval.conjugate(&half)?;
        let re = eval.add(&half, &conj)?;
        let im = eval.mul_i(&eval.sub(&half, &conj)?, true)?;
        Ok((re, im))
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
