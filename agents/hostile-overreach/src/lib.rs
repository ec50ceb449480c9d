//! Hostile agent: every tick it uses one thing its declaration allows and one
//! it does not, for each capability kind. The runtime must deliver the first
//! and refuse (and count) the second: five refusals per step. It also sends
//! one inference request that is not a request at all (three bytes), which
//! the runtime answers with an `INFER_ERROR` message to the agent.
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
        malformed_request();
    }
}

/// Emits an inference effect whose payload is three bytes, not a request.
#[cfg(target_arch = "wasm32")]
fn malformed_request() {
    let header = we_agent::we_abi::EffectHeader {
        op: we_agent::we_abi::op::INFER,
        flags: 0,
        target: 0,
        aux: 7,
        len: 3,
    };
    let mut record = Vec::with_capacity(24);
    we_agent::we_abi::write_record(&mut record, header.encode(), &[1, 2, 3]);
    // SAFETY: the range is the live vector's own bytes; the host only reads
    // them during the call.
    unsafe {
        we_agent::raw::emit(record.as_ptr() as i32, record.len() as i32);
    }
}

/// Natively there is no raw host to hand bytes to.
#[cfg(not(target_arch = "wasm32"))]
fn malformed_request() {}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = 0
     topics = 1
     regions = 1
     models = policy"
);

export_agent!(Overreach);
