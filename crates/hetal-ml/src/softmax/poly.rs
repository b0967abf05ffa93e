//! Polynomials for the softmaxes: Chebyshev series (the reference form the designs are stored
//! in), their roots (Aberth–Ehrlich), and the *product form* evaluated on ciphertexts.
//!
//! # Product form
//!
//! A real polynomial of degree `n` is written `p(x) = K·Π_j (x² + β_j·x + γ_j)` (times one
//! linear factor `(x − r)` when `n` is odd), pairing complex-conjugate roots, then the real
//! roots in increasing order. Each monic quadratic *leaf* is `x·(x + β_j) + γ_j`: one ciphertext
//! product and one rescale, no constant. The leading coefficient `K` is either
//! * a leaf of its own: a noiseless constant ciphertext, or a mask times `K` (one plaintext
//!   product, on a path with slack), which is free when the number of leaves stays within a
//!   power of two ([`KLeaf`]);
//! * folded into the linear factor, `K·(x − r)` (a constant product in the leaf's level, or a
//!   plaintext product when `K` carries a mask: no key switch either way);
//! * or absorbed upstream, by the scaling of the variable (the caller builds the polynomial in
//!   a variable where `K = ±1`).
//!
//! The leaves are multiplied in a balanced binary tree. Depth `1 + ⌈log2(#leaves)⌉`: for
//! `n = 2^k − 2` with `K` as a leaf, `⌈log2(n + 1)⌉`, what a baby-step giant-step evaluation
//! achieves; and only products and constant additions are involved, so there is never an
//! addition of two ciphertexts with different scale histories (see `kit`).
//!
//! Monic leaves need the variable scaled so that their values are of order 1 over the design
//! interval (an interval of length about 2 to 4): the softmaxes choose their units for that.
//! The form is checked against its series on a grid at construction (relative error below
//! [`PRODUCT_TOLERANCE`]).

use num_complex::Complex64;

use super::kit::{masked_constant, mul_rescale, numeric, product_scale, re, Primes, SoftmaxOps};
use crate::error::MlError;
use crate::ops::CkksOps;
use crate::ops::Leveled;

/// Largest relative deviation (to the largest `|p|` on the grid) allowed between a product form
/// and the series it factors.
pub(crate) const PRODUCT_TOLERANCE: f64 = 1e-9;

/// A real polynomial `Σ_k c_k T_k(t)` in the Chebyshev basis, `t = (2x − lo − hi)/(hi − lo)`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cheb {
    /// Left end of the interval.
    pub lo: f64,
    /// Right end of the interval.
    pub hi: f64,
    /// `c_0, c_1, …`.
    pub coeffs: Vec<f64>,
}

/// Clenshaw's recurrence for `Σ c_k T_k(t)` (real or complex `t`).
fn clenshaw<T>(coeffs: &[f64], t: T) -> T
where
    T: Copy
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<Output = T>
        + std::ops::Mul<f64, Output = T>
        + From<f64>,
{
    let zero = T::from(0.0);
    let (mut b1, mut b2) = (zero, zero);
    for &c in coeffs.iter().skip(1).rev() {
        let b0 = t * b1 * 2.0 - b2 + T::from(c);
        b2 = b1;
        b1 = b0;
    }
    T::from(coeffs.first().copied().unwrap_or(0.0)) + t * b1 - b2
}

/// The Chebyshev coefficients of the derivative in `t` of `Σ c_k T_k(t)`.
fn derivative(coeffs: &[f64]) -> Vec<f64> {
    let n = coeffs.len().saturating_sub(1);
    if n == 0 {
        return vec![0.0];
    }
    // d_{k−1} = d_{k+1} + 2k·c_k, from k = n down to 1; d_0 halved.
    let mut rev = Vec::with_capacity(n);
    let (mut next, mut next2) = (0.0, 0.0);
    for (k, &c) in coeffs.iter().enumerate().skip(1).rev() {
        let d = next2 + 2.0 * k as f64 * c;
        rev.push(d);
        next2 = next;
        next = d;
    }
    rev.reverse();
    if let Some(d0) = rev.first_mut() {
        *d0 *= 0.5;
    }
    rev
}

impl Cheb {
    /// The series `coeffs` on `[lo, hi]`.
    pub fn new(lo: f64, hi: f64, coeffs: &[f64]) -> Self {
        Self {
            lo,
            hi,
            coeffs: coeffs.to_vec(),
        }
    }

    /// The degree (number of coefficients − 1).
    pub fn degree(&self) -> usize {
        self.coeffs.len().saturating_sub(1)
    }

    fn t(&self, x: f64) -> f64 {
        (2.0 * x - self.lo - self.hi) / (self.hi - self.lo)
    }

    /// `p(x)` (Clenshaw).
    pub fn eval(&self, x: f64) -> f64 {
        clenshaw(&self.coeffs, self.t(x))
    }

    /// The roots in the variable `t` of the series (complex, with multiplicity).
    pub fn roots_t(&self) -> Result<Vec<Complex64>, MlError> {
        let d = derivative(&self.coeffs);
        let c = &self.coeffs;
        aberth(self.degree(), |z| (clenshaw(c, z), clenshaw(&d, z)))
    }

    /// The roots in `x`.
    pub fn roots(&self) -> Result<Vec<Complex64>, MlError> {
        let (half, mid) = (0.5 * (self.hi - self.lo), 0.5 * (self.hi + self.lo));
        Ok(self
            .roots_t()?
            .into_iter()
            .map(|t| t * half + mid)
            .collect())
    }
}

/// `Σ_k c_k x^k` and its derivative (Horner).
pub(crate) fn horner(coeffs: &[f64], x: Complex64) -> (Complex64, Complex64) {
    let (mut p, mut dp) = (Complex64::new(0.0, 0.0), Complex64::new(0.0, 0.0));
    for &c in coeffs.iter().rev() {
        dp = dp * x + p;
        p = p * x + c;
    }
    (p, dp)
}

/// The roots of a monomial-basis polynomial `Σ c_k x^k` (trailing zero coefficients trimmed).
pub(crate) fn monomial_roots(coeffs: &[f64]) -> Result<Vec<Complex64>, MlError> {
    let len = coeffs.iter().rposition(|&c| c != 0.0).map_or(0, |i| i + 1);
    let c = coeffs.get(..len).unwrap_or(&[]);
    aberth(len.saturating_sub(1), |z| horner(c, z))
}

/// All `n` roots of a polynomial given by `f(z) = (p(z), p'(z))`, by the Aberth–Ehrlich
/// simultaneous iteration (Jacobi form), started on a circle of radius 1.3 around 0. Stops when
/// the relative steps stay below 10⁻¹³; clustered roots that only jitter at that level are
/// accepted (the product form built from them is checked against the series).
fn aberth(
    n: usize,
    f: impl Fn(Complex64) -> (Complex64, Complex64),
) -> Result<Vec<Complex64>, MlError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let nf = n as f64;
    let mut z: Vec<Complex64> = (0..n)
        .map(|k| Complex64::from_polar(1.3, std::f64::consts::TAU * (k as f64 + 0.25) / nf + 0.4))
        .collect();
    let mut settled = 0;
    let mut worst = f64::INFINITY;
    for _ in 0..3000 {
        worst = 0.0f64;
        let next: Vec<Complex64> = z
            .iter()
            .enumerate()
            .map(|(k, &zk)| {
                let (p, dp) = f(zk);
                if p.norm() == 0.0 {
                    return zk;
                }
                let ratio = p / dp;
                let repulsion: Complex64 = z
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, &zj)| (zk - zj).inv())
                    .sum();
                let w = ratio / (Complex64::new(1.0, 0.0) - ratio * repulsion);
                let step = if w.is_finite() {
                    w
                } else {
                    Complex64::new(0.0, 0.0)
                };
                worst = worst.max(step.norm() / (1.0 + zk.norm()));
                zk - step
            })
            .collect();
        z = next;
        if worst < 1e-13 {
            settled += 1;
            if settled >= 3 {
                return Ok(z);
            }
        } else {
            settled = 0;
        }
    }
    // Clustered roots jitter at a few ulps: accept what the product-form check will judge.
    if worst < 1e-9 {
        return Ok(z);
    }
    Err(numeric(format!(
        "polynomial root finding did not converge (degree {n}, last step {worst:e})"
    )))
}

/// Where the leading coefficient `K` of a product form goes (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) enum KLeaf<'a> {
    /// `K = ±1` by construction (the caller scaled the variable): no leaf.
    Absorbed,
    /// A noiseless constant ciphertext of value `K`, one more leaf.
    Const,
    /// `K` times a slot mask, one more leaf.
    Mask(&'a [Complex64]),
}

/// A polynomial in product form (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProductPoly {
    /// `(β, γ)` of the monic quadratics.
    quads: Vec<(f64, f64)>,
    /// The root of the linear factor, if the degree is odd.
    linear: Option<f64>,
    /// The leading coefficient.
    k: f64,
}

/// Monic real quadratics `(β, γ)` and the leftover real root of an odd degree.
type Paired = (Vec<(f64, f64)>, Option<f64>);

/// Pairs roots into real quadratics (conjugate pairs, then real roots in increasing order);
/// returns `(β, γ)` per quadratic and the leftover real root, if any.
fn pair_roots(roots: &[Complex64]) -> Result<Paired, MlError> {
    let is_real = |z: &Complex64| z.im.abs() <= 1e-9 * (1.0 + z.norm());
    let upper: Vec<Complex64> = roots
        .iter()
        .filter(|z| !is_real(z) && z.im > 0.0)
        .copied()
        .collect();
    let lower = roots.iter().filter(|z| !is_real(z) && z.im < 0.0).count();
    if upper.len() != lower {
        return Err(numeric(format!(
            "roots are not in conjugate pairs ({} above the axis, {lower} below)",
            upper.len()
        )));
    }
    let mut real: Vec<f64> = roots.iter().filter(|z| is_real(z)).map(|z| z.re).collect();
    real.sort_by(f64::total_cmp);
    let mut quads: Vec<(f64, f64)> = upper.iter().map(|z| (-2.0 * z.re, z.norm_sqr())).collect();
    let mut it = real.chunks_exact(2);
    for pair in it.by_ref() {
        if let [a, b] = *pair {
            quads.push((-(a + b), a * b));
        }
    }
    Ok((quads, it.remainder().first().copied()))
}

/// Orders the quadratics so that every subtree of the balanced product tree gets roots spread
/// over the whole interval (sorted by the real part of their roots, then placed in bit-reversed
/// order over the next power of two, missing indices skipped), for trees of `m` leaves or
/// `m + 1` (a `K` or linear leaf last). A subtree that
/// held only the roots near one end would take values spanning many orders of magnitude across
/// the slots, and CKKS noise, uniform across slots, would swamp its small values.
fn spread(mut quads: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    quads.sort_by(|a, b| b.0.total_cmp(&a.0));
    let m = quads.len();
    // Bit reversal over the next power of two (a missing index is skipped): with m + 1 a
    // power of two the last slot is the K leaf's.
    let n = m.next_power_of_two();
    let bits = n.trailing_zeros();
    (0..n)
        .filter_map(|p| {
            let r = if bits == 0 {
                0
            } else {
                p.reverse_bits() >> (usize::BITS - bits)
            };
            quads.get(r).copied()
        })
        .collect()
}

impl ProductPoly {
    /// The product form with the given roots whose values match `reference` on `samples`
    /// (which should cover the design interval); checked to [`PRODUCT_TOLERANCE`].
    pub fn from_roots(
        roots: &[Complex64],
        reference: impl Fn(f64) -> f64,
        samples: &[f64],
    ) -> Result<Self, MlError> {
        let (quads, linear) = pair_roots(roots)?;
        let monic = Self {
            quads: spread(quads),
            linear,
            k: 1.0,
        };
        // K from the sample where |reference| is largest.
        let (x_star, p_star) =
            samples
                .iter()
                .map(|&x| (x, reference(x)))
                .fold((0.0f64, 0.0f64), |best, cur| {
                    if cur.1.abs() > best.1.abs() {
                        cur
                    } else {
                        best
                    }
                });
        let k = p_star / monic.eval(x_star);
        if p_star == 0.0 || !k.is_finite() || k == 0.0 {
            return Err(numeric(
                "product form: degenerate leading coefficient".into(),
            ));
        }
        let poly = Self { k, ..monic };
        let scale = samples
            .iter()
            .map(|&x| reference(x).abs())
            .fold(0.0, f64::max);
        let worst = samples
            .iter()
            .map(|&x| (poly.eval(x) - reference(x)).abs())
            .fold(0.0, f64::max);
        if worst.is_nan() || worst > PRODUCT_TOLERANCE * scale {
            return Err(numeric(format!(
                "product form deviates from its series by {worst:e} (scale {scale:e})"
            )));
        }
        Ok(poly)
    }

    /// The product form of a Chebyshev series, checked on a grid of its interval.
    #[cfg(test)]
    pub fn from_cheb(p: &Cheb) -> Result<Self, MlError> {
        Self::from_roots(&p.roots()?, |x| p.eval(x), &grid(p.lo, p.hi, 4001))
    }

    /// The leading coefficient.
    pub fn k(&self) -> f64 {
        self.k
    }

    /// The polynomial times `factor` (a change of unit of its values).
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            k: self.k * factor,
            ..self.clone()
        }
    }

    /// The degree.
    #[cfg(test)]
    pub fn degree(&self) -> usize {
        2 * self.quads.len() + usize::from(self.linear.is_some())
    }

    /// Number of leaves of the encrypted evaluation with `K` placed as `kleaf`.
    pub fn leaves(&self, kleaf: KLeaf<'_>) -> usize {
        let k_leaf = self.linear.is_none() && !matches!(kleaf, KLeaf::Absorbed);
        self.quads.len() + usize::from(self.linear.is_some()) + usize::from(k_leaf)
    }

    /// Levels the encrypted evaluation consumes with `K` placed as `kleaf`.
    pub fn depth(&self, kleaf: KLeaf<'_>) -> usize {
        1 + super::kit::ceil_log2(self.leaves(kleaf))
    }

    /// The monic product `Π (x² + β x + γ)·(x − r)`, in the order of the encrypted evaluation.
    fn eval_monic(&self, x: f64) -> f64 {
        let mut v: Vec<f64> = self.quads.iter().map(|&(b, g)| x * (x + b) + g).collect();
        if let Some(r) = self.linear {
            v.push(x - r);
        }
        tree_reduce(v, |a, b| a * b).unwrap_or(1.0)
    }

    /// `p(x)` (product form, in `f64`).
    pub fn eval(&self, x: f64) -> f64 {
        self.k * self.eval_monic(x)
    }

    /// The monic quadratic leaves on a ciphertext, one level below it.
    pub fn monic_leaves<O: CkksOps>(&self, ops: &O, x: &O::Ct) -> Result<Vec<O::Ct>, MlError> {
        self.quads
            .iter()
            .map(|&(b, g)| {
                let leaf = mul_rescale(ops, x, &ops.add_const(x, re(b))?)?;
                Ok(ops.add_const(&leaf, re(g))?)
            })
            .collect()
    }

    /// All leaves on `x` (one level below it), the last one (`K`, or the linear factor times
    /// `K`) scaled so that the tree's product lands on `target`.
    pub fn leaves_ct<O: SoftmaxOps>(
        &self,
        ops: &O,
        primes: &Primes<'_, O>,
        x: &O::Ct,
        kleaf: KLeaf<'_>,
        target: f64,
    ) -> Result<Vec<O::Ct>, MlError> {
        let mut leaves = self.monic_leaves(ops, x)?;
        let level = x.level();
        let below = level.checked_sub(1).ok_or(MlError::NotEnoughLevels {
            operand: "polynomial input",
            have: 0,
            need: 1,
        })?;
        if let Some(r) = self.linear {
            // K·(x − r): a constant (or, for a mask, plaintext) product of scale L solved for,
            // no key switch; the mask rides on it.
            let unit = product_scale(primes, (x.scale(), level), (1.0, level))?;
            let l = landing_scale(primes, &leaves, unit, target)?;
            let shifted = ops.add_const(x, re(-r))?;
            let mut leaf = match kleaf {
                KLeaf::Mask(m) => {
                    let km: Vec<Complex64> = m.iter().map(|v| v * self.k).collect();
                    ops.mul_plain(&shifted, &ops.encode_scaled(&km, level, l)?)?
                }
                KLeaf::Absorbed | KLeaf::Const => {
                    ops.mul_const_with_scale(&shifted, re(self.k), l)?
                }
            };
            ops.rescale_assign(&mut leaf)?;
            leaves.push(leaf);
            return Ok(leaves);
        }
        match kleaf {
            KLeaf::Absorbed => {}
            KLeaf::Const => {
                let l = landing_scale(primes, &leaves, (1.0, below), target)?;
                let model = leaves.first().ok_or(MlError::Empty)?;
                let k = ops.constant(model, self.k, l)?;
                leaves.push(k);
            }
            KLeaf::Mask(m) => {
                let l = landing_scale(primes, &leaves, (1.0, below), target)?;
                leaves.push(masked_constant(ops, x, m, self.k, l)?);
            }
        }
        Ok(leaves)
    }

    /// `p(x)` slot-wise on a ciphertext (times the mask for [`KLeaf::Mask`]),
    /// [`ProductPoly::depth`] levels below it, on the scale `target` unless `K` is absorbed.
    pub fn eval_ct<O: SoftmaxOps>(
        &self,
        ops: &O,
        primes: &Primes<'_, O>,
        x: &O::Ct,
        kleaf: KLeaf<'_>,
        target: f64,
    ) -> Result<O::Ct, MlError> {
        tree_ct(ops, self.leaves_ct(ops, primes, x, kleaf, target)?)
    }
}

/// The scale `L` a last leaf must have for the product tree over `leaves` and that leaf to land
/// on `target`, given the `(scale, level)` the last leaf would have for `L = 1` (`unit`).
pub(crate) fn landing_scale<O: SoftmaxOps, C: Leveled>(
    primes: &Primes<'_, O>,
    leaves: &[C],
    unit: (f64, usize),
    target: f64,
) -> Result<f64, MlError> {
    let mut specs: Vec<(f64, usize)> = leaves.iter().map(|c| (c.scale(), c.level())).collect();
    specs.push(unit);
    let root = tree_scale(primes, specs)?;
    let l = target / root;
    if !(l.is_finite() && l > 0.0) {
        return Err(numeric(format!(
            "cannot land a product on scale {target:e}"
        )));
    }
    Ok(l)
}

/// The `(scale, level)` tree_ct's product over leaves of the given `(scale, level)` has.
pub(crate) fn tree_scale<O: SoftmaxOps>(
    primes: &Primes<'_, O>,
    mut v: Vec<(f64, usize)>,
) -> Result<f64, MlError> {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(product_scale(primes, a, b)?),
                None => next.push(a),
            }
        }
        v = next;
    }
    v.into_iter().next().map(|(s, _)| s).ok_or(MlError::Empty)
}

/// `n` evenly spaced points of `[a, b]` (both ends included).
pub(crate) fn grid(a: f64, b: f64, n: usize) -> Vec<f64> {
    let m = n.max(2) - 1;
    (0..=m).map(|i| a + (b - a) * i as f64 / m as f64).collect()
}

/// Balanced pairwise reduction: `[a, b, c, d, e] → [ab, cd, e] → [abcd, e] → [abcde]`.
pub(crate) fn tree_reduce<T>(mut v: Vec<T>, mut mul: impl FnMut(T, T) -> T) -> Option<T> {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(mul(a, b)),
                None => next.push(a),
            }
        }
        v = next;
    }
    v.into_iter().next()
}

/// [`tree_reduce`] on ciphertexts (products rescaled, operands brought to a common level).
pub(crate) fn tree_ct<O: CkksOps>(ops: &O, mut v: Vec<O::Ct>) -> Result<O::Ct, MlError> {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(mul_rescale(ops, &a, &b)?),
                None => next.push(a),
            }
        }
        v = next;
    }
    v.into_iter().next().ok_or(MlError::Empty)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn product_form_reproduces_series() {
        // exp on [−2, 1], degree 10 interpolant-like coefficients from a Taylor series mapped
        // through a made-up series: any real series works.
        let p = Cheb::new(
            -2.0,
            1.0,
            &[1.2, -0.7, 0.3, 0.05, -0.02, 0.01, 0.004, -0.001],
        );
        let f = ProductPoly::from_cheb(&p).unwrap();
        assert_eq!(f.degree(), 7);
        assert_eq!(f.depth(KLeaf::Const), 3);
        assert_eq!(f.depth(KLeaf::Absorbed), 3);
        for x in grid(-2.0, 1.0, 101) {
            assert!((f.eval(x) - p.eval(x)).abs() < 1e-10, "{x}");
        }
    }

    #[test]
    fn monomial_roots_of_a_known_polynomial() {
        // (x − 1)(x + 2)(x² + 1) = x⁴ + x³ − x² + x − 2
        let r = monomial_roots(&[-2.0, 1.0, -1.0, 1.0, 1.0]).unwrap();
        let mut re: Vec<f64> = r
            .iter()
            .filter(|z| z.im.abs() < 1e-9)
            .map(|z| z.re)
            .collect();
        re.sort_by(f64::total_cmp);
        assert!((re[0] + 2.0).abs() < 1e-12 && (re[1] - 1.0).abs() < 1e-12);
        assert_eq!(
            r.iter()
                .filter(|z| (z.im.abs() - 1.0).abs() < 1e-12)
                .count(),
            2
        );
    }

    #[test]
    fn derivative_of_series() {
        let c = [0.3, -1.0, 0.5, 0.25, -0.125];
        let d = derivative(&c);
        for t in grid(-1.0, 1.0, 21) {
            let h = 1e-6;
            let num = (clenshaw(&c, t + h) - clenshaw(&c, t - h)) / (2.0 * h);
            assert!((clenshaw(&d, t) - num).abs() < 1e-7);
        }
    }
}
