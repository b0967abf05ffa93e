//! The global allocator and its one setting.
//!
//! Ciphertexts and keys are megabytes each and a training step frees and allocates thousands
//! of them. mimalloc keeps freed pages for reuse, but by default returns ("purges") pages unused
//! for a second to the OS, so that a later operation faults them back in and the kernel zeroes
//! them again: a bootstrap at `n16-boot` took 17.3 CPU-s that way against 14.1 with purging
//! off (BENCHMARKS.md). The binary turns purging off unless `MIMALLOC_PURGE_DELAY` says
//! otherwise; peak memory is unchanged (what is kept is what the peak already held).

use std::ffi::c_long;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, which the bindings do not
/// name; the same in mimalloc 2 and 3).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns purging off, unless the environment sets `MIMALLOC_PURGE_DELAY` (which mimalloc reads
/// when the process loads). Call first thing in `main`, before any thread starts.
pub fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set_purge_delay(-1);
    }
}

#[allow(unsafe_code)]
fn set_purge_delay(ms: c_long) {
    // SAFETY: mi_option_set writes one entry of mimalloc's option table; it is called before
    // any other thread exists, and the option is one mimalloc reads on every purge decision.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, ms) }
}

/// mimalloc's current purge delay (milliseconds; −1: never).
#[cfg(test)]
#[allow(unsafe_code)]
fn purge_delay() -> c_long {
    // SAFETY: mi_option_get reads one entry of mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position 15 is the purge delay: mimalloc 3's default for it (1000 ms, which no other
    /// option has) until the binary turns purging off.
    #[test]
    fn purging_is_off_unless_the_environment_says_otherwise() {
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Err(_) => {
                assert_eq!(purge_delay(), 1000);
                keep_freed_pages();
                assert_eq!(purge_delay(), -1);
            }
            Ok(v) => {
                let before = purge_delay();
                keep_freed_pages();
                assert_eq!(purge_delay(), before);
                assert_eq!(v.trim().parse::<c_long>().ok(), Some(before));
            }
        }
    }
}
