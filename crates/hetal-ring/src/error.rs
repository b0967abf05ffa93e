//! Errors of the ring layer.

/// What can go wrong when building ring objects from caller-supplied numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The modulus is not a prime in the supported range.
    #[error("modulus {q} is not a prime in [3, 2^62)")]
    BadModulus {
        /// The offending modulus.
        q: u64,
    },
    /// The ring degree is not a power of two in the supported range.
    #[error("ring degree {n} is not a power of two in [16, 2^17]")]
    BadDegree {
        /// The offending degree.
        n: usize,
    },
    /// The prime does not admit a negacyclic NTT of this size (needs q = 1 mod 2N).
    #[error("prime {q} is not 1 mod 2N for N = {n}")]
    NotNttFriendly {
        /// The prime.
        q: u64,
        /// The ring degree.
        n: usize,
    },
    /// Not enough primes of the requested size exist.
    #[error("only {found} primes of {bits} bits are 1 mod {two_n}; {wanted} were requested")]
    NotEnoughPrimes {
        /// Bit size requested.
        bits: u32,
        /// 2N.
        two_n: u64,
        /// How many were requested.
        wanted: usize,
        /// How many were found.
        found: usize,
    },
    /// Two bases that should be disjoint share a prime, or a basis repeats one.
    #[error("prime {q} appears twice")]
    RepeatedPrime {
        /// The repeated prime.
        q: u64,
    },
    /// A basis conversion whose lazily accumulated sums could exceed 128 bits.
    #[error("a conversion from {sources} primes of up to {bits} bits overflows its 128-bit sums")]
    ConversionTooWide {
        /// Number of source primes.
        sources: usize,
        /// Bits of the largest prime.
        bits: u32,
    },
}
