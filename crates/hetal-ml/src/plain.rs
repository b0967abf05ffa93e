//! Exact plaintext training: the reference every encrypted run is compared with.
//!
//! Softmax regression with a bias (`W: c × (d + 1)`), true softmax and cross-entropy,
//! mini-batch gradient descent with Nesterov momentum, and validation-based early stopping
//! with patience, keeping the best epoch's weights: HETAL's model and protocol, with the same
//! hyperparameters and initialization (zeros) the encrypted trainer uses.

use ndarray::{Array1, Array2, Axis, Slice};

use crate::data::{DataError, Dataset, Split};

/// Training settings (HETAL's defaults where it has them).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Learning rate.
    pub lr: f64,
    /// Nesterov momentum coefficient.
    pub momentum: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Epochs without a better validation loss before stopping (HETAL: 3).
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            momentum: 0.9,
            batch_size: 1024,
            epochs: 20,
            patience: 3,
        }
    }
}

/// A trained softmax-regression head.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// `c × (d + 1)`: the last column is the bias.
    pub weights: Array2<f64>,
}

/// One epoch's validation figures.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean validation cross-entropy.
    pub val_loss: f64,
    /// Validation accuracy in [0, 1].
    pub val_accuracy: f64,
}

/// Appends the bias column of ones.
pub fn with_bias(x: &Array2<f64>) -> Array2<f64> {
    let mut out = Array2::ones((x.nrows(), x.ncols() + 1));
    out.slice_axis_mut(Axis(1), Slice::from(0..x.ncols()))
        .assign(x);
    out
}

/// Row-wise softmax, stabilized by the row maximum.
pub fn softmax_rows(z: &Array2<f64>) -> Array2<f64> {
    let mut p = z.clone();
    for mut row in p.rows_mut() {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
    p
}

fn one_hot(labels: &Array1<usize>, classes: usize) -> Array2<f64> {
    let mut y = Array2::zeros((labels.len(), classes));
    for (mut row, &l) in y.rows_mut().into_iter().zip(labels) {
        if let Some(v) = row.get_mut(l) {
            *v = 1.0;
        }
    }
    y
}

impl Model {
    /// Class probabilities for features `x` (`n × d`, without the bias column).
    pub fn probabilities(&self, x: &Array2<f64>) -> Array2<f64> {
        softmax_rows(&with_bias(x).dot(&self.weights.t()))
    }

    /// Predicted classes.
    pub fn predict(&self, x: &Array2<f64>) -> Array1<usize> {
        self.probabilities(x)
            .rows()
            .into_iter()
            .map(|r| argmax(r.iter().copied()))
            .collect()
    }

    /// Accuracy on a split, in [0, 1].
    pub fn accuracy(&self, split: &Split) -> f64 {
        self.evaluate(split).1
    }

    /// Mean cross-entropy on a split.
    pub fn loss(&self, split: &Split) -> f64 {
        self.evaluate(split).0
    }

    /// Mean cross-entropy and accuracy on a split.
    pub fn evaluate(&self, split: &Split) -> (f64, f64) {
        let z = with_bias(&split.features).dot(&self.weights.t());
        loss_and_accuracy(&z, split.labels.as_slice().unwrap_or_default())
    }
}

/// Mean cross-entropy of the exact softmax and accuracy of the arg-max, for logits `z`
/// (`n × c`) and labels: what the client computes from decrypted validation logits.
pub fn loss_and_accuracy(z: &Array2<f64>, labels: &[usize]) -> (f64, f64) {
    let p = softmax_rows(z);
    let n = labels.len().max(1) as f64;
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (r, &l) in p.rows().into_iter().zip(labels) {
        loss -= r.get(l).map_or(0.0, |&v| v.max(1e-300).ln());
        correct += usize::from(argmax(r.iter().copied()) == l);
    }
    (loss / n, correct as f64 / n)
}

fn argmax(values: impl Iterator<Item = f64>) -> usize {
    values
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

/// Trains on `data.train` (already scaled by the client), stopping on `data.val`.
/// Returns the best epoch's model and the per-epoch metrics.
///
/// # Errors
/// [`DataError::InvalidConfig`] for a zero batch size or epoch count, or a non-finite rate.
pub fn train(
    data: &Dataset,
    config: &TrainConfig,
) -> Result<(Model, Vec<EpochMetrics>), DataError> {
    if config.batch_size == 0
        || config.epochs == 0
        || !config.lr.is_finite()
        || !config.momentum.is_finite()
    {
        return Err(DataError::InvalidConfig(format!("{config:?}")));
    }
    let x = with_bias(&data.train.features);
    let y = one_hot(&data.train.labels, data.classes);
    let mut w = Array2::<f64>::zeros((data.classes, x.ncols()));
    let mut v = Array2::<f64>::zeros(w.raw_dim());
    let mut best = (f64::INFINITY, Model { weights: w.clone() });
    let mut since_best = 0;
    let mut metrics = Vec::new();
    let n = x.nrows();
    for epoch in 1..=config.epochs {
        for start in (0..n).step_by(config.batch_size) {
            let end = (start + config.batch_size).min(n);
            let xb = x.slice_axis(Axis(0), Slice::from(start..end));
            let yb = y.slice_axis(Axis(0), Slice::from(start..end));
            // Nesterov: the gradient at the look-ahead point w + μ·v.
            let look = &w + &(&v * config.momentum);
            let p = softmax_rows(&xb.dot(&look.t()));
            let grad = (&p - &yb).t().dot(&xb) / (end - start) as f64;
            v = &v * config.momentum - &grad * config.lr;
            w = &w + &v;
        }
        let model = Model { weights: w.clone() };
        let (val_loss, val_accuracy) = model.evaluate(&data.val);
        metrics.push(EpochMetrics {
            epoch,
            val_loss,
            val_accuracy,
        });
        if val_loss < best.0 {
            best = (val_loss, model);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= config.patience {
                break;
            }
        }
    }
    Ok((best.1, metrics))
}
