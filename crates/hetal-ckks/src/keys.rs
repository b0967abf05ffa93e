//! Keys, key generation, encryption and decryption.
//!
//! - [`SecretKey`]: stays with the client. It zeroizes on drop, prints redacted, cannot be
//!   cloned, and has no path into [`EvalKeySet`] or [`PublicKey`] (neither type has a field
//!   that could hold it).
//! - [`PublicKey`] `(b, a) = (-a·s + e, a)` over `Q_L · P`. Encryption works over `Q_L · P`
//!   and divides by `P` (as Lattigo does), so a fresh public-key ciphertext carries only the
//!   rounding noise `ε0 + ε1·s` of that division, the same as a key switch.
//! - [`SwitchingKey`] from `s'` to `s` (hybrid key switching, Han–Ki CT-RSA 2020): for each
//!   digit `j`, `(b_j, a_j)` over `Q_L·P` with `b_j = -a_j·s + e_j + P·[i ∈ digit j]·s'`
//!   (residue-wise). Relinearization uses `s' = s²`, a rotation by `k` uses `s' = σ_{5^k}(s)`,
//!   conjugation `s' = σ_{-1}(s)`.
//! - [`EvalKeySet`]: the public evaluation keys a server holds. Only the rotations asked for are
//!   generated.

use std::collections::BTreeMap;
use std::fmt;

use rand::{CryptoRng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroize;

use hetal_ring::{sampling, Automorphism, Prime, RnsPoly};

use crate::{Ciphertext, CkksError, Params, Plaintext, SecretDist};

/// The secret key `s`, a small polynomial. Client-side only.
pub struct SecretKey {
    pub(crate) params: Params,
    /// Small signed coefficients of `s`.
    pub(crate) coeffs: Vec<i64>,
    /// `s` in NTT form over all primes `Q_L · P`.
    pub(crate) poly: RnsPoly,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        self.poly.limbs_mut().for_each(|l| l.zeroize());
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A public encryption key `(b, a)` in NTT form over `Q_L · P`.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub(crate) b: RnsPoly,
    pub(crate) a: RnsPoly,
}

/// A key-switching key for ciphertexts up to its [`level`](SwitchingKey::level): one
/// `(b_j, a_j)` pair per digit of that level, NTT form over `Q_level · P`. A key below the top
/// level is smaller (fewer digits, fewer limbs) and serves only ciphertexts at or below its
/// level. The residues are held in Montgomery form (`x·2^64 mod q`), the form key switching's
/// inner product reduces cheapest ([`hetal_ring::kernels::dot_product_pair_montgomery`]);
/// files hold the canonical residues ([`SwitchingKey::from_canonical`],
/// [`SwitchingKey::canonical_digits`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchingKey {
    pub(crate) digits: Vec<[RnsPoly; 2]>,
    pub(crate) level: usize,
}

/// Applies `f` to the `Q_level` part and to the `P` part of `poly` (over `Q_level · P`), each
/// with its primes.
fn on_ext_parts(
    params: &Params,
    level: usize,
    poly: &mut RnsPoly,
    f: impl Fn(&mut RnsPoly, &[Prime]),
) {
    let mut p_part = poly.split_off(level + 1);
    f(poly, params.q_primes(level));
    f(&mut p_part, params.p_primes());
    poly.extend_from(&p_part);
}

impl SwitchingKey {
    /// A key for ciphertexts up to `level` from its canonical residues (over `Q_level · P`).
    pub(crate) fn from_canonical(
        mut digits: Vec<[RnsPoly; 2]>,
        level: usize,
        params: &Params,
    ) -> Self {
        digits
            .iter_mut()
            .flatten()
            .for_each(|p| on_ext_parts(params, level, p, RnsPoly::to_montgomery));
        Self { digits, level }
    }

    /// The canonical residues of each digit's `(b_j, a_j)` (over `Q_level · P`).
    pub(crate) fn canonical_digits<'a>(
        &'a self,
        params: &'a Params,
    ) -> impl Iterator<Item = [RnsPoly; 2]> + 'a {
        self.digits.iter().map(move |d| {
            d.clone().map(|mut p| {
                on_ext_parts(params, self.level, &mut p, RnsPoly::from_montgomery);
                p
            })
        })
    }

    /// The highest ciphertext level the key serves.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Size of the key material in bytes (8 per residue).
    pub fn size_bytes(&self) -> usize {
        self.digits
            .iter()
            .map(|[b, a]| 8 * (b.data().len() + a.data().len()))
            .sum()
    }
}

/// The public evaluation keys: relinearization and the requested Galois keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalKeySet {
    pub(crate) relin: Option<SwitchingKey>,
    pub(crate) galois: BTreeMap<u64, SwitchingKey>,
}

impl EvalKeySet {
    /// Whether a relinearization key is present.
    pub fn has_relin(&self) -> bool {
        self.relin.is_some()
    }

    /// The Galois elements with a key.
    pub fn galois_elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.galois.keys().copied()
    }

    /// Total key material in bytes.
    pub fn size_bytes(&self) -> usize {
        self.relin
            .iter()
            .chain(self.galois.values())
            .map(SwitchingKey::size_bytes)
            .sum()
    }

    /// The key of `σ_g` (for a rotation by `rotation`, or the conjugation), checked to serve
    /// ciphertexts at `level`.
    pub(crate) fn galois_key(
        &self,
        g: u64,
        rotation: i64,
        level: usize,
    ) -> Result<&SwitchingKey, CkksError> {
        let key = self.galois.get(&g).ok_or(CkksError::MissingGaloisKey {
            rotation,
            galois_element: g,
        })?;
        if key.level < level {
            return Err(CkksError::KeyLevel {
                rotation,
                key_level: key.level,
                level,
            });
        }
        Ok(key)
    }
}

/// Generates keys from a CSPRNG (ChaCha20 seeded by the operating system, unless a seeded
/// generator is supplied for reproducible tests).
pub struct KeyGenerator<R: CryptoRng = ChaCha20Rng> {
    params: Params,
    rng: R,
}

impl KeyGenerator<ChaCha20Rng> {
    /// A key generator seeded from the operating system's entropy (`getrandom`).
    pub fn new(params: &Params) -> Self {
        Self {
            params: params.clone(),
            rng: ChaCha20Rng::from_os_rng(),
        }
    }
}

impl<R: CryptoRng> KeyGenerator<R> {
    /// A key generator over the given CSPRNG.
    pub fn with_rng(params: &Params, rng: R) -> Self {
        Self {
            params: params.clone(),
            rng,
        }
    }

    /// Samples a secret key from the parameters' secret distribution.
    pub fn gen_secret_key(&mut self) -> SecretKey {
        let n = self.params.n();
        let coeffs = match self.params.secret_dist() {
            SecretDist::Ternary => sampling::ternary(&mut self.rng, n),
            SecretDist::FixedWeight { h } => sampling::fixed_hamming_weight(&mut self.rng, n, h),
        };
        let primes = self.params.qp_primes();
        let mut poly = RnsPoly::from_signed(&coeffs, primes);
        poly.ntt(primes);
        SecretKey {
            params: self.params.clone(),
            coeffs,
            poly,
        }
    }

    fn error_poly(&mut self, primes: &[hetal_ring::Prime]) -> RnsPoly {
        let e = sampling::gaussian(&mut self.rng, self.params.n(), self.params.error_std());
        let mut p = RnsPoly::from_signed(&e, primes);
        p.ntt(primes);
        p
    }

    /// The public key of `sk`.
    pub fn gen_public_key(&mut self, sk: &SecretKey) -> PublicKey {
        let params = self.params.clone();
        let primes = params.qp_primes();
        let a = sampling::uniform(&mut self.rng, self.params.n(), primes);
        let mut b = self.error_poly(primes);
        let mut as_ = a.clone();
        as_.mul_assign(&sk.poly, primes);
        b.sub_assign(&as_, primes);
        PublicKey { b, a }
    }

    /// A switching key from `s_from` (NTT form over `Q_L · P`) to `sk`, at the top level.
    fn gen_switching_key(&mut self, sk: &SecretKey, s_from: &RnsPoly) -> SwitchingKey {
        self.gen_switching_key_to(&sk.poly, s_from, self.params.max_level())
    }

    /// A switching key from `s_from` to `s_to` (both NTT form over `Q_L · P`) for ciphertexts
    /// up to `level`: the digits of that level over `Q_level · P`.
    fn gen_switching_key_to(
        &mut self,
        s_to: &RnsPoly,
        s_from: &RnsPoly,
        level: usize,
    ) -> SwitchingKey {
        let params = self.params.clone();
        let n = params.n();
        let num_q = params.max_level() + 1;
        let p_mod_q = params.p_mod_q();
        // The key's two parts: Q_level (limbs 0..=level of the secrets) and P.
        let parts = [
            (0..level + 1, params.q_primes(level)),
            (num_q..num_q + params.p_primes().len(), params.p_primes()),
        ];
        let digits = params
            .digits(level)
            .map(|range| {
                let e = sampling::gaussian(&mut self.rng, n, params.error_std());
                let mut key = [RnsPoly::zero(n, 0), RnsPoly::zero(n, 0)];
                for (limbs, primes) in &parts {
                    let a = sampling::uniform(&mut self.rng, n, primes);
                    let mut b = RnsPoly::from_signed(&e, primes);
                    b.ntt(primes);
                    let mut as_ = a.clone();
                    as_.mul_assign(&s_to.sub_limbs(limbs.clone()), primes);
                    b.sub_assign(&as_, primes);
                    // + P·s_from on the digit's own limbs (all in the Q part).
                    for i in range.clone().filter(|i| limbs.contains(i)) {
                        let m = primes[i].modulus();
                        let (w, ws) = (p_mod_q[i], m.shoup(p_mod_q[i]));
                        for (x, &s) in b.limb_mut(i).iter_mut().zip(s_from.limb(i)) {
                            *x = m.add(*x, m.mul_shoup(s, w, ws));
                        }
                    }
                    key[0].extend_from(&b);
                    key[1].extend_from(&a);
                }
                key
            })
            .collect();
        SwitchingKey::from_canonical(digits, level, &params)
    }

    /// A switching key from `from` to `to`, two secret keys of these parameters: after
    /// [`Evaluator::switch_key`](crate::Evaluator::switch_key), a ciphertext under `from`
    /// decrypts under `to`. Used by sparse-secret encapsulation in bootstrapping (a dense key
    /// to an ephemeral sparse one and back).
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] if a key belongs to other parameters.
    pub fn gen_switching_key_between(
        &mut self,
        from: &SecretKey,
        to: &SecretKey,
    ) -> Result<SwitchingKey, CkksError> {
        if from.params != self.params || to.params != self.params {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(self.gen_switching_key(to, &from.poly))
    }

    /// The relinearization key (from `s²` to `s`).
    pub fn gen_relin_key(&mut self, sk: &SecretKey) -> SwitchingKey {
        let mut s2 = sk.poly.clone();
        s2.mul_assign(&sk.poly, self.params.qp_primes());
        self.gen_switching_key(sk, &s2)
    }

    /// The Galois key for `σ_g` (from `σ_g(s)` to `s`), for ciphertexts at every level.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] for an even `g`.
    pub fn gen_galois_key(&mut self, sk: &SecretKey, g: u64) -> Result<SwitchingKey, CkksError> {
        self.gen_galois_key_at(sk, g, self.params.max_level())
    }

    /// The Galois key for `σ_g` for ciphertexts up to `level` only: the digits and limbs of
    /// that level, `(level + 1 + |P|)·⌈(level + 1)/α⌉` limbs against the top level's
    /// `(L + 1 + |P|)·dnum` (at N = 2^16, level 10 of `n16-boot`: 38 MB against 143 MB).
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] for an even `g`; [`CkksError::NotEnoughLevels`] for a
    /// level above the top.
    pub fn gen_galois_key_at(
        &mut self,
        sk: &SecretKey,
        g: u64,
        level: usize,
    ) -> Result<SwitchingKey, CkksError> {
        self.check_key_level(level)?;
        // The key switches s to σ_g^{-1}(s): the evaluator key-switches c1 first and applies
        // σ_g to the two output polynomials afterwards (σ_g(σ_g^{-1}(s)) = s), which moves the
        // permutation from the decomposed digits (over Q·P, one per digit) to the result.
        let inv = hetal_ring::galois_inverse(g, self.params.n())
            .ok_or_else(|| CkksError::InvalidParams(format!("Galois element {g} is even")))?;
        let auto = Automorphism::new(inv, self.params.ntt_order())
            .ok_or_else(|| CkksError::InvalidParams(format!("Galois element {g} is even")))?;
        let mut s_inv = RnsPoly::zero(self.params.n(), sk.poly.num_limbs());
        auto.apply_ntt(&sk.poly, &mut s_inv);
        Ok(self.gen_switching_key_to(&s_inv, &sk.poly, level))
    }

    /// An evaluation key set with the relinearization key, keys for the given slot rotations
    /// (left rotations by `k`; negative is right), and the conjugation key if asked, all for
    /// every level.
    pub fn gen_eval_keys(
        &mut self,
        sk: &SecretKey,
        rotations: &[i64],
        conjugation: bool,
    ) -> EvalKeySet {
        let mut set = EvalKeySet {
            relin: Some(self.gen_relin_key(sk)),
            galois: BTreeMap::new(),
        };
        let top = self.params.max_level();
        let mut elements: Vec<u64> = rotations
            .iter()
            .map(|&k| self.params.galois_element(k))
            .collect();
        if conjugation {
            elements.push(self.params.conjugation_element());
        }
        self.add_galois_keys(&mut set, sk, &elements, top);
        set
    }

    /// Adds to `set` keys for the slot rotations `rotations` that serve ciphertexts up to
    /// `level` only (smaller keys, see [`KeyGenerator::gen_galois_key_at`]); a rotation that
    /// already has a key keeps it.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] for a level above the top.
    pub fn add_rotation_keys_at(
        &mut self,
        set: &mut EvalKeySet,
        sk: &SecretKey,
        rotations: &[i64],
        level: usize,
    ) -> Result<(), CkksError> {
        self.check_key_level(level)?;
        let elements: Vec<u64> = rotations
            .iter()
            .map(|&k| self.params.galois_element(k))
            .collect();
        self.add_galois_keys(set, sk, &elements, level);
        Ok(())
    }

    /// A key level must be one of the parameters' levels.
    fn check_key_level(&self, level: usize) -> Result<(), CkksError> {
        let top = self.params.max_level();
        if level > top {
            return Err(CkksError::NotEnoughLevels {
                have: top,
                need: level,
            });
        }
        Ok(())
    }

    fn add_galois_keys(
        &mut self,
        set: &mut EvalKeySet,
        sk: &SecretKey,
        elements: &[u64],
        level: usize,
    ) {
        for &g in elements {
            if g != 1 && !set.galois.contains_key(&g) {
                // Odd by construction (powers of 5 and 2N - 1) and the level is checked, so
                // this cannot fail.
                if let Ok(k) = self.gen_galois_key_at(sk, g, level) {
                    set.galois.insert(g, k);
                }
            }
        }
    }
}

fn check_level(params: &Params, level: usize) -> Result<(), CkksError> {
    if level > params.max_level() {
        return Err(CkksError::ParamsMismatch);
    }
    Ok(())
}

impl PublicKey {
    /// Encrypts `pt`: `(b·u + e0, a·u + e1)` over `Q_L · P` with ternary `u` and Gaussian
    /// errors, divided by `P` with rounding, dropped to the plaintext's level, plus `(m, 0)`.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] if the plaintext or key is not from these parameters.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        params: &Params,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        let level = pt.level();
        check_level(params, level)?;
        let primes = params.qp_primes();
        if pt.poly.n() != params.n()
            || self.a.num_limbs() != primes.len()
            || self.a.n() != params.n()
        {
            return Err(CkksError::ParamsMismatch);
        }
        let n = params.n();
        let mut u = RnsPoly::from_signed(&sampling::ternary(rng, n), primes);
        u.ntt(primes);
        let mut noise = || {
            let mut e =
                RnsPoly::from_signed(&sampling::gaussian(rng, n, params.error_std()), primes);
            e.ntt(primes);
            e
        };
        let (mut c0, mut c1) = (noise(), noise());
        c0.mul_add_assign(&self.b, &u, primes);
        c1.mul_add_assign(&self.a, &u, primes);
        let top = params.max_level();
        let (mut c0, mut c1) = rayon::join(
            || crate::keyswitch::mod_down(params, c0, top),
            || crate::keyswitch::mod_down(params, c1, top),
        );
        c0.truncate(level + 1);
        c1.truncate(level + 1);
        c0.add_assign(&pt.poly, params.q_primes(level));
        Ok(Ciphertext {
            c0,
            c1,
            scale: pt.scale,
            slots: pt.slots,
        })
    }
}

impl SecretKey {
    /// The same secret polynomial represented over the primes of `params` (same N), e.g. to
    /// use one secret in two parameter sets that share `q_0`, as bootstrapping does.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] if the ring degrees differ.
    pub fn reinterpret(&self, params: &Params) -> Result<SecretKey, CkksError> {
        if params.n() != self.params.n() {
            return Err(CkksError::ParamsMismatch);
        }
        let primes = params.qp_primes();
        let mut poly = RnsPoly::from_signed(&self.coeffs, primes);
        poly.ntt(primes);
        Ok(SecretKey {
            params: params.clone(),
            coeffs: self.coeffs.clone(),
            poly,
        })
    }

    /// The parameters the key belongs to.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Encrypts `pt` under the secret key: `(-a·s + e + m, a)`.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] if the plaintext is not from these parameters.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        let params = &self.params;
        check_level(params, pt.level())?;
        if pt.poly.n() != params.n() {
            return Err(CkksError::ParamsMismatch);
        }
        let primes = params.q_primes(pt.level());
        let c1 = sampling::uniform(rng, params.n(), primes);
        let mut c0 = RnsPoly::from_signed(
            &sampling::gaussian(rng, params.n(), params.error_std()),
            primes,
        );
        c0.ntt(primes);
        c0.add_assign(&pt.poly, primes);
        let mut as_ = c1.clone();
        as_.mul_assign(&self.poly, primes);
        c0.sub_assign(&as_, primes);
        Ok(Ciphertext {
            c0,
            c1,
            scale: pt.scale,
            slots: pt.slots,
        })
    }

    /// Decrypts: `c0 + c1·s`.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] if the ciphertext is not from these parameters.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext, CkksError> {
        check_level(&self.params, ct.level())?;
        if ct.n() != self.params.n() || ct.c1.num_limbs() != ct.c0.num_limbs() {
            return Err(CkksError::ParamsMismatch);
        }
        let primes = self.params.q_primes(ct.level());
        let mut m = ct.c0.clone();
        m.mul_add_assign(&ct.c1, &self.poly, primes);
        Ok(Plaintext {
            poly: m,
            scale: ct.scale,
            slots: ct.slots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    /// The canonical residues (those files hold) are the key itself: for a key from `s²` to
    /// `s` at level `l`, `b_j + a_j·s − P·s²` on digit `j`'s limbs and `b_j + a_j·s` elsewhere
    /// is the small key error, over `Q_l · P`. The in-memory (Montgomery) residues are not.
    /// At the top level (the relinearization key) and below it (a smaller key).
    #[test]
    fn canonical_digits_satisfy_the_key_equation() {
        let params = Params::new_insecure(presets::insecure_test(10, 4)).unwrap();
        let mut kg = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(3));
        let sk = kg.gen_secret_key();
        let qp = params.qp_primes();
        let mut s2 = sk.poly.clone();
        s2.mul_assign(&sk.poly, qp);
        let top = params.max_level();
        let num_q = top + 1;
        for (key, level) in [
            (kg.gen_relin_key(&sk), top),
            (kg.gen_switching_key_to(&sk.poly, &s2, 1), 1),
        ] {
            assert_eq!(key.level(), level);
            assert_eq!(key.digits.len(), params.digits(level).count());
            // The limbs of Q_level · P within the full basis.
            let limbs: Vec<usize> = (0..=level).chain(num_q..qp.len()).collect();
            for (j, range) in params.digits(level).enumerate() {
                let [b, a] = key.canonical_digits(&params).nth(j).unwrap();
                assert_eq!(b.num_limbs(), limbs.len());
                assert_ne!(
                    key.digits[j][0], b,
                    "the key is not held in Montgomery form"
                );
                for (t, &i) in limbs.iter().enumerate() {
                    let (p, m) = (&qp[i], qp[i].modulus());
                    let mut e: Vec<u64> = (0..params.n())
                        .map(|c| {
                            let x = m.add(b.limb(t)[c], m.mul(a.limb(t)[c], sk.poly.limb(i)[c]));
                            if range.contains(&i) {
                                m.sub(x, m.mul(s2.limb(i)[c], params.p_mod_q()[i]))
                            } else {
                                x
                            }
                        })
                        .collect();
                    p.inverse(&mut e);
                    let q = p.value();
                    assert!(
                        e.iter().all(|&x| x.min(q - x) <= 40),
                        "level {level}, digit {j}, limb {i}: the canonical residues are not the key"
                    );
                }
            }
        }
    }
}
