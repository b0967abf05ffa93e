//! `hetal fit` and `hetal predict`: training a softmax head on a HETAL-layout dataset and
//! using it.
//!
//! Output directory contract (read by other tools; keep the names stable):
//! - `weights.npy`: `c × (d + 1)` float64, the last column the bias;
//! - `scaler_mean.npy`, `scaler_std.npy`: the client-side standardization, applied to features
//!   before the weights;
//! - `metrics.json`: `epochs` (per epoch `epoch`, `val_loss`, `val_accuracy`, `step_s`,
//!   `bootstraps`), `best_epoch`, `algo` (`ours` or `hetal`, null in plaintext), and
//!   `test_accuracy`, an object keyed by mode;
//! - `curve.svg`: validation loss and accuracy per epoch.
//!
//! Modes: `encrypted` (both protocol roles on this machine, only serialized messages between
//! them; see [`crate::session`]), `simulate` (the same code and messages on the slot
//! simulator: the plaintext twin of every approximation), `plaintext` (exact training, the
//! reference). Encrypted and simulated runs also train in plaintext, so `test_accuracy` holds
//! both modes. `--algo hetal` trains encrypted or simulated with HETAL's algorithms, faithfully
//! (for comparisons; see [`hetal_ml::train`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ndarray::{Array1, Array2};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use serde_json::json;

use hetal_ml::data::{Dataset, Standardizer};
use hetal_ml::plain::{train, EpochMetrics, Model, TrainConfig};
use hetal_ml::train::TrainAlgo;

use crate::matmul::Algo;
use crate::session::write_atomic;

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Homomorphically encrypted training (client and server roles on this machine).
    Encrypted,
    /// The encrypted algorithms on the slot simulator (no keys, no noise).
    Simulate,
    /// Exact plaintext training.
    Plaintext,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Encrypted => "encrypted",
            Mode::Simulate => "simulate",
            Mode::Plaintext => "plaintext",
        }
    }
}

/// Training hyperparameters (HETAL's defaults), shared by `hetal fit` and `hetal keygen`.
#[derive(Args)]
pub struct HyperArgs {
    /// Maximum epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1.0)]
    pub lr: f64,
    /// Early-stopping patience in epochs.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Nesterov momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Algorithms of encrypted and simulated training (plaintext training is exact).
    #[arg(long, value_enum, default_value = "ours")]
    pub algo: Algo,
}

impl HyperArgs {
    /// The training configuration.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            lr: self.lr,
            momentum: self.momentum,
            batch_size: self.batch_size,
            epochs: self.epochs,
            patience: self.patience,
        }
    }

    /// The training algorithms.
    pub fn algo(&self) -> TrainAlgo {
        self.algo.train()
    }
}

/// Arguments of `hetal fit`.
#[derive(Args)]
pub struct FitArgs {
    /// Directory with features_{train,val,test}.npy and labels_{train,val,test}.npy.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    hyper: HyperArgs,
    /// Training mode.
    #[arg(long, value_enum, default_value = "encrypted")]
    mode: Mode,
    /// Parameter preset of encrypted and simulated runs (bootstrappable).
    #[arg(long, default_value = "n16-boot", value_parser = clap::builder::PossibleValuesParser::new(hetal_ckks::presets::NAMES))]
    preset: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `hetal demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "hetal-demo")]
    out: PathBuf,
    /// Training mode (`simulate` runs in seconds; `plaintext` is the reference alone).
    #[arg(long, value_enum, default_value = "encrypted")]
    mode: Mode,
    /// Maximum epochs.
    #[arg(long, default_value_t = DEMO_EPOCHS)]
    epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = DEMO_LR)]
    lr: f64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Only write the bundled dataset to this directory, in HETAL's layout (for `hetal fit
    /// --data` or `hetal keygen --data`), and exit.
    #[arg(long)]
    write_data: Option<PathBuf>,
}

/// The demo's hyperparameters: one mini-batch of 1024 rows per block row (2 steps per epoch
/// on the 1257 training digits).
const DEMO_EPOCHS: usize = 2;
const DEMO_BATCH: usize = 1024;
const DEMO_LR: f64 = 1.0;

/// Runs `hetal demo`: `fit` on the UCI handwritten digits embedded in the build.
pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let mut data = Dataset::digits();
    if let Some(dir) = &args.write_data {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, split) in [
            ("train", &data.train),
            ("val", &data.val),
            ("test", &data.test),
        ] {
            write_npy(&dir.join(format!("features_{name}.npy")), &split.features)?;
            write_npy(
                &dir.join(format!("labels_{name}.npy")),
                &split.labels.mapv(|l| l as i64),
            )?;
        }
        println!(
            "UCI handwritten digits (CC BY 4.0) written to {} in HETAL's layout",
            dir.display()
        );
        return Ok(());
    }
    println!(
        "UCI handwritten digits (CC BY 4.0, embedded): {} train / {} validation / {} test rows, \
         {} features, {} classes",
        data.train.len(),
        data.val.len(),
        data.test.len(),
        data.train.features.ncols(),
        data.classes
    );
    let config = TrainConfig {
        lr: args.lr,
        momentum: 0.9,
        batch_size: DEMO_BATCH,
        epochs: args.epochs,
        patience: 3,
    };
    crate::bench::set_threads(args.threads)?;
    let algo = TrainAlgo::Ours;
    run_and_save(&mut data, &config, algo, args.mode, "n16-boot", &args.out)
}

/// Arguments of `hetal predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// A `hetal fit` output directory.
    #[arg(long)]
    model: PathBuf,
    /// Features, `n × d` float32 or float64 `.npy`.
    #[arg(long)]
    features: PathBuf,
    /// Optional integer labels, to print the accuracy.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Where to write the predicted classes (`.npy`, int64); default `predictions.npy` in
    /// the model directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn write_npy<T: WriteNpyExt>(path: &Path, a: &T) -> anyhow::Result<()> {
    // Written to a temporary file and renamed, so a crash never leaves a half file.
    let tmp = path.with_extension("npy.tmp");
    a.write_npy(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    )
    .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The validation curve as a small standalone SVG.
fn curve_svg(metrics: &[EpochMetrics]) -> String {
    let (w, h, pad) = (480.0, 240.0, 30.0);
    let n = metrics.len().max(2) as f64 - 1.0;
    let max_loss = metrics.iter().map(|m| m.val_loss).fold(1e-9, f64::max);
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v;
    let line = |f: &dyn Fn(&EpochMetrics) -> f64| {
        metrics
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{:.1},{:.1}", x(i), y(f(m))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#2471a3\" stroke-width=\"2\" points=\"{}\"/>\n\
         <text x=\"{pad}\" y=\"15\" fill=\"#c0392b\">validation loss (max {max_loss:.3})</text>\n\
         <text x=\"{}\" y=\"15\" fill=\"#2471a3\">validation accuracy</text>\n\
         <text x=\"{pad}\" y=\"{}\">epoch 1</text><text x=\"{}\" y=\"{}\">epoch {}</text>\n</svg>\n",
        line(&|m| m.val_loss / max_loss),
        line(&|m| m.val_accuracy),
        w / 2.0,
        h - 8.0,
        w - pad - 40.0,
        h - 8.0,
        metrics.len()
    )
}

/// Runs `hetal fit`.
pub fn fit(args: &FitArgs) -> anyhow::Result<()> {
    let mut data = Dataset::load_dir(&args.data)
        .with_context(|| format!("loading {}", args.data.display()))?;
    let config = args.hyper.config();
    crate::bench::set_threads(args.threads)?;
    let algo = args.hyper.algo();
    run_and_save(&mut data, &config, algo, args.mode, &args.preset, &args.out)
}

/// Standardizes every split by the training split's statistics (client-side, in plaintext);
/// returns the scaler, which is saved with the model.
pub fn scale(data: &mut Dataset) -> Standardizer {
    let scaler = Standardizer::fit(&data.train.features);
    for split in [&mut data.train, &mut data.val, &mut data.test] {
        split.features = scaler.apply(&split.features);
    }
    scaler
}

/// Scales, trains with the algorithms `algo` (unless in plaintext) and writes the output
/// directory (shared by `fit` and `demo`).
pub fn run_and_save(
    data: &mut Dataset,
    config: &TrainConfig,
    algo: TrainAlgo,
    mode: Mode,
    preset: &str,
    out: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let scaler = scale(data);
    let start = Instant::now();
    let (model, metrics, steps, best) = match mode {
        Mode::Plaintext => {
            let (model, metrics) = train(data, config)?;
            let best = metrics
                .iter()
                .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
                .map_or(0, |m| m.epoch);
            let per_step = start.elapsed().as_secs_f64()
                / (metrics.len() * data.train.len().div_ceil(config.batch_size)).max(1) as f64;
            let steps = vec![(per_step, 0.0); metrics.len()];
            (model, metrics, steps, best)
        }
        Mode::Encrypted | Mode::Simulate => {
            let (model, r) = if mode == Mode::Encrypted {
                crate::session::encrypted(data, config, algo, preset, out)?
            } else {
                crate::session::simulate(data, config, algo, preset, out)?
            };
            (model, r.metrics, r.steps, r.best_epoch)
        }
    };
    let run = Run {
        model,
        metrics,
        steps,
        best_epoch: best,
        seconds: start.elapsed().as_secs_f64(),
        algo,
    };
    save_run(out, data, config, &scaler, mode, preset, &run)
}

/// A finished training run.
pub struct Run {
    /// The decrypted (or plaintext) model.
    pub model: Model,
    /// Validation metrics per epoch.
    pub metrics: Vec<EpochMetrics>,
    /// Mean step seconds and bootstraps per epoch.
    pub steps: Vec<(f64, f64)>,
    /// The epoch the model is from.
    pub best_epoch: usize,
    /// Training seconds.
    pub seconds: f64,
    /// The algorithms it trained with (unless in plaintext).
    pub algo: TrainAlgo,
}

/// Writes the output directory of `run` (see the module documentation) and prints a summary.
/// `data` is scaled by `scaler`; a run not in plaintext is compared with exact training.
pub fn save_run(
    out: &Path,
    data: &Dataset,
    config: &TrainConfig,
    scaler: &Standardizer,
    mode: Mode,
    preset: &str,
    run: &Run,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut test_accuracy = serde_json::Map::new();
    test_accuracy.insert(mode.name().into(), json!(run.model.accuracy(&data.test)));
    if mode != Mode::Plaintext {
        // The reference: exact training with the same hyperparameters and initialization.
        let (reference, _) = train(data, config)?;
        test_accuracy.insert("plaintext".into(), json!(reference.accuracy(&data.test)));
    }
    write_npy(&out.join("weights.npy"), &run.model.weights)?;
    write_npy(&out.join("scaler_mean.npy"), &scaler.mean)?;
    write_npy(&out.join("scaler_std.npy"), &scaler.std)?;
    let epochs: Vec<_> = run
        .metrics
        .iter()
        .zip(&run.steps)
        .map(|(m, (step_s, boots))| json!({ "epoch": m.epoch, "val_loss": m.val_loss, "val_accuracy": m.val_accuracy, "step_s": step_s, "bootstraps": boots }))
        .collect();
    let mode_name = mode.name();
    let best = run.best_epoch;
    let seconds = run.seconds;
    let report = json!({
        "mode": mode_name,
        "preset": if mode == Mode::Plaintext { None } else { Some(preset) },
        "algo": if mode == Mode::Plaintext { None } else { Some(run.algo.to_string()) },
        "classes": data.classes,
        "epochs": epochs,
        "best_epoch": best,
        "train_seconds": seconds,
        "test_accuracy": test_accuracy,
    });
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    write_atomic(&out.join("curve.svg"), curve_svg(&run.metrics).as_bytes())?;
    let accuracies: Vec<String> = test_accuracy
        .iter()
        .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
        .collect();
    println!(
        "{mode_name}: best epoch {best}, test accuracy {}, {seconds:.1} s; model written to {}",
        accuracies.join(" vs "),
        out.display()
    );
    Ok(())
}

/// Runs `hetal predict`.
pub fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let read = |name: &str| -> anyhow::Result<Array1<f64>> {
        let p = args.model.join(name);
        Ok(Array1::<f64>::read_npy(
            std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?,
        )?)
    };
    let wpath = args.model.join("weights.npy");
    let weights = Array2::<f64>::read_npy(
        std::fs::File::open(&wpath).with_context(|| format!("opening {}", wpath.display()))?,
    )?;
    let scaler = Standardizer {
        mean: read("scaler_mean.npy")?,
        std: read("scaler_std.npy")?,
    };
    let file = std::fs::File::open(&args.features)
        .with_context(|| format!("opening {}", args.features.display()))?;
    let features = match Array2::<f64>::read_npy(file) {
        Ok(f) => f,
        Err(_) => Array2::<f32>::read_npy(std::fs::File::open(&args.features)?)
            .with_context(|| format!("{} is not a 2-d float array", args.features.display()))?
            .mapv(f64::from),
    };
    if features.ncols() + 1 != weights.ncols() || scaler.mean.len() != features.ncols() {
        bail!(
            "features have {} columns; the model expects {}",
            features.ncols(),
            weights.ncols().saturating_sub(1)
        );
    }
    if features.iter().any(|v| !v.is_finite()) {
        bail!("{} holds NaN or infinite values", args.features.display());
    }
    let pred = Model { weights }.predict(&scaler.apply(&features));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.join("predictions.npy"));
    write_npy(&out, &pred.mapv(|p| p as i64))?;
    if let Some(lp) = &args.labels {
        let labels = Array1::<i64>::read_npy(
            std::fs::File::open(lp).with_context(|| format!("opening {}", lp.display()))?,
        )?;
        if labels.len() != pred.len() {
            bail!("{} labels for {} rows", labels.len(), pred.len());
        }
        let correct = pred
            .iter()
            .zip(&labels)
            .filter(|(&p, &l)| p as i64 == l)
            .count();
        println!(
            "accuracy {:.4} ({correct}/{})",
            correct as f64 / pred.len().max(1) as f64,
            pred.len()
        );
    }
    println!("predictions written to {}", out.display());
    Ok(())
}
