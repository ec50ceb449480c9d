//! Integration tests of we-sched: worked examples, then property tests against a
//! plain reference model of the documented order (see the crate doc).

// A test may panic: a failed unwrap is a failed test, and the helpers below are
// not `#[test]` functions, which `allow-unwrap-in-tests` alone would cover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model;
mod props;

use we_core::{AgentId, Task, TaskId, TaskKind};
use we_sched::{Policy, SchedConfig, Scheduler};

fn task(id: u64, agent: u32, priority: u8, seq: u64, deps: &[u64]) -> Task {
    let mut t = Task::new(
        TaskId(id),
        AgentId::new(agent),
        TaskKind::Step,
        priority,
        seq,
    );
    t.deps = deps.iter().map(|&d| TaskId(d)).collect();
    t
}

fn sched(policy: Policy, max: Option<u32>) -> Scheduler {
    Scheduler::new(SchedConfig {
        policy,
        max_tasks_per_tick: max,
    })
}

/// Dispatches one tick and returns the ids in order.
fn tick(s: &mut Scheduler) -> Vec<u64> {
    let mut out = Vec::new();
    s.dispatch_tick(&mut out).unwrap();
    out.iter().map(|t| t.id.0).collect()
}

/// Pushes `tasks`, runs `ticks.len()` ticks and compares each tick's ids.
fn check(policy: Policy, max: Option<u32>, tasks: Vec<Task>, ticks: &[&[u64]]) {
    let mut s = sched(policy, max);
    for t in tasks {
        s.push(t).unwrap();
    }
    for (i, expect) in ticks.iter().enumerate() {
        assert_eq!(tick(&mut s), *expect, "tick {i}");
    }
}

#[test]
fn fifo_round_robin_with_rotating_cursor() {
    // Agents 0, 1, 2 with three tasks each: ids a*10 + k, seq k.
    let tasks = || {
        (0..3u32)
            .flat_map(|a| (0..3u64).map(move |k| task(u64::from(a) * 10 + k, a, 0, k, &[])))
            .collect::<Vec<_>>()
    };
    // Tick 0: cursor 0; rounds of one task per agent.
    check(
        Policy::Fifo,
        None,
        tasks(),
        &[&[0, 10, 20, 1, 11, 21, 2, 12, 22]],
    );
    // Budget 4: tick 0 starts at agent 0, tick 1 at agent 1, tick 2 at agent 2.
    check(
        Policy::Fifo,
        Some(4),
        tasks(),
        &[&[0, 10, 20, 1], &[11, 21, 2, 12], &[22]],
    );
}

#[test]
fn one_agents_tasks_stay_in_seq_order_whatever_the_push_order() {
    let mut s = sched(Policy::Fifo, None);
    for (id, seq) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
        s.push(task(id, 0, 0, seq, &[])).unwrap();
    }
    // Seq ties are broken by id.
    assert_eq!(tick(&mut s), [2, 4, 3, 1]);
}

#[test]
fn priority_first_then_round_robin_without_reordering_an_agent() {
    check(
        Policy::Priority,
        None,
        vec![
            task(0, 0, 1, 0, &[]),
            task(1, 0, 9, 1, &[]), // waits behind task 0 (same agent)
            task(2, 1, 5, 0, &[]),
            task(3, 2, 5, 0, &[]),
            task(4, 2, 5, 1, &[]),
        ],
        // Heads: 0 (p1), 2 (p5), 3 (p5). 2 and 3 share round 0 by position;
        // then agent 2's next head (p5, round 1) beats task 0 (p1); then 0 and
        // its successor 1.
        &[&[2, 3, 4, 0, 1]],
    );
}

#[test]
fn dependency_freed_mid_tick_runs_in_the_same_tick() {
    check(
        Policy::Fifo,
        None,
        vec![
            task(0, 0, 0, 0, &[3]), // agent 0 waits for agent 1's second task
            task(1, 0, 0, 1, &[]),
            task(2, 1, 0, 0, &[]),
            task(3, 1, 0, 1, &[]),
        ],
        // Round 0: agent 0 blocked, agent 1 gives 2. Round 1: agent 1 gives 3,
        // which frees agent 0 (still in round 0, so it comes next).
        &[&[2, 3, 0, 1]],
    );
}

#[test]
fn unknown_dependency_waits_until_pushed_and_dispatched() {
    let mut s = sched(Policy::Fifo, None);
    s.push(task(0, 0, 0, 0, &[100])).unwrap();
    s.push(task(1, 1, 0, 0, &[])).unwrap();
    assert_eq!(tick(&mut s), [1]);
    assert_eq!(tick(&mut s), Vec::<u64>::new());
    assert_eq!(s.len(), 1);
    s.push(task(100, 2, 0, 0, &[])).unwrap();
    assert_eq!(tick(&mut s), [100, 0]);
    assert!(s.is_empty());
    // A dependency on a task dispatched in an earlier tick is met at once.
    s.push(task(101, 0, 0, 5, &[1, 100])).unwrap();
    assert_eq!(tick(&mut s), [101]);
}

#[test]
fn duplicate_ids_are_refused_queued_or_dispatched() {
    let mut s = sched(Policy::Fifo, None);
    s.push(task(7, 0, 0, 0, &[])).unwrap();
    let dup = s.push(task(7, 1, 0, 0, &[])).unwrap_err();
    assert_eq!(dup, we_core::Error::DuplicateTask { id: TaskId(7) }.into());
    assert_eq!(tick(&mut s), [7]);
    assert!(s.is_dispatched(TaskId(7)));
    assert!(s.push(task(7, 0, 0, 1, &[])).is_err());
    assert!(s.is_empty());
}

#[test]
fn cycles_are_named_in_ascending_order_and_block_the_tick() {
    let mut s = sched(Policy::Fifo, None);
    s.push(task(5, 0, 0, 0, &[9])).unwrap();
    s.push(task(9, 1, 0, 0, &[2])).unwrap();
    s.push(task(2, 2, 0, 0, &[5])).unwrap();
    s.push(task(4, 3, 0, 0, &[])).unwrap();
    let mut out = Vec::new();
    let err = s.dispatch_tick(&mut out).unwrap_err();
    assert_eq!(err.cycle(), Some(&[TaskId(2), TaskId(5), TaskId(9)][..]));
    assert!(out.is_empty());
    assert_eq!(s.len(), 4);
    assert_eq!(s.cursor(), 0);
    // The error persists: the cycle is still queued.
    assert!(s.dispatch_tick(&mut out).is_err());
}

#[test]
fn waiting_on_a_later_task_of_the_same_agent_is_a_cycle() {
    let mut s = sched(Policy::Fifo, None);
    s.push(task(1, 0, 0, 0, &[3])).unwrap();
    s.push(task(2, 0, 0, 1, &[])).unwrap();
    s.push(task(3, 0, 0, 2, &[])).unwrap();
    let err = s.dispatch_tick(&mut Vec::new()).unwrap_err();
    assert_eq!(err.cycle(), Some(&[TaskId(1), TaskId(2), TaskId(3)][..]));
}

#[test]
fn self_dependency_is_a_cycle() {
    let mut s = sched(Policy::Priority, None);
    s.push(task(1, 0, 0, 0, &[1])).unwrap();
    let err = s.dispatch_tick(&mut Vec::new()).unwrap_err();
    assert_eq!(err.cycle(), Some(&[TaskId(1)][..]));
}

#[test]
fn reserve_agents_sets_the_rotation_from_the_first_tick() {
    let mut s = sched(Policy::Fifo, None);
    s.reserve_agents(4).unwrap();
    assert_eq!(tick(&mut s), Vec::<u64>::new());
    assert_eq!(s.cursor(), 1);
    for a in 0..2u32 {
        s.push(task(u64::from(a), a, 0, 0, &[])).unwrap();
    }
    // Cursor 1: agent 1 first, then agent 0 (position 3 of 4).
    assert_eq!(tick(&mut s), [1, 0]);
    assert_eq!(s.cursor(), 2);
    assert!(s.reserve_agents(we_sched::MAX_AGENTS + 1).is_err());
    assert!(s.push(task(9, we_sched::MAX_AGENTS, 0, 0, &[])).is_err());
}

#[test]
fn zero_budget_dispatches_nothing() {
    check(
        Policy::Fifo,
        Some(0),
        vec![task(0, 0, 0, 0, &[])],
        &[&[], &[]],
    );
}

#[test]
fn large_dense_run_matches_the_model() {
    // 3,000 tasks over 37 agents with chained dependencies and a budget.
    let mut tasks = Vec::new();
    for id in 0..3000u64 {
        let agent = ((id * 7919) % 37) as u32;
        let deps: Vec<u64> = if id % 5 == 0 && id > 40 {
            vec![id - 40]
        } else {
            vec![]
        };
        tasks.push(task(id, agent, (id % 3) as u8, id / 3, &deps));
    }
    for policy in [Policy::Fifo, Policy::Priority] {
        let max = Some(700);
        let mut s = sched(policy, max);
        let mut m = model::Model::new(policy, max);
        m.check_cycles = false; // deps point to smaller (seq, id): acyclic
        for t in &tasks {
            s.push(t.clone()).unwrap();
            m.push(t.clone());
        }
        for i in 0..8 {
            let got = tick(&mut s);
            assert_eq!(Ok(got), m.tick(), "tick {i}");
        }
        assert!(s.is_empty());
    }
}
