//! Bootstrapping at small, insecure parameters: precision, levels left, and arithmetic after.
#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::{
    presets, BootParams, Bootstrapper, Encoder, Evaluator, KeyGenerator, Params, ParamsLiteral,
    PrecisionStats, SecretDist,
};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Worst slot after bootstrapping. The floor is 15 bits; measured here: about 22 bits
/// with full slots and 26 with 64 slots, limited by the EvalMod noise (≈ 2^-45 at scale 2^55,
/// times the interpolant's noise gain) magnified by q_0/Δ = 2^15 and the DFT of SlotsToCoeffs.
const BOOT_MIN_BITS: f64 = 18.0;

/// Levels left for the user after bootstrapping in the test set.
const LEVELS_AFTER: usize = 3;

/// An insecure N = 2^11 set shaped like a bootstrapping preset: q_0 of 55 bits (so that
/// m/q_0 ≈ 2^-15 and the sine's curvature error, (2π·2^-15)²/6 ≈ 2^-27, is negligible), user
/// levels at 2^40, SlotsToCoeffs at 2^40, EvalMod and CoeffsToSlots on 55-bit primes.
fn params() -> Params {
    let log_q: Vec<u32> = std::iter::once(55)
        .chain(std::iter::repeat_n(40, LEVELS_AFTER + 3))
        .chain(std::iter::repeat_n(55, 7 + 3))
        .collect();
    Params::new_insecure(ParamsLiteral {
        log_q,
        log_p: vec![61; 3],
        dnum: 7,
        // h = 32 keeps |I| small, as the ephemeral secret of encapsulation does.
        secret: SecretDist::FixedWeight { h: 32 },
        ..presets::insecure_test(11, 1)
    })
    .unwrap()
}

fn run(slots: usize) {
    let params = params();
    let boot = Bootstrapper::new(
        &params,
        &BootParams {
            slots,
            ..BootParams::default()
        },
    )
    .unwrap();
    assert_eq!(boot.depth(), 3 + 7 + 3);
    assert_eq!(boot.levels_after(), LEVELS_AFTER);
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(51));
    let sk = keygen.gen_secret_key();
    let eval = Evaluator::new(
        &params,
        Arc::new(keygen.gen_eval_keys(&sk, boot.rotations(), true)),
    );
    let enc = Encoder::new(&params);
    let mut rng = ChaCha20Rng::seed_from_u64(52);
    let z: Vec<Complex64> = (0..boot.slots())
        .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect();
    let pt = enc
        .encode(&z, boot.slots(), 0, params.default_scale())
        .unwrap();
    let ct = sk.encrypt(&pt, &mut rng).unwrap();
    let out = boot.bootstrap(&eval, &ct).unwrap();
    assert_eq!(out.level(), boot.levels_after());
    assert_eq!(out.scale(), ct.scale());
    let stats = PrecisionStats::new(&z, &enc.decode(&sk.decrypt(&out).unwrap()));
    assert!(
        stats.min_bits >= BOOT_MIN_BITS,
        "slots {}: {stats}",
        boot.slots()
    );

    // Multiplications after bootstrapping still decrypt correctly.
    let sq = eval.rescale(&eval.mul_relin(&out, &out).unwrap()).unwrap();
    let want: Vec<Complex64> = z.iter().map(|x| x * x).collect();
    let stats = PrecisionStats::new(&want, &enc.decode(&sk.decrypt(&sq).unwrap()));
    assert!(
        stats.min_bits >= BOOT_MIN_BITS - 1.0,
        "after a square: {stats}"
    );
}

#[test]
fn full_slots() {
    run(0);
}

#[test]
fn sparse_slots() {
    run(64);
}
