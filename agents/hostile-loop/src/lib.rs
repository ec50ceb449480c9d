//! Hostile agent: from a configured tick on, an export never returns.
//!
//! Config: bytes 0..8, the first looping tick as a little-endian `u64`
//! (default 0); byte 8, the export that loops: 0 `step` (default), 1
//! `init`, 2 `receive` (the agent sends itself a message each tick so it has
//! one), 3 `shutdown`. Before the tick the agent is idle. The loop has no host
//! calls and no memory traffic, so only fuel metering (or the watchdog) can
//! stop it; the expected fault is fuel exhaustion.

use core::hint::black_box;
use we_agent::prelude::*;

/// An agent that spins forever once its tick comes.
#[derive(Debug, Default)]
pub struct HostileLoop {
    from_tick: u64,
    export: u8,
    spins: u64,
}

impl HostileLoop {
    fn spin(&mut self) -> ! {
        loop {
            self.spins = black_box(self.spins.wrapping_add(1));
        }
    }
}

impl Agent for HostileLoop {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.from_tick = le_u64(config, 0).unwrap_or(0);
        self.export = config.get(8).copied().unwrap_or(0);
        if self.export == 1 {
            self.spin();
        }
    }

    fn receive(&mut self, ctx: &mut Ctx, _msg: &Message) {
        if self.export == 2 && ctx.tick() >= self.from_tick {
            self.spin();
        }
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if self.export == 2 {
            ctx.send_u64(ctx.id(), 1);
        }
        if self.export == 0 && ctx.tick() >= self.from_tick {
            self.spin();
        }
    }

    fn shutdown(&mut self, _ctx: &mut Ctx) {
        if self.export == 3 {
            self.spin();
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = *"
);

export_agent!(HostileLoop);
