//! A reference model of the documented order, written for clarity, not speed:
//! every pick scans every queued task.

use std::collections::{BTreeMap, BTreeSet};
use we_core::Task;
use we_sched::Policy;

/// The model's state.
pub struct Model {
    policy: Policy,
    max: Option<u32>,
    queued: Vec<Task>,
    dispatched: BTreeSet<u64>,
    span: u32,
    cursor: u32,
    /// Whether `tick` looks for cycles first (quadratic; off for large inputs
    /// known to be acyclic).
    pub check_cycles: bool,
}

impl Model {
    pub fn new(policy: Policy, max: Option<u32>) -> Self {
        Self {
            policy,
            max,
            queued: Vec::new(),
            dispatched: BTreeSet::new(),
            span: 0,
            cursor: 0,
            check_cycles: true,
        }
    }

    pub fn push(&mut self, task: Task) {
        self.span = self.span.max(task.agent.index + 1);
        self.queued.push(task);
    }

    /// One tick: the dispatched ids in order, or the ids on a cycle.
    pub fn tick(&mut self) -> Result<Vec<u64>, Vec<u64>> {
        let cycle = if self.check_cycles {
            self.on_cycle()
        } else {
            Vec::new()
        };
        if !cycle.is_empty() {
            return Err(cycle);
        }
        let budget = self.max.map_or(usize::MAX, |m| m as usize);
        let mut taken: BTreeMap<u32, u32> = BTreeMap::new();
        let mut out = Vec::new();
        while out.len() < budget {
            let mut best: Option<((u8, u32, u32), u64)> = None;
            for t in self.heads().into_values() {
                if !t.deps.iter().all(|d| self.dispatched.contains(&d.0)) {
                    continue;
                }
                let a = t.agent.index;
                let rank = match self.policy {
                    Policy::Fifo => 0,
                    Policy::Priority => 255 - t.priority,
                };
                let pos = (a + self.span - self.cursor) % self.span;
                let key = (rank, taken.get(&a).copied().unwrap_or(0), pos);
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, t.id.0));
                }
            }
            let Some((_, id)) = best else { break };
            let i = self.queued.iter().position(|t| t.id.0 == id).unwrap();
            let t = self.queued.remove(i);
            *taken.entry(t.agent.index).or_default() += 1;
            self.dispatched.insert(t.id.0);
            out.push(t.id.0);
        }
        if self.span > 0 {
            self.cursor = (self.cursor + 1) % self.span;
        }
        Ok(out)
    }

    /// Each agent's first queued task in `(seq, id)` order.
    fn heads(&self) -> BTreeMap<u32, &Task> {
        let mut heads: BTreeMap<u32, &Task> = BTreeMap::new();
        for t in &self.queued {
            let h = heads.entry(t.agent.index).or_insert(t);
            if (t.seq, t.id) < (h.seq, h.id) {
                *h = t;
            }
        }
        heads
    }

    /// Ids of queued tasks that can reach themselves in the wait-for graph
    /// (edges: to queued deps, and to the task before in the same agent's
    /// `(seq, id)` order), ascending.
    fn on_cycle(&self) -> Vec<u64> {
        let queued: BTreeSet<u64> = self.queued.iter().map(|q| q.id.0).collect();
        let mut by_agent: BTreeMap<u32, Vec<&Task>> = BTreeMap::new();
        for t in &self.queued {
            by_agent.entry(t.agent.index).or_default().push(t);
        }
        let mut succ: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for tasks in by_agent.values_mut() {
            tasks.sort_by_key(|t| (t.seq, t.id));
            for (i, t) in tasks.iter().enumerate() {
                let mut next: Vec<u64> = t
                    .deps
                    .iter()
                    .map(|d| d.0)
                    .filter(|d| queued.contains(d))
                    .collect();
                if i > 0 {
                    next.push(tasks[i - 1].id.0);
                }
                succ.insert(t.id.0, next);
            }
        }
        let mut found = Vec::new();
        for &start in &queued {
            let mut seen = BTreeSet::new();
            let mut stack = succ[&start].clone();
            while let Some(n) = stack.pop() {
                if n == start {
                    found.push(n);
                    break;
                }
                if seen.insert(n) {
                    stack.extend(succ[&n].iter().copied());
                }
            }
        }
        found
    }
}
