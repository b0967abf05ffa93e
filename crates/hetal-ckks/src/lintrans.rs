//! Plaintext-matrix × ciphertext linear transforms in diagonal form, evaluated with the
//! baby-step giant-step (BSGS) method.
//!
//! # What it computes
//!
//! A [`LinearTransform`] is a square `slots × slots` complex matrix `M` stored by its nonzero
//! generalized diagonals `d_k[i] = M[i][(i + k) mod slots]`, for which
//!
//! ```text
//! M·v = Σ_k d_k ⊙ rot(v, k)        (rot = cyclic left rotation of the slots)
//! ```
//!
//! (the diagonal method of Halevi–Shoup, "Algorithms in HElib", CRYPTO 2014). Writing
//! `k = n1·j + i` with `0 ≤ i < n1` (baby steps) and `0 ≤ j < n2 = slots / n1` (giant steps)
//! and using `rot(a ⊙ b, s) = rot(a, s) ⊙ rot(b, s)`,
//!
//! ```text
//! M·v = Σ_j rot( Σ_i rot(d_{n1·j+i}, −n1·j) ⊙ rot(v, i), n1·j )
//! ```
//!
//! (the baby-step giant-step form of Halevi–Shoup, "Faster homomorphic linear transformations
//! in HElib", CRYPTO 2018, as used by Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, Eurocrypt
//! 2021). The pre-rotated diagonals `rot(d_k, −n1·j)` are known in the clear, so they are
//! rotated and encoded once ([`LinearTransform::encode`] gives an
//! [`EncodedLinearTransform`] for one level) and every later application encodes nothing.
//! [`LinearTransform::apply_plain`] evaluates the same decomposition on cleartext vectors
//! (the reference twin for tests).
//!
//! With fewer slots than `N/2` (sparse packing) the slot vector repeats `N/(2·slots)` times,
//! so a slot rotation by `k` acts cyclically on the `slots` values; every rotation used here
//! is taken in `1..slots`, so the Galois keys are those of the sparse rotation group.
//!
//! # Cost: double hoisting
//!
//! Evaluated with double hoisting (Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, Eurocrypt 2021):
//! every intermediate stays over the extended basis `Q·P`, `P` times too large, and is divided
//! by `q_level·P` once at the end. For a transform with `D` nonzero diagonals, `B` distinct
//! nonzero baby steps `k mod n1` and `G` distinct nonzero giant steps `⌊k / n1⌋` (for a dense
//! matrix `B = n1 − 1`, `G = n2 − 1`):
//!
//! - `B` baby-step rotations of the input sharing one decomposition, each a key-switch inner
//!   product and an automorphism over `Q·P`, **no ModDown**;
//! - `D` plaintext multiplications over `Q·P` (the diagonals are encoded there, in
//!   Montgomery form), summed per giant step with one modular reduction per residue;
//! - `G` giant-step rotations of the partial sums, each one ModDown of `c1` only, its
//!   decomposition and inner product, the result kept over `Q·P` (the partial sum's `c0`,
//!   already `P` times too large, is added as it is);
//! - one division by `q_level·P` of the total (ModDown and rescale in one rounding): exactly
//!   one level. The diagonals are encoded at scale `q_level` by default, so the output scale
//!   equals the input scale exactly.
//!
//! Against single hoisting this saves `2·B + G` ModDowns (each `|P|` inverse and `level + 1`
//! forward NTTs with a basis conversion) and the rescale, for `|P|` more limbs in each
//! plaintext product and encoded diagonal.
//!
//! The baby-step count `n1` (a power of two) is by default the one minimizing `B + G`, ties
//! going to the larger `n1` (more hoisted, fewer full key switches); for a dense matrix this
//! is about `sqrt(slots)`, `2·sqrt(slots) − 2` key switches instead of the `slots − 1` of the
//! plain diagonal method. Keys are needed for the rotations in
//! [`LinearTransform::rotations_needed`] (or [`EncodedLinearTransform::rotations_needed`]).
//!
//! # Example
//!
//! ```
//! use hetal_ckks::{presets, Encoder, Evaluator, KeyGenerator, LinearTransform, Params};
//! use num_complex::Complex64;
//! use rand::SeedableRng;
//! use std::sync::Arc;
//!
//! let params = Params::new_insecure(presets::insecure_test(10, 2)).unwrap();
//! // A 4 × 4 cyclic difference: (M·v)[i] = v[i + 1] − v[i].
//! let (one, minus_one) = (Complex64::new(1.0, 0.0), Complex64::new(-1.0, 0.0));
//! let lt = LinearTransform::from_diagonals(4, [(1, vec![one; 4]), (0, vec![minus_one; 4])])
//!     .unwrap();
//! let mut keygen = KeyGenerator::with_rng(&params, rand_chacha::ChaCha20Rng::seed_from_u64(1));
//! let sk = keygen.gen_secret_key();
//! let keys = Arc::new(keygen.gen_eval_keys(&sk, &lt.rotations_needed(), false));
//! let (enc, eval) = (Encoder::new(&params), Evaluator::new(&params, keys));
//! let v = [1.0, 2.0, 4.0, 8.0].map(|x| Complex64::new(x, 0.0));
//! let pt = enc.encode(&v, 4, params.max_level(), params.default_scale()).unwrap();
//! let ct = sk.encrypt(&pt, &mut rand_chacha::ChaCha20Rng::seed_from_u64(2)).unwrap();
//! let m = lt.encode(&enc, ct.level()).unwrap(); // once per level; reusable
//! let out = m.apply(&eval, &ct).unwrap();
//! assert_eq!((out.level(), out.scale()), (ct.level() - 1, ct.scale()));
//! let got = enc.decode(&sk.decrypt(&out).unwrap());
//! for (g, w) in got.iter().zip([1.0, 2.0, 4.0, -7.0]) {
//!     assert!((g.re - w).abs() < 1e-6);
//! }
//! ```
//!
//! # Not done here
//!
//! No merging of several transforms into one (as in the FFT-like factorizations used for
//! bootstrapping), and no rectangular matrices (pad them to square).

use std::collections::{BTreeMap, BTreeSet};

use num_complex::Complex64;
use rayon::prelude::*;

use crate::ciphertext::{ExtCiphertext, ExtPlaintext};
use crate::{Ciphertext, CkksError, Encoder, Evaluator, Params};

/// Left rotation: `out[t] = v[(t + s) mod n]`.
fn rotate_left(v: &[Complex64], s: usize) -> Vec<Complex64> {
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let s = s % n;
    v[s..].iter().chain(&v[..s]).copied().collect()
}

/// A transform is encoded at a level in `1..=max_level`: its rescale needs one level below.
fn check_level(params: &Params, level: usize) -> Result<(), CkksError> {
    if level > params.max_level() {
        return Err(CkksError::NotEnoughLevels {
            have: params.max_level(),
            need: level,
        });
    }
    if level == 0 {
        return Err(CkksError::NotEnoughLevels { have: 0, need: 1 });
    }
    Ok(())
}

/// A square complex matrix in diagonal form: `d_k[i] = M[i][(i + k) mod slots]` for the
/// nonzero diagonals `k` in `0..slots`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearTransform {
    slots: usize,
    diagonals: BTreeMap<usize, Vec<Complex64>>,
}

/// One giant step of a BSGS plan: the giant index `j` and the baby indices `i` of the
/// nonzero diagonals `n1·j + i`.
type Plan = Vec<(usize, Vec<usize>)>;

impl LinearTransform {
    fn check_size(slots: usize) -> Result<(), CkksError> {
        if !slots.is_power_of_two() {
            return Err(CkksError::InvalidParams(format!(
                "linear transform size {slots} is not a power of two"
            )));
        }
        Ok(())
    }

    /// From a dense matrix given by rows: `rows[i][l] = M[i][l]`. All-zero diagonals are
    /// dropped.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] if the matrix is not square or its size is not a power of
    /// two.
    pub fn from_dense(rows: &[Vec<Complex64>]) -> Result<Self, CkksError> {
        let slots = rows.len();
        Self::check_size(slots)?;
        if let Some(i) = rows.iter().position(|r| r.len() != slots) {
            return Err(CkksError::InvalidParams(format!(
                "matrix is not square: row {i} has {} entries, expected {slots}",
                rows[i].len()
            )));
        }
        let diagonals = (0..slots)
            .map(|k| {
                let d: Vec<Complex64> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| r[(i + k) % slots])
                    .collect();
                (k, d)
            })
            .filter(|(_, d)| d.iter().any(|z| *z != Complex64::new(0.0, 0.0)))
            .collect();
        Ok(Self { slots, diagonals })
    }

    /// From diagonals `(k, d_k)` with `d_k[i] = M[i][(i + k) mod slots]`. The offsets `k`
    /// are taken modulo `slots` (so `−1` is the diagonal `slots − 1`, just below the main
    /// one); diagonals landing on the same offset are added; all-zero diagonals are dropped.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] if `slots` is not a power of two or a diagonal's length
    /// is not `slots`.
    pub fn from_diagonals<I>(slots: usize, diagonals: I) -> Result<Self, CkksError>
    where
        I: IntoIterator<Item = (i64, Vec<Complex64>)>,
    {
        Self::check_size(slots)?;
        let mut map: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (k, d) in diagonals {
            if d.len() != slots {
                return Err(CkksError::InvalidParams(format!(
                    "diagonal {k} has {} entries, expected {slots}",
                    d.len()
                )));
            }
            // `slots` is a power of two no larger than memory, so it fits in an i64.
            let k = k.rem_euclid(slots as i64) as usize;
            match map.get_mut(&k) {
                Some(acc) => acc.iter_mut().zip(&d).for_each(|(a, b)| *a += b),
                None => {
                    map.insert(k, d);
                }
            }
        }
        map.retain(|_, d| d.iter().any(|z| *z != Complex64::new(0.0, 0.0)));
        Ok(Self {
            slots,
            diagonals: map,
        })
    }

    /// The matrix size (the number of slots it acts on).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The number of nonzero diagonals.
    pub fn num_diagonals(&self) -> usize {
        self.diagonals.len()
    }

    /// The offsets `k` of the nonzero diagonals, increasing.
    pub fn diagonal_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.diagonals.keys().copied()
    }

    /// The diagonal `d_k` (offset modulo `slots`), if nonzero.
    pub fn diagonal(&self, k: usize) -> Option<&[Complex64]> {
        self.diagonals.get(&(k % self.slots)).map(Vec::as_slice)
    }

    /// The dense matrix, by rows.
    pub fn to_dense(&self) -> Vec<Vec<Complex64>> {
        let n = self.slots;
        let mut rows = vec![vec![Complex64::new(0.0, 0.0); n]; n];
        for (&k, d) in &self.diagonals {
            for (i, &x) in d.iter().enumerate() {
                rows[i][(i + k) % n] = x;
            }
        }
        rows
    }

    fn check_baby_steps(&self, n1: usize) -> Result<(), CkksError> {
        if !n1.is_power_of_two() || n1 > self.slots {
            return Err(CkksError::InvalidParams(format!(
                "baby-step count {n1} must be a power of two in 1..={}",
                self.slots
            )));
        }
        Ok(())
    }

    /// The giant steps `j` (increasing) with the baby steps `i` of their diagonals.
    fn plan(&self, n1: usize) -> Plan {
        let mut plan: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in self.diagonals.keys() {
            plan.entry(k / n1).or_default().push(k % n1);
        }
        plan.into_iter().collect()
    }

    /// The distinct nonzero baby and giant rotations of a plan.
    fn plan_rotations(plan: &Plan, n1: usize) -> (Vec<i64>, Vec<i64>) {
        let baby: BTreeSet<usize> = plan.iter().flat_map(|(_, is)| is.iter().copied()).collect();
        let baby = baby.into_iter().filter(|&i| i != 0).map(|i| i as i64);
        let giant = plan
            .iter()
            .filter(|(j, _)| *j != 0)
            .map(|(j, _)| (n1 * j) as i64);
        (baby.collect(), giant.collect())
    }

    /// The default baby-step count `n1`: the power of two minimizing the number of rotations
    /// (distinct nonzero baby steps + distinct nonzero giant steps), ties going to the larger
    /// `n1` (hoisted rotations are cheaper than full ones). About `sqrt(slots)` for a dense
    /// matrix; `1` for a transform with no diagonals.
    pub fn default_baby_steps(&self) -> usize {
        let mut best = (usize::MAX, 1);
        let mut n1 = 1;
        while n1 <= self.slots {
            let (b, g) = Self::plan_rotations(&self.plan(n1), n1);
            if b.len() + g.len() <= best.0 {
                best = (b.len() + g.len(), n1);
            }
            n1 *= 2;
        }
        best.1
    }

    /// The rotations to generate Galois keys for, with the default baby-step count.
    pub fn rotations_needed(&self) -> Vec<i64> {
        let n1 = self.default_baby_steps();
        let (mut b, g) = Self::plan_rotations(&self.plan(n1), n1);
        b.extend(g);
        b
    }

    /// The rotations to generate Galois keys for, with `baby_steps` baby steps: the nonzero
    /// baby steps used, then the nonzero giant steps used, all in `1..slots`.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] if `baby_steps` is not a power of two in `1..=slots`.
    pub fn rotations_needed_with(&self, baby_steps: usize) -> Result<Vec<i64>, CkksError> {
        self.check_baby_steps(baby_steps)?;
        let (mut b, g) = Self::plan_rotations(&self.plan(baby_steps), baby_steps);
        b.extend(g);
        Ok(b)
    }

    /// `M·v` on cleartext values by the BSGS decomposition with the default baby-step count
    /// (cyclic rotations of `slots` values): the reference for the encrypted evaluation.
    ///
    /// # Errors
    /// [`CkksError::SlotMismatch`] if `v.len() != slots`.
    pub fn apply_plain(&self, v: &[Complex64]) -> Result<Vec<Complex64>, CkksError> {
        self.apply_plain_with(v, self.default_baby_steps())
    }

    /// `M·v` on cleartext values by the BSGS decomposition with `baby_steps` baby steps.
    ///
    /// # Errors
    /// [`CkksError::SlotMismatch`] if `v.len() != slots`; [`CkksError::InvalidParams`] for a
    /// bad `baby_steps`.
    pub fn apply_plain_with(
        &self,
        v: &[Complex64],
        baby_steps: usize,
    ) -> Result<Vec<Complex64>, CkksError> {
        self.check_baby_steps(baby_steps)?;
        if v.len() != self.slots {
            return Err(CkksError::SlotMismatch {
                lhs: v.len(),
                rhs: self.slots,
            });
        }
        let n1 = baby_steps;
        let n = self.slots;
        let plan = self.plan(n1);
        let mut babies: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (_, is) in &plan {
            for &i in is {
                babies.entry(i).or_insert_with(|| rotate_left(v, i));
            }
        }
        let mut out = vec![Complex64::new(0.0, 0.0); n];
        for (j, is) in &plan {
            let shift = n1 * j;
            let mut inner = vec![Complex64::new(0.0, 0.0); n];
            for &i in is {
                let (Some(d), Some(b)) = (self.diagonals.get(&(shift + i)), babies.get(&i)) else {
                    continue;
                };
                let d = rotate_left(d, n - shift);
                inner
                    .iter_mut()
                    .zip(d.iter().zip(b))
                    .for_each(|(acc, (x, y))| *acc += x * y);
            }
            out.iter_mut()
                .zip(rotate_left(&inner, shift))
                .for_each(|(o, x)| *o += x);
        }
        Ok(out)
    }

    /// Encodes the pre-rotated diagonals at `level` with the default baby-step count and
    /// plaintext scale `q_level`, so that an application keeps the ciphertext's scale exactly.
    ///
    /// # Errors
    /// As [`LinearTransform::encode_with`].
    pub fn encode(
        &self,
        encoder: &Encoder,
        level: usize,
    ) -> Result<EncodedLinearTransform, CkksError> {
        let params = encoder.params();
        check_level(params, level)?;
        let q = params.q_primes(level)[level].value() as f64;
        self.encode_with(encoder, level, self.default_baby_steps(), q)
    }

    /// Encodes the pre-rotated diagonals `rot(d_{n1·j+i}, −n1·j)` at `level` and plaintext
    /// `scale`, with `n1 = baby_steps`. An application multiplies the ciphertext's scale by
    /// `scale / q_level`.
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] for a bad `baby_steps`; [`CkksError::NotEnoughLevels`]
    /// at level 0 (the rescale needs a level) or above the top; [`CkksError::BadSlots`] if
    /// the size is above `N/2`; [`CkksError::Encode`] for non-finite or too large entries.
    pub fn encode_with(
        &self,
        encoder: &Encoder,
        level: usize,
        baby_steps: usize,
        scale: f64,
    ) -> Result<EncodedLinearTransform, CkksError> {
        self.check_baby_steps(baby_steps)?;
        let params = encoder.params();
        check_level(params, level)?;
        let n1 = baby_steps;
        let n = self.slots;
        let plan = self.plan(n1);
        let (baby_rotations, _) = Self::plan_rotations(&plan, n1);
        let mut giants = Vec::with_capacity(plan.len());
        for (j, is) in &plan {
            let shift = n1 * j;
            let terms = is
                .par_iter()
                .filter_map(|&i| self.diagonals.get(&(shift + i)).map(|d| (i, d)))
                .map(|(i, d)| {
                    let d = rotate_left(d, n - shift);
                    encoder.encode_ext(&d, n, level, scale).map(|pt| (i, pt))
                })
                .collect::<Result<Vec<_>, _>>()?;
            giants.push(GiantStep {
                rotation: shift as i64,
                terms,
            });
        }
        Ok(EncodedLinearTransform {
            slots: n,
            level,
            baby_steps: n1,
            scale,
            fingerprint: params.fingerprint(),
            baby_rotations,
            giants,
        })
    }
}

/// One giant step: its rotation `n1·j` and the encoded `rot(d_{n1·j+i}, −n1·j)` with their
/// baby index `i`.
#[derive(Clone, Debug)]
struct GiantStep {
    rotation: i64,
    terms: Vec<(usize, ExtPlaintext)>,
}

/// A [`LinearTransform`] with its pre-rotated diagonals encoded at one level, ready to be
/// applied to ciphertexts at that level ([`EncodedLinearTransform::apply`]).
#[derive(Clone, Debug)]
pub struct EncodedLinearTransform {
    slots: usize,
    level: usize,
    baby_steps: usize,
    scale: f64,
    fingerprint: u64,
    baby_rotations: Vec<i64>,
    giants: Vec<GiantStep>,
}

impl EncodedLinearTransform {
    /// The number of slots it acts on.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The level of the input ciphertexts (the output is one below).
    pub fn level(&self) -> usize {
        self.level
    }

    /// The baby-step count `n1`.
    pub fn baby_steps(&self) -> usize {
        self.baby_steps
    }

    /// The giant-step count `n2 = slots / n1`.
    pub fn giant_steps(&self) -> usize {
        self.slots / self.baby_steps
    }

    /// The scale of the encoded diagonals.
    pub fn plaintext_scale(&self) -> f64 {
        self.scale
    }

    /// The number of encoded diagonals (plaintext multiplications per application).
    pub fn num_plaintexts(&self) -> usize {
        self.giants.iter().map(|g| g.terms.len()).sum()
    }

    /// The distinct nonzero baby-step rotations used (hoisted), increasing.
    pub fn baby_rotations(&self) -> &[i64] {
        &self.baby_rotations
    }

    /// The distinct nonzero giant-step rotations used (one full key switch each), increasing.
    pub fn giant_rotations(&self) -> Vec<i64> {
        self.giants
            .iter()
            .map(|g| g.rotation)
            .filter(|&r| r != 0)
            .collect()
    }

    /// The rotations to generate Galois keys for: baby steps, then giant steps.
    pub fn rotations_needed(&self) -> Vec<i64> {
        let mut r = self.baby_rotations.clone();
        r.extend(self.giant_rotations());
        r
    }

    /// `M·ct`: the hoisted baby steps, the plaintext products, the giant-step rotations, and
    /// one rescale. The output is one level below the input, at scale
    /// `ct.scale() · plaintext_scale / q_level` (the input's scale with the default encoding).
    /// A transform with no diagonals gives an encryption of zero.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] for an evaluator of other parameters;
    /// [`CkksError::LevelMismatch`] or [`CkksError::SlotMismatch`] if `ct` is not at the
    /// transform's level and slot count; [`CkksError::MissingGaloisKey`] when a rotation key
    /// is missing (the baby-step keys are all checked before any key switch).
    pub fn apply(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        if eval.params().fingerprint() != self.fingerprint {
            return Err(CkksError::ParamsMismatch);
        }
        if ct.level() != self.level {
            return Err(CkksError::LevelMismatch {
                lhs: ct.level(),
                rhs: self.level,
            });
        }
        if ct.slots() != self.slots {
            return Err(CkksError::SlotMismatch {
                lhs: ct.slots(),
                rhs: self.slots,
            });
        }
        // Baby step 0 (P·ct) first, then the rotations, all over Q·P.
        let ks: Vec<i64> = std::iter::once(0)
            .chain(self.baby_rotations.iter().copied())
            .collect();
        let babies = eval.rotate_hoisted_ext(ct, &ks)?;
        let baby = |i: usize| -> &ExtCiphertext {
            let pos = self
                .baby_rotations
                .binary_search(&(i as i64))
                .map_or(0, |p| p + 1);
            &babies[pos]
        };
        let partial = self
            .giants
            .par_iter()
            .filter(|g| !g.terms.is_empty())
            .map(|g| {
                let terms: Vec<(&ExtCiphertext, &ExtPlaintext)> =
                    g.terms.iter().map(|(i, pt)| (baby(*i), pt)).collect();
                eval.rotate_ext(&eval.mul_plain_sum_ext(&terms)?, g.rotation)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut partial = partial.into_iter();
        let Some(mut sum) = partial.next() else {
            // No diagonals: zero, at the scale the products would have had.
            let mut z = eval.sub(ct, ct)?;
            z.set_scale(ct.scale() * self.scale);
            return eval.rescale(&z);
        };
        for p in partial {
            eval.add_ext_assign(&mut sum, &p)?;
        }
        eval.mod_down_rescale_ext(sum)
    }
}
