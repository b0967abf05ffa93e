//! Writes a seed corpus for the fuzz targets: for each object, the body of a valid encoding (which
//! the targets seal with a valid header and checksum) and the whole encoding.
//!
//! `cargo run --example seed_corpus` (from `fuzz/`) writes to `corpus/<target>/`.

use std::fs;
use std::path::Path;

use hetal_ckks::serial::{self, CHECKSUM_LEN, HEADER_LEN};
use hetal_ckks::{Encoder, KeyGenerator};
use hetal_ckks_fuzz::{bootstrapper, params};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn write(target: &str, encoding: &[u8]) -> std::io::Result<()> {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir)?;
    let body = encoding
        .get(HEADER_LEN..encoding.len().saturating_sub(CHECKSUM_LEN))
        .unwrap_or_default();
    fs::write(dir.join("seed_body"), body)?;
    fs::write(dir.join("seed_full"), encoding)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let p = params();
    let mut keygen = KeyGenerator::with_rng(p, ChaCha20Rng::seed_from_u64(1));
    let sk = keygen.gen_secret_key();
    let pk = keygen.gen_public_key(&sk);
    let keys = keygen.gen_eval_keys(&sk, &[1], true);
    let pt = Encoder::new(p).encode_real(&[0.5, -0.25], 2, p.max_level(), p.default_scale())?;
    let ct = sk.encrypt(&pt, &mut ChaCha20Rng::seed_from_u64(2))?;
    write("decode_params", &serial::encode_params(p))?;
    write("decode_public_key", &serial::encode_public_key(&pk, p))?;
    write("decode_eval_keys", &serial::encode_eval_keys(&keys, p))?;
    write("decode_ciphertext", &serial::encode_ciphertext(&ct, p))?;
    write("decode_plaintext", &serial::encode_plaintext(&pt, p))?;
    write("decode_secret_key", &serial::encode_secret_key(&sk))?;
    let boot = bootstrapper();
    let boot_sk =
        KeyGenerator::with_rng(boot.params(), ChaCha20Rng::seed_from_u64(3)).gen_secret_key();
    if let Some(keys) = boot.gen_boot_keys(&boot_sk, ChaCha20Rng::seed_from_u64(4))? {
        write("decode_boot_keys", &serial::encode_boot_keys(&keys, boot))?;
    }
    Ok(())
}
