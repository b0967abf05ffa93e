//! A versioned binary format for parameters, keys, plaintexts and ciphertexts, whose decoders
//! are safe on attacker-controlled input.
//!
//! # Layout
//!
//! Every integer is little-endian; `f64` values are stored as their IEEE-754 bit pattern (u64).
//! An encoded object is
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic [`MAGIC`], `b"HETALCK\0"` |
//! | 2 | format version, u16 ([`FORMAT_VERSION`] = 2; version 1 had no key levels) |
//! | 2 | object kind, u16 ([`ObjectKind`]) |
//! | 8 | parameter fingerprint, u64 ([`Params::fingerprint`]) |
//! | … | body (below) |
//! | 8 | checksum: the first 8 bytes of SHA-256 over everything before it |
//!
//! A polynomial (`poly`) is `n: u64`, `limbs: u64`, then `limbs · n` residues (u64), limb after
//! limb, in NTT form. Bodies:
//!
//! - **Params** (1): `log_n: u32`, `log_scale: u32`, `dnum: u64`, secret tag `u8` (0 = uniform
//!   ternary, 1 = fixed weight, followed by `h: u64`), `error_std: f64`, `#log_q: u32` then that
//!   many `u32`, `#log_p: u32` then that many `u32`, then the generated primes `q_0..q_L, P`
//!   (`#log_q + #log_p` values, u64).
//! - **PublicKey** (2): `b: poly`, `a: poly`, both over all primes `Q_L · P`.
//! - **EvalKeySet** (3): relinearization flag `u8` (0 or 1), the relinearization switching key if
//!   1, the number of Galois keys `u64`, then for each key in increasing order of Galois element:
//!   the element `u64` and the switching key. A switching key is the highest ciphertext level it
//!   serves `u64` (the top level for the relinearization key; Galois keys may stop lower and
//!   are then smaller), its number of digits `u64` (that of its level), then `b_j: poly`,
//!   `a_j: poly` per digit, both over `Q_level · P` (limbs `q_0..=q_level`, then `P`).
//! - **Ciphertext** (4): `scale: f64`, `slots: u64`, `c0: poly`, `c1: poly` over `q_0..=q_level`.
//! - **Plaintext** (5): `scale: f64`, `slots: u64`, `poly` over `q_0..=q_level`.
//! - **SecretKey** (6): `n: u64`, then `n` coefficients of `s`, one byte each (`0x00` = 0,
//!   `0x01` = 1, `0xFF` = −1). The NTT form is recomputed on decoding, never stored.
//! - **BootKeys** (7), the encapsulation keys of bootstrapping ([`BootKeys`]): the fingerprint
//!   `u64` of the bootstrapper's ephemeral parameter set ([`Bootstrapper::ephemeral_params`]),
//!   then `to_sparse`, a switching key over the ephemeral `q_0 · P` (its digits at its top
//!   level), then `to_dense`, a switching key over the main `Q_L · P`. The header carries the
//!   main parameters' fingerprint.
//!
//! The format is canonical: an accepted input re-encodes to the same bytes.
//!
//! Evaluation key sets, gigabytes at N = 2^16, also stream to and from files:
//! [`write_eval_keys`] and [`read_eval_keys`] hold one switching key's bytes at a time. The
//! reader makes the same checks as [`decode_eval_keys`], with the checksum compared last.
//!
//! # Validation order
//!
//! Decoders never panic, and never allocate according to a length they have not checked:
//!
//! 1. the input length against the caller's [`DecodeLimits::max_bytes`] ([`DecodeError::TooLarge`]);
//! 2. the input is at least a header and a checksum long ([`DecodeError::Truncated`]);
//! 3. magic ([`DecodeError::BadMagic`]), version ([`DecodeError::UnsupportedVersion`]), kind
//!    ([`DecodeError::WrongKind`]);
//! 4. the checksum ([`DecodeError::BadChecksum`]);
//! 5. the fingerprint against the caller's parameters ([`DecodeError::FingerprintMismatch`];
//!    for `Params`, against the rebuilt parameters at the end; for `BootKeys`, the body's
//!    ephemeral fingerprint too, against the bootstrapper's ephemeral set);
//! 6. the body, field by field. Every declared size is checked against the parameters first
//!    (ring degree `N`; `1..=L+1` limbs for plaintexts and ciphertexts, both ciphertext components
//!    alike; a key level at most the top (exactly the top for the relinearization and the
//!    encapsulation keys, those of the ephemeral set for `to_sparse`), then exactly the digits
//!    of that level and `#(Q_level · P)` limbs per polynomial; at most `N` Galois keys, with odd,
//!    strictly increasing elements below `2N`), then against the bytes left
//!    ([`DecodeError::Truncated`]), and only then is memory reserved.
//!    Every residue must be below its prime ([`DecodeError::ResidueOutOfRange`]); scales must be
//!    finite and ≥ 1; slot counts powers of two in `[1, N/2]`; secret coefficients in
//!    {−1, 0, 1} (and of Hamming weight `h` for a fixed-weight secret);
//! 7. nothing may follow the body ([`DecodeError::TrailingBytes`]).
//!
//! [`decode_params`] rebuilds the parameters with [`Params::new`] and so **refuses sets below
//! 128-bit security** ([`CkksError::Insecure`]); [`decode_params_insecure`] exists for tests. The
//! rebuilt primes and fingerprint must equal the stored ones.
//!
//! The checksum detects accidental corruption; it is not a MAC and gives no authenticity. All
//! the structural checks above hold whether or not the checksum matches.
//!
//! The secret key has its own kind and its own functions; the public-key and evaluation-key
//! encoders take only those types, which have no field that could hold a secret:
//!
//! ```compile_fail
//! use hetal_ckks::{presets, serial, KeyGenerator, Params};
//! let params = Params::new_insecure(presets::insecure_test(10, 2)).unwrap();
//! let sk = KeyGenerator::new(&params).gen_secret_key();
//! let _ = serial::encode_eval_keys(&sk, &params); // does not compile: not an EvalKeySet
//! ```
//!
//! ```
//! use hetal_ckks::serial::{self, DecodeLimits};
//! use hetal_ckks::{presets, Encoder, KeyGenerator, Params};
//! use rand::SeedableRng;
//!
//! let params = Params::new_insecure(presets::insecure_test(10, 2)).unwrap();
//! let mut keygen = KeyGenerator::with_rng(&params, rand_chacha::ChaCha20Rng::seed_from_u64(1));
//! let sk = keygen.gen_secret_key();
//! let pt = Encoder::new(&params)
//!     .encode_real(&[1.0, 2.0], 2, params.max_level(), params.default_scale())
//!     .unwrap();
//! let ct = sk.encrypt(&pt, &mut rand_chacha::ChaCha20Rng::seed_from_u64(2)).unwrap();
//! let bytes = serial::encode_ciphertext(&ct, &params);
//! let back = serial::decode_ciphertext(&bytes, &params, DecodeLimits { max_bytes: 1 << 20 }).unwrap();
//! assert_eq!(back, ct);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use hetal_ring::{Prime, RnsPoly};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    BootKeys, Bootstrapper, Ciphertext, CkksError, EvalKeySet, Params, ParamsLiteral, Plaintext,
    PublicKey, SecretDist, SecretKey, SwitchingKey,
};

/// The 8 bytes every encoded object starts with.
pub const MAGIC: [u8; 8] = *b"HETALCK\0";
/// The format version written, and the only one read.
pub const FORMAT_VERSION: u16 = 2;
/// Length of the header: magic, version, kind, fingerprint.
pub const HEADER_LEN: usize = 20;
/// Length of the trailing checksum.
pub const CHECKSUM_LEN: usize = 8;
/// The most primes (ciphertext and special together) a decoded parameter set may have.
pub const MAX_PRIMES: usize = 256;

/// The kind of an encoded object (the `u16` after the version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ObjectKind {
    /// [`Params`].
    Params = 1,
    /// [`PublicKey`].
    PublicKey = 2,
    /// [`EvalKeySet`].
    EvalKeySet = 3,
    /// [`Ciphertext`].
    Ciphertext = 4,
    /// [`Plaintext`].
    Plaintext = 5,
    /// [`SecretKey`].
    SecretKey = 6,
    /// [`BootKeys`].
    BootKeys = 7,
}

impl ObjectKind {
    /// The tag written in the header.
    pub fn tag(self) -> u16 {
        self as u16
    }

    /// The kind of a header tag, if known.
    pub fn from_tag(tag: u16) -> Option<Self> {
        Some(match tag {
            1 => Self::Params,
            2 => Self::PublicKey,
            3 => Self::EvalKeySet,
            4 => Self::Ciphertext,
            5 => Self::Plaintext,
            6 => Self::SecretKey,
            7 => Self::BootKeys,
            _ => return None,
        })
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Params => "parameters",
            Self::PublicKey => "public key",
            Self::EvalKeySet => "evaluation key set",
            Self::Ciphertext => "ciphertext",
            Self::Plaintext => "plaintext",
            Self::SecretKey => "secret key",
            Self::BootKeys => "bootstrapping key set",
        })
    }
}

/// Limits the caller puts on an input before anything is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Inputs longer than this many bytes are refused before any other check.
    pub max_bytes: usize,
}

impl DecodeLimits {
    /// Limits with the given maximum input size.
    pub const fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

/// Why an input could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input does not start with [`MAGIC`].
    #[error("not a hetal-ckks object (bad magic bytes)")]
    BadMagic,
    /// The format version is not [`FORMAT_VERSION`].
    #[error("unsupported format version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version in the input.
        found: u16,
    },
    /// The input holds another kind of object.
    #[error("expected a {expected} (kind {}), found kind {found}", expected.tag())]
    WrongKind {
        /// The kind asked for.
        expected: ObjectKind,
        /// The kind tag in the input.
        found: u16,
    },
    /// The object was made for other parameters.
    #[error("object was made for other parameters (fingerprint {found:#018x}, expected {expected:#018x})")]
    FingerprintMismatch {
        /// The fingerprint of the parameters given.
        expected: u64,
        /// The fingerprint in the input.
        found: u64,
    },
    /// The input ends before the object does.
    #[error("input is truncated")]
    Truncated,
    /// The input is larger than [`DecodeLimits::max_bytes`].
    #[error("input of {needed} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit given.
        limit: usize,
        /// The input length.
        needed: usize,
    },
    /// The checksum does not match: the data is corrupted.
    #[error("checksum mismatch: the data is corrupted")]
    BadChecksum,
    /// A field holds a value the parameters or the format do not allow.
    #[error("invalid field: {0}")]
    InvalidField(String),
    /// A residue is not below its prime.
    #[error("residue {index} of limb {limb} is not below its prime")]
    ResidueOutOfRange {
        /// The limb (prime index).
        limb: usize,
        /// The coefficient index within the limb.
        index: usize,
    },
    /// Bytes follow the end of the object.
    #[error("unexpected bytes after the end of the object")]
    TrailingBytes,
    /// Reading a stream failed (other than by ending early, which is [`DecodeError::Truncated`]).
    #[error("read failed: {0}")]
    Io(String),
}

impl From<std::io::Error> for DecodeError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Self::Truncated
        } else {
            Self::Io(e.to_string())
        }
    }
}

fn invalid(msg: impl Into<String>) -> DecodeError {
    DecodeError::InvalidField(msg.into())
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    digest_prefix(Sha256::new_with_prefix(bytes))
}

fn digest_prefix(hasher: Sha256) -> [u8; CHECKSUM_LEN] {
    let digest = hasher.finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Writing.

/// Appends little-endian fields to a buffer reserved up front.
struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn header(buf: &mut Vec<u8>, kind: ObjectKind, fingerprint: u64) -> Writer<'_> {
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.extend_from_slice(&kind.tag().to_le_bytes());
        buf.extend_from_slice(&fingerprint.to_le_bytes());
        Writer { buf }
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }

    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    fn poly(&mut self, p: &RnsPoly) {
        self.usize(p.n());
        self.usize(p.num_limbs());
        for &x in p.data() {
            self.u64(x);
        }
    }

    /// A switching key of `params`, in canonical residues.
    fn switching_key(&mut self, k: &SwitchingKey, params: &Params) {
        self.usize(k.level);
        self.usize(k.digits.len());
        for [b, a] in k.canonical_digits(params) {
            self.poly(&b);
            self.poly(&a);
        }
    }

    /// Appends the checksum.
    fn finish(self) {
        let sum = checksum(self.buf);
        self.buf.extend_from_slice(&sum);
    }
}

fn poly_len(p: &RnsPoly) -> usize {
    16usize.saturating_add(p.data().len().saturating_mul(8))
}

fn switching_key_len(k: &SwitchingKey) -> usize {
    k.digits.iter().fold(16usize, |acc, [b, a]| {
        acc.saturating_add(poly_len(b)).saturating_add(poly_len(a))
    })
}

fn encode_with(
    kind: ObjectKind,
    fingerprint: u64,
    body_len: usize,
    body: impl FnOnce(&mut Writer<'_>),
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        body_len
            .saturating_add(HEADER_LEN)
            .saturating_add(CHECKSUM_LEN),
    );
    let mut w = Writer::header(&mut buf, kind, fingerprint);
    body(&mut w);
    w.finish();
    buf
}

/// Encodes parameters: the literal and the generated primes.
pub fn encode_params(params: &Params) -> Vec<u8> {
    let lit = params.literal();
    let primes = params.qp_primes();
    let body_len =
        4 + 4 + 8 + 9 + 8 + 4 + 4 * lit.log_q.len() + 4 + 4 * lit.log_p.len() + 8 * primes.len();
    encode_with(ObjectKind::Params, params.fingerprint(), body_len, |w| {
        w.u32(lit.log_n);
        w.u32(lit.log_scale);
        w.usize(lit.dnum);
        match lit.secret {
            SecretDist::Ternary => w.u8(0),
            SecretDist::FixedWeight { h } => {
                w.u8(1);
                w.usize(h);
            }
        }
        w.f64(lit.error_std);
        for list in [&lit.log_q, &lit.log_p] {
            w.u32(list.len() as u32);
            for &b in list.iter() {
                w.u32(b);
            }
        }
        for q in primes {
            w.u64(q.value());
        }
    })
}

/// Encodes a public key; the header carries `params.fingerprint()`.
pub fn encode_public_key(pk: &PublicKey, params: &Params) -> Vec<u8> {
    let body_len = poly_len(&pk.b).saturating_add(poly_len(&pk.a));
    encode_with(ObjectKind::PublicKey, params.fingerprint(), body_len, |w| {
        w.poly(&pk.b);
        w.poly(&pk.a);
    })
}

/// Hands the encoding of an evaluation key set, without its checksum, to `emit` in pieces of at
/// most one switching key (shared by [`encode_eval_keys`] and [`write_eval_keys`]).
fn emit_eval_keys<E>(
    keys: &EvalKeySet,
    params: &Params,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf = Vec::new();
    let mut w = Writer::header(&mut buf, ObjectKind::EvalKeySet, params.fingerprint());
    match &keys.relin {
        Some(k) => {
            w.u8(1);
            w.switching_key(k, params);
        }
        None => w.u8(0),
    }
    w.usize(keys.galois.len());
    emit(&buf)?;
    for (&g, k) in &keys.galois {
        buf.clear();
        let mut w = Writer { buf: &mut buf };
        w.u64(g);
        w.switching_key(k, params);
        emit(&buf)?;
    }
    Ok(())
}

/// Encodes an evaluation key set (relinearization and Galois keys); the header carries
/// `params.fingerprint()`. It takes only the public [`EvalKeySet`], which cannot hold a secret.
pub fn encode_eval_keys(keys: &EvalKeySet, params: &Params) -> Vec<u8> {
    let body_len = keys
        .relin
        .iter()
        .chain(keys.galois.values())
        .fold(17usize, |acc, k| {
            acc.saturating_add(8).saturating_add(switching_key_len(k))
        });
    let mut out = Vec::with_capacity(
        body_len
            .saturating_add(HEADER_LEN)
            .saturating_add(CHECKSUM_LEN),
    );
    let written: Result<(), std::convert::Infallible> = emit_eval_keys(keys, params, |b| {
        out.extend_from_slice(b);
        Ok(())
    });
    let Ok(()) = written;
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    out
}

/// Streams an evaluation key set to `out`: the bytes of [`encode_eval_keys`], produced one
/// switching key at a time, so that the set (gigabytes at N = 2^16) is never copied in memory.
///
/// # Errors
/// Errors of `out`.
pub fn write_eval_keys(
    keys: &EvalKeySet,
    params: &Params,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut hasher = Sha256::new();
    emit_eval_keys(keys, params, |b| {
        hasher.update(b);
        out.write_all(b)
    })?;
    out.write_all(&digest_prefix(hasher))
}

/// Encodes the encapsulation keys of `boot` ([`Bootstrapper::gen_boot_keys`]); the header
/// carries the fingerprint of `boot`'s parameters, the body that of its ephemeral parameter set.
/// Like the evaluation keys, [`BootKeys`] holds no secret.
///
/// A bootstrapper without encapsulation makes no such keys: the ephemeral fingerprint is then
/// written as 0, which [`decode_boot_keys`] refuses.
pub fn encode_boot_keys(keys: &BootKeys, boot: &Bootstrapper) -> Vec<u8> {
    let body_len = 8usize
        .saturating_add(switching_key_len(&keys.to_sparse))
        .saturating_add(switching_key_len(&keys.to_dense));
    let ephemeral = boot.ephemeral_params().map_or(0, Params::fingerprint);
    // Without encapsulation the file is refused on decoding anyway; its keys are written
    // with the main parameters.
    let ephemeral_params = boot.ephemeral_params().unwrap_or(boot.params());
    encode_with(
        ObjectKind::BootKeys,
        boot.params().fingerprint(),
        body_len,
        |w| {
            w.u64(ephemeral);
            w.switching_key(&keys.to_sparse, ephemeral_params);
            w.switching_key(&keys.to_dense, boot.params());
        },
    )
}

/// Encodes a ciphertext; the header carries `params.fingerprint()`.
pub fn encode_ciphertext(ct: &Ciphertext, params: &Params) -> Vec<u8> {
    let body_len = 16usize
        .saturating_add(poly_len(&ct.c0))
        .saturating_add(poly_len(&ct.c1));
    encode_with(
        ObjectKind::Ciphertext,
        params.fingerprint(),
        body_len,
        |w| {
            w.f64(ct.scale);
            w.usize(ct.slots);
            w.poly(&ct.c0);
            w.poly(&ct.c1);
        },
    )
}

/// Encodes a plaintext; the header carries `params.fingerprint()`.
pub fn encode_plaintext(pt: &Plaintext, params: &Params) -> Vec<u8> {
    let body_len = 16usize.saturating_add(poly_len(&pt.poly));
    encode_with(ObjectKind::Plaintext, params.fingerprint(), body_len, |w| {
        w.f64(pt.scale);
        w.usize(pt.slots);
        w.poly(&pt.poly);
    })
}

/// Encodes a secret key (its coefficients only) under its own parameters' fingerprint.
///
/// The buffer is reserved once (no reallocation leaves copies behind) and is zeroized when the
/// returned value is dropped.
pub fn encode_secret_key(sk: &SecretKey) -> Zeroizing<Vec<u8>> {
    let n = sk.coeffs.len();
    let mut buf = Zeroizing::new(Vec::with_capacity(
        HEADER_LEN
            .saturating_add(8)
            .saturating_add(n)
            .saturating_add(CHECKSUM_LEN),
    ));
    let mut w = Writer::header(&mut buf, ObjectKind::SecretKey, sk.params.fingerprint());
    w.usize(n);
    for &c in &sk.coeffs {
        w.u8(match c.signum() {
            1 => 0x01,
            -1 => 0xFF,
            _ => 0x00,
        });
    }
    w.finish();
    buf
}

// ---------------------------------------------------------------------------------------------
// Reading.

/// Reads little-endian fields off the body; every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(len)
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| DecodeError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// Fails with [`DecodeError::Truncated`] unless `count` items of `size` bytes are left.
    fn ensure(&self, count: usize, size: usize) -> Result<(), DecodeError> {
        match count.checked_mul(size) {
            Some(bytes) if bytes <= self.rest.len() => Ok(()),
            _ => Err(DecodeError::Truncated),
        }
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// Checks magic, version and kind; leaves `r` at the fingerprint.
fn check_header(r: &mut Reader<'_>, kind: ObjectKind) -> Result<(), DecodeError> {
    if r.array::<8>()? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes(r.array()?);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let found = u16::from_le_bytes(r.array()?);
    if found != kind.tag() {
        return Err(DecodeError::WrongKind {
            expected: kind,
            found,
        });
    }
    Ok(())
}

/// Checks size limit, header and checksum; returns the header fingerprint and a reader over the
/// body.
fn open(
    bytes: &[u8],
    kind: ObjectKind,
    limits: DecodeLimits,
) -> Result<(u64, Reader<'_>), DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            limit: limits.max_bytes,
            needed: bytes.len(),
        });
    }
    let body_end = bytes
        .len()
        .checked_sub(CHECKSUM_LEN)
        .filter(|&end| end >= HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    let (content, stored_sum) = bytes
        .split_at_checked(body_end)
        .ok_or(DecodeError::Truncated)?;
    let mut header = Reader { rest: content };
    check_header(&mut header, kind)?;
    if checksum(content) != stored_sum {
        return Err(DecodeError::BadChecksum);
    }
    let fingerprint = header.u64()?;
    Ok((fingerprint, header))
}

/// [`open`], then the fingerprint against `params`.
fn open_for<'a>(
    bytes: &'a [u8],
    kind: ObjectKind,
    params: &Params,
    limits: DecodeLimits,
) -> Result<Reader<'a>, DecodeError> {
    let (found, r) = open(bytes, kind, limits)?;
    if found != params.fingerprint() {
        return Err(DecodeError::FingerprintMismatch {
            expected: params.fingerprint(),
            found,
        });
    }
    Ok(r)
}

/// Reads a polynomial's `n` (which must be the ring degree) and its declared limb count, not yet
/// checked.
fn poly_header(r: &mut Reader<'_>, params: &Params, what: &str) -> Result<u64, DecodeError> {
    let n = r.u64()?;
    if n != params.n() as u64 {
        return Err(invalid(format!(
            "{what}: ring degree {n}, expected {}",
            params.n()
        )));
    }
    r.u64()
}

/// Reads the residues of a polynomial over `primes` (limb count already checked), checking that
/// they are all present before reserving memory, and that each is below its prime.
fn poly_body(
    r: &mut Reader<'_>,
    params: &Params,
    primes: &[Prime],
) -> Result<RnsPoly, DecodeError> {
    let n = params.n();
    let limb_bytes = n
        .checked_mul(8)
        .filter(|&b| b > 0)
        .ok_or_else(|| invalid("ring degree"))?;
    r.ensure(primes.len(), limb_bytes)?;
    let raw = r.take(limb_bytes.saturating_mul(primes.len()))?;
    let mut data = Vec::with_capacity(n.saturating_mul(primes.len()));
    for (limb, (chunk, q)) in raw.chunks_exact(limb_bytes).zip(primes).enumerate() {
        let q = q.value();
        for (index, word) in chunk.chunks_exact(8).enumerate() {
            let v =
                u64::from_le_bytes(<[u8; 8]>::try_from(word).map_err(|_| DecodeError::Truncated)?);
            if v >= q {
                return Err(DecodeError::ResidueOutOfRange { limb, index });
            }
            data.push(v);
        }
    }
    RnsPoly::from_data(n, data).ok_or_else(|| invalid("polynomial layout"))
}

/// A polynomial over `q_0..=q_level`: `1..=L+1` limbs, or exactly `same_as` limbs if given.
fn read_q_poly(
    r: &mut Reader<'_>,
    params: &Params,
    what: &str,
    same_as: Option<usize>,
) -> Result<RnsPoly, DecodeError> {
    let limbs = poly_header(r, params, what)?;
    let max = params.max_level() + 1;
    let limbs = match usize::try_from(limbs) {
        Ok(l) if (1..=max).contains(&l) => l,
        _ => return Err(invalid(format!("{what}: {limbs} limbs, allowed 1..={max}"))),
    };
    if let Some(expected) = same_as {
        if limbs != expected {
            return Err(invalid(format!(
                "{what}: {limbs} limbs, but the first component has {expected}"
            )));
        }
    }
    poly_body(r, params, params.q_primes(limbs - 1))
}

/// A polynomial over all primes `Q_L · P`.
fn read_qp_poly(r: &mut Reader<'_>, params: &Params, what: &str) -> Result<RnsPoly, DecodeError> {
    let limbs = poly_header(r, params, what)?;
    let primes = params.qp_primes();
    if limbs != primes.len() as u64 {
        return Err(invalid(format!(
            "{what}: {limbs} limbs, expected {}",
            primes.len()
        )));
    }
    poly_body(r, params, primes)
}

/// A polynomial over the extended basis `Q_level · P` (limbs `q_0..=q_level`, then `P`).
fn read_ext_poly(
    r: &mut Reader<'_>,
    params: &Params,
    level: usize,
    what: &str,
) -> Result<RnsPoly, DecodeError> {
    let limbs = poly_header(r, params, what)?;
    let expected = params.ext_limbs(level);
    if limbs != expected as u64 {
        return Err(invalid(format!(
            "{what}: {limbs} limbs, expected {expected}"
        )));
    }
    let mut poly = poly_body(r, params, params.q_primes(level))?;
    let p_part = poly_body(r, params, params.p_primes()).map_err(|e| match e {
        DecodeError::ResidueOutOfRange { limb, index } => DecodeError::ResidueOutOfRange {
            limb: limb + level + 1,
            index,
        },
        e => e,
    })?;
    poly.extend_from(&p_part);
    Ok(poly)
}

fn read_scale_slots(r: &mut Reader<'_>, params: &Params) -> Result<(f64, usize), DecodeError> {
    let scale = r.f64()?;
    if !(scale.is_finite() && scale >= 1.0) {
        return Err(invalid(format!("scale {scale} is not finite and ≥ 1")));
    }
    let slots = r.u64()?;
    let max = params.max_slots();
    match usize::try_from(slots) {
        Ok(s) if s.is_power_of_two() && s <= max => Ok((scale, s)),
        _ => Err(invalid(format!(
            "slots {slots} is not a power of two in [1, {max}]"
        ))),
    }
}

/// The declared level of a switching key: a level of `params` (its top one when `top_only`).
fn check_key_level(
    level: u64,
    params: &Params,
    what: &str,
    top_only: bool,
) -> Result<usize, DecodeError> {
    let top = params.max_level();
    match usize::try_from(level) {
        Ok(l) if l == top || (!top_only && l < top) => Ok(l),
        _ if top_only => Err(invalid(format!(
            "{what}: level {level}, expected the top level {top}"
        ))),
        _ => Err(invalid(format!(
            "{what}: level {level} above the top {top}"
        ))),
    }
}

/// The declared digit count of a switching key at `level`, which must be that level's.
fn check_digits(
    declared: u64,
    params: &Params,
    level: usize,
    what: &str,
) -> Result<usize, DecodeError> {
    let expected = params.digits(level).count();
    if declared != expected as u64 {
        return Err(invalid(format!(
            "{what}: {declared} digits, expected {expected} at level {level}"
        )));
    }
    Ok(expected)
}

/// The `digits` polynomial pairs of a switching key for ciphertexts up to `level`.
fn read_digits(
    r: &mut Reader<'_>,
    params: &Params,
    what: &str,
    level: usize,
    digits: usize,
) -> Result<SwitchingKey, DecodeError> {
    let mut out = Vec::with_capacity(digits);
    for _ in 0..digits {
        let b = read_ext_poly(r, params, level, what)?;
        let a = read_ext_poly(r, params, level, what)?;
        out.push([b, a]);
    }
    Ok(SwitchingKey::from_canonical(out, level, params))
}

/// A top-level switching key (encapsulation keys).
fn read_switching_key(
    r: &mut Reader<'_>,
    params: &Params,
    what: &str,
) -> Result<SwitchingKey, DecodeError> {
    let level = check_key_level(r.u64()?, params, what, true)?;
    let digits = check_digits(r.u64()?, params, level, what)?;
    read_digits(r, params, what, level, digits)
}

/// Encoded size of one switching key of `params` at `level`, if it fits in `usize`.
fn switching_key_bytes(params: &Params, level: usize) -> Option<usize> {
    let poly = params
        .n()
        .checked_mul(params.ext_limbs(level))?
        .checked_mul(8)?
        .checked_add(16)?;
    poly.checked_mul(2)?
        .checked_mul(params.digits(level).count())?
        .checked_add(16)
}

fn map_build_error(e: CkksError) -> CkksError {
    match e {
        CkksError::Insecure { .. } => e,
        other => invalid(format!("parameters rejected: {other}")).into(),
    }
}

fn read_len_list(r: &mut Reader<'_>, what: &str) -> Result<Vec<u32>, DecodeError> {
    let count = r.u32()?;
    let count = match usize::try_from(count) {
        Ok(c) if (1..=MAX_PRIMES).contains(&c) => c,
        _ => {
            return Err(invalid(format!(
                "{what}: {count} primes, allowed 1..={MAX_PRIMES}"
            )))
        }
    };
    r.ensure(count, 4)?;
    (0..count).map(|_| r.u32()).collect()
}

fn decode_params_with(
    bytes: &[u8],
    limits: DecodeLimits,
    secure: bool,
) -> Result<Params, CkksError> {
    let (fingerprint, mut r) = open(bytes, ObjectKind::Params, limits)?;
    let log_n = r.u32()?;
    let log_scale = r.u32()?;
    let dnum = r.u64()?;
    let dnum = usize::try_from(dnum).map_err(|_| invalid(format!("dnum {dnum}")))?;
    let secret = match r.u8()? {
        0 => SecretDist::Ternary,
        1 => {
            let h = r.u64()?;
            let h = usize::try_from(h).map_err(|_| invalid(format!("Hamming weight {h}")))?;
            SecretDist::FixedWeight { h }
        }
        t => return Err(invalid(format!("secret distribution tag {t}")).into()),
    };
    let error_std = r.f64()?;
    let log_q = read_len_list(&mut r, "log_q")?;
    let log_p = read_len_list(&mut r, "log_p")?;
    let total = log_q.len().saturating_add(log_p.len());
    if total > MAX_PRIMES {
        return Err(invalid(format!("{total} primes, allowed at most {MAX_PRIMES}")).into());
    }
    r.ensure(total, 8)?;
    let stored: Vec<u64> = (0..total).map(|_| r.u64()).collect::<Result<_, _>>()?;
    r.finish()?;
    let literal = ParamsLiteral {
        log_n,
        log_q,
        log_p,
        dnum,
        log_scale,
        secret,
        error_std,
    };
    let params = if secure {
        Params::new(literal)
    } else {
        Params::new_insecure(literal)
    }
    .map_err(map_build_error)?;
    if !params
        .qp_primes()
        .iter()
        .map(Prime::value)
        .eq(stored.iter().copied())
    {
        return Err(invalid("stored primes differ from the regenerated ones").into());
    }
    if params.fingerprint() != fingerprint {
        return Err(DecodeError::FingerprintMismatch {
            expected: params.fingerprint(),
            found: fingerprint,
        }
        .into());
    }
    Ok(params)
}

/// Decodes parameters and rebuilds them with [`Params::new`], refusing sets below 128-bit
/// security.
///
/// # Errors
/// [`CkksError::Insecure`] for a set below 128-bit security; [`CkksError::Decode`] for
/// malformed, corrupted or oversized input, or when the rebuilt primes or fingerprint differ from
/// the stored ones.
pub fn decode_params(bytes: &[u8], limits: DecodeLimits) -> Result<Params, CkksError> {
    decode_params_with(bytes, limits, true)
}

/// Like [`decode_params`] but rebuilds with [`Params::new_insecure`]: **accepts insecure sets**.
/// For tests only.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, or when the rebuilt primes
/// or fingerprint differ from the stored ones.
pub fn decode_params_insecure(bytes: &[u8], limits: DecodeLimits) -> Result<Params, CkksError> {
    decode_params_with(bytes, limits, false)
}

/// Decodes a public key made for `params`.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, or another fingerprint.
pub fn decode_public_key(
    bytes: &[u8],
    params: &Params,
    limits: DecodeLimits,
) -> Result<PublicKey, CkksError> {
    let mut r = open_for(bytes, ObjectKind::PublicKey, params, limits)?;
    let b = read_qp_poly(&mut r, params, "public key b")?;
    let a = read_qp_poly(&mut r, params, "public key a")?;
    r.finish()?;
    Ok(PublicKey { b, a })
}

/// Where the body of an evaluation key set comes from: a slice whose checksum is already
/// verified, or a stream of known length ([`read_eval_keys`]).
trait Source {
    /// The next `len` bytes ([`DecodeError::Truncated`] past the body's end).
    fn take(&mut self, len: usize) -> Result<&[u8], DecodeError>;
    /// Body bytes left.
    fn left(&self) -> u64;

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Reader {
            rest: self.take(8)?,
        }
        .u64()
    }
}

impl Source for Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        Reader::take(self, len)
    }

    fn left(&self) -> u64 {
        self.rest.len() as u64
    }
}

/// A stream of `left` body bytes (the checksum after them), hashed as they are read.
struct Stream<'r, R> {
    input: &'r mut R,
    left: u64,
    hasher: Sha256,
    buf: Vec<u8>,
}

impl<R: std::io::Read> Source for Stream<'_, R> {
    fn take(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        if len as u64 > self.left {
            return Err(DecodeError::Truncated);
        }
        self.buf.resize(len, 0);
        self.input.read_exact(&mut self.buf)?;
        self.hasher.update(&self.buf);
        self.left -= len as u64;
        Ok(&self.buf)
    }

    fn left(&self) -> u64 {
        self.left
    }
}

/// A switching key of `params` from `src` (at the top level when `top_only`): the level and
/// digit count are checked before the key's bytes are taken.
fn take_switching_key(
    src: &mut impl Source,
    params: &Params,
    what: &str,
    top_only: bool,
) -> Result<SwitchingKey, DecodeError> {
    let level = check_key_level(src.u64()?, params, what, top_only)?;
    let digits = check_digits(src.u64()?, params, level, what)?;
    let len = switching_key_bytes(params, level)
        .and_then(|b| b.checked_sub(16))
        .ok_or_else(|| invalid("switching key size overflows"))?;
    let mut r = Reader {
        rest: src.take(len)?,
    };
    let key = read_digits(&mut r, params, what, level, digits)?;
    r.finish()?;
    Ok(key)
}

/// The body of an evaluation key set (see the module doc), up to its end.
fn eval_keys_body(src: &mut impl Source, params: &Params) -> Result<EvalKeySet, DecodeError> {
    let relin = match src.take(1)? {
        [0] => None,
        [1] => Some(take_switching_key(
            src,
            params,
            "relinearization key",
            true,
        )?),
        t => return Err(invalid(format!("relinearization flag {t:?}"))),
    };
    let count = src.u64()?;
    let n = params.n();
    let count = match usize::try_from(count) {
        Ok(c) if c <= n => c,
        _ => return Err(invalid(format!("{count} Galois keys, at most {n} exist"))),
    };
    // Every key takes at least the bytes of a level-0 key (and its Galois element).
    let key_bytes = switching_key_bytes(params, 0)
        .and_then(|b| b.checked_add(8))
        .ok_or_else(|| invalid("switching key size overflows"))?;
    match (count as u64).checked_mul(key_bytes as u64) {
        Some(bytes) if bytes <= src.left() => {}
        _ => return Err(DecodeError::Truncated),
    }
    let two_n = (n as u64).saturating_mul(2);
    let mut galois = BTreeMap::new();
    let mut prev: Option<u64> = None;
    for _ in 0..count {
        let g = src.u64()?;
        if g % 2 == 0 || g >= two_n {
            return Err(invalid(format!(
                "Galois element {g} is not odd and below {two_n}"
            )));
        }
        if prev.is_some_and(|p| g <= p) {
            return Err(invalid(format!(
                "Galois element {g} is out of order or repeated"
            )));
        }
        prev = Some(g);
        galois.insert(g, take_switching_key(src, params, "Galois key", false)?);
    }
    if src.left() != 0 {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(EvalKeySet { relin, galois })
}

/// Decodes an evaluation key set made for `params`.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, or another fingerprint.
pub fn decode_eval_keys(
    bytes: &[u8],
    params: &Params,
    limits: DecodeLimits,
) -> Result<EvalKeySet, CkksError> {
    let mut r = open_for(bytes, ObjectKind::EvalKeySet, params, limits)?;
    Ok(eval_keys_body(&mut r, params)?)
}

/// Reads an evaluation key set made for `params` from a stream of `len` bytes (a file of that
/// size), holding one switching key's bytes at a time: what [`decode_eval_keys`] checks, except
/// that the checksum is compared last, after the structural checks (which do not depend on it).
///
/// # Errors
/// As [`decode_eval_keys`]; [`DecodeError::Io`] when reading fails.
pub fn read_eval_keys(
    input: &mut impl std::io::Read,
    len: u64,
    params: &Params,
    limits: DecodeLimits,
) -> Result<EvalKeySet, CkksError> {
    if len > limits.max_bytes as u64 {
        return Err(DecodeError::TooLarge {
            limit: limits.max_bytes,
            needed: usize::try_from(len).unwrap_or(usize::MAX),
        }
        .into());
    }
    let body = len
        .checked_sub((HEADER_LEN + CHECKSUM_LEN) as u64)
        .ok_or(DecodeError::Truncated)?;
    let mut header = [0u8; HEADER_LEN];
    input.read_exact(&mut header).map_err(DecodeError::from)?;
    let mut r = Reader { rest: &header };
    check_header(&mut r, ObjectKind::EvalKeySet)?;
    let found = r.u64()?;
    if found != params.fingerprint() {
        return Err(DecodeError::FingerprintMismatch {
            expected: params.fingerprint(),
            found,
        }
        .into());
    }
    let mut stream = Stream {
        input,
        left: body,
        hasher: Sha256::new_with_prefix(header),
        buf: Vec::new(),
    };
    let keys = eval_keys_body(&mut stream, params)?;
    let mut stored = [0u8; CHECKSUM_LEN];
    stream
        .input
        .read_exact(&mut stored)
        .map_err(DecodeError::from)?;
    if digest_prefix(stream.hasher) != stored {
        return Err(DecodeError::BadChecksum.into());
    }
    Ok(keys)
}

/// Decodes the encapsulation keys made for `boot`: its parameters (header fingerprint) and its
/// ephemeral parameter set (body fingerprint); `to_sparse` must have the digits and limbs of a
/// switching key of the ephemeral set, `to_dense` those of one of the main set.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, another fingerprint (main
/// or ephemeral), or a bootstrapper without encapsulation (which takes no keys).
pub fn decode_boot_keys(
    bytes: &[u8],
    boot: &Bootstrapper,
    limits: DecodeLimits,
) -> Result<BootKeys, CkksError> {
    let params = boot.params();
    let mut r = open_for(bytes, ObjectKind::BootKeys, params, limits)?;
    let found = r.u64()?;
    let ephemeral = boot
        .ephemeral_params()
        .ok_or_else(|| invalid("bootstrapping keys, but the bootstrapper uses no encapsulation"))?;
    if found != ephemeral.fingerprint() {
        return Err(DecodeError::FingerprintMismatch {
            expected: ephemeral.fingerprint(),
            found,
        }
        .into());
    }
    let to_sparse = read_switching_key(&mut r, ephemeral, "to-sparse key")?;
    let to_dense = read_switching_key(&mut r, params, "to-dense key")?;
    r.finish()?;
    Ok(BootKeys {
        to_sparse,
        to_dense,
    })
}

/// Decodes a ciphertext made for `params`.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, or another fingerprint.
pub fn decode_ciphertext(
    bytes: &[u8],
    params: &Params,
    limits: DecodeLimits,
) -> Result<Ciphertext, CkksError> {
    let mut r = open_for(bytes, ObjectKind::Ciphertext, params, limits)?;
    let (scale, slots) = read_scale_slots(&mut r, params)?;
    let c0 = read_q_poly(&mut r, params, "ciphertext c0", None)?;
    let c1 = read_q_poly(&mut r, params, "ciphertext c1", Some(c0.num_limbs()))?;
    r.finish()?;
    Ok(Ciphertext {
        c0,
        c1,
        scale,
        slots,
    })
}

/// Decodes a plaintext made for `params`.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, or another fingerprint.
pub fn decode_plaintext(
    bytes: &[u8],
    params: &Params,
    limits: DecodeLimits,
) -> Result<Plaintext, CkksError> {
    let mut r = open_for(bytes, ObjectKind::Plaintext, params, limits)?;
    let (scale, slots) = read_scale_slots(&mut r, params)?;
    let poly = read_q_poly(&mut r, params, "plaintext", None)?;
    r.finish()?;
    Ok(Plaintext { poly, scale, slots })
}

/// Decodes a secret key made for `params`: checks every coefficient is in {−1, 0, 1} (and the
/// Hamming weight for a fixed-weight secret) and recomputes its NTT form.
///
/// # Errors
/// [`CkksError::Decode`] for malformed, corrupted or oversized input, or another fingerprint.
pub fn decode_secret_key(
    bytes: &[u8],
    params: &Params,
    limits: DecodeLimits,
) -> Result<SecretKey, CkksError> {
    let mut r = open_for(bytes, ObjectKind::SecretKey, params, limits)?;
    let n = r.u64()?;
    if n != params.n() as u64 {
        return Err(invalid(format!(
            "secret key: {n} coefficients, expected {}",
            params.n()
        ))
        .into());
    }
    let raw = r.take(params.n())?;
    r.finish()?;
    let mut coeffs = Zeroizing::new(Vec::with_capacity(raw.len()));
    for (i, &b) in raw.iter().enumerate() {
        coeffs.push(match b {
            0x00 => 0,
            0x01 => 1,
            0xFF => -1,
            _ => {
                return Err(
                    invalid(format!("secret coefficient {i} is not in {{-1, 0, 1}}")).into(),
                )
            }
        });
    }
    if let SecretDist::FixedWeight { h } = params.secret_dist() {
        let weight = coeffs.iter().filter(|&&c| c != 0).count();
        if weight != h {
            return Err(invalid(format!(
                "secret key has Hamming weight {weight}, the parameters require {h}"
            ))
            .into());
        }
    }
    let primes = params.qp_primes();
    let mut poly = RnsPoly::from_signed(&coeffs, primes);
    poly.ntt(primes);
    Ok(SecretKey {
        params: params.clone(),
        coeffs: std::mem::take(&mut *coeffs),
        poly,
    })
}
