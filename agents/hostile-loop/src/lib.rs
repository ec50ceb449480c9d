//! Hostile agent: from a configured tick on, `step` never returns.
//!
//! Config: bytes 0..8, the first looping tick as a little-endian `u64`
//! (default 0). Before it the agent is idle. The loop has no host calls and no
//! memory traffic, so only fuel metering (or the watchdog) can stop it; the
//! expected fault is fuel exhaustion.

use core::hint::black_box;
use we_agent::prelude::*;

/// An agent that spins forever once its tick comes.
#[derive(Debug, Default)]
pub struct HostileLoop {
    from_tick: u64,
    spins: u64,
}

impl Agent for HostileLoop {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.from_tick = le_u64(config, 0).unwrap_or(0);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.tick() < self.from_tick {
            return;
        }
        loop {
            self.spins = black_box(self.spins.wrapping_add(1));
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log"
);

export_agent!(HostileLoop);
