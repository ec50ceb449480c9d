//! Shared-region test agent: owns region 7 (8 bytes) and writes the current
//! tick into it every step.
//!
//! Config (optional): bytes 0..8, a tick (little-endian `u64`) at which `step`
//! traps, releasing the region.

use we_agent::prelude::*;

/// The region this agent owns.
pub const REGION: u32 = 7;

/// The writer.
#[derive(Debug, Default)]
pub struct RegionWriter {
    trap_at: Option<u64>,
}

impl Agent for RegionWriter {
    fn init(&mut self, ctx: &mut Ctx, config: &[u8]) {
        self.trap_at = le_u64(config, 0);
        ctx.region_create(REGION, 8);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if self.trap_at == Some(ctx.tick()) {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
        }
        let tick = ctx.tick();
        ctx.region_write(REGION, 0, &tick.to_le_bytes());
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     regions = 7"
);

export_agent!(RegionWriter);
