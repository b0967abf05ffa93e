//! `hetal bench step`: one full training step (forward, softmax, backward, update, and the
//! bootstraps the level planner places) on random data, encrypted at a bootstrappable preset
//! or counted on the simulator.
//!
//! The shape is HETAL's `a,b,c`: a mini-batch of `a` rows (the block height), `b` feature
//! columns including the bias (HETAL's 769 = 768 + 1), `c` classes. Counters include the
//! operations inside bootstrapping when encrypted (they are evaluator operations), not on the
//! simulator.
//!
//! The steps measured start at the second one: the first starts from freshly encrypted
//! weights, which have every level, so it never shows the refresh (bootstrap) of the weights
//! and the momentum that later steps pay. A pipeline that refreshes only when its weights run
//! out of levels (HETAL's tiled weights) pays it every few steps, so `--steps N` reports the
//! mean over N consecutive steps, and each step's own figures.

use anyhow::{bail, Context};
use clap::Args;
use cpu_time::ProcessTime;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;
use std::time::Instant;

use hetal_ckks::{presets, KeyGenerator, OpCounts};
use hetal_ml::softmax::SoftmaxOps;
use hetal_ml::train::{Geometry, StageTimes, Trainer};
use hetal_ml::{Bootstrap, Leveled, SlotClient};

use crate::matmul::Algo;

/// Arguments of `hetal bench step`.
#[derive(Args)]
pub struct StepArgs {
    /// The shape `a,b,c`: batch rows, feature columns with the bias, classes.
    #[arg(long, default_value = "1024,769,16")]
    shape: String,
    /// Which algorithms.
    #[arg(long, value_enum, default_value = "ours")]
    algo: Algo,
    /// Count on the slot simulator (no keys) instead of running encrypted.
    #[arg(long)]
    simulate: bool,
    /// Bootstrappable parameter preset.
    #[arg(long, default_value = "n16-boot", value_parser = clap::builder::PossibleValuesParser::new(presets::NAMES))]
    preset: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Measured steps (after one unmeasured first step); the figures are their mean.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    steps: u64,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

/// One step's measurements.
struct Measured {
    cpu_s: f64,
    wall_s: f64,
    bootstraps: u64,
    /// Wall-clock seconds of the step spent bootstrapping.
    bootstrap_wall_s: f64,
    stages: StageTimes,
    counts: OpCounts,
}

/// Encrypts a random batch and a random state, runs a first step unmeasured and measures the
/// next `steps`, one by one.
fn measure_steps<O, K>(
    ops: &O,
    client: &mut K,
    g: Geometry,
    level: usize,
    steps: u64,
) -> anyhow::Result<Vec<Measured>>
where
    O: SoftmaxOps + Bootstrap,
    K: SlotClient<Ct = O::Ct>,
    O::Ct: Leveled,
{
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let rows = g.shape().s0();
    let x = Array2::from_shape_fn((rows, g.features()), |_| rng.random_range(-1.0..1.0));
    let labels: Vec<usize> = (0..rows)
        .map(|_| rng.random_range(0..g.classes()))
        .collect();
    let batch = g.encrypt_batch(client, &x, &labels, level)?;
    let state = g.encrypt_initial(client, level)?;
    let trainer = Trainer::new(ops, g, 1.0, 0.9)?;
    let mut state = trainer.step(state, &batch)?;
    let mut measured = Vec::new();
    for _ in 0..steps {
        let (cpu, wall, boots, boot_s, counts) = (
            ProcessTime::now(),
            Instant::now(),
            ops.bootstraps(),
            ops.bootstrap_seconds(),
            ops.counts(),
        );
        let (next, stages) = trainer.step_timed(state, &batch)?;
        state = next;
        measured.push(Measured {
            cpu_s: cpu.elapsed().as_secs_f64(),
            wall_s: wall.elapsed().as_secs_f64(),
            bootstraps: ops.bootstraps() - boots,
            bootstrap_wall_s: ops.bootstrap_seconds() - boot_s,
            stages,
            counts: hetal_ml::counts_delta(&ops.counts(), &counts),
        });
    }
    Ok(measured)
}

/// The mean of `total` over `n` steps: an integer when it is one, so that a single step's
/// counts stay integers.
fn mean(total: u64, n: usize) -> serde_json::Value {
    if total % n as u64 == 0 {
        json!(total / n as u64)
    } else {
        json!(total as f64 / n as f64)
    }
}

/// Runs `hetal bench step`.
pub fn step(args: &StepArgs) -> anyhow::Result<()> {
    crate::bench::set_threads(args.threads)?;
    let v: Vec<usize> = args
        .shape
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()
        .context("shape must be a,b,c")?;
    let [a, b, c] = v[..] else {
        bail!("shape must be three integers a,b,c");
    };
    if b < 2 {
        bail!("b counts the bias column: at least 2");
    }
    let params = crate::session::preset_params(&args.preset)?;
    let algo = args.algo.train();
    let g = Geometry::with_algo(params.max_slots(), b - 1, c, a, algo)?;
    let m = if args.simulate {
        let level = crate::session::data_level(&params)?;
        let sim = || crate::session::simulator(&params, level);
        let ops = sim()?;
        measure_steps(&ops, &mut sim()?, g, level, args.steps)?
    } else {
        let sk = KeyGenerator::new(&params).gen_secret_key();
        let (ops, mut client, level) = crate::session::backends(&params, &g, sk)?;
        measure_steps(&ops, &mut client, g, level, args.steps)?
    };
    let n = m.len();
    let timed =
        |f: fn(&Measured) -> f64| (!args.simulate).then(|| m.iter().map(f).sum::<f64>() / n as f64);
    let mean_count = |f: fn(&OpCounts) -> u64| mean(m.iter().map(|s| f(&s.counts)).sum(), n);
    // Each stage's seconds by name: one step's, or their mean.
    let stages = |steps: &[&Measured]| {
        (!args.simulate).then(|| {
            let mut named = serde_json::Map::new();
            for (i, (name, _)) in StageTimes::default().named().into_iter().enumerate() {
                let total: f64 = steps.iter().map(|s| s.stages.named()[i].1).sum();
                named.insert(name.into(), json!(total / steps.len() as f64));
            }
            named
        })
    };
    let per_step: Vec<_> = m
        .iter()
        .map(|s| {
            json!({
                "cpu_s": (!args.simulate).then_some(s.cpu_s),
                "wall_s": (!args.simulate).then_some(s.wall_s),
                "bootstraps": s.bootstraps,
                "bootstrap_wall_s": (!args.simulate).then_some(s.bootstrap_wall_s),
                "stage_wall_s": stages(&[s]),
            })
        })
        .collect();
    let line = json!({
        "shape": args.shape, "algo": algo.to_string(), "preset": args.preset, "step": 2,
        "steps": n,
        "mode": if args.simulate { "simulate" } else { "encrypted" },
        "threads": rayon::current_num_threads(),
        "cpu_s": timed(|s| s.cpu_s),
        "wall_s": timed(|s| s.wall_s),
        "bootstraps": mean(m.iter().map(|s| s.bootstraps).sum(), n),
        "bootstrap_wall_s": timed(|s| s.bootstrap_wall_s),
        "stage_wall_s": stages(&m.iter().collect::<Vec<_>>()),
        "cmult": mean_count(|k| k.pt_mult + k.const_mult), "mult": mean_count(|k| k.ct_mult),
        "rot": mean_count(|k| k.rotations),
        "keyswitch_full": mean_count(|k| k.keyswitch_full),
        "keyswitch_hoisted": mean_count(|k| k.keyswitch_hoisted),
        "rescale": mean_count(|k| k.rescales), "conj": mean_count(|k| k.conjugations),
        "per_step": per_step,
    });
    if args.json {
        println!("{line}");
    } else {
        println!("{}", serde_json::to_string_pretty(&line)?);
    }
    Ok(())
}
