//! Bootstrapping at small, insecure parameters: precision, levels left, arithmetic after,
//! with and without sparse-secret encapsulation, full and sparse slots, and two real
//! ciphertexts at once.
#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::{
    presets, BootParams, Bootstrapper, Encoder, Evaluator, KeyGenerator, Params, ParamsLiteral,
    PrecisionStats, SecretDist,
};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Worst slot after bootstrapping. The floor is 15 bits; measured here: about 27 bits
/// with full slots, limited by the key-switch noise of CoeffsToSlots (≈ 2^-45 at scale 2^55,
/// times K) magnified by q_0/Δ = 2^6 and the DFT of SlotsToCoeffs. Asserted with a margin.
const BOOT_MIN_BITS: f64 = 23.0;

/// Levels left for the user after bootstrapping in the test set.
const LEVELS_AFTER: usize = 3;

/// An insecure N = 2^11 set shaped like a bootstrapping preset: q_0 of 46 bits (m/q_0 ≤ 2^-6:
/// the arcsine correction removes the sine's curvature), user levels at 2^40, SlotsToCoeffs at
/// 2^40, EvalMod (sine and arcsine) and CoeffsToSlots on 55-bit primes.
fn params(dense: bool) -> Params {
    let log_q: Vec<u32> = std::iter::once(46)
        .chain(std::iter::repeat_n(40, LEVELS_AFTER + 3))
        .chain(std::iter::repeat_n(55, 7 + 3 + 3))
        .collect();
    Params::new_insecure(ParamsLiteral {
        log_q,
        log_p: vec![61; 3],
        dnum: 8,
        // Without encapsulation, a sparse main secret keeps |I| small.
        secret: if dense {
            SecretDist::Ternary
        } else {
            SecretDist::FixedWeight { h: 32 }
        },
        ..presets::insecure_test(11, 1)
    })
    .unwrap()
}

struct Fixture {
    params: Params,
    boot: Bootstrapper,
    sk: hetal_ckks::SecretKey,
    eval: Evaluator,
    keys: Option<hetal_ckks::BootKeys>,
    enc: Encoder,
}

fn fixture(slots: usize, ephemeral_weight: Option<usize>) -> Fixture {
    let params = params(ephemeral_weight.is_some());
    let boot = Bootstrapper::new(
        &params,
        &BootParams {
            slots,
            ephemeral_weight,
            ..BootParams::default()
        },
    )
    .unwrap();
    assert_eq!(boot.depth(), 3 + 7 + 3 + 3);
    assert_eq!(BootParams::default().depth(), boot.depth());
    assert_eq!(boot.levels_after(), LEVELS_AFTER);
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(51));
    let sk = keygen.gen_secret_key();
    let eval = Evaluator::new(
        &params,
        Arc::new(keygen.gen_eval_keys(&sk, boot.rotations(), true)),
    );
    let keys = boot
        .gen_boot_keys(&sk, ChaCha20Rng::seed_from_u64(53))
        .unwrap();
    assert_eq!(keys.is_some(), ephemeral_weight.is_some());
    let enc = Encoder::new(&params);
    Fixture {
        params,
        boot,
        sk,
        eval,
        keys,
        enc,
    }
}

fn run(slots: usize, ephemeral_weight: Option<usize>) {
    let f = fixture(slots, ephemeral_weight);
    let mut rng = ChaCha20Rng::seed_from_u64(52);
    let z: Vec<Complex64> = (0..f.boot.slots())
        .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect();
    let pt = f
        .enc
        .encode(&z, f.boot.slots(), 0, f.params.default_scale())
        .unwrap();
    let ct = f.sk.encrypt(&pt, &mut rng).unwrap();
    let out = f.boot.bootstrap(&f.eval, &ct, f.keys.as_ref()).unwrap();
    assert_eq!(out.level(), f.boot.levels_after());
    assert_eq!(out.scale(), ct.scale());
    let stats = PrecisionStats::new(&z, &f.enc.decode(&f.sk.decrypt(&out).unwrap()));
    assert!(
        stats.min_bits >= BOOT_MIN_BITS,
        "slots {}: {stats}",
        f.boot.slots()
    );

    // Multiplications after bootstrapping still decrypt correctly.
    let sq = f
        .eval
        .rescale(&f.eval.mul_relin(&out, &out).unwrap())
        .unwrap();
    let want: Vec<Complex64> = z.iter().map(|x| x * x).collect();
    let stats = PrecisionStats::new(&want, &f.enc.decode(&f.sk.decrypt(&sq).unwrap()));
    assert!(
        stats.min_bits >= BOOT_MIN_BITS - 1.0,
        "after a square: {stats}"
    );
}

#[test]
fn full_slots_with_encapsulation() {
    run(0, Some(32));
}

#[test]
fn sparse_slots_with_encapsulation() {
    run(64, Some(32));
}

#[test]
fn sparse_main_secret_without_encapsulation() {
    run(64, None);
}

#[test]
fn two_real_ciphertexts_for_the_price_of_one() {
    let f = fixture(128, Some(32));
    let mut rng = ChaCha20Rng::seed_from_u64(63);
    let mut real = || -> Vec<f64> { (0..128).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (a, b) = (real(), real());
    let mut rng = ChaCha20Rng::seed_from_u64(64);
    let mut encrypt = |v: &[f64]| {
        let pt = f
            .enc
            .encode_real(v, 128, 0, f.params.default_scale())
            .unwrap();
        f.sk.encrypt(&pt, &mut rng).unwrap()
    };
    let (ca, cb) = (encrypt(&a), encrypt(&b));
    let (oa, ob) = f
        .boot
        .bootstrap_pair(&f.eval, &ca, &cb, f.keys.as_ref())
        .unwrap();
    assert_eq!((oa.scale(), ob.scale()), (ca.scale(), cb.scale()));
    for (want, ct) in [(&a, &oa), (&b, &ob)] {
        let want: Vec<Complex64> = want.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        let stats = PrecisionStats::new(&want, &f.enc.decode(&f.sk.decrypt(ct).unwrap()));
        assert!(stats.min_bits >= BOOT_MIN_BITS, "{stats}");
    }
    // Values of up to 3 (beyond the circuit's bound of 1 at Δ) encrypted at Δ/4 come back at
    // Δ, unchanged: precision relative to the values' size, minus the 2 bits of the quarter scale.
    let delta = f.params.default_scale();
    let (a3, b3): (Vec<f64>, Vec<f64>) = (
        a.iter().map(|x| 3.0 * x).collect(),
        b.iter().map(|x| 3.0 * x).collect(),
    );
    let mut rng = ChaCha20Rng::seed_from_u64(67);
    let mut encrypt_quarter = |v: &[f64]| {
        let pt = f.enc.encode_real(v, 128, 0, delta / 4.0).unwrap();
        f.sk.encrypt(&pt, &mut rng).unwrap()
    };
    let (ca, cb) = (encrypt_quarter(&a3), encrypt_quarter(&b3));
    let (oa, ob) = f
        .boot
        .bootstrap_pair_to(&f.eval, &ca, &cb, f.keys.as_ref(), delta)
        .unwrap();
    assert_eq!((oa.scale(), ob.scale()), (delta, delta));
    for (want, ct) in [(&a3, &oa), (&b3, &ob)] {
        let want: Vec<Complex64> = want.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        let stats = PrecisionStats::new(&want, &f.enc.decode(&f.sk.decrypt(ct).unwrap()));
        // Bits against absolute error: values 3× larger, a quarter of the scale.
        assert!(
            stats.min_bits + 2.0 + 3f64.log2() >= BOOT_MIN_BITS,
            "{stats}"
        );
    }
    assert!(f
        .boot
        .bootstrap_pair_to(&f.eval, &ca, &cb, f.keys.as_ref(), f64::NAN)
        .is_err());
}

#[test]
fn wrong_inputs_are_errors() {
    let f = fixture(64, Some(32));
    let pt = f
        .enc
        .encode_real(&[0.5; 32], 32, 0, f.params.default_scale())
        .unwrap();
    let ct =
        f.sk.encrypt(&pt, &mut ChaCha20Rng::seed_from_u64(65))
            .unwrap();
    assert!(
        f.boot.bootstrap(&f.eval, &ct, f.keys.as_ref()).is_err(),
        "slot mismatch"
    );
    let pt = f
        .enc
        .encode_real(&[0.5; 64], 64, 0, f.params.default_scale())
        .unwrap();
    let ct =
        f.sk.encrypt(&pt, &mut ChaCha20Rng::seed_from_u64(66))
            .unwrap();
    assert!(
        f.boot.bootstrap(&f.eval, &ct, None).is_err(),
        "encapsulation keys missing"
    );
    let too_few = Params::new_insecure(presets::insecure_test(11, 6)).unwrap();
    assert!(Bootstrapper::new(&too_few, &BootParams::default()).is_err());
}
