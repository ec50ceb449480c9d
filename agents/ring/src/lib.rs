//! The `ring` workload (`shared/workloads.md`): at tick 0 agent `i` sends `i` to
//! `(i + 1) % N`; from then on every message `v` it receives goes on to
//! `(i + 1) % N` as `v + 1` (wrapping). N messages per tick.
//!
//! Config (optional): bytes 0..4, the ring size N as a little-endian `u32`;
//! without it N is the number of agents in the run. Tests use it to keep a ring
//! apart from other agents of the same run.

use we_agent::prelude::*;

/// A ring member. The counter travels in the messages; the agent holds only
/// the ring size.
#[derive(Debug, Default)]
pub struct Ring {
    size: u32,
}

impl Ring {
    /// The next agent around the ring.
    pub fn next(&self, ctx: &Ctx) -> u32 {
        let n = if self.size == 0 {
            ctx.agent_count()
        } else {
            self.size
        };
        ((u64::from(ctx.id()) + 1) % u64::from(n.max(1))) as u32
    }
}

impl Agent for Ring {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.size = le_u32(config, 0).unwrap_or(0);
    }

    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        let next = self.next(ctx);
        ctx.send_u64(next, msg.u64().wrapping_add(1));
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.tick() == 0 {
            let next = self.next(ctx);
            ctx.send_u64(next, u64::from(ctx.id()));
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = *"
);

export_agent!(Ring);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::{Effect, Harness};

    #[test]
    fn starts_the_ring_then_increments() {
        let mut h = Harness::<Ring>::new(3, 4, 7);
        assert!(h.init(&[]).is_empty());
        assert_eq!(h.step(), vec![Effect::send_u64(0, 3)]);
        h.deliver_u64(2, u64::MAX);
        h.deliver_u64(2, 41);
        assert_eq!(
            h.step(),
            vec![Effect::send_u64(0, 0), Effect::send_u64(0, 42)]
        );
        assert!(h.step().is_empty());
        assert!(h.faults().is_empty());
    }
}
