//! Runs one leveled op at the top of the `n16-leveled` preset in a loop, for profilers and
//! A/B comparisons on a noisy machine (the minimum per call is the steadiest figure):
//! `RAYON_NUM_THREADS=1 cargo run --release -p hetal-ckks --example op_loop -- rotate 40`
//! (ops: `rotate`, `mult_relin`, `hoisted_x8`).

use std::sync::Arc;
use std::time::Instant;

use hetal_ckks::{presets, Encoder, Evaluator, KeyGenerator, Params};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "rotate".into());
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let params = Params::new(presets::n16_leveled())?;
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let rotations: Vec<i64> = (1..=8).collect();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, &rotations, false));
    let enc = Encoder::new(&params);
    let pt = enc.encode_real(&[0.5; 16], 16, params.max_level(), params.default_scale())?;
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
