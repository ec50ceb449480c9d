//! The error type of we-sched.

/// Errors raised by the scheduler.
///
/// Duplicate ids and dependency cycles are reported with the we-core variants
/// ([`we_core::Error::DuplicateTask`], [`we_core::Error::DependencyCycle`]) so
/// that the runtime sees one vocabulary for task errors, whichever part found them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task error in the we-core vocabulary: a duplicate id or a dependency cycle.
    #[error(transparent)]
    Core {
        /// The underlying error.
        #[from]
        source: we_core::Error,
    },
    /// The queue already holds [`crate::MAX_QUEUED_TASKS`] tasks.
    #[error("task queue is full ({capacity} tasks); task {id} was refused")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
        /// The refused task.
        id: we_core::TaskId,
    },
    /// [`crate::Scheduler::reserve_agents`] asked for more than [`crate::MAX_AGENTS`].
    #[error("cannot reserve {count} agents; at most {max}")]
    AgentCountTooLarge {
        /// The count asked for.
        count: u32,
        /// The maximum.
        max: u32,
    },
    /// A task names an agent index at or above [`crate::MAX_AGENTS`].
    #[error("task {id} names agent {index}; agent indices must be below {max}")]
    AgentIndexTooLarge {
        /// The refused task.
        id: we_core::TaskId,
        /// The agent index it named.
        index: u32,
        /// The exclusive upper bound.
        max: u32,
    },
}

impl Error {
    /// The tasks named by a dependency-cycle error, ascending; `None` for any
    /// other error.
    pub fn cycle(&self) -> Option<&[we_core::TaskId]> {
        match self {
            Error::Core {
                source: we_core::Error::DependencyCycle { tasks },
            } => Some(tasks),
            _ => None,
        }
    }
}

/// Result with the we-sched [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
