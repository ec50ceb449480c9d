//! Hostile agent: grows its linear memory without bound, every tick.
//!
//! Config byte 0 selects how:
//! - `0` (default): `memory.grow` by 16 pages (1 MiB) at a time until the host
//!   refuses (a capped memory makes `memory.grow` return -1, it does not trap);
//!   the call then ends with status [`GROW_REFUSED`].
//! - `1`: allocate and fill 1 MiB `Vec`s and keep them; when the allocator can
//!   grow no further, allocation failure aborts, i.e. traps with `unreachable`.
//!
//! Either way the host must stay up and the agent's memory must stay under the
//! configured cap.

use we_agent::prelude::*;

/// Status of a `step` whose `memory.grow` was refused by the host.
pub const GROW_REFUSED: i32 = 0x004D_454D;

/// One allocation in `Vec` mode.
const CHUNK: usize = 1 << 20;

/// An agent that wants all the memory there is.
#[derive(Debug, Default)]
pub struct HostileMembomb {
    use_vecs: bool,
    hoard: Vec<Vec<u8>>,
    pages_grown: usize,
}

impl HostileMembomb {
    /// Grows memory directly until refused; true if it was refused.
    fn grow(&mut self) -> bool {
        #[cfg(target_arch = "wasm32")]
        loop {
            if core::arch::wasm32::memory_grow::<0>(16) == usize::MAX {
                return true;
            }
            self.pages_grown += 16;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Natively there is no linear memory to grow; report a refusal.
            let _ = self.pages_grown;
            true
        }
    }
}

impl Agent for HostileMembomb {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.use_vecs = config.first() == Some(&1);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if self.use_vecs {
            loop {
                // `vec!` aborts (traps) when the allocator cannot grow memory.
                let chunk = vec![0xA5u8; CHUNK];
                self.hoard.push(chunk);
            }
        }
        if self.grow() {
            ctx.fail(AgentError::code(GROW_REFUSED));
        }
    }
}

we_agent::capabilities!("host = tick self_id emit log");

export_agent!(HostileMembomb);
