//! Small helpers shared by the hot loops of the pool, the sandbox, the bus,
//! the commit and the inference backend.

/// Asks the CPU to start loading the cache line at `address`, so that a later
/// access finds it loaded. Only a hint: it never faults and changes nothing
/// the program can observe, whatever the address (null, dangling, unmapped).
/// A no-op on targets without a prefetch instruction in their baseline.
#[inline(always)]
pub fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `prefetcht0` reads nothing architecturally and cannot fault,
        // whatever the address; SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Whether `a` and `b` are equal, compared eight bytes at a time in line.
/// The hot loops compare short byte strings (a model name, a request's
/// tensor headers: tens of bytes) once per request; there, the call to the C
/// library's `memcmp` that `==` on slices makes costs more than the
/// comparison itself. A string of 4 bytes or more is read as whole words,
/// the last one overlapping the ones before it (no byte-by-byte tail); a
/// shorter one byte by byte. Reads every byte (no early exit): meant for
/// short strings.
#[inline]
pub fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let mut diff = 0u64;
    if n >= 8 {
        for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
            diff |= word(x) ^ word(y);
        }
        // The last eight bytes, overlapping the words already compared.
        if let (Some(x), Some(y)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
            diff |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
        }
    } else if n >= 4 {
        // The first and the last four bytes (overlapping below 8).
        if let (Some(x), Some(y)) = (a.first_chunk::<4>(), b.first_chunk::<4>()) {
            diff |= u64::from(u32::from_ne_bytes(*x) ^ u32::from_ne_bytes(*y));
        }
        if let (Some(x), Some(y)) = (a.last_chunk::<4>(), b.last_chunk::<4>()) {
            diff |= u64::from(u32::from_ne_bytes(*x) ^ u32::from_ne_bytes(*y));
        }
    } else {
        for (x, y) in a.iter().zip(b) {
            diff |= u64::from(x ^ y);
        }
    }
    diff == 0
}

/// The eight bytes of `c` (a `chunks_exact(8)` item) as a word.
#[inline(always)]
fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    u64::from_ne_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_eq_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(37)).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(short_eq(a, a), "len {len}");
            assert!(
                !short_eq(a, &base[..len + 1]),
                "len {len} against {}",
                len + 1
            );
            // A difference in any one byte, in a word or in the tail.
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!short_eq(a, &b), "len {len}, byte {at}");
                assert_eq!(short_eq(a, &b), a == b.as_slice());
            }
        }
    }

    #[test]
    fn any_address_is_accepted() {
        let x = 7u64;
        prefetch(&x);
        prefetch(std::ptr::null::<u8>());
        prefetch(usize::MAX as *const u8);
        assert_eq!(x, 7);
    }
}
