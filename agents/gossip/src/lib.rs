//! The `gossip` workload (`shared/workloads.md`): K = 16 topics; agent `i`
//! joins topic `i % K` in `init` (so before tick 0), adds the size of its inbox
//! to a counter each tick, and publishes the counter to topic `(i * 3 + t) % K`.

use we_agent::prelude::*;

/// Number of topics.
pub const TOPICS: u64 = 16;

/// A gossip agent and its counter.
#[derive(Debug, Default)]
pub struct Gossip {
    counter: u64,
}

impl Gossip {
    /// Messages seen so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl Agent for Gossip {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        ctx.join((u64::from(ctx.id()) % TOPICS) as u32);
    }

    fn receive_all(&mut self, _ctx: &mut Ctx, inbox: Inbox) {
        self.counter = self.counter.wrapping_add(inbox.len() as u64);
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let topic = (u64::from(ctx.id()) * 3 + ctx.tick()) % TOPICS;
        ctx.publish_u64(topic as u32, self.counter);
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     topics = 0-15"
);

export_agent!(Gossip);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::{Effect, Harness};

    #[test]
    fn joins_counts_and_publishes() {
        let mut h = Harness::<Gossip>::new(17, 100, 0);
        assert_eq!(h.init(&[]), vec![Effect::Join { topic: 1 }]);
        assert_eq!(h.step(), vec![Effect::publish_u64(51 % 16, 0)]);
        h.deliver_topic(3, 1, &9u64.to_le_bytes());
        h.deliver_topic(4, 1, &9u64.to_le_bytes());
        assert_eq!(h.step(), vec![Effect::publish_u64(52 % 16, 2)]);
        assert_eq!(h.agent().counter(), 2);
    }
}
