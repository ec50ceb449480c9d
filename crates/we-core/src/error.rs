//! The error type of we-core.

use crate::{AgentId, TaskId};

/// Errors raised by core types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A handle names an agent generation that is no longer current.
    #[error("stale agent handle {id}: agent {} is now at generation {current}", id.index)]
    StaleAgent {
        /// The handle that was presented.
        id: AgentId,
        /// The agent's current generation.
        current: u32,
    },
    /// A handle names an agent index that does not exist.
    #[error("unknown agent {index} (the run has {count} agents)")]
    UnknownAgent {
        /// The index that was presented.
        index: u32,
        /// Number of agents.
        count: u32,
    },
    /// Task dependencies form a cycle.
    #[error("dependency cycle among tasks {tasks:?}")]
    DependencyCycle {
        /// The tasks on the cycle, in ascending id order.
        tasks: Vec<TaskId>,
    },
    /// A task id was pushed twice.
    #[error("task {id} was already queued")]
    DuplicateTask {
        /// The duplicated id.
        id: TaskId,
    },
}

/// Result with the we-core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
