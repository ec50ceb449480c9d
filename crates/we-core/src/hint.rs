//! A cache hint shared by the hot loops of the pool, the sandbox and the bus.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_is_accepted() {
        let x = 7u64;
        prefetch(&x);
        prefetch(std::ptr::null::<u8>());
        prefetch(usize::MAX as *const u8);
        assert_eq!(x, 7);
    }
}
