//! Hostile agent: sends 100,000 messages to agent 0 every tick.
//!
//! Config: bytes 0..4, the count per tick as a little-endian `u32` (default
//! 100,000). Payloads are `u64`s counting up, so 24 bytes of effect records
//! each: 2.4 MB per tick, flushed to the host in 64 KiB batches. A host with a
//! smaller per-call effect budget faults the agent inside `emit`.

use we_agent::prelude::*;

/// Default messages per tick.
pub const DEFAULT_COUNT: u32 = 100_000;

/// An agent that floods agent 0.
#[derive(Debug, Default)]
pub struct HostileFlood {
    count: u32,
    sent: u64,
}

impl Agent for HostileFlood {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.count = le_u32(config, 0).unwrap_or(DEFAULT_COUNT);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        for _ in 0..self.count {
            ctx.send_u64(0, self.sent);
            self.sent = self.sent.wrapping_add(1);
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = *"
);

export_agent!(HostileFlood);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::Harness;

    #[test]
    fn floods_in_batches() {
        let mut h = Harness::<HostileFlood>::new(5, 6, 0);
        h.init(&[]);
        let effects = h.step();
        assert_eq!(effects.len(), 100_000);
        assert_eq!(effects[99_999].as_send_u64(), Some((0, 99_999)));
        // 2.4 MB in 64 KiB batches, not one host call per message.
        assert!(h.emit_calls() < 50, "{} emit calls", h.emit_calls());
    }
}
