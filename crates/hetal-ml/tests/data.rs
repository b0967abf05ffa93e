//! Client-side data: every bad-input rule gets a clear error before any key is made, and
//! exact plaintext training on the bundled digits learns.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test fixtures"
)]

use hetal_ml::data::{DataError, Dataset, Standardizer};
use hetal_ml::plain::{train, TrainConfig};
use ndarray::{array, Array1, Array2};
use ndarray_npy::WriteNpyExt;

fn tiny() -> (Array2<f64>, Array1<i64>) {
    (array![[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], array![0, 1, 1])
}

fn write_dir(dir: &std::path::Path, train: &(Array2<f64>, Array1<i64>)) {
    for split in ["train", "val", "test"] {
        train
            .0
            .write_npy(std::fs::File::create(dir.join(format!("features_{split}.npy"))).unwrap())
            .unwrap();
        train
            .1
            .write_npy(std::fs::File::create(dir.join(format!("labels_{split}.npy"))).unwrap())
            .unwrap();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hetal-data-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn loads_a_hetal_directory_in_f32_and_f64() {
    let dir = temp_dir("ok");
    write_dir(&dir, &tiny());
    let d = Dataset::load_dir(&dir).unwrap();
    assert_eq!((d.classes, d.train.len()), (2, 3));
    // float32 features are accepted too.
    tiny()
        .0
        .mapv(|v| v as f32)
        .write_npy(std::fs::File::create(dir.join("features_val.npy")).unwrap())
        .unwrap();
    assert!(Dataset::load_dir(&dir).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_bad_input_rule_is_an_error() {
    let ok = tiny();
    let check = |train: (Array2<f64>, Array1<i64>), want: fn(&DataError) -> bool| {
        let err = Dataset::from_arrays(train, ok.clone(), ok.clone()).unwrap_err();
        assert!(want(&err), "unexpected error {err}");
        assert!(!err.to_string().is_empty());
    };
    check(
        (
            array![[f64::NAN, 1.0], [1.0, 0.0], [0.5, 0.5]],
            ok.1.clone(),
        ),
        |e| matches!(e, DataError::NotFinite { row: 0, col: 0, .. }),
    );
    check(
        (
            array![[0.0, 1.0], [f64::INFINITY, 0.0], [0.5, 0.5]],
            ok.1.clone(),
        ),
        |e| matches!(e, DataError::NotFinite { row: 1, .. }),
    );
    check((ok.0.clone(), array![0, 1]), |e| {
        matches!(e, DataError::Mismatch { .. })
    });
    check((ok.0.clone(), array![0, -1, 1]), |e| {
        matches!(e, DataError::LabelOutOfRange { label: -1, .. })
    });
    check((Array2::zeros((0, 2)), Array1::zeros(0)), |e| {
        matches!(e, DataError::Empty { split: "train" })
    });
    check((ok.0.clone(), array![1, 1, 1]), |e| {
        matches!(e, DataError::OneClass { class: 1 })
    });
    check((ok.0.clone(), array![0, 1, 16]), |e| {
        matches!(e, DataError::TooManyClasses { classes: 17, .. })
    });
    check(
        (
            array![[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [0.5, 0.5, 2.0]],
            ok.1.clone(),
        ),
        |e| matches!(e, DataError::Mismatch { split: "val", .. }),
    );
    // Unreadable or wrong-typed files.
    let dir = temp_dir("bad");
    assert!(matches!(
        Dataset::load_dir(&dir),
        Err(DataError::Read { .. })
    ));
    write_dir(&dir, &ok);
    std::fs::write(dir.join("labels_test.npy"), b"not an npy file").unwrap();
    assert!(matches!(
        Dataset::load_dir(&dir),
        Err(DataError::Read { .. })
    ));
    array![0.5f64, 1.0, 0.0]
        .write_npy(std::fs::File::create(dir.join("labels_test.npy")).unwrap())
        .unwrap();
    assert!(
        matches!(Dataset::load_dir(&dir), Err(DataError::Read { .. })),
        "float labels"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plaintext_training_learns_the_digits() {
    let mut d = Dataset::digits();
    let scaler = Standardizer::fit(&d.train.features);
    for split in [&mut d.train, &mut d.val, &mut d.test] {
        split.features = scaler.apply(&split.features);
    }
    let config = TrainConfig {
        lr: 0.5,
        batch_size: 128,
        epochs: 30,
        ..TrainConfig::default()
    };
    let (model, metrics) = train(&d, &config).unwrap();
    assert!(!metrics.is_empty());
    let acc = model.accuracy(&d.test);
    assert!(acc > 0.93, "test accuracy {acc}");
    assert!(train(
        &d,
        &TrainConfig {
            batch_size: 0,
            ..config
        }
    )
    .is_err());
}
