//! CKKS parameters: the literal a user writes, and the checked, immutable [`Params`].
//!
//! [`ParamsLiteral`] holds plain numbers (bit sizes of the primes, dnum, scale, secret
//! distribution). [`Params::new`] generates the primes, precomputes everything the ring layer
//! needs (NTT plans, ModUp/ModDown converters, rescalers) and **refuses any set below 128-bit
//! security** by the HE-standard tables ([`max_log_qp`]). Small insecure sets for tests exist
//! only through [`Params::new_insecure`].
//!
//! Terms: `level` = number of ciphertext primes − 1; the top level is `max_level()`. The
//! special primes `P` are used only inside key switching (hybrid key switching with `dnum`
//! digits of `alpha = ceil((L+1)/dnum)` primes each).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use hetal_ring::{primes, BasisConverter, DivideAndRound, MixedRadix, Modulus, NttOrder, Prime};
use sha2::{Digest, Sha256};

use crate::CkksError;

/// How secret keys are sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretDist {
    /// Uniform ternary coefficients in {-1, 0, 1} (dense).
    Ternary,
    /// Ternary with exactly `h` nonzero coefficients (sparse).
    FixedWeight {
        /// Hamming weight.
        h: usize,
    },
}

impl fmt::Display for SecretDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretDist::Ternary => write!(f, "uniform ternary secret"),
            SecretDist::FixedWeight { h } => write!(f, "ternary secret of Hamming weight {h}"),
        }
    }
}

/// Unchecked parameter description: plain numbers, no invariants.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamsLiteral {
    /// log2 of the ring degree N.
    pub log_n: u32,
    /// Bit sizes of the ciphertext primes `q_0, …, q_L`. Primes whose size equals
    /// `log_scale` (after the first) are picked as close to `2^log_scale` as possible; all
    /// others are the largest primes below `2^bits`.
    pub log_q: Vec<u32>,
    /// Bit sizes of the special primes `P` of key switching.
    pub log_p: Vec<u32>,
    /// Number of key-switching digits.
    pub dnum: usize,
    /// log2 of the default scale Δ.
    pub log_scale: u32,
    /// Secret distribution.
    pub secret: SecretDist,
    /// Standard deviation of the error distribution (the HE standard uses 3.2).
    pub error_std: f64,
}

/// The HE-standard (2018) bound on log2 QP for 128-bit classical security with a uniform
/// ternary secret and σ = 3.2, and the sparse-secret bounds of ePrint 2026/279 (see
/// `shared/reference/ckks-parameters.md`). `None` when no bound is known (the set is then
/// refused).
pub fn max_log_qp(log_n: u32, secret: SecretDist) -> Option<u32> {
    let dense = match log_n {
        12 => 109,
        13 => 218,
        14 => 438,
        15 => 881,
        16 => 1747,
        17 => 3523,
        _ => return None,
    };
    match secret {
        SecretDist::Ternary => Some(dense),
        SecretDist::FixedWeight { h } => {
            const WEIGHTS: [usize; 7] = [32, 64, 128, 192, 256, 512, 1024];
            let table: [u32; 7] = match log_n {
                15 => [164, 468, 669, 739, 774, 829, 854],
                16 => [349, 961, 1351, 1481, 1553, 1659, 1714],
                _ => return None,
            };
            // Conservative: the bound of the largest tabulated weight not above h.
            let i = WEIGHTS.iter().rposition(|&w| w <= h)?;
            Some(table[i].min(dense))
        }
    }
}

struct Inner {
    literal: ParamsLiteral,
    n: usize,
    order: Arc<NttOrder>,
    /// The ciphertext primes `q_0..=q_L` followed by the special primes `P`.
    qp: Vec<Prime>,
    num_q: usize,
    alpha: usize,
    /// `mod_up[level][digit]`: from the digit's primes to `Q_level \ digit ∪ P`.
    mod_up: Vec<Vec<BasisConverter>>,
    mod_down: DivideAndRound,
    /// `rescale[level]` divides by `q_level`, for level ≥ 1.
    rescale: Vec<DivideAndRound>,
    /// `mod_down_rescale[level]` divides by `q_level · P`, for level ≥ 1: a key switch's
    /// ModDown and the following rescale in one division.
    mod_down_rescale: Vec<DivideAndRound>,
    /// `P mod q_i` for every ciphertext prime.
    p_mod_q: Vec<u64>,
    mixed_radix: MixedRadix,
    log_qp: f64,
    fingerprint: u64,
    secure: bool,
}

/// Checked, immutable CKKS parameters with their precomputed ring data. Cheap to clone.
#[derive(Clone)]
pub struct Params(Arc<Inner>);

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("log_n", &self.0.literal.log_n)
            .field("levels", &self.max_level())
            .field("special_primes", &self.p_primes().len())
            .field("dnum", &self.0.literal.dnum)
            .field("log_scale", &self.0.literal.log_scale)
            .field("log_qp", &self.0.log_qp)
            .field("secret", &self.0.literal.secret)
            .finish()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

impl Params {
    /// Checks the literal, including **128-bit security**, and precomputes the ring data.
    ///
    /// # Errors
    /// [`CkksError::Insecure`] when log2 QP exceeds [`max_log_qp`], or the error deviation is
    /// below 3.2; [`CkksError::InvalidParams`] for malformed literals.
    pub fn new(literal: ParamsLiteral) -> Result<Self, CkksError> {
        Self::build(literal, true)
    }

    /// Like [`Params::new`] but **without the security check**: for tests at small N only.
    /// Never use it for real data.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] for malformed literals.
    pub fn new_insecure(literal: ParamsLiteral) -> Result<Self, CkksError> {
        Self::build(literal, false)
    }

    fn build(literal: ParamsLiteral, enforce_security: bool) -> Result<Self, CkksError> {
        let invalid = |s: String| Err(CkksError::InvalidParams(s));
        let ParamsLiteral {
            log_n,
            ref log_q,
            ref log_p,
            dnum,
            log_scale,
            secret,
            error_std,
        } = literal;
        if !(4..=17).contains(&log_n) {
            return invalid(format!("log_n = {log_n} is outside [4, 17]"));
        }
        if log_q.is_empty() || log_p.is_empty() {
            return invalid("need at least one ciphertext prime and one special prime".into());
        }
        if let Some(b) = log_q
            .iter()
            .chain(log_p)
            .find(|&&b| !(20..=61).contains(&b))
        {
            return invalid(format!("prime size {b} bits is outside [20, 61]"));
        }
        if dnum == 0 || dnum > log_q.len() {
            return invalid(format!("dnum = {dnum} must be in [1, {}]", log_q.len()));
        }
        if !(10..=60).contains(&log_scale) {
            return invalid(format!("log_scale = {log_scale} is outside [10, 60]"));
        }
        if !(error_std.is_finite() && error_std > 0.0) {
            return invalid(format!("error_std = {error_std} must be positive"));
        }
        let n = 1usize << log_n;
        if let SecretDist::FixedWeight { h } = secret {
            if h == 0 || h > n {
                return invalid(format!("Hamming weight {h} must be in [1, N]"));
            }
        }
        // Generate primes: scale-sized ones near 2^log_scale, the others just below 2^bits.
        let mut used: Vec<u64> = Vec::new();
        let pick = |bits: u32, near: bool, used: &mut Vec<u64>| -> Result<u64, CkksError> {
            let q = if near {
                primes::primes_near(bits, n, 1, used)?[0]
            } else {
                primes::primes_below(bits, n, 1, used)?[0]
            };
            used.push(q);
            Ok(q)
        };
        let mut q_vals = Vec::with_capacity(log_q.len());
        for (i, &b) in log_q.iter().enumerate() {
            q_vals.push(pick(b, i > 0 && b == log_scale, &mut used)?);
        }
        let mut p_vals = Vec::with_capacity(log_p.len());
        for &b in log_p {
            p_vals.push(pick(b, false, &mut used)?);
        }
        let log_qp: f64 = q_vals
            .iter()
            .chain(&p_vals)
            .map(|&q| (q as f64).log2())
            .sum();
        let bound = max_log_qp(log_n, secret);
        let secure = error_std >= 3.2 && bound.is_some_and(|b| log_qp <= b as f64);
        if enforce_security && !secure {
            return Err(CkksError::Insecure {
                log_n,
                log_qp,
                bound: bound.unwrap_or(0),
                secret: format!("{secret}, σ = {error_std}"),
            });
        }
        let levels = q_vals.len();
        let alpha = levels.div_ceil(dnum);
        let log_p_total: f64 = p_vals.iter().map(|&q| (q as f64).log2()).sum();
        let max_digit: f64 = q_vals
            .chunks(alpha)
            .map(|d| d.iter().map(|&q| (q as f64).log2()).sum())
            .fold(0.0, f64::max);
        if log_p_total < max_digit {
            return invalid(format!(
                "special modulus P ({log_p_total:.1} bits) must exceed the largest key-switching digit ({max_digit:.1} bits): add special primes or raise dnum"
            ));
        }

        let order = NttOrder::new(n)?;
        let qp: Vec<Prime> = q_vals
            .iter()
            .chain(&p_vals)
            .map(|&v| Prime::new(v, &order))
            .collect::<Result<_, _>>()?;
        let qm: Vec<Modulus> = qp[..levels].iter().map(|x| *x.modulus()).collect();
        let pm: Vec<Modulus> = qp[levels..].iter().map(|x| *x.modulus()).collect();
        let mut mod_up = Vec::with_capacity(levels);
        for level in 0..levels {
            let mut per_digit = Vec::new();
            for start in (0..=level).step_by(alpha) {
                let digit = start..(start + alpha).min(level + 1);
                let targets: Vec<Modulus> = qm[..=level]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !digit.contains(i))
                    .map(|(_, m)| *m)
                    .chain(pm.iter().copied())
                    .collect();
                per_digit.push(BasisConverter::new(&qm[digit], &targets)?);
            }
            mod_up.push(per_digit);
        }
        let mod_down = DivideAndRound::new(&qm, &pm)?;
        let rescale = (0..levels)
            .map(|l| DivideAndRound::new(&qm[..l], &qm[l..=l]))
            .collect::<Result<Vec<_>, _>>()?;
        let mod_down_rescale = (0..levels)
            .map(|l| {
                let drop: Vec<Modulus> = std::iter::once(qm[l]).chain(pm.iter().copied()).collect();
                DivideAndRound::new(&qm[..l], &drop)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let p_mod_q = qm
            .iter()
            .map(|q| {
                pm.iter()
                    .fold(1 % q.value(), |acc, p| q.mul(acc, q.reduce(p.value())))
            })
            .collect();
        let mixed_radix = MixedRadix::new(&qm)?;

        let mut h = Sha256::new();
        h.update(b"hetal-ckks params v1");
        h.update(log_n.to_le_bytes());
        for v in q_vals.iter().chain([&0u64]).chain(&p_vals) {
            h.update(v.to_le_bytes());
        }
        h.update((dnum as u64).to_le_bytes());
        h.update(log_scale.to_le_bytes());
        match secret {
            SecretDist::Ternary => h.update([0u8]),
            SecretDist::FixedWeight { h: w } => {
                h.update([1u8]);
                h.update((w as u64).to_le_bytes());
            }
        }
        h.update(error_std.to_le_bytes());
        let digest = h.finalize();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&digest[..8]);

        Ok(Self(Arc::new(Inner {
            literal,
            n,
            order,
            qp,
            num_q: levels,
            alpha,
            mod_up,
            mod_down,
            rescale,
            mod_down_rescale,
            p_mod_q,
            mixed_radix,
            log_qp,
            fingerprint: u64::from_le_bytes(fp),
            secure,
        })))
    }

    /// The literal these parameters were built from.
    pub fn literal(&self) -> &ParamsLiteral {
        &self.0.literal
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.0.n
    }

    /// log2 N.
    pub fn log_n(&self) -> u32 {
        self.0.literal.log_n
    }

    /// The maximum number of slots, N/2.
    pub fn max_slots(&self) -> usize {
        self.0.n / 2
    }

    /// The top level L (number of ciphertext primes − 1).
    pub fn max_level(&self) -> usize {
        self.0.num_q - 1
    }

    /// The default scale Δ = 2^log_scale.
    pub fn default_scale(&self) -> f64 {
        (self.0.literal.log_scale as f64).exp2()
    }

    /// log2 of the default scale.
    pub fn log_scale(&self) -> u32 {
        self.0.literal.log_scale
    }

    /// Number of key-switching digits.
    pub fn dnum(&self) -> usize {
        self.0.literal.dnum
    }

    /// log2 of the whole modulus QP.
    pub fn log_qp(&self) -> f64 {
        self.0.log_qp
    }

    /// Whether the set meets 128-bit security by [`max_log_qp`].
    pub fn is_secure(&self) -> bool {
        self.0.secure
    }

    /// The security level claimed: 128 when [`Params::is_secure`], else 0.
    pub fn security_bits(&self) -> u32 {
        if self.0.secure {
            128
        } else {
            0
        }
    }

    /// A hash of the exact parameters (primes included); every serialised object carries it.
    pub fn fingerprint(&self) -> u64 {
        self.0.fingerprint
    }

    /// The secret distribution.
    pub fn secret_dist(&self) -> SecretDist {
        self.0.literal.secret
    }

    /// The error standard deviation.
    pub fn error_std(&self) -> f64 {
        self.0.literal.error_std
    }

    /// The NTT output order of the ring.
    pub fn ntt_order(&self) -> &Arc<NttOrder> {
        &self.0.order
    }

    /// The ciphertext primes `q_0..=q_level`.
    pub fn q_primes(&self, level: usize) -> &[Prime] {
        &self.0.qp[..=level]
    }

    /// The special primes P.
    pub fn p_primes(&self) -> &[Prime] {
        &self.0.qp[self.0.num_q..]
    }

    /// All primes: `q_0..=q_L` then `P`.
    pub fn qp_primes(&self) -> &[Prime] {
        &self.0.qp
    }

    /// The prime of limb `i` of the extended basis `Q_level · P` (laid out `q_0..=q_level`
    /// then `P`).
    pub(crate) fn ext_prime(&self, level: usize, i: usize) -> &Prime {
        if i <= level {
            &self.0.qp[i]
        } else {
            &self.0.qp[self.0.num_q + i - level - 1]
        }
    }

    /// The number of limbs of the extended basis `Q_level · P`.
    pub(crate) fn ext_limbs(&self, level: usize) -> usize {
        level + 1 + self.p_primes().len()
    }

    /// The digits (ranges of ciphertext primes) at `level`.
    pub(crate) fn digits(&self, level: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        let alpha = self.0.alpha;
        (0..=level)
            .step_by(alpha)
            .map(move |s| s..(s + alpha).min(level + 1))
    }

    pub(crate) fn mod_up(&self, level: usize, digit: usize) -> &BasisConverter {
        &self.0.mod_up[level][digit]
    }

    pub(crate) fn mod_down(&self) -> &DivideAndRound {
        &self.0.mod_down
    }

    pub(crate) fn rescaler(&self, level: usize) -> &DivideAndRound {
        &self.0.rescale[level]
    }

    /// Divides by `q_level · P` (level ≥ 1): ModDown and rescale at once.
    pub(crate) fn mod_down_rescaler(&self, level: usize) -> &DivideAndRound {
        &self.0.mod_down_rescale[level]
    }

    /// `P mod q_i` for the ciphertext primes `q_0..=q_L`.
    pub(crate) fn p_mod_q(&self) -> &[u64] {
        &self.0.p_mod_q
    }

    pub(crate) fn mixed_radix(&self) -> &MixedRadix {
        &self.0.mixed_radix
    }

    /// The Galois element of a rotation by `k` slots (left), `5^k mod 2N`.
    pub fn galois_element(&self, k: i64) -> u64 {
        let k = k.rem_euclid(self.max_slots() as i64) as u64;
        hetal_ring::galois_power(5, k, self.0.n)
    }

    /// The Galois element of complex conjugation, `2N − 1`.
    pub fn conjugation_element(&self) -> u64 {
        2 * self.0.n as u64 - 1
    }
}

/// Named parameter sets.
pub mod presets {
    use super::*;

    /// `n16-leveled`: N = 2^16, 24 levels at scale 2^40, dnum 3; 128-bit secure.
    ///
    /// Q = one 50-bit prime and 24 primes alternating around 2^40 (1010 bits); P = eight
    /// primes just below 2^50 (400 bits), which exceeds the largest digit (370 bits).
    /// log2 QP ≈ 1410 ≤ 1747, the HE-standard bound for a uniform ternary secret at N = 2^16.
    /// All primes are below 2^50, so `tfhe-ntt` takes its IFMA path where the CPU has it.
    pub fn n16_leveled() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 16,
            log_q: std::iter::once(50)
                .chain(std::iter::repeat_n(40, 24))
                .collect(),
            log_p: vec![50; 8],
            dnum: 3,
            log_scale: 40,
            secret: SecretDist::Ternary,
            error_std: 3.2,
        }
    }

    /// Levels left to the user after bootstrapping with [`n16_boot`] and the default
    /// [`BootParams`](crate::BootParams).
    pub const N16_BOOT_LEVELS_AFTER: usize = 10;

    /// `n16-boot`: N = 2^16, bootstrappable, 128-bit secure with a dense secret (sparse-secret
    /// encapsulation keeps the h = 32 ephemeral secret inside a 116-bit modulus).
    ///
    /// Q, bottom to top: `q_0` of 46 bits (`q_0/Δ = 2^6`, small so that little noise is
    /// magnified; the arcsine correction of EvalMod makes that possible), 10 user levels at
    /// 2^40 (one more than HETAL's 9: the tenth spares training a bootstrap every step or two,
    /// see the training section of BENCHMARKS.md), 3 SlotsToCoeffs levels at 2^40, 10 EvalMod
    /// levels (sine of degree 127, arcsine of degree 5) and 3 CoeffsToSlots levels on 58-bit
    /// primes (EvalMod works at scale ≈ 2^58); P = eight primes below 2^50 (400 bits), so that
    /// the special limbs of every key switch take the IFMA kernels and NTT where the CPU has
    /// them (a rotation at training's levels 8–10 costs ≈ 0.7 of what it did over seven 60-bit
    /// primes), 52 bits above the largest of the 5 digits (6 × 58 = 348 bits); with a margin
    /// of 2 bits (seven such primes) bootstrapping lost 2 bits of precision (mean) and 7
    /// (worst). log2 QP = 1720 ≤ 1747.
    pub fn n16_boot() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 16,
            log_q: std::iter::once(46)
                .chain(std::iter::repeat_n(40, N16_BOOT_LEVELS_AFTER + 3))
                .chain(std::iter::repeat_n(58, 7 + 3 + 3))
                .collect(),
            log_p: vec![50; 8],
            dnum: 5,
            log_scale: 40,
            secret: SecretDist::Ternary,
            error_std: 3.2,
        }
    }

    /// **Insecure** test set shaped like [`n16_boot`] at a small N: `q_0` of 46 bits,
    /// `levels_after + 3` primes of 40 bits (user levels and SlotsToCoeffs), 13 of 55 bits
    /// (EvalMod and CoeffsToSlots), P three 61-bit primes, a dense secret (bootstrap it with
    /// sparse-secret encapsulation, the default of `BootParams`). Tests only, built with
    /// [`Params::new_insecure`].
    pub fn insecure_boot_test(log_n: u32, levels_after: usize) -> ParamsLiteral {
        ParamsLiteral {
            log_n,
            log_q: std::iter::once(46)
                .chain(std::iter::repeat_n(40, levels_after + 3))
                .chain(std::iter::repeat_n(55, 7 + 3 + 3))
                .collect(),
            log_p: vec![61; 3],
            dnum: (levels_after + 17).div_ceil(3),
            log_scale: 40,
            secret: SecretDist::Ternary,
            error_std: 3.2,
        }
    }

    /// The names of the presets, for the command line.
    pub const NAMES: &[&str] = &["n16-leveled", "n16-boot"];

    /// Looks a secure preset up by name.
    pub fn by_name(name: &str) -> Option<ParamsLiteral> {
        match name {
            "n16-leveled" => Some(n16_leveled()),
            "n16-boot" => Some(n16_boot()),
            _ => None,
        }
    }

    /// **Insecure** test set: N = 2^`log_n`, `levels` levels at scale 2^40, dnum 3, three
    /// 50-bit special primes. Far too large a modulus for this N: tests only, built with
    /// [`Params::new_insecure`].
    pub fn insecure_test(log_n: u32, levels: usize) -> ParamsLiteral {
        ParamsLiteral {
            log_n,
            log_q: std::iter::once(50)
                .chain(std::iter::repeat_n(40, levels))
                .collect(),
            log_p: vec![50; 3],
            // Digits of at most 3 primes (130 bits) stay below P (150 bits).
            dnum: (levels + 1).div_ceil(3),
            log_scale: 40,
            secret: SecretDist::Ternary,
            error_std: 3.2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_preset_is_accepted_and_within_bound() {
        let lit = presets::n16_leveled();
        let p = Params::new(lit).unwrap();
        assert!(p.is_secure());
        assert!(p.log_qp() <= 1747.0);
        assert_eq!(p.max_level(), 24);
        assert!(p
            .q_primes(24)
            .iter()
            .chain(p.p_primes())
            .all(|q| q.value() < 1 << 50 || q.value() < 1 << 41));
    }

    #[test]
    fn bootstrapping_preset_is_secure_and_has_the_levels() {
        let p = Params::new(presets::n16_boot()).unwrap();
        assert!(
            p.is_secure() && p.log_qp() <= 1747.0,
            "log QP {}",
            p.log_qp()
        );
        assert_eq!(
            p.max_level(),
            presets::N16_BOOT_LEVELS_AFTER + 3 + 7 + 3 + 3
        );
        // The ephemeral set of encapsulation (q_0 and one 61-bit prime) is within the h = 32
        // bound.
        assert!(46 + 61 <= max_log_qp(16, SecretDist::FixedWeight { h: 32 }).unwrap());
    }

    #[test]
    fn over_the_bound_is_refused() {
        // 1800 bits at N = 2^16: above the 1747-bit bound.
        let lit = ParamsLiteral {
            log_n: 16,
            log_q: vec![50; 30],
            log_p: vec![50; 6],
            dnum: 5,
            log_scale: 40,
            secret: SecretDist::Ternary,
            error_std: 3.2,
        };
        match Params::new(lit.clone()) {
            Err(CkksError::Insecure {
                bound: 1747,
                log_qp,
                ..
            }) => assert!(log_qp > 1747.0),
            other => panic!("expected Insecure, got {other:?}"),
        }
        // h = 192 at 1481 < log QP: refused too, while the dense secret is fine.
        let sparse = ParamsLiteral {
            log_q: vec![50; 24],
            log_p: vec![50; 6],
            secret: SecretDist::FixedWeight { h: 192 },
            ..lit.clone()
        };
        assert!(matches!(
            Params::new(sparse),
            Err(CkksError::Insecure { bound: 1481, .. })
        ));
        // Small N with a big modulus: refused, unless asked for by the insecure constructor.
        let small = presets::insecure_test(12, 4);
        assert!(matches!(
            Params::new(small.clone()),
            Err(CkksError::Insecure { .. })
        ));
        assert!(!Params::new_insecure(small).unwrap().is_secure());
        // Too weak an error.
        let weak = ParamsLiteral {
            error_std: 1.0,
            ..presets::n16_leveled()
        };
        assert!(matches!(Params::new(weak), Err(CkksError::Insecure { .. })));
    }

    #[test]
    fn malformed_literals_are_errors() {
        let base = presets::insecure_test(10, 3);
        for bad in [
            ParamsLiteral {
                log_n: 3,
                ..base.clone()
            },
            ParamsLiteral {
                dnum: 0,
                ..base.clone()
            },
            ParamsLiteral {
                log_q: vec![],
                ..base.clone()
            },
            ParamsLiteral {
                log_p: vec![62],
                ..base.clone()
            },
            ParamsLiteral {
                log_p: vec![30],
                ..base.clone()
            },
            ParamsLiteral {
                error_std: f64::NAN,
                ..base.clone()
            },
        ] {
            assert!(matches!(
                Params::new_insecure(bad),
                Err(CkksError::InvalidParams(_))
            ));
        }
    }

    #[test]
    fn galois_elements() {
        let p = Params::new_insecure(presets::insecure_test(10, 2)).unwrap();
        assert_eq!(p.galois_element(0), 1);
        assert_eq!(p.galois_element(1), 5);
        assert_eq!(p.galois_element(2), 25);
        // Rotating by -1 is rotating by N/2 - 1: 5^{N/2 - 1} · 5 = 1 mod 2N.
        assert_eq!(p.galois_element(-1) * 5 % 2048, 1);
    }
}
