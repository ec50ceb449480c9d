//! `ring`, with a switchable deviation, for replay-divergence tests.
//!
//! Config: byte 0 is the switch (non-zero: deviate), bytes 1..9 the tick of the
//! deviation as a little-endian `u64` (default 1). With the switch on, every
//! payload the agent sends in that tick is one larger than `ring` would send.
//! A test records a run with the switch off, swaps in a config with it on, and
//! expects replay to name that tick as the first divergence.

use we_agent::prelude::*;

/// Tick of the deviation when the config does not name one.
pub const DEFAULT_TICK: u64 = 1;

/// A ring member that may deviate once.
#[derive(Debug, Default)]
pub struct Nondet {
    deviate: bool,
    at_tick: u64,
}

impl Nondet {
    fn extra(&self, ctx: &Ctx) -> u64 {
        u64::from(self.deviate && ctx.tick() == self.at_tick)
    }
}

fn next(ctx: &Ctx) -> u32 {
    ((u64::from(ctx.id()) + 1) % u64::from(ctx.agent_count().max(1))) as u32
}

impl Agent for Nondet {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.deviate = config.first().is_some_and(|b| *b != 0);
        self.at_tick = le_u64(config, 1).unwrap_or(DEFAULT_TICK);
    }

    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        let v = msg.u64().wrapping_add(1).wrapping_add(self.extra(ctx));
        ctx.send_u64(next(ctx), v);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.tick() == 0 {
            let v = u64::from(ctx.id()).wrapping_add(self.extra(ctx));
            ctx.send_u64(next(ctx), v);
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id rand_u64 emit log
     send = *"
);

export_agent!(Nondet);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::{Effect, Harness};

    fn run(config: &[u8]) -> Vec<Vec<Effect>> {
        let mut h = Harness::<Nondet>::new(0, 2, 0);
        h.init(config);
        let mut out = vec![h.step()];
        for v in [10, 20, 30] {
            h.deliver_u64(1, v);
            out.push(h.step());
        }
        out
    }

    #[test]
    fn deviates_only_when_switched_on_and_only_at_its_tick() {
        let plain = run(&[]);
        assert_eq!(plain, run(&[0, 2, 0, 0, 0, 0, 0, 0, 0]));
        let odd = run(&[1, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(plain[..2], odd[..2]);
        assert_eq!(plain[2], vec![Effect::send_u64(1, 21)]);
        assert_eq!(odd[2], vec![Effect::send_u64(1, 22)]);
        assert_eq!(plain[3], odd[3]);
        // Default tick is 1.
        assert_eq!(run(&[1])[1], vec![Effect::send_u64(1, 12)]);
    }
}
