//! HETAL's softmax, faithful to its numpy reference (`approx_softmax_wide` with the defaults of
//! the repository's benchmark script), on ciphertexts and as a plaintext twin.
//!
//! See the [parent module](super) for the steps, their depth and the reference's accuracy.
//!
//! The encrypted softmax runs stage by stage under the level planner, so it needs only the one
//! level of its first stage on a bootstrapping backend. Every value that may be bootstrapped
//! stays below 2 in magnitude at the logits' scale: the scaled logits and the running max below
//! 1/2, the comparisons below 1, `x − max` below 1 in units of `2·R_max`, and Goldschmidt's
//! iterates, with `y` kept as `y/R` (`y` itself grows to `R/z ≤ R`; `z ≥ 1` up to the
//! approximation since the approximate max is a convex combination of the logits). Within a
//! domain-extension step values reach `k·κ·|t|` (about 80), so each step is one stage; the
//! exponentials exceed 1 where the max is underestimated, so the exponential, its squarings and
//! the row sum are one stage of 8 levels.

use ndarray::{Array2, Axis};

use super::kit::{
    ceil_log2, class_mask, col0_mask, mask_rescale, masked_constant, mul_rescale, numeric,
    one_like, one_minus, product_scale, re, refresh, window_rotations, window_sum, Primes,
    SoftmaxOps,
};
use super::poly::{grid, landing_scale, monomial_roots, KLeaf, ProductPoly};
use crate::error::MlError;
use crate::matrix::BlockShape;
use crate::ops::{ensure_levels, Bootstrap, Leveled};

/// `R_max`: the supported input range is `[−R_max, R_max]`; inputs are scaled by `1/(2·R_max)`.
pub const RMAX: f64 = 128.0;

/// `f(x) = (35x − 35x³ + 21x⁵ − 5x⁷)/16` (Cheon–Kim–Kim), monomial coefficients.
pub const F_COEFFS: [f64; 8] = [
    0.0,
    35.0 / 16.0,
    0.0,
    -35.0 / 16.0,
    0.0,
    21.0 / 16.0,
    0.0,
    -5.0 / 16.0,
];

/// `g(x) = (4589x − 16577x³ + 25614x⁵ − 12860x⁷)/1024`, monomial coefficients.
pub const G_COEFFS: [f64; 8] = [
    0.0,
    4589.0 / 1024.0,
    0.0,
    -16577.0 / 1024.0,
    0.0,
    25614.0 / 1024.0,
    0.0,
    -12860.0 / 1024.0,
];

/// The degree-8 exponential `p` (applied to `x/8`, then squared three times).
pub const EXP_COEFFS: [f64; 9] = [
    1.000000001945585,
    0.9999999388932228,
    0.499999859398392,
    0.16666798775227673,
    0.04166711228500117,
    0.008328336039797088,
    0.0013881473292497602,
    0.00020492629147503022,
    2.551385701569812e-05,
];

/// Domain-extension radii, applied in this order: `x ← x − 4x³/(27R²)`.
pub const DOMAIN_EXTENSION: [f64; 5] = [128.0, 64.0, 32.0, 16.0, 8.0];

/// The exponential's argument is divided by `2^EXP_SQUARINGS` before `p`.
pub const EXP_SQUARINGS: usize = 3;

/// Goldschmidt's `R`: `1/z` for `z ∈ (0, 2R)`.
pub const INV_R: f64 = 100.0;

/// Goldschmidt iterations.
pub const INV_ITERS: usize = 16;

/// Levels HETAL's softmax consumes for `classes` classes, with `c_pad = 2^⌈log2 c⌉`:
/// `1` (scale and pad) `+ 10·log2 c_pad` (max) `+ 10` (domain extension) `+ 3 + 3` (exp)
/// `+ 1` (row sum mask) `+ 17` (inverse) `+ 1` (final product) `= 36 + 10·log2 c_pad`.
pub fn depth(classes: usize) -> usize {
    36 + 10 * ceil_log2(classes)
}

/// `Σ c_k x^k` by Horner, as numpy evaluates it.
fn poly_eval(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

/// The exponential's variable: `u = κ·t` with `t = x/(2·R_max)`, where `κ = 32·c_8^{1/8}` makes
/// `p(x/8) = p(32·t)` monic in `u` (so its leading coefficient needs no level: the last domain
/// extension multiplies by `κ`).
fn exp_kappa() -> f64 {
    let c8 = EXP_COEFFS.last().copied().unwrap_or(1.0);
    2.0 * RMAX / f64::from(1u32 << EXP_SQUARINGS) * c8.powf(0.125)
}

/// The polynomials of one run, factored for the encrypted evaluation.
pub(crate) struct Design {
    classes: usize,
    g: ProductPoly,
    f_half: ProductPoly,
    exp: ProductPoly,
    kappa: f64,
}

impl Design {
    /// Factors HETAL's polynomials for `classes ≥ 2`.
    pub fn new(classes: usize) -> Result<Self, MlError> {
        if classes < 2 {
            return Err(MlError::DimensionMismatch {
                what: "softmax (HETAL) classes, c ≥ 2",
                lhs: classes,
                rhs: 2,
            });
        }
        let samples = grid(-1.05, 1.05, 4001);
        let g = ProductPoly::from_roots(
            &monomial_roots(&G_COEFFS)?,
            |x| poly_eval(&G_COEFFS, x),
            &samples,
        )?;
        let f_half = ProductPoly::from_roots(
            &monomial_roots(&F_COEFFS)?,
            |x| 0.5 * poly_eval(&F_COEFFS, x),
            &samples,
        )?;
        // p(x/8) in u = κ·x/(2·R_max): the roots of p times κ·8/(2·R_max); monic.
        let kappa = exp_kappa();
        let y_per_u = 2.0 * RMAX / f64::from(1u32 << EXP_SQUARINGS) / kappa;
        let roots: Vec<_> = monomial_roots(&EXP_COEFFS)?
            .into_iter()
            .map(|r| r / y_per_u)
            .collect();
        let exp = ProductPoly::from_roots(
            &roots,
            |u| poly_eval(&EXP_COEFFS, y_per_u * u),
            &grid(-1.1 / y_per_u, 0.2 / y_per_u, 4001),
        )?;
        if (exp.k() - 1.0).abs() > 1e-9 {
            return Err(numeric(format!(
                "HETAL's exponential is not monic in its variable (K = {})",
                exp.k()
            )));
        }
        Ok(Self {
            classes,
            g,
            f_half,
            exp,
            kappa,
        })
    }

    /// Levels consumed (equals [`depth`]).
    pub fn depth(&self) -> usize {
        let rounds = ceil_log2(self.classes);
        let cmp = 2 * self.g.depth(KLeaf::Const) + self.f_half.depth(KLeaf::Const);
        1 + rounds * (cmp + 1)
            + 2 * DOMAIN_EXTENSION.len()
            + self.exp.depth(KLeaf::Absorbed)
            + EXP_SQUARINGS
            + 1
            + (INV_ITERS + 1)
            + 1
    }
}

/// HETAL's softmax on one block (logits in the first `classes` columns of each row, zeros
/// elsewhere). The output holds the probabilities in the class columns, zeros elsewhere.
///
/// Before each stage the level planner ([`refresh`], [`ensure_levels`]) gives the values it
/// reads the levels it consumes, bootstrapping those short (see the module doc for their
/// bounds); with levels enough nothing is bootstrapped or dropped, and the circuit is the
/// straight one of [`depth`] levels.
pub(crate) fn block<O: SoftmaxOps + Bootstrap>(
    ops: &O,
    x: &O::Ct,
    shape: BlockShape,
    design: &Design,
) -> Result<O::Ct, MlError> {
    let c = design.classes;
    let c_pad = c.next_power_of_two();
    let e0 = col0_mask(shape, 1.0);
    let primes = Primes::new(ops);
    let target = x.scale();
    let g_depth = design.g.depth(KLeaf::Const);
    let f_depth = design.f_half.depth(KLeaf::Const);
    // 1. x/(2R) in the class columns, −1/2 in all others: ((x + R)·m) − 1/2 with m = 1/(2R) on
    //    the class columns and 0 elsewhere.
    let x = refresh(ops, x.clone(), 1, "softmax logits")?;
    let shifted = ops.add_const(&x, re(RMAX))?;
    let v = mask_rescale(ops, &shifted, &class_mask(shape, c, 0.5 / RMAX))?;
    let v = ops.add_const(&v, re(-0.5))?;
    // 2. Row max by log2(c_pad) rounds of max(a, Rot(a, 2^i)) = a·s + b·(1 − s),
    //    s = f(g(g(a − b)))/2 + 1/2; column 0 holds the max of columns 0..c_pad. In the last
    //    round a and b are masked to column 0 first (their path has 9 levels of slack), and
    //    `vs` carries v to the scale of the result (noiseless ones). `a` and `vs` share level
    //    and scale: a round refreshes them together when its first comparison polynomial would
    //    not fit, which also leaves `a` the 2 levels the last round's mask and product take.
    let mut a = v.clone();
    let mut vs = v;
    let rounds = ceil_log2(c_pad);
    for i in 0..rounds {
        let last = i + 1 == rounds;
        let mut live =
            ensure_levels(ops, vec![a, vs], g_depth, "softmax (HETAL) max round")?.into_iter();
        a = live.next().ok_or(MlError::Empty)?;
        vs = live.next().ok_or(MlError::Empty)?;
        let b = ops.rotate(&a, 1i64 << i)?;
        let r = ops.sub(&a, &b)?;
        let r = design.g.eval_ct(ops, &primes, &r, KLeaf::Const, target)?;
        let r = refresh(ops, r, g_depth, "softmax (HETAL) comparison")?;
        let r = design.g.eval_ct(ops, &primes, &r, KLeaf::Const, target)?;
        let r = refresh(ops, r, f_depth, "softmax (HETAL) comparison")?;
        let s = design
            .f_half
            .eval_ct(ops, &primes, &r, KLeaf::Const, target)?;
        let s = refresh(ops, ops.add_const(&s, re(0.5))?, 1, "softmax (HETAL) max")?;
        let (a_in, b_in, v_in) = if last {
            (
                mask_rescale(ops, &a, &e0)?,
                mask_rescale(ops, &b, &e0)?,
                mask_rescale(ops, &vs, &class_mask(shape, shape.s1(), 1.0))?,
            )
        } else {
            (a, b, vs)
        };
        let left = mul_rescale(ops, &a_in, &s)?;
        let right = mul_rescale(ops, &b_in, &one_minus(ops, &s)?)?;
        vs = mul_rescale(ops, &v_in, &one_like(ops, &s)?)?;
        a = ops.add(&left, &right)?;
    }
    // The max to the class columns; x − max in units of 2·R_max.
    let mx = window_sum(ops, &a, c, -1)?;
    let mut t = ops.sub(&vs, &mx)?;
    // 3. Domain extension (in units of 2·R_max): t ← t − k·t³ = (−k·t)·(t² − 1/k),
    //    k = 4·(2R_max)²/(27R²); the last one also multiplies by κ (the exponential's variable).
    //    One stage (2 levels) per step.
    for (j, radius) in DOMAIN_EXTENSION.into_iter().enumerate() {
        let k = 4.0 * (2.0 * RMAX).powi(2) / (27.0 * radius * radius);
        let scale = if j + 1 == DOMAIN_EXTENSION.len() {
            design.kappa
        } else {
            1.0
        };
        t = refresh(ops, t, 2, "softmax (HETAL) domain extension")?;
        let level = t.level();
        let quad = ops.add_const(&mul_rescale(ops, &t, &t)?, re(-1.0 / k))?;
        let unit = product_scale(&primes, (t.scale(), level), (1.0, level))?;
        let l = landing_scale(&primes, std::slice::from_ref(&quad), unit, target)?;
        let lin = mul_rescale(ops, &t, &ops.constant(&t, -k * scale, l)?)?;
        t = mul_rescale(ops, &quad, &lin)?;
    }
    // 4. exp ≈ p(x/8)^8. Where the max is underestimated (close logits blur it) the
    //    exponentials exceed 1, by e^3 and more: they are never bootstrapped. The polynomial,
    //    its squarings and the row sum's two levels are one stage, refreshed at its input u.
    //    The last squaring's input, one level above the row sum, is the template of the row
    //    sum's masked constant.
    let t = refresh(
        ops,
        t,
        design.exp.depth(KLeaf::Absorbed) + EXP_SQUARINGS + 2,
        "softmax (HETAL) exponential",
    )?;
    let mut e = design
        .exp
        .eval_ct(ops, &primes, &t, KLeaf::Absorbed, target)?;
    for _ in 1..EXP_SQUARINGS {
        e = mul_rescale(ops, &e, &e)?;
    }
    let like = e;
    let e = mul_rescale(ops, &like, &like)?;
    // 5. z = row sum over the classes; z/R masked to column 0 by a product with a noiseless
    //    masked constant (landing on `target`), then to every column of its row.
    let z = window_sum(ops, &e, c, 1)?;
    let l = landing_scale(&primes, std::slice::from_ref(&z), (1.0, z.level()), target)?;
    let m = masked_constant(ops, &like, &col0_mask(shape, 1.0), 1.0 / INV_R, l)?;
    let z = window_sum(ops, &mul_rescale(ops, &z, &m)?, shape.s1(), -1)?;
    // 6. Goldschmidt: y = 2 − z/R, t = 1 − z/R; t ← t², y ← y·(1 + t). `y` is kept as y/R on
    //    the class columns (the output's mask and 1/R, on y's slack before the first product).
    let y = ops.add_const(&ops.neg(&z)?, re(2.0))?;
    let mut y = mask_rescale(ops, &y, &class_mask(shape, c, 1.0 / INV_R))?;
    let mut tmp = one_minus(ops, &z)?;
    for _ in 0..INV_ITERS {
        tmp = refresh(ops, tmp, 2, "softmax (HETAL) inverse")?;
        tmp = mul_rescale(ops, &tmp, &tmp)?;
        y = refresh(ops, y, 1, "softmax (HETAL) inverse")?;
        y = mul_rescale(ops, &y, &ops.add_const(&tmp, re(1.0))?)?;
    }
    // 7. softmax = exp · y/R.
    let mut live = ensure_levels(ops, vec![e, y], 1, "softmax (HETAL) output")?.into_iter();
    let (e, y) = (
        live.next().ok_or(MlError::Empty)?,
        live.next().ok_or(MlError::Empty)?,
    );
    mul_rescale(ops, &e, &y)
}

/// The rotations the encrypted softmax ([`super::softmax`]) uses for `classes` and rows of `s1` slots (sorted, deduplicated).
pub fn rotations(classes: usize, s1: usize) -> Vec<i64> {
    let mut ks: Vec<i64> = (0..ceil_log2(classes)).map(|i| 1i64 << i).collect();
    ks.extend(window_rotations(classes, -1));
    ks.extend(window_rotations(classes, 1));
    ks.extend(window_rotations(s1, -1));
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// HETAL's numpy reference on the rows of `x` (`rows × classes`), in `f64`: the plaintext twin
/// of the encrypted softmax (same constants and order of operations; polynomials by Horner as
/// in numpy).
pub fn twin(x: &Array2<f64>) -> Array2<f64> {
    let classes = x.ncols();
    let c_pad = classes.next_power_of_two();
    let f = |v: f64| poly_eval(&F_COEFFS, v);
    let g = |v: f64| poly_eval(&G_COEFFS, v);
    let mut out = Array2::zeros(x.dim());
    for (row, mut dst) in x.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        // Scale and pad with −1/2.
        let mut ma: Vec<f64> = row
            .iter()
            .map(|&v| v / (2.0 * RMAX))
            .chain(std::iter::repeat_n(-0.5, c_pad - classes))
            .collect();
        let mut shift = 1;
        while shift < c_pad {
            let b: Vec<f64> = ma.iter().cycle().skip(shift).take(c_pad).copied().collect();
            ma = ma
                .iter()
                .zip(&b)
                .map(|(&a, &b)| {
                    let comp = (f(g(g(a - b))) + 1.0) / 2.0;
                    a * comp + b * (1.0 - comp)
                })
                .collect();
            shift *= 2;
        }
        let mx = ma.first().copied().unwrap_or(0.0) * 2.0 * RMAX;
        let e: Vec<f64> = row
            .iter()
            .map(|&v| {
                let mut t = v - mx;
                for radius in DOMAIN_EXTENSION {
                    t -= 4.0 / 27.0 / (radius * radius) * t * t * t;
                }
                let mut p = poly_eval(&EXP_COEFFS, t / f64::from(1u32 << EXP_SQUARINGS));
                for _ in 0..EXP_SQUARINGS {
                    p *= p;
                }
                p
            })
            .collect();
        let z: f64 = e.iter().sum();
        let mut y = 2.0 - z / INV_R;
        let mut tmp = y - 1.0;
        for _ in 0..INV_ITERS {
            tmp *= tmp;
            y *= 1.0 + tmp;
        }
        y /= INV_R;
        for (d, v) in dst.iter_mut().zip(&e) {
            *d = v * y;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn depth_formula_matches_the_factored_polynomials() {
        for c in 2..=16 {
            assert_eq!(Design::new(c).unwrap().depth(), depth(c), "c = {c}");
        }
        assert_eq!([depth(2), depth(4), depth(8), depth(16)], [46, 56, 66, 76]);
    }
}
