//! DiagABT and DiagATB on the simulator at HETAL's real size (N = 2^16, 2^15 slots, level 12):
//! their operation counts equal the corrected Table 7 exactly, their depths are as documented,
//! they use exactly the rotations `abt_rotations` / `atb_rotations` list, and their results
//! equal the plaintext products (the simulator is exact, so to `f64` rounding).
//!
//! The same generic code runs encrypted in `tests/encrypted.rs`. Run with `--nocapture` to see
//! the table.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use hetal_ml::bench::{simulate_abt, simulate_atb};
use hetal_ml::matmul::{reference_atb_cost, TABLE7_LEVEL, TABLE7_SLOTS};
use hetal_ml::{
    abt_cost, abt_rotations, atb_cost, atb_rotations, diag_abt, diag_atb, AtbVariant, BlockShape,
    CkksOps, EncMatrix, HetalCounts, Layout, SlotSim, ABT_DEPTH, TABLE7,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// HETAL's scale (2^42); the simulated primes are all 2^42 too.
const LOG_SCALE: u32 = 42;
/// The simulator is exact: the only error is `f64` rounding in sums of ~10^3 products.
const SIM_MAX_ERR: f64 = 1e-9;

fn random(rng: &mut ChaCha20Rng, rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

fn max_err(want: &Array2<f64>, have: &Array2<f64>) -> f64 {
    assert_eq!(want.dim(), have.dim());
    want.iter()
        .zip(have)
        .map(|(w, h)| (w - h).abs())
        .fold(0.0, f64::max)
}

struct Outcome {
    counts: HetalCounts,
    out_level: usize,
    err: f64,
}

/// Runs DiagABT on the simulator; returns counts, output level and the max error.
fn run_abt(a: usize, b: usize, c: usize, shape: BlockShape, rng: &mut ChaCha20Rng) -> Outcome {
    let mut sim = SlotSim::uniform(shape.slots(), TABLE7_LEVEL, LOG_SCALE);
    let x = random(rng, a, b);
    let w = random(rng, c, b);
    let ex = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, TABLE7_LEVEL).unwrap();
    let ew = EncMatrix::encrypt(
        &mut sim,
        &w,
        shape,
        Layout::RowTiled { period: c },
        TABLE7_LEVEL,
    )
    .unwrap();
    sim.reset_counts();
    let out = diag_abt(&sim, &ex, &ew).unwrap();
    assert_eq!(sim.rotations_used(), abt_rotations(shape, c));
    assert!(sim.conjugation_used());
    let have = out.decrypt(&sim).unwrap();
    Outcome {
        counts: HetalCounts::from_counts(&sim.counts()),
        out_level: out.level(),
        err: max_err(&x.dot(&w.t()), &have),
    }
}

/// Runs DiagATB on the simulator with `A` at `level_a` and `B` at `level_b`; returns counts,
/// the output level, and the max error.
fn run_atb(
    a: usize,
    b: usize,
    c: usize,
    shape: BlockShape,
    variant: AtbVariant,
    (level_a, level_b): (usize, usize),
    rng: &mut ChaCha20Rng,
) -> Outcome {
    let mut sim = SlotSim::uniform(shape.slots(), TABLE7_LEVEL, LOG_SCALE);
    let err = random(rng, a, c);
    let x = random(rng, a, b);
    let ee = EncMatrix::encrypt(
        &mut sim,
        &err,
        shape,
        Layout::ColTiled { period: c },
        level_a,
    )
    .unwrap();
    let ex = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, level_b).unwrap();
    sim.reset_counts();
    let out = diag_atb(&sim, &ee, &ex, variant).unwrap();
    assert_eq!(sim.rotations_used(), atb_rotations(shape, c, variant));
    assert!(sim.conjugation_used());
    let have = out.decrypt(&sim).unwrap();
    Outcome {
        counts: HetalCounts::from_counts(&sim.counts()),
        out_level: out.level(),
        err: max_err(&err.t().dot(&x), &have),
    }
}

#[test]
fn simulated_counts_equal_corrected_table7() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let level = (TABLE7_LEVEL, TABLE7_LEVEL);
    println!(
        "{:<18} {:>16} {:>16}   {:>18} {:>18}",
        "(a, b, c)", "DiagABT HETAL", "DiagABT ours", "DiagATB HETAL", "DiagATB ours"
    );
    for row in TABLE7 {
        let shape = row.shape().unwrap();
        assert_eq!(shape.slots(), TABLE7_SLOTS);
        let abt = run_abt(row.a, row.b, row.c, shape, &mut rng);
        let atb = run_atb(
            row.a,
            row.b,
            row.c,
            shape,
            AtbVariant::Standard,
            level,
            &mut rng,
        );
        println!(
            "{:<18} {:>16} {:>16}   {:>18} {:>18}",
            format!("({}, {}, {})", row.a, row.b, row.c),
            row.diag_abt.to_string(),
            abt.counts.to_string(),
            row.diag_atb.to_string(),
            atb.counts.to_string()
        );
        assert_eq!(abt.counts, row.diag_abt, "DiagABT {row:?}");
        assert_eq!(atb.counts, row.diag_atb, "DiagATB {row:?}");
        // Depth: DiagABT 3 (the reference's figure); DiagATB 4 on A, 2 on B.
        assert_eq!(abt.out_level, TABLE7_LEVEL - ABT_DEPTH);
        assert_eq!(AtbVariant::Standard.depths(row.c), (4, 2));
        assert_eq!(atb.out_level, TABLE7_LEVEL - 4);
        let low_b = run_atb(
            row.a,
            row.b,
            row.c,
            shape,
            AtbVariant::Standard,
            (12, 10),
            &mut rng,
        );
        assert_eq!((low_b.counts, low_b.out_level), (atb.counts, 12 - 4));
        let lower_b = run_atb(
            row.a,
            row.b,
            row.c,
            shape,
            AtbVariant::Standard,
            (12, 9),
            &mut rng,
        );
        assert_eq!(lower_b.out_level, 9 - 2);
        // The keyless counting helpers for benchmarks agree.
        let quick = simulate_abt(row.a, row.b, row.c, shape, TABLE7_LEVEL).unwrap();
        assert_eq!(
            (quick.hetal_counts(), quick.depth),
            (row.diag_abt, ABT_DEPTH)
        );
        let quick = simulate_atb(
            row.a,
            row.b,
            row.c,
            shape,
            TABLE7_LEVEL,
            AtbVariant::Standard,
        )
        .unwrap();
        assert_eq!((quick.hetal_counts(), quick.depth), (row.diag_atb, 4));
        assert!(abt.err < SIM_MAX_ERR, "DiagABT {row:?}: error {}", abt.err);
        assert!(atb.err < SIM_MAX_ERR, "DiagATB {row:?}: error {}", atb.err);
    }
}

#[test]
fn prot_up_saves_a_level_of_a_and_moves_the_mask_onto_b() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    for row in TABLE7 {
        let shape = row.shape().unwrap();
        // A one level below B, as when it comes out of the softmax.
        let levels = (TABLE7_LEVEL - 1, TABLE7_LEVEL);
        let std = run_atb(
            row.a,
            row.b,
            row.c,
            shape,
            AtbVariant::Standard,
            levels,
            &mut rng,
        );
        let up = run_atb(
            row.a,
            row.b,
            row.c,
            shape,
            AtbVariant::PRotUp,
            levels,
            &mut rng,
        );
        println!(
            "({}, {}, {}) DiagATB PRotUp: {} (standard {}), output level {} (standard {})",
            row.a, row.b, row.c, up.counts, std.counts, up.out_level, std.out_level
        );
        assert_eq!(
            up.counts,
            atb_cost(row.a, row.b, row.c, shape, AtbVariant::PRotUp)
        );
        assert_eq!(AtbVariant::PRotUp.depths(row.c), (3, 3));
        assert_eq!(up.out_level, levels.0 - 3);
        assert_eq!(std.out_level, levels.0 - 4);
        assert_eq!(
            AtbVariant::for_levels(levels.0, levels.1),
            AtbVariant::PRotUp
        );
        assert_eq!(up.counts.mult, std.counts.mult);
        // CMult: (c/2 − 1)·na·nb instead of (c/2 − 1)·na. Rot: na·nb (shared by all shifts)
        // instead of (c/2 − 1)·na.
        let (na, nb) = shape.grid(row.a, row.b);
        let (na, nb, shifts) = (na as i64, nb as i64, row.c as i64 / 2 - 1);
        assert_eq!(
            up.counts.cmult as i64 - std.counts.cmult as i64,
            shifts * na * (nb - 1)
        );
        assert_eq!(
            up.counts.rot as i64 - std.counts.rot as i64,
            na * nb - shifts * na
        );
        assert!(up.err < SIM_MAX_ERR, "{row:?}: error {}", up.err);
    }
}

/// Shapes beyond Table 7: several block rows (`na > 1`), ragged edges, small `c`, logical
/// class counts below the period. Counts follow our cost model; the reference's DiagATB
/// formula agrees only when `na = 1`.
#[test]
fn other_shapes_follow_the_cost_model() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let level = (TABLE7_LEVEL, TABLE7_LEVEL);
    let out_level = |(da, db): (usize, usize), (la, lb): (usize, usize)| (la - da).min(lb - db);
    for (a, b, c, s0) in [
        (300, 200, 4, 128),
        (1000, 769, 8, 256),
        (64, 100, 2, 64),
        (2048, 769, 16, 2048),
        (100, 50, 16, 16),
    ] {
        let shape = BlockShape::with_slots(s0, TABLE7_SLOTS).unwrap();
        let abt = run_abt(a, b, c, shape, &mut rng);
        assert_eq!(
            abt.counts,
            abt_cost(a, b, c, shape),
            "({a}, {b}, {c}) s0 = {s0}"
        );
        assert!(abt.err < SIM_MAX_ERR);
        assert_eq!(abt.out_level, TABLE7_LEVEL - ABT_DEPTH);
        for variant in [AtbVariant::Standard, AtbVariant::PRotUp] {
            for levels in [level, (12, 9), (9, 12)] {
                let atb = run_atb(a, b, c, shape, variant, levels, &mut rng);
                let what = format!("({a}, {b}, {c}) s0 = {s0}, {variant:?}, levels {levels:?}");
                assert_eq!(atb.counts, atb_cost(a, b, c, shape, variant), "{what}");
                assert_eq!(
                    atb.out_level,
                    out_level(variant.depths(c), levels),
                    "{what}"
                );
                assert!(atb.err < SIM_MAX_ERR, "{what}");
            }
        }
        let na = a.div_ceil(s0);
        let standard = atb_cost(a, b, c, shape, AtbVariant::Standard);
        assert_eq!(reference_atb_cost(a, b, c, shape) == standard, na == 1);
    }
}

/// Fewer classes than the period: padded rows of `W` and columns of `P − Y` are zero.
#[test]
fn logical_class_count_below_the_period() {
    let mut sim = SlotSim::uniform(TABLE7_SLOTS, TABLE7_LEVEL, LOG_SCALE);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let shape = BlockShape::with_slots(512, TABLE7_SLOTS).unwrap();
    let (x, w, e) = (
        random(&mut rng, 512, 70),
        random(&mut rng, 3, 70),
        random(&mut rng, 512, 3),
    );
    let ex = EncMatrix::encrypt(&mut sim, &x, shape, Layout::Blocks, 12).unwrap();
    let ew = EncMatrix::encrypt(&mut sim, &w, shape, Layout::RowTiled { period: 4 }, 12).unwrap();
    let ee = EncMatrix::encrypt(&mut sim, &e, shape, Layout::ColTiled { period: 4 }, 12).unwrap();
    let logits = diag_abt(&sim, &ex, &ew).unwrap();
    assert_eq!((logits.rows(), logits.cols()), (512, 3));
    assert!(max_err(&x.dot(&w.t()), &logits.decrypt(&sim).unwrap()) < SIM_MAX_ERR);
    // The padding column 3 of the logits is zero.
    let slots = logits.decrypt_slots(&sim).unwrap();
    assert!(slots[0]
        .iter()
        .skip(3)
        .step_by(shape.s1())
        .all(|z| z.norm() < SIM_MAX_ERR));
    let grad = diag_atb(&sim, &ee, &ex, AtbVariant::Standard).unwrap();
    assert_eq!((grad.rows(), grad.cols()), (3, 70));
    assert!(max_err(&e.t().dot(&x), &grad.decrypt(&sim).unwrap()) < SIM_MAX_ERR);
}

/// Operands that do not fit are errors, never panics.
#[test]
fn bad_operands_are_errors() {
    use hetal_ml::MlError;
    let mut sim = SlotSim::uniform(64, 4, LOG_SCALE);
    let shape = BlockShape::new(8, 8).unwrap();
    let mut enc = |rows: usize, cols: usize, layout: Layout, level: usize| {
        EncMatrix::encrypt(&mut sim, &Array2::zeros((rows, cols)), shape, layout, level).unwrap()
    };
    let x = enc(10, 20, Layout::Blocks, 4);
    let w = enc(4, 20, Layout::RowTiled { period: 4 }, 4);
    let w_short = enc(4, 19, Layout::RowTiled { period: 4 }, 4);
    let w_low = enc(4, 20, Layout::RowTiled { period: 4 }, 2);
    let e = enc(10, 4, Layout::ColTiled { period: 4 }, 4);
    let e_low = enc(10, 4, Layout::ColTiled { period: 4 }, 3);
    let e_rows = enc(9, 4, Layout::ColTiled { period: 4 }, 4);
    let x_low = enc(10, 20, Layout::Blocks, 1);
    let sim = SlotSim::uniform(64, 4, LOG_SCALE);

    let abt = |a, b| diag_abt(&sim, a, b).map(|_| ());
    assert!(matches!(abt(&x, &x), Err(MlError::LayoutMismatch { .. })));
    assert!(matches!(abt(&w, &w), Err(MlError::LayoutMismatch { .. })));
    assert!(matches!(
        abt(&x, &w_short),
        Err(MlError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        abt(&x, &w_low),
        Err(MlError::NotEnoughLevels {
            have: 2,
            need: 3,
            ..
        })
    ));
    assert!(abt(&x, &w).is_ok());

    let atb = |a, b, v| diag_atb(&sim, a, b, v).map(|_| ());
    let std = AtbVariant::Standard;
    assert!(matches!(
        atb(&x, &x, std),
        Err(MlError::LayoutMismatch { .. })
    ));
    assert!(matches!(
        atb(&e_rows, &x, std),
        Err(MlError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        atb(&e_low, &x, std),
        Err(MlError::NotEnoughLevels { .. })
    ));
    assert!(matches!(
        atb(&e, &x_low, std),
        Err(MlError::NotEnoughLevels { .. })
    ));
    assert!(atb(&e_low, &x, AtbVariant::PRotUp).is_ok());
    assert!(atb(&e, &x, std).is_ok());

    // A period that does not fit the block: c > s1 for the logits.
    let shape = BlockShape::new(16, 4).unwrap();
    let mut sim = SlotSim::uniform(64, 4, LOG_SCALE);
    let x =
        EncMatrix::encrypt(&mut sim, &Array2::zeros((16, 4)), shape, Layout::Blocks, 4).unwrap();
    let w = EncMatrix::encrypt(
        &mut sim,
        &Array2::zeros((8, 4)),
        shape,
        Layout::RowTiled { period: 8 },
        4,
    )
    .unwrap();
    assert!(matches!(
        diag_abt(&sim, &x, &w),
        Err(MlError::BadPeriod { period: 8, .. })
    ));
}
