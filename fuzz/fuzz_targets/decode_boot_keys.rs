//! `serial::decode_boot_keys` on arbitrary bytes must never panic. The bytes are tried as they are
//! (the header and checksum checks), then as a body behind a valid header and checksum (the field
//! checks); an accepted body must re-encode to the same bytes.

#![no_main]

use hetal_ckks::serial::{self, ObjectKind};
use hetal_ckks_fuzz::{bootstrapper, sealed, LIMITS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let boot = bootstrapper();
    let _ = serial::decode_boot_keys(data, boot, LIMITS);
    let input = sealed(ObjectKind::BootKeys, boot.params().fingerprint(), data);
    if let Ok(x) = serial::decode_boot_keys(&input, boot, LIMITS) {
        assert_eq!(
            serial::encode_boot_keys(&x, boot),
            input,
            "bootstrapping keys re-encode differently"
        );
    }
});
