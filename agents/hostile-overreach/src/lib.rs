//! Hostile agent: every tick it uses one thing its declaration allows and one
//! it does not, for each capability kind. The runtime must deliver the first
//! and refuse (and count) the second: five refusals per step.
//!
//! Declared: `send = 0`, `topics = 1`, `regions = 1`, `models = policy`.

use we_agent::prelude::*;

/// The overreaching agent.
#[derive(Debug, Default)]
pub struct Overreach;

impl Agent for Overreach {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        ctx.join(1);
        ctx.region_create(1, 8);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let t = ctx.tick();
        // Allowed.
        ctx.send_u64(0, t);
        ctx.publish_u64(1, t);
        ctx.region_write(1, 0, &t.to_le_bytes());
        // Not declared: refused and counted.
        ctx.send_u64(1, t);
        ctx.publish_u64(2, t);
        ctx.join(2);
        ctx.region_create(2, 8);
        let obs = [0.0f32; 4];
        let _ = ctx.infer("other", 0, &[TensorRef::f32("obs", &[1, 4], &obs)]);
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = 0
     topics = 1
     regions = 1
     models = policy"
);

export_agent!(Overreach);
