//! Chebyshev polynomial evaluation: plaintext Clenshaw, interpolation, the plaintext twin of
//! the baby-step giant-step recursion, and the encrypted evaluation (precision in bits, levels
//! consumed, exact output scale, errors).
//!
//! Parameters: insecure N = 2^11 sets (tests only) at scale 2^40. Seeds are fixed; set
//! `HETAL_TEST_SEED` to try others.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::poly_eval::{depth, ChebyshevPoly, PolyEvaluator};
use hetal_ckks::{
    presets, Ciphertext, CkksError, Encoder, EvalKeySet, Evaluator, KeyGenerator, Params,
    PrecisionStats, SecretKey,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Precision model for the encrypted evaluation at N = 2^11, scale 2^40, in bits.
///
/// Each rescale or key switch adds a worst-slot error of about 2^-29.5: the rounding of the
/// division by a prime is `ε0 + ε1·s` with `ε0, ε1` uniform in `[−½, ½]` and a ternary `s` of
/// weight `h ≈ 2N/3`, a standard deviation `sqrt((1 + h)/12) ≈ 10.7` per coefficient (a fresh
/// secret-key encryption has σ = 3.2, 2^-31.5 on its worst slot; a degree-1 polynomial,
/// one rescale, measures 29.2–29.4 bits). That noise, on `T_1` and on every power, reaches
/// `p` through `Σ c_k T_k'`, where `|T_k'(cos θ)| = k·|sin kθ|/sin θ`: about `k` over most of
/// the interval, at most `k²` (Markov's inequality) at its very ends. So the loss is about
/// `log2(1 + Σ_k |c_k|·k)` bits (the coefficient norm [`weighted_norm`]) beyond 29.5, plus a
/// few bits for the slots near ±1 and for the several injections that add up along the
/// recursion. Over 100 seeds × 20 random polynomials (degrees 1–255, on `[−1, 1]` and
/// `[−8, 8]`) the worst slot came at most 3.1 bits below `29.5 − log2(1 + Σ|c_k|·k)`; four
/// bits are kept. (The worst case proper, `Σ|c_k|·k²`, would allow 14 bits at degree 255.)
/// For the test's coefficients (`c_k ~ U[−1, 1]/(k + 1)`, `Σ|c_k|·k ≈ d/2`) the threshold is
/// about 18.5 bits at degree 255; measured with the default seed: 23.0 (on `[−8, 8]`) and
/// 23.8 (on `[−1, 1]`).
const MODEL_BASE_BITS: f64 = 25.5;
/// The target for every degree up to 255 at scale 2^40 (implied by the model for the test's
/// polynomials, asserted on its own).
const TARGET_MIN_BITS: f64 = 15.0;
/// Plaintext: the BSGS recursion against Clenshaw, both in `f64` (rounding only).
const TWIN_MAX_ERR: f64 = 1e-9;
/// Interpolation of an entire function at degree 31: the Chebyshev coefficients of `sin(πx)`
/// and `exp(x)` fall below 1e-16 before degree 31, so only rounding is left.
const INTERP_MAX_ERR: f64 = 1e-10;

const DEGREES: [usize; 10] = [1, 2, 3, 7, 8, 15, 31, 63, 127, 255];

fn seed() -> u64 {
    std::env::var("HETAL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024)
}

struct Fixture {
    params: Params,
    sk: SecretKey,
    enc: Encoder,
    eval: Evaluator,
    rng: ChaCha20Rng,
}

fn fixture(log_n: u32, levels: usize) -> Fixture {
    let params = Params::new_insecure(presets::insecure_test(log_n, levels)).unwrap();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(seed()));
    let sk = keygen.gen_secret_key();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, &[], false));
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    Fixture {
        params,
        sk,
        enc,
        eval,
        rng: ChaCha20Rng::seed_from_u64(seed() + 1),
    }
}

impl Fixture {
    fn uniform(&mut self, n: usize, a: f64, b: f64) -> Vec<f64> {
        (0..n).map(|_| self.rng.random_range(a..=b)).collect()
    }

    /// A random polynomial with decaying coefficients `c_k ~ U[−1, 1]/(k + 1)`.
    fn random_poly(&mut self, degree: usize, a: f64, b: f64) -> ChebyshevPoly {
        let coeffs = (0..=degree)
            .map(|k| self.rng.random_range(-1.0..1.0) / (k as f64 + 1.0))
            .collect();
        ChebyshevPoly::new(a, b, coeffs)
    }

    fn encrypt_at(&mut self, x: &[f64], level: usize, scale: f64) -> Ciphertext {
        let slots = self.params.max_slots();
        let pt = self.enc.encode_real(x, slots, level, scale).unwrap();
        self.sk.encrypt(&pt, &mut self.rng).unwrap()
    }

    /// Random slots on `[a, b]`, encrypted at the top level and default scale.
    fn random_input(&mut self, a: f64, b: f64) -> (Vec<f64>, Ciphertext) {
        let x = self.uniform(self.params.max_slots(), a, b);
        let ct = self.encrypt_at(&x, self.params.max_level(), self.params.default_scale());
        (x, ct)
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        self.enc.decode_real(&self.sk.decrypt(ct).unwrap())
    }

    fn precision(&self, poly: &ChebyshevPoly, x: &[f64], ct: &Ciphertext) -> PrecisionStats {
        let want: Vec<f64> = x.iter().map(|&v| poly.eval(v)).collect();
        PrecisionStats::new_real(&want, &self.decrypt(ct))
    }
}

/// `Σ_k |c_k|·k`: the typical amplification of noise on the powers (see [`MODEL_BASE_BITS`]).
fn weighted_norm(poly: &ChebyshevPoly) -> f64 {
    poly.coeffs
        .iter()
        .enumerate()
        .map(|(k, c)| c.abs() * k as f64)
        .sum()
}

fn model_min_bits(poly: &ChebyshevPoly) -> f64 {
    MODEL_BASE_BITS - (1.0 + weighted_norm(poly)).log2()
}

fn cheb_direct(poly: &ChebyshevPoly, x: f64) -> f64 {
    let t = ((2.0 * x - poly.a - poly.b) / (poly.b - poly.a)).clamp(-1.0, 1.0);
    poly.coeffs
        .iter()
        .enumerate()
        .map(|(k, c)| c * (k as f64 * t.acos()).cos())
        .sum()
}

fn rel_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn clenshaw_matches_direct_sum() {
    let mut f = fixture(11, 1);
    for (a, b) in [(-1.0, 1.0), (-3.0, 5.0)] {
        let poly = f.random_poly(40, a, b);
        for x in f.uniform(200, a, b) {
            assert!((poly.eval(x) - cheb_direct(&poly, x)).abs() < 1e-12);
        }
    }
    assert_eq!(ChebyshevPoly::new(-1.0, 1.0, vec![]).eval(0.3), 0.0);
    assert_eq!(ChebyshevPoly::new(-1.0, 1.0, vec![2.5]).eval(0.3), 2.5);
}

#[test]
fn interpolation_is_accurate() {
    type Case<'a> = (&'a dyn Fn(f64) -> f64, f64, f64);
    let cases: [Case; 3] = [
        (&|x: f64| (std::f64::consts::PI * x).sin(), -1.0, 1.0),
        (&|x: f64| x.exp(), -1.0, 1.0),
        (&|x: f64| (x / 4.0).exp(), -4.0, 4.0),
    ];
    for (func, a, b) in cases {
        let poly = ChebyshevPoly::interpolate(func, a, b, 31);
        assert_eq!(poly.degree(), 31);
        let max_err = (0..=2000)
            .map(|i| a + (b - a) * i as f64 / 2000.0)
            .map(|x| (poly.eval(x) - func(x)).abs())
            .fold(0.0, f64::max);
        assert!(
            max_err < INTERP_MAX_ERR,
            "[{a}, {b}]: max error {max_err:e}"
        );
    }
    // Interpolation reproduces a polynomial of its degree exactly (to rounding).
    let p = ChebyshevPoly::new(-2.0, 6.0, vec![0.5, -1.0, 0.25, 0.125]);
    let q = ChebyshevPoly::interpolate(|x| p.eval(x), -2.0, 6.0, 3);
    for (c, d) in p.coeffs.iter().zip(&q.coeffs) {
        assert!((c - d).abs() < 1e-14);
    }
}

#[test]
fn plaintext_twin_matches_clenshaw() {
    let mut f = fixture(11, 10);
    let degrees = (0..=40).chain([63, 64, 100, 127, 128, 200, 255]);
    for d in degrees {
        for (a, b) in [(-1.0, 1.0), (0.0, 2.0), (-8.0, 8.0)] {
            let poly = f.random_poly(d, a, b);
            let x = f.uniform(64, a, b);
            let want: Vec<f64> = x.iter().map(|&v| poly.eval(v)).collect();
            let ideal = poly.eval_bsgs(&x).unwrap();
            let err = PrecisionStats::new_real(&want, &ideal).max_err;
            assert!(err < TWIN_MAX_ERR, "d = {d} on [{a}, {b}]: {err:e}");
            // Over the parameters' primes, at the input's scale.
            if poly.depth() <= f.params.max_level() {
                let pe = PolyEvaluator::new(&f.eval);
                let (level, scale) = (f.params.max_level(), f.params.default_scale());
                let twin = pe.evaluate_plain(&x, level, scale, &poly, scale).unwrap();
                let err = PrecisionStats::new_real(&want, &twin).max_err;
                assert!(err < TWIN_MAX_ERR, "d = {d} on [{a}, {b}]: {err:e}");
            }
        }
    }
}

/// Encrypted evaluation against Clenshaw on random slots, for one interval.
fn check_encrypted(a: f64, b: f64) {
    let mut f = fixture(11, 10);
    for d in DEGREES {
        let poly = f.random_poly(d, a, b);
        let (x, ct) = f.random_input(a, b);
        let pe = PolyEvaluator::new(&f.eval);
        f.eval.reset_counts();
        let out = pe.evaluate(&ct, &poly).unwrap();
        let counts = f.eval.counts();
        let stats = f.precision(&poly, &x, &out);
        let min = model_min_bits(&poly).max(TARGET_MIN_BITS);
        // The dry run predicts the plan exactly.
        let sim = pe
            .simulate(ct.level(), ct.scale(), &poly, ct.scale())
            .unwrap();
        assert_eq!(sim.level, out.level());
        assert_eq!(sim.counts.ct_mults, counts.ct_mult);
        assert_eq!(sim.counts.rescales, counts.rescales);
        assert_eq!(sim.counts.const_mults, counts.const_mult);
        eprintln!(
            "[{a}, {b}] degree {d:3}: {stats}; model ≥ {min:.1}; l = {}, {} ct×ct mults, {} const mults, {} rescales",
            sim.log_baby, counts.ct_mult, counts.const_mult, counts.rescales
        );
    }
}

#[test]
fn encrypted_matches_clenshaw_on_unit_interval() {
    check_encrypted(-1.0, 1.0);
}

#[test]
fn encrypted_matches_clenshaw_on_wide_interval() {
    check_encrypted(-8.0, 8.0);
}

#[test]
fn levels_consumed_are_exactly_the_depth() {
    let mut f = fixture(11, 10);
    for d in [1, 2, 3, 4, 7, 8, 15, 16, 31, 63, 127, 255] {
        // [−1, 1] and [0, 2] (a translation: add_const) need no level for the map; [−8, 8] one.
        for (a, b, map) in [(-1.0, 1.0, 0), (0.0, 2.0, 0), (-8.0, 8.0, 1)] {
            let poly = f.random_poly(d, a, b);
            assert_eq!(depth(d), (d as f64 + 1.0).log2().ceil() as usize);
            assert_eq!(poly.depth(), depth(d) + map);
            let (x, ct) = f.random_input(a, b);
            let pe = PolyEvaluator::new(&f.eval);
            let out = pe.evaluate(&ct, &poly).unwrap();
            assert_eq!(
                ct.level() - out.level(),
                depth(d) + map,
                "d = {d} on [{a}, {b}]"
            );
            let stats = f.precision(&poly, &x, &out);
            assert!(stats.min_bits >= TARGET_MIN_BITS, "d = {d}: {stats}");
            // Every baby-step count gives the same depth, with consistent scales throughout.
            for l in 1..=depth(d) {
                let sim = PolyEvaluator::new(&f.eval)
                    .with_log_baby(l)
                    .simulate(ct.level(), ct.scale(), &poly, ct.scale())
                    .unwrap();
                assert_eq!(sim.level, out.level(), "d = {d}, l = {l}");
            }
        }
    }
    // The encrypted evaluation also works with every baby-step count.
    let poly = f.random_poly(63, -1.0, 1.0);
    let (x, ct) = f.random_input(-1.0, 1.0);
    for l in 1..=6 {
        let out = PolyEvaluator::new(&f.eval)
            .with_log_baby(l)
            .evaluate(&ct, &poly)
            .unwrap();
        assert_eq!(ct.level() - out.level(), 6);
        let stats = f.precision(&poly, &x, &out);
        assert!(stats.min_bits >= model_min_bits(&poly), "l = {l}: {stats}");
    }
}

#[test]
fn output_scale_is_exactly_the_target() {
    let mut f = fixture(11, 10);
    let delta = f.params.default_scale();
    for (a, b) in [(-1.0, 1.0), (-8.0, 8.0)] {
        let poly = f.random_poly(31, a, b);
        let (x, ct) = f.random_input(a, b);
        for target in [delta, 2f64.powi(35), 2f64.powi(45), 1.2345 * delta] {
            let pe = PolyEvaluator::new(&f.eval);
            let out = pe.evaluate_to_scale(&ct, &poly, target).unwrap();
            assert!(rel_eq(out.scale(), target));
            let sim = pe.simulate(ct.level(), ct.scale(), &poly, target).unwrap();
            assert!(rel_eq(sim.scale, target));
            // A smaller target scale costs its bits: 2^35 loses about 5 of them.
            let lost = (delta / target).log2().max(0.0);
            let stats = f.precision(&poly, &x, &out);
            assert!(
                stats.min_bits >= model_min_bits(&poly) - lost,
                "target 2^{:.2}: {stats}",
                target.log2()
            );
        }
    }
    // An input at another scale: the result comes back at the input's scale.
    let poly = f.random_poly(15, -8.0, 8.0);
    let x = f.uniform(f.params.max_slots(), -8.0, 8.0);
    let ct = f.encrypt_at(&x, 9, delta * 1.5);
    let out = PolyEvaluator::new(&f.eval).evaluate(&ct, &poly).unwrap();
    assert!(rel_eq(out.scale(), delta * 1.5));
    assert_eq!(out.level(), 9 - poly.depth());
    let stats = f.precision(&poly, &x, &out);
    assert!(stats.min_bits >= model_min_bits(&poly), "{stats}");
}

#[test]
fn degenerate_polynomials() {
    let mut f = fixture(11, 6);
    let (x, ct) = f.random_input(-1.0, 1.0);
    let pe = PolyEvaluator::new(&f.eval);
    let cases = [
        // A constant: no level.
        vec![0.75],
        // The zero polynomial.
        vec![],
        // Trailing zeros: the nominal degree (8) sets the depth.
        vec![0.5, -0.25, 0.0, 0.125, 0.0, 0.0, 0.0, 0.0, 0.0],
        // A single power (empty remainders).
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        // Odd.
        vec![0.0, 0.5, 0.0, -0.25, 0.0, 0.125, 0.0, -0.0625],
    ];
    for coeffs in cases {
        let poly = ChebyshevPoly::new(-1.0, 1.0, coeffs);
        let out = pe.evaluate(&ct, &poly).unwrap();
        assert_eq!(ct.level() - out.level(), depth(poly.degree()));
        assert!(rel_eq(out.scale(), ct.scale()));
        let stats = f.precision(&poly, &x, &out);
        assert!(stats.min_bits >= model_min_bits(&poly), "{poly:?}: {stats}");
    }
}

#[test]
fn not_enough_levels_is_an_error() {
    let mut f = fixture(11, 9);
    let x = f.uniform(f.params.max_slots(), -1.0, 1.0);
    let ct = f.encrypt_at(&x, 7, f.params.default_scale());
    let ct0 = f.encrypt_at(&x, 0, f.params.default_scale());
    let unit255 = f.random_poly(255, -1.0, 1.0);
    let wide127 = f.random_poly(127, -8.0, 8.0);
    let unit127 = f.random_poly(127, -1.0, 1.0);
    let pe = PolyEvaluator::new(&f.eval);
    assert_eq!(
        pe.evaluate(&ct, &unit255).unwrap_err(),
        CkksError::NotEnoughLevels { have: 7, need: 8 }
    );
    assert!(matches!(
        pe.simulate(7, ct.scale(), &unit255, ct.scale()),
        Err(CkksError::NotEnoughLevels { have: 7, need: 8 })
    ));
    // The affine map's level counts.
    assert_eq!(
        pe.evaluate(&ct, &wide127).unwrap_err(),
        CkksError::NotEnoughLevels { have: 7, need: 8 }
    );
    // Exactly enough is fine, down to level 0.
    let out = pe.evaluate(&ct, &unit127).unwrap();
    assert_eq!(out.level(), 0);
    let linear = ChebyshevPoly::new(-1.0, 1.0, vec![0.5, 0.25]);
    assert_eq!(
        pe.evaluate(&ct0, &linear).unwrap_err(),
        CkksError::NotEnoughLevels { have: 0, need: 1 }
    );
    // A constant needs no level.
    let constant = ChebyshevPoly::new(-1.0, 1.0, vec![0.5]);
    let out = pe.evaluate(&ct0, &constant).unwrap();
    assert!(f.decrypt(&out).iter().all(|v| (v - 0.5).abs() < 1e-9));
}

#[test]
fn invalid_inputs_are_refused() {
    let mut f = fixture(11, 3);
    let (_, ct) = f.random_input(-1.0, 1.0);
    let pe = PolyEvaluator::new(&f.eval);
    let bad = [
        ChebyshevPoly::new(1.0, 1.0, vec![0.0, 1.0]),
        ChebyshevPoly::new(-1.0, f64::INFINITY, vec![0.0, 1.0]),
        ChebyshevPoly::new(-1.0, 1.0, vec![0.0, f64::NAN]),
    ];
    for poly in &bad {
        assert!(matches!(
            pe.evaluate(&ct, poly),
            Err(CkksError::InvalidParams(_))
        ));
        assert!(matches!(
            poly.eval_bsgs(&[0.5]),
            Err(CkksError::InvalidParams(_))
        ));
    }
    let poly = ChebyshevPoly::new(-1.0, 1.0, vec![0.0, 1.0, 0.5]);
    for target in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            pe.evaluate_to_scale(&ct, &poly, target),
            Err(CkksError::InvalidParams(_))
        ));
    }
    assert!(matches!(
        PolyEvaluator::new(&f.eval)
            .with_log_baby(0)
            .evaluate(&ct, &poly),
        Err(CkksError::InvalidParams(_))
    ));
    // Without a relinearization key.
    let eval = Evaluator::new(&f.params, Arc::new(EvalKeySet::default()));
    assert_eq!(
        PolyEvaluator::new(&eval).evaluate(&ct, &poly).unwrap_err(),
        CkksError::MissingRelinKey
    );
}

/// The odd part of an odd function's interpolant: the same values (its even coefficients
/// were rounding noise), the same depth, fewer products (EvalMod's sine: the even baby steps
/// no odd one needs are skipped); an asymmetric interval is refused.
#[test]
fn odd_part_skips_even_powers() {
    let f = fixture(11, 9);
    let pe = PolyEvaluator::new(&f.eval);
    let k = 12.0;
    let sine = ChebyshevPoly::interpolate(
        |x| (2.0 * std::f64::consts::PI * k * x).sin(),
        -1.0,
        1.0,
        127,
    );
    let odd = sine.clone().odd_part().unwrap();
    let level = depth(127);
    let scale = f.params.default_scale();
    let full = pe.simulate(level, scale, &sine, scale).unwrap();
    let lean = pe.simulate(level, scale, &odd, scale).unwrap();
    assert_eq!((full.level, lean.level), (0, 0));
    assert!(
        lean.counts.ct_mults + 3 <= full.counts.ct_mults,
        "odd part: {} products, full: {}",
        lean.counts.ct_mults,
        full.counts.ct_mults
    );
    for i in 0..=200 {
        let x = -1.0 + f64::from(i) / 100.0;
        assert!((odd.eval(x) - sine.eval(x)).abs() < 1e-13, "x = {x}");
    }
    let asymmetric = ChebyshevPoly::new(-1.0, 2.0, vec![0.0, 1.0]);
    assert!(matches!(
        asymmetric.odd_part(),
        Err(CkksError::InvalidParams(_))
    ));
}
