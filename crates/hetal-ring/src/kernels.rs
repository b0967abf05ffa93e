//! Vectorizable multiply-accumulate kernels for residues below 2^50.
//!
//! x86 has no vector 64×64→128-bit multiply, so a residue `x < 2^50` is split into two 25-bit
//! halves and every partial product becomes a 32×32→64-bit multiply (`vpmuludq` on AVX2,
//! which the compiler emits for these loops once they run under a `pulp` dispatch). The
//! three partial sums `Σ lo·lo`, `Σ (lo·hi + hi·lo)`, `Σ hi·hi` stay below 2^64 for up to
//! 2^13 terms and are recombined into one 128-bit value per residue, reduced once.

use crate::Modulus;

const HALF_BITS: u32 = 25;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;

/// Residues and constants must be below this bound for the split kernels.
pub(crate) const NARROW_BOUND: u64 = 1 << (2 * HALF_BITS);

/// Most terms a split sum may have.
pub(crate) const MAX_TERMS: usize = 1 << 13;

/// `(Σ lo·lo) + (Σ cross)·2^25 + (Σ hi·hi)·2^50` as one 128-bit value.
#[inline(always)]
pub(crate) fn recombine(ll: u64, mid: u64, hh: u64) -> u128 {
    ((hh as u128) << (2 * HALF_BITS)) + ((mid as u128) << HALF_BITS) + ll as u128
}

/// `Σ_i y_i[c]·r_i` over a block of coefficients, for one constant `r_i` per source.
#[inline(always)]
pub(crate) fn split_mac(
    ys: &[&[u64]],
    row: &[u64],
    ll: &mut [u64],
    mid: &mut [u64],
    hh: &mut [u64],
) {
    ll.fill(0);
    mid.fill(0);
    hh.fill(0);
    for (yi, &r) in ys.iter().zip(row) {
        let (rl, rh) = (r & HALF_MASK, (r >> HALF_BITS) & HALF_MASK);
        for (((l, m), h), &x) in ll
            .iter_mut()
            .zip(mid.iter_mut())
            .zip(hh.iter_mut())
            .zip(yi.iter())
        {
            let (xl, xh) = (x & HALF_MASK, (x >> HALF_BITS) & HALF_MASK);
            *l += xl * rl;
            *m += xl * rh + xh * rl;
            *h += xh * rh;
        }
    }
}

/// `acc[c] += x[c]·w[c]`, split into the three partial sums.
#[inline(always)]
fn split_mac_pointwise(x: &[u64], w: &[u64], ll: &mut [u64], mid: &mut [u64], hh: &mut [u64]) {
    for ((((l, m), h), &x), &w) in ll
        .iter_mut()
        .zip(mid.iter_mut())
        .zip(hh.iter_mut())
        .zip(x)
        .zip(w)
    {
        let (xl, xh) = (x & HALF_MASK, (x >> HALF_BITS) & HALF_MASK);
        let (wl, wh) = (w & HALF_MASK, (w >> HALF_BITS) & HALF_MASK);
        *l += xl * wl;
        *m += xl * wh + xh * wl;
        *h += xh * wh;
    }
}

/// `out[c] = Σ_j x_j[c]·w_j[c] mod m`: the inner product of key switching, one lazy
/// reduction per residue. All slices have the length of `out`; at most 2^13 terms.
pub fn dot_product(terms: &[(&[u64], &[u64])], m: &Modulus, out: &mut [u64]) {
    const BLOCK: usize = 256;
    if m.value() >= NARROW_BOUND {
        for (c, o) in out.iter_mut().enumerate() {
            let acc: u128 = terms.iter().map(|(x, w)| x[c] as u128 * w[c] as u128).sum();
            *o = m.reduce_u128(acc);
        }
        return;
    }
    let (mut ll, mut mid, mut hh) = ([0u64; BLOCK], [0u64; BLOCK], [0u64; BLOCK]);
    for (b, o) in out.chunks_mut(BLOCK).enumerate() {
        let (start, len) = (b * BLOCK, o.len());
        let (ll, mid, hh) = (&mut ll[..len], &mut mid[..len], &mut hh[..len]);
        ll.fill(0);
        mid.fill(0);
        hh.fill(0);
        pulp::Arch::new().dispatch(|| {
            for (x, w) in terms {
                split_mac_pointwise(&x[start..start + len], &w[start..start + len], ll, mid, hh);
            }
        });
        for (((o, &l), &mi), &h) in o.iter_mut().zip(ll.iter()).zip(mid.iter()).zip(hh.iter()) {
            *o = m.reduce_u128(recombine(l, mi, h));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn dot_product_matches_u128_oracle() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for q in [(1u64 << 50) - 27, (1 << 40) - 87, (1 << 61) - 1] {
            let m = Modulus::new(q).unwrap();
            let n = 1000;
            let xs: Vec<Vec<u64>> = (0..5)
                .map(|_| (0..n).map(|_| rng.random_range(0..q)).collect())
                .collect();
            let ws: Vec<Vec<u64>> = (0..5)
                .map(|_| (0..n).map(|_| rng.random_range(0..q)).collect())
                .collect();
            let terms: Vec<(&[u64], &[u64])> =
                xs.iter().zip(&ws).map(|(x, w)| (&x[..], &w[..])).collect();
            let mut out = vec![0u64; n];
            dot_product(&terms, &m, &mut out);
            for c in 0..n {
                let want = xs.iter().zip(&ws).fold(0u128, |a, (x, w)| {
                    (a + x[c] as u128 * w[c] as u128) % q as u128
                });
                assert_eq!(out[c] as u128, want);
            }
        }
    }
}
