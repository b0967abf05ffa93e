//! `hetal bench softmax`: the error and depth of a row-wise softmax (HETAL's or ours) over
//! random rows uniform in `[−R, R]`, on the slot simulator or encrypted.
//!
//! With `--simulate`, [`hetal_ml::bench_softmax`]: 2^15 slots (HETAL's `N = 2^16`), ideal
//! 40-bit primes, 10^5 rows by default. Without it, the same rows
//! ([`hetal_ml::softmax::bench_logits`], same seed) run encrypted at **insecure test
//! parameters** (`presets::insecure_test`: `N = 2^11` by default, a 50-bit `q_0` and as many
//! 40-bit primes as the softmax consumes): there is no secure `N = 2^16` parameter set with
//! 38–76 levels, and this command runs the softmax without bootstrapping. The encrypted run
//! also runs the simulator at the same primes and layout, and reports how far the two are
//! apart. Blocks (one ciphertext of rows each) are encrypted, evaluated and decrypted in
//! parallel; `cpu_s` and `wall_s` cover all three, key generation (`keygen_s`) apart.
//!
//! With `--json`, one line: `algo`, `mode`, `classes`, `range`, `rows`, `seed`, `max_err`
//! (largest absolute error of any probability against the exact softmax), `mean_err` (mean
//! over the rows of the row's largest absolute error), `depth` (levels consumed), the
//! operation counts (`cmult`, `mult`, `rot`, `keyswitch_full`, `keyswitch_hoisted`, all rows),
//! `cpu_s`, `wall_s`; encrypted runs add `log_n`, `params` (`"insecure-test"`), `secure`
//! (`false`), `keygen_s`, `sim_max_err`, `sim_mean_err` and `max_diff_vs_sim` (largest
//! difference of a probability between the encrypted and the simulated run).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use cpu_time::ProcessTime;
use ndarray::{concatenate, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde_json::{json, Value};

use hetal_ckks::{presets, KeyGenerator, OpCounts, Params};
use hetal_ml::softmax::{
    self, bench_logits, reference_softmax, softmax_depth, softmax_errors, softmax_rotations,
};
use hetal_ml::{
    bench_softmax, counts_delta, BlockShape, CkksBackend, CkksClient, CkksOps, EncMatrix, Layout,
    SlotSim, SoftmaxAlgo,
};

use crate::matmul::Algo;

/// Rows of a simulated run when `--rows` is not given.
const SIM_ROWS: usize = 100_000;
/// Ciphertexts (blocks of `2^(log_n − 1) / s1` rows) of an encrypted run when `--rows` is not
/// given: about a minute on two cores at `N = 2^11`, `c = 10` (512 rows).
const ENC_BLOCKS: usize = 8;

/// Arguments of `hetal bench softmax`.
#[derive(Args)]
pub struct SoftmaxArgs {
    /// Number of classes `c` (2 ≤ c; c ≤ 16 for ours).
    #[arg(long)]
    classes: usize,
    /// Inputs are uniform in [−R, R] (0 < R ≤ 128).
    #[arg(long, default_value_t = 128.0)]
    range: f64,
    /// Which softmax.
    #[arg(long, value_enum, default_value = "ours")]
    algo: Algo,
    /// Run on the slot simulator (2^15 slots, no keys) instead of encrypted.
    #[arg(long)]
    simulate: bool,
    /// Number of random rows [default: 100000 simulated; encrypted, 8 ciphertexts' worth: 512
    /// rows for 9–16 classes at N = 2^11].
    #[arg(long)]
    rows: Option<usize>,
    /// Seed of the random rows (the same rows in both modes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// log2 of the ring degree of the insecure test parameters of encrypted runs.
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(10..=14))]
    log_n: u32,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

fn algo_of(algo: Algo) -> SoftmaxAlgo {
    match algo {
        Algo::Hetal => SoftmaxAlgo::Hetal,
        Algo::Ours => SoftmaxAlgo::Ours,
    }
}

fn add_counts(line: &mut Value, counts: &OpCounts) {
    line["cmult"] = json!(counts.pt_mult + counts.const_mult);
    line["mult"] = json!(counts.ct_mult);
    line["rot"] = json!(counts.rotations);
    line["keyswitch_full"] = json!(counts.keyswitch_full);
    line["keyswitch_hoisted"] = json!(counts.keyswitch_hoisted);
}

/// Runs `hetal bench softmax`.
pub fn softmax(args: &SoftmaxArgs) -> anyhow::Result<()> {
    crate::bench::set_threads(args.threads)?;
    let algo = algo_of(args.algo);
    let line = if args.simulate {
        simulated(args, algo)?
    } else {
        encrypted(args, algo)?
    };
    if args.json {
        println!("{line}");
    } else {
        let f = |k: &str| line[k].clone();
        println!(
            "softmax {algo}, c = {}, {} rows uniform in [−{}, {}], {}: max error {:.3e}, \
             mean {:.3e}, depth {}",
            args.classes,
            f("rows"),
            args.range,
            args.range,
            f("mode").as_str().unwrap_or_default(),
            f("max_err").as_f64().unwrap_or(f64::NAN),
            f("mean_err").as_f64().unwrap_or(f64::NAN),
            f("depth"),
        );
        println!(
            "  counts (all rows): {} CMult, {} Mult, {} Rot ({} full + {} hoisted key switches); \
             {:.2} CPU-s, {:.2} s wall",
            f("cmult"),
            f("mult"),
            f("rot"),
            f("keyswitch_full"),
            f("keyswitch_hoisted"),
            f("cpu_s").as_f64().unwrap_or(f64::NAN),
            f("wall_s").as_f64().unwrap_or(f64::NAN),
        );
        if !args.simulate {
            println!(
                "  simulator at the same primes: max error {:.3e}, mean {:.3e}; \
                 |encrypted − simulated| ≤ {:.1e}",
                f("sim_max_err").as_f64().unwrap_or(f64::NAN),
                f("sim_mean_err").as_f64().unwrap_or(f64::NAN),
                f("max_diff_vs_sim").as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}

fn base_line(args: &SoftmaxArgs, algo: SoftmaxAlgo, mode: &str, rows: usize) -> Value {
    json!({
        "algo": algo.to_string(),
        "mode": mode,
        "classes": args.classes,
        "range": args.range,
        "rows": rows,
        "seed": args.seed,
    })
}

fn simulated(args: &SoftmaxArgs, algo: SoftmaxAlgo) -> anyhow::Result<Value> {
    let rows = args.rows.unwrap_or(SIM_ROWS);
    let (c0, w0) = (ProcessTime::now(), Instant::now());
    let r = bench_softmax(args.classes, args.range, algo, rows, args.seed)?;
    let (cpu, wall) = (c0.elapsed().as_secs_f64(), w0.elapsed().as_secs_f64());
    let mut line = base_line(args, algo, "simulate", r.rows);
    line["max_err"] = json!(r.max_err);
    line["mean_err"] = json!(r.mean_err);
    line["depth"] = json!(r.depth);
    add_counts(&mut line, &r.counts);
    line["cpu_s"] = json!(cpu);
    line["wall_s"] = json!(wall);
    Ok(line)
}

fn encrypted(args: &SoftmaxArgs, algo: SoftmaxAlgo) -> anyhow::Result<Value> {
    let depth = softmax_depth(args.classes, algo)?;
    let params = Params::new_insecure(presets::insecure_test(args.log_n, depth))
        .context("building the insecure test parameters")?;
    let top = params.max_level();
    let slots = params.max_slots();
    let s1 = args.classes.next_power_of_two();
    anyhow::ensure!(
        s1 <= slots,
        "{} classes need rows of {s1} slots; N = 2^{} has {slots}",
        args.classes,
        args.log_n
    );
    let shape = BlockShape::with_slots(slots / s1, slots)?;
    let rows = args.rows.unwrap_or(ENC_BLOCKS * shape.s0());
    let x = bench_logits(args.classes, args.range, rows, args.seed)?;
    eprintln!(
        "warning: INSECURE test parameters (N = 2^{}, {} levels, log QP = {:.0}): \
         for measuring the softmax's error only, never for real data",
        args.log_n,
        depth,
        params.log_qp()
    );

    let k0 = Instant::now();
    let rotations = softmax_rotations(args.classes, shape, algo)?;
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, &rotations, false));
    let backend = CkksBackend::new(&params, keys);
    let client = Mutex::new(CkksClient::new(sk, ChaCha20Rng::from_os_rng()));
    let keygen_s = k0.elapsed().as_secs_f64();

    // One block of rows at a time, blocks in parallel: only a few ciphertexts alive at once.
    let (c0, w0) = (ProcessTime::now(), Instant::now());
    let before = backend.counts();
    let chunks: Vec<_> = x.axis_chunks_iter(Axis(0), shape.s0()).collect();
    let parts = chunks
        .par_iter()
        .map(|rows| -> anyhow::Result<(Array2<f64>, usize)> {
            let ex = {
                let mut client = client.lock().unwrap_or_else(PoisonError::into_inner);
                EncMatrix::encrypt(&mut *client, &rows.to_owned(), shape, Layout::Blocks, top)?
            };
            let out = softmax::softmax(&backend, &ex, algo)?;
            let client = client.lock().unwrap_or_else(PoisonError::into_inner);
            Ok((out.decrypt(&*client)?, out.level()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let counts = counts_delta(&backend.counts(), &before);
    let (cpu, wall) = (c0.elapsed().as_secs_f64(), w0.elapsed().as_secs_f64());
    let level = parts.iter().map(|p| p.1).min().unwrap_or(top);
    let views: Vec<_> = parts.iter().map(|p| p.0.view()).collect();
    let enc = concatenate(Axis(0), &views)?;

    // The simulator at the same primes and layout: the encrypted run's noiseless twin.
    let mut sim = SlotSim::from_params(&params);
    let es = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, top)?;
    let sim_out = softmax::softmax(&sim, &es, algo)?.decrypt(&sim)?;

    let exact = reference_softmax(&x);
    let (max_err, mean_err) = softmax_errors(&enc, &exact);
    let (sim_max_err, sim_mean_err) = softmax_errors(&sim_out, &exact);
    let diff = enc
        .iter()
        .zip(sim_out.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);

    let mut line = base_line(args, algo, "encrypted", rows);
    line["max_err"] = json!(max_err);
    line["mean_err"] = json!(mean_err);
    line["depth"] = json!(top - level);
    add_counts(&mut line, &counts);
    line["cpu_s"] = json!(cpu);
    line["wall_s"] = json!(wall);
    line["log_n"] = json!(args.log_n);
    line["params"] = json!("insecure-test");
    line["secure"] = json!(false);
    line["keygen_s"] = json!(keygen_s);
    line["sim_max_err"] = json!(sim_max_err);
    line["sim_mean_err"] = json!(sim_mean_err);
    line["max_diff_vs_sim"] = json!(diff);
    Ok(line)
}
