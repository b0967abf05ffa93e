//! The CKKS encoder: complex slot vectors to and from plaintext polynomials.
//!
//! A vector of `slots` (a power of two ≤ N/2) complex numbers `z_j` is mapped to the real
//! polynomial `m` with `m(ζ^{5^j}) = z_j`, `ζ = exp(iπ/N)` (the canonical embedding restricted
//! to the orbit of 5), scaled by Δ and rounded. With fewer than N/2 slots (sparse packing) `m`
//! is a polynomial in `X^{N/(2·slots)}`, and rotations act cyclically on the `slots` values.
//! The transform is the "special FFT" of Cheon–Han–Kim–Kim–Song (HEAAN), `O(slots·log slots)`
//! in `f64`; the CRT reconstruction on decoding is exact (Garner), so decoding precision is
//! that of `f64` (about 2^-50 relative), never the bottleneck.

use num_complex::Complex64;
use rayon::prelude::*;

use crate::ciphertext::ExtPlaintext;
use crate::{CkksError, Params, Plaintext};
use hetal_ring::{Prime, RnsPoly};

/// Encodes and decodes slot vectors for one parameter set.
#[derive(Clone, Debug)]
pub struct Encoder {
    params: Params,
    /// `exp(2πik/M)` for `k ≤ M = 2N`.
    roots: Vec<Complex64>,
    /// `5^j mod M` for `j < N/2`.
    rot_group: Vec<u64>,
}

impl Encoder {
    /// Precomputes the roots of unity for `params`.
    pub fn new(params: &Params) -> Self {
        let n = params.n();
        let m = 2 * n;
        let roots = (0..=m)
            .map(|k| {
                let a = 2.0 * std::f64::consts::PI * k as f64 / m as f64;
                Complex64::new(a.cos(), a.sin())
            })
            .collect();
        let mut rot_group = Vec::with_capacity(n / 2);
        let mut g = 1u64;
        for _ in 0..n / 2 {
            rot_group.push(g);
            g = g * 5 % m as u64;
        }
        Self {
            params: params.clone(),
            roots,
            rot_group,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    fn check_slots(&self, slots: usize, len: usize) -> Result<(), CkksError> {
        let n = self.params.n();
        if !slots.is_power_of_two() || slots > n / 2 || len > slots {
            return Err(CkksError::BadSlots { slots, n, len });
        }
        Ok(())
    }

    /// Encodes `values` (zero-padded to `slots`) at `level` and `scale`.
    ///
    /// # Errors
    /// [`CkksError::BadSlots`] for a bad slot count, [`CkksError::Encode`] for a non-finite
    /// value or one whose scaled size leaves no room below 2^120,
    /// [`CkksError::NotEnoughLevels`] for a level above the top.
    pub fn encode(
        &self,
        values: &[Complex64],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        let coeffs = self.coefficients(values, slots, level, scale)?;
        let primes = self.params.q_primes(level);
        Ok(Plaintext {
            poly: reduce_ntt(&coeffs, primes),
            scale,
            slots,
        })
    }

    /// [`Encoder::encode`] over the extended basis `Q_level · P`, in Montgomery form: a
    /// diagonal of a double-hoisted linear transform.
    ///
    /// # Errors
    /// As [`Encoder::encode`].
    pub(crate) fn encode_ext(
        &self,
        values: &[Complex64],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<ExtPlaintext, CkksError> {
        let coeffs = self.coefficients(values, slots, level, scale)?;
        let (qs, ps) = (self.params.q_primes(level), self.params.p_primes());
        let mut poly = reduce_ntt(&coeffs, qs);
        poly.to_montgomery(qs);
        let mut p_part = reduce_ntt(&coeffs, ps);
        p_part.to_montgomery(ps);
        poly.extend_from(&p_part);
        Ok(ExtPlaintext {
            poly,
            level,
            scale,
            slots,
        })
    }

    /// The coefficients `Δ·τ^{-1}(values)` of the encoding before rounding, after the checks
    /// of [`Encoder::encode`].
    fn coefficients(
        &self,
        values: &[Complex64],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Vec<f64>, CkksError> {
        self.check_slots(slots, values.len())?;
        if level > self.params.max_level() {
            return Err(CkksError::NotEnoughLevels {
                have: self.params.max_level(),
                need: level,
            });
        }
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(CkksError::Encode {
                slot: 0,
                reason: format!("scale {scale} must be finite and ≥ 1"),
            });
        }
        if let Some(slot) = values
            .iter()
            .position(|v| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(CkksError::Encode {
                slot,
                reason: "value is not finite".into(),
            });
        }
        let mut v = values.to_vec();
        v.resize(slots, Complex64::new(0.0, 0.0));
        self.special_fft_inv(&mut v);
        let n = self.params.n();
        let gap = n / 2 / slots;
        let mut coeffs = vec![0f64; n];
        for (i, z) in v.iter().enumerate() {
            coeffs[i * gap] = z.re * scale;
            coeffs[i * gap + n / 2] = z.im * scale;
        }
        const LIMIT: f64 = 1.329227995784916e36; // 2^120
        if let Some(i) = coeffs.iter().position(|c| c.abs() >= LIMIT) {
            return Err(CkksError::Encode {
                slot: i % slots,
                reason: "value times scale exceeds 2^120".into(),
            });
        }
        Ok(coeffs)
    }

    /// Encodes real values (imaginary parts zero).
    ///
    /// # Errors
    /// As [`Encoder::encode`].
    pub fn encode_real(
        &self,
        values: &[f64],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        let v: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.encode(&v, slots, level, scale)
    }

    /// Decodes a plaintext to its `slots` complex values.
    pub fn decode(&self, pt: &Plaintext) -> Vec<Complex64> {
        let primes = self.params.q_primes(pt.level());
        let mut poly = pt.poly.clone();
        poly.intt(primes);
        let coeffs = self.params.mixed_radix().poly_to_f64(&poly);
        let n = self.params.n();
        let gap = n / 2 / pt.slots;
        let mut v: Vec<Complex64> = (0..pt.slots)
            .map(|i| Complex64::new(coeffs[i * gap], coeffs[i * gap + n / 2]) / pt.scale)
            .collect();
        self.special_fft(&mut v);
        v
    }

    /// Decodes to the real parts.
    pub fn decode_real(&self, pt: &Plaintext) -> Vec<f64> {
        self.decode(pt).into_iter().map(|z| z.re).collect()
    }

    /// `exp(2πik/2N)`.
    pub(crate) fn root(&self, k: usize) -> Complex64 {
        self.roots[k]
    }

    /// `5^j mod 2N`.
    pub(crate) fn rot_group(&self, j: usize) -> u64 {
        self.rot_group[j]
    }

    /// Slot values from polynomial-coefficient layout: evaluates at `ζ^{5^j}`.
    pub(crate) fn special_fft(&self, v: &mut [Complex64]) {
        let size = v.len();
        let m = 2 * self.params.n();
        bit_reverse(v);
        let mut len = 2;
        while len <= size {
            let (lenh, lenq) = (len / 2, len * 4);
            let gap = m / lenq;
            for chunk in v.chunks_exact_mut(len) {
                for j in 0..lenh {
                    let idx = (self.rot_group[j] as usize % lenq) * gap;
                    let u = chunk[j];
                    let w = chunk[j + lenh] * self.roots[idx];
                    chunk[j] = u + w;
                    chunk[j + lenh] = u - w;
                }
            }
            len *= 2;
        }
    }

    /// Inverse of [`Self::special_fft`].
    pub(crate) fn special_fft_inv(&self, v: &mut [Complex64]) {
        let size = v.len();
        let m = 2 * self.params.n();
        let mut len = size;
        while len >= 2 {
            let (lenh, lenq) = (len / 2, len * 4);
            let gap = m / lenq;
            for chunk in v.chunks_exact_mut(len) {
                for j in 0..lenh {
                    let idx = (lenq - (self.rot_group[j] as usize % lenq)) * gap;
                    let u = chunk[j] + chunk[j + lenh];
                    let w = (chunk[j] - chunk[j + lenh]) * self.roots[idx];
                    chunk[j] = u;
                    chunk[j + lenh] = w;
                }
            }
            len /= 2;
        }
        bit_reverse(v);
        let inv = 1.0 / size as f64;
        v.iter_mut().for_each(|z| *z *= inv);
    }
}

/// The rounded coefficients `coeffs` modulo `primes`, in NTT form.
fn reduce_ntt(coeffs: &[f64], primes: &[Prime]) -> RnsPoly {
    let mut poly = RnsPoly::zero(coeffs.len(), primes.len());
    poly.par_limbs_mut().zip(primes).for_each(|(limb, p)| {
        let m = p.modulus();
        for (x, &c) in limb.iter_mut().zip(coeffs) {
            let r = c.round();
            *x = if r.abs() < 9.2e18 {
                m.reduce_i64(r as i64)
            } else {
                m.reduce_i128(r as i128)
            };
        }
    });
    poly.ntt(primes);
    poly
}

fn bit_reverse<T>(v: &mut [T]) {
    let n = v.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::presets;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn random_values(rng: &mut ChaCha20Rng, k: usize) -> Vec<Complex64> {
        (0..k)
            .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect()
    }

    #[test]
    fn special_fft_is_the_canonical_embedding() {
        // Slow oracle: evaluate the real coefficient vector at ζ^{5^j} directly.
        let params = Params::new_insecure(presets::insecure_test(7, 1)).unwrap();
        let enc = Encoder::new(&params);
        let n = params.n();
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        for slots in [1, 4, n / 2] {
            let z = random_values(&mut rng, slots);
            let mut v = z.clone();
            enc.special_fft_inv(&mut v);
            let gap = n / 2 / slots;
            let mut coeffs = vec![0f64; n];
            for (i, c) in v.iter().enumerate() {
                coeffs[i * gap] = c.re;
                coeffs[i * gap + n / 2] = c.im;
            }
            let mut g = 1u64;
            for (j, want) in z.iter().enumerate() {
                let angle = std::f64::consts::PI * g as f64 / n as f64;
                let zeta = Complex64::new(angle.cos(), angle.sin());
                let got = coeffs
                    .iter()
                    .rev()
                    .fold(Complex64::new(0.0, 0.0), |acc, &c| acc * zeta + c);
                assert!((got - want).norm() < 1e-12, "slot {j}: {got} vs {want}");
                g = g * 5 % (2 * n as u64);
            }
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let params = Params::new_insecure(presets::insecure_test(12, 3)).unwrap();
        let enc = Encoder::new(&params);
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        for slots in [1, 8, 2048] {
            let z = random_values(&mut rng, slots);
            for level in [0, 3] {
                let pt = enc
                    .encode(&z, slots, level, params.default_scale())
                    .unwrap();
                let back = enc.decode(&pt);
                let stats = crate::PrecisionStats::new(&z, &back);
                // Only rounding to integers at scale 2^40: ~40 bits minus log2(N).
                assert!(stats.min_bits >= 32.0, "{stats}");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let params = Params::new_insecure(presets::insecure_test(8, 1)).unwrap();
        let enc = Encoder::new(&params);
        let s = params.default_scale();
        assert!(matches!(
            enc.encode_real(&[1.0; 3], 3, 0, s),
            Err(CkksError::BadSlots { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1.0; 200], 128, 0, s),
            Err(CkksError::BadSlots { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[f64::NAN], 1, 0, s),
            Err(CkksError::Encode { slot: 0, .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1e30], 1, 0, s),
            Err(CkksError::Encode { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1.0], 1, 5, s),
            Err(CkksError::NotEnoughLevels { .. })
        ));
    }
}
