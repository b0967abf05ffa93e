//! `hetal bench ops`: CPU and wall time of each leveled operation at the top level of a preset.
//!
//! Each op runs `--reps` times (at least 5); the reported `cpu_s` is the median of the
//! process CPU-seconds over the runs (all threads), `wall_s` the median wall time. Precision
//! is measured outside the timed region by decrypting the result and comparing with the same
//! computation on the plaintext values.

use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::Args;
use cpu_time::ProcessTime;
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;

use hetal_ckks::{
    presets, BootParams, Bootstrapper, Encoder, Evaluator, KeyGenerator, Params, PrecisionStats,
};

/// Arguments of `hetal bench ops`.
#[derive(Args)]
pub struct OpsArgs {
    /// Parameter preset.
    #[arg(long, default_value = "n16-leveled", value_parser = clap::builder::PossibleValuesParser::new(presets::NAMES))]
    preset: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed runs per op (the median is reported; at least 5).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

/// Median CPU-seconds and wall-seconds of `reps` runs of `f`.
fn time<T>(reps: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64, T)> {
    let (mut cpu, mut wall) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    let mut last = None;
    for _ in 0..reps {
        let (c0, w0) = (ProcessTime::now(), Instant::now());
        let out = f()?;
        cpu.push(c0.elapsed().as_secs_f64());
        wall.push(w0.elapsed().as_secs_f64());
        last = Some(out);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let out = last.ok_or_else(|| anyhow!("no runs"))?;
    Ok((median(&mut cpu), median(&mut wall), out))
}

pub(crate) fn set_threads(threads: usize) -> anyhow::Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting the thread count")?;
    }
    Ok(())
}

/// Arguments of `hetal bench bootstrap`.
#[derive(Args)]
pub struct BootArgs {
    /// Parameter preset (bootstrappable).
    #[arg(long, default_value = "n16-boot", value_parser = clap::builder::PossibleValuesParser::new(presets::NAMES))]
    preset: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Timed bootstraps (the median is reported; at least 3).
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

/// Peak resident set size of this process, from `/proc/self/status` (0 where unavailable).
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs `hetal bench bootstrap`: key generation, then full-slot bootstrapping of uniform
/// `[−1, 1] + i·[−1, 1]` values, with precision over all slots.
pub fn bootstrap(args: &BootArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let reps = args.reps.max(3);
    let literal =
        presets::by_name(&args.preset).ok_or_else(|| anyhow!("unknown preset {}", args.preset))?;
    let params = Params::new(literal)?;
    let boot = Bootstrapper::new(&params, &BootParams::default())
        .with_context(|| format!("preset {} cannot bootstrap", args.preset))?;

    let (c0, w0) = (ProcessTime::now(), Instant::now());
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let keys = std::sync::Arc::new(keygen.gen_eval_keys(&sk, boot.rotations(), true));
    let boot_keys = boot.gen_boot_keys(&sk, ChaCha20Rng::from_os_rng())?;
    let keygen_s = w0.elapsed().as_secs_f64();
    let keygen_cpu_s = c0.elapsed().as_secs_f64();
    let key_bytes = keys.size_bytes() + boot_keys.as_ref().map_or(0, |k| k.size_bytes());

    let eval = Evaluator::new(&params, keys);
    let enc = boot.encoder();
    let slots = boot.slots();
    let mut rng = ChaCha20Rng::from_os_rng();
    let z: Vec<Complex64> = (0..slots)
        .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect();
    let ct = sk.encrypt(&enc.encode(&z, slots, 0, params.default_scale())?, &mut rng)?;
    let (cpu, wall, out) = time(reps, || {
        Ok(boot.bootstrap(&eval, &ct, boot_keys.as_ref())?)
    })?;
    let counts = eval.counts();
    let per_boot = |c: u64| c / reps as u64;
    let stats = PrecisionStats::new(&z, &enc.decode(&sk.decrypt(&out)?));
    let line = json!({
        "preset": args.preset,
        "logn": params.log_n(),
        "log_qp": (params.log_qp() * 10.0).round() / 10.0,
        "security_bits": params.security_bits(),
        "slots": slots,
        "threads": rayon::current_num_threads(),
        "keygen_s": keygen_s,
        "keygen_cpu_s": keygen_cpu_s,
        "key_bytes": key_bytes,
        "rotation_keys": boot.rotations().len(),
        "boot_cpu_s": cpu,
        "boot_wall_s": wall,
        "levels_after": out.level(),
        "keyswitch_full": per_boot(counts.keyswitch_full),
        "keyswitch_hoisted": per_boot(counts.keyswitch_hoisted),
        "ct_mult": per_boot(counts.ct_mult),
        "pt_mult": per_boot(counts.pt_mult),
        "precision_mean_bits": (stats.mean_bits * 100.0).round() / 100.0,
        "precision_worst_bits": (stats.min_bits * 100.0).round() / 100.0,
        "peak_rss_bytes": peak_rss_bytes(),
    });
    if args.json {
        println!("{line}");
    } else {
        println!("{}", serde_json::to_string_pretty(&line)?);
    }
    Ok(())
}

/// Runs `hetal bench ops`.
pub fn ops(args: &OpsArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let reps = args.reps.max(5);
    let literal =
        presets::by_name(&args.preset).ok_or_else(|| anyhow!("unknown preset {}", args.preset))?;
    let params = Params::new(literal)?;
    let threads = rayon::current_num_threads();
    let header = json!({
        "preset": args.preset,
        "logn": params.log_n(),
        "log_qp": (params.log_qp() * 10.0).round() / 10.0,
        "levels": params.max_level(),
        "dnum": params.dnum(),
        "scale_bits": params.log_scale(),
        "security_bits": params.security_bits(),
        "threads": threads,
    });
    if args.json {
        println!("{header}");
    } else {
        println!("preset {} (log N {}, log QP {:.1}, {} levels, dnum {}, scale 2^{}, {}-bit secure), {} thread(s)",
            args.preset, params.log_n(), params.log_qp(), params.max_level(), params.dnum(), params.log_scale(), params.security_bits(), threads);
        println!(
            "{:<20} {:>10} {:>10} {:>10}",
            "op", "cpu_s", "wall_s", "prec_bits"
        );
    }
    let report = |op: &str, cpu: f64, wall: f64, prec: Option<f64>| {
        if args.json {
            let mut line = json!({ "op": op, "cpu_s": cpu, "wall_s": wall });
            if let Some(p) = prec {
                line["precision_bits"] = json!((p * 100.0).round() / 100.0);
            }
            println!("{line}");
        } else {
            let p = prec.map_or("-".to_string(), |p| format!("{p:.2}"));
            println!("{op:<20} {cpu:>10.4} {wall:>10.4} {p:>10}");
        }
    };

    let mut rng = ChaCha20Rng::from_os_rng();
    let hoisted: Vec<i64> = (1..=8).collect();
    let mut keygen = KeyGenerator::new(&params);
    let sk = keygen.gen_secret_key();
    let pk = keygen.gen_public_key(&sk);
    let keys = std::sync::Arc::new(keygen.gen_eval_keys(&sk, &hoisted, false));
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    let slots = params.max_slots();
    let level = params.max_level();
    let scale = params.default_scale();
    let mut random = || -> Vec<Complex64> {
        (0..slots)
            .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect()
    };
    let (a, b) = (random(), random());
    let mut enc_rng = ChaCha20Rng::from_os_rng();
    let prec = |want: &[Complex64], ct: &hetal_ckks::Ciphertext| -> anyhow::Result<f64> {
        Ok(PrecisionStats::new(want, &enc.decode(&sk.decrypt(ct)?)).min_bits)
    };
    let rotl = |v: &[Complex64], k: usize| -> Vec<Complex64> {
        (0..v.len()).map(|i| v[(i + k) % v.len()]).collect()
    };

    let (cpu, wall, pa) = time(reps, || Ok(enc.encode(&a, slots, level, scale)?))?;
    report("encode", cpu, wall, None);
    let pb = enc.encode(&b, slots, level, scale)?;
    let (cpu, wall, ca) = time(reps, || Ok(pk.encrypt(&params, &pa, &mut enc_rng)?))?;
    report("encrypt", cpu, wall, Some(prec(&a, &ca)?));
    let cb = pk.encrypt(&params, &pb, &mut enc_rng)?;
    let (cpu, wall, sum) = time(reps, || Ok(eval.add(&ca, &cb)?))?;
    let want: Vec<Complex64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    report("add", cpu, wall, Some(prec(&want, &sum)?));
    let (cpu, wall, prod) = time(reps, || Ok(eval.mul_relin(&ca, &cb)?))?;
    report("mult_relin", cpu, wall, None);
    let (cpu, wall, resc) = time(reps, || Ok(eval.rescale(&prod)?))?;
    let want: Vec<Complex64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    report("rescale", cpu, wall, Some(prec(&want, &resc)?));
    let (cpu, wall, rot) = time(reps, || Ok(eval.rotate(&ca, 1)?))?;
    report("rotate", cpu, wall, Some(prec(&rotl(&a, 1), &rot)?));
    let (cpu, wall, rots) = time(reps, || Ok(eval.rotate_hoisted(&ca, &hoisted)?))?;
    let worst = rots
        .iter()
        .zip(&hoisted)
        .map(|(r, &k)| prec(&rotl(&a, k as usize), r))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    report(
        "hoisted_rotate_x8",
        cpu,
        wall,
        Some(worst.into_iter().fold(f64::INFINITY, f64::min)),
    );
    let (cpu, wall, pm) = time(reps, || Ok(eval.mul_plain(&ca, &pb)?))?;
    report("ptmult", cpu, wall, Some(prec(&want, &eval.rescale(&pm)?)?));
    let (cpu, wall, _) = time(reps, || Ok(sk.decrypt(&ca)?))?;
    report("decrypt", cpu, wall, None);
    Ok(())
}
