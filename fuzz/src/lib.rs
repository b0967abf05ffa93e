//! Shared fixtures of the fuzz targets: one small insecure parameter set (and a bootstrapper for
//! the bootstrapping keys), and a helper that puts arbitrary bytes behind a valid header and
//! checksum so the fuzzer reaches the field checks.

use std::sync::OnceLock;

use hetal_ckks::serial::{
    DecodeLimits, ObjectKind, CHECKSUM_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use hetal_ckks::{presets, BootParams, Bootstrapper, Params};
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

/// A bootstrapper with sparse-secret encapsulation over N = 16 (four levels: one per transform,
/// two for a degree-3 EvalMod), for the bootstrapping keys. **Insecure**; only the shapes of its
/// keys matter (`to_sparse` over `q_0` and one special prime, `to_dense` over the 8 main primes).
pub fn bootstrapper() -> &'static Bootstrapper {
    static BOOT: OnceLock<Bootstrapper> = OnceLock::new();
    BOOT.get_or_init(|| {
        let boot = BootParams {
            slots: 4,
            cts_levels: 1,
            stc_levels: 1,
            eval_mod_degree: 3,
            arcsine_degree: None,
            ephemeral_weight: Some(8),
            ..BootParams::default()
        };
        match Params::new_insecure(presets::insecure_test(4, 4))
            .and_then(|p| Bootstrapper::new(&p, &boot))
        {
            Ok(b) => b,
            Err(e) => panic!("fuzz bootstrapper: {e}"),
        }
    })
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
