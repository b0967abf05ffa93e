//! Helpers shared by the corruption tests of `hetal_ckks::serial` (`decode_corrupt.rs`,
//! `serial_boot.rs`): re-sealing edited encodings with a correct checksum, typed error checks,
//! and the corruption loops every object goes through.

#![allow(dead_code, reason = "each test crate uses its own subset")]

use hetal_ckks::serial::{
    DecodeError, DecodeLimits, ObjectKind, CHECKSUM_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use hetal_ckks::CkksError;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

pub const LIMITS: DecodeLimits = DecodeLimits { max_bytes: 1 << 26 };

/// Decodes and discards the result.
pub type Decoder<'a> = Box<dyn Fn(&[u8]) -> Result<(), CkksError> + 'a>;
/// Decodes and re-encodes, `None` if refused.
pub type Reencoder<'a> = Box<dyn Fn(&[u8]) -> Option<Vec<u8>> + 'a>;

/// Recomputes the trailing checksum, so that only the structural checks can refuse the input.
pub fn reseal(bytes: &mut [u8]) {
    let end = bytes.len() - CHECKSUM_LEN;
    let sum = Sha256::digest(&bytes[..end]);
    bytes[end..].copy_from_slice(&sum[..CHECKSUM_LEN]);
}

/// A valid header: magic, version, `kind`, fingerprint `fp`.
pub fn header(kind: ObjectKind, fp: u64) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&kind.tag().to_le_bytes());
    h.extend_from_slice(&fp.to_le_bytes());
    h
}

/// Header + `body` + a correct checksum.
pub fn sealed(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = [header, body, &[0u8; CHECKSUM_LEN]].concat();
    reseal(&mut out);
    out
}

pub fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Applies `edit` to a copy of `bytes`, reseals it, and returns it.
pub fn edited(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    edit(&mut b);
    reseal(&mut b);
    b
}

pub fn decode_err(r: Result<impl Sized, CkksError>) -> DecodeError {
    match r {
        Err(CkksError::Decode(e)) => e,
        Err(other) => panic!("expected a decode error, got {other:?}"),
        Ok(_) => panic!("expected a decode error, got a value"),
    }
}

pub fn is_invalid_field(r: Result<impl Sized, CkksError>) -> bool {
    matches!(decode_err(r), DecodeError::InvalidField(_))
}

/// Every prefix near both ends of `bytes`, and 2000 spread over it, is refused.
pub fn assert_truncations_rejected(
    name: &str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<(), CkksError>,
) {
    assert!(decode(bytes).is_ok(), "{name}: the valid encoding decodes");
    let len = bytes.len();
    let mut lengths: Vec<usize> = (0..len.min(HEADER_LEN + 64)).collect();
    lengths.extend((0..2000).map(|i| i * len / 2000));
    lengths.extend(len.saturating_sub(64)..len);
    for k in lengths {
        assert!(decode(&bytes[..k]).is_err(), "{name}: prefix of {k} bytes");
    }
}

/// The body cut short behind a valid header and a correct checksum is refused as a decode error.
pub fn assert_truncated_bodies_rejected(
    name: &str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<(), CkksError>,
) {
    let header = &bytes[..HEADER_LEN];
    let body = &bytes[HEADER_LEN..bytes.len() - CHECKSUM_LEN];
    let mut lengths: Vec<usize> = (0..body.len().min(128)).collect();
    lengths.extend((0..2000).map(|i| i * body.len() / 2000));
    for k in lengths {
        match decode(&sealed(header, &body[..k])) {
            Err(CkksError::Decode(_)) => {}
            other => panic!("{name}: body cut at {k}: {other:?}"),
        }
    }
}

/// `flips` single random bit flips, each refused.
pub fn assert_bit_flips_rejected(
    name: &str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<(), CkksError>,
    rng: &mut ChaCha20Rng,
    flips: usize,
) {
    let mut b = bytes.to_vec();
    for _ in 0..flips {
        let i = rng.random_range(0..b.len());
        let bit = 1u8 << rng.random_range(0..8);
        b[i] ^= bit;
        assert!(decode(&b).is_err(), "{name}: bit flip at byte {i}");
        b[i] ^= bit;
    }
}

/// `rounds` corruptions of several bytes (scattered, or a burst), each refused.
pub fn assert_multi_byte_corruptions_rejected(
    name: &str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<(), CkksError>,
    rng: &mut ChaCha20Rng,
    rounds: usize,
) {
    for round in 0..rounds {
        let mut b = bytes.to_vec();
        if round % 2 == 0 {
            // Scattered bytes.
            for _ in 0..rng.random_range(2..=16) {
                let i = rng.random_range(0..b.len());
                b[i] ^= rng.random_range(1..=255u8);
            }
        } else {
            // A burst of random bytes.
            let start = rng.random_range(0..b.len());
            let end = (start + rng.random_range(2..=64)).min(b.len());
            rng.fill(&mut b[start..end]);
        }
        if b != bytes {
            assert!(decode(&b).is_err(), "{name}: corruption round {round}");
        }
    }
}

/// `rounds` one-byte corruptions, resealed, mostly in the header and the first fields: they must
/// never panic, whatever is accepted re-encodes to the same bytes, and some are refused.
pub fn assert_resealed_corruptions_are_safe(
    name: &str,
    bytes: &[u8],
    again: impl Fn(&[u8]) -> Option<Vec<u8>>,
    rng: &mut ChaCha20Rng,
    rounds: usize,
) {
    let (mut accepted, mut refused) = (0, 0);
    // The structurally interesting part: the header and the first fields.
    let hot = (HEADER_LEN + 96).min(bytes.len() - CHECKSUM_LEN);
    for _ in 0..rounds {
        let b = edited(bytes, |b| {
            let i = if rng.random_bool(0.7) {
                rng.random_range(0..hot)
            } else {
                rng.random_range(0..b.len() - CHECKSUM_LEN)
            };
            b[i] ^= rng.random_range(1..=255u8);
        });
        match again(&b) {
            Some(out) => {
                assert_eq!(out, b, "{name}: an accepted input is canonical");
                accepted += 1;
            }
            None => refused += 1,
        }
    }
    assert!(
        refused > 0,
        "{name}: {accepted} accepted, {refused} refused"
    );
}
