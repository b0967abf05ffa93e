//! Our softmax: a log-sum-exp tournament, one exponential, one bounded inverse.
//!
//! See the [parent module](super) for the algorithm, its error analysis and its depth. This
//! module holds the designs (minimax polynomials, stored as Chebyshev coefficients and
//! factored into product form at run time), the encrypted algorithm over [`CkksOps`](crate::CkksOps), and its
//! plaintext twin.

use ndarray::{Array2, Axis};

use num_complex::Complex64;

use super::kit::{
    block_mask, ceil_log2, land, mask_to_scale, mul_rescale, numeric, re, refresh,
    window_rotations, window_sum, Primes, SoftmaxOps,
};
use super::poly::{grid, Cheb, KLeaf, ProductPoly};
use crate::error::MlError;
use crate::matrix::BlockShape;
use crate::ops::{ensure_levels, Bootstrap, Leveled};

/// Half-width of the domain of the pairwise log-sum-exp correction: differences of the
/// tournament's values stay within `±(256 + ln 16 + 2δ) < ±262` for inputs in `[−128, 128]`.
pub const PSI_D: f64 = 264.0;

/// Largest error of ψ₆₂, the degree-62 minimax approximation of
/// `ψ(d) = ln(e^{d/2} + e^{−d/2})` on `[−PSI_D, PSI_D]` (checked on a grid by the tests).
pub const PSI_ERROR: f64 = 0.3719120631714077;

/// Largest error of ψ₃₀, the degree-30 minimax approximation of ψ on `[−PSI_D, PSI_D]`, which
/// the shallow round ([`shallow_round`]) uses (checked on a grid by the tests).
pub const PSI_SHALLOW_ERROR: f64 = 0.9965524704268205;

/// Interval of the exponential's argument `t = x − L̃`: `t ≥ −256 − ln 16 − δ` and `t ≤ δ`
/// (`δ ≤ 2.15`, [`lse_bound`]).
pub const EXP_LO: f64 = -264.0;
/// Upper end of the exponential's interval.
pub const EXP_HI: f64 = 2.6;
/// Squarings after the exponential's base polynomial: `e^t ≈ p(t)^(2^EXP_SQUARINGS)`.
pub const EXP_SQUARINGS: usize = 4;
/// Largest absolute error of `p(t)^16` against `e^t` on `[EXP_LO, EXP_HI]`.
pub const EXP_ERROR: f64 = 4.349565561057034e-7;

/// Largest number of classes the designs cover (`⌈log2 c⌉ ≤ 4` tournament rounds).
pub const MAX_CLASSES: usize = 16;

/// Upper ends of the inverse polynomials' intervals `[0, 1.02·e^{δ_R}]`, by rounds `R = 1..=4`.
const G_HI: [f64; 4] = [
    1.4999530552213252,
    2.183796759908377,
    3.179411696909835,
    8.69905304067209,
];

/// Largest relative error of `G_R(S)` against `1/S` on `[e^{−δ_R}, e^{δ_R}]`, `R = 1..=4`.
pub const G_ERROR: [f64; 4] = [
    0.00010602921796931675,
    7.872641805128922e-06,
    9.298665855250743e-05,
    3.3882597082368626e-05,
];

/// Largest `|G_R(S)|` on all of `[0, G_HI]` (the other slots of a row sum hold partial sums in
/// `[0, e^{δ_R}]`), `R = 1..=4`.
pub const G_BOUND: [f64; 4] = [
    5.8821688440051965,
    8.563908862385794,
    14.999959919028477,
    47.0011084838585,
];

/// ψ₆₂: Chebyshev coefficients in `2w − 1`, `w = (d/PSI_D)²` (minimax, error [`PSI_ERROR`]).
#[rustfmt::skip]
const PSI_COEFFS: [f64; 32] = [
    84.03547232253003, 56.019216838349955, -11.201187065410311, 4.7986202092840315,
    -2.664438566033579, 1.6943634864394015, -1.1720265479759258, 0.8586326248654775,
    -0.6558623550575934, 0.517127575367435, -0.41805526739925425, 0.3448272926397211,
    -0.28919410294467285, 0.24593452872803095, -0.21164018901687756, 0.18399662546883525,
    -0.16139500743578136, 0.14268496092056304, -0.12702674909639233, 0.11379417220240598,
    -0.10252165725874665, 0.09284194202294326, -0.08447664747305997, 0.07720486911691966,
    -0.07085064450287813, 0.06527526081409221, -0.060365406013142914, 0.05603127500959884,
    -0.05219088279903568, 0.04879537556952266, -0.04577770712255183, 0.39407937292109274,
];

/// ψ₃₀: Chebyshev coefficients in `2w − 1`, `w = (d/PSI_D)²` (minimax, error
/// [`PSI_SHALLOW_ERROR`]).
#[rustfmt::skip]
const PSI_SHALLOW_COEFFS: [f64; 16] = [
    84.03197498020718, 56.02621477340189, -11.208316398495942, 4.805898088997273,
    -2.671980886896185, 1.7022308718024712, -1.1803272271967662, 0.8674687673270669,
    -0.6653638973050355, 0.5274608813547444, -0.42939261807020135, 0.35743540627674025,
    -0.30334493981488675, 0.26206390807479385, -0.2302211714599797, 1.1046537124850726,
];

/// The exponential base on `[EXP_LO, EXP_HI]` (Chebyshev coefficients in `t`).
#[rustfmt::skip]
const EXP_COEFFS: [f64; 9] = [
    0.19085294781053833, 0.3656922873655546, 0.1941007580991338, 0.14357592356129334,
    0.04717988723872226, 0.165215880586245, 0.17273476311856203, -0.18994255786098307,
    0.08703842628640517,
];

/// `G_1` ≈ 1/S (Chebyshev on `[0, G_HI[0]]`).
#[rustfmt::skip]
const G1_COEFFS: [f64; 7] = [
    2.2263360420871043, -2.271146157998722, 0.9708611341272985, -0.32753357101997316,
    0.07753853324599344, -0.009241586894284922, -0.0004881813681797016,
];

/// `G_2` ≈ 1/S (Chebyshev on `[0, G_HI[1]]`).
#[rustfmt::skip]
const G2_COEFFS: [f64; 15] = [
    2.322975848444685, -3.0282891483900887, 1.822789630767337, -0.9853908930876254,
    0.4513547273402641, -0.14678565978993688, -0.0007470944751642573, 0.052967734905527114,
    -0.05645476347080718, 0.04139578911817396, -0.024310881026227454, 0.01170478594121244,
    -0.004547647539563722, 0.0013121673097514987, -0.00023618164771640275,
];

/// `G_3` ≈ 1/S (Chebyshev on `[0, G_HI[2]]`).
#[rustfmt::skip]
const G3_COEFFS: [f64; 15] = [
    2.4754915770786927, -3.7914178014446436, 2.826378338074821, -2.04471524397369,
    1.431456614533274, -0.9655009978791858, 0.6249594266646179, -0.38550948865726414,
    0.2252650763163987, -0.12309616332257857, 0.06224520857461291, -0.028282014137851478,
    0.011276941201582298, -0.0035624768735756786, 0.0008025502956933252,
];

/// `G_4` ≈ 1/S (Chebyshev on `[0, G_HI[3]]`, degree 46: the wider `δ_4` of the shallow round).
#[rustfmt::skip]
const G4_COEFFS: [f64; 47] = [
    2.6867225100860677, -4.791715796388893, 4.502572654115477, -3.9722196455558887,
    3.7284419259572696, -3.251125382970662, 3.048704706032312, -2.6250317952732334,
    2.4595610033248265, -2.0890394316969365, 1.955921630680073, -1.6369768258647803,
    1.5316210816952143, -1.2616761312821412, 1.1796672735583797, -0.955279143923123,
    0.892512876868314, -0.7095533503925989, 0.662332137387928, -0.5161983696836853,
    0.4812876435368044, -0.36712506068191375, 0.34177299768431485, -0.2546933176488279,
    0.23662004033230297, -0.17189874856441453, 0.15926243829171982, -0.1125031852354365,
    0.1038510138940629, -0.0711086933623655, 0.06532015947318039, -0.043178966797554424,
    0.0394078700875695, -0.025015114091146994, 0.022634846616986157, -0.013695241892437773,
    0.012250463569114044, -0.0069884004797508585, 0.006154406490211338, -0.0032533614820909585,
    0.002803336340000715, -0.0013319854540366418, 0.0011114237159846332, -0.0004453423774055063,
    0.00035243541873845554, -9.876381098704693e-05, 6.955379139564115e-05,
];

/// Tournament rounds for `c` classes: `⌈log2 c⌉`.
pub fn rounds(classes: usize) -> usize {
    ceil_log2(classes)
}

/// The round of a `rounds`-round tournament that uses ψ₃₀ instead of ψ₆₂ (one level less):
/// the third of four. At 10 levels per bootstrap that lets the second and third rounds share
/// one bootstrap (see the parent module); its larger error is paid for by the degree-46
/// inverse `G_4`, so the depth stays 38.
pub fn shallow_round(rounds: usize) -> Option<usize> {
    (rounds == 4).then_some(2)
}

/// ψ's worst-case error in round `j` of a `rounds`-round tournament.
fn round_error(rounds: usize, j: usize) -> f64 {
    if shallow_round(rounds) == Some(j) {
        PSI_SHALLOW_ERROR
    } else {
        PSI_ERROR
    }
}

/// The worst-case error of the tournament's log-sum-exp after `rounds` rounds: the sum of
/// its rounds' ψ errors (1.49 for `R = 4` without the shallow round, 2.11 with it).
pub fn lse_error(rounds: usize) -> f64 {
    (0..rounds).map(|j| round_error(rounds, j)).sum()
}

/// [`lse_error`] with the margin the inverse's interval is designed for:
/// `δ_R = 1.01·lse_error(R) + 0.01`.
pub fn lse_bound(rounds: usize) -> f64 {
    1.01 * lse_error(rounds) + 0.01
}

/// The inverse polynomial's Chebyshev series for `rounds` rounds (`1..=4`).
fn g_cheb(rounds: usize) -> Option<Cheb> {
    let hi = *G_HI.get(rounds.checked_sub(1)?)?;
    let coeffs: &[f64] = match rounds {
        1 => &G1_COEFFS,
        2 => &G2_COEFFS,
        3 => &G3_COEFFS,
        4 => &G4_COEFFS,
        _ => return None,
    };
    Some(Cheb::new(0.0, hi, coeffs))
}

/// Levels of the inverse (degree 6, 14, 14, 46 and a `K·mask` leaf: 4, 8, 8, 24 leaves).
fn g_depth(rounds: usize) -> usize {
    match rounds {
        0 | 1 => 3,
        2 | 3 => 4,
        _ => 6,
    }
}

/// Levels our softmax consumes for `classes` classes: `1` (scale) `+ 6·R` (tournament, one
/// less with the shallow round) `+ 3 + 4` (exponential) `+ d_G` (inverse) `+ 1` (final
/// product): 18, 25, 31, 38 for `R = 1, 2, 3, 4`.
pub fn depth(classes: usize) -> usize {
    let r = rounds(classes);
    1 + 6 * r - usize::from(shallow_round(r).is_some()) + 3 + EXP_SQUARINGS + g_depth(r) + 1
}

/// ψ₆₂ as a Chebyshev series in `w = (d/PSI_D)²` on `[0, 1]`.
fn psi_w() -> Cheb {
    Cheb::new(0.0, 1.0, &PSI_COEFFS)
}

/// ψ₃₀ as a Chebyshev series in `w = (d/PSI_D)²` on `[0, 1]`.
fn psi_w_shallow() -> Cheb {
    Cheb::new(0.0, 1.0, &PSI_SHALLOW_COEFFS)
}

/// The exponential base polynomial (in `t`).
fn exp_cheb() -> Cheb {
    Cheb::new(EXP_LO, EXP_HI, &EXP_COEFFS)
}

/// The exact pairwise correction `ψ(d) = ln(e^{d/2} + e^{−d/2})`, so that
/// `LSE(a, b) = (a + b)/2 + ψ(a − b)`.
pub fn psi_exact(d: f64) -> f64 {
    let h = 0.5 * d.abs();
    h + (-2.0 * h).exp().ln_1p()
}

/// ψ₆₂ (the approximation used), by its Chebyshev series.
pub fn psi_approx(d: f64) -> f64 {
    let w = d / PSI_D;
    psi_w().eval(w * w)
}

/// ψ₃₀ (the shallow round's approximation), by its Chebyshev series.
pub fn psi_shallow_approx(d: f64) -> f64 {
    let w = d / PSI_D;
    psi_w_shallow().eval(w * w)
}

/// The exponential approximation `p(t)^16` (by its Chebyshev series).
pub fn exp_approx(t: f64) -> f64 {
    exp_cheb().eval(t).powi(1 << EXP_SQUARINGS)
}

/// The inverse approximation `G_R(S)` for `rounds` rounds (`1..=4`), by its Chebyshev series.
pub fn inverse_approx(rounds: usize, s: f64) -> Option<f64> {
    g_cheb(rounds).map(|g| g.eval(s))
}

/// The unit of the exponential: `σ_e = |K_p|^{1/8}` for `K_p` the leading coefficient of its
/// base polynomial in `t`, so that the base is monic in `σ_e·t` (its leading coefficient costs
/// no level). `σ_e ≈ 0.00995`.
pub fn exp_unit() -> f64 {
    let p = exp_cheb();
    let n = p.degree();
    let lead = p.coeffs.last().copied().unwrap_or(1.0)
        * 2f64.powi(n as i32 - 1)
        * (2.0 / (p.hi - p.lo)).powi(n as i32);
    lead.abs().powf(1.0 / n as f64)
}

/// The unit `u` in which a polynomial with `roots` (in `x` units) has a monic product of
/// geometric mean 1 over `samples`: the monic leaves on a ciphertext holding `u·x` at the
/// default scale are then of order 1, and the leading coefficient is neither tiny nor huge
/// (a noiseless constant keeps about 40 bits of it).
fn balancing_unit(roots: &[Complex64], samples: &[f64]) -> f64 {
    let n = roots.len().max(1) as f64;
    let mean_log: f64 = samples
        .iter()
        .map(|&x| {
            roots
                .iter()
                .map(|r| (Complex64::new(x, 0.0) - r).norm().max(1e-300).ln())
                .sum::<f64>()
        })
        .sum::<f64>()
        / samples.len().max(1) as f64;
    (-mean_log / n).exp()
}

/// The largest `α_y·e^δ` (see [`Design::new`]): the exponential's values stay below this.
const ALPHA_HEADROOM: f64 = 0.95;

/// The value non-class slots are set to (in `x` units): low enough to vanish in the
/// exponential, high enough for the tournament's differences to stay within `±PSI_D`.
const PAD: f64 = -128.0;

/// The polynomials of one run, factored for the encrypted evaluation: the tournament in units
/// of `σ_t` (which balance ψ's leaves), the exponential in units of [`exp_unit`].
pub(crate) struct Design {
    classes: usize,
    rounds: usize,
    sigma: f64,
    rho: f64,
    psi: ProductPoly,
    /// ψ₃₀ in the same unit, for the [`shallow_round`].
    psi_shallow: ProductPoly,
    exp: ProductPoly,
    /// Doublings from the exponential's unit to G's.
    y_doublings: u32,
    g: ProductPoly,
    g_cheb: Cheb,
}

impl Design {
    /// Factors the designs for `classes` (`2 ≤ c ≤ MAX_CLASSES`).
    pub fn new(classes: usize) -> Result<Self, MlError> {
        if !(2..=MAX_CLASSES).contains(&classes) {
            return Err(MlError::DimensionMismatch {
                what: "softmax (ours) classes, 2 ≤ c ≤ 16",
                lhs: classes,
                rhs: MAX_CLASSES,
            });
        }
        let rounds = rounds(classes);
        // ψ's roots in x units: ±PSI_D·√w for the roots w of the series in w; the tournament's
        // unit σ_t balances them. ψ is evaluated in u = (σ_t·d)², where its roots are
        // (σ_t·PSI_D)²·w: 15 monic quadratics in u (each a quartic in d for one product) and one
        // linear factor carrying K, instead of 31 quadratics in d and a K leaf.
        let wroots = psi_w().roots()?;
        let xroots: Vec<Complex64> = wroots
            .iter()
            .flat_map(|w| {
                let s = w.sqrt() * PSI_D;
                [s, -s]
            })
            .collect();
        let sigma = balancing_unit(&xroots, &grid(-PSI_D, PSI_D, 2001));
        let u_max = (sigma * PSI_D).powi(2);
        let factor_psi = |series: Cheb| -> Result<ProductPoly, MlError> {
            let psi = ProductPoly::from_roots(
                &series
                    .roots()?
                    .iter()
                    .map(|w| w * u_max)
                    .collect::<Vec<_>>(),
                |u| sigma * series.eval(u / u_max),
                &grid(0.0, u_max, 8001),
            )?;
            if !psi.leaves(KLeaf::Const).is_power_of_two() {
                return Err(numeric(
                    "ψ must factor into 2^k − 1 quadratics in d² and a linear factor".into(),
                ));
            }
            Ok(psi)
        };
        let psi = factor_psi(psi_w())?;
        let psi_shallow = factor_psi(psi_w_shallow())?;
        // G in units of α (balancing its leaves): G_α(αS) = G(S)/α, roots α·r.
        let g_cheb = g_cheb(rounds).ok_or(MlError::Empty)?;
        let g_roots = g_cheb.roots()?;
        let alpha = balancing_unit(&g_roots, &grid(0.0, g_cheb.hi, 2001));
        let g = ProductPoly::from_roots(
            &g_roots.iter().map(|r| r * alpha).collect::<Vec<_>>(),
            |s| g_cheb.eval(s / alpha) / alpha,
            &grid(0.0, g_cheb.hi * alpha, 4001),
        )?;
        // The exponential's values carry α_y = α/2^k, the largest such that they stay below 1
        // (p(t) ≤ (α_y·e^δ)^{1/16}, y ≤ α_y·e^δ), so that the level planner may bootstrap them
        // at the logits' scale; k doublings (additions, no level) bring y to G's units.
        let y_doublings = (alpha / (ALPHA_HEADROOM * (-lse_bound(rounds)).exp()))
            .log2()
            .ceil()
            .max(0.0) as u32;
        let alpha_y = alpha / f64::from(y_doublings).exp2();
        // p(t) in u = σ_e·t with σ_e = exp_unit()·α_y^{1/128}: monic, and equal to
        // ±α_y^{1/16}·p(t), so that y = p(t)^16·α_y (p^16 ignores the sign).
        let pc = exp_cheb();
        let sigma_e = exp_unit() * alpha_y.powf(1.0 / 128.0);
        let sign = if unit_sign(&pc) < 0.0 { -1.0 } else { 1.0 };
        let y_factor = alpha_y.powf(1.0 / 16.0);
        let uroots: Vec<Complex64> = pc.roots()?.into_iter().map(|r| r * sigma_e).collect();
        let exp = ProductPoly::from_roots(
            &uroots,
            |u| sign * y_factor * pc.eval(u / sigma_e),
            &grid(EXP_LO * sigma_e, EXP_HI * sigma_e, 4001),
        )?;
        if (exp.k() - 1.0).abs() > 1e-9 {
            return Err(numeric(format!(
                "the exponential is not monic in its variable (K = {})",
                exp.k()
            )));
        }
        Ok(Self {
            classes,
            rounds,
            sigma,
            rho: sigma_e / sigma,
            psi,
            psi_shallow,
            exp,
            y_doublings,
            g,
            g_cheb,
        })
    }

    /// Levels consumed (equals [`depth`]).
    pub fn depth(&self) -> usize {
        let d = self.stage_depths();
        let rounds: usize = (0..self.rounds)
            .map(|j| 1 + self.psi_of(j).depth(KLeaf::Const))
            .sum();
        d.scale + rounds + d.exp_base + EXP_SQUARINGS + d.normalize
    }

    /// ψ as round `j` evaluates it.
    fn psi_of(&self, j: usize) -> &ProductPoly {
        if shallow_round(self.rounds) == Some(j) {
            &self.psi_shallow
        } else {
            &self.psi
        }
    }

    /// The levels of each stage: where the level planner may bootstrap in between.
    fn stage_depths(&self) -> StageDepths {
        StageDepths {
            scale: 1,
            exp_base: self.exp.depth(KLeaf::Absorbed),
            normalize: self.g.depth(KLeaf::Mask(&[])) + 1,
        }
    }
}

/// Levels of the stages of our softmax (see [`Design::stage_depths`]; a round takes
/// `1 + ψ`'s depth).
struct StageDepths {
    scale: usize,
    /// The exponential's base polynomial (its squarings are one level each).
    exp_base: usize,
    normalize: usize,
}

/// The sign of the leading coefficient of a Chebyshev series.
fn unit_sign(p: &Cheb) -> f64 {
    p.coeffs.last().copied().unwrap_or(1.0).signum()
}

/// One tournament round: for each `second` (already rotated), the pairwise log-sum-exp
/// `(first + second)/2 + ψ(first − second)` in units of σ_t, times `factor` (a change of unit),
/// landing exactly on the scale `target`, which `first` and `second` have: ψ's linear leaf lands
/// the tree there, and the half sum is a product by a constant landed there, dropped to ψ's
/// level. In the last round (`mask` given) both are multiplied by the mask, ψ through its
/// linear leaf.
fn lse_round<O: SoftmaxOps>(
    ops: &O,
    round: &Round<'_, '_, O>,
    first: &O::Ct,
    seconds: &[O::Ct],
) -> Result<Vec<O::Ct>, MlError> {
    seconds
        .iter()
        .map(|second| {
            let (u, half) = lse_inputs(ops, round, first, second, false)?;
            lse_merge(ops, round, &u, &half)
        })
        .collect()
}

/// How much lower than `u`'s own scale a merge's inputs enter a paired bootstrap: `u` reaches
/// `(σ_t·PSI_D)² ≈ 3.3`, a quarter of it stays below a circuit's bound of 1.
const PAIR_SHRINK: f64 = 4.0;

/// A merge's two inputs, one level below `first`: ψ's variable `u = (first − second)²` and
/// the half sum `(first + second)·factor/2` (masked in the last round), landed on
/// `u`'s scale / [`PAIR_SHRINK`] when `pair` (ready to share a paired bootstrap with `u`
/// landed there too), else on the round's target.
fn lse_inputs<O: SoftmaxOps>(
    ops: &O,
    round: &Round<'_, '_, O>,
    first: &O::Ct,
    second: &O::Ct,
    pair: bool,
) -> Result<(O::Ct, O::Ct), MlError> {
    let d = ops.sub(first, second)?;
    let u = mul_rescale(ops, &d, &d)?;
    let sum = ops.add(first, second)?;
    let scale = if pair {
        u.scale() / PAIR_SHRINK
    } else {
        round.target
    };
    let half = match round.half_mask {
        Some(m) => mask_to_scale(ops, &sum, m, scale)?,
        None => land(ops, &sum, round.half, scale)?,
    };
    Ok((u, half))
}

/// `ψ(u) + half` on the round's target scale, which `half` has.
fn lse_merge<O: SoftmaxOps>(
    ops: &O,
    round: &Round<'_, '_, O>,
    u: &O::Ct,
    half: &O::Ct,
) -> Result<O::Ct, MlError> {
    let kleaf = round.mask.map_or(KLeaf::Const, KLeaf::Mask);
    let value = round
        .psi
        .eval_ct(ops, round.primes, u, kleaf, round.target)?;
    Ok(ops.add(&value, &ops.drop_to_level(half, value.level())?)?)
}

/// The fixed inputs of a tournament round.
struct Round<'p, 'm, O> {
    primes: &'p Primes<'p, O>,
    /// ψ of the round, its values already in the output unit (times `factor`).
    psi: &'p ProductPoly,
    /// The column-0 mask of the last round.
    mask: Option<&'m [Complex64]>,
    /// The scale the results land on.
    target: f64,
    /// The half sum's multiplier: `factor/2` for a change of unit `factor` of every output.
    half: f64,
    /// The last round's column-0 mask times `half` (encoded once per round, not per merge).
    half_mask: Option<&'m [Complex64]>,
}

impl<O> Clone for Round<'_, '_, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O> Copy for Round<'_, '_, O> {}

/// What the tournament keeps of the partial window `P_j` (the low bits of `c`) in a round.
enum Partial {
    /// No partial window yet, and none made.
    Empty,
    /// Keep `P_j` unchanged.
    Keep,
    /// `P_{j+1} = W_j`.
    FromWindow,
    /// `P_{j+1} = LSE(W_j, Rot(P_j, 2^j))`.
    Combine,
}

/// Whether a block of rows of `s1` slots is processed as two halves (even and odd rows), so
/// that a window of `c` slots never covers the classes of two rows.
pub fn split(classes: usize, s1: usize) -> bool {
    s1 < 2 * classes - 1
}

/// Our softmax on one block: logits of `classes` classes in the first columns of each row
/// (zeros in the others), as [`crate::diag_abt`] leaves them. The output holds the
/// probabilities in the class columns and zeros elsewhere, at the scale `out_scale` (by
/// default the input's): the inverse's constant leaf lands it there for free.
pub(crate) fn block<O: SoftmaxOps + Bootstrap>(
    ops: &O,
    x: &O::Ct,
    shape: BlockShape,
    design: &Design,
    out_scale: Option<f64>,
) -> Result<O::Ct, MlError> {
    let c = design.classes;
    let s1 = shape.s1();
    if !split(c, s1) {
        return half(ops, x, shape, design, out_scale, |_| true);
    }
    let s1i = s1 as i64;
    let even = half(ops, x, shape, design, out_scale, |i| i % 2 == 0)?;
    let odd = half(ops, &ops.rotate(x, s1i)?, shape, design, out_scale, |i| {
        i % 2 == 0
    })?;
    Ok(ops.add(&even, &ops.rotate(&odd, -s1i)?)?)
}

/// Our softmax on the rows `active(i)` of a block, all other rows treated as padding; the
/// output is zero outside the class columns of the active rows.
fn half<O: SoftmaxOps + Bootstrap>(
    ops: &O,
    x: &O::Ct,
    shape: BlockShape,
    design: &Design,
    out_scale: Option<f64>,
    active: impl Fn(usize) -> bool,
) -> Result<O::Ct, MlError> {
    let c = design.classes;
    let sigma = design.sigma;
    let primes = Primes::new(ops);
    let target = x.scale();
    let out_scale = out_scale.unwrap_or(target);
    let depths = design.stage_depths();
    // 1. σ_t·x in the class columns of the active rows, σ_t·PAD in every other slot:
    //    ((x − PAD)·m) + σ_t·PAD with m = σ_t there and 0 elsewhere. One level.
    let m = block_mask(shape, |i, k| if active(i) && k < c { sigma } else { 0.0 });
    let e0 = block_mask(shape, |i, k| if active(i) && k == 0 { 1.0 } else { 0.0 });
    let x = refresh(ops, x.clone(), 1, "softmax logits")?;
    let v = mask_to_scale(ops, &ops.add_const(&x, re(-PAD))?, &m, target)?;
    let v = ops.add_const(&v, re(sigma * PAD))?;
    // 2. The tournament: L̃ in column 0 (masked). Every value lands on the scale `target`, so
    //    a value read later is only dropped to the level of its partner; the planner refreshes
    //    what a round reads (the window and the partial window: one paired bootstrap). A round
    //    with one merge and nothing else live, whose window has 2 levels or more but not the
    //    round's,
    //    forms the merge's inputs first and refreshes them as a pair (ψ's variable and the
    //    half sum), which moves the square ahead of the bootstrap: at 10 levels per bootstrap
    //    the second round then ends with the 5 levels the shallow third one needs.
    //    x in σ_e units is taken from the (refreshed) input of the first round.
    let power_of_two = c.is_power_of_two();
    let round_need = |j: usize| 1 + design.psi_of(j).depth(KLeaf::Const);
    let mut w = refresh(ops, v, round_need(0), "softmax tournament round")?;
    let xs = land(ops, &w, design.rho, target)?;
    let mut p: Option<O::Ct> = None;
    let mut result: Option<O::Ct> = None;
    for j in 0..design.rounds {
        let last = j + 1 == design.rounds;
        let l = 1usize << j;
        let shift = l as i64;
        let need = round_need(j);
        let want_w = if last { power_of_two } else { 2 * l <= c };
        let partial = if last && power_of_two {
            Partial::Empty
        } else {
            match (c & l != 0, p.is_some()) {
                (true, true) => Partial::Combine,
                (true, false) => Partial::FromWindow,
                (false, true) => Partial::Keep,
                (false, false) => Partial::Empty,
            }
        };
        let factor = if last { design.rho } else { 1.0 };
        let psi = design.psi_of(j).scaled(factor);
        let half_mask: Option<Vec<Complex64>> =
            last.then(|| e0.iter().map(|v| v * (0.5 * factor)).collect());
        let round = Round {
            primes: &primes,
            psi: &psi,
            mask: last.then_some(e0.as_slice()),
            target,
            half: 0.5 * factor,
            half_mask: half_mask.as_deref(),
        };
        let lone = want_w && p.is_none() && matches!(partial, Partial::Empty);
        let can_pair = ops.refreshed_level().is_some_and(|l| l + 1 >= need);
        let outs = if lone && can_pair && (2..need).contains(&w.level()) {
            // u and the half sum enter the bootstrap at a quarter of u's scale (u's values
            // exceed the circuit's bound at its own) and come back at it, for ψ's product form.
            let second = ops.rotate(&w, shift)?;
            let (u, half) = lse_inputs(ops, &round, &w, &second, true)?;
            let u_scale = u.scale();
            let u = land(ops, &u, 1.0, u_scale / PAIR_SHRINK)?;
            let half = ops.drop_to_level(&half, u.level())?;
            let (u, half) = ops.bootstrap_pair_to(&u, &half, u_scale)?;
            // The half sum came back on u's scale: landed on the target, off ψ's path.
            let half = land(ops, &half, 1.0, round.target)?;
            vec![lse_merge(ops, &round, &u, &half)?]
        } else {
            let mut live = ensure_levels(
                ops,
                std::iter::once(w).chain(p.take()).collect(),
                need,
                "softmax tournament round",
            )?
            .into_iter();
            w = live.next().ok_or(MlError::Empty)?;
            p = live.next();
            let mut seconds = Vec::with_capacity(2);
            if want_w {
                seconds.push(ops.rotate(&w, shift)?);
            }
            if let (Partial::Combine, Some(pj)) = (&partial, &p) {
                seconds.push(ops.rotate(pj, shift)?);
            }
            lse_round(ops, &round, &w, &seconds)?
        };
        let mut outs = outs.into_iter();
        let new_w = if want_w { outs.next() } else { None };
        p = match partial {
            Partial::Combine => outs.next(),
            Partial::Keep => p,
            Partial::FromWindow => Some(w.clone()),
            Partial::Empty => None,
        };
        if last {
            result = if power_of_two { new_w } else { p.take() };
        } else if let Some(nw) = new_w {
            w = nw;
        }
    }
    // 3. t = x − L̃ (now in σ_e units) in the class columns; PAD − 0 elsewhere. y = p(t)^16.
    //    x and L̃ stay below 1.3 in magnitude and are refreshed together if short; t reaches 2.6
    //    (too large to bootstrap at its scale), p(t) stays below 1: the planner may refresh
    //    before t is formed and between the squarings, never after t is formed.
    let l_fill = window_sum(ops, &result.ok_or(MlError::Empty)?, c, -1)?;
    let mut xl = ensure_levels(
        ops,
        vec![xs, l_fill],
        depths.exp_base,
        "softmax exponential",
    )?
    .into_iter();
    let (xs, l_fill) = (
        xl.next().ok_or(MlError::Empty)?,
        xl.next().ok_or(MlError::Empty)?,
    );
    let t = ops.sub(&xs, &l_fill)?;
    let mut y = design
        .exp
        .eval_ct(ops, &primes, &t, KLeaf::Absorbed, target)?;
    for _ in 0..EXP_SQUARINGS {
        y = refresh(ops, y, 1, "softmax exponential squaring")?;
        y = mul_rescale(ops, &y, &y)?;
    }
    // 4. S in column 0, G(S) masked to column 0 (its K leaf), to the class columns; y·G(S).
    let mut y = refresh(ops, y, depths.normalize, "softmax normalization")?;
    for _ in 0..design.y_doublings {
        y = ops.add(&y, &y)?;
    }
    //    The constant leaf of G lands the product y·G(S) on `out_scale`.
    let s = window_sum(ops, &y, c, 1)?;
    let g_depth = design.g.depth(KLeaf::Mask(&e0));
    let g_level = s
        .level()
        .checked_sub(g_depth)
        .ok_or(MlError::NotEnoughLevels {
            operand: "softmax normalization",
            have: s.level(),
            need: g_depth,
        })?;
    let g_target = out_scale * primes.at(y.level().min(g_level))? / y.scale();
    let g0 = design
        .g
        .eval_ct(ops, &primes, &s, KLeaf::Mask(&e0), g_target)?;
    let g = window_sum(ops, &g0, c, -1)?;
    mul_rescale(ops, &y, &g)
}

/// The rotations the encrypted softmax ([`super::softmax`]) uses for `classes` and rows of `s1` slots (sorted, deduplicated).
pub fn rotations(classes: usize, s1: usize) -> Vec<i64> {
    let mut ks: Vec<i64> = (0..rounds(classes)).map(|j| 1i64 << j).collect();
    ks.extend(window_rotations(classes, -1));
    ks.extend(window_rotations(classes, 1));
    if split(classes, s1) {
        ks.extend([s1 as i64, -(s1 as i64)]);
    }
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// The plaintext twin of our softmax on the rows of `x` (`rows × classes`): the same
/// tournament pairing, the same polynomials evaluated by their Chebyshev series (not by the
/// product form), in `f64` and in `x` units.
pub(crate) fn twin(x: &Array2<f64>, design: &Design) -> Array2<f64> {
    let mut out = Array2::zeros(x.dim());
    for (row, mut dst) in x.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let xs: Vec<f64> = row.iter().copied().collect();
        let l = twin_lse(&xs, design.rounds);
        let y: Vec<f64> = xs.iter().map(|&v| exp_approx(v - l)).collect();
        let s: f64 = y.iter().sum();
        let g = design.g_cheb.eval(s);
        for (d, v) in dst.iter_mut().zip(&y) {
            *d = v * g;
        }
    }
    out
}

/// The tournament's log-sum-exp of a row, pairing as the encrypted softmax does (windows starting at column
/// 0, the partial window of the low bits of `c` combined from the lowest bit up).
pub fn twin_lse(xs: &[f64], rounds: usize) -> f64 {
    let c = xs.len();
    // LSE of two values in round j, with that round's ψ.
    let comb = |j: usize, a: f64, b: f64| {
        let psi = if shallow_round(rounds) == Some(j) {
            psi_shallow_approx(a - b)
        } else {
            psi_approx(a - b)
        };
        0.5 * (a + b) + psi
    };
    let at = |v: &[f64], k: usize| v.get(k).copied().unwrap_or(PAD);
    // W_j and P_j as functions of the start column, on the row padded with PAD.
    let mut w: Vec<f64> = xs
        .iter()
        .copied()
        .chain(std::iter::repeat_n(PAD, c))
        .collect();
    let mut p: Option<Vec<f64>> = None;
    let mut last = 0.0;
    for j in 0..rounds {
        let l = 1usize << j;
        let is_last = j + 1 == rounds;
        let bit = c & l != 0;
        let new_p = if is_last && c.is_power_of_two() {
            None
        } else if bit {
            Some(match &p {
                Some(pj) => (0..w.len())
                    .map(|k| comb(j, at(&w, k), at(pj, k + l)))
                    .collect(),
                None => w.clone(),
            })
        } else {
            p.clone()
        };
        let new_w: Vec<f64> = (0..w.len())
            .map(|k| comb(j, at(&w, k), at(&w, k + l)))
            .collect();
        if is_last {
            last = if c.is_power_of_two() {
                at(&new_w, 0)
            } else {
                new_p.as_deref().map_or(0.0, |v| at(v, 0))
            };
        }
        w = new_w;
        p = new_p;
    }
    last
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn psi_designs_errors_are_as_stated() {
        for (approx, error) in [
            (psi_approx as fn(f64) -> f64, PSI_ERROR),
            (psi_shallow_approx, PSI_SHALLOW_ERROR),
        ] {
            let worst = grid(-PSI_D, PSI_D, 400_001)
                .into_iter()
                .map(|d| (approx(d) - psi_exact(d)).abs())
                .fold(0.0, f64::max);
            assert!(worst <= error * (1.0 + 1e-6), "{worst}");
            assert!(worst >= 0.99 * error, "{worst}");
        }
        // The tournament's differences stay within ψ's domain: inputs in [−128, 128] (PAD
        // included) and LSEs of windows of them, each off by at most lse_error(3).
        assert!(256.0 + 16f64.ln() + 2.0 * 1.01 * lse_error(3) <= PSI_D);
    }

    #[test]
    fn exp_design_covers_the_tournaments_error() {
        assert!((1..=4).all(|r| lse_bound(r) < EXP_HI));
    }

    #[test]
    fn exp_design_error_is_as_stated() {
        let worst = grid(EXP_LO, EXP_HI, 2_000_001)
            .into_iter()
            .map(|t| (exp_approx(t) - t.exp()).abs())
            .fold(0.0, f64::max);
        assert!(worst <= EXP_ERROR * 1.01, "{worst}");
    }

    #[test]
    fn inverse_designs_are_accurate_and_bounded() {
        for r in 1..=4 {
            let delta = lse_bound(r);
            let (a, b) = ((-delta).exp(), delta.exp());
            let g = g_cheb(r).unwrap();
            let rel = grid(a, b, 200_001)
                .into_iter()
                .map(|s| (s * g.eval(s) - 1.0).abs())
                .fold(0.0, f64::max);
            assert!(rel <= G_ERROR[r - 1] * 1.01, "R = {r}: {rel}");
            let bound = grid(0.0, G_HI[r - 1], 200_001)
                .into_iter()
                .map(|s| g.eval(s).abs())
                .fold(0.0, f64::max);
            assert!(bound <= G_BOUND[r - 1] * 1.01, "R = {r}: |G| up to {bound}");
            assert!(G_HI[r - 1] >= b, "R = {r}");
        }
    }

    #[test]
    fn designs_factor_and_depths_add_up() {
        for c in 2..=MAX_CLASSES {
            let d = Design::new(c).unwrap();
            assert_eq!(d.depth(), depth(c), "c = {c}");
        }
        assert_eq!(
            (2..=16).map(depth).collect::<Vec<_>>()[..],
            [18, 25, 25, 31, 31, 31, 31, 38, 38, 38, 38, 38, 38, 38, 38]
        );
    }
}
