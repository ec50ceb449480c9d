//! Task objects: the unit the scheduler orders.

use crate::AgentId;
use std::fmt;

/// Identity of a task, unique within a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task#{}", self.0)
    }
}

/// What a task asks an agent to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskKind {
    /// Run `agent_init`.
    Init,
    /// Deliver the agent's inbox (`agent_receive`).
    Deliver,
    /// Run `agent_step`.
    Step,
    /// Run `agent_shutdown`.
    Shutdown,
    /// A scenario-defined external event, by number.
    External(u32),
}

/// A unit of work for one agent.
///
/// Ordering among tasks is decided by the scheduler from these fields only
/// (priority, the agent's round-robin position, `seq`), never from arrival time.
/// `deps` lists tasks that must be dispatched before this one; a task whose
/// dependencies are not yet dispatched waits, in order, for a later pick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Unique id.
    pub id: TaskId,
    /// The agent that runs it.
    pub agent: AgentId,
    /// What to run.
    pub kind: TaskKind,
    /// Higher runs first under the priority policy; ignored under FIFO.
    pub priority: u8,
    /// FIFO sequence number: the order the task was created in.
    pub seq: u64,
    /// Tasks that must be dispatched first.
    pub deps: Vec<TaskId>,
}

impl Task {
    /// A task without dependencies.
    pub fn new(id: TaskId, agent: AgentId, kind: TaskKind, priority: u8, seq: u64) -> Self {
        Self {
            id,
            agent,
            kind,
            priority,
            seq,
            deps: Vec::new(),
        }
    }
}
