//! Precision of decrypted results, in bits: `-log2 |error|`.

use num_complex::Complex64;
use std::fmt;

/// Summary of the per-slot errors between wanted and obtained values. The error of a slot is
/// the larger of its real and imaginary errors.
#[derive(Clone, Copy, Debug)]
pub struct PrecisionStats {
    /// `-log2` of the largest error: the worst slot.
    pub min_bits: f64,
    /// `-log2` of the mean error.
    pub mean_bits: f64,
    /// `-log2` of the median error.
    pub median_bits: f64,
    /// The largest error itself.
    pub max_err: f64,
}

impl PrecisionStats {
    /// Compares slot by slot (over the shorter of the two).
    pub fn new(want: &[Complex64], have: &[Complex64]) -> Self {
        let mut errs: Vec<f64> = want
            .iter()
            .zip(have)
            .map(|(w, h)| (w.re - h.re).abs().max((w.im - h.im).abs()))
            .collect();
        errs.sort_by(f64::total_cmp);
        let max_err = errs.last().copied().unwrap_or(0.0);
        let mean = errs.iter().sum::<f64>() / errs.len().max(1) as f64;
        let median = errs.get(errs.len() / 2).copied().unwrap_or(0.0);
        let bits = |e: f64| {
            if e.is_nan() {
                0.0
            } else {
                -e.max(f64::MIN_POSITIVE).log2()
            }
        };
        Self {
            min_bits: bits(max_err),
            mean_bits: bits(mean),
            median_bits: bits(median),
            max_err,
        }
    }

    /// The same for real vectors.
    pub fn new_real(want: &[f64], have: &[f64]) -> Self {
        let c = |v: &[f64]| {
            v.iter()
                .map(|&x| Complex64::new(x, 0.0))
                .collect::<Vec<_>>()
        };
        Self::new(&c(want), &c(have))
    }
}

impl fmt::Display for PrecisionStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "precision bits: min {:.2}, mean {:.2}, median {:.2} (max error {:.3e})",
            self.min_bits, self.mean_bits, self.median_bits, self.max_err
        )
    }
}
