//! Client-side data: loading HETAL's feature files, validating them, the bundled digits
//! dataset, and feature scaling.
//!
//! A dataset directory holds `features_{train,val,test}.npy` (float32 or float64, `n × d`) and
//! `labels_{train,val,test}.npy` (integer class ids, length `n`): the layout of HETAL's
//! extractors. Everything here runs on the client, in plaintext, before any key exists; every
//! rule a file can break is a [`DataError`] naming the file and the offending entry.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis};
use ndarray_npy::{ReadNpyError, ReadNpyExt};

/// Why a dataset was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be read or is not a valid `.npy` of a supported type.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A feature is NaN or infinite.
    #[error("{split}: feature [{row}, {col}] is not finite ({value})")]
    NotFinite {
        /// Which split.
        split: &'static str,
        /// Row.
        row: usize,
        /// Column.
        col: usize,
        /// The value.
        value: f64,
    },
    /// Features and labels disagree in length, or splits disagree in feature dimension.
    #[error("{split}: {what}: {lhs} vs {rhs}")]
    Mismatch {
        /// Which split.
        split: &'static str,
        /// What disagrees.
        what: &'static str,
        /// One side.
        lhs: usize,
        /// The other.
        rhs: usize,
    },
    /// A label is negative or not below the class count.
    #[error("{split}: label {label} at row {row} is out of range [0, {classes})")]
    LabelOutOfRange {
        /// Which split.
        split: &'static str,
        /// Row.
        row: usize,
        /// The label.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
    /// A split has no rows.
    #[error("{split}: the split is empty")]
    Empty {
        /// Which split.
        split: &'static str,
    },
    /// Training needs at least two classes.
    #[error("the training labels hold a single class ({class})")]
    OneClass {
        /// The only class.
        class: usize,
    },
    /// More classes than the encrypted layout holds.
    #[error("{classes} classes exceed the maximum of {max}")]
    TooManyClasses {
        /// Classes found.
        classes: usize,
        /// The maximum.
        max: usize,
    },
    /// A training setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
}

/// One split: features and integer labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// `n × d` features.
    pub features: Array2<f64>,
    /// `n` class ids in `[0, classes)`.
    pub labels: Array1<usize>,
}

impl Split {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Train, validation and test splits with their class count.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Training split.
    pub train: Split,
    /// Validation split (early stopping).
    pub val: Split,
    /// Test split.
    pub test: Split,
    /// Number of classes (the largest label + 1 over all splits).
    pub classes: usize,
}

/// The most classes the encrypted layout holds (HETAL pads to 16).
pub const MAX_CLASSES: usize = 16;

const SPLITS: [&str; 3] = ["train", "val", "test"];

fn read_features(path: &Path) -> Result<Array2<f64>, DataError> {
    let err = |reason: String| DataError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let open = || std::fs::File::open(path).map_err(|e| err(e.to_string()));
    match Array2::<f64>::read_npy(open()?) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => Array2::<f32>::read_npy(open()?)
            .map(|a| a.mapv(f64::from))
            .map_err(|e| {
                err(format!(
                    "features must be a 2-d float32 or float64 array: {e}"
                ))
            }),
        Err(e) => Err(err(format!(
            "features must be a 2-d float32 or float64 array: {e}"
        ))),
    }
}

fn read_labels(path: &Path) -> Result<Array1<i64>, DataError> {
    let err = |reason: String| DataError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let open = || std::fs::File::open(path).map_err(|e| err(e.to_string()));
    macro_rules! try_type {
        ($($t:ty),*) => {
            $(
                if let Ok(a) = Array1::<$t>::read_npy(open()?) {
                    return a.iter().map(|&v| i64::try_from(v).map_err(|_| err(format!("label {v} does not fit")))).collect();
                }
            )*
        };
    }
    try_type!(i64, i32, i16, i8, u8, u16, u32, u64);
    Err(err("labels must be a 1-d array of integers".into()))
}

/// Checks one split and converts its labels.
fn check_split(
    split: &'static str,
    features: Array2<f64>,
    labels: &Array1<i64>,
) -> Result<(Split, i64), DataError> {
    if labels.is_empty() || features.nrows() == 0 {
        return Err(DataError::Empty { split });
    }
    if features.nrows() != labels.len() {
        return Err(DataError::Mismatch {
            split,
            what: "feature rows vs labels",
            lhs: features.nrows(),
            rhs: labels.len(),
        });
    }
    if let Some(((row, col), &value)) = features.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(DataError::NotFinite {
            split,
            row,
            col,
            value,
        });
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l < 0) {
        return Err(DataError::LabelOutOfRange {
            split,
            row,
            label,
            classes: 0,
        });
    }
    let max = labels.iter().copied().max().unwrap_or(0);
    let labels = labels.mapv(|l| l as usize);
    Ok((Split { features, labels }, max))
}

impl Dataset {
    /// Loads and validates a HETAL-layout directory.
    ///
    /// # Errors
    /// Every [`DataError`] rule: unreadable files, NaN or infinite features, mismatched
    /// lengths or dimensions, negative labels, empty splits, a single class, more than
    /// [`MAX_CLASSES`] classes.
    pub fn load_dir(dir: &Path) -> Result<Self, DataError> {
        let mut splits = Vec::with_capacity(3);
        for split in SPLITS {
            let features = read_features(&dir.join(format!("features_{split}.npy")))?;
            let labels = read_labels(&dir.join(format!("labels_{split}.npy")))?;
            splits.push(check_split(split, features, &labels)?);
        }
        let mut it = splits.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(train), Some(val), Some(test)) => Self::assemble(train, val, test),
            _ => Err(DataError::InvalidConfig("three splits expected".into())),
        }
    }

    /// Builds a dataset from arrays, with the same validation as [`Dataset::load_dir`].
    ///
    /// # Errors
    /// As [`Dataset::load_dir`].
    pub fn from_arrays(
        train: (Array2<f64>, Array1<i64>),
        val: (Array2<f64>, Array1<i64>),
        test: (Array2<f64>, Array1<i64>),
    ) -> Result<Self, DataError> {
        Self::assemble(
            check_split("train", train.0, &train.1)?,
            check_split("val", val.0, &val.1)?,
            check_split("test", test.0, &test.1)?,
        )
    }

    fn assemble(
        train: (Split, i64),
        val: (Split, i64),
        test: (Split, i64),
    ) -> Result<Self, DataError> {
        let d = train.0.features.ncols();
        for (name, s) in [("val", &val.0), ("test", &test.0)] {
            if s.features.ncols() != d {
                return Err(DataError::Mismatch {
                    split: name,
                    what: "feature dimension vs train",
                    lhs: s.features.ncols(),
                    rhs: d,
                });
            }
        }
        let classes = (train.1.max(val.1).max(test.1) + 1) as usize;
        if classes > MAX_CLASSES {
            return Err(DataError::TooManyClasses {
                classes,
                max: MAX_CLASSES,
            });
        }
        let first = train.0.labels.first().copied().unwrap_or(0);
        if train.0.labels.iter().all(|&l| l == first) {
            return Err(DataError::OneClass { class: first });
        }
        Ok(Self {
            train: train.0,
            val: val.0,
            test: test.0,
            classes,
        })
    }

    /// The UCI handwritten digits (1797 × 64, 10 classes, CC BY 4.0), embedded in the build
    /// by the `smartcore` crate: a real dataset that needs no download. Split 70 / 15 / 15 by
    /// a fixed shuffle.
    pub fn digits() -> Self {
        let raw = smartcore::dataset::digits::load_dataset();
        let (n, d) = (raw.num_samples, raw.num_features);
        let features = Array2::from_shape_fn((n, d), |(r, c)| {
            raw.data.get(r * d + c).map_or(0.0, |&v| f64::from(v))
        });
        let labels: Vec<usize> = raw.target.iter().map(|&t| t as usize).collect();
        // A fixed permutation (a multiplicative step coprime with n) keeps the split stable.
        let order: Vec<usize> = (0..n).map(|i| (i * 1031 + 7) % n).collect();
        let take = |idx: &[usize]| Split {
            features: features.select(Axis(0), idx),
            labels: idx
                .iter()
                .map(|&i| labels.get(i).copied().unwrap_or(0))
                .collect(),
        };
        let (n_train, n_val) = (n * 70 / 100, n * 15 / 100);
        let (tr, rest) = order.split_at(n_train);
        let (va, te) = rest.split_at(n_val);
        Self {
            train: take(tr),
            val: take(va),
            test: take(te),
            classes: 10,
        }
    }
}

/// Standardization fitted on the training features: `(x − mean) / std` per column, applied by
/// the client before encryption and saved with the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Column means.
    pub mean: Array1<f64>,
    /// Column standard deviations (1 where a column is constant).
    pub std: Array1<f64>,
}

impl Standardizer {
    /// Fits on `x`.
    pub fn fit(x: &Array2<f64>) -> Self {
        let mean = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(x.ncols()));
        let std = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-12 { s } else { 1.0 });
        Self { mean, std }
    }

    /// Applies to `x`.
    pub fn apply(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean) / &self.std
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn digits_are_real_and_split() {
        let d = Dataset::digits();
        assert_eq!(d.train.len() + d.val.len() + d.test.len(), 1797);
        assert_eq!(d.train.features.ncols(), 64);
        assert_eq!(d.classes, 10);
        for c in 0..10 {
            assert!(
                d.train.labels.iter().any(|&l| l == c),
                "class {c} missing from train"
            );
        }
        // Pixel intensities of the UCI set are 0..=16.
        assert!(d.train.features.iter().all(|&v| (0.0..=16.0).contains(&v)));
    }

    #[test]
    fn standardizer_centres_and_scales() {
        let x = array![[1.0, 5.0], [3.0, 5.0]];
        let s = Standardizer::fit(&x);
        let y = s.apply(&x);
        assert_eq!(y, array![[-1.0, 0.0], [1.0, 0.0]]);
    }
}
