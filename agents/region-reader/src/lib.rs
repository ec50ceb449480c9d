//! Shared-region test agent: reads region 7 every step and logs what it saw,
//! `tick T saw V` or `tick T stale`.
//!
//! Config (optional): byte 0 non-zero makes it also try to write region 7 at
//! tick 3, which the runtime must refuse (it is not the owner).

use we_agent::prelude::*;

/// The region it reads.
pub const REGION: u32 = 7;

/// The reader.
#[derive(Debug, Default)]
pub struct RegionReader {
    intrude: bool,
}

impl Agent for RegionReader {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.intrude = config.first().is_some_and(|&b| b != 0);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let tick = ctx.tick();
        let mut buf = [0u8; 8];
        match ctx.region_read(REGION, 0, &mut buf) {
            Ok(_) => {
                let v = u64::from_le_bytes(buf);
                ctx.info(&format!("tick {tick} saw {v}"));
            }
            Err(_) => ctx.info(&format!("tick {tick} stale")),
        }
        if self.intrude && tick == 3 {
            ctx.region_write(REGION, 0, &u64::MAX.to_le_bytes());
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log region_read region_len
     regions = 7"
);

export_agent!(RegionReader);
