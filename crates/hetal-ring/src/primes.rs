//! Primality and generation of NTT-friendly primes (`q ≡ 1 mod 2N`).

use crate::RingError;

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (a as u128 * b as u128 % m as u128) as u64
}

fn pow_mod(mut a: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1 % m;
    a %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a, m);
        }
        a = mul_mod(a, a, m);
        e >>= 1;
    }
    r
}

/// Deterministic Miller–Rabin for all 64-bit integers (the first 12 prime bases suffice).
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for p in BASES {
        if n % p == 0 {
            return n == p;
        }
    }
    let (mut d, mut s) = (n - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    'bases: for a in BASES {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// The `count` largest primes `q ≡ 1 (mod 2n)` with `q < 2^bits`, skipping those in `avoid`.
///
/// # Errors
/// [`RingError::NotEnoughPrimes`] when the range runs out.
pub fn primes_below(
    bits: u32,
    n: usize,
    count: usize,
    avoid: &[u64],
) -> Result<Vec<u64>, RingError> {
    let two_n = 2 * n as u64;
    let top = 1u64 << bits;
    let mut out = Vec::with_capacity(count);
    let mut cand = top - (top - 1) % two_n; // largest value ≡ 1 mod 2n below 2^bits
    while out.len() < count && cand > top / 2 {
        if is_prime(cand) && !avoid.contains(&cand) {
            out.push(cand);
        }
        cand -= two_n;
    }
    if out.len() < count {
        return Err(RingError::NotEnoughPrimes {
            bits,
            two_n,
            wanted: count,
            found: out.len(),
        });
    }
    Ok(out)
}

/// The `count` primes `q ≡ 1 (mod 2n)` closest to `2^bits`, alternately above and below,
/// skipping those in `avoid`. Rescaling by primes that straddle `2^bits` keeps a
/// ciphertext's scale close to `2^bits` over many levels.
///
/// # Errors
/// [`RingError::NotEnoughPrimes`] when the range runs out.
pub fn primes_near(
    bits: u32,
    n: usize,
    count: usize,
    avoid: &[u64],
) -> Result<Vec<u64>, RingError> {
    let two_n = 2 * n as u64;
    let center = 1u64 << bits;
    let mut up = center + 1;
    let mut down = center + 1 - two_n;
    let mut out = Vec::with_capacity(count);
    let mut take_up = true;
    let mut next = |from_up: bool| -> Option<u64> {
        loop {
            let c = if from_up {
                up += two_n;
                up - two_n
            } else {
                if down < center / 2 {
                    return None;
                }
                down -= two_n;
                down + two_n
            };
            if c >= center * 2 {
                return None;
            }
            if is_prime(c) && !avoid.contains(&c) {
                return Some(c);
            }
        }
    };
    while out.len() < count {
        match next(take_up).or_else(|| next(!take_up)) {
            Some(p) => out.push(p),
            None => {
                return Err(RingError::NotEnoughPrimes {
                    bits,
                    two_n,
                    wanted: count,
                    found: out.len(),
                })
            }
        }
        take_up = !take_up;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_is_prime(n: u64) -> bool {
        n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
    }

    #[test]
    fn miller_rabin_matches_trial_division() {
        for n in 0..20_000u64 {
            assert_eq!(is_prime(n), slow_is_prime(n), "n = {n}");
        }
        for n in (1u64 << 32) - 1000..(1u64 << 32) + 1000 {
            assert_eq!(is_prime(n), slow_is_prime(n), "n = {n}");
        }
        assert!(is_prime(18446744073709551557)); // largest 64-bit prime
    }

    #[test]
    fn generated_primes_are_ntt_friendly_and_distinct() {
        let n = 1 << 12;
        let below = primes_below(50, n, 10, &[]).unwrap();
        let near = primes_near(40, n, 10, &below).unwrap();
        for &q in below.iter().chain(&near) {
            assert!(is_prime(q));
            assert_eq!(q % (2 * n as u64), 1);
        }
        assert!(below.iter().all(|&q| q < 1 << 50));
        let mut all = [below, near.clone()].concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20);
        assert!(near.iter().any(|&q| q > 1 << 40) && near.iter().any(|&q| q < 1 << 40));
        assert!(primes_below(20, 1 << 16, 100, &[]).is_err());
    }
}
