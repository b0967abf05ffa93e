//! Plaintext-matrix × ciphertext linear transforms (diagonal method with baby-step giant-step)
//! against the cleartext matrix-vector product, with precision asserted in bits and the
//! rotation / key-switch counts checked against the evaluator's counters.
//!
//! Parameters: insecure N = 2^10 sets (tests only), scale 2^40, full packing (512 slots) and
//! sparse packing (64 slots). Seeds are fixed; set `HETAL_TEST_SEED` to try others.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::sync::Arc;

use hetal_ckks::{
    presets, Ciphertext, CkksError, Encoder, Evaluator, KeyGenerator, LinearTransform, Params,
    PrecisionStats, SecretKey,
};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Minimum precision of one transform, in bits. Inputs have entries in the unit square and
/// the matrix entries are uniform in `[−1, 1]²/sqrt(D)` for `D` nonzero entries per row, so
/// the outputs are O(1) and the matrix does not amplify the noise (its rows have norm about
/// 0.8). Noise per slot at N = 2^10, Δ = 2^40, full packing (a coefficient noise of standard
/// deviation `c` gives about `c·sqrt(N)` in a slot):
/// - fresh secret-key encryption, `e` with σ = 3.2: 3.2·2^5/Δ ≈ 2^-33.3;
/// - baby-step key switches (at scale Δ): a rounding noise of the same order, mixed by the
///   diagonals so that it stays about one such noise in total;
/// - giant-step key switches: done at scale Δ·q before the rescale, divided by q ≈ 2^40;
/// - diagonal encoding rounding at scale q ≈ 2^40: below 2^-35;
/// - rescale rounding `(r0 + r1·s)`, ternary `s`: sqrt(N·(2/3)/12)·2^5/Δ ≈ 2^-32.
///
/// Together about 2^-31.7 per real part (measured mean 31.8 bits), and the worst of 1024 real
/// and imaginary parts about 3.3 standard deviations out, 2^-30 (measured 29.5-30 bits at 512
/// slots; sparse packing reads fewer noise coefficients per slot: about 32 bits at 64 slots).
/// The threshold leaves 4.5 bits of margin for other seeds.
const LINTRANS_MIN_BITS: f64 = 25.0;
/// After two chained transforms at 64 slots (two rescales; measured 31.7 bits).
const CHAINED_MIN_BITS: f64 = 25.0;

fn seed() -> u64 {
    std::env::var("HETAL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024)
}

struct Fixture {
    params: Params,
    sk: SecretKey,
    enc: Encoder,
    eval: Evaluator,
    rng: ChaCha20Rng,
}

/// N = 2^10 with `levels` levels above the base prime, keys for `rotations`.
fn fixture(levels: usize, rotations: &[i64]) -> Fixture {
    let params = Params::new_insecure(presets::insecure_test(10, levels)).unwrap();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(seed()));
    let sk = keygen.gen_secret_key();
    let keys = Arc::new(keygen.gen_eval_keys(&sk, rotations, false));
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    Fixture {
        params,
        sk,
        enc,
        eval,
        rng: ChaCha20Rng::seed_from_u64(seed() + 1),
    }
}

impl Fixture {
    fn encrypt(&mut self, v: &[Complex64], slots: usize) -> Ciphertext {
        let (level, scale) = (self.params.max_level(), self.params.default_scale());
        let pt = self.enc.encode(v, slots, level, scale).unwrap();
        self.sk.encrypt(&pt, &mut self.rng).unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<Complex64> {
        self.enc.decode(&self.sk.decrypt(ct).unwrap())
    }
}

fn rng(offset: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed() + 100 + offset)
}

fn random_vec(rng: &mut ChaCha20Rng, n: usize, bound: f64) -> Vec<Complex64> {
    (0..n)
        .map(|_| {
            Complex64::new(
                rng.random_range(-bound..bound),
                rng.random_range(-bound..bound),
            )
        })
        .collect()
}

/// A dense `n × n` matrix with entries uniform in `[−1, 1]²/sqrt(n)`.
fn random_dense(rng: &mut ChaCha20Rng, n: usize) -> Vec<Vec<Complex64>> {
    let b = 1.0 / (n as f64).sqrt();
    (0..n).map(|_| random_vec(rng, n, b)).collect()
}

/// Diagonals at `offsets` (any sign: taken modulo `n`) with entries in `[−1, 1]²/sqrt(D)`.
fn random_diagonals(
    rng: &mut ChaCha20Rng,
    n: usize,
    offsets: &[i64],
) -> Vec<(i64, Vec<Complex64>)> {
    let b = 1.0 / (offsets.len() as f64).sqrt();
    offsets
        .iter()
        .map(|&k| (k, random_vec(rng, n, b)))
        .collect()
}

/// 16 distinct offsets spread over the whole range, with negative ones (wraparound).
fn sixteen_offsets(n: usize) -> Vec<i64> {
    let n = n as i64;
    vec![
        0,
        1,
        2,
        3,
        -1,
        -2,
        -3,
        5,
        n / 4,
        n / 4 + 1,
        -(n / 4),
        n / 2,
        n / 2 - 1,
        -(n / 2) + 3,
        n - 7,
        -(n / 8),
    ]
}

fn dense_product(m: &[Vec<Complex64>], v: &[Complex64]) -> Vec<Complex64> {
    m.iter()
        .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
}

fn max_abs_diff(a: &[Complex64], b: &[Complex64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

fn powers_of_two_up_to(n: usize) -> impl Iterator<Item = usize> {
    (0..=n.trailing_zeros()).map(|s| 1usize << s)
}

#[test]
fn apply_plain_matches_dense_product() {
    let mut r = rng(0);
    for n in [1usize, 2, 8, 64, 512] {
        let mut cases = vec![(
            "dense",
            LinearTransform::from_dense(&random_dense(&mut r, n)).unwrap(),
        )];
        if n >= 64 {
            let d3 = random_diagonals(&mut r, n, &[0, 1, -1]);
            let d16 = random_diagonals(&mut r, n, &sixteen_offsets(n));
            cases.push((
                "3 diagonals",
                LinearTransform::from_diagonals(n, d3).unwrap(),
            ));
            cases.push((
                "16 diagonals",
                LinearTransform::from_diagonals(n, d16).unwrap(),
            ));
        }
        for (name, lt) in cases {
            let m = lt.to_dense();
            assert_eq!(LinearTransform::from_dense(&m).unwrap(), lt, "{name} n={n}");
            let v = random_vec(&mut r, n, 1.0);
            let want = dense_product(&m, &v);
            for n1 in powers_of_two_up_to(n) {
                let have = lt.apply_plain_with(&v, n1).unwrap();
                let err = max_abs_diff(&want, &have);
                assert!(err <= 1e-12, "{name} n={n} n1={n1}: error {err:e}");
            }
            let err = max_abs_diff(&want, &lt.apply_plain(&v).unwrap());
            assert!(err <= 1e-12, "{name} n={n}: error {err:e}");
        }
    }
}

#[test]
fn diagonal_form_definitions() {
    // M[i][l] = 10·i + l: diagonal k holds M[i][(i + k) mod n].
    let n = 8;
    let m: Vec<Vec<Complex64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|l| Complex64::new((10 * i + l) as f64, 0.0))
                .collect()
        })
        .collect();
    let lt = LinearTransform::from_dense(&m).unwrap();
    assert_eq!(lt.num_diagonals(), n);
    let d3 = lt.diagonal(3).unwrap();
    for (i, z) in d3.iter().enumerate() {
        assert_eq!(z.re, (10 * i + (i + 3) % n) as f64);
    }
    // A negative offset wraps around, and repeated offsets add up.
    let one = vec![Complex64::new(1.0, 0.0); n];
    let lt = LinearTransform::from_diagonals(n, [(-1, one.clone()), (7, one.clone())]).unwrap();
    assert_eq!(lt.diagonal_indices().collect::<Vec<_>>(), vec![7]);
    assert_eq!(lt.diagonal(7).unwrap()[0], Complex64::new(2.0, 0.0));
    // All-zero diagonals are dropped.
    let zero = vec![Complex64::new(0.0, 0.0); n];
    let lt = LinearTransform::from_diagonals(n, [(0, one), (2, zero)]).unwrap();
    assert_eq!(lt.num_diagonals(), 1);
    let mut id = vec![vec![Complex64::new(0.0, 0.0); n]; n];
    (0..n).for_each(|i| id[i][i] = Complex64::new(1.0, 0.0));
    assert_eq!(lt.to_dense(), id);
    assert_eq!(lt.rotations_needed(), Vec::<i64>::new());
    // Dense 2^9: n1 = 32 (ties with 16 go to the larger), 31 + 15 rotations.
    let lt = LinearTransform::from_dense(&random_dense(&mut rng(1), 512)).unwrap();
    assert_eq!(lt.default_baby_steps(), 32);
    let rots = lt.rotations_needed();
    let want: Vec<i64> = (1..32).chain((1..16).map(|j| 32 * j)).collect();
    assert_eq!(rots, want);
}

#[test]
fn invalid_inputs_are_errors() {
    let c = |x: f64| Complex64::new(x, 0.0);
    assert!(matches!(
        LinearTransform::from_dense(&[vec![c(1.0), c(2.0)], vec![c(3.0)]]),
        Err(CkksError::InvalidParams(_))
    ));
    assert!(matches!(
        LinearTransform::from_dense(&vec![vec![c(1.0); 3]; 3]),
        Err(CkksError::InvalidParams(_))
    ));
    assert!(matches!(
        LinearTransform::from_dense(&[]),
        Err(CkksError::InvalidParams(_))
    ));
    assert!(matches!(
        LinearTransform::from_diagonals(4, [(1, vec![c(1.0); 3])]),
        Err(CkksError::InvalidParams(_))
    ));
    let lt = LinearTransform::from_diagonals(4, [(1, vec![c(1.0); 4])]).unwrap();
    assert!(matches!(
        lt.apply_plain(&[c(1.0); 3]),
        Err(CkksError::SlotMismatch { .. })
    ));
    assert!(matches!(
        lt.apply_plain_with(&[c(1.0); 4], 3),
        Err(CkksError::InvalidParams(_))
    ));
    assert!(matches!(
        lt.rotations_needed_with(8),
        Err(CkksError::InvalidParams(_))
    ));

    let mut f = fixture(2, &[1]);
    assert!(matches!(
        lt.encode(&f.enc, 0),
        Err(CkksError::NotEnoughLevels { have: 0, need: 1 })
    ));
    assert!(matches!(
        lt.encode(&f.enc, 3),
        Err(CkksError::NotEnoughLevels { .. })
    ));
    let too_big = LinearTransform::from_diagonals(1024, [(0, vec![c(1.0); 1024])]).unwrap();
    assert!(matches!(
        too_big.encode(&f.enc, 1),
        Err(CkksError::BadSlots { .. })
    ));
    // Level and slot mismatches.
    let enc = lt.encode(&f.enc, 1).unwrap();
    let ct = f.encrypt(&[c(1.0); 4], 4);
    assert!(matches!(
        enc.apply(&f.eval, &ct),
        Err(CkksError::LevelMismatch { lhs: 2, rhs: 1 })
    ));
    let enc = lt.encode(&f.enc, 2).unwrap();
    let ct8 = f.encrypt(&[c(1.0); 8], 8);
    assert!(matches!(
        enc.apply(&f.eval, &ct8),
        Err(CkksError::SlotMismatch { lhs: 8, rhs: 4 })
    ));
    // Another parameter set's evaluator.
    let other = fixture(3, &[1]);
    assert!(matches!(
        enc.apply(&other.eval, &ct),
        Err(CkksError::ParamsMismatch)
    ));
    assert_eq!(
        f.decrypt(&enc.apply(&f.eval, &ct).unwrap())[0].re.round(),
        1.0
    );
}

/// Encrypts a random vector, applies `lt` with its default plan, checks the precision, the
/// level and scale, and the op counts; returns the precision.
fn check_encrypted(f: &mut Fixture, lt: &LinearTransform, what: &str) -> PrecisionStats {
    let n = lt.slots();
    let v = random_vec(&mut f.rng, n, 1.0);
    let ct = f.encrypt(&v, n);
    let level = ct.level();
    let enc = lt.encode(&f.enc, level).unwrap();
    f.eval.reset_counts();
    let out = enc.apply(&f.eval, &ct).unwrap();
    let c = f.eval.counts();

    let want = dense_product(&lt.to_dense(), &v);
    let stats = PrecisionStats::new(&want, &f.decrypt(&out));
    println!(
        "{what}: slots {n}, {} diagonals, n1 {}: {} hoisted + {} full rotations; {stats}",
        lt.num_diagonals(),
        enc.baby_steps(),
        c.keyswitch_hoisted,
        c.keyswitch_full
    );
    assert!(stats.min_bits >= LINTRANS_MIN_BITS, "{what}: {stats}");

    // Exactly one level, and the scale comes back exactly.
    assert_eq!(out.level(), level - 1, "{what}");
    assert_eq!(out.scale(), ct.scale(), "{what}");
    assert_eq!(out.slots(), n);

    // Op counts: hoisted baby steps, full giant steps, one product per diagonal.
    let (b, g) = (enc.baby_rotations().len(), enc.giant_rotations().len());
    assert_eq!(c.keyswitch_hoisted, b as u64, "{what}");
    assert_eq!(c.keyswitch_full, g as u64, "{what}");
    assert_eq!(c.rotations, (b + g) as u64, "{what}");
    assert_eq!(c.pt_mult, lt.num_diagonals() as u64, "{what}");
    assert_eq!(enc.num_plaintexts(), lt.num_diagonals());
    assert_eq!((c.rescales, c.ct_mult), (1, 0), "{what}");
    assert_eq!(enc.rotations_needed(), lt.rotations_needed());
    stats
}

fn all_rotations(n: usize) -> Vec<i64> {
    (1..n as i64).collect()
}

#[test]
fn dense_matrix_full_slots() {
    let n = 512;
    let lt = LinearTransform::from_dense(&random_dense(&mut rng(2), n)).unwrap();
    let mut f = fixture(2, &lt.rotations_needed());
    check_encrypted(&mut f, &lt, "dense");
    let enc = lt.encode(&f.enc, 2).unwrap();
    assert_eq!((enc.baby_steps(), enc.giant_steps()), (32, 16));
    assert_eq!(enc.baby_rotations().len(), 31);
    assert_eq!(enc.giant_rotations().len(), 15);
}

#[test]
fn dense_matrix_sparse_packing() {
    let n = 64;
    let lt = LinearTransform::from_dense(&random_dense(&mut rng(3), n)).unwrap();
    let mut f = fixture(2, &lt.rotations_needed());
    check_encrypted(&mut f, &lt, "dense, 64 slots");
    // 64 = 8 · 8: 7 hoisted + 7 full.
    let enc = lt.encode(&f.enc, 2).unwrap();
    assert_eq!(enc.baby_steps(), 8);
    assert_eq!(enc.rotations_needed().len(), 14);
}

#[test]
fn sparse_diagonals() {
    for n in [512usize, 64] {
        let mut r = rng(4 + n as u64);
        let cases = [
            ("3 diagonals", random_diagonals(&mut r, n, &[0, 1, -1])),
            (
                "16 diagonals",
                random_diagonals(&mut r, n, &sixteen_offsets(n)),
            ),
        ];
        for (name, d) in cases {
            let lt = LinearTransform::from_diagonals(n, d).unwrap();
            let mut f = fixture(2, &lt.rotations_needed());
            check_encrypted(&mut f, &lt, &format!("{name}, {n} slots"));
        }
    }
}

#[test]
fn every_baby_step_count_agrees() {
    // Every n1 from 1 (plain diagonal method, giant steps only) to slots (hoisted diagonal
    // method, baby steps only) gives the same product; the key switches split accordingly.
    let n = 64;
    let lt =
        LinearTransform::from_diagonals(n, random_diagonals(&mut rng(5), n, &sixteen_offsets(n)))
            .unwrap();
    let mut f = fixture(2, &all_rotations(n));
    let v = random_vec(&mut f.rng, n, 1.0);
    let ct = f.encrypt(&v, n);
    let want = lt.apply_plain(&v).unwrap();
    for n1 in powers_of_two_up_to(n) {
        let q = f.params.q_primes(2)[2].value() as f64;
        let enc = lt.encode_with(&f.enc, 2, n1, q).unwrap();
        f.eval.reset_counts();
        let out = enc.apply(&f.eval, &ct).unwrap();
        let c = f.eval.counts();
        let stats = PrecisionStats::new(&want, &f.decrypt(&out));
        assert!(stats.min_bits >= LINTRANS_MIN_BITS, "n1 = {n1}: {stats}");
        assert_eq!(c.keyswitch_hoisted, enc.baby_rotations().len() as u64);
        assert_eq!(c.keyswitch_full, enc.giant_rotations().len() as u64);
        assert_eq!(
            enc.rotations_needed(),
            lt.rotations_needed_with(n1).unwrap()
        );
        if n1 == 1 {
            assert_eq!((c.keyswitch_hoisted, c.keyswitch_full), (0, 15));
        }
        if n1 == n {
            assert_eq!((c.keyswitch_hoisted, c.keyswitch_full), (15, 0));
        }
    }
}

#[test]
fn bsgs_beats_the_naive_diagonal_method() {
    let n = 512;
    let lt = LinearTransform::from_dense(&random_dense(&mut rng(6), n)).unwrap();
    let mut f = fixture(2, &all_rotations(n));
    let v = random_vec(&mut f.rng, n, 1.0);
    let ct = f.encrypt(&v, n);
    let level = ct.level();
    let want = dense_product(&lt.to_dense(), &v);

    let enc = lt.encode(&f.enc, level).unwrap();
    f.eval.reset_counts();
    let t = std::time::Instant::now();
    let out = enc.apply(&f.eval, &ct).unwrap();
    let bsgs_time = t.elapsed();
    let bsgs = f.eval.counts();
    let bsgs_stats = PrecisionStats::new(&want, &f.decrypt(&out));

    // The naive method: one full rotation per nonzero diagonal, d_k ⊙ rot(v, k).
    let q = f.params.q_primes(level)[level].value() as f64;
    let pts: Vec<_> = lt
        .diagonal_indices()
        .map(|k| {
            (
                k,
                f.enc.encode(lt.diagonal(k).unwrap(), n, level, q).unwrap(),
            )
        })
        .collect();
    f.eval.reset_counts();
    let t = std::time::Instant::now();
    let mut acc: Option<Ciphertext> = None;
    for (k, pt) in &pts {
        let term = f
            .eval
            .mul_plain(&f.eval.rotate(&ct, *k as i64).unwrap(), pt)
            .unwrap();
        match acc.as_mut() {
            Some(a) => f.eval.add_assign(a, &term).unwrap(),
            None => acc = Some(term),
        }
    }
    let naive_out = f.eval.rescale(&acc.unwrap()).unwrap();
    let naive_time = t.elapsed();
    let naive = f.eval.counts();
    let naive_stats = PrecisionStats::new(&want, &f.decrypt(&naive_out));

    println!(
        "dense 512: BSGS n1 = {}: {} rotations ({} hoisted + {} full), {} pt mults, {:?}, {bsgs_stats}",
        enc.baby_steps(),
        bsgs.rotations,
        bsgs.keyswitch_hoisted,
        bsgs.keyswitch_full,
        bsgs.pt_mult,
        bsgs_time
    );
    println!(
        "dense 512: naive: {} rotations ({} full), {} pt mults, {:?}, {naive_stats}",
        naive.rotations, naive.keyswitch_full, naive.pt_mult, naive_time
    );
    assert_eq!((bsgs.keyswitch_hoisted, bsgs.keyswitch_full), (31, 15));
    assert_eq!(bsgs.rotations, 46);
    assert_eq!((naive.keyswitch_hoisted, naive.keyswitch_full), (0, 511));
    assert!(bsgs.keyswitch_full + bsgs.keyswitch_hoisted < naive.keyswitch_full);
    assert_eq!(bsgs.pt_mult, naive.pt_mult);
    assert!(bsgs_stats.min_bits >= LINTRANS_MIN_BITS, "{bsgs_stats}");
    assert!(naive_stats.min_bits >= LINTRANS_MIN_BITS, "{naive_stats}");
}

#[test]
fn chained_transforms_keep_the_scale_exact() {
    // Two transforms at consecutive levels: no scale alignment needed in between.
    let n = 64;
    let mut r = rng(7);
    let a = LinearTransform::from_dense(&random_dense(&mut r, n)).unwrap();
    let b = LinearTransform::from_diagonals(n, random_diagonals(&mut r, n, &sixteen_offsets(n)))
        .unwrap();
    let mut rots = a.rotations_needed();
    rots.extend(b.rotations_needed());
    let mut f = fixture(3, &rots);
    let v = random_vec(&mut f.rng, n, 1.0);
    let ct = f.encrypt(&v, n);
    let top = f.params.max_level();
    let (ea, eb) = (
        a.encode(&f.enc, top).unwrap(),
        b.encode(&f.enc, top - 1).unwrap(),
    );
    let out = eb.apply(&f.eval, &ea.apply(&f.eval, &ct).unwrap()).unwrap();
    assert_eq!(out.level(), top - 2);
    assert_eq!(out.scale(), ct.scale());
    let want = b.apply_plain(&a.apply_plain(&v).unwrap()).unwrap();
    let stats = PrecisionStats::new(&want, &f.decrypt(&out));
    println!("chained: {stats}");
    assert!(stats.min_bits >= CHAINED_MIN_BITS, "{stats}");
    // Applying the encoded transform again costs no encoding and gives the same result
    // up to noise.
    let again = eb.apply(&f.eval, &ea.apply(&f.eval, &ct).unwrap()).unwrap();
    let stats = PrecisionStats::new(&want, &f.decrypt(&again));
    assert!(stats.min_bits >= CHAINED_MIN_BITS, "{stats}");
}

#[test]
fn missing_rotation_key_is_an_error() {
    let n = 64;
    let lt = LinearTransform::from_dense(&random_dense(&mut rng(8), n)).unwrap();
    let needed = lt.rotations_needed();
    // Missing a baby step (hoisted: checked before any work), then missing a giant step.
    for missing in [needed[2], *needed.last().unwrap()] {
        let keys: Vec<i64> = needed.iter().copied().filter(|&k| k != missing).collect();
        let mut f = fixture(2, &keys);
        let ct = f.encrypt(&random_vec(&mut rng(9), n, 1.0), n);
        let enc = lt.encode(&f.enc, 2).unwrap();
        match enc.apply(&f.eval, &ct) {
            Err(CkksError::MissingGaloisKey { rotation, .. }) => assert_eq!(rotation, missing),
            other => panic!("expected a missing-key error for {missing}, got {other:?}"),
        }
    }
}

#[test]
fn empty_transform_gives_zero() {
    let n = 64;
    let lt = LinearTransform::from_diagonals(n, Vec::<(i64, Vec<Complex64>)>::new()).unwrap();
    assert_eq!(lt.num_diagonals(), 0);
    let mut f = fixture(2, &[]);
    let ct = f.encrypt(&random_vec(&mut rng(10), n, 1.0), n);
    let out = lt.encode(&f.enc, 2).unwrap().apply(&f.eval, &ct).unwrap();
    assert_eq!((out.level(), out.scale()), (1, ct.scale()));
    let zero = vec![Complex64::new(0.0, 0.0); n];
    let stats = PrecisionStats::new(&zero, &f.decrypt(&out));
    assert!(stats.min_bits >= LINTRANS_MIN_BITS, "{stats}");
}
