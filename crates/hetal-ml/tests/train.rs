//! Encrypted training steps against exact plaintext Nesterov steps: on the simulator (with
//! bootstrapping at HETAL's 9 levels, every bootstrapped value checked against the circuit's
//! bound) and encrypted at small N against the simulator.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test fixtures"
)]

use hetal_ml::data::{Dataset, Standardizer};
use hetal_ml::plain::{softmax_rows, with_bias};
use hetal_ml::softmax::{twin_softmax, SoftmaxAlgo};
use hetal_ml::train::{Geometry, TrainAlgo, Trainer};
use hetal_ml::{Bootstrap, SlotSim};
use ndarray::{Array2, ArrayView2, Axis, Slice};
use std::time::Instant;

const SLOTS: usize = 1 << 12;
const BATCH: usize = 32;
const LR: f64 = 1.0;
const MU: f64 = 0.9;

fn digits() -> (Array2<f64>, Vec<usize>) {
    let d = Dataset::digits();
    let x = Standardizer::fit(&d.train.features).apply(&d.train.features);
    (x, d.train.labels.to_vec())
}

fn rows(x: &Array2<f64>, k: usize) -> ArrayView2<'_, f64> {
    x.slice_axis(Axis(0), Slice::from(k * BATCH..(k + 1) * BATCH))
}

/// `steps` exact Nesterov steps from zero, batch by batch.
fn plain_steps(x: &Array2<f64>, labels: &[usize], classes: usize, steps: usize) -> Array2<f64> {
    nesterov_steps(x, labels, classes, steps, softmax_rows)
}

/// [`plain_steps`] with the softmax `softmax` (the exact one, or a plaintext twin).
fn nesterov_steps(
    x: &Array2<f64>,
    labels: &[usize],
    classes: usize,
    steps: usize,
    softmax: impl Fn(&Array2<f64>) -> Array2<f64>,
) -> Array2<f64> {
    let xb = with_bias(x);
    let mut w = Array2::<f64>::zeros((classes, xb.ncols()));
    let mut v = w.clone();
    for k in 0..steps {
        let xk = rows(&xb, k);
        let mut y = Array2::<f64>::zeros((BATCH, classes));
        for i in 0..BATCH {
            y[(i, labels[k * BATCH + i])] = 1.0;
        }
        let look = &w + &(&v * MU);
        let p = softmax(&xk.dot(&look.t()));
        let g = (&p - &y).t().dot(&xk) / BATCH as f64;
        v = &v * MU - &g * LR;
        w = &w + &v;
    }
    w
}

/// HETAL's weights (period `c`) are its tiled `B~` slot for slot: DiagABT reads them with no
/// homomorphic operation.
#[test]
fn hetal_weights_are_tiled_blocks() {
    use hetal_ml::matrix::pack;
    use hetal_ml::{ours, CkksOps, EncMatrix, Layout, SlotClient};

    let geometry = Geometry::with_algo(SLOTS, 64, 10, BATCH, TrainAlgo::Hetal).unwrap();
    let layout = geometry.weights_layout();
    assert_eq!((layout.period(), layout.cts()), (16, 65usize.div_ceil(128)));
    let wide = Geometry::with_algo(1 << 15, 768, 10, 1024, TrainAlgo::Hetal).unwrap();
    assert_eq!(wide.weights_layout().cts(), 25);
    let w = Array2::from_shape_fn((10, 65), |(i, j)| (i * 65 + j) as f64 / 100.0 - 3.0);
    let tiled = Layout::RowTiled { period: 16 };
    assert_eq!(
        layout.pack(&w).unwrap(),
        pack(&w, geometry.shape(), tiled).unwrap()
    );
    let mut sim = SlotSim::uniform(SLOTS, 4, 40);
    let packed = hetal_ml::ours::PackedMatrix::encrypt(&mut sim, &w, layout, 4).unwrap();
    let before = sim.counts();
    let expanded = ours::expand(&sim, &packed).unwrap();
    assert_eq!(sim.counts(), before);
    assert_eq!(expanded.layout(), tiled);
    let direct = EncMatrix::encrypt(&mut sim, &w, geometry.shape(), tiled, 4).unwrap();
    for (a, b) in expanded.blocks().iter().zip(direct.blocks()) {
        assert_eq!(sim.decrypt(a).unwrap(), sim.decrypt(b).unwrap());
    }
}

/// Runs `steps` training steps on the digits on a simulator with bootstrapping to `levels`
/// levels (HETAL's 9 unless said; primes 2^40, training's bound); returns the weights and the
/// bootstraps per step.
fn simulated_steps_at(algo: TrainAlgo, steps: usize, levels: usize) -> (Array2<f64>, Vec<u64>) {
    let (x, labels) = digits();
    let geometry = Geometry::with_algo(SLOTS, x.ncols(), 10, BATCH, algo).unwrap();
    let mut sim = SlotSim::uniform(SLOTS, levels + 3, 40)
        .with_bootstrapping(levels, hetal_ml::train::BOOT_BOUND)
        .unwrap();
    let batches: Vec<_> = (0..steps)
        .map(|k| {
            let xs = rows(&x, k).to_owned();
            geometry
                .encrypt_batch(&mut sim, &xs, &labels[k * BATCH..(k + 1) * BATCH], levels)
                .unwrap()
        })
        .collect();
    let mut state = geometry.encrypt_initial(&mut sim, levels).unwrap();
    let trainer = Trainer::new(&sim, geometry, LR, MU).unwrap();
    let mut boots = Vec::new();
    for b in &batches {
        let before = sim.bootstraps();
        let start = Instant::now();
        let (next, times) = trainer.step_timed(state, b).unwrap();
        let total = start.elapsed().as_secs_f64();
        // The stages split the step: none negative, together no more than all of it.
        let named = times.named();
        assert!(
            named.iter().all(|(_, t)| t.is_finite() && *t >= 0.0),
            "{named:?}"
        );
        assert!(
            named.iter().map(|(_, t)| t).sum::<f64>() <= total,
            "{named:?}"
        );
        state = next;
        boots.push(sim.bootstraps() - before);
    }
    (state.w.decrypt(&sim).unwrap(), boots)
}

fn simulated_steps(algo: TrainAlgo, steps: usize) -> (Array2<f64>, Vec<u64>) {
    simulated_steps_at(algo, steps, 9)
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0f64, |m, e| m.max(e.abs()))
}

/// HETAL's pipeline on the simulator equals Nesterov in `f64` with HETAL's numpy softmax (its
/// plaintext twin) to rounding, and exact Nesterov within what HETAL's softmax error allows:
/// with `ΔP` the twin's error on step `k`'s logits (those of the exact run), the gradient moves
/// by at most `e_k = max_{c,j} (1/a)·Σ_i |ΔP_ic|·|x_ij|`, and the momentum carries step `k`'s
/// error into `W_n` with weight `1 + μ + … + μ^{n−k}`. The bound doubles that sum for the
/// errors' effect through the look-ahead logits of later steps.
#[test]
fn simulated_hetal_steps_follow_the_twin_and_plaintext_nesterov() {
    let steps = 4;
    let (w, boots) = simulated_steps(TrainAlgo::Hetal, steps);
    let (x, labels) = digits();
    let twin = nesterov_steps(&x, &labels, 10, steps, |z| {
        twin_softmax(z, SoftmaxAlgo::Hetal).unwrap()
    });
    let exact = plain_steps(&x, &labels, 10, steps);
    let size = max_abs(&exact);
    let to_twin = max_abs(&(&w - &twin));
    let to_exact = max_abs(&(&w - &exact));
    // The exact run again, step by step, with the twin's softmax errors on its logits.
    let xb = with_bias(&x);
    let mut bound = 0.0;
    let mut eps = 0.0f64;
    let mut wk = Array2::<f64>::zeros((10, xb.ncols()));
    let mut vk = wk.clone();
    for k in 0..steps {
        let xk = rows(&xb, k);
        let z = xk.dot(&(&wk + &(&vk * MU)).t());
        let p = softmax_rows(&z);
        let dp = (&twin_softmax(&z, SoftmaxAlgo::Hetal).unwrap() - &p).mapv(f64::abs);
        eps = eps.max(max_abs(&dp));
        let e_k = max_abs(&(dp.t().dot(&xk.mapv(f64::abs)) / BATCH as f64));
        let carried: f64 = (0..steps - k).map(|j| MU.powi(j as i32)).sum();
        bound += 2.0 * LR * e_k * carried;
        let mut y = Array2::<f64>::zeros((BATCH, 10));
        for i in 0..BATCH {
            y[(i, labels[k * BATCH + i])] = 1.0;
        }
        let g = (&p - &y).t().dot(&xk) / BATCH as f64;
        vk = &vk * MU - &g * LR;
        wk = &wk + &vk;
    }
    eprintln!(
        "HETAL, {steps} steps: bootstraps per step {boots:?}; |W − W_twin| ≤ {to_twin:.1e}, \
         |W − W_exact| ≤ {to_exact:.2e} (bound {bound:.2e}: softmax error {eps:.1e}; |W| ≤ \
         {size:.2})"
    );
    assert!(to_twin < 1e-9 * size.max(1.0), "{to_twin}");
    assert!(to_exact <= bound, "{to_exact} against {bound}");
    // The softmax's bootstraps, plus the weights' refresh after the first step.
    assert!(boots.iter().all(|&b| (8..=24).contains(&b)), "{boots:?}");
}

#[test]
fn simulated_steps_follow_plaintext_nesterov() {
    let (x, labels) = digits();
    let (classes, steps) = (10, 4);
    let (w, boots) = simulated_steps(TrainAlgo::Ours, steps);
    let expected = plain_steps(&x, &labels, classes, steps);
    let err = max_abs(&(&w - &expected));
    let size = max_abs(&expected);
    eprintln!("bootstraps per step {boots:?}; |W − W_plain| ≤ {err:.2e} (|W| ≤ {size:.2})");
    assert!(err < 1e-3 * size.max(1.0), "{err}");
    // Every step after the first refreshes the weights: at least the softmax's and that.
    assert!(boots.iter().all(|&b| (4..=12).contains(&b)), "{boots:?}");
}

/// Other bootstrapping windows train as well: the weights' level can fall below the
/// momentum's (a window of 11 once stopped the update at `W + V'` with W one level short).
#[test]
fn simulated_steps_train_at_other_windows() {
    let (x, labels) = digits();
    let expected = plain_steps(&x, &labels, 10, 6);
    let size = max_abs(&expected);
    for levels in [10, 11, 12] {
        let (w, boots) = simulated_steps_at(TrainAlgo::Ours, 6, levels);
        let err = max_abs(&(&w - &expected));
        eprintln!("{levels} levels: bootstraps per step {boots:?}; |W − W_plain| ≤ {err:.2e}");
        assert!(err < 1e-3 * size.max(1.0), "{levels} levels: {err}");
    }
}

/// `steps` steps encrypted at N = 2^11 (insecure, shaped like `n16-boot`: 9 levels after
/// bootstrapping, encapsulation, the training circuit's bound) and on a simulator with the
/// same primes; returns the largest difference of the weights, their size, and the bootstraps.
/// Validation logits, decrypted by the client, are checked against the decrypted weights.
fn encrypted_against_simulated(algo: TrainAlgo, steps: usize) -> (f64, f64, u64) {
    use std::sync::Arc;

    use hetal_ckks::{presets, Bootstrapper, KeyGenerator, Params};
    use hetal_ml::train::boot_params;
    use hetal_ml::{CkksBackend, CkksClient};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    let (x, labels) = digits();
    let params = Params::new_insecure(presets::insecure_boot_test(11, 9)).unwrap();
    let slots = params.max_slots();
    // 16 rows (DiagATB needs c ≤ s0) of 64 slots: the 65 columns take two blocks.
    let batch = 16;
    let geometry = Geometry::with_algo(slots, x.ncols(), 10, batch, algo).unwrap();
    let boot = Bootstrapper::new(&params, &boot_params()).unwrap();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(5));
    let sk = keygen.gen_secret_key();
    let mut rotations = geometry.rotations().unwrap();
    rotations.extend_from_slice(boot.rotations());
    let keys = Arc::new(keygen.gen_eval_keys(&sk, &rotations, true));
    let boot_keys = boot
        .gen_boot_keys(&sk, ChaCha20Rng::seed_from_u64(6))
        .unwrap()
        .map(Arc::new);
    let server = CkksBackend::new(&params, keys)
        .with_bootstrapping(Arc::new(boot), boot_keys)
        .unwrap();
    let mut client = CkksClient::new(sk, ChaCha20Rng::seed_from_u64(7));
    let mut sim = SlotSim::from_params(&params)
        .with_bootstrapping(9, hetal_ml::train::BOOT_BOUND)
        .unwrap();
    let level = 9;
    let take = |k: usize| {
        let r = k * batch..(k + 1) * batch;
        (
            x.slice_axis(Axis(0), Slice::from(r.clone())).to_owned(),
            labels[r].to_vec(),
        )
    };
    let mut enc_state = geometry.encrypt_initial(&mut client, level).unwrap();
    let mut sim_state = geometry.encrypt_initial(&mut sim, level).unwrap();
    let mut batches = Vec::new();
    for k in 0..steps {
        let (xs, ls) = take(k);
        batches.push((
            geometry
                .encrypt_batch(&mut client, &xs, &ls, level)
                .unwrap(),
            geometry.encrypt_batch(&mut sim, &xs, &ls, level).unwrap(),
        ));
    }
    let enc_trainer = Trainer::new(&server, geometry, LR, MU).unwrap();
    let sim_trainer = Trainer::new(&sim, geometry, LR, MU).unwrap();
    for (eb, sb) in &batches {
        enc_state = enc_trainer.step(enc_state, eb).unwrap();
        sim_state = sim_trainer.step(sim_state, sb).unwrap();
    }
    let we = enc_state.w.decrypt(&client).unwrap();
    let ws = sim_state.w.decrypt(&sim).unwrap();
    let diff = max_abs(&(&we - &ws));
    let size = max_abs(&ws);
    eprintln!(
        "{algo}: encrypted vs simulated after {steps} steps: {diff:.2e} (|W| ≤ {size:.2}), {} \
         bootstraps",
        server.bootstraps()
    );
    assert_eq!(server.bootstraps(), sim.bootstraps());
    // Validation logits, decrypted by the client.
    let (xs, _) = take(steps);
    let xv = geometry.encrypt_features(&mut client, &xs, level).unwrap();
    let z = enc_trainer
        .logits(&enc_state, &xv)
        .unwrap()
        .decrypt(&client)
        .unwrap();
    let expected = with_bias(&xs).dot(&we.t());
    let zdiff = max_abs(&(&z - &expected));
    assert!(zdiff < 1e-3, "{zdiff}");
    (diff, size, server.bootstraps())
}

/// Two steps of ours encrypted against the simulator. The difference is CKKS noise, mostly
/// bootstrapping's (about 2^-20 relative to the bound, times the weights' unit), through ~20
/// bootstraps.
#[test]
fn encrypted_steps_match_the_simulator() {
    let (diff, size, _) = encrypted_against_simulated(TrainAlgo::Ours, 2);
    assert!(diff < 1e-3 * size.max(1.0), "{diff}");
}

/// Two steps of HETAL's pipeline (the second refreshes the tiled weights, two block columns
/// each) encrypted against the simulator, with the same bound: its softmax is the steeper
/// circuit (comparison polynomials of slope about 44), through about 27 bootstraps.
#[test]
fn encrypted_hetal_steps_match_the_simulator() {
    let (diff, size, boots) = encrypted_against_simulated(TrainAlgo::Hetal, 2);
    assert!(diff < 1e-3 * size.max(1.0), "{diff}");
    assert!(boots >= 18, "{boots}");
}
