//! The training protocol end to end: client and server exchanging only serialized messages,
//! on the simulator (full digits) against exact plaintext training, and message decoding
//! under truncation and corruption.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test fixtures"
)]

use hetal_ml::data::{Dataset, Standardizer};
use hetal_ml::plain::{self, TrainConfig};
use hetal_ml::protocol::{Checkpoint, Client, Data, Decision, Model, Server, Setup, Validation};
use hetal_ml::train::TrainAlgo;
use hetal_ml::{SimCt, SlotSim};

const SLOTS: usize = 1 << 12;
const LEVEL: usize = 9;

fn scaled_digits() -> Dataset {
    let mut d = Dataset::digits();
    let s = Standardizer::fit(&d.train.features);
    for split in [&mut d.train, &mut d.val, &mut d.test] {
        split.features = s.apply(&split.features);
    }
    d
}

fn sim() -> SlotSim {
    SlotSim::uniform(SLOTS, 12, 40)
        .with_bootstrapping(LEVEL, hetal_ml::train::BOOT_BOUND)
        .unwrap()
}

fn config() -> TrainConfig {
    TrainConfig {
        lr: 1.0,
        momentum: 0.9,
        batch_size: 64,
        epochs: 4,
        patience: 3,
    }
}

/// Runs the protocol on the simulator, every message through bytes; returns the decrypted
/// model and the client's per-epoch metrics.
fn run(data: &Dataset, config: &TrainConfig) -> (plain::Model, Vec<plain::EpochMetrics>) {
    run_with(data, config, &sim)
}

/// [`run`] on simulators made by `sim`.
fn run_with(
    data: &Dataset,
    config: &TrainConfig,
    sim: &dyn Fn() -> SlotSim,
) -> (plain::Model, Vec<plain::EpochMetrics>) {
    let wire = sim();
    let slots = wire.max_slots();
    let (mut client, setup, enc) =
        Client::prepare(sim(), data, config, TrainAlgo::Ours, slots, LEVEL).unwrap();
    let setup = Setup::decode(&setup.encode()).unwrap();
    let geometry = setup.geometry().unwrap();
    let enc = Data::<SimCt>::decode(&enc.encode(&wire), &wire, &geometry).unwrap();
    let mut server = Server::new(sim(), setup, enc).unwrap();
    loop {
        let v = server.train_epoch(|_, _| Ok(())).unwrap();
        let v = Validation::<SimCt>::decode(&v.encode(&wire), &wire).unwrap();
        let d = client.decide(&v).unwrap();
        if !server
            .decide(Decision::decode(&d.encode()).unwrap())
            .unwrap()
        {
            break;
        }
    }
    let m = server.model().unwrap();
    let m = Model::<SimCt>::decode(&m.encode(&wire), &wire).unwrap();
    (client.decrypt_model(&m).unwrap(), client.metrics().to_vec())
}

#[test]
fn simulated_protocol_matches_plaintext_training_on_digits() {
    let data = scaled_digits();
    let config = config();
    let (model, metrics) = run(&data, &config);
    let (reference, ref_metrics) = plain::train(&data, &config).unwrap();
    let (acc, ref_acc) = (model.accuracy(&data.test), reference.accuracy(&data.test));
    let w_diff = (&model.weights - &reference.weights)
        .iter()
        .fold(0.0f64, |m, e| m.max(e.abs()));
    eprintln!(
        "test accuracy: simulated {acc:.4}, plaintext {ref_acc:.4}; |W − W_plain| ≤ {w_diff:.1e}; \
         val losses {:?} vs {:?}",
        metrics.iter().map(|m| m.val_loss).collect::<Vec<_>>(),
        ref_metrics.iter().map(|m| m.val_loss).collect::<Vec<_>>()
    );
    assert_eq!(metrics.len(), ref_metrics.len());
    assert!((acc - ref_acc).abs() <= 0.005, "{acc} vs {ref_acc}");
    assert!(acc > 0.9, "{acc}");
    assert!(w_diff < 1e-3, "{w_diff}");
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let mut data = scaled_digits();
    data.train.features = data
        .train
        .features
        .slice_axis(ndarray::Axis(0), (0..320).into())
        .to_owned();
    data.train.labels = data
        .train
        .labels
        .slice_axis(ndarray::Axis(0), (0..320).into())
        .to_owned();
    let config = TrainConfig {
        epochs: 2,
        ..config()
    };
    let (uninterrupted, _) = run(&data, &config);
    // Kill after 7 steps (mid second epoch): keep only the last checkpoint's bytes.
    let wire = sim();
    let (mut client, setup, enc) =
        Client::prepare(sim(), &data, &config, TrainAlgo::Ours, SLOTS, LEVEL).unwrap();
    let (setup_b, data_b) = (setup.encode(), enc.encode(&wire));
    let geometry = setup.geometry().unwrap();
    let mut saved: Option<Vec<u8>> = None;
    let mut server = Server::new(sim(), setup, enc).unwrap();
    let v = server
        .train_epoch(|_, c| {
            saved = Some(c.encode(&wire));
            Ok(())
        })
        .unwrap();
    let d = client.decide(&v).unwrap();
    server.decide(d).unwrap();
    let mut steps = 0;
    let killed = server.train_epoch(|_, c| {
        saved = Some(c.encode(&wire));
        steps += 1;
        if steps == 2 {
            Err(hetal_ml::MlError::Message("killed".into()))
        } else {
            Ok(())
        }
    });
    assert!(killed.is_err());
    drop(server);
    // Resume from the bytes alone.
    let setup = Setup::decode(&setup_b).unwrap();
    let enc = Data::<SimCt>::decode(&data_b, &wire, &geometry).unwrap();
    let at = Checkpoint::<SimCt>::decode(saved.as_deref().unwrap(), &wire).unwrap();
    assert_eq!((at.epoch, at.step), (2, 2));
    let mut server = Server::resume(sim(), setup, enc, at).unwrap();
    loop {
        let v = server.train_epoch(|_, _| Ok(())).unwrap();
        if !server.decide(client.decide(&v).unwrap()).unwrap() {
            break;
        }
    }
    let resumed = client.decrypt_model(&server.model().unwrap()).unwrap();
    assert_eq!(resumed.weights, uninterrupted.weights);
}

#[test]
fn damaged_messages_are_errors() {
    let data = scaled_digits();
    let wire = sim();
    let (_, setup, enc) =
        Client::prepare(sim(), &data, &config(), TrainAlgo::Ours, SLOTS, LEVEL).unwrap();
    let geometry = setup.geometry().unwrap();
    let setup_b = setup.encode();
    for n in 0..setup_b.len() {
        assert!(Setup::decode(&setup_b[..n]).is_err(), "truncated at {n}");
    }
    for i in 0..setup_b.len() {
        let mut b = setup_b.clone();
        b[i] ^= 0x10;
        assert!(Setup::decode(&b).is_err(), "flip at {i}");
    }
    // A data message: truncations at many points, flips, and the wrong kind.
    let data_b = enc.encode(&wire);
    for n in (0..data_b.len()).step_by(data_b.len() / 300 + 1) {
        assert!(Data::<SimCt>::decode(&data_b[..n], &wire, &geometry).is_err());
    }
    for i in (0..data_b.len()).step_by(data_b.len() / 300 + 1) {
        let mut b = data_b.clone();
        b[i] ^= 0x01;
        assert!(
            Data::<SimCt>::decode(&b, &wire, &geometry).is_err(),
            "flip at {i}"
        );
    }
    assert!(Data::<SimCt>::decode(&setup_b, &wire, &geometry).is_err());
    assert!(Decision::decode(&setup_b).is_err());
}

/// The acceptance run of issue 5 at small N: encrypted training with bootstrapping (insecure
/// N = 2^12 set shaped like `n16-boot`, encapsulation, 9 levels after bootstrapping) on the
/// embedded digits (the first 256 training rows, 2 epochs of 4 steps), every message through
/// bytes. Its test accuracy is within 0.5 pt of exact plaintext training and within 0.2 pt of
/// the simulator twin (with 271 test rows: the same predictions).
#[test]
fn encrypted_protocol_on_digits_matches_its_twins() {
    use std::sync::Arc;

    use hetal_ckks::{presets, Bootstrapper, Ciphertext, KeyGenerator, Params};
    use hetal_ml::train::{boot_params, Geometry};
    use hetal_ml::{Bootstrap, CkksBackend, CkksClient};
    use ndarray::{Axis, Slice};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    let mut data = scaled_digits();
    let head = Slice::from(0..256);
    data.train.features = data.train.features.slice_axis(Axis(0), head).to_owned();
    data.train.labels = data.train.labels.slice_axis(Axis(0), head).to_owned();
    let config = TrainConfig {
        epochs: 2,
        ..config()
    };
    let params = Params::new_insecure(presets::insecure_boot_test(12, LEVEL)).unwrap();
    let slots = params.max_slots();
    let boot = Bootstrapper::new(&params, &boot_params()).unwrap();
    assert_eq!(boot.levels_after(), LEVEL);
    let geometry = Geometry::new(slots, 64, 10, config.batch_size).unwrap();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(11));
    let sk = keygen.gen_secret_key();
    let mut rotations = geometry.rotations().unwrap();
    rotations.extend_from_slice(boot.rotations());
    let keys = keygen.gen_eval_keys(&sk, &rotations, true);
    let boot_keys = boot
        .gen_boot_keys(&sk, ChaCha20Rng::seed_from_u64(12))
        .unwrap();
    // The server's bundle holds no secret: its bytes never contain a piece of the secret
    // key's encoding (64 bytes from the middle of its coefficients).
    let keys_b = hetal_ckks::serial::encode_eval_keys(&keys, &params);
    let sk_b = hetal_ckks::serial::encode_secret_key(&sk);
    let needle = &sk_b[sk_b.len() / 2..sk_b.len() / 2 + 64];
    assert!(!keys_b.windows(64).any(|w| w == needle));
    drop(keys_b);
    let server_ops = CkksBackend::new(&params, Arc::new(keys))
        .with_bootstrapping(Arc::new(boot), boot_keys.map(Arc::new))
        .unwrap();
    let client_ops = CkksClient::new(sk, ChaCha20Rng::seed_from_u64(13));

    let (mut client, setup, enc) =
        Client::prepare(client_ops, &data, &config, TrainAlgo::Ours, slots, LEVEL).unwrap();
    let setup = Setup::decode(&setup.encode()).unwrap();
    let enc = Data::<Ciphertext>::decode(&enc.encode(&params), &params, &geometry).unwrap();
    let mut server = Server::new(server_ops, setup, enc).unwrap();
    loop {
        let v = server
            .train_epoch(|r, _| {
                eprintln!(
                    "epoch {} step {}: {:.1} s, {} bootstraps",
                    r.epoch, r.step, r.seconds, r.bootstraps
                );
                Ok(())
            })
            .unwrap();
        let v = Validation::<Ciphertext>::decode(&v.encode(&params), &params).unwrap();
        let d = client.decide(&v).unwrap();
        if !server
            .decide(Decision::decode(&d.encode()).unwrap())
            .unwrap()
        {
            break;
        }
    }
    let m = Model::<Ciphertext>::decode(&server.model().unwrap().encode(&params), &params).unwrap();
    let encrypted = client.decrypt_model(&m).unwrap();
    let twin = || {
        SlotSim::from_params(&params)
            .with_bootstrapping(LEVEL, hetal_ml::train::BOOT_BOUND)
            .unwrap()
    };
    let (simulated, _) = run_with(&data, &config, &twin);
    let (reference, _) = plain::train(&data, &config).unwrap();
    let acc = |m: &plain::Model| m.accuracy(&data.test);
    let w_diff = (&encrypted.weights - &simulated.weights)
        .iter()
        .fold(0.0f64, |m, e| m.max(e.abs()));
    eprintln!(
        "test accuracy: encrypted {:.4}, simulated {:.4}, plaintext {:.4}; |W_enc − W_sim| ≤ \
         {w_diff:.1e}; {} bootstraps",
        acc(&encrypted),
        acc(&simulated),
        acc(&reference),
        server.ops().bootstraps()
    );
    assert!((acc(&encrypted) - acc(&reference)).abs() <= 0.005);
    assert!((acc(&encrypted) - acc(&simulated)).abs() <= 0.002);
    assert!(w_diff < 1e-4, "{w_diff}");
}
