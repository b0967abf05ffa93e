//! Runs one leveled op in a loop, for profilers and A/B comparisons on a noisy machine (the
//! minimum per call is the steadiest figure):
//! `RAYON_NUM_THREADS=1 cargo run --release -p hetal-ckks --example op_loop -- rotate 40`
//! (ops: `rotate`, `mult_relin`, `hoisted_x8`), optionally followed by a preset and a level
//! (default: the top of `n16-leveled`; e.g. `rotate 40 n16-boot 8`, where training runs).

use std::sync::Arc;
use std::time::Instant;

use hetal_ckks::{presets, Encoder, Evaluator, KeyGenerator, Params};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "rotate".into());
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let preset = args.next().unwrap_or_else(|| "n16-leveled".into());
    let params = Params::new(presets::by_name(&preset).ok_or("unknown preset")?)?;
    let level: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(params.max_level());
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let rotations: Vec<i64> = (1..=8).collect();
    let mut keys = keygen.gen_eval_keys(&sk, &[], false);
    keygen.add_rotation_keys_at(&mut keys, &sk, &rotations, level)?;
    let keys = Arc::new(keys);
    let enc = Encoder::new(&params);
    let pt = enc.encode_real(&[0.5; 16], 16, level, params.default_scale())?;
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (ct, ct2) = (sk.encrypt(&pt, &mut rng)?, sk.encrypt(&pt, &mut rng)?);
    let eval = Evaluator::new(&params, keys);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        match op.as_str() {
            "rotate" => drop(std::hint::black_box(eval.rotate(&ct, 1)?)),
            "mult_relin" => drop(std::hint::black_box(eval.mul_relin(&ct, &ct2)?)),
            "hoisted_x8" => drop(std::hint::black_box(eval.rotate_hoisted(&ct, &rotations)?)),
            other => return Err(format!("unknown op {other}").into()),
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{op}: min {:.4} s, median {:.4} s over {} calls",
        times[0],
        times[times.len() / 2],
        times.len()
    );
    Ok(())
}
