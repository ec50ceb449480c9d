//! Core types of wasm-engine and the traits its parts compose through.
//!
//! Architecture invariant: this crate does no I/O, reads no clock, spawns no
//! thread and names no engine (no wasmer, no ONNX Runtime). Everything here is
//! plain data and pure functions, so every other crate can depend on it and a
//! test can build any value by hand.

mod caps;
mod error;
pub mod hint;
mod id;
mod task;
mod traits;

pub use caps::{
    CAPABILITIES_BYTES_MAX, CAPABILITIES_SECTION, Capabilities, CapabilityError, IdScope, NameScope,
};
pub use error::{Error, Result};
pub use id::{AgentId, GenerationTable, Tick};
pub use task::{Task, TaskId, TaskKind};
pub use traits::{
    AgentCall, AgentHost, AgentInstance, BoxError, CallOutcome, Divergence, Emitted, FaultKind,
    InferenceBackend, InferenceRequest, InferenceResult, LogLine, ModuleInfo, PackInstance,
    PackMember, PackOutput, PackOutputs, PackPhase, Postprocess, RegionView, Request, Requests,
    SNAPSHOT_REGION_BYTES_MAX, Snapshot, StateObserver, ThreadStart, TickRecord, TraceHeader,
    TraceSink,
};
