//! The homomorphic DFT of bootstrapping, encrypted: the factored special FFT (`dft`) evaluated
//! by the BSGS linear-transform evaluator (`lintrans`), level by level, against its plaintext
//! twin.
#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::collections::BTreeSet;
use std::sync::Arc;

use hetal_ckks::{
    dft, presets, Encoder, Evaluator, KeyGenerator, LinearTransform, Params, PrecisionStats,
};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Three levels of DFT, each adding key-switch and rescale noise (≈ 2^-30 per slot at scale
/// 2^40), amplified by the butterflies (each decoding stage can double a magnitude: up to 2^9
/// over 9 stages, though the noise adds up in quadrature, ≈ 2^4.5): about 26 bits measured
/// over 2^9 slots, asserted with a 3-bit margin.
const DFT_MIN_BITS: f64 = 23.0;

#[test]
fn encrypted_decoding_dft_in_three_levels() {
    let params = Params::new_insecure(presets::insecure_test(11, 4)).unwrap();
    let enc = Encoder::new(&params);
    let slots = 512;
    let groups = dft::grouped(&dft::decode_stages(&enc, slots), 3, slots);
    let transforms: Vec<LinearTransform> = groups
        .iter()
        .map(|g| {
            LinearTransform::from_diagonals(slots, g.iter().map(|(&k, d)| (k as i64, d.clone())))
                .unwrap()
        })
        .collect();
    let rotations: BTreeSet<i64> = transforms
        .iter()
        .flat_map(|t| t.rotations_needed())
        .collect();
    let rotations: Vec<i64> = rotations.into_iter().collect();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(41));
    let sk = keygen.gen_secret_key();
    let eval = Evaluator::new(
        &params,
        Arc::new(keygen.gen_eval_keys(&sk, &rotations, false)),
    );

    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let v: Vec<Complex64> = (0..slots)
        .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)) / 8.0)
        .collect();
    let input = dft::bit_reversed(&v);
    let pt = enc
        .encode(&input, slots, params.max_level(), params.default_scale())
        .unwrap();
    let mut ct = sk.encrypt(&pt, &mut rng).unwrap();
    let mut plain = input.clone();
    for (group, t) in groups.iter().zip(&transforms) {
        let encoded = t.encode(&enc, ct.level()).unwrap();
        ct = encoded.apply(&eval, &ct).unwrap();
        plain = dft::apply(group, &plain);
    }
    assert_eq!(ct.level(), params.max_level() - 3);
    // The plaintext twin (checked against the encoder's special FFT in the unit tests).
    let got = enc.decode(&sk.decrypt(&ct).unwrap());
    let stats = PrecisionStats::new(&plain, &got);
    assert!(stats.min_bits >= DFT_MIN_BITS, "{stats}");
}
