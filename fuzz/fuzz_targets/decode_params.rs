//! `serial::decode_params` and `serial::decode_params_insecure` on arbitrary bytes must never
//! panic. The bytes are tried as they are (the header and checksum checks), then as a body behind
//! a valid header and checksum (the field checks and the rebuilding of the parameters, with
//! whatever literal the fuzzer writes); accepted parameters must re-encode to the same bytes.

#![no_main]

use hetal_ckks::serial::{self, ObjectKind};
use hetal_ckks_fuzz::{params, sealed, LIMITS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serial::decode_params(data, LIMITS);
    let _ = serial::decode_params_insecure(data, LIMITS);
    // The header carries the fingerprint of the fixed set, so a body describing exactly that set
    // is accepted by the insecure decoder.
    let input = sealed(ObjectKind::Params, params().fingerprint(), data);
    if let Ok(x) = serial::decode_params(&input, LIMITS) {
        assert!(
            x.is_secure(),
            "the secure decoder returned insecure parameters"
        );
        assert_eq!(serial::encode_params(&x), input);
    }
    if let Ok(x) = serial::decode_params_insecure(&input, LIMITS) {
        assert_eq!(
            serial::encode_params(&x),
            input,
            "parameters re-encode differently"
        );
    }
});
