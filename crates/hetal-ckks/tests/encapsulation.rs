//! The building blocks of sparse-secret encapsulation for bootstrapping (Bossuat et al.,
//! ePrint 2022/024): switching a level-0 ciphertext from the dense main secret to an ephemeral
//! sparse secret in a small-modulus parameter set, ModRaise, and switching back.
#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::{
    presets, Encoder, EvalKeySet, Evaluator, KeyGenerator, Params, ParamsLiteral, SecretDist,
};
use hetal_ring::{MixedRadix, Modulus, RnsPoly};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const EPHEMERAL_WEIGHT: usize = 32;

/// Centred coefficients of a plaintext polynomial (NTT form) over the first `limbs` primes.
fn coefficients(params: &Params, poly: &RnsPoly) -> Vec<f64> {
    let limbs = poly.num_limbs();
    let primes = params.q_primes(limbs - 1);
    let mut p = poly.clone();
    p.intt(primes);
    let moduli: Vec<Modulus> = primes.iter().map(|q| *q.modulus()).collect();
    MixedRadix::new(&moduli).unwrap().poly_to_f64(&p)
}

#[test]
fn dense_to_sparse_mod_raise_and_back() {
    let main = Params::new_insecure(presets::insecure_test(12, 4)).unwrap();
    // The ephemeral set: the same q_0, one special prime, the sparse secret.
    let eph = Params::new_insecure(ParamsLiteral {
        log_q: vec![50],
        log_p: vec![60],
        dnum: 1,
        secret: SecretDist::FixedWeight {
            h: EPHEMERAL_WEIGHT,
        },
        ..presets::insecure_test(12, 0)
    })
    .unwrap();
    assert_eq!(
        main.q_primes(0)[0].value(),
        eph.q_primes(0)[0].value(),
        "q_0 must be shared"
    );

    let mut kg_main = KeyGenerator::with_rng(&main, ChaCha20Rng::seed_from_u64(1));
    let mut kg_eph = KeyGenerator::with_rng(&eph, ChaCha20Rng::seed_from_u64(2));
    let sk = kg_main.gen_secret_key();
    let sk_sparse = kg_eph.gen_secret_key();
    let sk_dense_in_eph = sk.reinterpret(&eph).unwrap();
    let sk_sparse_in_main = sk_sparse.reinterpret(&main).unwrap();
    let dense_to_sparse = kg_eph
        .gen_switching_key_between(&sk_dense_in_eph, &sk_sparse)
        .unwrap();
    let sparse_to_dense = kg_main
        .gen_switching_key_between(&sk_sparse_in_main, &sk)
        .unwrap();
    assert!(kg_main
        .gen_switching_key_between(&sk_dense_in_eph, &sk)
        .is_err());

    let eval_main = Evaluator::new(&main, Arc::new(EvalKeySet::default()));
    let eval_eph = Evaluator::new(&eph, Arc::new(EvalKeySet::default()));
    let enc = Encoder::new(&main);
    let values: Vec<f64> = (0..64).map(|i| (i as f64 / 32.0) - 1.0).collect();
    let pt = enc
        .encode_real(&values, 64, main.max_level(), main.default_scale())
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let ct = sk.encrypt(&pt, &mut rng).unwrap();
    let bottom = eval_main.drop_to_level(&ct, 0).unwrap();

    // 1. Dense to sparse at level 0, in the small parameter set.
    let sparse = eval_eph.switch_key(&bottom, &dense_to_sparse).unwrap();
    let m0 = coefficients(&eph, sk_sparse.decrypt(&sparse).unwrap().poly());
    let want = coefficients(&main, sk.decrypt(&bottom).unwrap().poly());
    let ks_err = m0
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(ks_err < 1e4, "key-switch error {ks_err} (scale 2^40)");

    // 2. ModRaise: decrypts to m + q_0·I with |I| ≤ (h + 1)/2.
    let raised = eval_main.mod_raise(&sparse).unwrap();
    assert_eq!(raised.level(), main.max_level());
    let q0 = main.q_primes(0)[0].value() as f64;
    let check_raised = |coeffs: &[f64]| {
        for (&c, &m) in coeffs.iter().zip(&m0) {
            let i = (c - m) / q0;
            assert!((i - i.round()).abs() < 1e-6, "not m + q0·I: {c} vs {m}");
            assert!(
                i.abs() <= (EPHEMERAL_WEIGHT as f64 + 1.0) / 2.0,
                "|I| = {i}"
            );
        }
    };
    check_raised(&coefficients(
        &main,
        sk_sparse_in_main.decrypt(&raised).unwrap().poly(),
    ));

    // 3. Back to the dense secret at the top level: the same value, plus key-switch noise.
    let dense = eval_main.switch_key(&raised, &sparse_to_dense).unwrap();
    let back = coefficients(&main, sk.decrypt(&dense).unwrap().poly());
    let raised_coeffs = coefficients(&main, sk_sparse_in_main.decrypt(&raised).unwrap().poly());
    let err = back
        .iter()
        .zip(&raised_coeffs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e4, "switch-back error {err}");

    // ModRaise refuses ciphertexts above level 0.
    assert!(eval_main.mod_raise(&ct).is_err());
}
