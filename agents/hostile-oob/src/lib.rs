//! Hostile agent: hands host imports guest ranges outside its memory.
//!
//! Config byte 0 selects the call (made in `step` from the tick in bytes
//! 1..9, little-endian `u64`, default 0):
//! - `0`: `emit` with a range straddling the end of memory,
//! - `1`: `log` with a range straddling the end of memory,
//! - `2`: `region_read` into a range straddling the end of memory,
//! - `3`: `emit` at an address above 2 GiB (negative as `i32`),
//! - `4`: `emit` with a negative length.
//!
//! The host must trap the agent inside the import (an out-of-bounds fault). If
//! the import returns instead, the call ends with status [`NOT_TRAPPED`] so the
//! test sees the host's failure.

use we_agent::prelude::*;

/// Status returned when the host let a bad range through.
pub const NOT_TRAPPED: i32 = 0x0B0B;

/// An agent that lies about pointers.
#[derive(Debug, Default)]
pub struct HostileOob {
    mode: u8,
    at_tick: u64,
}

#[cfg(target_arch = "wasm32")]
fn attack(mode: u8) {
    use we_agent::raw;
    let size = (core::arch::wasm32::memory_size::<0>() * 65536) as u32;
    let straddle = size.wrapping_sub(8) as i32;
    // SAFETY: these calls pass ranges the host must refuse before touching
    // guest memory; the host never writes through them (it traps instead), and
    // if a faulty host returned, no Rust object was aliased or written.
    unsafe {
        match mode {
            0 => {
                raw::emit(straddle, 64);
            }
            1 => {
                raw::log(we_agent::we_abi::log_level::INFO, straddle, 64);
            }
            2 => {
                raw::region_read(0, 0, straddle, 64);
            }
            3 => {
                raw::emit(i32::MIN, 16);
            }
            _ => {
                raw::emit(0, -1);
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn attack(_mode: u8) {
    // Natively there is no guest memory to point outside of.
}

impl Agent for HostileOob {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.mode = config.first().copied().unwrap_or(0);
        self.at_tick = le_u64(config, 1).unwrap_or(0);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.tick() < self.at_tick {
            return;
        }
        attack(self.mode);
        ctx.fail(AgentError::code(NOT_TRAPPED));
    }
}

we_agent::capabilities!("host = tick self_id rand_u64 emit log region_read region_len");

export_agent!(HostileOob);
