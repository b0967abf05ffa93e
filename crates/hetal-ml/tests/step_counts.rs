//! Bootstraps and operation counts of encrypted training steps at HETAL's sizes, read off the
//! slot simulator at the `n16-boot` primes (10 levels after bootstrapping, the training
//! circuit's bound, every bootstrapped value checked against it): the figures of BENCHMARKS.md
//! ("Encrypted training"), as upper bounds. Three steps from a fresh state, so that the
//! steady state (the weights refreshed by the step that needs it) is counted too.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test fixtures"
)]

use hetal_ckks::{presets, Params};
use hetal_ml::train::{boot_params, Geometry, Trainer, BOOT_BOUND};
use hetal_ml::{Bootstrap, CkksOps, SlotSim};
use ndarray::Array2;

/// Per step: bootstraps and ct×ct products.
fn steps(a: usize, b: usize, c: usize, n: usize) -> Vec<(u64, u64)> {
    let params = Params::new(presets::n16_boot()).unwrap();
    let level = params.max_level() - boot_params().depth();
    let sim = || {
        SlotSim::from_params(&params)
            .with_bootstrapping(level, BOOT_BOUND)
            .unwrap()
    };
    let (ops, mut client) = (sim(), sim());
    let g = Geometry::new(params.max_slots(), b - 1, c, a).unwrap();
    // One ciphertext each for the weights and the momentum: a refresh is one paired bootstrap.
    assert_eq!(g.weights_layout().cts(), 1);
    let x = Array2::from_shape_fn((a, b - 1), |(i, j)| {
        ((i * 7 + j * 13) % 17) as f64 / 8.5 - 1.0
    });
    let labels: Vec<usize> = (0..a).map(|i| (i * 5) % c).collect();
    let batch = g.encrypt_batch(&mut client, &x, &labels, level).unwrap();
    let mut state = g.encrypt_initial(&mut client, level).unwrap();
    let trainer = Trainer::new(&ops, g, 1.0, 0.9).unwrap();
    (0..n)
        .map(|_| {
            let (b0, m0) = (ops.bootstraps(), ops.counts().ct_mult);
            state = trainer.step(state.clone(), &batch).unwrap();
            (ops.bootstraps() - b0, ops.counts().ct_mult - m0)
        })
        .collect()
}

fn check(a: usize, b: usize, c: usize, max_boots: &[u64], max_mults: u64) {
    let got = steps(a, b, c, max_boots.len());
    eprintln!("({a}, {b}, {c}): (bootstraps, ct×ct) per step {got:?}");
    for (&(boots, mults), &max) in got.iter().zip(max_boots) {
        assert!(
            boots <= max,
            "({a}, {b}, {c}): {got:?} against {max_boots:?}"
        );
        assert!(
            mults <= max_mults,
            "({a}, {b}, {c}): {got:?} against {max_mults}"
        );
    }
}

#[test]
fn bootstraps_per_step_at_1024_65_10() {
    check(1024, 65, 10, &[6, 6, 7], 214);
}

#[test]
fn bootstraps_per_step_at_1024_769_16() {
    check(1024, 769, 16, &[6, 6, 7], 566);
}
