//! Errors of the orchestrator.

use std::path::PathBuf;

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scenario file could not be read.
    #[error("scenario {}: {reason}", path.display())]
    ScenarioIo {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The scenario file is invalid.
    #[error("scenario {file}: field `{field}`: {problem}")]
    Scenario {
        /// The file.
        file: String,
        /// The field (or line) at fault.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// An agent module could not be read or loaded.
    #[error("agent group `{group}`: module {}: {reason}", path.display())]
    Module {
        /// The group.
        group: String,
        /// The module path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An agent could not be instantiated.
    #[error("agent {agent}: {reason}")]
    Instantiate {
        /// The agent index.
        agent: u32,
        /// What went wrong.
        reason: String,
    },
    /// A worker thread failed.
    #[error("worker {worker}: {reason}")]
    Worker {
        /// The worker.
        worker: usize,
        /// What went wrong.
        reason: String,
    },
    /// The scheduler refused its queue.
    #[error("scheduler: {0}")]
    Sched(String),
    /// The trace sink failed.
    #[error("trace at tick {tick}: {reason}")]
    Trace {
        /// The tick being recorded.
        tick: u64,
        /// What went wrong.
        reason: String,
    },
    /// A replay diverged from its recording.
    #[error("{divergence}{}", if actual_effects.is_empty() { String::new() } else { format!("\n  actual effects of that agent in that tick:\n{actual_effects}") })]
    Diverged {
        /// Where and what.
        divergence: we_core::Divergence,
        /// The agent's actual effects in that tick, one per line.
        actual_effects: String,
    },
    /// A trusted key file named by `[security] trusted_keys` is unusable.
    #[error("[security] trusted_keys: {0}")]
    TrustedKeys(String),
    /// A supervisor reached its restart limit with `on_limit = "abort"` or
    /// exhausted its group restarts: the run stops after recording the tick.
    #[error("supervision gave up at tick {tick}: {reason}")]
    Supervision {
        /// The tick of the fault.
        tick: u64,
        /// Which agent and group, and which limit.
        reason: String,
    },
    /// An internal invariant did not hold; this is a bug in the runtime.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Result with the we-runtime [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
