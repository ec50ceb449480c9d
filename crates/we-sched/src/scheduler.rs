//! The scheduler: per-agent queues of slab indices, dependency tracking, and the per-tick dispatch loop.

use crate::cycle::{self, Graph};
use crate::id_table::{IdMap, IdState, IdTable};
use crate::lanes::Lanes;
use crate::{Error, Result};
use std::collections::VecDeque;
use we_core::{Task, TaskId};

/// Agent indices must be below this (the scheduler keeps one slot per index up
/// to the highest one seen).
pub const MAX_AGENTS: u32 = 1 << 20;

/// The most tasks the queue holds at once; a push beyond it is refused.
pub const MAX_QUEUED_TASKS: usize = 1 << 26;

// Keys pack the round-robin position and the round into 64 bits.
const _: () = assert!(MAX_AGENTS as u64 <= 1 << Keys::POSITION_BITS);
const _: () = assert!((u32::MAX as u64) < 1 << Keys::ROUND_BITS);

/// How the tasks of one tick are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Round-robin across agents, each agent's tasks in seq order.
    #[default]
    Fifo,
    /// Higher `priority` first, then round-robin, each agent's tasks in seq order.
    Priority,
}

/// Scheduler settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SchedConfig {
    /// Ordering policy.
    pub policy: Policy,
    /// At most this many tasks per tick (`None`: every eligible task). The rest
    /// stay queued, in order, for later ticks.
    pub max_tasks_per_tick: Option<u32>,
}

/// Set in a queue entry when the task waited on a dependency when pushed; it is
/// eligible once its id slot's `pending` count is back to zero.
const WAITS: u32 = 1 << 31;

/// Queued tasks, stored once and referred to by index.
///
/// Agents' queues hold 4-byte indices rather than the tasks: pushes from many
/// agents then write tasks to one place instead of to thousands of per-agent
/// buffers, which at a million tasks is the difference between streaming memory
/// and a cache miss per task. Free slots are reused lowest index first (a bitmap
/// with a scan hint), not last-freed first: a LIFO free list would hand out slots
/// in the previous tick's dispatch order, and after a few ticks pushes would land
/// all over the slab.
#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Option<Task>>,
    /// Bit `i % 64` of word `i / 64` set: slot `i` is free.
    free: Vec<u64>,
    /// Words below this one have no free bit.
    hint: usize,
    free_count: usize,
}

impl Slab {
    #[inline]
    fn insert(&mut self, task: Task) -> u32 {
        if self.free_count > 0 {
            // Bounded by `free.len()`; a free bit exists at or after `hint`.
            while self.hint < self.free.len() {
                let word = self.free[self.hint];
                if word != 0 {
                    let bit = word.trailing_zeros() as usize;
                    self.free[self.hint] = word & (word - 1);
                    self.free_count -= 1;
                    let i = self.hint * 64 + bit;
                    self.slots[i] = Some(task);
                    // Fits in u32: at most MAX_QUEUED_TASKS (< 2^31) slots.
                    return i as u32;
                }
                self.hint += 1;
            }
        }
        self.slots.push(Some(task));
        if self.slots.len() > self.free.len() * 64 {
            self.free.push(0);
        }
        (self.slots.len() - 1) as u32
    }

    #[inline]
    fn get(&self, entry: u32) -> Option<&Task> {
        self.slots.get((entry & !WAITS) as usize)?.as_ref()
    }

    #[inline]
    fn take(&mut self, entry: u32) -> Option<Task> {
        let i = (entry & !WAITS) as usize;
        let task = self.slots.get_mut(i)?.take()?;
        let word = i / 64;
        if let Some(bits) = self.free.get_mut(word) {
            *bits |= 1 << (i % 64);
            self.free_count += 1;
            self.hint = self.hint.min(word);
        }
        Some(task)
    }
}

/// One agent's queue: slab entries (index, plus [`WAITS`]) sorted by `(seq, id)`.
#[derive(Debug, Default)]
struct AgentQueue {
    entries: VecDeque<u32>,
    /// `(seq, id)` of the last entry, so that the common in-order push compares
    /// without touching the slab.
    tail: (u64, TaskId),
    /// Whether the agent is listed in `Scheduler::active`.
    active: bool,
    /// Tasks taken from this agent in the current tick (its round).
    taken: u32,
}

/// A task waiting for a dependency: enough to find it and to orient the edge.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    id: TaskId,
    agent: u32,
    seq: u64,
}

/// The tasks waiting for one id; the first inline, so that the common single
/// waiter costs no allocation.
#[derive(Debug)]
struct Waiters {
    first: Waiter,
    rest: Vec<Waiter>,
}

/// The deterministic event queue. See the crate documentation for the order.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedConfig,
    /// Queues indexed by agent index, `0..span`.
    agents: Vec<AgentQueue>,
    /// Agents whose queue may be non-empty; pruned at the end of each tick and
    /// sorted (by index) at the start of the next when pushes appended to it.
    active: Vec<u32>,
    /// Round-robin modulus: one more than the highest agent index seen (or
    /// reserved).
    span: u32,
    /// The agent that is first in round-robin order this tick.
    cursor: u32,
    /// Queued task count.
    len: usize,
    slab: Slab,
    ids: IdTable,
    /// Dependency id -> the queued tasks waiting for it.
    waiters: IdMap<TaskId, Waiters>,
    /// Live dependency edges `w -> d` (both queued) whose target does not sort
    /// before the source in `(seq, id)` order. While there are none, every edge
    /// of the wait-for graph, implicit ones included, goes strictly down in
    /// `(seq, id)`, so there can be no cycle and no check is needed.
    upward_edges: usize,
    /// Set when a push may have closed a cycle; checked at the next dispatch.
    graph_dirty: bool,
    /// Per-tick scratch, kept for its capacity: see [`crate::lanes`].
    lanes: Lanes,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: SchedConfig) -> Self {
        Self {
            config,
            agents: Vec::new(),
            active: Vec::new(),
            span: 0,
            cursor: 0,
            len: 0,
            slab: Slab::default(),
            ids: IdTable::default(),
            waiters: IdMap::default(),
            upward_edges: 0,
            graph_dirty: false,
            lanes: Lanes::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> SchedConfig {
        self.config
    }

    /// Declares that the run has `count` agents, so the round-robin rotates over
    /// `0..count` from the first tick even before every agent has had a task.
    /// Never lowers the span.
    pub fn reserve_agents(&mut self, count: u32) -> Result<()> {
        if count > MAX_AGENTS {
            return Err(Error::AgentCountTooLarge {
                count,
                max: MAX_AGENTS,
            });
        }
        self.grow_span(count);
        Ok(())
    }

    /// Number of queued tasks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no task is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The agent first in round-robin order at the next tick.
    pub fn cursor(&self) -> u32 {
        self.cursor
    }

    /// The round-robin modulus: highest agent index seen or reserved, plus one.
    pub fn agent_span(&self) -> u32 {
        self.span
    }

    /// Whether `id` has been dispatched.
    pub fn is_dispatched(&self, id: TaskId) -> bool {
        self.ids.get(id.0).state == IdState::Dispatched
    }

    /// Whether `id` is queued (pushed, not dispatched).
    pub fn is_queued(&self, id: TaskId) -> bool {
        self.ids.get(id.0).state == IdState::Queued
    }

    /// Queues a task.
    ///
    /// Refused with [`we_core::Error::DuplicateTask`] if the id was pushed before
    /// (queued or already dispatched: ids are unique within a run, or a
    /// dependency on them would be ambiguous). Nothing changes on error.
    pub fn push(&mut self, task: Task) -> Result<()> {
        let id = task.id;
        let agent = task.agent.index;
        if agent >= MAX_AGENTS {
            return Err(Error::AgentIndexTooLarge {
                id,
                index: agent,
                max: MAX_AGENTS,
            });
        }
        if self.len >= MAX_QUEUED_TASKS {
            return Err(Error::QueueFull {
                capacity: MAX_QUEUED_TASKS,
                id,
            });
        }
        let seen = self.ids.get(id.0);
        if seen.state != IdState::Unseen {
            return Err(we_core::Error::DuplicateTask { id }.into());
        }
        let Some(slot) = self.ids.get_mut(id.0) else {
            // Unreachable: an id below the watermark reads as dispatched.
            return Err(we_core::Error::DuplicateTask { id }.into());
        };
        // Queued before its deps are looked at, so that a self-dependency is an
        // edge to a queued task (a cycle of one).
        slot.state = IdState::Queued;
        slot.seq = task.seq;
        let me = (task.seq, id);
        let waiter = Waiter {
            id,
            agent,
            seq: task.seq,
        };

        let mut pending = 0u32;
        let mut new_edge = false;
        let mut new_upward = false;
        // Bounded by the task's dependency list.
        for &dep in &task.deps {
            let target = self.ids.get(dep.0);
            match target.state {
                IdState::Dispatched => continue,
                IdState::Queued => {
                    new_edge = true;
                    if (target.seq, dep) >= me {
                        new_upward = true;
                        self.upward_edges += 1;
                    }
                }
                IdState::Unseen => {}
            }
            pending += 1;
            if let Some(slot) = self.ids.get_mut(dep.0) {
                slot.awaited = true;
            }
            match self.waiters.entry(dep) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().rest.push(waiter),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Waiters {
                        first: waiter,
                        rest: Vec::new(),
                    });
                }
            }
        }
        // Tasks that waited for this id while it was unknown now have edges to it.
        if seen.awaited
            && let Some(w) = self.waiters.get(&id)
        {
            new_edge = true;
            for other in std::iter::once(&w.first).chain(&w.rest) {
                if me >= (other.seq, other.id) {
                    new_upward = true;
                    self.upward_edges += 1;
                }
            }
        }
        if let Some(slot) = self.ids.get_mut(id.0) {
            slot.pending = pending;
        }
        if new_upward || (new_edge && self.upward_edges > 0) {
            self.graph_dirty = true;
        }

        self.grow_span(agent + 1);
        let entry = self.slab.insert(task) | if pending > 0 { WAITS } else { 0 };
        let queue = &mut self.agents[agent as usize];
        if queue.entries.is_empty() || queue.tail < me {
            queue.entries.push_back(entry);
            queue.tail = me;
        } else {
            // Out of (seq, id) order: a binary-search insert; the tail stays.
            let slab = &self.slab;
            let at = queue
                .entries
                .partition_point(|&e| slab.get(e).is_some_and(|t| (t.seq, t.id) < me));
            queue.entries.insert(at, entry);
        }
        if !queue.active {
            queue.active = true;
            self.active.push(agent);
        }
        self.len += 1;
        Ok(())
    }

    /// Moves the tasks of one tick into `out` (appended), in dispatch order, and
    /// advances the round-robin cursor by one agent.
    ///
    /// Fails with [`we_core::Error::DependencyCycle`] if queued tasks wait on
    /// each other in a cycle; then nothing is dispatched and the cursor stays.
    ///
    /// How: the next task is the eligible agent head with the smallest key
    /// `(255 - priority, round, position)`. Agents are visited in position order
    /// to build round 0, then the `lanes` structure yields keys in order in O(1)
    /// per task in the common case, and O(log A) for agents freed by a
    /// dependency in the middle of the tick or whose next head has another
    /// priority.
    pub fn dispatch_tick(&mut self, out: &mut Vec<Task>) -> Result<()> {
        if self.graph_dirty {
            self.check_cycles()?;
            self.graph_dirty = false;
        }
        let budget = match self.config.max_tasks_per_tick {
            Some(max) => (max as usize).min(self.len),
            None => self.len,
        };
        out.reserve(budget);
        let keys = self.keys();

        if !self.active.is_sorted() {
            self.active.sort_unstable();
        }
        let mut lanes = std::mem::take(&mut self.lanes);
        lanes.clear();
        // Agents in round-robin order: from the cursor up, then from 0.
        let split = self.active.partition_point(|&a| a < self.cursor);
        let (low, high) = self.active.split_at(split);
        for &agent in high.iter().chain(low) {
            let queue = &mut self.agents[agent as usize];
            queue.taken = 0;
            let Some(&head) = queue.entries.front() else {
                continue;
            };
            if let Some(priority) = self.eligible_priority(head) {
                lanes.push_initial(keys.key(agent, 0, priority));
            }
        }

        let mut dispatched = 0usize;
        // Bounded by `budget`, itself at most the number of queued tasks.
        while dispatched < budget {
            let Some((key, from_round)) = lanes.pop() else {
                break;
            };
            let agent = keys.agent(key);
            let queue = &mut self.agents[agent as usize];
            let Some(entry) = queue.entries.pop_front() else {
                continue;
            };
            queue.taken += 1;
            let taken = queue.taken;
            let next_head = queue.entries.front().copied();
            let Some(task) = self.slab.take(entry) else {
                continue;
            };
            self.len -= 1;
            dispatched += 1;
            let before = self.ids.mark_dispatched(task.id.0);
            let id = task.id;
            let seq = task.seq;
            out.push(task);

            if let Some(head) = next_head
                && let Some(priority) = self.eligible_priority(head)
            {
                lanes.push_after(key, from_round, keys.key(agent, taken, priority));
            }
            if before.awaited {
                self.release_waiters(id, seq, &mut lanes);
            }
        }

        // Drop agents whose queue emptied; bounded by the active list.
        let agents = &mut self.agents;
        self.active.retain(|&a| {
            let queue = &mut agents[a as usize];
            queue.active = !queue.entries.is_empty();
            queue.active
        });
        self.lanes = lanes;
        if self.span > 0 {
            self.cursor = (self.cursor + 1) % self.span;
        }
        Ok(())
    }

    /// How keys are made this tick.
    #[inline]
    fn keys(&self) -> Keys {
        Keys {
            priority: self.config.policy == Policy::Priority,
            span: u64::from(self.span.max(1)),
            cursor: u64::from(self.cursor),
        }
    }

    /// `dep` (with `seq`) was just dispatched: every task waiting on it counts
    /// down, and an agent whose head became eligible joins the lanes out of band.
    fn release_waiters(&mut self, dep: TaskId, seq: u64, lanes: &mut Lanes) {
        let Some(Waiters { first, rest }) = self.waiters.remove(&dep) else {
            return;
        };
        // Bounded by the number of dependency entries naming `dep`.
        for w in std::iter::once(first).chain(rest) {
            if (seq, dep) >= (w.seq, w.id) {
                self.upward_edges = self.upward_edges.saturating_sub(1);
            }
            let Some(slot) = self.ids.get_mut(w.id.0) else {
                continue;
            };
            slot.pending = slot.pending.saturating_sub(1);
            if slot.pending > 0 {
                continue;
            }
            let queue = &self.agents[w.agent as usize];
            if let Some(&head) = queue.entries.front()
                && let Some(task) = self.slab.get(head)
                && task.id == w.id
            {
                // The agent was in no list: its head was blocked.
                let key = self.keys().key(w.agent, queue.taken, task.priority);
                lanes.push_urgent(key);
            }
        }
    }

    /// Fails if the queued tasks contain a dependency cycle (see [`crate::cycle`]).
    fn check_cycles(&self) -> Result<()> {
        // Number the queued tasks: agents ascending, each queue in order. Only
        // tasks someone waits for can be edge targets, so only they are indexed.
        let mut target_node: IdMap<TaskId, usize> = IdMap::default();
        let mut order: Vec<TaskId> = Vec::with_capacity(self.len);
        let mut follows_previous = Vec::with_capacity(self.len);
        for queue in &self.agents {
            for (i, task) in queue
                .entries
                .iter()
                .filter_map(|&e| self.slab.get(e))
                .enumerate()
            {
                if self.ids.get(task.id.0).awaited {
                    target_node.insert(task.id, order.len());
                }
                order.push(task.id);
                follows_previous.push(i > 0);
            }
        }
        let mut starts = Vec::with_capacity(order.len() + 1);
        let mut targets = Vec::new();
        starts.push(0);
        for queue in &self.agents {
            for &entry in &queue.entries {
                if entry & WAITS != 0
                    && let Some(task) = self.slab.get(entry)
                    && self.ids.get(task.id.0).pending > 0
                {
                    targets.extend(task.deps.iter().filter_map(|d| target_node.get(d).copied()));
                }
                starts.push(targets.len());
            }
        }
        let graph = Graph {
            starts: &starts,
            targets: &targets,
            follows_previous: &follows_previous,
        };
        let on_cycle = cycle::nodes_on_cycles(&graph);
        if on_cycle.is_empty() {
            return Ok(());
        }
        let mut tasks: Vec<TaskId> = on_cycle.into_iter().map(|n| order[n]).collect();
        tasks.sort_unstable();
        Err(we_core::Error::DependencyCycle { tasks }.into())
    }

    /// The priority of queue entry `head` if it may be dispatched now. Under
    /// FIFO the priority is not used, and a task that never waited is eligible
    /// without reading it from the slab.
    #[inline]
    fn eligible_priority(&self, head: u32) -> Option<u8> {
        if head & WAITS == 0 && self.config.policy == Policy::Fifo {
            return Some(0);
        }
        let task = self.slab.get(head)?;
        if head & WAITS != 0 && self.ids.get(task.id.0).pending > 0 {
            return None;
        }
        Some(task.priority)
    }

    fn grow_span(&mut self, count: u32) {
        if count > self.span {
            self.span = count;
            self.agents.resize_with(count as usize, AgentQueue::default);
        }
    }
}

/// Makes the ordering keys of one tick.
#[derive(Clone, Copy, Debug)]
struct Keys {
    /// Whether the policy is [`Policy::Priority`].
    priority: bool,
    /// Round-robin modulus (at least 1).
    span: u64,
    cursor: u64,
}

impl Keys {
    /// Bits of the round-robin position (`MAX_AGENTS` is `2^20`).
    const POSITION_BITS: u32 = 20;
    /// Bits of the round (`MAX_QUEUED_TASKS` is `2^26`, so a round fits).
    const ROUND_BITS: u32 = 36;

    /// The key of `agent` after it has given `taken` tasks this tick, with a
    /// head of `priority`: the smallest key is dispatched next.
    ///
    /// Bits 56..64: `255 - priority` under [`Policy::Priority`], else 0; bits
    /// 20..56: `taken` (the round); bits 0..20: round-robin position
    /// `(agent - cursor) mod span`, from which [`Keys::agent`] recovers the agent.
    #[inline]
    fn key(self, agent: u32, taken: u32, priority: u8) -> u64 {
        let rank = if self.priority {
            u64::from(u8::MAX - priority)
        } else {
            0
        };
        // `agent < span` and `cursor < span`: one conditional subtraction.
        let agent = u64::from(agent);
        let position = if agent >= self.cursor {
            agent - self.cursor
        } else {
            agent + self.span - self.cursor
        };
        (rank << (Self::ROUND_BITS + Self::POSITION_BITS))
            | (u64::from(taken) << Self::POSITION_BITS)
            | position
    }

    /// The agent a key was made for.
    #[inline]
    fn agent(self, key: u64) -> u32 {
        let position = key & ((1 << Self::POSITION_BITS) - 1);
        let agent = position + self.cursor;
        (if agent >= self.span {
            agent - self.span
        } else {
            agent
        }) as u32
    }
}
