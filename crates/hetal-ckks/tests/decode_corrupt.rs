//! The binary format of `hetal_ckks::serial` against corrupted, truncated and hostile input.
//!
//! Parameters: the insecure N = 2^10 test set (tests only). Seeds are fixed.
//!
//! Two layers are tested separately: the checksum (every corruption of a valid encoding must be
//! refused), and the structural validation behind it, by re-sealing corrupted bodies with a
//! correct checksum so that only the field checks stand between the input and the decoder.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test fixtures")]

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_bit_flips_rejected, assert_multi_byte_corruptions_rejected,
    assert_resealed_corruptions_are_safe, assert_truncated_bodies_rejected,
    assert_truncations_rejected, decode_err, edited, get_u64, header, is_invalid_field, put_u64,
    reseal, sealed, Decoder, Reencoder, LIMITS,
};
use hetal_ckks::serial::{
    self, DecodeError, DecodeLimits, ObjectKind, CHECKSUM_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use hetal_ckks::{
    presets, Ciphertext, CkksError, Encoder, EvalKeySet, KeyGenerator, Params, ParamsLiteral,
    Plaintext, PublicKey, SecretDist, SecretKey,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

struct Fixture {
    params: Params,
    sk: SecretKey,
    pk: PublicKey,
    keys: EvalKeySet,
    pt: Plaintext,
    ct: Ciphertext,
    rng: ChaCha20Rng,
}

fn test_params() -> Params {
    Params::new_insecure(presets::insecure_test(10, 2)).unwrap()
}

fn fixture_for(params: Params, rotations: &[i64]) -> Fixture {
    let mut keygen = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(11));
    let sk = keygen.gen_secret_key();
    let pk = keygen.gen_public_key(&sk);
    let keys = keygen.gen_eval_keys(&sk, rotations, false);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let values: Vec<f64> = (0..8).map(|i| i as f64 / 8.0 - 0.5).collect();
    let enc = Encoder::new(&params);
    let pt = enc
        .encode_real(&values, 8, params.max_level(), params.default_scale())
        .unwrap();
    let ct = sk.encrypt(&pt, &mut rng).unwrap();
    Fixture {
        params,
        sk,
        pk,
        keys,
        pt,
        ct,
        rng,
    }
}

fn fixture() -> Fixture {
    fixture_for(test_params(), &[1])
}

/// Every object type: its name, a valid encoding, and a decoder that discards the result.
fn objects(f: &Fixture) -> Vec<(&'static str, Vec<u8>, Decoder<'_>)> {
    let p = &f.params;
    vec![
        (
            "params",
            serial::encode_params(p),
            Box::new(|b: &[u8]| serial::decode_params_insecure(b, LIMITS).map(drop)),
        ),
        (
            "public key",
            serial::encode_public_key(&f.pk, p),
            Box::new(move |b: &[u8]| serial::decode_public_key(b, p, LIMITS).map(drop)),
        ),
        (
            "eval keys",
            serial::encode_eval_keys(&f.keys, p),
            Box::new(move |b: &[u8]| serial::decode_eval_keys(b, p, LIMITS).map(drop)),
        ),
        (
            "ciphertext",
            serial::encode_ciphertext(&f.ct, p),
            Box::new(move |b: &[u8]| serial::decode_ciphertext(b, p, LIMITS).map(drop)),
        ),
        (
            "plaintext",
            serial::encode_plaintext(&f.pt, p),
            Box::new(move |b: &[u8]| serial::decode_plaintext(b, p, LIMITS).map(drop)),
        ),
        (
            "secret key",
            serial::encode_secret_key(&f.sk).to_vec(),
            Box::new(move |b: &[u8]| serial::decode_secret_key(b, p, LIMITS).map(drop)),
        ),
        (
            "eval keys, streamed",
            serial::encode_eval_keys(&f.keys, p),
            Box::new(move |b: &[u8]| read_eval_keys(b, p, LIMITS).map(drop)),
        ),
    ]
}

/// [`serial::read_eval_keys`] over a byte slice as a stream of its length.
fn read_eval_keys(b: &[u8], p: &Params, limits: DecodeLimits) -> Result<EvalKeySet, CkksError> {
    serial::read_eval_keys(&mut &b[..], b.len() as u64, p, limits)
}

// Layout offsets (see the module documentation of `serial`).
const CT_SCALE: usize = HEADER_LEN;
const CT_SLOTS: usize = HEADER_LEN + 8;
const CT_C0_N: usize = HEADER_LEN + 16;
const CT_C0_LIMBS: usize = CT_C0_N + 8;
const CT_C0_DATA: usize = CT_C0_LIMBS + 8;

#[test]
fn round_trip_every_object() {
    let mut f = fixture_for(test_params(), &[1, 2, -1]);
    let p = &f.params;

    let bytes = serial::encode_params(p);
    let back = serial::decode_params_insecure(&bytes, LIMITS).unwrap();
    assert_eq!(back, *p);
    assert_eq!(back.literal(), p.literal());
    assert!(back
        .qp_primes()
        .iter()
        .map(|q| q.value())
        .eq(p.qp_primes().iter().map(|q| q.value())));
    assert_eq!(serial::encode_params(&back), bytes);

    let bytes = serial::encode_public_key(&f.pk, p);
    let back = serial::decode_public_key(&bytes, p, LIMITS).unwrap();
    assert_eq!(back, f.pk);
    assert_eq!(serial::encode_public_key(&back, p), bytes);

    assert_eq!(f.keys.galois_elements().count(), 3);
    let bytes = serial::encode_eval_keys(&f.keys, p);
    let back = serial::decode_eval_keys(&bytes, p, LIMITS).unwrap();
    assert_eq!(back, f.keys);
    assert_eq!(serial::encode_eval_keys(&back, p), bytes);
    // Streamed: the same bytes out, the same keys in.
    let mut streamed = Vec::new();
    serial::write_eval_keys(&f.keys, p, &mut streamed).unwrap();
    assert_eq!(streamed, bytes);
    assert_eq!(read_eval_keys(&bytes, p, LIMITS).unwrap(), f.keys);

    // Galois keys below the top level (smaller), mixed with top-level ones.
    let mut mixed = f.keys.clone();
    let mut keygen = KeyGenerator::with_rng(p, ChaCha20Rng::seed_from_u64(13));
    keygen
        .add_rotation_keys_at(&mut mixed, &f.sk, &[3, 1], 0)
        .unwrap();
    let g3 = p.galois_element(3);
    let galois_bytes = |set: &EvalKeySet| set.size_bytes() - f.keys.size_bytes();
    // One digit over q_0 · P.
    assert_eq!(
        galois_bytes(&mixed),
        2 * (1 + p.p_primes().len()) * p.n() * 8
    );
    let bytes = serial::encode_eval_keys(&mixed, p);
    let back = serial::decode_eval_keys(&bytes, p, LIMITS).unwrap();
    assert_eq!(back, mixed);
    assert_eq!(serial::encode_eval_keys(&back, p), bytes);
    assert_eq!(read_eval_keys(&bytes, p, LIMITS).unwrap(), mixed);
    assert!(back.galois_elements().any(|g| g == g3));
    // Rotation 1 kept its top-level key.
    assert_eq!(back.galois_elements().count(), 4);

    // An empty key set.
    let empty = EvalKeySet::default();
    let bytes = serial::encode_eval_keys(&empty, p);
    assert_eq!(serial::decode_eval_keys(&bytes, p, LIMITS).unwrap(), empty);
    assert_eq!(read_eval_keys(&bytes, p, LIMITS).unwrap(), empty);

    let bytes = serial::encode_plaintext(&f.pt, p);
    let back = serial::decode_plaintext(&bytes, p, LIMITS).unwrap();
    assert_eq!(back, f.pt);

    let bytes = serial::encode_ciphertext(&f.ct, p);
    let back = serial::decode_ciphertext(&bytes, p, LIMITS).unwrap();
    assert_eq!(back, f.ct);

    // Every level.
    let enc = Encoder::new(p);
    for level in 0..=p.max_level() {
        let pt = enc
            .encode_real(&[0.25, -0.5], 2, level, p.default_scale())
            .unwrap();
        let ct = f.sk.encrypt(&pt, &mut f.rng).unwrap();
        let back = serial::decode_plaintext(&serial::encode_plaintext(&pt, p), p, LIMITS).unwrap();
        assert_eq!(back, pt);
        let back =
            serial::decode_ciphertext(&serial::encode_ciphertext(&ct, p), p, LIMITS).unwrap();
        assert_eq!(back, ct);
    }

    // The secret key: both keys decrypt both ways to the same plaintext.
    let bytes = serial::encode_secret_key(&f.sk);
    let sk2 = serial::decode_secret_key(&bytes, p, LIMITS).unwrap();
    assert_eq!(*serial::encode_secret_key(&sk2), *bytes);
    assert_eq!(sk2.decrypt(&f.ct).unwrap(), f.sk.decrypt(&f.ct).unwrap());
    let ct2 = sk2.encrypt(&f.pt, &mut f.rng).unwrap();
    assert_eq!(sk2.decrypt(&ct2).unwrap(), f.sk.decrypt(&ct2).unwrap());
}

#[test]
fn fixed_weight_secret_round_trips_and_weight_is_checked() {
    let lit = ParamsLiteral {
        secret: SecretDist::FixedWeight { h: 64 },
        ..presets::insecure_test(10, 2)
    };
    let params = Params::new_insecure(lit).unwrap();
    let f = fixture_for(params.clone(), &[]);
    let bytes = serial::encode_params(&params);
    assert_eq!(
        serial::decode_params_insecure(&bytes, LIMITS).unwrap(),
        params
    );
    let bytes = serial::encode_secret_key(&f.sk).to_vec();
    let sk2 = serial::decode_secret_key(&bytes, &params, LIMITS).unwrap();
    assert_eq!(sk2.decrypt(&f.ct).unwrap(), f.sk.decrypt(&f.ct).unwrap());
    // One more nonzero coefficient: weight 65.
    let coeffs = HEADER_LEN + 8;
    let zero = bytes[coeffs..].iter().position(|&b| b == 0).unwrap();
    let heavier = edited(&bytes, |b| b[coeffs + zero] = 1);
    assert!(is_invalid_field(serial::decode_secret_key(
        &heavier, &params, LIMITS
    )));
}

#[test]
fn every_truncation_is_rejected() {
    let f = fixture();
    for (name, bytes, decode) in objects(&f) {
        assert_truncations_rejected(name, &bytes, decode);
    }
}

#[test]
fn truncated_bodies_with_valid_checksums_are_rejected() {
    let f = fixture();
    for (name, bytes, decode) in objects(&f) {
        assert_truncated_bodies_rejected(name, &bytes, decode);
    }
}

#[test]
fn single_bit_flips_are_rejected() {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    for (name, bytes, decode) in objects(&f) {
        assert_bit_flips_rejected(name, &bytes, decode, &mut rng, 2000);
    }
}

#[test]
fn multi_byte_corruptions_are_rejected() {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    for (name, bytes, decode) in objects(&f) {
        assert_multi_byte_corruptions_rejected(name, &bytes, decode, &mut rng, 500);
    }
}

/// With the checksum recomputed, corruptions may produce valid objects (a changed residue that
/// stays below its prime): they must never panic, and whatever is accepted re-encodes to the same
/// bytes.
#[test]
fn resealed_corruptions_never_panic_and_accepted_inputs_are_canonical() {
    let f = fixture();
    let p = &f.params;
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let reencode: Vec<Reencoder<'_>> = vec![
        Box::new(|b| {
            serial::decode_params_insecure(b, LIMITS)
                .ok()
                .map(|x| serial::encode_params(&x))
        }),
        Box::new(|b| {
            serial::decode_public_key(b, p, LIMITS)
                .ok()
                .map(|x| serial::encode_public_key(&x, p))
        }),
        Box::new(|b| {
            serial::decode_eval_keys(b, p, LIMITS)
                .ok()
                .map(|x| serial::encode_eval_keys(&x, p))
        }),
        Box::new(|b| {
            serial::decode_ciphertext(b, p, LIMITS)
                .ok()
                .map(|x| serial::encode_ciphertext(&x, p))
        }),
        Box::new(|b| {
            serial::decode_plaintext(b, p, LIMITS)
                .ok()
                .map(|x| serial::encode_plaintext(&x, p))
        }),
        Box::new(|b| {
            serial::decode_secret_key(b, p, LIMITS)
                .ok()
                .map(|x| serial::encode_secret_key(&x).to_vec())
        }),
        Box::new(|b| {
            read_eval_keys(b, p, LIMITS)
                .ok()
                .map(|x| serial::encode_eval_keys(&x, p))
        }),
    ];
    for ((name, bytes, _), again) in objects(&f).into_iter().zip(reencode) {
        assert_resealed_corruptions_are_safe(name, &bytes, again, &mut rng, 300);
    }
}

#[test]
fn size_limit_is_checked_first() {
    let f = fixture();
    for (name, bytes, _) in objects(&f) {
        let len = bytes.len();
        let tight = DecodeLimits { max_bytes: len - 1 };
        let p = &f.params;
        let err = match name {
            "params" => decode_err(serial::decode_params_insecure(&bytes, tight)),
            "public key" => decode_err(serial::decode_public_key(&bytes, p, tight)),
            "eval keys" => decode_err(serial::decode_eval_keys(&bytes, p, tight)),
            "eval keys, streamed" => decode_err(read_eval_keys(&bytes, p, tight)),
            "ciphertext" => decode_err(serial::decode_ciphertext(&bytes, p, tight)),
            "plaintext" => decode_err(serial::decode_plaintext(&bytes, p, tight)),
            _ => decode_err(serial::decode_secret_key(&bytes, p, tight)),
        };
        assert_eq!(
            err,
            DecodeError::TooLarge {
                limit: len - 1,
                needed: len
            },
            "{name}"
        );
    }
    // Exactly the size is fine; garbage above the limit is refused before it is looked at.
    let bytes = serial::encode_ciphertext(&f.ct, &f.params);
    let exact = DecodeLimits::new(bytes.len());
    assert!(serial::decode_ciphertext(&bytes, &f.params, exact).is_ok());
    let garbage = vec![0xAAu8; 1000];
    assert_eq!(
        decode_err(serial::decode_ciphertext(
            &garbage,
            &f.params,
            DecodeLimits::new(999)
        )),
        DecodeError::TooLarge {
            limit: 999,
            needed: 1000
        }
    );
}

#[test]
fn insecure_params_need_the_insecure_decoder() {
    let insecure = test_params();
    let bytes = serial::encode_params(&insecure);
    assert!(matches!(
        serial::decode_params(&bytes, LIMITS),
        Err(CkksError::Insecure { .. })
    ));
    assert_eq!(
        serial::decode_params_insecure(&bytes, LIMITS).unwrap(),
        insecure
    );

    // A small secure set (N = 2^12, log QP ≈ 90 ≤ 109) goes through the secure decoder.
    let secure = Params::new(ParamsLiteral {
        log_n: 12,
        log_q: vec![30, 25],
        log_p: vec![35],
        dnum: 2,
        log_scale: 25,
        secret: SecretDist::Ternary,
        error_std: 3.2,
    })
    .unwrap();
    let bytes = serial::encode_params(&secure);
    let back = serial::decode_params(&bytes, LIMITS).unwrap();
    assert!(back.is_secure());
    assert_eq!(back, secure);

    // A weakened error deviation, resealed: refused as insecure, not as corrupted.
    let error_std_at = HEADER_LEN + 4 + 4 + 8 + 1;
    assert_eq!(get_u64(&bytes, error_std_at), 3.2f64.to_bits());
    let weak = edited(&bytes, |b| put_u64(b, error_std_at, 1.0f64.to_bits()));
    assert!(matches!(
        serial::decode_params(&weak, LIMITS),
        Err(CkksError::Insecure { .. })
    ));
    // The insecure decoder rebuilds it, but the header fingerprint is that of σ = 3.2.
    assert!(matches!(
        decode_err(serial::decode_params_insecure(&weak, LIMITS)),
        DecodeError::FingerprintMismatch { .. }
    ));
}

#[test]
fn params_structure_is_checked() {
    let p = test_params();
    let bytes = serial::encode_params(&p);
    let dec = |b: &[u8]| serial::decode_params_insecure(b, LIMITS);
    let fp_at = HEADER_LEN - 8;
    // Header fingerprint.
    let b = edited(&bytes, |b| put_u64(b, fp_at, p.fingerprint() ^ 1));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::FingerprintMismatch {
            expected: p.fingerprint(),
            found: p.fingerprint() ^ 1
        }
    );
    // A stored prime that is not the regenerated one (the last 8 body bytes: the last P prime).
    let last_prime = bytes.len() - CHECKSUM_LEN - 8;
    let b = edited(&bytes, |b| {
        let q = get_u64(b, last_prime);
        put_u64(b, last_prime, q - 2048);
    });
    assert!(is_invalid_field(dec(&b)));
    // Secret tag.
    let b = edited(&bytes, |b| b[HEADER_LEN + 16] = 7);
    assert!(is_invalid_field(dec(&b)));
    // log_n out of range, dnum 0: refused by the parameter checks.
    let b = edited(&bytes, |b| b[HEADER_LEN] = 40);
    assert!(is_invalid_field(dec(&b)));
    let b = edited(&bytes, |b| put_u64(b, HEADER_LEN + 8, 0));
    assert!(is_invalid_field(dec(&b)));
    // NaN error deviation.
    let b = edited(&bytes, |b| put_u64(b, HEADER_LEN + 17, f64::NAN.to_bits()));
    assert!(is_invalid_field(dec(&b)));
    // Prime counts: zero, huge, and more than the bytes left.
    let nq_at = HEADER_LEN + 25;
    for count in [0u32, u32::MAX, 256, 200] {
        let b = edited(&bytes, |b| {
            b[nq_at..nq_at + 4].copy_from_slice(&count.to_le_bytes())
        });
        assert!(dec(&b).is_err(), "log_q count {count}");
    }
    // Trailing bytes.
    let mut b = bytes.clone();
    b.splice(b.len() - CHECKSUM_LEN..b.len() - CHECKSUM_LEN, [0u8; 3]);
    reseal(&mut b);
    assert_eq!(decode_err(dec(&b)), DecodeError::TrailingBytes);
}

#[test]
fn header_is_checked() {
    let f = fixture();
    let p = &f.params;
    let bytes = serial::encode_ciphertext(&f.ct, p);
    let dec = |b: &[u8]| serial::decode_ciphertext(b, p, LIMITS);
    assert_eq!(&bytes[..8], &MAGIC);
    let b = edited(&bytes, |b| b[0] = b'X');
    assert_eq!(decode_err(dec(&b)), DecodeError::BadMagic);
    let b = edited(&bytes, |b| {
        b[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes())
    });
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::UnsupportedVersion {
            found: FORMAT_VERSION + 1
        }
    );
    let b = edited(&bytes, |b| b[10..12].copy_from_slice(&99u16.to_le_bytes()));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::WrongKind {
            expected: ObjectKind::Ciphertext,
            found: 99
        }
    );
    // Another kind's valid encoding.
    assert_eq!(
        decode_err(serial::decode_plaintext(&bytes, p, LIMITS)),
        DecodeError::WrongKind {
            expected: ObjectKind::Plaintext,
            found: ObjectKind::Ciphertext.tag()
        }
    );
    // A secret key is not a public key, nor evaluation keys.
    let sk_bytes = serial::encode_secret_key(&f.sk);
    assert!(matches!(
        decode_err(serial::decode_eval_keys(&sk_bytes, p, LIMITS)),
        DecodeError::WrongKind { .. }
    ));
    assert!(matches!(
        decode_err(serial::decode_public_key(&sk_bytes, p, LIMITS)),
        DecodeError::WrongKind { .. }
    ));
    // Another fingerprint, in the header or by the parameters given.
    let b = edited(&bytes, |b| put_u64(b, 12, 0x1234));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::FingerprintMismatch {
            expected: p.fingerprint(),
            found: 0x1234
        }
    );
    let other = Params::new_insecure(presets::insecure_test(10, 3)).unwrap();
    assert!(matches!(
        decode_err(serial::decode_ciphertext(&bytes, &other, LIMITS)),
        DecodeError::FingerprintMismatch { .. }
    ));
    // The checksum itself.
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert_eq!(decode_err(dec(&b)), DecodeError::BadChecksum);
}

#[test]
fn ciphertext_structure_is_checked() {
    let f = fixture();
    let p = &f.params;
    let bytes = serial::encode_ciphertext(&f.ct, p);
    let dec = |b: &[u8]| serial::decode_ciphertext(b, p, LIMITS);
    let limbs = p.max_level() as u64 + 1;
    assert_eq!(get_u64(&bytes, CT_C0_LIMBS), limbs);
    let c0_len = limbs as usize * p.n() * 8;
    let c1_n = CT_C0_DATA + c0_len;
    let c1_limbs = c1_n + 8;

    // Scale: NaN, infinite, below 1, negative.
    for s in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5, 0.0, -1.0] {
        let b = edited(&bytes, |b| put_u64(b, CT_SCALE, s.to_bits()));
        assert!(is_invalid_field(dec(&b)), "scale {s}");
    }
    // Slots: zero, not a power of two, above N/2, huge.
    for s in [0, 3, 6, p.n() as u64, 1 << 40, u64::MAX] {
        let b = edited(&bytes, |b| put_u64(b, CT_SLOTS, s));
        assert!(is_invalid_field(dec(&b)), "slots {s}");
    }
    // Ring degree.
    for n in [0, 512, 2048, u64::MAX] {
        let b = edited(&bytes, |b| put_u64(b, CT_C0_N, n));
        assert!(is_invalid_field(dec(&b)), "n {n}");
    }
    // Limb counts: zero, one more than the top level, huge.
    for l in [0, limbs + 1, 1 << 40, u64::MAX] {
        let b = edited(&bytes, |b| put_u64(b, CT_C0_LIMBS, l));
        assert!(is_invalid_field(dec(&b)), "limbs {l}");
    }
    // Fewer limbs than stored: the remaining bytes do not parse as c1.
    let b = edited(&bytes, |b| put_u64(b, CT_C0_LIMBS, limbs - 1));
    assert!(dec(&b).is_err());
    // c1 with a different limb count from c0.
    let b = edited(&bytes, |b| put_u64(b, c1_limbs, limbs - 1));
    assert!(is_invalid_field(dec(&b)));
    // Residues equal to or above their prime, in c0 and in c1.
    let q0 = p.q_primes(0)[0].value();
    let b = edited(&bytes, |b| put_u64(b, CT_C0_DATA, q0));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::ResidueOutOfRange { limb: 0, index: 0 }
    );
    let q_top = p.q_primes(p.max_level())[p.max_level()].value();
    let last_c0 = CT_C0_DATA + c0_len - 8;
    let b = edited(&bytes, |b| put_u64(b, last_c0, q_top));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::ResidueOutOfRange {
            limb: p.max_level(),
            index: p.n() - 1
        }
    );
    // q_top - 1 is in range for the last limb: accepted.
    let b = edited(&bytes, |b| put_u64(b, last_c0, q_top - 1));
    assert!(dec(&b).is_ok());
    let b = edited(&bytes, |b| put_u64(b, c1_limbs + 8 + 5 * 8, u64::MAX));
    assert_eq!(
        decode_err(dec(&b)),
        DecodeError::ResidueOutOfRange { limb: 0, index: 5 }
    );
    // Trailing bytes and missing bytes.
    let mut b = bytes.clone();
    b.splice(b.len() - CHECKSUM_LEN..b.len() - CHECKSUM_LEN, [0u8; 8]);
    reseal(&mut b);
    assert_eq!(decode_err(dec(&b)), DecodeError::TrailingBytes);
    let mut b = bytes.clone();
    b.drain(b.len() - CHECKSUM_LEN - 8..b.len() - CHECKSUM_LEN);
    reseal(&mut b);
    assert_eq!(decode_err(dec(&b)), DecodeError::Truncated);

    // The plaintext has the same checks.
    let pt_bytes = serial::encode_plaintext(&f.pt, p);
    let b = edited(&pt_bytes, |b| put_u64(b, CT_SCALE, f64::NAN.to_bits()));
    assert!(is_invalid_field(serial::decode_plaintext(&b, p, LIMITS)));
    let b = edited(&pt_bytes, |b| put_u64(b, CT_SLOTS, 5));
    assert!(is_invalid_field(serial::decode_plaintext(&b, p, LIMITS)));
    let b = edited(&pt_bytes, |b| put_u64(b, CT_C0_LIMBS, limbs + 1));
    assert!(is_invalid_field(serial::decode_plaintext(&b, p, LIMITS)));
    let b = edited(&pt_bytes, |b| put_u64(b, CT_C0_DATA + 8, q0));
    assert_eq!(
        decode_err(serial::decode_plaintext(&b, p, LIMITS)),
        DecodeError::ResidueOutOfRange { limb: 0, index: 1 }
    );
}

#[test]
fn key_structure_is_checked() {
    let f = fixture_for(test_params(), &[1, 2]);
    let p = &f.params;
    let qp = p.qp_primes().len() as u64;

    // Public key: exactly #QP limbs, residues below their primes.
    let pk = serial::encode_public_key(&f.pk, p);
    let dec_pk = |b: &[u8]| serial::decode_public_key(b, p, LIMITS);
    let limbs_at = HEADER_LEN + 8;
    assert_eq!(get_u64(&pk, limbs_at), qp);
    for l in [0, 1, qp - 1, qp + 1, 1 << 40] {
        let b = edited(&pk, |b| put_u64(b, limbs_at, l));
        assert!(is_invalid_field(dec_pk(&b)), "limbs {l}");
    }
    // The last limb is a special prime.
    let p_last = p.p_primes().last().unwrap().value();
    let at = HEADER_LEN + 16 + (qp as usize - 1) * p.n() * 8;
    let b = edited(&pk, |b| put_u64(b, at, p_last));
    assert_eq!(
        decode_err(dec_pk(&b)),
        DecodeError::ResidueOutOfRange {
            limb: qp as usize - 1,
            index: 0
        }
    );

    // Evaluation keys, decoded from a slice and streamed.
    eval_key_structure_is_checked(&f, |b| serial::decode_eval_keys(b, p, LIMITS));
    eval_key_structure_is_checked(&f, |b| read_eval_keys(b, p, LIMITS));

    // Secret key: coefficients in {-1, 0, 1}, and exactly N of them.
    let sk = serial::encode_secret_key(&f.sk).to_vec();
    let dec_sk = |b: &[u8]| serial::decode_secret_key(b, p, LIMITS).map(drop);
    assert!(dec_sk(&sk).is_ok());
    for v in [2u8, 0x80, 0xFE] {
        let b = edited(&sk, |b| b[HEADER_LEN + 8 + 17] = v);
        assert!(is_invalid_field(dec_sk(&b)), "coefficient byte {v:#x}");
    }
    for n in [0, p.n() as u64 - 1, p.n() as u64 + 1, 1 << 40, u64::MAX] {
        let b = edited(&sk, |b| put_u64(b, HEADER_LEN, n));
        assert!(is_invalid_field(dec_sk(&b)), "n {n}");
    }
}

/// The field checks of an evaluation key set, through `dec_ek`.
fn eval_key_structure_is_checked(
    f: &Fixture,
    dec_ek: impl Fn(&[u8]) -> Result<EvalKeySet, CkksError>,
) {
    let p = &f.params;
    let qp = p.qp_primes().len() as u64;
    let ek = serial::encode_eval_keys(&f.keys, p);
    let top = p.max_level() as u64;
    let digits = (p.max_level() + 1).div_ceil((p.max_level() + 1).div_ceil(p.dnum()));
    let poly_len = 16 + qp as usize * p.n() * 8;
    let key_len = 16 + digits * 2 * poly_len;
    let flag_at = HEADER_LEN;
    let level_at = flag_at + 1;
    let digits_at = level_at + 8;
    let count_at = level_at + key_len;
    let first_g_at = count_at + 8;
    let second_g_at = first_g_at + 8 + key_len;
    assert_eq!(ek[flag_at], 1);
    assert_eq!(get_u64(&ek, level_at), top);
    assert_eq!(get_u64(&ek, digits_at), digits as u64);
    assert_eq!(get_u64(&ek, count_at), 2);
    assert_eq!(get_u64(&ek, first_g_at), 5);
    assert_eq!(get_u64(&ek, second_g_at), 25);
    assert_eq!(get_u64(&ek, first_g_at + 8), top);

    let b = edited(&ek, |b| b[flag_at] = 2);
    assert!(is_invalid_field(dec_ek(&b)));
    for d in [0, digits as u64 + 1, 1 << 40] {
        let b = edited(&ek, |b| put_u64(b, digits_at, d));
        assert!(is_invalid_field(dec_ek(&b)), "digits {d}");
    }
    // The relinearization key serves the top level; a Galois key no level above it.
    for l in [0, top + 1, u64::MAX] {
        let b = edited(&ek, |b| put_u64(b, level_at, l));
        assert!(
            is_invalid_field(dec_ek(&b)),
            "relinearization key level {l}"
        );
    }
    for l in [top + 1, 1 << 40] {
        let b = edited(&ek, |b| put_u64(b, first_g_at + 8, l));
        assert!(is_invalid_field(dec_ek(&b)), "Galois key level {l}");
    }
    // A lower level with the top level's digits and limbs: the digits or the limbs mismatch.
    let b = edited(&ek, |b| put_u64(b, first_g_at + 8, 0));
    assert!(is_invalid_field(dec_ek(&b)), "Galois key level 0");
    let two_n = 2 * p.n() as u64;
    for g in [0, 4, two_n + 1, two_n - 1 + 2, u64::MAX - 1] {
        let b = edited(&ek, |b| put_u64(b, first_g_at, g));
        assert!(is_invalid_field(dec_ek(&b)), "element {g}");
    }
    // Out of order and repeated elements.
    for g in [5, 3] {
        let b = edited(&ek, |b| put_u64(b, second_g_at, g));
        assert!(is_invalid_field(dec_ek(&b)), "second element {g}");
    }
    // 2N − 1 (conjugation) is allowed.
    let b = edited(&ek, |b| put_u64(b, second_g_at, two_n - 1));
    assert!(dec_ek(&b).unwrap().galois_elements().eq([5, two_n - 1]));
    // Counts: more keys than exist, more keys than bytes, fewer keys than stored.
    for c in [p.n() as u64 + 1, 1 << 40, u64::MAX] {
        let b = edited(&ek, |b| put_u64(b, count_at, c));
        assert!(is_invalid_field(dec_ek(&b)), "count {c}");
    }
    let b = edited(&ek, |b| put_u64(b, count_at, 3));
    assert_eq!(decode_err(dec_ek(&b)), DecodeError::Truncated);
    let b = edited(&ek, |b| put_u64(b, count_at, 1));
    assert_eq!(decode_err(dec_ek(&b)), DecodeError::TrailingBytes);
    // No relinearization key: the rest no longer parses.
    let b = edited(&ek, |b| b[flag_at] = 0);
    assert!(dec_ek(&b).is_err());
    // A residue in the second Galois key's last digit.
    let at = second_g_at + 8 + key_len - 8;
    let b = edited(&ek, |b| put_u64(b, at, u64::MAX));
    assert!(matches!(
        decode_err(dec_ek(&b)),
        DecodeError::ResidueOutOfRange { .. }
    ));
}

/// Declared lengths far beyond the input must be refused from the header fields alone: no
/// allocation of that size (which would abort the process) and no time spent.
#[test]
fn huge_declared_lengths_fail_fast_without_allocating() {
    let f = fixture();
    let p = &f.params;
    let start = Instant::now();
    let huge = [1u64 << 40, 1 << 62, u64::MAX];

    let fp = p.fingerprint();
    let n = (p.n() as u64).to_le_bytes();
    for &v in &huge {
        let v = v.to_le_bytes();
        // Ciphertext with 2^40 limbs and no data.
        let body = [
            &1e12f64.to_bits().to_le_bytes()[..],
            &4u64.to_le_bytes(),
            &n,
            &v,
        ]
        .concat();
        let b = sealed(&header(ObjectKind::Ciphertext, fp), &body);
        assert!(is_invalid_field(serial::decode_ciphertext(&b, p, LIMITS)));
        // Public key.
        let b = sealed(&header(ObjectKind::PublicKey, fp), &[&n[..], &v].concat());
        assert!(is_invalid_field(serial::decode_public_key(&b, p, LIMITS)));
        // Evaluation keys: huge key level, huge digit count, huge Galois key count.
        let top = (p.max_level() as u64).to_le_bytes();
        for body in [[&[1u8][..], &v].concat(), [&[1u8][..], &top, &v].concat()] {
            let b = sealed(&header(ObjectKind::EvalKeySet, fp), &body);
            assert!(is_invalid_field(serial::decode_eval_keys(&b, p, LIMITS)));
            assert!(is_invalid_field(read_eval_keys(&b, p, LIMITS)));
        }
        let b = sealed(
            &header(ObjectKind::EvalKeySet, fp),
            &[&[0u8][..], &v].concat(),
        );
        assert!(is_invalid_field(serial::decode_eval_keys(&b, p, LIMITS)));
        assert!(is_invalid_field(read_eval_keys(&b, p, LIMITS)));
        // Secret key with 2^40 coefficients.
        let b = sealed(&header(ObjectKind::SecretKey, fp), &v);
        assert!(is_invalid_field(serial::decode_secret_key(&b, p, LIMITS)));
    }
    // The largest admissible Galois key count (N) with no key data: refused as truncated before
    // any key is read.
    let b = sealed(
        &header(ObjectKind::EvalKeySet, fp),
        &[&[0u8][..], &(p.n() as u64).to_le_bytes()].concat(),
    );
    assert_eq!(
        decode_err(serial::decode_eval_keys(&b, p, LIMITS)),
        DecodeError::Truncated
    );
    assert_eq!(
        decode_err(read_eval_keys(&b, p, LIMITS)),
        DecodeError::Truncated
    );
    // Params with u32::MAX ciphertext primes.
    let mut body = Vec::new();
    body.extend_from_slice(&10u32.to_le_bytes());
    body.extend_from_slice(&40u32.to_le_bytes());
    body.extend_from_slice(&1u64.to_le_bytes());
    body.push(0);
    body.extend_from_slice(&3.2f64.to_bits().to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    let b = sealed(&header(ObjectKind::Params, 0), &body);
    assert!(is_invalid_field(serial::decode_params_insecure(&b, LIMITS)));
    // And MAX_PRIMES of them declared, with no sizes following.
    let len = body.len();
    body[len - 4..].copy_from_slice(&(serial::MAX_PRIMES as u32).to_le_bytes());
    let b = sealed(&header(ObjectKind::Params, 0), &body);
    assert_eq!(
        decode_err(serial::decode_params_insecure(&b, LIMITS)),
        DecodeError::Truncated
    );

    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "hostile lengths took {elapsed:?}"
    );
}

/// Error values are typed, comparable and print something useful.
#[test]
fn errors_are_typed_and_readable() {
    let e: CkksError = DecodeError::TooLarge {
        limit: 10,
        needed: 20,
    }
    .into();
    assert_eq!(e.clone(), e);
    let msg = e.to_string();
    assert!(msg.contains("20") && msg.contains("10"), "{msg}");
    let msg = DecodeError::WrongKind {
        expected: ObjectKind::SecretKey,
        found: 4,
    }
    .to_string();
    assert!(msg.contains("secret key"), "{msg}");
    assert_eq!(ObjectKind::from_tag(3), Some(ObjectKind::EvalKeySet));
    assert_eq!(ObjectKind::from_tag(0), None);
    assert_eq!(ObjectKind::from_tag(7), Some(ObjectKind::BootKeys));
    assert_eq!(ObjectKind::from_tag(8), None);
}
