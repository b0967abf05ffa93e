//! The encapsulation keys of bootstrapping (`BootKeys`) through `hetal_ckks::serial`: the
//! round trip a server goes through (parameters, evaluation keys and bootstrapping keys as bytes,
//! then a bootstrap the client decrypts), and the decoder against truncated, corrupted, foreign
//! and hostile input.
//!
//! Parameters: insecure, tests only. The round trip bootstraps at N = 2^11 with the set of
//! `tests/boot.rs`; the corruption tests use a cheap N = 2^10 bootstrapper (slots 4, one level of
//! each transform, a degree-3 EvalMod), whose keys have the same layout at a tenth of the size.
//! Seeds are fixed.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test fixtures")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    assert_bit_flips_rejected, assert_multi_byte_corruptions_rejected,
    assert_resealed_corruptions_are_safe, assert_truncated_bodies_rejected,
    assert_truncations_rejected, decode_err, edited, get_u64, header, is_invalid_field, put_u64,
    reseal, sealed, LIMITS,
};
use hetal_ckks::serial::{self, DecodeError, DecodeLimits, ObjectKind, CHECKSUM_LEN, HEADER_LEN};
use hetal_ckks::{
    presets, BootKeys, BootParams, Bootstrapper, Encoder, Evaluator, KeyGenerator, Params,
    ParamsLiteral, PrecisionStats, SecretKey,
};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Worst slot after a bootstrap with decoded keys: `tests/boot.rs` measures about 27 bits at
/// this set and asserts 23.
const BOOT_MIN_BITS: f64 = 23.0;

/// The bootstrapping-shaped N = 2^11 set of `tests/boot.rs` (dense main secret, encapsulation):
/// q_0 of 46 bits, 3 user levels and SlotsToCoeffs at 2^40, EvalMod and CoeffsToSlots at 2^55.
fn boot_shaped_params() -> Params {
    let log_q: Vec<u32> = std::iter::once(46)
        .chain(std::iter::repeat_n(40, 3 + 3))
        .chain(std::iter::repeat_n(55, 7 + 3 + 3))
        .collect();
    Params::new_insecure(ParamsLiteral {
        log_q,
        log_p: vec![61; 3],
        dnum: 8,
        ..presets::insecure_test(11, 1)
    })
    .unwrap()
}

fn boot_shaped() -> BootParams {
    BootParams {
        slots: 64,
        ..BootParams::default()
    }
}

/// A cheap bootstrapper with encapsulation, for the shapes of its keys only.
fn small_boot_params(ephemeral_weight: Option<usize>) -> BootParams {
    BootParams {
        slots: 4,
        cts_levels: 1,
        stc_levels: 1,
        eval_mod_degree: 3,
        arcsine_degree: None,
        ephemeral_weight,
        ..BootParams::default()
    }
}

fn small_params(levels: usize) -> Params {
    Params::new_insecure(presets::insecure_test(10, levels)).unwrap()
}

struct Small {
    boot: Bootstrapper,
    keys: BootKeys,
    sk: SecretKey,
}

fn small() -> Small {
    let params = small_params(4);
    let boot = Bootstrapper::new(&params, &small_boot_params(Some(32))).unwrap();
    let sk = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(71)).gen_secret_key();
    let keys = boot
        .gen_boot_keys(&sk, ChaCha20Rng::seed_from_u64(72))
        .unwrap()
        .unwrap();
    Small { boot, keys, sk }
}

/// Digits of a switching key at the top level (see `Params::digits`).
fn top_digits(p: &Params) -> usize {
    let primes = p.max_level() + 1;
    primes.div_ceil(primes.div_ceil(p.dnum()))
}

/// Encoded size of one top-level switching key: its level and digit count, then `(b, a)` per
/// digit over `Q_L · P`.
fn switching_key_len(p: &Params) -> usize {
    16 + top_digits(p) * 2 * (16 + p.qp_primes().len() * p.n() * 8)
}

// Layout offsets (see the module documentation of `serial`).
const EPH_FP: usize = HEADER_LEN;
const SPARSE_LEVEL: usize = EPH_FP + 8;
const SPARSE_DIGITS: usize = SPARSE_LEVEL + 8;
const SPARSE_N: usize = SPARSE_DIGITS + 8;
const SPARSE_LIMBS: usize = SPARSE_N + 8;
const SPARSE_DATA: usize = SPARSE_LIMBS + 8;

/// The client makes everything a server needs to bootstrap, as bytes; the server rebuilds its
/// parameters and bootstrapper from them, decodes the keys and bootstraps; the client decrypts.
#[test]
fn round_trip_and_bootstrap_with_decoded_keys() {
    // Client.
    let params = boot_shaped_params();
    let boot = Bootstrapper::new(&params, &boot_shaped()).unwrap();
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(51));
    let sk = keygen.gen_secret_key();
    let eval_keys = keygen.gen_eval_keys(&sk, boot.rotations(), true);
    let keys = boot
        .gen_boot_keys(&sk, ChaCha20Rng::seed_from_u64(53))
        .unwrap()
        .unwrap();
    let eph = boot.ephemeral_params().unwrap();
    assert_eq!(boot.params(), &params);
    assert_eq!(eph.q_primes(0)[0].value(), params.q_primes(0)[0].value());

    let params_bytes = serial::encode_params(&params);
    let eval_bytes = serial::encode_eval_keys(&eval_keys, &params);
    let boot_bytes = serial::encode_boot_keys(&keys, &boot);
    assert_eq!(
        boot_bytes.len(),
        HEADER_LEN + 8 + switching_key_len(eph) + switching_key_len(&params) + CHECKSUM_LEN
    );
    assert_eq!(get_u64(&boot_bytes, EPH_FP), eph.fingerprint());
    assert_eq!(get_u64(&boot_bytes, SPARSE_DIGITS), top_digits(eph) as u64);

    let mut rng = ChaCha20Rng::seed_from_u64(52);
    let z: Vec<Complex64> = (0..boot.slots())
        .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect();
    let enc = Encoder::new(&params);
    let pt = enc
        .encode(&z, boot.slots(), 0, params.default_scale())
        .unwrap();
    let ct = sk.encrypt(&pt, &mut rng).unwrap();
    let ct_bytes = serial::encode_ciphertext(&ct, &params);

    // Server: the evaluation keys with every rotation of the circuit are about 84 MB.
    let limits = DecodeLimits::new(1 << 28);
    let s_params = serial::decode_params_insecure(&params_bytes, LIMITS).unwrap();
    assert_eq!(s_params, params);
    let s_boot = Bootstrapper::new(&s_params, &boot_shaped()).unwrap();
    let s_keys = serial::decode_boot_keys(&boot_bytes, &s_boot, LIMITS).unwrap();
    assert_eq!(s_keys, keys);
    assert_eq!(serial::encode_boot_keys(&s_keys, &s_boot), boot_bytes);
    let s_eval = Evaluator::new(
        &s_params,
        Arc::new(serial::decode_eval_keys(&eval_bytes, &s_params, limits).unwrap()),
    );
    let s_ct = serial::decode_ciphertext(&ct_bytes, &s_params, LIMITS).unwrap();
    let out = s_boot.bootstrap(&s_eval, &s_ct, Some(&s_keys)).unwrap();
    let out_bytes = serial::encode_ciphertext(&out, &s_params);

    // Client: the same result as with the original keys, and the precision of a bootstrap.
    let out = serial::decode_ciphertext(&out_bytes, &params, LIMITS).unwrap();
    let direct = boot
        .bootstrap(
            &Evaluator::new(&params, Arc::new(eval_keys)),
            &ct,
            Some(&keys),
        )
        .unwrap();
    assert_eq!(out, direct);
    assert_eq!(out.level(), boot.levels_after());
    assert_eq!(out.scale(), ct.scale());
    let stats = PrecisionStats::new(&z, &enc.decode(&sk.decrypt(&out).unwrap()));
    assert!(stats.min_bits >= BOOT_MIN_BITS, "{stats}");
}

#[test]
fn every_truncation_is_rejected() {
    let s = small();
    let bytes = serial::encode_boot_keys(&s.keys, &s.boot);
    let decode = |b: &[u8]| serial::decode_boot_keys(b, &s.boot, LIMITS).map(drop);
    assert_truncations_rejected("boot keys", &bytes, decode);
    assert_truncated_bodies_rejected("boot keys", &bytes, decode);
    // Cut at the boundary between the two keys, and one key's worth short.
    let eph = s.boot.ephemeral_params().unwrap();
    let end_sparse = SPARSE_DIGITS + switching_key_len(eph);
    let b = sealed(&bytes[..HEADER_LEN], &bytes[HEADER_LEN..end_sparse]);
    assert_eq!(decode_err(decode(&b)), DecodeError::Truncated);
}

#[test]
fn bit_flips_and_corruptions_are_rejected() {
    let s = small();
    let bytes = serial::encode_boot_keys(&s.keys, &s.boot);
    let decode = |b: &[u8]| serial::decode_boot_keys(b, &s.boot, LIMITS).map(drop);
    let mut rng = ChaCha20Rng::seed_from_u64(73);
    assert_bit_flips_rejected("boot keys", &bytes, decode, &mut rng, 500);
    // Bit flips in the structurally interesting part: the header, the ephemeral fingerprint and
    // the first fields of each key.
    let eph = s.boot.ephemeral_params().unwrap();
    let dense_at = SPARSE_DIGITS + switching_key_len(eph);
    let mut b = bytes.clone();
    for at in (0..SPARSE_DATA + 16).chain(dense_at..dense_at + 40) {
        for bit in 0..8 {
            b[at] ^= 1 << bit;
            assert!(decode(&b).is_err(), "bit {bit} of byte {at}");
            b[at] ^= 1 << bit;
        }
    }
    assert_multi_byte_corruptions_rejected("boot keys", &bytes, decode, &mut rng, 200);
    let again = |b: &[u8]| {
        serial::decode_boot_keys(b, &s.boot, LIMITS)
            .ok()
            .map(|k| serial::encode_boot_keys(&k, &s.boot))
    };
    assert_resealed_corruptions_are_safe("boot keys", &bytes, again, &mut rng, 300);
}

#[test]
fn structure_is_checked() {
    let s = small();
    let p = s.boot.params();
    let eph = s.boot.ephemeral_params().unwrap();
    let bytes = serial::encode_boot_keys(&s.keys, &s.boot);
    let dec = |b: &[u8]| serial::decode_boot_keys(b, &s.boot, LIMITS);
    assert_eq!(dec(&bytes).unwrap(), s.keys);

    let eph_limbs = eph.qp_primes().len();
    assert_eq!(eph_limbs, 2, "q_0 and one special prime");
    assert_eq!(top_digits(eph), 1);
    assert_eq!(get_u64(&bytes, SPARSE_N), p.n() as u64);
    assert_eq!(get_u64(&bytes, SPARSE_LIMBS), eph_limbs as u64);
    let dense_at = SPARSE_LEVEL + switching_key_len(eph);
    let dense_digits_at = dense_at + 8;
    let dense_limbs_at = dense_at + 24;
    assert_eq!(get_u64(&bytes, SPARSE_LEVEL), 0);
    assert_eq!(get_u64(&bytes, dense_at), p.max_level() as u64);
    assert_eq!(get_u64(&bytes, dense_digits_at), top_digits(p) as u64);
    assert_eq!(get_u64(&bytes, dense_limbs_at), p.qp_primes().len() as u64);

    // The ephemeral fingerprint.
    let b = edited(&bytes, |b| put_u64(b, EPH_FP, eph.fingerprint() ^ 1));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::FingerprintMismatch {
            expected: eph.fingerprint(),
            found: eph.fingerprint() ^ 1
        }
    );
    // Digit counts of either key.
    for d in [0, 2, 1 << 40, 1 << 62, u64::MAX] {
        let b = edited(&bytes, |b| put_u64(b, SPARSE_DIGITS, d));
        assert!(is_invalid_field(dec(&b)), "to-sparse digits {d}");
    }
    for d in [0, top_digits(p) as u64 + 1, 1 << 62] {
        let b = edited(&bytes, |b| put_u64(b, dense_digits_at, d));
        assert!(is_invalid_field(dec(&b)), "to-dense digits {d}");
    }
    // Both keys serve their set's top level, no other.
    for l in [1, u64::MAX] {
        let b = edited(&bytes, |b| put_u64(b, SPARSE_LEVEL, l));
        assert!(is_invalid_field(dec(&b)), "to-sparse level {l}");
    }
    for l in [0, p.max_level() as u64 - 1, p.max_level() as u64 + 1] {
        let b = edited(&bytes, |b| put_u64(b, dense_at, l));
        assert!(is_invalid_field(dec(&b)), "to-dense level {l}");
    }
    // Ring degree.
    for n in [0, 512, 2048, u64::MAX] {
        let b = edited(&bytes, |b| put_u64(b, SPARSE_N, n));
        assert!(is_invalid_field(dec(&b)), "n {n}");
    }
    // Limb counts: to_sparse is over the ephemeral q_0 · P, to_dense over the main Q_L · P.
    let main_limbs = p.qp_primes().len() as u64;
    for l in [0, 1, 3, main_limbs, 1 << 62] {
        let b = edited(&bytes, |b| put_u64(b, SPARSE_LIMBS, l));
        assert!(is_invalid_field(dec(&b)), "to-sparse limbs {l}");
    }
    for l in [0, 2, main_limbs - 1, main_limbs + 1, 1 << 62] {
        let b = edited(&bytes, |b| put_u64(b, dense_limbs_at, l));
        assert!(is_invalid_field(dec(&b)), "to-dense limbs {l}");
    }
    // Residues: the second limb of to_sparse is the ephemeral 61-bit special prime, larger
    // than every main prime but still a bound.
    let p_eph = eph.p_primes()[0].value();
    let at = SPARSE_DATA + p.n() * 8;
    let b = edited(&bytes, |b| put_u64(b, at, p_eph));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::ResidueOutOfRange { limb: 1, index: 0 }
    );
    let b = edited(&bytes, |b| put_u64(b, at, p_eph - 1));
    assert!(dec(&b).is_ok());
    let q0 = p.q_primes(0)[0].value();
    let b = edited(&bytes, |b| put_u64(b, SPARSE_DATA + 8, q0));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::ResidueOutOfRange { limb: 0, index: 1 }
    );
    // The last residue of to_dense: its last special prime.
    let last = bytes.len() - CHECKSUM_LEN - 8;
    let b = edited(&bytes, |b| put_u64(b, last, u64::MAX));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::ResidueOutOfRange {
            limb: p.qp_primes().len() - 1,
            index: p.n() - 1
        }
    );
    // The keys in the wrong order.
    let swapped = {
        let mut body = bytes[EPH_FP..SPARSE_LEVEL].to_vec();
        body.extend_from_slice(&bytes[dense_at..bytes.len() - CHECKSUM_LEN]);
        body.extend_from_slice(&bytes[SPARSE_LEVEL..dense_at]);
        sealed(&bytes[..HEADER_LEN], &body)
    };
    assert!(is_invalid_field(dec(&swapped)));
    // Trailing and missing bytes.
    let mut b = bytes.clone();
    b.splice(b.len() - CHECKSUM_LEN..b.len() - CHECKSUM_LEN, [0u8; 8]);
    reseal(&mut b);
    assert_eq!(decode_err(dec(&b)), DecodeError::TrailingBytes);
    let mut b = bytes.clone();
    b.drain(b.len() - CHECKSUM_LEN - 8..b.len() - CHECKSUM_LEN);
    reseal(&mut b);
    assert_eq!(decode_err(dec(&b)), DecodeError::Truncated);
    // The size limit comes first.
    let tight = DecodeLimits::new(bytes.len() - 1);
    assert_eq!(
        decode_err(serial::decode_boot_keys(&bytes, &s.boot, tight)),
        DecodeError::TooLarge {
            limit: bytes.len() - 1,
            needed: bytes.len()
        }
    );
    assert!(serial::decode_boot_keys(&bytes, &s.boot, DecodeLimits::new(bytes.len())).is_ok());
}

#[test]
fn other_parameters_and_foreign_kinds_are_rejected() {
    let s = small();
    let p = s.boot.params();
    let bytes = serial::encode_boot_keys(&s.keys, &s.boot);

    // Another main parameter set (one more level): the header fingerprint.
    let other = small_params(5);
    let other_boot = Bootstrapper::new(&other, &small_boot_params(Some(32))).unwrap();
    assert_eq!(
        decode_err(serial::decode_boot_keys(&bytes, &other_boot, LIMITS)),
        DecodeError::FingerprintMismatch {
            expected: other.fingerprint(),
            found: p.fingerprint()
        }
    );
    // The same main set with another ephemeral secret weight: keys of the same shape, but for
    // another ephemeral set.
    let other_eph = Bootstrapper::new(p, &small_boot_params(Some(16))).unwrap();
    let expected = other_eph.ephemeral_params().unwrap().fingerprint();
    assert_ne!(expected, s.boot.ephemeral_params().unwrap().fingerprint());
    assert_eq!(
        decode_err(serial::decode_boot_keys(&bytes, &other_eph, LIMITS)),
        DecodeError::FingerprintMismatch {
            expected,
            found: s.boot.ephemeral_params().unwrap().fingerprint()
        }
    );
    // A bootstrapper without encapsulation takes no keys, and its encoding of keys (made by
    // mistake) is refused by every bootstrapper.
    let plain = Bootstrapper::new(p, &small_boot_params(None)).unwrap();
    assert!(plain.ephemeral_params().is_none());
    assert!(plain
        .gen_boot_keys(&s.sk, ChaCha20Rng::seed_from_u64(74))
        .unwrap()
        .is_none());
    assert!(is_invalid_field(serial::decode_boot_keys(
        &bytes, &plain, LIMITS
    )));
    let mistaken = serial::encode_boot_keys(&s.keys, &plain);
    assert_eq!(get_u64(&mistaken, EPH_FP), 0);
    assert!(is_invalid_field(serial::decode_boot_keys(
        &mistaken, &plain, LIMITS
    )));
    assert!(matches!(
        decode_err(serial::decode_boot_keys(&mistaken, &s.boot, LIMITS)),
        DecodeError::FingerprintMismatch { found: 0, .. }
    ));

    // Other kinds of object are not bootstrapping keys, and these are none of them.
    let mut keygen = KeyGenerator::with_rng(p, ChaCha20Rng::seed_from_u64(75));
    let sk = keygen.gen_secret_key();
    let foreign = [
        (ObjectKind::Params, serial::encode_params(p)),
        (
            ObjectKind::PublicKey,
            serial::encode_public_key(&keygen.gen_public_key(&sk), p),
        ),
        (
            ObjectKind::EvalKeySet,
            serial::encode_eval_keys(&keygen.gen_eval_keys(&sk, &[1], true), p),
        ),
        (
            ObjectKind::SecretKey,
            serial::encode_secret_key(&sk).to_vec(),
        ),
    ];
    for (kind, b) in &foreign {
        assert_eq!(
            decode_err(serial::decode_boot_keys(b, &s.boot, LIMITS)),
            DecodeError::WrongKind {
                expected: ObjectKind::BootKeys,
                found: kind.tag()
            }
        );
    }
    let wrong = |e: DecodeError| matches!(e, DecodeError::WrongKind { found: 7, .. });
    assert!(wrong(decode_err(serial::decode_eval_keys(
        &bytes, p, LIMITS
    ))));
    assert!(wrong(decode_err(serial::decode_public_key(
        &bytes, p, LIMITS
    ))));
    assert!(wrong(decode_err(serial::decode_secret_key(
        &bytes, p, LIMITS
    ))));
    assert!(wrong(decode_err(serial::decode_ciphertext(
        &bytes, p, LIMITS
    ))));
    assert!(wrong(decode_err(serial::decode_params_insecure(
        &bytes, LIMITS
    ))));
    // An evaluation key set relabelled as bootstrapping keys: refused by the fields.
    let eval = &foreign[2].1;
    let relabelled = edited(eval, |b| {
        b[10..12].copy_from_slice(&ObjectKind::BootKeys.tag().to_le_bytes())
    });
    assert!(serial::decode_boot_keys(&relabelled, &s.boot, LIMITS).is_err());
    assert_eq!(ObjectKind::from_tag(7), Some(ObjectKind::BootKeys));
    let msg = DecodeError::WrongKind {
        expected: ObjectKind::BootKeys,
        found: 3,
    }
    .to_string();
    assert!(msg.contains("bootstrapping key"), "{msg}");
}

/// Declared lengths of 2^62 and beyond are refused from the fields alone: no allocation of that
/// size (which would abort the process) and no time spent.
#[test]
fn huge_declared_lengths_fail_fast_without_allocating() {
    let s = small();
    let p = s.boot.params();
    let eph = s.boot.ephemeral_params().unwrap();
    let bytes = serial::encode_boot_keys(&s.keys, &s.boot);
    let dec = |b: &[u8]| serial::decode_boot_keys(b, &s.boot, LIMITS);
    let h = header(ObjectKind::BootKeys, p.fingerprint());
    let fp = eph.fingerprint().to_le_bytes();
    let n = (p.n() as u64).to_le_bytes();
    let (zero, one) = (0u64.to_le_bytes(), 1u64.to_le_bytes());
    let dense_at = SPARSE_LEVEL + switching_key_len(eph);
    let top = (p.max_level() as u64).to_le_bytes();
    let start = Instant::now();
    for v in [1u64 << 40, 1 << 62, u64::MAX] {
        let v = v.to_le_bytes();
        // to_sparse: a huge level; a huge digit count; one digit of huge limbs.
        for body in [
            [&fp[..], &v].concat(),
            [&fp[..], &zero, &v].concat(),
            [&fp[..], &zero, &one, &n, &v].concat(),
        ] {
            assert!(is_invalid_field(dec(&sealed(&h, &body))));
        }
        // to_dense, behind a valid to_sparse.
        let sparse = &bytes[EPH_FP..dense_at];
        let digits = (top_digits(p) as u64).to_le_bytes();
        for body in [
            [sparse, &v].concat(),
            [sparse, &top, &v].concat(),
            [sparse, &top, &digits, &n, &v].concat(),
        ] {
            assert!(is_invalid_field(dec(&sealed(&h, &body))));
        }
    }
    // The right counts with no residues behind them: truncated before any key is allocated.
    let limbs = (eph.qp_primes().len() as u64).to_le_bytes();
    let b = sealed(&h, &[&fp[..], &zero, &one, &n, &limbs].concat());
    assert_eq!(decode_err(dec(&b)), DecodeError::Truncated);
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "hostile lengths took {elapsed:?}"
    );
}
