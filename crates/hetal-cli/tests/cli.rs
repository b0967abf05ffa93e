//! The command line end to end: `hetal fit` on the bundled digits written in HETAL's layout,
//! its output contract, `hetal predict`, and clear errors on bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "test fixtures"
)]

use std::path::Path;
use std::process::Command;

use hetal_ml::data::Dataset;
use ndarray_npy::WriteNpyExt;

fn hetal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hetal"))
        .args(args)
        .output()
        .expect("running hetal")
}

fn write_digits(dir: &Path) {
    let d = Dataset::digits();
    for (name, split) in [("train", &d.train), ("val", &d.val), ("test", &d.test)] {
        split
            .features
            .mapv(|v| v as f32)
            .write_npy(std::fs::File::create(dir.join(format!("features_{name}.npy"))).unwrap())
            .unwrap();
        split
            .labels
            .mapv(|l| l as i64)
            .write_npy(std::fs::File::create(dir.join(format!("labels_{name}.npy"))).unwrap())
            .unwrap();
    }
}

#[test]
fn fit_then_predict_on_digits() {
    let root = std::env::temp_dir().join(format!("hetal-cli-test-{}", std::process::id()));
    let (data, out) = (root.join("data"), root.join("out"));
    std::fs::create_dir_all(&data).unwrap();
    write_digits(&data);
    let o = hetal(&[
        "fit",
        "--data",
        data.to_str().unwrap(),
        "--mode",
        "plaintext",
        "--lr",
        "0.5",
        "--batch-size",
        "128",
        "--epochs",
        "30",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "weights.npy",
        "scaler_mean.npy",
        "scaler_std.npy",
        "metrics.json",
        "curve.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let acc = metrics["test_accuracy"]["plaintext"].as_f64().unwrap();
    assert!(acc > 0.93, "test accuracy {acc}");
    let epoch = &metrics["epochs"][0];
    for field in ["epoch", "val_loss", "val_accuracy", "step_s", "bootstraps"] {
        assert!(!epoch[field].is_null(), "metrics.json epochs lack {field}");
    }
    let o = hetal(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--features",
        data.join("features_test.npy").to_str().unwrap(),
        "--labels",
        data.join("labels_test.npy").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("accuracy"));
    assert!(out.join("predictions.npy").exists());

    // Bad input: a NaN feature is named in a clear error, and nothing is written.
    let bad = root.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    write_digits(&bad);
    let mut f = Dataset::digits().val.features.clone();
    f[[3, 5]] = f64::NAN;
    f.write_npy(std::fs::File::create(bad.join("features_val.npy")).unwrap())
        .unwrap();
    let bad_out = root.join("bad-out");
    let o = hetal(&[
        "fit",
        "--data",
        bad.to_str().unwrap(),
        "--out",
        bad_out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("val") && err.contains("[3, 5]"),
        "unclear error: {err}"
    );
    assert!(!bad_out.exists(), "output written despite bad input");
    std::fs::remove_dir_all(&root).unwrap();
}
