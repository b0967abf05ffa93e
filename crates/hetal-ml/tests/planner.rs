//! The level planner: bootstrapping placed by [`ensure_levels`] between the stages of both
//! softmaxes, on the simulator (which checks every bootstrapped value against the circuit's
//! bound).

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use hetal_ml::softmax::{
    reference_softmax, softmax, softmax_depth, softmax_errors, softmax_to_scale, SoftmaxAlgo,
};
use hetal_ml::train::BOOT_BOUND;
use hetal_ml::{
    ensure_each, ensure_levels, BlockShape, Bootstrap, EncMatrix, Layout, Leveled, MlError,
    SlotClient, SlotSim,
};
use ndarray::Array2;
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const SLOTS: usize = 1 << 12;
/// HETAL's budget: 9 levels between bootstraps (here all primes 2^40, top level 12).
const LEVELS_AFTER: usize = 9;

fn sim() -> SlotSim {
    SlotSim::uniform(SLOTS, 12, 40)
        .with_bootstrapping(LEVELS_AFTER, 1.0)
        .unwrap()
}

#[test]
fn ensure_levels_bootstraps_only_short_values_and_pairs_them() {
    let mut sim = sim();
    let v = |x: f64| vec![Complex64::new(x, 0.0); 8];
    let a = sim.encrypt(&v(0.5), 2).unwrap();
    let b = sim.encrypt(&v(-0.25), 3).unwrap();
    let c = sim.encrypt(&v(0.125), 9).unwrap();
    // Enough levels: nothing happens but the common level.
    let out = ensure_levels(&sim, vec![a.clone(), b.clone()], 2, "t").unwrap();
    assert_eq!(sim.bootstraps(), 0);
    assert!(out.iter().all(|x| x.level() == 2));
    // Two short values: one pair bootstrap; the long one is only dropped.
    let out = ensure_levels(&sim, vec![a, b, c], 5, "t").unwrap();
    assert_eq!(sim.bootstraps(), 1);
    assert!(out.iter().all(|x| x.level() == LEVELS_AFTER));
    let decrypted: Vec<f64> = out.iter().map(|x| sim.decrypt(x).unwrap()[0].re).collect();
    assert_eq!(decrypted, [0.5, -0.25, 0.125]);
    // A stage deeper than a bootstrap gives is an error, not a loop.
    assert!(matches!(
        ensure_levels(&sim, out, LEVELS_AFTER + 1, "t"),
        Err(MlError::NotEnoughLevels { .. })
    ));
}

#[test]
fn ensure_each_refreshes_each_value_for_its_own_need() {
    let mut sim = sim();
    let scale = sim.default_scale();
    let v = |x: f64| vec![Complex64::new(x, 0.0); 8];
    // Short for their own needs: a (need 4) and c (need 8), sharing a scale: one pair. b is
    // short of c's need but not of its own, and keeps its level; d (another scale) is short
    // and is bootstrapped alone.
    let a = sim.encrypt_scaled(&v(0.5), 1, scale / 8.0).unwrap();
    let b = sim.encrypt_scaled(&v(0.75), 5, scale / 8.0).unwrap();
    let c = sim.encrypt_scaled(&v(-0.25), 6, scale / 8.0).unwrap();
    let d = sim.encrypt(&v(0.125), 0).unwrap();
    let out = ensure_each(&sim, vec![(a, 4), (b, 4), (c, 8), (d, 1)], "t").unwrap();
    assert_eq!(sim.bootstraps(), 2);
    let levels: Vec<usize> = out.iter().map(Leveled::level).collect();
    assert_eq!(levels, [LEVELS_AFTER, 5, LEVELS_AFTER, LEVELS_AFTER]);
    let decrypted: Vec<f64> = out.iter().map(|x| sim.decrypt(x).unwrap()[0].re).collect();
    assert_eq!(decrypted, [0.5, 0.75, -0.25, 0.125]);
    assert!(out.iter().take(3).all(|x| x.scale() == scale / 8.0));
    // No need beyond what a bootstrap gives.
    let needs = [1, 1, 1, LEVELS_AFTER + 1];
    assert!(matches!(
        ensure_each(&sim, out.into_iter().zip(needs).collect(), "t"),
        Err(MlError::NotEnoughLevels { .. })
    ));
}

#[test]
fn simulated_bootstrap_refuses_values_out_of_bounds() {
    let mut sim = sim();
    let scale = sim.default_scale();
    let big = sim
        .encrypt_scaled(&[Complex64::new(3.0, 0.0); 4], 1, scale / 2.0)
        .unwrap();
    assert!(matches!(
        sim.bootstrap(&big),
        Err(MlError::BootstrapRange { .. })
    ));
    let ok = sim
        .encrypt_scaled(&[Complex64::new(3.0, 0.0); 4], 1, scale / 4.0)
        .unwrap();
    let out = sim.bootstrap(&ok).unwrap();
    assert_eq!((out.level(), out.scale()), (LEVELS_AFTER, scale / 4.0));
    // A pair must be real.
    let z = sim.encrypt(&[Complex64::new(0.1, 0.1); 4], 1).unwrap();
    assert!(sim.bootstrap_pair(&z, &z).is_err());
    // Without bootstrapping configured, a short value is an error.
    let plain = SlotSim::uniform(SLOTS, 12, 40);
    assert!(ensure_levels(&plain, vec![z], 2, "t").is_err());
}

/// Our softmax at 9 levels per bootstrap, logits at the default scale: every bootstrapped value is
/// within the circuit's bound (the simulator checks), the accuracy is the bootstrap-free one,
/// and the number of bootstraps is what the stage depths imply.
#[test]
fn softmax_runs_across_bootstraps_within_bounds() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for c in [2usize, 3, 4, 7, 10, 16] {
        // Rows wide enough that no block is split into even and odd rows (as in training).
        let s1 = 2 * c.next_power_of_two();
        let shape = BlockShape::with_slots(SLOTS / s1, SLOTS).unwrap();
        let rows = shape.s0();
        let x = Array2::from_shape_fn((rows, c), |_| rng.random_range(-128.0..=128.0));
        let mut sim = sim();
        let ex = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, 1).unwrap();
        let out = softmax(&sim, &ex, SoftmaxAlgo::Ours).unwrap();
        let (max_err, _) = softmax_errors(&out.decrypt(&sim).unwrap(), &reference_softmax(&x));
        assert!(max_err < 2e-4, "c = {c}: {max_err}");
        let boots = sim.bootstraps();
        // Per round at most two (three live values when c is not a power of two), then at
        // most one before the exponential, one in its squarings and one before normalizing.
        let rounds = c.next_power_of_two().trailing_zeros() as u64;
        assert!(
            (rounds..=3 * rounds + 3).contains(&boots),
            "c = {c}: {boots} bootstraps"
        );
        eprintln!("c = {c}: {boots} bootstraps, max error {max_err:.2e}");
    }
}

#[test]
fn softmax_lands_on_a_chosen_scale() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let c = 10;
    let shape = BlockShape::with_slots(SLOTS / 32, SLOTS).unwrap();
    let x = Array2::from_shape_fn((shape.s0(), c), |_| rng.random_range(-128.0..=128.0));
    for algo in [SoftmaxAlgo::Ours, SoftmaxAlgo::Hetal] {
        let mut sim = sim();
        let ex = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, 1).unwrap();
        let plain = softmax(&sim, &ex, algo).unwrap();
        let target = sim.default_scale() / 8.0;
        let landed = softmax_to_scale(&sim, &ex, algo, Some(target)).unwrap();
        assert!(
            landed.blocks().iter().all(|b| b.scale() == target),
            "{algo}"
        );
        assert!(plain.blocks().iter().all(|b| b.scale() != target), "{algo}");
        let (a, b) = (plain.decrypt(&sim).unwrap(), landed.decrypt(&sim).unwrap());
        let diff = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-9, "{algo}: {diff}");
        // Free for ours (HETAL's takes a constant product, after a bootstrap when its output
        // has no level left).
        if algo == SoftmaxAlgo::Ours {
            assert_eq!(plain.level(), landed.level());
        }
    }
}

/// HETAL's softmax at 9 levels per bootstrap from logits with the one level of its first stage,
/// under training's bound (every bootstrapped value checked): with all primes 2^40 the scales
/// never drift, so the result is the straight circuit's (all levels up front) to rounding, and
/// the bootstraps are about its depth over 9.
#[test]
fn hetal_softmax_runs_across_bootstraps_within_bounds() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    for c in [2usize, 3, 10, 16] {
        let s1 = 2 * c.next_power_of_two();
        let shape = BlockShape::with_slots(SLOTS / s1, SLOTS).unwrap();
        let x = Array2::from_shape_fn((shape.s0(), c), |_| rng.random_range(-128.0..=128.0));
        let mut sim = SlotSim::uniform(SLOTS, 12, 40)
            .with_bootstrapping(LEVELS_AFTER, BOOT_BOUND)
            .unwrap();
        let ex = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, 1).unwrap();
        let out = softmax(&sim, &ex, SoftmaxAlgo::Hetal)
            .unwrap()
            .decrypt(&sim)
            .unwrap();
        let depth = softmax_depth(c, SoftmaxAlgo::Hetal).unwrap();
        let mut straight = SlotSim::uniform(SLOTS, depth, 40);
        let ex = EncMatrix::encrypt(&mut straight, &x, shape, Layout::Blocks, depth).unwrap();
        let expected = softmax(&straight, &ex, SoftmaxAlgo::Hetal)
            .unwrap()
            .decrypt(&straight)
            .unwrap();
        let diff = (&out - &expected)
            .iter()
            .fold(0.0f64, |m, e| m.max(e.abs()));
        let (max_err, _) = softmax_errors(&out, &reference_softmax(&x));
        let boots = sim.bootstraps();
        eprintln!(
            "HETAL c = {c}: {boots} bootstraps ({depth} levels), max error {max_err:.2e}, \
             |bootstrapped − straight| ≤ {diff:.1e}"
        );
        assert!(diff < 1e-12, "c = {c}: {diff}");
        // At least one per 9 levels of depth; at most two values refreshed per stage.
        let boots_min = (depth as u64 - 1).div_ceil(LEVELS_AFTER as u64);
        assert!(
            (boots_min..=2 * boots_min + 2).contains(&boots),
            "c = {c}: {boots} bootstraps"
        );
    }
}
