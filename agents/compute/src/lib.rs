//! The `compute` workload (`shared/workloads.md`): agent `i` holds
//! `state = i + 1`; each tick it XORs every inbox payload into the state, runs
//! 10,000 rounds of xorshift64, and sends the state to `(i * 7 + 1) % N`.

use we_agent::prelude::*;

/// Rounds of xorshift64 per tick.
pub const ROUNDS: u32 = 10_000;

/// `x ^= x << 13; x ^= x >> 7; x ^= x << 17`.
#[inline]
pub fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A compute agent and its state.
#[derive(Debug, Default)]
pub struct Compute {
    state: u64,
}

impl Compute {
    /// The current state.
    pub fn state(&self) -> u64 {
        self.state
    }
}

impl Agent for Compute {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        self.state = u64::from(ctx.id()) + 1;
    }

    fn receive(&mut self, _ctx: &mut Ctx, msg: &Message) {
        self.state ^= msg.u64();
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let mut x = self.state;
        for _ in 0..ROUNDS {
            x = xorshift64(x);
        }
        self.state = x;
        let to = (u64::from(ctx.id()) * 7 + 1) % u64::from(ctx.agent_count().max(1));
        ctx.send_u64(to as u32, x);
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     send = *"
);

export_agent!(Compute);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::Harness;

    fn rounds(mut x: u64) -> u64 {
        for _ in 0..ROUNDS {
            x = xorshift64(x);
        }
        x
    }

    #[test]
    fn follows_the_workload() {
        let mut h = Harness::<Compute>::new(5, 10, 0);
        h.init(&[]);
        let s0 = rounds(6);
        assert_eq!(h.step()[0].as_send_u64(), Some((6, s0)));
        h.deliver_u64(1, 0xAA);
        h.deliver_u64(2, 0x55);
        let s1 = rounds(s0 ^ 0xAA ^ 0x55);
        assert_eq!(h.step()[0].as_send_u64(), Some((6, s1)));
        assert_eq!(h.agent().state(), s1);
    }
}
