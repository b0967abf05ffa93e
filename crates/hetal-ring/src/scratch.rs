//! The pool of polynomial storage behind [`RnsPoly`](crate::RnsPoly).
//!
//! At N = 2^16 a limb is 512 KiB, and a key switch at the top level of a 25-prime chain makes
//! about 100 MB of temporaries (the digits raised to `Q·P`, the inner products, the inputs and
//! outputs of the basis conversions) that it overwrites entirely before reading them. Fresh
//! allocations of that size cost a fifth of the arithmetic in between: the allocator zeroes
//! them, or the kernel maps and clears new pages. Dropped polynomials give their buffers to
//! this pool, and new ones take them back: as they are for [`RnsPoly::scratch`], zeroed for
//! [`RnsPoly::zero`].
//!
//! A scratch buffer holds stale residues of an earlier computation (never uninitialized
//! memory), so a caller that forgot to overwrite a residue computes a wrong result, which the
//! tests (against independent oracles) see, not undefined behaviour. The pool is
//! process-wide, behind a mutex (a few calls per key switch) and bounded by [`MAX_WORDS`] (the
//! smallest buffers go first). Polynomials that may live on (ciphertexts, keys) get buffers
//! at most a quarter longer than asked, so that they carry little spare capacity;
//! temporaries dropped within an operation ([`RnsPoly::temporary`]) take any that fits.
//!
//! [`RnsPoly`]: crate::RnsPoly
//! [`RnsPoly::scratch`]: crate::RnsPoly::scratch
//! [`RnsPoly::zero`]: crate::RnsPoly::zero
//! [`RnsPoly::temporary`]: crate::RnsPoly::temporary

use std::sync::{Mutex, MutexGuard};

/// Upper bound on the words held by the pool (384 MiB): a few top-level key switches in
/// flight at N = 2^16.
const MAX_WORDS: usize = 48 << 20;

/// Buffers below this many words (32 KiB) are left to the allocator, which serves them well.
/// Low enough that the tests' small rings (N = 2^12 and up, a few limbs) go through the pool
/// too, and so run on stale buffers.
const MIN_WORDS: usize = 1 << 12;

struct Pool {
    buffers: Vec<Vec<u64>>,
    words: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    buffers: Vec::new(),
    words: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    // A panic while holding the lock leaves the pool consistent (push and remove only).
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of `len` words with arbitrary contents: the smallest pooled buffer that holds
/// `len` words (with at most a quarter to spare if `tight`), or a fresh zeroed one.
pub(crate) fn take(len: usize, tight: bool) -> Vec<u64> {
    if len < MIN_WORDS {
        return vec![0; len];
    }
    let found = {
        let mut pool = pool();
        let best = pool
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len && (!tight || b.capacity() <= len + len / 4))
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        best.map(|i| {
            let b = pool.buffers.swap_remove(i);
            pool.words -= b.capacity();
            b
        })
    };
    match found {
        Some(mut b) => {
            // Only the words past the buffer's old length are written (zeroed) here.
            b.truncate(len);
            b.resize(len, 0);
            b
        }
        None => vec![0; len],
    }
}

/// Returns a buffer to the pool (or frees it when it is small or the pool is full).
pub(crate) fn give(buffer: Vec<u64>) {
    if buffer.capacity() < MIN_WORDS {
        return;
    }
    let mut pool = pool();
    pool.words += buffer.capacity();
    pool.buffers.push(buffer);
    while pool.words > MAX_WORDS {
        let Some(smallest) = pool
            .buffers
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)
        else {
            break;
        };
        let b = pool.buffers.swap_remove(smallest);
        pool.words -= b.capacity();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_at_the_asked_length_and_small_ones_are_not_kept() {
        let mut b = take(MIN_WORDS * 3, true);
        assert_eq!(b.len(), MIN_WORDS * 3);
        b.iter_mut().for_each(|x| *x = 7);
        let ptr = b.as_ptr();
        give(b);
        // Other tests share the pool, so only what this test can observe alone is asserted:
        // a buffer comes back at the asked length, and its stale words are kept.
        let again = take(MIN_WORDS * 2, false);
        assert_eq!(again.len(), MIN_WORDS * 2);
        if again.as_ptr() == ptr {
            assert!(again.iter().all(|&x| x == 7));
        }
        let longer = take(MIN_WORDS * 3 + 5, false);
        assert_eq!(longer.len(), MIN_WORDS * 3 + 5);
        // Not a buffer more than a quarter longer than asked.
        assert!(take(MIN_WORDS, true).capacity() <= MIN_WORDS + MIN_WORDS / 4);
        give(again);
        give(longer);
        assert!(pool().words <= MAX_WORDS);
        let small = take(10, false);
        assert_eq!(small, vec![0; 10]);
    }
}
