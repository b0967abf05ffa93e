//! Every leveled operation against plaintext arithmetic, with precision asserted in bits.
//!
//! Parameters: insecure N = 2^12 sets (tests only) at scale 2^40. Seeds are fixed; set
//! `HETAL_TEST_SEED` to try others.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::{
    presets, Ciphertext, CkksError, Encoder, Evaluator, KeyGenerator, Params, Plaintext,
    PrecisionStats, SecretKey,
};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Fresh encryption at scale 2^40, N = 2^12. Secret key: error `e` (σ = 3.2), about 2^-32
/// per slot. Public key: the rounding of the division by P, `ε0 + ε1·s`, about 2^-30.
const FRESH_MIN_BITS: f64 = 25.0;
/// Mult + relin + rescale: the rescale rounding and key-switch noise dominate.
const MULT_MIN_BITS: f64 = 22.0;
/// A rotation adds the key-switch rounding noise `ε0 + ε1·s`, as large as the noise of a fresh
/// public-key encryption: at most one bit lost from there. (From a secret-key ciphertext,
/// whose noise is 4× smaller, the same noise costs about 2.5 bits.)
const ROTATION_MAX_LOSS_BITS: f64 = 1.0;
/// After a depth-8 chain of multiplications.
const DEPTH8_MIN_BITS: f64 = 15.0;

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

fn fixture(log_n: u32, levels: usize, rotations: &[i64]) -> Fixture {
    let params = Params::new_insecure(presets::insecure_test(log_n, levels)).unwrap();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(seed()));
    let sk = keygen.gen_secret_key();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, rotations, true));
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
    fn random(&mut self, slots: usize) -> Vec<Complex64> {
        (0..slots)
            .map(|_| {
                Complex64::new(
                    self.rng.random_range(-1.0..1.0),
                    self.rng.random_range(-1.0..1.0),
                )
            })
            .collect()
    }

    fn encode_top(&self, v: &[Complex64], slots: usize) -> Plaintext {
        let (level, scale) = (self.params.max_level(), self.params.default_scale());
        self.enc.encode(v, slots, level, scale).unwrap()
    }

    fn encrypt(&mut self, v: &[Complex64], slots: usize) -> Ciphertext {
        let pt = self.encode_top(v, slots);
        self.sk.encrypt(&pt, &mut self.rng).unwrap()
    }

    fn encrypt_pk(&mut self, v: &[Complex64], slots: usize) -> Ciphertext {
        let mut keygen =
            KeyGenerator::with_rng(&self.params, ChaCha20Rng::seed_from_u64(seed() + 7));
        let pk = keygen.gen_public_key(&self.sk);
        let pt = self.encode_top(v, slots);
        pk.encrypt(&self.params, &pt, &mut self.rng).unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<Complex64> {
        self.enc.decode(&self.sk.decrypt(ct).unwrap())
    }

    fn precision(&self, want: &[Complex64], ct: &Ciphertext) -> PrecisionStats {
        PrecisionStats::new(want, &self.decrypt(ct))
    }
}

fn rotl(v: &[Complex64], k: i64) -> Vec<Complex64> {
    let n = v.len() as i64;
    (0..n).map(|i| v[(i + k).rem_euclid(n) as usize]).collect()
}

#[test]
fn fresh_encryption_secret_and_public_key() {
    let mut f = fixture(12, 3, &[]);
    let slots = f.params.max_slots();
    let v = f.random(slots);
    let ct = f.encrypt(&v, slots);
    let stats = f.precision(&v, &ct);
    assert!(
        stats.min_bits >= FRESH_MIN_BITS,
        "secret-key encryption: {stats}"
    );

    let mut keygen = KeyGenerator::with_rng(&f.params, ChaCha20Rng::seed_from_u64(seed() + 7));
    let pk = keygen.gen_public_key(&f.sk);
    let pt = f
        .enc
        .encode(&v, slots, 2, f.params.default_scale())
        .unwrap();
    let ct = pk.encrypt(&f.params, &pt, &mut f.rng).unwrap();
    let stats = f.precision(&v, &ct);
    assert!(
        stats.min_bits >= FRESH_MIN_BITS,
        "public-key encryption: {stats}"
    );
    assert_eq!(ct.level(), 2);
}

#[test]
fn mult_relin_rescale() {
    let mut f = fixture(12, 3, &[]);
    let slots = f.params.max_slots();
    let (a, b) = (f.random(slots), f.random(slots));
    let (ca, cb) = (f.encrypt(&a, slots), f.encrypt(&b, slots));
    let prod = f
        .eval
        .rescale(&f.eval.mul_relin(&ca, &cb).unwrap())
        .unwrap();
    let want: Vec<Complex64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let stats = f.precision(&want, &prod);
    assert!(stats.min_bits >= MULT_MIN_BITS, "{stats}");
    assert_eq!(prod.level(), f.params.max_level() - 1);
    let c = f.eval.counts();
    assert_eq!((c.ct_mult, c.keyswitch_full, c.rescales), (1, 1, 1));
}

/// The rescale folded into the relinearization: `rescale(a·b + c)` as precise as the
/// separate ops (and equal to them to CKKS precision), at the same level and scale, counted as
/// the three ops; bad operands are errors.
#[test]
fn fused_rescale_matches_relin_then_rescale() {
    let mut f = fixture(12, 3, &[]);
    let slots = f.params.max_slots();
    let (a, b, c) = (f.random(slots), f.random(slots), f.random(slots));
    let (ca, cb, cc) = (
        f.encrypt(&a, slots),
        f.encrypt(&b, slots),
        f.encrypt(&c, slots),
    );
    let product_scale = ca.scale() * cb.scale();
    let addend = f
        .eval
        .mul_const_with_scale(&cc, Complex64::new(1.0, 0.0), product_scale / cc.scale())
        .unwrap();
    f.eval.reset_counts();
    let fused = f
        .eval
        .mul_sum_relin_rescale(&[(&ca, &cb)], Some(&addend))
        .unwrap();
    let cnt = f.eval.counts();
    assert_eq!((cnt.ct_mult, cnt.keyswitch_full, cnt.rescales), (1, 1, 1));
    let want: Vec<Complex64> = (0..slots).map(|i| a[i] * b[i] + c[i]).collect();
    let stats = f.precision(&want, &fused);
    assert!(stats.min_bits >= MULT_MIN_BITS, "{stats}");
    let mut separate = f.eval.mul_relin(&ca, &cb).unwrap();
    f.eval.add_assign(&mut separate, &addend).unwrap();
    let separate = f.eval.rescale(&separate).unwrap();
    assert_eq!(
        (fused.level(), fused.scale()),
        (separate.level(), separate.scale())
    );
    let d = PrecisionStats::new(&f.decrypt(&separate), &f.decrypt(&fused));
    assert!(d.min_bits >= MULT_MIN_BITS, "{d}");
    // Without an addend, and for a sum of products.
    let sum = f
        .eval
        .mul_sum_relin_rescale(&[(&ca, &cb), (&cc, &ca)], None)
        .unwrap();
    let want: Vec<Complex64> = (0..slots).map(|i| a[i] * b[i] + c[i] * a[i]).collect();
    let stats = f.precision(&want, &sum);
    assert!(stats.min_bits + 1.0 >= MULT_MIN_BITS, "{stats}");

    let bottom = f.eval.drop_to_level(&ca, 0).unwrap();
    assert!(matches!(
        f.eval.mul_sum_relin_rescale(&[(&bottom, &bottom)], None),
        Err(CkksError::NotEnoughLevels { .. })
    ));
    let lower = f.eval.drop_to_level(&addend, 1).unwrap();
    assert!(matches!(
        f.eval.mul_sum_relin_rescale(&[(&ca, &cb)], Some(&lower)),
        Err(CkksError::LevelMismatch { .. })
    ));
    assert!(matches!(
        f.eval.mul_sum_relin_rescale(&[(&ca, &cb)], Some(&cc)),
        Err(CkksError::ScaleMismatch { .. })
    ));
}

/// A sum of plaintext products reduced once per residue: as precise as the sum of separate
/// `mul_plain`s (and equal to it to CKKS precision), one count per product; bad lists are
/// errors.
#[test]
fn sum_of_plaintext_products() {
    let mut f = fixture(12, 3, &[]);
    let slots = f.params.max_slots();
    let level = f.params.max_level();
    let scale = f.params.default_scale();
    let xs: Vec<_> = (0..6).map(|_| f.random(slots)).collect();
    let ws: Vec<_> = (0..6).map(|_| f.random(slots)).collect();
    let cts: Vec<_> = xs.iter().map(|x| f.encrypt(x, slots)).collect();
    let pts: Vec<_> = ws
        .iter()
        .map(|w| f.enc.encode(w, slots, level, scale).unwrap())
        .collect();
    let terms: Vec<_> = cts.iter().zip(&pts).collect();
    f.eval.reset_counts();
    let sum = f.eval.mul_plain_sum(&terms).unwrap();
    assert_eq!(f.eval.counts().pt_mult, 6);
    let sum = f.eval.rescale(&sum).unwrap();
    let want: Vec<Complex64> = (0..slots)
        .map(|i| xs.iter().zip(&ws).map(|(x, w)| x[i] * w[i]).sum())
        .collect();
    // The sum is up to 6 in magnitude: the same relative precision as one product.
    let stats = f.precision(&want, &sum);
    assert!(stats.min_bits + 3.0 >= MULT_MIN_BITS, "{stats}");
    let mut each = f.eval.mul_plain(terms[0].0, terms[0].1).unwrap();
    for (c, p) in &terms[1..] {
        f.eval
            .add_assign(&mut each, &f.eval.mul_plain(c, p).unwrap())
            .unwrap();
    }
    let each = f.eval.rescale(&each).unwrap();
    assert_eq!((each.level(), each.scale()), (sum.level(), sum.scale()));
    let d = PrecisionStats::new(&f.decrypt(&each), &f.decrypt(&sum));
    assert!(d.min_bits + 3.0 >= MULT_MIN_BITS, "{d}");

    assert!(matches!(
        f.eval.mul_plain_sum(&[]),
        Err(CkksError::NoOperands(_))
    ));
    let lower = f.eval.drop_to_level(&cts[0], 1).unwrap();
    let low_pt = f.enc.encode(&ws[0], slots, 1, scale).unwrap();
    assert!(matches!(
        f.eval
            .mul_plain_sum(&[(&cts[0], &pts[0]), (&lower, &low_pt)]),
        Err(CkksError::LevelMismatch { .. })
    ));
    assert!(matches!(
        f.eval.mul_plain_sum(&[(&cts[0], &low_pt)]),
        Err(CkksError::LevelMismatch { .. })
    ));
    let other = f.enc.encode(&ws[1], slots, level, scale * 2.0).unwrap();
    assert!(matches!(
        f.eval
            .mul_plain_sum(&[(&cts[0], &pts[0]), (&cts[1], &other)]),
        Err(CkksError::ScaleMismatch { .. })
    ));
}

/// A sum of 8 products relinearized once: as precise as one product (the key-switch noise is
/// added once), one key switch, 8 ct×ct mults; and errors on bad operand lists.
#[test]
fn sum_of_products_relinearizes_once() {
    let mut f = fixture(12, 3, &[]);
    let slots = f.params.max_slots();
    let terms = 8;
    let xs: Vec<_> = (0..2 * terms).map(|_| f.random(slots)).collect();
    let cts: Vec<_> = xs.iter().map(|x| f.encrypt(x, slots)).collect();
    let pairs: Vec<_> = cts.chunks(2).map(|p| (&p[0], &p[1])).collect();
    f.eval.reset_counts();
    let sum = f
        .eval
        .rescale(&f.eval.mul_sum_relin(&pairs).unwrap())
        .unwrap();
    let want: Vec<Complex64> = (0..slots)
        .map(|i| xs.chunks(2).map(|p| p[0][i] * p[1][i]).sum())
        .collect();
    // The sum is up to 8 in magnitude: the same relative precision as one product.
    let stats = f.precision(&want, &sum);
    assert!(stats.min_bits + 3.0 >= MULT_MIN_BITS, "{stats}");
    let c = f.eval.counts();
    assert_eq!((c.ct_mult, c.keyswitch_full), (terms as u64, 1));
    // The same as relinearizing every product, to CKKS precision.
    let mut each = f.eval.mul_relin(pairs[0].0, pairs[0].1).unwrap();
    for (a, b) in &pairs[1..] {
        f.eval
            .add_assign(&mut each, &f.eval.mul_relin(a, b).unwrap())
            .unwrap();
    }
    let each = f.eval.rescale(&each).unwrap();
    let d = PrecisionStats::new(&f.decrypt(&each), &f.decrypt(&sum));
    assert!(d.min_bits + 3.0 >= MULT_MIN_BITS, "{d}");

    assert!(matches!(
        f.eval.mul_sum_relin(&[]),
        Err(CkksError::NoOperands(_))
    ));
    let lower = f.eval.drop_to_level(&cts[0], 1).unwrap();
    assert!(matches!(
        f.eval
            .mul_sum_relin(&[(&cts[0], &cts[1]), (&lower, &lower)]),
        Err(CkksError::LevelMismatch { .. })
    ));
    let mut other_scale = cts[2].clone();
    other_scale.set_scale(cts[2].scale() * 2.0);
    assert!(matches!(
        f.eval
            .mul_sum_relin(&[(&cts[0], &cts[1]), (&other_scale, &cts[3])]),
        Err(CkksError::ScaleMismatch { .. })
    ));
}

#[test]
fn rotations_lose_at_most_one_bit_and_hoisting_agrees() {
    let ks = [1i64, 2, 5, -1, -3, 100];
    let mut f = fixture(12, 2, &ks);
    for slots in [f.params.max_slots(), 64] {
        let v = f.random(slots);
        let ct = f.encrypt_pk(&v, slots);
        let before = f.precision(&v, &ct);
        let hoisted = f.eval.rotate_hoisted(&ct, &ks).unwrap();
        for (&k, h) in ks.iter().zip(&hoisted) {
            let single = f.eval.rotate(&ct, k).unwrap();
            assert_eq!(&single, h, "hoisted and single rotation by {k} differ");
            let after = f.precision(&rotl(&v, k), &single);
            assert!(
                after.min_bits >= before.min_bits - ROTATION_MAX_LOSS_BITS,
                "k = {k}, slots = {slots}: {before} -> {after}"
            );
        }
    }
    let c = f.eval.counts();
    assert_eq!(c.rotations, 2 * 2 * ks.len() as u64);
    assert_eq!(c.keyswitch_hoisted, 2 * ks.len() as u64);
    assert_eq!(c.keyswitch_full, 2 * ks.len() as u64);
    // A rotation with no key is an error naming it.
    let ct = f.encrypt(&[Complex64::new(1.0, 0.0)], 1);
    assert!(matches!(
        f.eval.rotate(&ct, 7),
        Err(CkksError::MissingGaloisKey { rotation: 7, .. })
    ));
    assert!(matches!(
        f.eval.rotate_hoisted(&ct, &[1, 7]),
        Err(CkksError::MissingGaloisKey { rotation: 7, .. })
    ));
}

/// Eight products in a row, rescaled separately and with the fused rescale.
#[test]
fn depth_eight_chain() {
    let mut f = fixture(12, 9, &[]);
    let slots = f.params.max_slots();
    for fused in [false, true] {
        let mut want = f.random(slots);
        let mut acc = f.encrypt(&want, slots);
        for _ in 0..8 {
            let x = f.random(slots);
            let fresh = f.encrypt(&x, slots);
            let cx = f.eval.drop_to_level(&fresh, acc.level()).unwrap();
            acc = if fused {
                f.eval.mul_sum_relin_rescale(&[(&acc, &cx)], None).unwrap()
            } else {
                f.eval
                    .rescale(&f.eval.mul_relin(&acc, &cx).unwrap())
                    .unwrap()
            };
            want.iter_mut().zip(&x).for_each(|(w, x)| *w *= x);
        }
        assert_eq!(acc.level(), 1);
        // Relative to the magnitude: the product of 9 values in the unit square shrinks.
        let stats = f.precision(&want, &acc);
        assert!(stats.min_bits >= DEPTH8_MIN_BITS, "fused {fused}: {stats}");
    }
}

#[test]
fn additive_and_constant_ops() {
    let mut f = fixture(12, 3, &[]);
    let slots = 256;
    let (a, b) = (f.random(slots), f.random(slots));
    let (ca, cb) = (f.encrypt(&a, slots), f.encrypt(&b, slots));
    let e = &f.eval;
    let check = |name: &str, want: Vec<Complex64>, ct: &Ciphertext, min_bits: f64| {
        let stats = f.precision(&want, ct);
        assert!(stats.min_bits >= min_bits, "{name}: {stats}");
    };
    check(
        "add",
        a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        &e.add(&ca, &cb).unwrap(),
        FRESH_MIN_BITS - 1.0,
    );
    check(
        "sub",
        a.iter().zip(&b).map(|(x, y)| x - y).collect(),
        &e.sub(&ca, &cb).unwrap(),
        FRESH_MIN_BITS - 1.0,
    );
    check(
        "neg",
        a.iter().map(|x| -x).collect(),
        &e.neg(&ca).unwrap(),
        FRESH_MIN_BITS,
    );
    let c = Complex64::new(0.75, -1.25);
    check(
        "add_const",
        a.iter().map(|x| x + c).collect(),
        &e.add_const(&ca, c).unwrap(),
        FRESH_MIN_BITS,
    );
    let mc = e.rescale(&e.mul_const(&ca, c).unwrap()).unwrap();
    assert_eq!(
        mc.scale(),
        ca.scale(),
        "mul_const + rescale must restore the scale exactly"
    );
    check(
        "mul_const",
        a.iter().map(|x| x * c).collect(),
        &mc,
        MULT_MIN_BITS,
    );
    let i = Complex64::new(0.0, 1.0);
    let mi = e.mul_i(&ca, false).unwrap();
    assert_eq!(mi.level(), ca.level());
    check(
        "mul_i",
        a.iter().map(|x| x * i).collect(),
        &mi,
        FRESH_MIN_BITS,
    );
    check(
        "mul_-i",
        a.iter().map(|x| -x * i).collect(),
        &e.mul_i(&ca, true).unwrap(),
        FRESH_MIN_BITS,
    );
    check(
        "conjugate",
        a.iter().map(|x| x.conj()).collect(),
        &e.conjugate(&ca).unwrap(),
        FRESH_MIN_BITS - 1.0,
    );
    let pb = f
        .enc
        .encode(&b, slots, ca.level(), f.params.default_scale())
        .unwrap();
    let mp = e.rescale(&e.mul_plain(&ca, &pb).unwrap()).unwrap();
    check(
        "mul_plain",
        a.iter().zip(&b).map(|(x, y)| x * y).collect(),
        &mp,
        MULT_MIN_BITS,
    );
    check(
        "add_plain",
        a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        &e.add_plain(&ca, &pb).unwrap(),
        FRESH_MIN_BITS - 1.0,
    );
    let counts = e.counts();
    assert_eq!(
        (counts.const_mult, counts.pt_mult, counts.conjugations),
        (1, 1, 1)
    );
}

#[test]
fn rotate_sum_adds_strided_slots() {
    let stride = 4;
    let count = 8;
    let mut f = fixture(12, 2, &Evaluator::rotate_sum_rotations(stride, count));
    let slots = 64;
    let v = f.random(slots);
    let ct = f.encrypt(&v, slots);
    let sum = f.eval.rotate_sum(&ct, stride, count).unwrap();
    let want: Vec<Complex64> = (0..slots)
        .map(|i| {
            (0..count)
                .map(|t| v[(i + t * stride as usize) % slots])
                .sum()
        })
        .collect();
    let stats = f.precision(&want, &sum);
    assert!(stats.min_bits >= FRESH_MIN_BITS - 4.0, "{stats}");
    assert_eq!(f.eval.counts().rotations, 3);
}

#[test]
fn mismatched_operands_are_errors_not_silent() {
    let mut f = fixture(12, 3, &[]);
    let v = f.random(8);
    let a = f.encrypt(&v, 8);
    let lower = f.eval.drop_to_level(&a, 1).unwrap();
    assert!(matches!(
        f.eval.add(&a, &lower),
        Err(CkksError::LevelMismatch { lhs: 3, rhs: 1 })
    ));
    assert!(matches!(
        f.eval.mul_relin(&a, &lower),
        Err(CkksError::LevelMismatch { .. })
    ));
    let mut other_scale = a.clone();
    other_scale.set_scale(a.scale() * (1.0 + 1e-6));
    assert!(matches!(
        f.eval.add(&a, &other_scale),
        Err(CkksError::ScaleMismatch { .. })
    ));
    let w = f.random(16);
    let b = f.encrypt(&w, 16);
    assert!(matches!(
        f.eval.add(&a, &b),
        Err(CkksError::SlotMismatch { .. })
    ));
    let bottom = f.eval.drop_to_level(&a, 0).unwrap();
    assert!(matches!(
        f.eval.rescale(&bottom),
        Err(CkksError::NotEnoughLevels { .. })
    ));
    // A ciphertext of other parameters is refused.
    let g = fixture(11, 3, &[]);
    assert!(matches!(g.eval.add(&a, &a), Err(CkksError::ParamsMismatch)));
    assert!(g.sk.decrypt(&a).is_err());
    // Without a relinearization key, multiplication says so.
    let bare = Evaluator::new(&f.params, Arc::new(Default::default()));
    assert!(matches!(
        bare.mul_relin(&a, &a),
        Err(CkksError::MissingRelinKey)
    ));
}
