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
use hetal_ml::train::{Geometry, Trainer};
use hetal_ml::{Bootstrap, SlotSim};
use ndarray::{Array2, ArrayView2, Axis, Slice};

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
        let p = softmax_rows(&xk.dot(&look.t()));
        let g = (&p - &y).t().dot(&xk) / BATCH as f64;
        v = &v * MU - &g * LR;
        w = &w + &v;
    }
    w
}

#[test]
fn simulated_steps_follow_plaintext_nesterov() {
    let (x, labels) = digits();
    let classes = 10;
    let geometry = Geometry::new(SLOTS, x.ncols(), classes, BATCH).unwrap();
    let mut sim = SlotSim::uniform(SLOTS, 12, 40)
        .with_bootstrapping(9, 2.0)
        .unwrap();
    let steps = 4;
    let batches: Vec<_> = (0..steps)
        .map(|k| {
            let xs = rows(&x, k).to_owned();
            geometry
                .encrypt_batch(&mut sim, &xs, &labels[k * BATCH..(k + 1) * BATCH], 9)
                .unwrap()
        })
        .collect();
    let mut state = geometry.encrypt_initial(&mut sim, 9).unwrap();
    let trainer = Trainer::new(&sim, geometry, LR, MU).unwrap();
    let mut boots = Vec::new();
    for b in &batches {
        let before = sim.bootstraps();
        state = trainer.step(state, b).unwrap();
        boots.push(sim.bootstraps() - before);
    }
    let w = state.w.decrypt(&sim).unwrap();
    let expected = plain_steps(&x, &labels, classes, steps);
    let err = (&w - &expected).iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let size = expected.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    eprintln!("bootstraps per step {boots:?}; |W − W_plain| ≤ {err:.2e} (|W| ≤ {size:.2})");
    assert!(err < 1e-3 * size.max(1.0), "{err}");
    // Every step after the first refreshes the weights: at least the softmax's and that.
    assert!(boots.iter().all(|&b| (4..=12).contains(&b)), "{boots:?}");
}
