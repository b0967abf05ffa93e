//! Hybrid key switching (Han–Ki, CT-RSA 2020), split into its three stages so that rotations
//! can share the first one (hoisting, Halevi–Shoup CRYPTO 2018):
//!
//! 1. [`decompose`]: `d` (NTT form over `Q_l`) is cut into `beta = ceil((l+1)/alpha)` digits;
//!    each digit is raised to `Q_l · P` by fast basis extension (ModUp). Cost: `l+1` inverse
//!    NTTs and `beta·(l+1+k−alpha)` forward NTTs, where `k = |P|`.
//! 2. [`inner_product`]: `Σ_j digit_j · key_j` over `Q_l · P`, with one lazy (Montgomery) reduction per
//!    residue. Rotations permute only the output, after ModDown (their keys switch `s` to
//!    `σ^{-1}(s)`; see the evaluator).
//! 3. [`mod_down`]: division by `P` with rounding back to `Q_l`. Cost: `k` inverse and `l+1`
//!    forward NTTs per component.
//!
//! [`switch_decomposed`] runs stages 2 and 3 together, limb by limb (with the addition and
//! permutation that follow in rotations and relinearizations), for outputs wanted over `Q_l`;
//! the separate stages serve the double-hoisted paths, which work over `Q_l · P`.
//!
//! The extended basis at level `l` is laid out as `q_0..=q_l` then `p_0..p_{k-1}`.

use rayon::prelude::*;

use hetal_ring::{kernels, Automorphism, Prime, RnsPoly};

use crate::{keys::SwitchingKey, Params};

/// A polynomial decomposed into digits raised to `Q_l · P` (NTT form): the hoistable part of a
/// key switch. A digit's own limbs are those of `d` itself, so each digit stores only the
/// others (its conversion's targets: `Q_l` without the digit, then `P`).
pub(crate) struct Decomposed<'a> {
    pub(crate) level: usize,
    d: &'a RnsPoly,
    ranges: Vec<std::ops::Range<usize>>,
    converted: Vec<RnsPoly>,
}

impl Decomposed<'_> {
    /// Limb `i` of the extended basis of digit `j`.
    fn limb(&self, j: usize, i: usize) -> &[u64] {
        let range = &self.ranges[j];
        if range.contains(&i) {
            self.d.limb(i)
        } else if i < range.start {
            self.converted[j].limb(i)
        } else {
            self.converted[j].limb(i - range.len())
        }
    }
}

/// Stage 1: ModUp of every digit of `d` (NTT form over `Q_level`).
pub(crate) fn decompose<'a>(params: &Params, d: &'a RnsPoly) -> Decomposed<'a> {
    let level = d.num_limbs() - 1;
    let n = d.n();
    let k = params.p_primes().len();
    // d in coefficient form, each limb times its digit's ModUp constant (the conversions'
    // first step), in one pass.
    let ranges: Vec<_> = params.digits(level).collect();
    let primes = params.q_primes(level);
    let mut y = RnsPoly::temporary(n, level + 1);
    // (digit, index within the digit) of each limb.
    let place: Vec<(usize, usize)> = ranges
        .iter()
        .enumerate()
        .flat_map(|(j, r)| (0..r.len()).map(move |t| (j, t)))
        .collect();
    y.par_limbs_mut()
        .zip(d.par_limbs())
        .zip(&place)
        .zip(primes)
        .for_each(|(((limb, x), &(j, t)), p)| {
            limb.copy_from_slice(x);
            params.mod_up(level, j).prepare_ntt_limb(t, limb, p);
        });
    let converted = ranges
        .iter()
        .enumerate()
        .map(|(j, range)| {
            let conv = params.mod_up(level, j);
            // Every limb is written: converted, then taken to NTT form.
            let mut ext = RnsPoly::temporary(n, level + 1 + k - range.len());
            let y = &y.data()[range.start * n..range.end * n];
            conv.convert_into(y, false, ext.limbs_mut().enumerate().collect());
            ext.par_limbs_mut().enumerate().for_each(|(t, limb)| {
                let i = if t < range.start { t } else { t + range.len() };
                params.ext_prime(level, i).forward(limb);
            });
            ext
        })
        .collect();
    Decomposed {
        level,
        d,
        ranges,
        converted,
    }
}

/// Stage 2: `(Σ_j digit_j·b_j, Σ_j digit_j·a_j)` over `Q_l · P`, both sums in one pass over
/// the digits (the key is in Montgomery form: one Montgomery reduction per residue).
pub(crate) fn inner_product(params: &Params, dec: &Decomposed, key: &SwitchingKey) -> [RnsPoly; 2] {
    let n = params.n();
    let limbs = dec.level + 1 + params.p_primes().len();
    // Every residue is written by the kernel.
    let mut out0 = RnsPoly::scratch(n, limbs);
    let mut out1 = RnsPoly::scratch(n, limbs);
    out0.par_limbs_mut()
        .zip(out1.par_limbs_mut())
        .enumerate()
        .for_each(|(i, (o0, o1))| inner_product_limb(params, dec, key, i, o0, o1));
    [out0, out1]
}

/// Residue `i` (of the extended basis) of stage 2, into `(o0, o1)`.
fn inner_product_limb(
    params: &Params,
    dec: &Decomposed,
    key: &SwitchingKey,
    i: usize,
    o0: &mut [u64],
    o1: &mut [u64],
) {
    let level = dec.level;
    let m = params.ext_prime(level, i).modulus();
    // The key's layout is that of its own level (at least the ciphertext's).
    let key_limb = if i <= level {
        i
    } else {
        key.level + 1 + (i - level - 1)
    };
    // A key made for a higher level may have more digits than d: they go unused.
    let terms: Vec<(&[u64], &[u64], &[u64])> = (0..dec.ranges.len())
        .zip(&key.digits)
        .map(|(j, [b, a])| (dec.limb(j, i), b.limb(key_limb), a.limb(key_limb)))
        .collect();
    kernels::dot_product_pair_montgomery(&terms, m, o0, o1);
}

/// A term added to one output component of a key switch, limb by limb in its last step.
pub(crate) enum Addend<'a> {
    /// A polynomial over `Q_level` (NTT form).
    Poly(&'a RnsPoly),
    /// `Σ x·y` over pairs of polynomials over `Q_level` (NTT form): a relinearization's
    /// tensor components, never stored whole.
    Products(Vec<(&'a RnsPoly, &'a RnsPoly)>),
}

/// Stages 2 and 3 for a polynomial decomposed in `dec`, with what follows in rotations and
/// relinearizations: returns `σ(u_t + addend_t)` for `t = 0, 1` over `Q_level` (`σ` = `auto`
/// or the identity; a missing addend is zero), where `u0 + u1·s' ≈ d·s`.
///
/// The special limbs come first: their inner products give the division's remainders. Then
/// each ciphertext limb is produced, divided, added to and permuted while it is in cache,
/// instead of one pass over all the limbs per step.
pub(crate) fn switch_decomposed(
    params: &Params,
    dec: &Decomposed,
    key: &SwitchingKey,
    addends: [Option<Addend>; 2],
    auto: Option<&Automorphism>,
) -> [RnsPoly; 2] {
    let level = dec.level;
    let n = params.n();
    let k = params.p_primes().len();
    let mut special = [RnsPoly::temporary(n, k), RnsPoly::temporary(n, k)];
    let [s0, s1] = &mut special;
    s0.par_limbs_mut()
        .zip(s1.par_limbs_mut())
        .enumerate()
        .for_each(|(t, (o0, o1))| inner_product_limb(params, dec, key, level + 1 + t, o0, o1));
    let dropped: Vec<&Prime> = params.p_primes().iter().collect();
    let divide = params.mod_down();
    let (mut r0, mut r1) = rayon::join(
        || divide.remainder_ntt(s0.data_mut(), n, level + 1, &dropped),
        || divide.remainder_ntt(s1.data_mut(), n, level + 1, &dropped),
    );
    drop(special);
    let primes = params.q_primes(level);
    // Every residue is written.
    let mut out = [
        RnsPoly::scratch(n, level + 1),
        RnsPoly::scratch(n, level + 1),
    ];
    let [out0, out1] = &mut out;
    // Limb j of u0 and u1, divided, with the addends, into (x0, x1).
    let limb = |j: usize, x: [&mut [u64]; 2], r: [&mut [u64]; 2]| {
        let [x0, x1] = x;
        let p = &primes[j];
        let m = p.modulus();
        inner_product_limb(params, dec, key, j, x0, x1);
        for ((x, r), addend) in [x0, x1].into_iter().zip(r).zip(&addends) {
            divide.finish_ntt_limb(j, x, r, p);
            match addend {
                None => {}
                Some(Addend::Poly(a)) => kernels::add_assign(x, a.limb(j), m),
                Some(Addend::Products(pairs)) => {
                    let terms: Vec<_> = pairs.iter().map(|(a, b)| (a.limb(j), b.limb(j))).collect();
                    kernels::dot_product_add(&terms, m, x);
                }
            }
        }
    };
    out0.par_limbs_mut()
        .zip(out1.par_limbs_mut())
        .zip(r0.par_limbs_mut())
        .zip(r1.par_limbs_mut())
        .enumerate()
        // Permuted limbs are produced in a scratch pair first.
        .for_each_init(
            || auto.map(|_| RnsPoly::temporary(n, 2)),
            |t, (j, (((o0, o1), r0), r1))| match (auto, t) {
                (Some(auto), Some(t)) => {
                    let (t0, t1) = t.data_mut().split_at_mut(n);
                    limb(j, [&mut *t0, &mut *t1], [r0, r1]);
                    auto.permute_limb(t0, o0);
                    auto.permute_limb(t1, o1);
                }
                _ => limb(j, [o0, o1], [r0, r1]),
            },
        );
    out
}

/// Stage 3: `round(x / P)` back to `Q_level`, NTT form in and out. The result keeps the
/// storage of `ext` (with the capacity of the P limbs).
pub(crate) fn mod_down(params: &Params, mut ext: RnsPoly, level: usize) -> RnsPoly {
    let dropped: Vec<&Prime> = params.p_primes().iter().collect();
    params
        .mod_down()
        .apply_ntt(&mut ext, params.q_primes(level), &dropped);
    ext
}

/// Stage 3 with the following rescale folded in: `round(x / (q_level · P))` back to
/// `Q_{level−1}`, NTT form in and out (`level ≥ 1`). One division instead of two saves the
/// rescale's `2·level` NTTs and rounds once.
pub(crate) fn mod_down_rescale(params: &Params, mut ext: RnsPoly, level: usize) -> RnsPoly {
    let dropped: Vec<&Prime> = params.q_primes(level)[level..]
        .iter()
        .chain(params.p_primes())
        .collect();
    params
        .mod_down_rescaler(level)
        .apply_ntt(&mut ext, params.q_primes(level - 1), &dropped);
    ext
}

/// `ext += P · d` on the ciphertext limbs of `ext` (layout of the extended basis at `level`):
/// a ciphertext component brought to the scale of a key switch's output before ModDown.
pub(crate) fn add_times_p(params: &Params, ext: &mut RnsPoly, d: &RnsPoly) {
    ext.par_limbs_mut()
        .zip(d.par_limbs())
        .zip(params.qp_primes())
        .zip(params.p_mod_q())
        .for_each(|(((e, x), q), &c)| {
            let m = q.modulus();
            let cs = m.shoup(c);
            e.iter_mut()
                .zip(x)
                .for_each(|(e, &x)| *e = m.add(*e, m.mul_shoup(x, c, cs)));
        });
}

/// `a += b` over the extended basis at `level`.
pub(crate) fn ext_add_assign(params: &Params, level: usize, a: &mut RnsPoly, b: &RnsPoly) {
    a.par_limbs_mut()
        .zip(b.par_limbs())
        .enumerate()
        .for_each(|(i, (x, y))| {
            let m = params.ext_prime(level, i).modulus();
            x.iter_mut().zip(y).for_each(|(x, &y)| *x = m.add(*x, y));
        });
}

/// A whole key switch of `d` under `key`: `(u0 + addend0, u1 + addend1)` over `Q_level` with
/// `u0 + u1·s' ≈ d·s`.
pub(crate) fn switch(
    params: &Params,
    d: &RnsPoly,
    key: &SwitchingKey,
    addends: [Option<Addend>; 2],
) -> [RnsPoly; 2] {
    switch_decomposed(params, &decompose(params, d), key, addends, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, KeyGenerator};
    use hetal_ring::{sampling, Automorphism};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn params() -> Params {
        Params::new_insecure(presets::insecure_test(12, 2)).unwrap()
    }

    /// The centred coefficients of a polynomial in NTT form over `Q_level`.
    fn coefficients(params: &Params, mut p: RnsPoly) -> Vec<f64> {
        p.intt(params.q_primes(p.num_limbs() - 1));
        params.mixed_radix().poly_to_f64(&p)
    }

    #[test]
    fn mod_down_rounds_exactly() {
        let params = params();
        let level = params.max_level();
        let n = params.n();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let ext: Vec<Prime> = params
            .q_primes(level)
            .iter()
            .chain(params.p_primes())
            .cloned()
            .collect();
        let y = sampling::uniform(&mut rng, n, &ext);
        // x = P·y + r with |r| < P/2 must come back as exactly y.
        let p_mod: Vec<u64> = ext
            .iter()
            .map(|q| {
                params
                    .p_primes()
                    .iter()
                    .fold(1, |a, p| q.modulus().mul(a, q.modulus().reduce(p.value())))
            })
            .collect();
        let mut x = y.clone();
        x.mul_scalar_assign(&p_mod, &ext);
        let r: Vec<i64> = (0..n as i64).map(|i| (i % 1001) - 500).collect();
        x.add_assign(&RnsPoly::from_signed(&r, &ext), &ext);
        x.ntt(&ext);
        let mut want = y.sub_limbs(0..level + 1);
        want.ntt(params.q_primes(level));
        assert_eq!(mod_down(&params, x, level), want);
    }

    #[test]
    fn key_switch_noise_is_rounding_only() {
        // u0 + u1·t − d·s must be the ModDown rounding ε0 + ε1·t, |ε| ≤ 1/2: standard
        // deviation sqrt((h + 1)/12) for a target secret t of weight h; d·e/P is negligible.
        // Galois keys switch s to t = σ_g^{-1}(s).
        let params = params();
        let mut kg = KeyGenerator::with_rng(&params, ChaCha20Rng::seed_from_u64(1));
        let sk = kg.gen_secret_key();
        let level = params.max_level();
        let primes = params.q_primes(level);
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let d = sampling::uniform(&mut rng, params.n(), primes);
        let weight = sk.coeffs.iter().filter(|&&c| c != 0).count() as f64;
        let expected_std = ((weight + 1.0) / 12.0).sqrt();
        let two_n = 2 * params.n() as u64;
        for g in [params.galois_element(1), params.galois_element(-7)] {
            let key = kg.gen_galois_key(&sk, g).unwrap();
            let g_inv = (1..two_n).step_by(2).find(|h| h * g % two_n == 1).unwrap();
            let auto_inv = Automorphism::new(g_inv, params.ntt_order()).unwrap();
            let mut t = RnsPoly::zero(params.n(), sk.poly.num_limbs());
            auto_inv.apply_ntt(&sk.poly, &mut t);
            let [mut u0, u1] = switch(&params, &d, &key, [None, None]);
            u0.mul_add_assign(&u1, &t, primes);
            let mut ds = d.clone();
            ds.mul_assign(&sk.poly, primes);
            u0.sub_assign(&ds, primes);
            let noise = coefficients(&params, u0);
            let std = (noise.iter().map(|x| x * x).sum::<f64>() / noise.len() as f64).sqrt();
            let max = noise.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(
                std <= 1.25 * expected_std,
                "noise std {std} vs expected {expected_std}"
            );
            assert!(max <= 7.0 * expected_std, "noise max {max}");
        }
    }
}
