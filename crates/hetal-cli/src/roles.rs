//! The two roles on two machines, exchanging files: `hetal keygen`, `hetal encrypt` and
//! `hetal decide`, `hetal decrypt-model` on the client; `hetal train` on the server.
//!
//! ```text
//! client: hetal keygen --data DIR --client C      C/outbox/{params.bin,setup.msg,eval.keys,boot.keys}
//! client: hetal encrypt --client C                C/outbox/data.msg
//!         copy C/outbox/* to the server's directory S
//! server: hetal train --server S                  one epoch → S/validation.msg
//!         copy S/validation.msg to the client
//! client: hetal decide --client C --validation F  C/outbox/decision.msg (stop or go on)
//!         copy decision.msg to S and run `hetal train` again, until it writes S/model.msg
//! client: hetal decrypt-model --client C --model S/model.msg --out OUT
//! ```
//!
//! The client directory holds the secret key (`secret.key`, never in the outbox), the scaling
//! (`scaler_*.npy`), the run's setup and the answered epochs (`client.json`). The server's
//! directory holds what the client sent and the server's checkpoint (`checkpoint.msg`, after
//! every step: a killed `hetal train` goes on where it stopped). Every file is written
//! atomically. The server decodes the parameters with the 128-bit security check, and every
//! message and key with its own validation: a damaged or foreign file is an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use ndarray::Array1;
use ndarray_npy::ReadNpyExt;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;

use hetal_ckks::{serial, Bootstrapper, Ciphertext, DecodeLimits, KeyGenerator, Params};
use hetal_ml::data::{Dataset, Standardizer};
use hetal_ml::plain::EpochMetrics;
use hetal_ml::protocol::{Checkpoint, Client, Data, Decision, Model, Server, Setup, Validation};
use hetal_ml::train::{boot_params, Geometry};
use hetal_ml::{CkksBackend, CkksClient};

use crate::fit::{save_run, scale, write_npy, HyperArgs, Mode, Run};
use crate::session::{
    after_step, bar, data_level, epoch_from_json, epoch_json, preset_params, read, server_keys,
    write_atomic, write_with,
};

/// Arguments of `hetal keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Directory with features_{train,val,test}.npy and labels_{train,val,test}.npy.
    #[arg(long)]
    data: PathBuf,
    /// The client's directory (created; must not hold a key yet).
    #[arg(long, default_value = "hetal-client")]
    client: PathBuf,
    #[command(flatten)]
    hyper: HyperArgs,
    /// Parameter preset (bootstrappable).
    #[arg(long, default_value = "n16-boot", value_parser = clap::builder::PossibleValuesParser::new(hetal_ckks::presets::NAMES))]
    preset: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Arguments of `hetal encrypt`.
#[derive(Args)]
pub struct EncryptArgs {
    /// The client's directory (from `hetal keygen`).
    #[arg(long, default_value = "hetal-client")]
    client: PathBuf,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Arguments of `hetal train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The server's directory: the client's outbox files, and `decision.msg` when answered.
    #[arg(long, default_value = "hetal-server")]
    server: PathBuf,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Arguments of `hetal decide`.
#[derive(Args)]
pub struct DecideArgs {
    /// The client's directory.
    #[arg(long, default_value = "hetal-client")]
    client: PathBuf,
    /// The server's `validation.msg`.
    #[arg(long)]
    validation: PathBuf,
}

/// Arguments of `hetal decrypt-model`.
#[derive(Args)]
pub struct DecryptModelArgs {
    /// The client's directory.
    #[arg(long, default_value = "hetal-client")]
    client: PathBuf,
    /// The server's `model.msg`.
    #[arg(long)]
    model: PathBuf,
    /// Output directory (as `hetal fit` writes it).
    #[arg(long)]
    out: PathBuf,
}

/// Whether parameters below 128-bit security are accepted: only by this module's tests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Security {
    Checked,
    #[cfg(test)]
    InsecureForTests,
}

fn decode_params(bytes: &[u8], security: Security) -> anyhow::Result<Params> {
    let limits = DecodeLimits::new(bytes.len());
    Ok(match security {
        Security::Checked => serial::decode_params(bytes, limits)?,
        #[cfg(test)]
        Security::InsecureForTests => serial::decode_params_insecure(bytes, limits)?,
    })
}

/// Decodes the file `name` of `dir` with `decode`, naming the file in errors.
fn load<T, E: Into<anyhow::Error>>(
    dir: &Path,
    name: &str,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> anyhow::Result<T> {
    let path = dir.join(name);
    decode(&read(&path)?)
        .map_err(Into::into)
        .with_context(|| format!("decoding {}", path.display()))
}

/// An answered epoch, with the server's step report.
struct Answered {
    metrics: EpochMetrics,
    step_s: f64,
    bootstraps: f64,
}

/// The client's directory.
struct ClientDir {
    dir: PathBuf,
    data: PathBuf,
    preset: String,
    answered: Vec<Answered>,
}

impl ClientDir {
    const STATE: &'static str = "client.json";

    fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(Self::STATE);
        let v: serde_json::Value = serde_json::from_slice(&read(&path)?)
            .with_context(|| format!("{}: not JSON", path.display()))?;
        let field = |k: &str| {
            v[k].as_str()
                .with_context(|| format!("{}: {k}", path.display()))
        };
        let answered = v["epochs"]
            .as_array()
            .with_context(|| format!("{}: epochs", path.display()))?
            .iter()
            .map(|e| {
                let num = |k: &str| e[k].as_f64().with_context(|| format!("client.json: {k}"));
                Ok(Answered {
                    metrics: epoch_from_json(e, "client.json")?,
                    step_s: num("step_s")?,
                    bootstraps: num("bootstraps")?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            data: PathBuf::from(field("data")?),
            preset: field("preset")?.to_owned(),
            answered,
        })
    }

    fn save(&self) -> anyhow::Result<()> {
        let epochs: Vec<_> = self
            .answered
            .iter()
            .map(|a| {
                let mut e = epoch_json(&a.metrics);
                e["step_s"] = json!(a.step_s);
                e["bootstraps"] = json!(a.bootstraps);
                e
            })
            .collect();
        let v = json!({"data": self.data, "preset": self.preset, "epochs": epochs});
        write_atomic(
            &self.dir.join(Self::STATE),
            serde_json::to_string_pretty(&v)?.as_bytes(),
        )
    }

    fn params(&self, security: Security) -> anyhow::Result<Params> {
        load(&self.outbox(), "params.bin", |b| decode_params(b, security))
    }

    fn setup(&self) -> anyhow::Result<Setup> {
        load(&self.outbox(), "setup.msg", Setup::decode)
    }

    /// The dataset, scaled as at key generation.
    fn dataset(&self) -> anyhow::Result<(Dataset, Standardizer)> {
        let mut data = Dataset::load_dir(&self.data)
            .with_context(|| format!("loading {}", self.data.display()))?;
        let npy = |name: &str| -> anyhow::Result<Array1<f64>> {
            let p = self.dir.join(name);
            Array1::<f64>::read_npy(read(&p)?.as_slice())
                .with_context(|| format!("reading {}", p.display()))
        };
        let scaler = Standardizer {
            mean: npy("scaler_mean.npy")?,
            std: npy("scaler_std.npy")?,
        };
        if scaler.mean.len() != data.train.features.ncols() {
            bail!(
                "{} has {} features; the keys were made for {}",
                self.data.display(),
                data.train.features.ncols(),
                scaler.mean.len()
            );
        }
        for split in [&mut data.train, &mut data.val, &mut data.test] {
            split.features = scaler.apply(&split.features);
        }
        Ok((data, scaler))
    }

    /// The slot client holding the secret key.
    fn slot_client(&self, params: &Params) -> anyhow::Result<CkksClient<ChaCha20Rng>> {
        let sk = load(&self.dir, "secret.key", |b| {
            serial::decode_secret_key(b, params, DecodeLimits::new(b.len()))
        })?;
        Ok(CkksClient::new(sk, ChaCha20Rng::from_os_rng()))
    }
}

/// Runs `hetal keygen`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    crate::bench::set_threads(args.threads)?;
    keygen_with(args, &preset_params(&args.preset)?)
}

fn keygen_with(args: &KeygenArgs, params: &Params) -> anyhow::Result<()> {
    // Every check on the data and the layout comes before any key is made.
    let mut data = Dataset::load_dir(&args.data)
        .with_context(|| format!("loading {}", args.data.display()))?;
    let config = args.hyper.config();
    let setup = Setup {
        slots: params.max_slots(),
        features: data.train.features.ncols(),
        classes: data.classes,
        config,
        algo: args.hyper.algo(),
    };
    let geometry: Geometry = setup.geometry()?;
    data_level(params)?;
    if args.client.join("secret.key").exists() {
        bail!(
            "{} already holds a secret key: choose another --client directory",
            args.client.display()
        );
    }
    let dir = ClientDir {
        dir: args.client.clone(),
        data: std::fs::canonicalize(&args.data)
            .with_context(|| format!("resolving {}", args.data.display()))?,
        preset: args.preset.clone(),
        answered: Vec::new(),
    };
    let outbox = dir.outbox();
    std::fs::create_dir_all(&outbox).with_context(|| format!("creating {}", outbox.display()))?;
    let scaler = scale(&mut data);
    write_npy(&dir.dir.join("scaler_mean.npy"), &scaler.mean)?;
    write_npy(&dir.dir.join("scaler_std.npy"), &scaler.std)?;
    let sk = KeyGenerator::new(params).gen_secret_key();
    write_atomic(&dir.dir.join("secret.key"), &serial::encode_secret_key(&sk))?;
    dir.save()?;
    write_atomic(&outbox.join("params.bin"), &serial::encode_params(params))?;
    write_atomic(&outbox.join("setup.msg"), &setup.encode())?;
    let (boot, keys, boot_keys) = server_keys(params, &geometry, &sk)?;
    // Streamed: the set is as large as the memory the run needs besides it.
    write_with(&outbox.join("eval.keys"), |f| {
        serial::write_eval_keys(&keys, params, f)
    })?;
    drop(keys);
    if let Some(k) = boot_keys {
        write_atomic(
            &outbox.join("boot.keys"),
            &serial::encode_boot_keys(&k, &boot),
        )?;
    }
    println!(
        "secret key in {} (keep it there); next: hetal encrypt --client {}",
        dir.dir.display(),
        dir.dir.display()
    );
    Ok(())
}

/// Runs `hetal encrypt`.
pub fn encrypt(args: &EncryptArgs) -> anyhow::Result<()> {
    crate::bench::set_threads(args.threads)?;
    encrypt_with(&args.client, Security::Checked)
}

fn encrypt_with(client: &Path, security: Security) -> anyhow::Result<()> {
    let dir = ClientDir::open(client)?;
    let params = dir.params(security)?;
    let setup = dir.setup()?;
    let (data, _) = dir.dataset()?;
    eprintln!(
        "encrypting {} training and {} validation rows…",
        data.train.len(),
        data.val.len()
    );
    let (_, sent, enc) = Client::prepare(
        dir.slot_client(&params)?,
        &data,
        &setup.config,
        setup.algo,
        params.max_slots(),
        data_level(&params)?,
    )?;
    if sent.encode() != setup.encode() {
        bail!(
            "{} changed since hetal keygen: make new keys",
            dir.data.display()
        );
    }
    let path = dir.outbox().join("data.msg");
    write_atomic(&path, &enc.encode(&params))?;
    println!(
        "next: copy {}/* to the server's directory and run hetal train --server DIR there",
        dir.outbox().display()
    );
    Ok(())
}

/// Runs `hetal train`: the current epoch's remaining steps and its validation logits, or the
/// client's decision on the last epoch first, or the model once training is over.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    crate::bench::set_threads(args.threads)?;
    train_with(&args.server, Security::Checked).map(drop)
}

/// What a `hetal train` run left for the client.
#[derive(Debug, PartialEq, Eq)]
enum Trained {
    /// This epoch's validation logits.
    Validation(usize),
    /// Nothing new: this epoch's validation awaits the client's decision.
    Awaiting(usize),
    /// The model of this (best) epoch.
    Model(usize),
}

fn train_with(dir: &Path, security: Security) -> anyhow::Result<Trained> {
    let params = load(dir, "params.bin", |b| decode_params(b, security))?;
    let ckpt = dir.join("checkpoint.msg");
    let at = if ckpt.exists() {
        let at = load(dir, "checkpoint.msg", |b| {
            Checkpoint::<Ciphertext>::decode(b, &params)
        })?;
        // A finished run or an epoch awaiting its decision needs neither keys nor data.
        if at.finished {
            return write_model(dir, &params, &at.model()?);
        }
        if decision_for(dir, at.epoch)?.is_none() {
            let path = dir.join("validation.msg");
            let sent = path.exists()
                && load(dir, "validation.msg", |b| {
                    Validation::<Ciphertext>::decode(b, &params)
                })?
                .epoch
                    == at.epoch;
            if sent {
                println!(
                    "epoch {} awaits the client's decision: send {} to the client \
                     (hetal decide), then put its decision.msg here",
                    at.epoch,
                    path.display()
                );
                return Ok(Trained::Awaiting(at.epoch));
            }
        }
        Some(at)
    } else {
        None
    };
    let setup = load(dir, "setup.msg", Setup::decode)?;
    let geometry = setup.geometry()?;
    let data = load(dir, "data.msg", |b| {
        Data::<Ciphertext>::decode(b, &params, &geometry)
    })?;
    eprintln!("loading the evaluation keys…");
    let path = dir.join("eval.keys");
    let keys = std::fs::File::open(&path)
        .and_then(|f| Ok((f.metadata()?.len(), f)))
        .map_err(anyhow::Error::from)
        .and_then(|(len, f)| {
            let limits = DecodeLimits::new(usize::try_from(len).unwrap_or(usize::MAX));
            Ok(serial::read_eval_keys(
                &mut std::io::BufReader::new(f),
                len,
                &params,
                limits,
            )?)
        })
        .with_context(|| format!("reading {}", path.display()))?;
    let boot = Arc::new(Bootstrapper::new(&params, &boot_params())?);
    let boot_keys = if dir.join("boot.keys").exists() {
        Some(Arc::new(load(dir, "boot.keys", |b| {
            serial::decode_boot_keys(b, &boot, DecodeLimits::new(b.len()))
        })?))
    } else {
        None
    };
    let ops = CkksBackend::new(&params, Arc::new(keys)).with_bootstrapping(boot, boot_keys)?;
    let mut server = match at {
        Some(at) => {
            eprintln!("resuming at epoch {}, step {}", at.epoch, at.step);
            Server::resume(ops, setup, data, at)?
        }
        None => Server::new(ops, setup, data)?,
    };
    let steps = server.steps_per_epoch();
    let (mut epoch, step) = (server.checkpoint().epoch, server.checkpoint().step);
    if step == steps {
        // The steps are done and the client's decision is here (otherwise the validation
        // would have been sent, or is computed again below).
        if let Some(d) = decision_for(dir, epoch)? {
            server.decide(d)?;
            write_atomic(&ckpt, &server.checkpoint().encode(&params))?;
            if server.finished() {
                return write_model(dir, &params, &server.model()?);
            }
            epoch = server.checkpoint().epoch;
        }
    }
    let pb = bar(steps as u64);
    pb.set_position(server.checkpoint().step as u64);
    let v = server.train_epoch(after_step(&pb, &ckpt, &params))?;
    pb.finish_and_clear();
    // The refreshed weights, so that the next epoch starts from what validation saw.
    write_atomic(&ckpt, &server.checkpoint().encode(&params))?;
    let path = dir.join("validation.msg");
    write_atomic(&path, &v.encode(&params))?;
    println!(
        "epoch {epoch}: {:.1} s and {:.1} bootstraps per step; send {} to the client \
         (hetal decide), then put its decision.msg here and run hetal train again",
        v.step_s,
        v.bootstraps,
        path.display()
    );
    Ok(Trained::Validation(epoch))
}

/// The client's decision on `epoch`, if `decision.msg` holds it (an older one is stale).
fn decision_for(dir: &Path, epoch: usize) -> anyhow::Result<Option<Decision>> {
    if !dir.join("decision.msg").exists() {
        return Ok(None);
    }
    let d = load(dir, "decision.msg", Decision::decode)?;
    Ok((d.epoch == epoch).then_some(d))
}

/// Writes the final model for the client.
fn write_model(dir: &Path, params: &Params, m: &Model<Ciphertext>) -> anyhow::Result<Trained> {
    let path = dir.join("model.msg");
    write_atomic(&path, &m.encode(params))?;
    println!(
        "training is over (best epoch {}); send {} to the client (hetal decrypt-model)",
        m.epoch,
        path.display()
    );
    Ok(Trained::Model(m.epoch))
}

/// The client of a run directory, with the epochs before `epoch` answered.
fn client_before(
    dir: &ClientDir,
    params: &Params,
    setup: &Setup,
    data: &Dataset,
    epoch: usize,
) -> anyhow::Result<Client<CkksClient<ChaCha20Rng>>> {
    let metrics = dir
        .answered
        .iter()
        .map(|a| a.metrics.clone())
        .filter(|m| m.epoch < epoch)
        .collect();
    Ok(Client::resume(
        dir.slot_client(params)?,
        data,
        setup,
        metrics,
    )?)
}

/// Runs `hetal decide`.
pub fn decide(args: &DecideArgs) -> anyhow::Result<()> {
    decide_with(args, Security::Checked)
}

fn decide_with(args: &DecideArgs, security: Security) -> anyhow::Result<()> {
    let mut dir = ClientDir::open(&args.client)?;
    let params = dir.params(security)?;
    let v = Validation::<Ciphertext>::decode(&read(&args.validation)?, &params)
        .with_context(|| format!("decoding {}", args.validation.display()))?;
    let answered = dir
        .answered
        .iter()
        .filter(|a| a.metrics.epoch < v.epoch)
        .count();
    if answered + 1 != v.epoch {
        bail!(
            "validation of epoch {}, but epochs up to {answered} are answered",
            v.epoch
        );
    }
    let (data, _) = dir.dataset()?;
    let mut client = client_before(&dir, &params, &dir.setup()?, &data, v.epoch)?;
    let d = client.decide(&v)?;
    let m = client.metrics().last().context("no metrics")?.clone();
    println!(
        "epoch {}: validation loss {:.4}, accuracy {:.4}{}; {}",
        m.epoch,
        m.val_loss,
        m.val_accuracy,
        if d.best { " (best)" } else { "" },
        if d.stop { "stop" } else { "go on" }
    );
    dir.answered.retain(|a| a.metrics.epoch < v.epoch);
    dir.answered.push(Answered {
        metrics: m,
        step_s: v.step_s,
        bootstraps: v.bootstraps,
    });
    dir.save()?;
    let path = dir.outbox().join("decision.msg");
    write_atomic(&path, &d.encode())?;
    println!(
        "send {} to the server and run hetal train there",
        path.display()
    );
    Ok(())
}

/// Runs `hetal decrypt-model`.
pub fn decrypt_model(args: &DecryptModelArgs) -> anyhow::Result<()> {
    decrypt_model_with(args, Security::Checked)
}

fn decrypt_model_with(args: &DecryptModelArgs, security: Security) -> anyhow::Result<()> {
    let dir = ClientDir::open(&args.client)?;
    let params = dir.params(security)?;
    let m = Model::<Ciphertext>::decode(&read(&args.model)?, &params)
        .with_context(|| format!("decoding {}", args.model.display()))?;
    let (data, scaler) = dir.dataset()?;
    let setup = dir.setup()?;
    let client = client_before(&dir, &params, &setup, &data, usize::MAX)?;
    let steps = data.train.len().div_ceil(setup.config.batch_size.max(1)) as f64;
    let run = Run {
        model: client.decrypt_model(&m)?,
        metrics: dir.answered.iter().map(|a| a.metrics.clone()).collect(),
        steps: dir
            .answered
            .iter()
            .map(|a| (a.step_s, a.bootstraps))
            .collect(),
        best_epoch: m.epoch,
        // The server's training time, from its step reports.
        seconds: dir.answered.iter().map(|a| a.step_s * steps).sum(),
        algo: setup.algo,
    };
    save_run(
        &args.out,
        &data,
        &setup.config,
        &scaler,
        Mode::Encrypted,
        &dir.preset,
        &run,
    )
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "test fixtures"
    )]

    use ndarray::{Array2, Axis, Slice};
    use ndarray_npy::WriteNpyExt;
    use serde_json::Value;

    use hetal_ckks::presets;
    use hetal_ml::plain;
    use hetal_ml::train::TrainAlgo;

    use super::*;
    use crate::matmul::Algo;

    fn write_data(dir: &Path, train_rows: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let d = Dataset::digits();
        for (name, split, rows) in [
            ("train", &d.train, train_rows),
            ("val", &d.val, d.val.len()),
            ("test", &d.test, d.test.len()),
        ] {
            let head = Slice::from(0..rows);
            let file = |kind: &str| std::fs::File::create(dir.join(format!("{kind}_{name}.npy")));
            split
                .features
                .slice_axis(Axis(0), head)
                .write_npy(file("features").unwrap())
                .unwrap();
            split
                .labels
                .slice_axis(Axis(0), head)
                .mapv(|l| l as i64)
                .write_npy(file("labels").unwrap())
                .unwrap();
        }
    }

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    /// The client decides on the server's validation outputs, and the decision is delivered
    /// to the server's directory.
    fn decide_and_deliver(client: &Path, server: &Path, security: Security) {
        let decide = DecideArgs {
            client: client.to_path_buf(),
            validation: server.join("validation.msg"),
        };
        decide_with(&decide, security).unwrap();
        std::fs::copy(
            client.join("outbox/decision.msg"),
            server.join("decision.msg"),
        )
        .unwrap();
    }

    /// Keygen arguments for `epochs` epochs of one-batch steps of 128 rows with `algo`.
    fn keygen_args(data: &Path, client: &Path, epochs: usize, algo: Algo) -> KeygenArgs {
        KeygenArgs {
            data: data.to_path_buf(),
            client: client.to_path_buf(),
            hyper: HyperArgs {
                epochs,
                batch_size: 128,
                lr: 1.0,
                patience: 3,
                momentum: 0.9,
                algo,
            },
            preset: "insecure-boot-test".into(),
            threads: 0,
        }
    }

    /// A fresh directory `root` for a two-machine test, with `data` (128 training rows of the
    /// digits), and the paths of the client's, the server's and the output directories.
    struct Machines {
        root: PathBuf,
        data: PathBuf,
        client: PathBuf,
        server: PathBuf,
        out: PathBuf,
    }

    impl Machines {
        fn new(name: &str) -> Self {
            let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let dir = |d: &str| root.join(d);
            let m = Self {
                data: dir("data"),
                client: dir("client"),
                server: dir("server"),
                out: dir("out"),
                root,
            };
            write_data(&m.data, 128);
            m
        }

        /// The data, standardized as the client does.
        fn scaled_data(&self) -> Dataset {
            let mut d = Dataset::load_dir(&self.data).unwrap();
            scale(&mut d);
            d
        }

        /// The client decrypts the server's model into `out`: the largest difference of its
        /// weights from `reference`, and the run's `metrics.json`.
        fn decrypt_model(&self, security: Security, reference: &Array2<f64>) -> (f64, Value) {
            decrypt_model_with(
                &DecryptModelArgs {
                    client: self.client.clone(),
                    model: self.server.join("model.msg"),
                    out: self.out.clone(),
                },
                security,
            )
            .unwrap();
            let file = std::fs::File::open(self.out.join("weights.npy")).unwrap();
            let weights = Array2::<f64>::read_npy(file).unwrap();
            let diff = (&weights - reference)
                .iter()
                .fold(0.0f64, |m, e| m.max(e.abs()));
            let metrics = serde_json::from_slice(&read(&self.out.join("metrics.json")).unwrap());
            (diff, metrics.unwrap())
        }
    }

    /// The two-machine workflow at small N (insecure N = 2^12 set shaped like `n16-boot`), the
    /// roles exchanging only files: the model lands on exact plaintext training's, the
    /// server's directory never holds a piece of the secret key, a `hetal train` awaiting a
    /// decision does not train again, and damaged files are errors.
    #[test]
    fn two_machines_train_through_files_like_plaintext() {
        let m = Machines::new("hetal-roles-test");
        let (data, client, server) = (&m.data, &m.client, &m.server);
        let params = Params::new_insecure(presets::insecure_boot_test(12, 9)).unwrap();
        let security = Security::InsecureForTests;
        let keygen = keygen_args(data, client, 2, Algo::Ours);
        keygen_with(&keygen, &params).unwrap();
        let again = keygen_with(&keygen, &params).unwrap_err().to_string();
        assert!(again.contains("already holds a secret key"), "{again}");
        // The public parameters are refused by a server that checks security.
        assert!(decode_params(
            &read(&client.join("outbox/params.bin")).unwrap(),
            Security::Checked
        )
        .is_err());
        encrypt_with(client, security).unwrap();
        copy(&client.join("outbox"), server);

        let secret = read(&client.join("secret.key")).unwrap();
        let needle = &secret[secret.len() / 2..secret.len() / 2 + 64];
        for e in std::fs::read_dir(server).unwrap() {
            let bytes = read(&e.unwrap().path()).unwrap();
            assert!(!bytes.windows(64).any(|w| w == needle));
        }

        assert_eq!(
            train_with(server, security).unwrap(),
            Trained::Validation(1)
        );
        assert_eq!(train_with(server, security).unwrap(), Trained::Awaiting(1));
        decide_and_deliver(client, server, security);
        // A damaged message is an error naming the file; the checkpoint is untouched.
        let ckpt = read(&server.join("checkpoint.msg")).unwrap();
        let data_msg = read(&server.join("data.msg")).unwrap();
        let mut bytes = data_msg.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(server.join("data.msg"), &bytes).unwrap();
        let err = format!("{:#}", train_with(server, security).unwrap_err());
        assert!(err.contains("data.msg"), "{err}");
        assert_eq!(read(&server.join("checkpoint.msg")).unwrap(), ckpt);
        std::fs::write(server.join("data.msg"), &data_msg).unwrap();
        assert_eq!(
            train_with(server, security).unwrap(),
            Trained::Validation(2)
        );
        // The first epoch's decision, still in the server's directory, is stale: the server
        // awaits epoch 2.
        assert_eq!(train_with(server, security).unwrap(), Trained::Awaiting(2));
        decide_and_deliver(client, server, security);
        assert!(matches!(
            train_with(server, security).unwrap(),
            Trained::Model(_)
        ));
        // The reference: exact training on the same scaled data (the same best epoch).
        let (exact, _) = plain::train(&m.scaled_data(), &keygen.hyper.config()).unwrap();
        let (diff, metrics) = m.decrypt_model(security, &exact.weights);
        assert!(diff < 1e-3, "|W_enc − W_plain| = {diff}");
        let acc = &metrics["test_accuracy"];
        let (enc, plain) = (
            acc["encrypted"].as_f64().unwrap(),
            acc["plaintext"].as_f64().unwrap(),
        );
        assert!((enc - plain).abs() <= 0.005, "{enc} vs {plain}");
        assert_eq!(metrics["epochs"].as_array().unwrap().len(), 2);

        // Once over, the model is rewritten from the checkpoint alone: no keys are read.
        std::fs::remove_file(server.join("eval.keys")).unwrap();
        assert!(matches!(
            train_with(server, security).unwrap(),
            Trained::Model(_)
        ));
        std::fs::remove_dir_all(&m.root).unwrap();
    }

    /// The two-machine workflow with HETAL's algorithms (`hetal keygen --algo hetal`), one
    /// epoch: the model the client decrypts is the simulator twin's (the same pipeline on the
    /// slot simulator at the same primes and bootstrapping levels) to within what the
    /// bootstraps' ≥ 15 bits of precision on values bounded by 2 allow (2·2⁻¹⁵ ≈ 6·10⁻⁵),
    /// and the run records its algorithms.
    #[test]
    fn two_machines_train_with_hetal_algorithms_like_the_simulator() {
        let m = Machines::new("hetal-roles-hetal");
        let (data, client, server) = (&m.data, &m.client, &m.server);
        let params = Params::new_insecure(presets::insecure_boot_test(12, 9)).unwrap();
        let security = Security::InsecureForTests;
        let keygen = keygen_args(data, client, 1, Algo::Hetal);
        keygen_with(&keygen, &params).unwrap();
        encrypt_with(client, security).unwrap();
        copy(&client.join("outbox"), server);
        assert_eq!(
            train_with(server, security).unwrap(),
            Trained::Validation(1)
        );
        decide_and_deliver(client, server, security);
        assert!(matches!(
            train_with(server, security).unwrap(),
            Trained::Model(_)
        ));
        let (twin, _) = crate::session::simulate_at(
            &m.scaled_data(),
            &keygen.hyper.config(),
            TrainAlgo::Hetal,
            &params,
            &m.root.join("twin"),
        )
        .unwrap();
        let (diff, metrics) = m.decrypt_model(security, &twin.weights);
        eprintln!("|W_enc − W_sim| = {diff:e}");
        assert!(diff < 6e-5, "|W_enc − W_sim| = {diff}");
        assert_eq!(metrics["algo"], "hetal");
        std::fs::remove_dir_all(&m.root).unwrap();
    }
}
