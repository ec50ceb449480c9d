//! Hostile agent: sends one oversized message to agent 0 every tick.
//!
//! Config: bytes 0..4, the payload size as a little-endian `u32` (default
//! 16 MiB). The payload is written straight into the outbox
//! ([`Ctx::send_with`]), so the guest holds it once. A host whose message size
//! limit is below the size faults the agent inside `emit`.

use we_agent::prelude::*;

/// Default payload size: 16 MiB.
pub const DEFAULT_SIZE: u32 = 16 << 20;

/// An agent that sends huge messages.
#[derive(Debug, Default)]
pub struct HostileBigmsg {
    size: u32,
}

impl Agent for HostileBigmsg {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.size = le_u32(config, 0).unwrap_or(DEFAULT_SIZE);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let tick = ctx.tick() as u8;
        ctx.send_with(0, self.size as usize, |payload| payload.fill(tick));
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = *"
);

export_agent!(HostileBigmsg);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::{Effect, Harness};

    #[test]
    fn sends_one_big_message() {
        let mut h = Harness::<HostileBigmsg>::new(1, 2, 0);
        h.init(&1000u32.to_le_bytes());
        h.set_tick(3);
        let effects = h.step();
        let [Effect::Send { to: 0, payload }] = effects.as_slice() else {
            panic!("expected one send, got {effects:?}");
        };
        assert_eq!(payload.len(), 1000);
        assert!(payload.iter().all(|b| *b == 3));
    }

    #[test]
    fn a_size_limit_faults_the_call() {
        let mut h = Harness::<HostileBigmsg>::new(1, 2, 0).with_max_payload(1 << 20);
        h.init(&[]);
        assert!(h.step().is_empty());
        assert_eq!(h.faults().len(), 1);
    }
}
