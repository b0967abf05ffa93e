//! Shared fixtures of the fuzz targets: one small insecure parameter set, and a helper that puts
//! arbitrary bytes behind a valid header and checksum so the fuzzer reaches the field checks.

use std::sync::OnceLock;

use hetal_ckks::serial::{
    DecodeLimits, ObjectKind, CHECKSUM_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use hetal_ckks::{presets, Params};
use sha2::{Digest, Sha256};

/// The limit every target decodes under.
pub const LIMITS: DecodeLimits = DecodeLimits::new(1 << 20);

/// The fixed parameter set: N = 16, two ciphertext primes, three special primes. **Insecure**;
/// small so that valid objects are a few hundred bytes.
pub fn params() -> &'static Params {
    static PARAMS: OnceLock<Params> = OnceLock::new();
    PARAMS.get_or_init(
        || match Params::new_insecure(presets::insecure_test(4, 1)) {
            Ok(p) => p,
            Err(e) => panic!("fuzz parameters: {e}"),
        },
    )
}

/// `body` behind a valid header of `kind` and `fingerprint`, followed by the correct checksum.
pub fn sealed(kind: ObjectKind, fingerprint: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&kind.tag().to_le_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(body);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum[..CHECKSUM_LEN]);
    out
}
