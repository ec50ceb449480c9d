//! Push + dispatch cost per task, at 10k and 1M tasks per batch.
//!
//! Each iteration pushes a batch of fresh tasks (ids and seqs continue from the
//! previous batch, as in a run) into a scheduler that is reused across
//! iterations, then dispatches ticks until the queue is empty. Building the
//! tasks and dropping the dispatched ones are outside the timing. Criterion's
//! throughput line gives tasks per second; ns per task = time / tasks.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use we_core::{AgentId, Task, TaskId, TaskKind};
use we_sched::{Policy, SchedConfig, Scheduler};

/// `(tasks per batch, agents)`.
const SIZES: [(u64, u32); 2] = [(10_000, 1_000), (1_000_000, 10_000)];

struct Case {
    name: &'static str,
    policy: Policy,
    /// Budget per tick as a multiple of the agent count (`None`: unlimited).
    ticks_per_round: Option<u32>,
    /// Every `dep_every`-th task depends on the task `agents` before it.
    dep_every: Option<u64>,
}

const CASES: [Case; 4] = [
    Case {
        name: "fifo",
        policy: Policy::Fifo,
        ticks_per_round: None,
        dep_every: None,
    },
    Case {
        name: "priority",
        policy: Policy::Priority,
        ticks_per_round: None,
        dep_every: None,
    },
    Case {
        name: "fifo_one_per_agent_per_tick",
        policy: Policy::Fifo,
        ticks_per_round: Some(1),
        dep_every: None,
    },
    Case {
        name: "fifo_deps_1_in_10",
        policy: Policy::Fifo,
        ticks_per_round: None,
        dep_every: Some(10),
    },
];

fn batch(next: &mut u64, n: u64, agents: u32, dep_every: Option<u64>) -> Vec<Task> {
    let start = *next;
    *next += n;
    (start..start + n)
        .map(|id| {
            let agent = (id % u64::from(agents)) as u32;
            let mut t = Task::new(
                TaskId(id),
                AgentId::new(agent),
                TaskKind::Step,
                (id % 4) as u8,
                id,
            );
            if let Some(every) = dep_every
                && id % every == 0
                && id >= start + u64::from(agents)
            {
                t.deps.push(TaskId(id - u64::from(agents) + 1));
            }
            t
        })
        .collect()
}

fn push_dispatch(c: &mut Criterion) {
    for (n, agents) in SIZES {
        let mut group = c.benchmark_group(format!("sched_push_dispatch/{n}"));
        group.throughput(Throughput::Elements(n));
        if n >= 1_000_000 {
            group.sample_size(10);
        }
        for case in &CASES {
            let mut sched = Scheduler::new(SchedConfig {
                policy: case.policy,
                max_tasks_per_tick: case.ticks_per_round.map(|k| k * agents),
            });
            let mut next = 0u64;
            let mut out: Vec<Task> = Vec::with_capacity(n as usize);
            group.bench_function(case.name, |b| {
                b.iter_batched(
                    || batch(&mut next, n, agents, case.dep_every),
                    |tasks| {
                        for t in tasks {
                            sched.push(t).map_err(|e| e.to_string())?;
                        }
                        out.clear();
                        // Bounded: each tick dispatches at least one task here.
                        while !sched.is_empty() {
                            sched.dispatch_tick(&mut out).map_err(|e| e.to_string())?;
                        }
                        black_box(out.len());
                        Ok::<(), String>(())
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, push_dispatch);
criterion_main!(benches);
