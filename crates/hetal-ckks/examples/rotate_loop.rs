//! Runs rotations at the `n16-leveled` preset in a loop, for profilers:
//! `cargo run --release -p hetal-ckks --example rotate_loop -- 20`.

use std::sync::Arc;

use hetal_ckks::{presets, Encoder, Evaluator, KeyGenerator, Params};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let params = Params::new(presets::n16_leveled())?;
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, &[1], false));
    let enc = Encoder::new(&params);
    let pt = enc.encode_real(&[0.5; 16], 16, params.max_level(), params.default_scale())?;
    let ct = sk.encrypt(&pt, &mut rand_chacha::ChaCha20Rng::from_os_rng())?;
    let eval = Evaluator::new(&params, keys);
    let start = std::time::Instant::now();
    for _ in 0..reps {
        std::hint::black_box(eval.rotate(&ct, 1)?);
    }
    println!(
        "{:.4} s per rotation",
        start.elapsed().as_secs_f64() / reps as f64
    );
    Ok(())
}
