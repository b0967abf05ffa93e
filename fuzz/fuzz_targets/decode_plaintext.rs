//! `serial::decode_plaintext` on arbitrary bytes must never panic. The bytes are tried as they are (the
//! header and checksum checks), then as a body behind a valid header and checksum (the field
//! checks); an accepted body must re-encode to the same bytes.

#![no_main]

use hetal_ckks::serial::{self, ObjectKind};
use hetal_ckks_fuzz::{params, sealed, LIMITS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = params();
    let _ = serial::decode_plaintext(data, p, LIMITS);
    let input = sealed(ObjectKind::Plaintext, p.fingerprint(), data);
    if let Ok(x) = serial::decode_plaintext(&input, p, LIMITS) {
        assert_eq!(
            serial::encode_plaintext(&x, p),
            input,
            "plaintext re-encodes differently"
        );
    }
});
