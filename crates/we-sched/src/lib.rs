//! Deterministic event queue: FIFO and priority policies, round-robin across
//! agents, dependency order (requirement R2).
//!
//! The scheduler is a pure function of its queue: [`Scheduler::dispatch_tick`]
//! returns the tasks of one tick in one total order that depends only on the
//! queued tasks' fields (agent, priority, seq, id, deps), the configuration and
//! the number of ticks dispatched so far, never on the order or the time at which
//! tasks were pushed. It reads no clock, spawns no thread and uses no randomness.
//!
//! # The order of one tick
//!
//! * **One agent's tasks stay in `(seq, id)` order.** Each agent has its own queue
//!   sorted by `(seq, id)`; only its head can be dispatched. No policy reorders
//!   one agent's tasks: under [`Policy::Priority`] a high-priority task waits
//!   behind a lower-priority task of the same agent with a smaller seq.
//! * **Agents** are told apart by [`we_core::AgentId::index`]; the generation is
//!   carried in the task but plays no part in the order.
//! * **Round-robin.** The agents' round-robin positions this tick are
//!   `(agent - cursor) mod span`, where `span` is one more than the highest agent
//!   index ever pushed (or declared with [`Scheduler::reserve_agents`]) and
//!   `cursor` starts at 0 and advances by one, modulo `span`, at the end of every
//!   successful `dispatch_tick` (even an empty one). The tick proceeds in rounds:
//!   in each round each agent gives at most one task, agents visited in ascending
//!   position.
//! * **Exactly:** the next task is always the eligible agent head with the
//!   smallest key `(255 - priority, round, position)` (the first component only
//!   under [`Policy::Priority`]), where `round` is how many tasks that agent has
//!   already given in this tick. Under FIFO this is plain round-robin; under
//!   Priority, higher-priority heads go first and equal priorities share
//!   round-robin.
//! * **Dependencies.** A task is eligible only when every id in its `deps` has
//!   been dispatched, in an earlier tick or earlier in the same batch (so a
//!   dependency freed in the middle of a tick can let its dependant run in that
//!   tick, at the place its key gives it). A dependency on an id that was never
//!   pushed simply waits: the task stays queued until that id is pushed and
//!   dispatched. A dependency cycle among queued tasks, counting the implicit
//!   edge from each task to the one before it in its agent's queue, makes
//!   `dispatch_tick` fail with [`we_core::Error::DependencyCycle`], naming every
//!   task on a cycle in ascending id order; nothing is dispatched then, and
//!   since the cycle stays queued every later tick fails the same way (a cycle
//!   is a bug in the task graph the caller built, not a state to recover from).
//! * **Budget.** At most [`SchedConfig::max_tasks_per_tick`] tasks leave per
//!   tick; the rest stay queued, in order, for later ticks.
//!
//! # Cost
//!
//! Pushing a task stores it once in a slab and appends its 4-byte index to its
//! agent's queue (a binary-search insert only when it arrives out of
//! `(seq, id)` order). A tick visits the agents with queued tasks once, in
//! position order, to build round 0; after that each task costs O(1) (see
//! `lanes`): no sort, no heap, unless a dependency frees an agent in the middle
//! of the tick or an agent's next task has another priority (then O(log A) for
//! that pick). Id bookkeeping is an array access for ids handed out densely
//! (see `id_table`). Tasks without dependencies never touch a hash map. Free
//! slab slots are reused lowest first, so a long run keeps writing tasks to
//! memory in order rather than scattering them.
//!
//! Cycle checks: while every dependency points to a task that sorts before its
//! dependant in `(seq, id)` order (the usual case: a task depends on work
//! created before it), every edge of the wait-for graph goes down that order,
//! so no cycle is possible and none is looked for. Only after a push that adds
//! an "upward" edge, or any edge while an upward one is live, does the next
//! tick run a full check, in `O(queued tasks + deps)`.
//!
//! # Bounds
//!
//! At most [`MAX_QUEUED_TASKS`] tasks are queued and agent indices are below
//! [`MAX_AGENTS`]; a push beyond either is refused with an [`Error`]. Dispatched
//! ids are remembered (ids are unique per run, and a later task may depend on
//! an old one): for ids handed out from a counter this costs a window of at
//! most 2^21 slots (32 MiB) above the lowest undispatched id; ids far outside
//! it are kept in a hash map and cost memory per id.
//!
//! # Example
//!
//! ```
//! use we_core::{AgentId, Task, TaskId, TaskKind};
//! use we_sched::{Policy, SchedConfig, Scheduler};
//!
//! let mut sched = Scheduler::new(SchedConfig {
//!     policy: Policy::Fifo,
//!     max_tasks_per_tick: Some(3),
//! });
//! // Agent 0 has two tasks, agent 1 one; task 3 waits for task 1.
//! sched.push(Task::new(TaskId(0), AgentId::new(0), TaskKind::Step, 0, 0))?;
//! sched.push(Task::new(TaskId(1), AgentId::new(0), TaskKind::Step, 0, 1))?;
//! sched.push(Task::new(TaskId(2), AgentId::new(1), TaskKind::Step, 0, 2))?;
//! let mut late = Task::new(TaskId(3), AgentId::new(1), TaskKind::Deliver, 0, 3);
//! late.deps.push(TaskId(1));
//! sched.push(late)?;
//!
//! let mut out = Vec::new();
//! sched.dispatch_tick(&mut out)?;
//! let ids: Vec<u64> = out.iter().map(|t| t.id.0).collect();
//! // Round 0: agent 0 then agent 1; round 1: agent 0 (task 3 waits for task 1,
//! // and the budget of 3 is spent).
//! assert_eq!(ids, [0, 2, 1]);
//!
//! out.clear();
//! sched.dispatch_tick(&mut out)?;
//! assert_eq!(out[0].id, TaskId(3));
//! assert!(sched.is_empty());
//! # Ok::<(), we_sched::Error>(())
//! ```

mod cycle;
mod error;
mod id_table;
mod lanes;
mod scheduler;

pub use error::{Error, Result};
pub use scheduler::{MAX_AGENTS, MAX_QUEUED_TASKS, Policy, SchedConfig, Scheduler};
