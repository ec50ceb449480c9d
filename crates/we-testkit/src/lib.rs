//! Test kit for wasm-engine agents: unit-test an agent natively, the same
//! [`we_agent::Agent`] implementation that is compiled to `.wasm`, against a
//! simulated deterministic orchestrator; and run the compiled module under the
//! real runtime inside a test.
//!
//! - [`Harness`] (from the SDK, re-exported): one agent on a simulated host.
//!   Deliver messages, step ticks, get back its effects in order: sends,
//!   publishes, joins, region writes, inference requests, log lines.
//! - [`Sim`]: many agents under a simulated orchestrator with the runtime's
//!   rules (delivery at `t + 1` in sender order, topic fan-out, single-writer
//!   regions flipped at tick ends, inference answered by a function you give,
//!   faults contained), and the runtime's workload digest.
//! - [`wasm`] (feature `runtime`, on by default): the `.wasm` under the real
//!   runtime (wasmer sandbox, ONNX Runtime, trace and replay), returning the
//!   run's summary: digest, messages, faults, chain head.
//!
//! One agent, one tick at a time:
//!
//! ```
//! use we_agent::prelude::*;
//! use we_testkit::{Effect, Harness};
//!
//! /// Answers every message with its value doubled.
//! #[derive(Default)]
//! struct Doubler {
//!     seen: u64,
//! }
//! impl Agent for Doubler {
//!     fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
//!         self.seen += 1;
//!         ctx.send_u64(msg.sender(), msg.u64() * 2);
//!     }
//! }
//!
//! let mut h = Harness::<Doubler>::new(0, 2, 42);
//! h.init(&[]);
//! h.deliver_u64(1, 21);
//! assert_eq!(h.step(), vec![Effect::send_u64(1, 42)]);
//! assert_eq!(h.agent().seen, 1);
//! ```
//!
//! Several agents talking, with inference answered by the test:
//!
//! ```
//! use we_agent::prelude::*;
//! use we_testkit::{Reply, Sim};
//!
//! /// Asks model `m` every tick and remembers the last answer.
//! #[derive(Default)]
//! struct Asker {
//!     answer: Option<u64>,
//! }
//! impl Agent for Asker {
//!     fn receive(&mut self, _ctx: &mut Ctx, msg: &Message) {
//!         if msg.is_inference_result() {
//!             self.answer = Some(msg.u64());
//!         }
//!     }
//!     fn step(&mut self, ctx: &mut Ctx) {
//!         let x = [ctx.id() as f32];
//!         let tag = ctx.tick() as u32;
//!         let _ = ctx.infer("m", tag, &[TensorRef::f32("x", &[1, 1], &x)]);
//!     }
//! }
//!
//! let mut sim = Sim::new(1);
//! sim.add_group(2, |_| Asker::default());
//! // The "model": the argmax-style answer is the agent's id plus 10.
//! sim.set_inference(|req| Reply::Action(u64::from(req.agent) + 10));
//! sim.init().unwrap();
//! sim.run(2);
//! assert_eq!(sim.agent::<Asker>(1).unwrap().answer, Some(11));
//! ```

pub mod sim;
#[cfg(feature = "runtime")]
pub mod wasm;

pub use sim::{Delivery, Reply, Request, Sim, TickReport};
pub use we_agent::native::{Effect, Export, Fault, Harness, Tensor};

use std::path::PathBuf;

/// Errors of the test kit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`Sim::init`] was called twice.
    #[error("the simulation was already initialised")]
    AlreadyInitialised,
    /// A module file is missing.
    #[error("agent module {} not found: run `cargo xtask build-agents`", path.display())]
    ModuleNotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// The scenario did not parse.
    #[error("scenario: {message}")]
    Scenario {
        /// Why.
        message: String,
    },
    /// The runtime could not be built or the run failed.
    #[error("run: {message}")]
    Run {
        /// Why, with its causes.
        message: String,
    },
    /// The replay of a trace diverged or failed.
    #[error("replay of {}: {message}", trace.display())]
    Replay {
        /// The trace.
        trace: PathBuf,
        /// Why.
        message: String,
    },
    /// The replay ended on another chain head than the run.
    #[error("the run ended on chain head {run}, its replay on {replay}")]
    ChainMismatch {
        /// The run's chain head, hex.
        run: String,
        /// The replay's, hex.
        replay: String,
    },
}

/// `Result` with the test kit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
