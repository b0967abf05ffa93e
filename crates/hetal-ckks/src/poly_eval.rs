//! Polynomial evaluation in the Chebyshev basis on encrypted data, level-optimal and with exact
//! scale management.
//!
//! A [`ChebyshevPoly`] is `p(x) = Σ_k c_k T_k(t)` with `t = (2x − a − b)/(b − a)` on `[a, b]`.
//! [`PolyEvaluator`] evaluates it on every slot of a ciphertext; [`ChebyshevPoly::eval`]
//! (Clenshaw) is the plaintext reference and [`ChebyshevPoly::eval_bsgs`] /
//! [`PolyEvaluator::evaluate_plain`] run the very same recursion as the encrypted evaluation on
//! `f64` slot vectors (its plaintext twin), while [`PolyEvaluator::simulate`] runs it on
//! `(level, scale)` only.
//!
//! # Algorithm
//!
//! Baby-step giant-step evaluation in the Chebyshev basis, as in Bossuat, Mouchet,
//! Troncoso-Pastoriza and Hubaux, *Efficient Bootstrapping for Approximate Homomorphic
//! Encryption with Non-Sparse Keys* (Eurocrypt 2021), §4, itself a Chebyshev-basis form of
//! Paterson–Stockmeyer (see also Han–Ki, CT-RSA 2020). Let `d` be the degree and
//! `D = ⌈log2(d + 1)⌉`.
//!
//! 1. **Affine map.** `T_1 = αx + β`, `α = 2/(b − a)`, `β = −(a + b)/(b − a)`. When `α = 1`
//!    exactly (`b − a = 2`, which includes `[−1, 1]`) this is an `add_const` and costs no
//!    level; otherwise it is `mul_const_with_scale` + `add_const` + one rescale, and lands
//!    `T_1` on the parameters' default scale.
//! 2. **Power basis**, computed lazily (only the powers used):
//!    `T_{2k} = (2·T_k)·T_k − 1`, `T_{2k+1} = (2·T_k)·T_{k+1} − T_1`, so that `T_k` sits exactly
//!    `⌈log2 k⌉` levels below `T_1`. Baby steps are `T_1 … T_{2^l − 1}`, giant steps
//!    `T_{2^l}, T_{2^{l+1}}, …, T_{2^{D−1}}`; `l` is chosen by dry runs to minimize
//!    ciphertext multiplications (or set with [`PolyEvaluator::with_log_baby`]).
//! 3. **Recursive split.** A node of degree `e` with `2^m ≤ e < 2^{m+1}` is divided as
//!    `p = q·T_{2^m} + r` (from `T_{n+j} = 2·T_j·T_n − T_{n−j}`), `q` is evaluated one level
//!    higher, multiplied by the giant step, `r` added, and the sum rescaled once (a constant
//!    `r` is added after the rescale). Every ciphertext product is rescaled by
//!    [`Evaluator::mul_sum_relin_rescale`], which folds the rescale into the relinearization's
//!    ModDown (so `−T_1` and a leaf `r` are added before that division). A *leaf*
//!    (degree `< 2^l`) is `Σ c_i T_i`: one `mul_const_with_scale` per term, one `add_const`,
//!    one rescale. When a leaf would need more levels than its budget (a leaf of degree `e`
//!    costs `⌈log2 e⌉ + 1`, one more than `⌈log2(e + 1)⌉` when `e + 1` is not a power of two),
//!    it is split further instead: the leading branch (quotient of quotient…), whose budget is
//!    tight, is split down to degree-1 leaves; remainders, one level looser, stay leaves.
//!
//! **Scales** are planned top-down and are exact: a node asked for `(level o, scale S)`
//! asks its quotient for `(o + 1, S·q_{o+1}/scale(T_{2^m}))`, so that the product has scale
//! `S·q_{o+1}` and the final rescale by `q_{o+1}` gives `S`; leaves encode each `c_i` with
//! `const_scale = S·q_{o+1}/scale(T_i)`, so that all terms share one scale; the `−T_1` of odd
//! powers is brought to the product's scale the same way. Operands therefore always agree to
//! floating-point rounding (`SCALE_TOLERANCE`), whatever the primes, and the result is
//! relabelled to the requested target scale only after checking that it is already within
//! that tolerance.
//!
//! # Cost
//!
//! * Levels: exactly [`depth`]`(d) = ⌈log2(d + 1)⌉`, plus one for the affine map unless
//!   `b − a = 2` ([`ChebyshevPoly::depth`]). The result sits that many levels below the input.
//! * Ciphertext multiplications (each with a relinearization): about
//!   `2^l + (D − l) + 2^{D−l}` for the power basis and the giant-step products, plus one per
//!   extra split of the leading branch. For `d = 255` (`D = 8`, `l = 4`): 36.
//!   [`PolyEvaluator::simulate`] gives the exact counts.
//! * Constant multiplications: about one per non-zero coefficient, plus one per odd power. A
//!   leaf accumulates its terms in place ([`Evaluator::mul_const_add_assign`]) instead of
//!   making a temporary ciphertext per term (a ciphertext at N = 2^16 and 20 levels is
//!   21 MB: those copies were about a tenth of bootstrapping's CPU time).
//!
//! # What it does not do
//!
//! * Real coefficients only (complex slot inputs are evaluated with real coefficients).
//! * No special treatment of odd or even polynomials beyond their zero coefficients: those are
//!   skipped in the leaves, and a power no leaf uses is never computed (so an odd polynomial,
//!   see [`ChebyshevPoly::odd_part`], skips the even baby steps its odd ones do not need).
//! * No lazy relinearization or lazy rescaling beyond the one shared rescale per node (folded
//!   into the node's relinearization).
//! * The affine map is not merged into the power basis: when `b − a ≠ 2` it costs one level.
//!   It cannot be folded into `T_2 = 2T_1² − 1` with this API: absorbing `α` by relabelling the
//!   scale (free) makes the scale of `T_{2^k}` grow or shrink as `α^{−2^k}`, and any exact
//!   constant multiplication needs its own rescale. Callers that can fold `α`, `β` into an
//!   earlier linear step should pass a polynomial on `[−1, 1]`.
//! * The map's constant `α` is encoded with about `log2(α · default_scale)` bits: intervals
//!   much wider than 2 lose precision accordingly.
//! * Without the affine map the input's own scale starts the power basis: the scales of the
//!   powers stay near the default scale only if the input's is near the primes (as is the
//!   case for the default scale).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::f64::consts::PI;

use num_complex::Complex64;

use crate::{Ciphertext, CkksError, Evaluator, SCALE_TOLERANCE};

/// Largest magnitude the evaluator accepts for an encoded constant (`c · scale`).
const MAX_ENCODED: f64 = 1.7e38;

/// Scale and prime of the idealized chain used by [`ChebyshevPoly::eval_bsgs`].
const IDEAL_SCALE: f64 = 1_099_511_627_776.0; // 2^40

/// Levels a degree-`degree` polynomial consumes on a ciphertext already on `[−1, 1]`:
/// `⌈log2(degree + 1)⌉` (0 for a constant).
pub fn depth(degree: usize) -> usize {
    bits(degree)
}

/// Number of bits of `e` (`⌈log2(e + 1)⌉`).
fn bits(e: usize) -> usize {
    (usize::BITS - e.leading_zeros()) as usize
}

/// `⌈log2 k⌉` for `k ≥ 1`: the depth of `T_k` below `T_1`.
fn ceil_log2(k: usize) -> usize {
    bits(k.saturating_sub(1))
}

/// Levels a leaf of degree `e` needs: its deepest power, plus the constant multiplication.
fn leaf_depth(e: usize) -> usize {
    if e == 0 {
        0
    } else {
        ceil_log2(e) + 1
    }
}

/// The coefficients without trailing zeros (at least one kept).
fn trimmed(c: &[f64]) -> &[f64] {
    let len = c.iter().rposition(|&x| x != 0.0).map_or(1, |i| i + 1);
    &c[..len.min(c.len())]
}

/// A real polynomial in the Chebyshev basis on `[a, b]`:
/// `p(x) = Σ_k coeffs[k] · T_k((2x − a − b)/(b − a))`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChebyshevPoly {
    /// Left end of the interval.
    pub a: f64,
    /// Right end of the interval.
    pub b: f64,
    /// Coefficients `c_0, c_1, …` of `T_0, T_1, …` (empty is the zero polynomial).
    pub coeffs: Vec<f64>,
}

impl ChebyshevPoly {
    /// The polynomial `Σ coeffs[k] T_k` on `[a, b]`.
    pub fn new(a: f64, b: f64, coeffs: Vec<f64>) -> Self {
        Self { a, b, coeffs }
    }

    /// Interpolates `f` at the `degree + 1` Chebyshev nodes of `[a, b]` (of the first kind,
    /// `t_j = cos(π(j + ½)/n)`), with coefficients from the discrete cosine transform
    /// `c_k = (2 − [k = 0])/n · Σ_j f(x_j) cos(πk(j + ½)/n)`. O(degree²). `a ≠ b` is required
    /// (otherwise the coefficients are not finite, and the evaluators refuse the polynomial).
    pub fn interpolate(f: impl Fn(f64) -> f64, a: f64, b: f64, degree: usize) -> Self {
        let n = degree + 1;
        let nf = n as f64;
        let values: Vec<f64> = (0..n)
            .map(|j| {
                let t = (PI * (j as f64 + 0.5) / nf).cos();
                f(0.5 * (b - a) * t + 0.5 * (a + b))
            })
            .collect();
        let coeffs = (0..n)
            .map(|k| {
                let s: f64 = values
                    .iter()
                    .enumerate()
                    .map(|(j, &y)| y * (PI * k as f64 * (j as f64 + 0.5) / nf).cos())
                    .sum();
                if k == 0 {
                    s / nf
                } else {
                    2.0 * s / nf
                }
            })
            .collect();
        Self { a, b, coeffs }
    }

    /// The odd part `(p(x) − p(−x))/2` on a symmetric interval `[−a, a]`: the even
    /// coefficients set to zero. For the interpolant of an odd function they are rounding
    /// noise, and zero coefficients let the evaluator skip the even powers the leaves would
    /// otherwise need (`T_10`, `T_12`, `T_14` of 16 baby steps: three products).
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] unless the interval is symmetric about 0.
    pub fn odd_part(mut self) -> Result<Self, CkksError> {
        if self.a != -self.b {
            return Err(CkksError::InvalidParams(format!(
                "the odd part needs an interval symmetric about 0, not [{}, {}]",
                self.a, self.b
            )));
        }
        self.coeffs.iter_mut().step_by(2).for_each(|c| *c = 0.0);
        Ok(self)
    }

    /// The nominal degree: `coeffs.len() − 1` (0 for no coefficients). Trailing zero
    /// coefficients count: the depth is that of the nominal degree.
    pub fn degree(&self) -> usize {
        self.coeffs.len().saturating_sub(1)
    }

    /// `(α, β)` of the affine map `t = αx + β` onto `[−1, 1]`.
    pub fn affine(&self) -> (f64, f64) {
        let w = self.b - self.a;
        (2.0 / w, -(self.a + self.b) / w)
    }

    /// Levels the affine map costs on a ciphertext: 0 when `α = 1` exactly (`b − a = 2`,
    /// an `add_const`), else 1; 0 as well for a constant polynomial.
    pub fn map_levels(&self) -> usize {
        usize::from(self.degree() > 0 && self.affine().0 != 1.0)
    }

    /// Levels the encrypted evaluation consumes: [`depth`]`(degree)` plus
    /// [`ChebyshevPoly::map_levels`].
    pub fn depth(&self) -> usize {
        depth(self.degree()) + self.map_levels()
    }

    /// `p(x)` by Clenshaw's recurrence (the plaintext reference).
    pub fn eval(&self, x: f64) -> f64 {
        let t = (2.0 * x - self.a - self.b) / (self.b - self.a);
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coeffs.iter().skip(1).rev() {
            let b0 = c + 2.0 * t * b1 - b2;
            b2 = b1;
            b1 = b0;
        }
        self.coeffs.first().copied().unwrap_or(0.0) + t * b1 - b2
    }

    /// Plaintext twin: the same baby-step giant-step recursion as the encrypted evaluation,
    /// on `f64` slots, over an idealized chain (every prime and the scale `2^40`).
    ///
    /// # Errors
    /// [`CkksError::InvalidParams`] for a polynomial that is not finite or has `a = b`.
    pub fn eval_bsgs(&self, x: &[f64]) -> Result<Vec<f64>, CkksError> {
        let need = self.depth();
        let be = PlainBackend::new(vec![IDEAL_SCALE; need + 1], IDEAL_SCALE);
        let input = PlainValue {
            v: x.to_vec(),
            level: need,
            scale: IDEAL_SCALE,
        };
        Ok(run(&be, &input, self, IDEAL_SCALE, None)?.0.v)
    }

    fn validate(&self) -> Result<(), CkksError> {
        if !(self.a.is_finite() && self.b.is_finite()) || self.a == self.b {
            return Err(CkksError::InvalidParams(format!(
                "Chebyshev interval [{}, {}] is not a finite non-empty interval",
                self.a, self.b
            )));
        }
        let (alpha, beta) = self.affine();
        if !(alpha.is_finite() && beta.is_finite()) {
            return Err(CkksError::InvalidParams(format!(
                "Chebyshev interval [{}, {}] has no finite affine map",
                self.a, self.b
            )));
        }
        if let Some(k) = self.coeffs.iter().position(|c| !c.is_finite()) {
            return Err(CkksError::InvalidParams(format!(
                "Chebyshev coefficient {k} is not finite"
            )));
        }
        Ok(())
    }
}

/// Operation counts of one polynomial evaluation (from [`PolyEvaluator::simulate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolyCounts {
    /// Ciphertext × ciphertext multiplications (each relinearized).
    pub ct_mults: u64,
    /// Constant multiplications (`mul_const_with_scale`).
    pub const_mults: u64,
    /// Rescalings.
    pub rescales: u64,
}

/// The outcome of a dry run ([`PolyEvaluator::simulate`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolySimulation {
    /// Level of the result.
    pub level: usize,
    /// Scale of the result.
    pub scale: f64,
    /// log2 of the number of baby steps used (`l`; 0 for a constant polynomial).
    pub log_baby: usize,
    /// Operations the evaluation performs.
    pub counts: PolyCounts,
}

/// Evaluates [`ChebyshevPoly`]s on ciphertexts (see the [module documentation](self)).
pub struct PolyEvaluator<'a> {
    eval: &'a Evaluator,
    log_baby: Option<usize>,
}

impl<'a> PolyEvaluator<'a> {
    /// A polynomial evaluator over `eval` (which needs the relinearization key).
    pub fn new(eval: &'a Evaluator) -> Self {
        Self {
            eval,
            log_baby: None,
        }
    }

    /// Fixes `l`, the log2 of the number of baby steps, instead of choosing it by cost. The
    /// depth does not depend on it. `l = 0` is refused at evaluation.
    pub fn with_log_baby(mut self, log_baby: usize) -> Self {
        self.log_baby = Some(log_baby);
        self
    }

    /// `p(ct)` slot-wise, at the input's scale, [`ChebyshevPoly::depth`] levels below it.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] when the input is below `poly.depth()`;
    /// [`CkksError::InvalidParams`] for a polynomial that is not finite or has `a = b`;
    /// [`CkksError::MissingRelinKey`]; encoding errors for unreasonable scales.
    pub fn evaluate(&self, ct: &Ciphertext, poly: &ChebyshevPoly) -> Result<Ciphertext, CkksError> {
        self.evaluate_to_scale(ct, poly, ct.scale())
    }

    /// `p(ct)` slot-wise, with the result at exactly `target_scale`.
    ///
    /// # Errors
    /// As [`PolyEvaluator::evaluate`], and [`CkksError::InvalidParams`] for a target scale that
    /// is not finite and positive.
    pub fn evaluate_to_scale(
        &self,
        ct: &Ciphertext,
        poly: &ChebyshevPoly,
        target_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        let be = CkksBackend { eval: self.eval };
        run(&be, ct, poly, target_scale, self.log_baby).map(|(ct, _)| ct)
    }

    /// Plaintext twin over these parameters' primes: the same recursion, levels and scales
    /// as [`PolyEvaluator::evaluate_to_scale`] on an input at `(level, scale)`, on `f64` slots.
    ///
    /// # Errors
    /// As [`PolyEvaluator::evaluate_to_scale`].
    pub fn evaluate_plain(
        &self,
        x: &[f64],
        level: usize,
        scale: f64,
        poly: &ChebyshevPoly,
        target_scale: f64,
    ) -> Result<Vec<f64>, CkksError> {
        let (out, _, _) = self.plain(x, level, scale, poly, target_scale)?;
        Ok(out.v)
    }

    /// Dry run on `(level, scale)` only: the level and scale of the result and the operation
    /// counts of [`PolyEvaluator::evaluate_to_scale`] on an input at `(level, scale)`.
    ///
    /// # Errors
    /// As [`PolyEvaluator::evaluate_to_scale`].
    pub fn simulate(
        &self,
        level: usize,
        scale: f64,
        poly: &ChebyshevPoly,
        target_scale: f64,
    ) -> Result<PolySimulation, CkksError> {
        let (out, log_baby, counts) = self.plain(&[], level, scale, poly, target_scale)?;
        Ok(PolySimulation {
            level: out.level,
            scale: out.scale,
            log_baby,
            counts,
        })
    }

    fn plain(
        &self,
        x: &[f64],
        level: usize,
        scale: f64,
        poly: &ChebyshevPoly,
        target_scale: f64,
    ) -> Result<(PlainValue, usize, PolyCounts), CkksError> {
        let params = self.eval.params();
        if level > params.max_level() {
            return Err(CkksError::ParamsMismatch);
        }
        let chain = params
            .q_primes(params.max_level())
            .iter()
            .map(|p| p.value() as f64)
            .collect();
        let be = PlainBackend::new(chain, params.default_scale());
        let input = PlainValue {
            v: x.to_vec(),
            level,
            scale,
        };
        let (out, log_baby) = run(&be, &input, poly, target_scale, self.log_baby)?;
        Ok((out, log_baby, be.counts.get()))
    }
}

/// The operations the recursion needs, on ciphertexts or on their plaintext twins.
trait Backend {
    type V: Clone;
    fn level(&self, v: &Self::V) -> usize;
    fn scale(&self, v: &Self::V) -> f64;
    fn set_scale(&self, v: &mut Self::V, scale: f64);
    /// The prime `q_level`.
    fn q(&self, level: usize) -> Result<f64, CkksError>;
    /// The scale the affine map lands `T_1` on.
    fn default_scale(&self) -> f64;
    fn drop_to(&self, v: &Self::V, level: usize) -> Result<Self::V, CkksError>;
    fn mul(&self, a: &Self::V, b: &Self::V) -> Result<Self::V, CkksError>;
    fn mul_const(&self, a: &Self::V, c: f64, const_scale: f64) -> Result<Self::V, CkksError>;
    /// `acc += a·c`, `c` encoded at `const_scale` (one constant multiplication, no temporary).
    fn mul_const_add(
        &self,
        acc: &mut Self::V,
        a: &Self::V,
        c: f64,
        const_scale: f64,
    ) -> Result<(), CkksError>;
    fn add_assign(&self, a: &mut Self::V, b: &Self::V) -> Result<(), CkksError>;
    fn add_const(&self, a: &Self::V, c: f64) -> Result<Self::V, CkksError>;
    fn rescale(&self, a: &Self::V) -> Result<Self::V, CkksError>;
    /// `rescale(a·b + addend)`; the evaluator folds the rescale into the relinearization.
    fn mul_rescale(
        &self,
        a: &Self::V,
        b: &Self::V,
        addend: Option<&Self::V>,
    ) -> Result<Self::V, CkksError> {
        let mut p = self.mul(a, b)?;
        if let Some(x) = addend {
            self.add_assign(&mut p, x)?;
        }
        self.rescale(&p)
    }
}

struct CkksBackend<'e> {
    eval: &'e Evaluator,
}

impl Backend for CkksBackend<'_> {
    type V = Ciphertext;

    fn level(&self, v: &Ciphertext) -> usize {
        v.level()
    }

    fn scale(&self, v: &Ciphertext) -> f64 {
        v.scale()
    }

    fn set_scale(&self, v: &mut Ciphertext, scale: f64) {
        v.set_scale(scale);
    }

    fn q(&self, level: usize) -> Result<f64, CkksError> {
        let params = self.eval.params();
        if level > params.max_level() {
            return Err(CkksError::ParamsMismatch);
        }
        params
            .q_primes(level)
            .last()
            .map(|p| p.value() as f64)
            .ok_or(CkksError::ParamsMismatch)
    }

    fn default_scale(&self) -> f64 {
        self.eval.params().default_scale()
    }

    fn drop_to(&self, v: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        self.eval.drop_to_level(v, level)
    }

    fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.mul_relin(a, b)
    }

    fn mul_const(&self, a: &Ciphertext, c: f64, cs: f64) -> Result<Ciphertext, CkksError> {
        self.eval
            .mul_const_with_scale(a, Complex64::new(c, 0.0), cs)
    }

    fn mul_const_add(
        &self,
        acc: &mut Ciphertext,
        a: &Ciphertext,
        c: f64,
        cs: f64,
    ) -> Result<(), CkksError> {
        self.eval
            .mul_const_add_assign(acc, a, Complex64::new(c, 0.0), cs)
    }

    fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.eval.add_assign(a, b)
    }

    fn add_const(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        self.eval.add_const(a, Complex64::new(c, 0.0))
    }

    fn rescale(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.eval.rescale(a)
    }

    fn mul_rescale(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        addend: Option<&Ciphertext>,
    ) -> Result<Ciphertext, CkksError> {
        self.eval.mul_sum_relin_rescale(&[(a, b)], addend)
    }
}

/// A plaintext twin of a ciphertext: slot values (possibly none, for dry runs) with the level
/// and scale the ciphertext would have.
#[derive(Clone, Debug)]
struct PlainValue {
    v: Vec<f64>,
    level: usize,
    scale: f64,
}

/// Exact arithmetic on slot values, with the evaluator's level and scale rules and checks.
struct PlainBackend {
    chain: Vec<f64>,
    default_scale: f64,
    counts: Cell<PolyCounts>,
}

impl PlainBackend {
    fn new(chain: Vec<f64>, default_scale: f64) -> Self {
        Self {
            chain,
            default_scale,
            counts: Cell::new(PolyCounts::default()),
        }
    }

    fn count(&self, f: impl FnOnce(&mut PolyCounts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }

    fn check_pair(a: &PlainValue, b: &PlainValue) -> Result<(), CkksError> {
        if a.level != b.level {
            return Err(CkksError::LevelMismatch {
                lhs: a.level,
                rhs: b.level,
            });
        }
        if (a.scale - b.scale).abs() > SCALE_TOLERANCE * a.scale.abs().max(b.scale.abs()) {
            return Err(CkksError::ScaleMismatch {
                lhs_log2: a.scale.log2(),
                rhs_log2: b.scale.log2(),
            });
        }
        Ok(())
    }

    fn check_encodable(x: f64) -> Result<(), CkksError> {
        if !x.is_finite() || x.abs() >= MAX_ENCODED {
            return Err(CkksError::Encode {
                slot: 0,
                reason: format!("constant times scale {x} is out of range"),
            });
        }
        Ok(())
    }

    fn zip_assign(
        a: &mut PlainValue,
        b: &PlainValue,
        f: impl Fn(f64, f64) -> f64,
    ) -> Result<(), CkksError> {
        Self::check_pair(a, b)?;
        if a.v.len() != b.v.len() {
            return Err(CkksError::SlotMismatch {
                lhs: a.v.len(),
                rhs: b.v.len(),
            });
        }
        a.v.iter_mut().zip(&b.v).for_each(|(x, &y)| *x = f(*x, y));
        Ok(())
    }
}

impl Backend for PlainBackend {
    type V = PlainValue;

    fn level(&self, v: &PlainValue) -> usize {
        v.level
    }

    fn scale(&self, v: &PlainValue) -> f64 {
        v.scale
    }

    fn set_scale(&self, v: &mut PlainValue, scale: f64) {
        let ratio = v.scale / scale;
        v.v.iter_mut().for_each(|x| *x *= ratio);
        v.scale = scale;
    }

    fn q(&self, level: usize) -> Result<f64, CkksError> {
        self.chain
            .get(level)
            .copied()
            .ok_or(CkksError::ParamsMismatch)
    }

    fn default_scale(&self) -> f64 {
        self.default_scale
    }

    fn drop_to(&self, v: &PlainValue, level: usize) -> Result<PlainValue, CkksError> {
        if level > v.level {
            return Err(CkksError::NotEnoughLevels {
                have: v.level,
                need: level,
            });
        }
        Ok(PlainValue { level, ..v.clone() })
    }

    fn mul(&self, a: &PlainValue, b: &PlainValue) -> Result<PlainValue, CkksError> {
        if a.level != b.level {
            return Err(CkksError::LevelMismatch {
                lhs: a.level,
                rhs: b.level,
            });
        }
        if a.v.len() != b.v.len() {
            return Err(CkksError::SlotMismatch {
                lhs: a.v.len(),
                rhs: b.v.len(),
            });
        }
        self.count(|c| c.ct_mults += 1);
        Ok(PlainValue {
            v: a.v.iter().zip(&b.v).map(|(x, y)| x * y).collect(),
            level: a.level,
            scale: a.scale * b.scale,
        })
    }

    fn mul_const(&self, a: &PlainValue, c: f64, cs: f64) -> Result<PlainValue, CkksError> {
        Self::check_encodable(c * cs)?;
        self.count(|k| k.const_mults += 1);
        Ok(PlainValue {
            v: a.v.iter().map(|x| x * c).collect(),
            level: a.level,
            scale: a.scale * cs,
        })
    }

    fn mul_const_add(
        &self,
        acc: &mut PlainValue,
        a: &PlainValue,
        c: f64,
        cs: f64,
    ) -> Result<(), CkksError> {
        let term = self.mul_const(a, c, cs)?;
        Self::zip_assign(acc, &term, |x, y| x + y)
    }

    fn add_assign(&self, a: &mut PlainValue, b: &PlainValue) -> Result<(), CkksError> {
        Self::zip_assign(a, b, |x, y| x + y)
    }

    fn add_const(&self, a: &PlainValue, c: f64) -> Result<PlainValue, CkksError> {
        Self::check_encodable(c * a.scale)?;
        Ok(PlainValue {
            v: a.v.iter().map(|x| x + c).collect(),
            ..a.clone()
        })
    }

    fn rescale(&self, a: &PlainValue) -> Result<PlainValue, CkksError> {
        if a.level == 0 {
            return Err(CkksError::NotEnoughLevels { have: 0, need: 1 });
        }
        let q = self.q(a.level)?;
        self.count(|c| c.rescales += 1);
        Ok(PlainValue {
            v: a.v.clone(),
            level: a.level - 1,
            scale: a.scale / q,
        })
    }
}

/// `v` at `level`, borrowed when it is already there.
fn at_level<'v, B: Backend>(be: &B, v: &'v B::V, level: usize) -> Result<Cow<'v, B::V>, CkksError> {
    if be.level(v) == level {
        Ok(Cow::Borrowed(v))
    } else {
        be.drop_to(v, level).map(Cow::Owned)
    }
}

/// An exact encryption of zero at `(level, scale)`, made from `like` (a product by the
/// constant 0 is the all-zero ciphertext, so relabelling its scale is exact).
fn zero<B: Backend>(be: &B, like: &B::V, level: usize, scale: f64) -> Result<B::V, CkksError> {
    let like = at_level(be, like, level)?;
    let mut z = be.mul_const(&like, 0.0, 1.0)?;
    be.set_scale(&mut z, scale);
    Ok(z)
}

/// The log2 of the baby-step count that minimizes ciphertext multiplications (then
/// rescales, then `l`), found by dry runs over an idealized chain.
fn best_log_baby(poly: &ChebyshevPoly) -> Result<usize, CkksError> {
    let d = depth(poly.degree());
    let need = poly.depth();
    let mut best: Option<((u64, u64), usize)> = None;
    for l in 1..=d.max(1) {
        let be = PlainBackend::new(vec![IDEAL_SCALE; need + 1], IDEAL_SCALE);
        let input = PlainValue {
            v: Vec::new(),
            level: need,
            scale: IDEAL_SCALE,
        };
        run(&be, &input, poly, IDEAL_SCALE, Some(l))?;
        let c = be.counts.get();
        let key = (c.ct_mults, c.rescales);
        if best.is_none_or(|(k, _)| key < k) {
            best = Some((key, l));
        }
    }
    Ok(best.map_or(1, |(_, l)| l))
}

/// The whole evaluation: checks, affine map, recursion, final scale. Returns the result and
/// the log2 of the baby-step count used (0 for a constant).
fn run<B: Backend>(
    be: &B,
    x: &B::V,
    poly: &ChebyshevPoly,
    target_scale: f64,
    log_baby: Option<usize>,
) -> Result<(B::V, usize), CkksError> {
    poly.validate()?;
    if !(target_scale.is_finite() && target_scale > 0.0) {
        return Err(CkksError::InvalidParams(format!(
            "target scale {target_scale} is not finite and positive"
        )));
    }
    if log_baby == Some(0) {
        return Err(CkksError::InvalidParams(
            "the number of baby steps must be at least 2 (log_baby ≥ 1)".into(),
        ));
    }
    let have = be.level(x);
    let need = poly.depth();
    if have < need {
        return Err(CkksError::NotEnoughLevels { have, need });
    }
    let coeffs = trimmed(&poly.coeffs);
    let c0 = coeffs.first().copied().unwrap_or(0.0);
    if poly.degree() == 0 {
        let z = zero(be, x, have, target_scale)?;
        let z = if c0 == 0.0 { z } else { be.add_const(&z, c0)? };
        return Ok((z, 0));
    }

    // T_1 = αx + β.
    let (alpha, beta) = poly.affine();
    let t1 = if alpha == 1.0 {
        if beta == 0.0 {
            x.clone()
        } else {
            be.add_const(x, beta)?
        }
    } else {
        let cs = be.default_scale() * be.q(have)? / be.scale(x);
        let mut t = be.mul_const(x, alpha, cs)?;
        if beta != 0.0 {
            t = be.add_const(&t, beta)?;
        }
        be.rescale(&t)?
    };

    let log_baby = match log_baby {
        Some(l) => l,
        None => best_log_baby(poly)?,
    };
    let level1 = be.level(&t1);
    let out = level1 - depth(poly.degree());
    let mut bsgs = Bsgs {
        be,
        powers: BTreeMap::from([(1, t1)]),
        level1,
        log_baby,
    };
    let mut res = bsgs.eval(coeffs, out, target_scale)?;
    let s = be.scale(&res);
    if (s - target_scale).abs() > SCALE_TOLERANCE * target_scale {
        return Err(CkksError::ScaleMismatch {
            lhs_log2: s.log2(),
            rhs_log2: target_scale.log2(),
        });
    }
    be.set_scale(&mut res, target_scale);
    Ok((res, log_baby))
}

/// The recursion state: the power basis computed so far.
struct Bsgs<'b, B: Backend> {
    be: &'b B,
    /// `T_k` by `k` (`T_1` always present; `T_0 = 1` never materialized).
    powers: BTreeMap<usize, B::V>,
    /// Level of `T_1`.
    level1: usize,
    /// Leaves have degree `< 2^log_baby`.
    log_baby: usize,
}

impl<B: Backend> Bsgs<'_, B> {
    fn get(&self, k: usize) -> Result<&B::V, CkksError> {
        self.powers.get(&k).ok_or_else(|| {
            CkksError::InvalidParams(format!("internal: T_{k} used before computed"))
        })
    }

    /// Computes `T_k` (and what it needs) if absent, `⌈log2 k⌉` levels below `T_1`.
    fn ensure(&mut self, k: usize) -> Result<(), CkksError> {
        if self.powers.contains_key(&k) {
            return Ok(());
        }
        if k < 2 {
            return Err(CkksError::InvalidParams(format!(
                "internal: T_{k} is not a computed power"
            )));
        }
        let be = self.be;
        let h = k / 2;
        self.ensure(h)?;
        let tk = if k % 2 == 0 {
            // T_{2h} = (2·T_h)·T_h − 1.
            let th = self.get(h)?;
            let mut th2 = th.clone();
            be.add_assign(&mut th2, th)?;
            be.add_const(&be.mul_rescale(&th2, th, None)?, -1.0)?
        } else {
            // T_{2h+1} = (2·T_h)·T_{h+1} − T_1.
            self.ensure(h + 1)?;
            let (a, b) = (self.get(h)?, self.get(h + 1)?);
            let level = be.level(a).min(be.level(b));
            let (a, b) = (at_level(be, a, level)?, at_level(be, b, level)?);
            let mut a2 = a.clone().into_owned();
            be.add_assign(&mut a2, &a)?;
            let t1 = at_level(be, self.get(1)?, level)?;
            let cs = be.scale(&a2) * be.scale(&b) / be.scale(&t1);
            let neg_t1 = be.mul_const(&t1, -1.0, cs)?;
            be.mul_rescale(&a2, &b, Some(&neg_t1))?
        };
        self.powers.insert(k, tk);
        Ok(())
    }

    /// Whether `coeffs` (degree `e`) is evaluated as a leaf within `budget` levels.
    fn is_leaf(&self, e: usize, budget: usize) -> bool {
        e < (1usize << self.log_baby.min(usize::BITS as usize - 2)) && leaf_depth(e) <= budget
    }

    /// `Σ_{i ≥ 1} c_i T_i + c_0` at `(level, scale)`, not rescaled.
    fn leaf(&mut self, coeffs: &[f64], level: usize, scale: f64) -> Result<B::V, CkksError> {
        let be = self.be;
        let mut acc: Option<B::V> = None;
        for (i, &c) in coeffs.iter().enumerate().skip(1) {
            if c == 0.0 {
                continue;
            }
            self.ensure(i)?;
            let t = at_level(be, self.get(i)?, level)?;
            let cs = scale / be.scale(&t);
            match acc.as_mut() {
                Some(a) => be.mul_const_add(a, &t, c, cs)?,
                None => acc = Some(be.mul_const(&t, c, cs)?),
            }
        }
        let acc = match acc {
            Some(a) => a,
            None => zero(be, self.get(1)?, level, scale)?,
        };
        match coeffs.first() {
            Some(&c0) if c0 != 0.0 => be.add_const(&acc, c0),
            _ => Ok(acc),
        }
    }

    /// `p` (coefficients without trailing zeros) at exactly level `out`, scale `scale` (to
    /// rounding).
    fn eval(&mut self, coeffs: &[f64], out: usize, scale: f64) -> Result<B::V, CkksError> {
        let be = self.be;
        let e = coeffs.len().saturating_sub(1);
        let budget = self.level1.saturating_sub(out);
        if e == 0 {
            let z = zero(be, self.get(1)?, out, scale)?;
            return match coeffs.first() {
                Some(&c0) if c0 != 0.0 => be.add_const(&z, c0),
                _ => Ok(z),
            };
        }
        if self.level1 < out + bits(e) {
            return Err(CkksError::NotEnoughLevels {
                have: budget,
                need: bits(e),
            });
        }
        let q_next = be.q(out + 1)?;
        if self.is_leaf(e, budget) {
            let v = self.leaf(coeffs, out + 1, scale * q_next)?;
            return be.rescale(&v);
        }

        // p = q·T_n + r with n = 2^m ≤ e < 2n.
        let n = 1usize << (bits(e) - 1);
        let (q, r) = split(coeffs, n);
        let (q, r) = (trimmed(&q), trimmed(&r));
        self.ensure(n)?;
        let tn_scale = be.scale(self.get(n)?);
        let prod_scale = scale * q_next;
        let factor = if q.len() == 1 {
            Factor::Constant {
                c: q.first().copied().unwrap_or(0.0),
                scale: prod_scale / tn_scale,
            }
        } else {
            Factor::Ct(self.eval(q, out + 1, prod_scale / tn_scale)?)
        };

        let r_deg = r.len() - 1;
        if r_deg == 0 {
            let res = self.times_tn(&factor, n, out + 1, None)?;
            return match r.first().filter(|&&c| c != 0.0) {
                Some(&r0) => be.add_const(&res, r0),
                None => Ok(res),
            };
        }
        if self.is_leaf(r_deg, budget) {
            let product_scale = match &factor {
                Factor::Ct(qv) => be.scale(qv) * tn_scale,
                Factor::Constant { .. } => prod_scale,
            };
            let rv = self.leaf(r, out + 1, product_scale)?;
            return self.times_tn(&factor, n, out + 1, Some(&rv));
        }
        let mut res = self.times_tn(&factor, n, out + 1, None)?;
        let rv = self.eval(r, out, be.scale(&res))?;
        be.add_assign(&mut res, &rv)?;
        Ok(res)
    }

    /// `(q·T_n + addend)` at `level`, rescaled once: a ciphertext `q` is multiplied with the
    /// rescale folded into the relinearization, a constant one by a constant multiplication.
    fn times_tn(
        &self,
        factor: &Factor<B::V>,
        n: usize,
        level: usize,
        addend: Option<&B::V>,
    ) -> Result<B::V, CkksError> {
        let be = self.be;
        let tn = at_level(be, self.get(n)?, level)?;
        match factor {
            Factor::Ct(qv) => be.mul_rescale(qv, &tn, addend),
            &Factor::Constant { c, scale } => {
                let mut p = be.mul_const(&tn, c, scale)?;
                if let Some(x) = addend {
                    be.add_assign(&mut p, x)?;
                }
                be.rescale(&p)
            }
        }
    }
}

/// The quotient `q` of `p = q·T_n + r`: evaluated, or of degree 0 (a constant `c`, to be
/// encoded at `scale`).
enum Factor<V> {
    Ct(V),
    Constant { c: f64, scale: f64 },
}

/// Chebyshev division by `T_n` for `n ≤ deg p < 2n`: `p = q·T_n + r`, `deg r < n`, from
/// `T_{n+j} = 2·T_j·T_n − T_{n−j}` (and `T_n = T_0·T_n`).
fn split(coeffs: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r = coeffs[..n].to_vec();
    let mut q = vec![0.0; coeffs.len() - n];
    for (j, &c) in coeffs.iter().enumerate().skip(n) {
        let j = j - n;
        if j == 0 {
            q[0] = c;
        } else {
            q[j] = 2.0 * c;
            r[n - j] -= c;
        }
    }
    (q, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheb_t(k: usize, t: f64) -> f64 {
        (k as f64 * t.clamp(-1.0, 1.0).acos()).cos()
    }

    #[test]
    fn split_is_chebyshev_division() {
        let coeffs: Vec<f64> = (0..13).map(|k| 1.0 / (k as f64 + 1.0)).collect();
        let (q, r) = split(&coeffs, 8);
        assert_eq!((q.len(), r.len()), (5, 8));
        for i in 0..50 {
            let t = -1.0 + 2.0 * i as f64 / 49.0;
            let p: f64 = coeffs
                .iter()
                .enumerate()
                .map(|(k, c)| c * cheb_t(k, t))
                .sum();
            let qt: f64 = q.iter().enumerate().map(|(k, c)| c * cheb_t(k, t)).sum();
            let rt: f64 = r.iter().enumerate().map(|(k, c)| c * cheb_t(k, t)).sum();
            assert!((p - (qt * cheb_t(8, t) + rt)).abs() < 1e-12);
        }
    }

    #[test]
    fn depth_helpers() {
        assert_eq!(
            [0, 1, 2, 3, 4, 7, 8, 255, 256].map(depth),
            [0, 1, 2, 2, 3, 3, 4, 8, 9]
        );
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(ceil_log2), [0, 1, 2, 2, 3, 3, 4]);
        assert_eq!([0, 1, 2, 3, 4, 7].map(leaf_depth), [0, 1, 2, 3, 3, 4]);
        assert_eq!(trimmed(&[1.0, 0.0, 2.0, 0.0, 0.0]), &[1.0, 0.0, 2.0]);
        assert_eq!(trimmed(&[0.0, 0.0]), &[0.0]);
    }
}
