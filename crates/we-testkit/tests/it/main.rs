//! The simulator against the real runtime: the same agent code, natively
//! under [`we_testkit::Sim`] and compiled to `.wasm` under the runtime, gives
//! the same workload digest.
//!
//! The modules come from `build/agents` (or `$WE_AGENTS_DIR`), built by
//! `cargo xtask build-agents`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use we_agent::prelude::*;
use we_testkit::Sim;
use we_testkit::wasm::{WasmScenario, module};

/// The `ring` workload, as `agents/ring` implements it.
#[derive(Default)]
struct Ring;

impl Agent for Ring {
    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        let next = (ctx.id() + 1) % ctx.agent_count();
        ctx.send_u64(next, msg.u64().wrapping_add(1));
    }
    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.tick() == 0 {
            let next = (ctx.id() + 1) % ctx.agent_count();
            ctx.send_u64(next, u64::from(ctx.id()));
        }
    }
}

/// The `gossip` workload, as `agents/gossip` implements it.
#[derive(Default)]
struct Gossip {
    counter: u64,
}

impl Agent for Gossip {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        ctx.join(ctx.id() % 16);
    }
    fn receive(&mut self, _ctx: &mut Ctx, _msg: &Message) {
        self.counter += 1;
    }
    fn step(&mut self, ctx: &mut Ctx) {
        let topic = ((u64::from(ctx.id()) * 3 + ctx.tick()) % 16) as u32;
        ctx.publish_u64(topic, self.counter);
    }
}

#[test]
fn ring_digest_matches_the_runtime() {
    let mut sim = Sim::new(7);
    sim.add_group(50, |_| Ring);
    sim.init().unwrap();
    sim.run(20);
    assert_eq!(sim.messages_total(), 50 * 20);
    let run = WasmScenario::new(20)
        .group("ring", module("ring").unwrap(), 50)
        .run(2)
        .unwrap();
    assert_eq!(sim.digest_hex(), run.digest_hex());
}

#[test]
fn gossip_digest_matches_the_runtime() {
    let mut sim = Sim::new(7);
    sim.add_group(40, |_| Gossip::default());
    sim.init().unwrap();
    sim.run(10);
    let run = WasmScenario::new(10)
        .group("gossip", module("gossip").unwrap(), 40)
        .run(1)
        .unwrap();
    assert_eq!(run.summary.messages_delivered, sim.messages_total());
    assert_eq!(sim.digest_hex(), run.digest_hex());
}

#[test]
fn a_traced_run_is_verified_by_replay() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("ring.trace");
    let run = WasmScenario::new(5)
        .group("ring", module("ring").unwrap(), 8)
        .run_traced(2, &trace)
        .unwrap();
    assert_eq!(run.verified_chain_head, Some(run.summary.chain_head));
    assert_ne!(run.chain_head_hex(), "00".repeat(32));
}

#[test]
fn a_missing_module_names_the_fix() {
    let err = module("no-such-agent").unwrap_err();
    assert!(
        err.to_string().contains("cargo xtask build-agents"),
        "{err}"
    );
}
