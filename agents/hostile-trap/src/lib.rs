//! Hostile agent: traps in the export its config byte selects.
//!
//! Config byte 0:
//! - `0`: `agent_init` executes `unreachable`,
//! - `1`: `agent_receive` does; the agent sends itself a message at tick 0 so
//!   that `agent_receive` runs at tick 1,
//! - `2`: `agent_step` does, from the tick in bytes 1..9 (little-endian `u64`,
//!   default 0),
//! - `3`: `agent_shutdown` does,
//! - `4`: `agent_step` recurses until a stack runs out (a stack-overflow or
//!   out-of-bounds trap, depending on which stack is exhausted first),
//! - `5`: `agent_step` returns the error status [`ERROR_STATUS`] (no trap).
//!
//! Modes `1`, `2`, `4`, `5` honour the tick in bytes 1..9. A byte 9, when
//! present, makes only the agent with that group index hostile (the others
//! of the group idle): a pack of them then shows what one member's trap
//! does to the rest.

use core::hint::black_box;
use we_agent::prelude::*;

/// The status of mode 5.
pub const ERROR_STATUS: i32 = 0x7E;

/// Traps: `unreachable` on wasm32, abort elsewhere.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Recursion that is not a tail call and not foldable into a loop.
#[inline(never)]
fn deep(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    deep(black_box(n - 1)).rotate_left(1) ^ n
}

/// An agent that dies where it is told to.
#[derive(Debug, Default)]
pub struct HostileTrap {
    mode: u8,
    at_tick: u64,
}

impl Agent for HostileTrap {
    fn init(&mut self, ctx: &mut Ctx, config: &[u8]) {
        self.mode = config.first().copied().unwrap_or(0);
        self.at_tick = le_u64(config, 1).unwrap_or(0);
        if config
            .get(9)
            .is_some_and(|&only| u32::from(only) != ctx.group_index())
        {
            self.mode = u8::MAX;
        }
        if self.mode == 0 {
            trap();
        }
    }

    fn receive(&mut self, ctx: &mut Ctx, _msg: &Message) {
        if self.mode == 1 && ctx.tick() > self.at_tick {
            trap();
        }
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let tick = ctx.tick();
        if tick < self.at_tick {
            return;
        }
        match self.mode {
            1 if tick == self.at_tick => ctx.send_u64(ctx.id(), 1),
            2 => trap(),
            4 => {
                black_box(deep(black_box(u64::MAX)));
            }
            5 => ctx.fail(AgentError::code(ERROR_STATUS)),
            _ => {}
        }
    }

    fn shutdown(&mut self, _ctx: &mut Ctx) {
        if self.mode == 3 {
            trap();
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = *"
);

export_agent!(HostileTrap);
