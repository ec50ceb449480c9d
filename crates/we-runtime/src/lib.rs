//! The orchestrator of wasm-engine: runs a scenario tick by tick.
//!
//! For tick `t` (see `docs/ARCHITECTURE.md`, "The tick"):
//! 1. the scheduler picks which agents run, by data only;
//! 2. the worker pool runs them: `agent_receive` with the whole inbox delivered
//!    at `t`, then `agent_step`; agents share nothing while they run and their
//!    effects are buffered;
//! 3. effects are committed in (agent id, emission index) order into the bus,
//!    inference requests are served, and everything committed becomes visible
//!    at `t + 1`;
//! 4. the tick is digested and appended to the trace.
//!
//! Architecture invariant: no code path here reads the wall clock to decide
//! anything. Wall time is measured only for reports (`TickTimes`).

mod affinity;
mod error;
mod fanout;
pub mod faults;
mod hash;
mod pool;
mod recorder;
mod regions;
mod run;
pub mod scenario;
pub mod supervise;
mod wait;

pub use error::{Error, Result};
pub use run::{
    DEFAULT_SPLIT_COMMIT_MIN, RunOptions, RunSummary, Runtime, TickTimes, workload_digest_update,
};
pub use scenario::Scenario;
