//! `serial::decode_eval_keys` and its streaming twin `serial::read_eval_keys` on arbitrary bytes
//! must never panic, and must accept exactly the same inputs with the same keys. The bytes are
//! tried as they are (the header and checksum checks), then as a body behind a valid header and
//! checksum (the field checks); an accepted body must re-encode to the same bytes.

#![no_main]

use hetal_ckks::serial::{self, ObjectKind};
use hetal_ckks_fuzz::{params, sealed, LIMITS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = params();
    let sealed_input = sealed(ObjectKind::EvalKeySet, p.fingerprint(), data);
    for input in [data, &sealed_input[..]] {
        let decoded = serial::decode_eval_keys(input, p, LIMITS).ok();
        let streamed = serial::read_eval_keys(&mut &input[..], input.len() as u64, p, LIMITS).ok();
        assert_eq!(decoded, streamed, "slice and stream decoders disagree");
        if let Some(x) = decoded {
            assert_eq!(
                serial::encode_eval_keys(&x, p),
                input,
                "evaluation key set re-encodes differently"
            );
        }
    }
});
