//! DiagABT and DiagATB encrypted at small N against plaintext products (precision asserted in
//! bits), and the real backend against the simulator: same counts, levels, scales and slots.
//!
//! Parameters: insecure test sets (N = 2^11 and 2^12, 5 levels of 2^40; tests only). Seeds
//! are fixed; set `HETAL_TEST_SEED` to try others.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::{presets, KeyGenerator, Params, PrecisionStats};
use hetal_ml::bench::{plain_abt, plain_atb, run_abt, run_atb};
use hetal_ml::{
    abt_rotations, atb_rotations, AtbVariant, BlockShape, CkksBackend, CkksClient, EncMatrix,
    Layout, Leveled, SlotSim, ABT_DEPTH,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Worst entry of DiagABT, absolute error in bits. Inputs in [−1, 1], inner dimension 150,
/// outputs up to about ±12. Rough budget at scale 2^40: each fresh input carries about 2^-32
/// of noise per slot, and the product sums 150 such terms (about 2^-27); the 2·6 rotations of
/// the row sum and fill add key-switch noise, the three rescales rounding, each near 2^-30.
/// Measured over seeds 1–6 and 2024: min 24.6–25.0 bits, mean 26.5–26.9. The thresholds keep
/// about 2.5 bits of margin.
const ABT_MIN_BITS: f64 = 22.0;
/// Mean over the entries of DiagABT (measured 26.5–26.9).
const ABT_MEAN_BITS: f64 = 24.0;
/// Worst entry of DiagATB, both variants: the inner dimension is the batch (50), outputs up
/// to about ±7; the column sum adds 5 rotations, the shifted copies 2 more and one more
/// rescale. Measured over the same seeds: min 25.0–25.6 bits, mean 27.4–27.6.
const ATB_MIN_BITS: f64 = 22.0;
/// Mean over the entries of DiagATB (measured 27.4–27.6).
const ATB_MEAN_BITS: f64 = 24.0;
/// Real backend against the simulator, every slot (real and imaginary parts, padding
/// included), N = 2^11: measured min 25.5–27.0 bits, mean about 29.6–29.9.
const AGREE_MIN_BITS: f64 = 22.0;

fn seed() -> u64 {
    std::env::var("HETAL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024)
}

struct Fixture {
    params: Params,
    client: CkksClient<ChaCha20Rng>,
    backend: CkksBackend,
    rng: ChaCha20Rng,
}

/// Keys for every rotation the products use with `shape` and period `c`, plus conjugation.
fn fixture(log_n: u32, levels: usize, shape: BlockShape, c: usize) -> Fixture {
    let params = Params::new_insecure(presets::insecure_test(log_n, levels)).unwrap();
    assert_eq!(params.max_slots(), shape.slots());
    let mut rotations = abt_rotations(shape, c);
    rotations.extend(atb_rotations(shape, c, AtbVariant::Standard));
    rotations.extend(atb_rotations(shape, c, AtbVariant::PRotUp));
    rotations.sort_unstable();
    rotations.dedup();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(seed()));
    let sk = keygen.gen_secret_key();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, &rotations, true));
    Fixture {
        backend: CkksBackend::new(&params, keys),
        client: CkksClient::new(sk, ChaCha20Rng::seed_from_u64(seed() + 1)),
        rng: ChaCha20Rng::seed_from_u64(seed() + 2),
        params,
    }
}

impl Fixture {
    fn random(&mut self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |_| self.rng.random_range(-1.0..1.0))
    }
}

fn stats(want: &Array2<f64>, have: &Array2<f64>) -> PrecisionStats {
    assert_eq!(want.dim(), have.dim());
    PrecisionStats::new_real(
        &want.iter().copied().collect::<Vec<_>>(),
        &have.iter().copied().collect::<Vec<_>>(),
    )
}

#[test]
fn encrypted_products_match_plaintext() {
    // N = 2^12: 2048 slots in blocks of 32 × 64. 50 samples, 150 features, 3 classes padded
    // to 4: a 2 × 3 block grid, ragged at both edges.
    let shape = BlockShape::new(32, 64).unwrap();
    let (a, b, c_logical, c) = (50, 150, 3, 4);
    let mut f = fixture(12, 5, shape, c);
    let top = f.params.max_level();
    let x = f.random(a, b);
    let w = f.random(c_logical, b);
    let e = f.random(a, c_logical);
    let ex = EncMatrix::encrypt(&mut f.client, &x, shape, Layout::Blocks, top).unwrap();
    let ew = EncMatrix::encrypt(
        &mut f.client,
        &w,
        shape,
        Layout::RowTiled { period: c },
        top,
    )
    .unwrap();

    let abt = run_abt(&f.backend, &ex, &ew).unwrap();
    let s = stats(&plain_abt(&x, &w), &abt.output.decrypt(&f.client).unwrap());
    println!(
        "DiagABT ({a}, {b}, {c}) at N = 2^12: {s}, {:.2?}, {}",
        abt.wall,
        abt.hetal_counts()
    );
    assert!(
        s.min_bits >= ABT_MIN_BITS && s.mean_bits >= ABT_MEAN_BITS,
        "DiagABT: {s}"
    );
    assert_eq!(abt.depth, ABT_DEPTH);
    assert_eq!(abt.hetal_counts(), hetal_ml::abt_cost(a, b, c, shape));

    // DiagATB, standard (A and B at the top) and PRotUp (A one level lower).
    for (variant, level_a) in [(AtbVariant::Standard, top), (AtbVariant::PRotUp, top - 1)] {
        let ee = EncMatrix::encrypt(
            &mut f.client,
            &e,
            shape,
            Layout::ColTiled { period: c },
            level_a,
        )
        .unwrap();
        let atb = run_atb(&f.backend, &ee, &ex, variant).unwrap();
        let s = stats(&plain_atb(&e, &x), &atb.output.decrypt(&f.client).unwrap());
        println!(
            "DiagATB {variant:?} ({a}, {b}, {c}) at N = 2^12: {s}, {:.2?}, {}, output level {}",
            atb.wall,
            atb.hetal_counts(),
            atb.output.level()
        );
        assert!(
            s.min_bits >= ATB_MIN_BITS && s.mean_bits >= ATB_MEAN_BITS,
            "DiagATB {variant:?}: {s}"
        );
        let (da, db) = variant.depths(c);
        assert_eq!(atb.output.level(), (level_a - da).min(top - db));
        assert_eq!(
            atb.hetal_counts(),
            hetal_ml::atb_cost(a, b, c, shape, variant)
        );
    }
}

#[test]
fn backends_agree_on_counts_levels_scales_and_slots() {
    // N = 2^11: 1024 slots in blocks of 16 × 64; 8 classes; 20 samples (2 block rows), 100
    // features (2 block columns).
    let shape = BlockShape::new(16, 64).unwrap();
    let (a, b, c) = (20, 100, 8);
    let mut f = fixture(11, 5, shape, c);
    let top = f.params.max_level();
    let mut sim = SlotSim::from_params(&f.params);
    let x = f.random(a, b);
    let w = f.random(c, b);
    let e = f.random(a, c);

    let enc = |f: &mut Fixture, m: &Array2<f64>, layout: Layout, level: usize| {
        EncMatrix::encrypt(&mut f.client, m, shape, layout, level).unwrap()
    };
    let ex = enc(&mut f, &x, Layout::Blocks, top);
    let ew = enc(&mut f, &w, Layout::RowTiled { period: c }, top);
    let ee = enc(&mut f, &e, Layout::ColTiled { period: c }, top);
    let ee_low = enc(&mut f, &e, Layout::ColTiled { period: c }, top - 1);
    let sx = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, top).unwrap();
    let sw = EncMatrix::encrypt(&mut sim, &w, shape, Layout::RowTiled { period: c }, top).unwrap();
    let se = EncMatrix::encrypt(&mut sim, &e, shape, Layout::ColTiled { period: c }, top).unwrap();
    let se_low =
        EncMatrix::encrypt(&mut sim, &e, shape, Layout::ColTiled { period: c }, top - 1).unwrap();

    let runs = [
        (
            "DiagABT",
            run_abt(&f.backend, &ex, &ew).unwrap(),
            run_abt(&sim, &sx, &sw).unwrap(),
        ),
        (
            "DiagATB",
            run_atb(&f.backend, &ee, &ex, AtbVariant::Standard).unwrap(),
            run_atb(&sim, &se, &sx, AtbVariant::Standard).unwrap(),
        ),
        (
            "DiagATB PRotUp",
            run_atb(&f.backend, &ee_low, &ex, AtbVariant::PRotUp).unwrap(),
            run_atb(&sim, &se_low, &sx, AtbVariant::PRotUp).unwrap(),
        ),
    ];
    for (name, real, simulated) in &runs {
        println!(
            "{name}: counts {:?}, {:.2?} encrypted",
            real.counts, real.wall
        );
        assert_eq!(real.counts, simulated.counts, "{name}: counts");
        assert_eq!(
            real.output.level(),
            simulated.output.level(),
            "{name}: level"
        );
        assert_eq!(real.depth, simulated.depth, "{name}: depth");
        let blocks = real.output.blocks().iter().zip(simulated.output.blocks());
        for (r, s) in blocks {
            let rel = (r.scale() - s.scale()).abs() / s.scale();
            assert!(
                rel < 1e-12,
                "{name}: scales 2^{} vs 2^{}",
                r.scale().log2(),
                s.scale().log2()
            );
        }
        let have = real.output.decrypt_slots(&f.client).unwrap().concat();
        let want = simulated.output.decrypt_slots(&sim).unwrap().concat();
        let st = PrecisionStats::new(&want, &have);
        println!("{name}: encrypted vs simulated, all slots: {st}");
        assert!(st.min_bits >= AGREE_MIN_BITS, "{name}: {st}");
    }
    // The simulator recorded exactly the keys the real run needed.
    let mut want = abt_rotations(shape, c);
    want.extend(atb_rotations(shape, c, AtbVariant::Standard));
    want.extend(atb_rotations(shape, c, AtbVariant::PRotUp));
    want.sort_unstable();
    want.dedup();
    assert_eq!(sim.rotations_used(), want);
    assert!(sim.conjugation_used());
    // And the results are the products.
    let (abt, atb) = (&runs[0].2.output, &runs[1].2.output);
    let max_err = |p: &Array2<f64>, q: &Array2<f64>| {
        p.iter()
            .zip(q)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f64::max)
    };
    assert!(max_err(&abt.decrypt(&sim).unwrap(), &plain_abt(&x, &w)) < 1e-12);
    assert!(max_err(&atb.decrypt(&sim).unwrap(), &plain_atb(&e, &x)) < 1e-12);
}

/// Every operation of the trait, on both backends: same counts, levels, scales and values.
#[test]
fn every_op_agrees_between_backends() {
    use hetal_ml::{CkksOps, SlotClient};
    use num_complex::Complex64;

    let shape = BlockShape::new(16, 64).unwrap();
    let mut f = fixture(11, 3, shape, 4);
    let mut sim = SlotSim::from_params(&f.params);
    let slots = shape.slots();
    let v: Vec<Complex64> = (0..slots)
        .map(|_| Complex64::new(f.rng.random_range(-1.0..1.0), f.rng.random_range(-1.0..1.0)))
        .collect();
    let u: Vec<Complex64> = v.iter().rev().copied().collect();
    let top = f.params.max_level();

    fn chain<O: CkksOps>(ops: &O, x: &O::Ct, y: &O::Ct, mask: &[Complex64]) -> Vec<O::Ct> {
        let c = Complex64::new(0.25, -0.5);
        let p = ops.rescale(&ops.mul_relin(x, y).unwrap()).unwrap();
        let m = ops.encode_plain(mask, p.level()).unwrap();
        let q = ops.rescale(&ops.mul_plain(&p, &m).unwrap()).unwrap();
        let k = ops.rescale(&ops.mul_const(x, c).unwrap()).unwrap();
        let mut s = ops
            .sub(&k, &ops.drop_to_level(y, k.level()).unwrap())
            .unwrap();
        let nx = ops.neg(&ops.drop_to_level(x, s.level()).unwrap()).unwrap();
        ops.add_assign(&mut s, &nx).unwrap();
        let mut hoisted = ops.rotate_hoisted(x, &[1, -4, 128]).unwrap();
        hoisted.extend([
            ops.rotate(y, -63).unwrap(),
            ops.conjugate(x).unwrap(),
            ops.mul_i(x, true).unwrap(),
            ops.add_const(x, c).unwrap(),
            ops.add(x, y).unwrap(),
        ]);
        hoisted.extend([p, q, k, s]);
        hoisted
    }

    let mask: Vec<Complex64> = (0..slots)
        .map(|i| Complex64::new((i % 3) as f64, 0.5))
        .collect();
    let (rx, ry) = (
        f.client.encrypt(&v, top).unwrap(),
        f.client.encrypt(&u, top).unwrap(),
    );
    let (sx, sy) = (sim.encrypt(&v, top).unwrap(), sim.encrypt(&u, top).unwrap());
    let real = chain(&f.backend, &rx, &ry, &mask);
    let simulated = chain(&sim, &sx, &sy, &mask);
    assert_eq!(f.backend.counts(), sim.counts());
    assert_eq!(sim.rotations_used(), vec![-63, -4, 1, 128]);
    for (i, (r, s)) in real.iter().zip(&simulated).enumerate() {
        assert_eq!((r.level(), r.slots()), (s.level(), s.slots()), "result {i}");
        assert!(
            (r.scale() / s.scale() - 1.0).abs() < 1e-12,
            "result {i}: scale"
        );
        let st = PrecisionStats::new(s.values(), &f.client.decrypt(r).unwrap());
        assert!(st.min_bits >= AGREE_MIN_BITS, "result {i}: {st}");
    }
    f.backend.reset_counts();
    sim.reset_counts();
    assert_eq!(f.backend.counts(), sim.counts());
}
