//! The host functions of ABI v1 as safe calls, in one place.
//!
//! On `wasm32` they are the imports of module `"we"` (names from
//! [`we_abi::imports`]). On every other target they are routed to the simulated
//! host of [`crate::native`], so the same agent code runs in native unit tests.
//! Nothing else in the SDK names an import.

/// The raw imports, for agents that must pass arbitrary pointers (the hostile
/// test agents). Ordinary agents use [`crate::Ctx`] instead.
///
/// Every function takes guest addresses as `i32`; the host checks each range
/// against the guest's memory and traps the agent on a bad one.
#[cfg(target_arch = "wasm32")]
pub mod raw {
    #[link(wasm_import_module = "we")]
    unsafe extern "C" {
        /// `we.tick`: the current logical tick.
        pub fn tick() -> i64;
        /// `we.self_id`: this agent's id.
        pub fn self_id() -> i32;
        /// `we.rand_u64`: the next value of this agent's PRNG stream.
        pub fn rand_u64() -> i64;
        /// `we.emit`: hands `len` bytes of effect records at `ptr` to the host.
        pub fn emit(ptr: i32, len: i32) -> i32;
        /// `we.log`: appends `len` bytes of UTF-8 text at `ptr` to the run's log.
        pub fn log(level: i32, ptr: i32, len: i32) -> i32;
        /// `we.region_read`: copies region bytes from `offset` to guest address `dst`.
        pub fn region_read(region: i32, offset: i32, dst: i32, len: i32) -> i32;
        /// `we.region_len`: the committed length of a region.
        pub fn region_len(region: i32) -> i32;
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::raw;

    // Guest addresses and lengths are 32-bit on wasm32, so `as i32` below only
    // reinterprets the bits; the host reads them back as `u32`.

    pub(crate) fn tick() -> u64 {
        // SAFETY: the import takes no arguments and touches no guest memory.
        unsafe { raw::tick() as u64 }
    }

    pub(crate) fn rand_u64() -> u64 {
        // SAFETY: the import takes no arguments and touches no guest memory.
        unsafe { raw::rand_u64() as u64 }
    }

    pub(crate) fn emit(bytes: &[u8]) -> i32 {
        // SAFETY: `bytes` is a live slice of guest memory; the host only reads
        // `len` bytes from `ptr` during the call and keeps no reference.
        unsafe { raw::emit(bytes.as_ptr() as usize as i32, bytes.len() as i32) }
    }

    pub(crate) fn log(level: i32, bytes: &[u8]) -> i32 {
        // SAFETY: as for `emit`: a live slice, read by the host during the call only.
        unsafe { raw::log(level, bytes.as_ptr() as usize as i32, bytes.len() as i32) }
    }

    pub(crate) fn region_read(region: u32, offset: u32, dst: &mut [u8]) -> i32 {
        // SAFETY: `dst` is a live, exclusively borrowed slice of guest memory; the
        // host writes at most `dst.len()` bytes into it during the call.
        unsafe {
            raw::region_read(
                region as i32,
                offset as i32,
                dst.as_mut_ptr() as usize as i32,
                dst.len() as i32,
            )
        }
    }

    pub(crate) fn region_len(region: u32) -> i32 {
        // SAFETY: the import takes no pointers.
        unsafe { raw::region_len(region as i32) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::native::with_host;

    pub(crate) fn tick() -> u64 {
        with_host(|h| h.tick)
    }

    pub(crate) fn rand_u64() -> u64 {
        with_host(|h| h.rng.next_u64())
    }

    pub(crate) fn emit(bytes: &[u8]) -> i32 {
        with_host(|h| h.emit(bytes))
    }

    pub(crate) fn log(level: i32, bytes: &[u8]) -> i32 {
        with_host(|h| h.log(level, bytes))
    }

    pub(crate) fn region_read(region: u32, offset: u32, dst: &mut [u8]) -> i32 {
        with_host(|h| h.region_read(region, offset, dst))
    }

    pub(crate) fn region_len(region: u32) -> i32 {
        with_host(|h| h.region_len(region))
    }
}

pub(crate) use imp::{emit, log, rand_u64, region_len, region_read, tick};
