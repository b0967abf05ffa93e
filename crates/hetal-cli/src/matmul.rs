//! `hetal bench matmul`: HETAL's two products for one shape, faithful or ours, counted on the
//! slot simulator or run encrypted.
//!
//! For a shape `a,b,c`: `abt` is `A·Bᵀ` with `A: a × b` (features) and `B: c × b` (weights),
//! `atb` is `Aᵀ·B` with `A: a × c` (errors) and `B: a × b` (features). Blocks are `(s0, s1)`
//! with `s0 = a` (HETAL's batch) and `s0·s1` the slot count. Inputs sit at level 12 (HETAL's)
//! in simulation, or at the top level of the preset when encrypted. With `--json`, one line
//! per product: `product`, `cmult` (plaintext and constant products), `mult` (ct×ct), `rot`,
//! `keyswitch_full`, `keyswitch_hoisted`, `depth`, and `cpu_s`, `wall_s` when encrypted.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use cpu_time::ProcessTime;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;

use hetal_ckks::{presets, KeyGenerator, OpCounts, Params};
use hetal_ml::train::TrainAlgo;
use hetal_ml::{
    counts_delta, diag_abt, diag_atb, ours, AtbVariant, BlockShape, CkksBackend, CkksClient,
    CkksOps, EncMatrix, Layout, Leveled, SlotClient, SlotSim,
};

/// Which algorithms (matrix products, softmax, or the whole training step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algo {
    /// HETAL's, faithfully (for comparisons).
    Hetal,
    /// Ours.
    Ours,
}

impl Algo {
    /// The training pipeline of these algorithms.
    pub fn train(self) -> TrainAlgo {
        match self {
            Algo::Hetal => TrainAlgo::Hetal,
            Algo::Ours => TrainAlgo::Ours,
        }
    }
}

/// Arguments of `hetal bench matmul`.
#[derive(Args)]
pub struct MatmulArgs {
    /// The shape `a,b,c`.
    #[arg(long)]
    shape: String,
    /// Which algorithms.
    #[arg(long, value_enum, default_value = "ours")]
    algo: Algo,
    /// Count on the slot simulator (no keys, exact counts) instead of running encrypted.
    #[arg(long)]
    simulate: bool,
    /// Parameter preset for encrypted runs.
    #[arg(long, default_value = "n16-leveled", value_parser = clap::builder::PossibleValuesParser::new(presets::NAMES))]
    preset: String,
    /// Level of the inputs of encrypted runs (default: the preset's top level); the rotation
    /// keys serve that level and below.
    #[arg(long)]
    level: Option<usize>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

fn parse_shape(s: &str) -> anyhow::Result<(usize, usize, usize)> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context("shape must be a,b,c")?;
    match v[..] {
        [a, b, c] if a > 0 && b > 0 && c > 1 => Ok((a, b, c)),
        _ => bail!("shape must be three positive integers a,b,c with c ≥ 2"),
    }
}

/// The two inputs of each product, in HETAL's layouts.
struct Inputs<C> {
    abt: (EncMatrix<C>, EncMatrix<C>),
    atb: (EncMatrix<C>, EncMatrix<C>),
}

fn inputs<K: SlotClient>(
    client: &mut K,
    (a, b, c): (usize, usize, usize),
    shape: BlockShape,
    level: usize,
    seed: u64,
) -> anyhow::Result<Inputs<K::Ct>>
where
    K::Ct: Leveled,
{
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut random = |r: usize, k: usize| {
        Array2::from_shape_fn((r, k), |_| rng.random_range(-1.0..1.0) / (b as f64).sqrt())
    };
    let (x, w, e) = (random(a, b), random(c, b), random(a, c));
    Ok(Inputs {
        abt: (
            EncMatrix::encrypt(client, &x, shape, Layout::Blocks, level)?,
            EncMatrix::encrypt(client, &w, shape, Layout::RowTiled { period: c }, level)?,
        ),
        atb: (
            EncMatrix::encrypt(client, &e, shape, Layout::ColTiled { period: c }, level)?,
            EncMatrix::encrypt(client, &x, shape, Layout::Blocks, level)?,
        ),
    })
}

/// Runs one product, returning its counts and output level.
fn run_product<O: CkksOps>(
    ops: &O,
    algo: Algo,
    product: &str,
    inputs: &Inputs<O::Ct>,
) -> anyhow::Result<(OpCounts, usize)> {
    let before = ops.counts();
    let level = match (product, algo) {
        ("abt", Algo::Hetal) => diag_abt(ops, &inputs.abt.0, &inputs.abt.1)?.level(),
        ("abt", Algo::Ours) => ours::abt(ops, &inputs.abt.0, &inputs.abt.1)?.level(),
        ("atb", Algo::Hetal) => {
            diag_atb(ops, &inputs.atb.0, &inputs.atb.1, AtbVariant::Standard)?.level()
        }
        ("atb", Algo::Ours) => ours::atb(ops, &inputs.atb.0, &inputs.atb.1)?.level(),
        _ => return Err(anyhow!("unknown product {product}")),
    };
    Ok((counts_delta(&ops.counts(), &before), level))
}

fn report(
    args: &MatmulArgs,
    product: &str,
    counts: &OpCounts,
    depth: usize,
    times: Option<(f64, f64)>,
) {
    let mut line = json!({
        "product": product,
        "algo": format!("{:?}", args.algo).to_lowercase(),
        "shape": args.shape,
        "cmult": counts.pt_mult + counts.const_mult,
        "mult": counts.ct_mult,
        "rot": counts.rotations,
        "keyswitch_full": counts.keyswitch_full,
        "keyswitch_hoisted": counts.keyswitch_hoisted,
        "depth": depth,
    });
    if let Some((cpu, wall)) = times {
        line["cpu_s"] = json!(cpu);
        line["wall_s"] = json!(wall);
    }
    if args.json {
        println!("{line}");
    } else {
        println!("{product}: {line}");
    }
}

/// Runs `hetal bench matmul`.
pub fn matmul(args: &MatmulArgs) -> anyhow::Result<()> {
    crate::bench::set_threads(args.threads)?;
    let shape3 = parse_shape(&args.shape)?;
    if args.simulate {
        const SLOTS: usize = 1 << 15;
        const LEVEL: usize = 12;
        let shape = BlockShape::with_slots(shape3.0.min(SLOTS / 2), SLOTS)?;
        let mut sim = SlotSim::uniform(SLOTS, LEVEL, 40);
        let inp = inputs(&mut sim, shape3, shape, LEVEL, 1)?;
        for product in ["abt", "atb"] {
            let (counts, level) = run_product(&sim, args.algo, product, &inp)?;
            report(args, product, &counts, LEVEL - level, None);
        }
        return Ok(());
    }
    let literal =
        presets::by_name(&args.preset).ok_or_else(|| anyhow!("unknown preset {}", args.preset))?;
    let params = Params::new(literal)?;
    let level = args.level.unwrap_or(params.max_level());
    if level > params.max_level() {
        bail!(
            "--level {level} is above the preset's top level {}",
            params.max_level()
        );
    }
    let shape = BlockShape::with_slots(shape3.0.min(params.max_slots() / 2), params.max_slots())?;
    // A dry run on the simulator names exactly the rotation keys the algorithms use.
    let mut sim = SlotSim::from_params(&params);
    let dry = inputs(&mut sim, shape3, shape, level, 1)?;
    for product in ["abt", "atb"] {
        run_product(&sim, args.algo, product, &dry)?;
    }
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let mut keys = keygen.gen_eval_keys(&sk, &[], sim.conjugation_used());
    keygen.add_rotation_keys_at(&mut keys, &sk, &sim.rotations_used(), level)?;
    let ops = CkksBackend::new(&params, Arc::new(keys));
    let mut client = CkksClient::new(sk, ChaCha20Rng::from_os_rng());
    let inp = inputs(&mut client, shape3, shape, level, 1)?;
    for product in ["abt", "atb"] {
        let (c0, w0) = (ProcessTime::now(), Instant::now());
        let (counts, out_level) = run_product(&ops, args.algo, product, &inp)?;
        let times = (c0.elapsed().as_secs_f64(), w0.elapsed().as_secs_f64());
        report(args, product, &counts, level - out_level, Some(times));
    }
    Ok(())
}
