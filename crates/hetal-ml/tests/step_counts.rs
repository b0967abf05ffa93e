//! Bootstraps and operation counts of encrypted training steps at HETAL's sizes, read off the
//! slot simulator at the `n16-boot` primes (10 levels after bootstrapping, the training
//! circuit's bound, every bootstrapped value checked against it): the figures of BENCHMARKS.md
//! ("Encrypted training"), as upper bounds. Four steps from a fresh state, so that the
//! steady state is counted too (ours: the momentum refreshed with the softmax errors, the
//! weights never on their own; HETAL's: its weights refreshed by the step that needs it).

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test fixtures"
)]

use hetal_ckks::{presets, Params};
use hetal_ml::train::{boot_params, Geometry, TrainAlgo, Trainer, BOOT_BOUND};
use hetal_ml::{Bootstrap, CkksOps, SlotSim};
use ndarray::Array2;

/// Per step: bootstraps and ct×ct products.
fn steps(a: usize, b: usize, c: usize, n: usize, algo: TrainAlgo) -> Vec<(u64, u64)> {
    let params = Params::new(presets::n16_boot()).unwrap();
    let level = params.max_level() - boot_params().depth();
    let sim = || {
        SlotSim::from_params(&params)
            .with_bootstrapping(level, BOOT_BOUND)
            .unwrap()
    };
    let (ops, mut client) = (sim(), sim());
    let g = Geometry::with_algo(params.max_slots(), b - 1, c, a, algo).unwrap();
    // Ours: one ciphertext each for the weights and the momentum (a refresh is one paired
    // bootstrap); HETAL's: one per block column.
    let cts = match algo {
        TrainAlgo::Ours => 1,
        TrainAlgo::Hetal => b.div_ceil(params.max_slots() / a),
    };
    assert_eq!(g.weights_layout().cts(), cts);
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
    let got = steps(a, b, c, max_boots.len(), TrainAlgo::Ours);
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
    check(1024, 65, 10, &[6, 6, 6, 6], 214);
}

#[test]
fn bootstraps_per_step_at_1024_769_16() {
    check(1024, 769, 16, &[5, 5, 5, 5], 566);
}

/// HETAL's pipeline at (1024, 65, 10): its softmax's bootstraps (76 levels at n16-boot's 10
/// per bootstrap; HETAL's "6–9 of the logits" and the values live beside them) plus, once the
/// weights run out of levels, the refresh of their 3 block columns and the momentum's (3 paired
/// bootstraps). Asserted exactly (the schedule is deterministic): 11, 11, 14 over three steps
/// from a fresh state.
#[test]
fn hetal_bootstraps_per_step_at_1024_65_10() {
    let got = steps(1024, 65, 10, 3, TrainAlgo::Hetal);
    let ours = steps(1024, 65, 10, 3, TrainAlgo::Ours);
    eprintln!("(1024, 65, 10): (bootstraps, ct×ct) per step: HETAL {got:?}, ours {ours:?}");
    let boots: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(boots, [11, 11, 14]);
    // Ours, for comparison (asserted above as upper bounds).
    assert!(ours.iter().zip(&boots).all(|(o, &h)| o.0 < h), "{ours:?}");
}
