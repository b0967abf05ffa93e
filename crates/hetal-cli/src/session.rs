//! Encrypted and simulated training for `hetal fit` and `hetal demo`: both roles of the
//! protocol on this machine, with only serialized messages passing between them, a progress
//! bar, and a run directory from which a killed run resumes.
//!
//! The run directory (`OUT/run/`) holds the client's secret key (`secret.key`, never read by
//! the server side), the server's inputs (`setup.msg`, `data.msg`), its checkpoint after every
//! step and decision (`checkpoint.msg`), and the client's answered epochs (`client.json`).
//! Evaluation keys are not stored: a resumed run regenerates them from the secret key. In
//! this one-machine run they pass to the server side in memory (they are public; see
//! [`encrypted`]), everything else as serialized messages.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;

use hetal_ckks::{
    presets, serial, BootKeys, Bootstrapper, DecodeLimits, EvalKeySet, KeyGenerator, Params,
    SecretKey,
};
use hetal_ml::data::Dataset;
use hetal_ml::plain::{EpochMetrics, Model as PlainModel, TrainConfig};
use hetal_ml::protocol::{
    Checkpoint, Client, Data, Decision, Model, Server, Setup, StepReport, Validation, WireCt,
};
use hetal_ml::softmax::SoftmaxOps;
use hetal_ml::train::{boot_params, Geometry, TrainAlgo, BOOT_BOUND};
use hetal_ml::{Bootstrap, CkksBackend, CkksClient, SlotClient, SlotSim};

/// What a run reports besides the model.
pub struct RunReport {
    /// Validation metrics per epoch.
    pub metrics: Vec<EpochMetrics>,
    /// Mean step seconds and bootstraps per epoch.
    pub steps: Vec<(f64, f64)>,
    /// The epoch the model is from.
    pub best_epoch: usize,
}

/// Writes `path` through `write` into a temporary file renamed over it, so that a crash never
/// leaves a half file and what was there stays until the new one is complete.
pub fn write_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .map(std::io::BufWriter::new)
        .and_then(|mut f| {
            write(&mut f)?;
            f.flush()?;
            f.get_ref().sync_all()
        })
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// [`write_with`] for bytes in memory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_with(path, |f| std::io::Write::write_all(f, bytes))
}

pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The files of a run directory.
struct RunDir(PathBuf);

impl RunDir {
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn metrics(&self) -> anyhow::Result<Vec<EpochMetrics>> {
        let p = self.file("client.json");
        if !p.exists() {
            return Ok(Vec::new());
        }
        let v: serde_json::Value = serde_json::from_slice(&read(&p)?)?;
        v.as_array()
            .context("client.json: not a list")?
            .iter()
            .map(|e| epoch_from_json(e, "client.json"))
            .collect()
    }

    fn save_metrics(&self, metrics: &[EpochMetrics]) -> anyhow::Result<()> {
        let v: Vec<_> = metrics.iter().map(epoch_json).collect();
        write_atomic(
            &self.file("client.json"),
            serde_json::to_string(&v)?.as_bytes(),
        )
    }
}

/// One epoch's validation figures as the client's JSON state stores them.
pub fn epoch_json(m: &EpochMetrics) -> serde_json::Value {
    json!({"epoch": m.epoch, "val_loss": m.val_loss, "val_accuracy": m.val_accuracy})
}

/// Reads [`epoch_json`] back; `file` names the file in errors.
///
/// # Errors
/// A missing or non-numeric field.
pub fn epoch_from_json(e: &serde_json::Value, file: &str) -> anyhow::Result<EpochMetrics> {
    let num = |k: &str| e[k].as_f64().with_context(|| format!("{file}: {k}"));
    Ok(EpochMetrics {
        epoch: e["epoch"]
            .as_u64()
            .with_context(|| format!("{file}: epoch"))? as usize,
        val_loss: num("val_loss")?,
        val_accuracy: num("val_accuracy")?,
    })
}

/// What the server does after each step: persist the checkpoint at `path` and advance the
/// progress bar.
pub fn after_step<'a, C: WireCt>(
    pb: &'a ProgressBar,
    path: &'a Path,
    ctx: &'a C::Ctx,
) -> impl FnMut(&StepReport, &Checkpoint<C>) -> Result<(), hetal_ml::MlError> + 'a {
    move |r, c| {
        write_atomic(path, &c.encode(ctx))
            .map_err(|e| hetal_ml::MlError::Message(format!("checkpoint: {e:#}")))?;
        pb.set_message(format!(
            "epoch {} step {}/{}: {:.1} s, {} bootstraps",
            r.epoch, r.step, r.steps, r.seconds, r.bootstraps
        ));
        pb.inc(1);
        Ok(())
    }
}

/// A progress bar over `total` training steps.
pub fn bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Drives both roles through serialized messages until the client stops; returns the
/// decrypted model and the report.
fn drive<O, K>(
    client: &mut Client<K>,
    server: &mut Server<O>,
    ctx: &<O::Ct as WireCt>::Ctx,
    dir: &RunDir,
    epochs: usize,
) -> anyhow::Result<(PlainModel, RunReport)>
where
    O: SoftmaxOps + Bootstrap,
    O::Ct: WireCt,
    K: SlotClient<Ct = O::Ct>,
{
    let steps = server.steps_per_epoch() as u64;
    let at = server.checkpoint();
    let pb = bar(steps * epochs as u64);
    pb.set_position((at.epoch as u64 - 1) * steps + at.step as u64);
    let mut per_epoch = Vec::new();
    while !server.finished() {
        let v = server.train_epoch(after_step(&pb, &dir.file("checkpoint.msg"), ctx))?;
        per_epoch.push((v.step_s, v.bootstraps));
        let v = Validation::<O::Ct>::decode(&v.encode(ctx), ctx)?;
        let d = client.decide(&v)?;
        dir.save_metrics(client.metrics())?;
        if let Some(m) = client.metrics().last() {
            pb.println(format!(
                "epoch {}: validation loss {:.4}, accuracy {:.4}{}",
                m.epoch,
                m.val_loss,
                m.val_accuracy,
                if d.best { " (best)" } else { "" }
            ));
        }
        server.decide(Decision::decode(&d.encode())?)?;
        write_atomic(
            &dir.file("checkpoint.msg"),
            &server.checkpoint().encode(ctx),
        )?;
    }
    pb.finish_and_clear();
    let m = server.model()?;
    let m = Model::<O::Ct>::decode(&m.encode(ctx), ctx)?;
    let model = client.decrypt_model(&m)?;
    Ok((
        model,
        RunReport {
            metrics: client.metrics().to_vec(),
            steps: per_epoch,
            best_epoch: m.epoch,
        },
    ))
}

/// Starts or resumes the server and client of the run `setup` on `data`; `inner` is the slot
/// client (fresh, or from the stored secret).
fn start<O, K>(
    data: &Dataset,
    setup: &Setup,
    level: usize,
    dir: &RunDir,
    inner: K,
    ops: O,
    ctx: &<O::Ct as WireCt>::Ctx,
) -> anyhow::Result<(Client<K>, Server<O>)>
where
    O: SoftmaxOps + Bootstrap,
    O::Ct: WireCt,
    K: SlotClient<Ct = O::Ct>,
{
    let ckpt = dir.file("checkpoint.msg");
    let resumable = ckpt.exists()
        && dir.file("data.msg").exists()
        && read(&dir.file("setup.msg")).ok().as_deref() == Some(setup.encode().as_slice());
    if resumable {
        let geometry = setup.geometry()?;
        let enc = Data::<O::Ct>::decode(&read(&dir.file("data.msg"))?, ctx, &geometry)?;
        let at = Checkpoint::<O::Ct>::decode(&read(&ckpt)?, ctx)?;
        // Epochs the server has not taken a decision on are answered again.
        let mut metrics = dir.metrics()?;
        metrics.retain(|m| m.epoch < at.epoch || at.finished);
        eprintln!(
            "resuming {}: epoch {}, step {}",
            dir.0.display(),
            at.epoch,
            at.step
        );
        let client = Client::resume(inner, data, setup, metrics)?;
        let server = Server::resume(ops, Setup::decode(&read(&dir.file("setup.msg"))?)?, enc, at)?;
        return Ok((client, server));
    }
    let _ = std::fs::remove_file(&ckpt);
    let _ = std::fs::remove_file(dir.file("client.json"));
    let (client, setup, enc) =
        Client::prepare(inner, data, &setup.config, setup.algo, setup.slots, level)?;
    let setup_b = setup.encode();
    let data_b = enc.encode(ctx);
    drop(enc);
    write_atomic(&dir.file("setup.msg"), &setup_b)?;
    write_atomic(&dir.file("data.msg"), &data_b)?;
    let setup = Setup::decode(&setup_b)?;
    let geometry = setup.geometry()?;
    let enc = Data::<O::Ct>::decode(&data_b, ctx, &geometry)?;
    let server = Server::new(ops, setup, enc)?;
    Ok((client, server))
}

fn run_dir(out: &Path) -> anyhow::Result<RunDir> {
    let dir = out.join("run");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(RunDir(dir))
}

/// The run's setup: `data`'s sizes, `config` and `algo` in ciphertexts of `params`.
fn setup_of(data: &Dataset, config: &TrainConfig, algo: TrainAlgo, params: &Params) -> Setup {
    Setup {
        slots: params.max_slots(),
        features: data.train.features.ncols(),
        classes: data.classes,
        config: config.clone(),
        algo,
    }
}

/// Trains with `algo` on the slot simulator with the primes and bootstrapping levels of
/// `preset`.
pub fn simulate(
    data: &Dataset,
    config: &TrainConfig,
    algo: TrainAlgo,
    preset: &str,
    out: &Path,
) -> anyhow::Result<(PlainModel, RunReport)> {
    simulate_at(data, config, algo, &preset_params(preset)?, out)
}

/// [`simulate`] with the primes and bootstrapping levels of `params` (the twin of an
/// encrypted run at any parameters, test sets included).
pub fn simulate_at(
    data: &Dataset,
    config: &TrainConfig,
    algo: TrainAlgo,
    params: &Params,
    out: &Path,
) -> anyhow::Result<(PlainModel, RunReport)> {
    let level = data_level(params)?;
    let sim = || simulator(params, level);
    let dir = run_dir(&out.join("simulate"))?;
    let ctx = sim()?;
    let setup = setup_of(data, config, algo, params);
    let (mut client, mut server) = start(data, &setup, level, &dir, sim()?, sim()?, &ctx)?;
    drive(&mut client, &mut server, &ctx, &dir, config.epochs)
}

pub fn preset_params(preset: &str) -> anyhow::Result<Params> {
    let lit = presets::by_name(preset).with_context(|| format!("unknown preset {preset}"))?;
    Ok(Params::new(lit)?)
}

/// The slot simulator at the primes of `params`, bootstrapping back to `level` with the
/// training circuit's bound.
pub fn simulator(params: &Params, level: usize) -> anyhow::Result<SlotSim> {
    Ok(SlotSim::from_params(params).with_bootstrapping(level, BOOT_BOUND)?)
}

/// The level data is encrypted at: where bootstrapping with [`boot_params`] returns.
pub fn data_level(params: &Params) -> anyhow::Result<usize> {
    params
        .max_level()
        .checked_sub(boot_params().depth())
        .context("the preset has fewer levels than bootstrapping consumes")
}

/// The server's key material for `geometry`, made from `sk`: the bootstrapping circuit, the
/// evaluation keys (the training's rotations and the bootstrapping's, conjugation,
/// relinearization) and the encapsulation keys (if the preset uses encapsulation).
///
/// Training runs at or below the level bootstrapping returns to (data is encrypted there too),
/// so the rotations only training uses get keys for those levels only: at `n16-boot` a quarter
/// of a full key's size (2 digits over 18 limbs against 4 over 34).
pub fn server_keys(
    params: &Params,
    geometry: &Geometry,
    sk: &SecretKey,
) -> anyhow::Result<(Arc<Bootstrapper>, EvalKeySet, Option<BootKeys>)> {
    eprintln!("building the bootstrapping circuit…");
    let boot = Arc::new(Bootstrapper::new(params, &boot_params())?);
    let training = geometry.rotations()?;
    eprintln!(
        "generating {} rotation keys for bootstrapping, {} for training (levels ≤ {}), and \
         the bootstrapping keys…",
        boot.rotations().len(),
        training.len(),
        boot.levels_after()
    );
    let mut keygen = KeyGenerator::new(params);
    let mut keys = keygen.gen_eval_keys(sk, boot.rotations(), true);
    // Rotations bootstrapping shares keep their full key.
    keygen.add_rotation_keys_at(&mut keys, sk, &training, boot.levels_after())?;
    let boot_keys = boot.gen_boot_keys(sk, ChaCha20Rng::from_os_rng())?;
    eprintln!(
        "key material: {:.2} GB",
        (keys.size_bytes() + boot_keys.as_ref().map_or(0, |k| k.size_bytes())) as f64 / 1e9
    );
    Ok((boot, keys, boot_keys))
}

/// The server's backend (evaluation and bootstrapping keys for `geometry`, generated from
/// `sk`) and the client's, and the level data is encrypted at (where bootstrapping returns).
///
/// The evaluation keys are public and hold no secret (`EvalKeySet` has no field that could):
/// they are handed to the server side as they are, since a serialized copy of ~7 GB next to
/// the keys would double the peak memory. `hetal keygen` and `hetal train` serialize them.
pub fn backends(
    params: &Params,
    geometry: &Geometry,
    sk: SecretKey,
) -> anyhow::Result<(CkksBackend, CkksClient<ChaCha20Rng>, usize)> {
    let (boot, keys, boot_keys) = server_keys(params, geometry, &sk)?;
    let level = boot.levels_after();
    let server = CkksBackend::new(params, Arc::new(keys))
        .with_bootstrapping(boot, boot_keys.map(Arc::new))?;
    Ok((
        server,
        CkksClient::new(sk, ChaCha20Rng::from_os_rng()),
        level,
    ))
}

/// Trains encrypted with `algo` at `preset`: keys, encryption, training with bootstrapping,
/// decryption.
pub fn encrypted(
    data: &Dataset,
    config: &TrainConfig,
    algo: TrainAlgo,
    preset: &str,
    out: &Path,
) -> anyhow::Result<(PlainModel, RunReport)> {
    let params = preset_params(preset)?;
    let dir = run_dir(out)?;
    // The client's secret: stored for a resumed run, never read by the server side.
    let key_path = dir.file("secret.key");
    let sk = match std::fs::read(&key_path) {
        Ok(b) if dir.file("checkpoint.msg").exists() => {
            serial::decode_secret_key(&b, &params, DecodeLimits::new(b.len()))?
        }
        _ => {
            let sk = KeyGenerator::new(&params).gen_secret_key();
            write_atomic(&key_path, &serial::encode_secret_key(&sk))?;
            sk
        }
    };
    let setup = setup_of(data, config, algo, &params);
    let (server_ops, client_ops, level) = backends(&params, &setup.geometry()?, sk)?;
    let (mut client, mut server) =
        start(data, &setup, level, &dir, client_ops, server_ops, &params)?;
    if config.epochs == 0 {
        bail!("zero epochs");
    }
    drive(&mut client, &mut server, &params, &dir, config.epochs)
}
