//! Property tests: the scheduler against the reference model, order independence
//! of pushes, and the invariants (dependencies, budget, nothing lost or doubled).
//!
//! A failing case is shrunk and printed by proptest; its seed is saved under
//! `tests/it/proptest-regressions/` in this crate and replayed first next time.

use crate::model::Model;
use crate::task;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use we_core::Task;
use we_sched::{Policy, SchedConfig, Scheduler};

const TICKS: usize = 8;

/// A generated run: tasks, the tick before which each is pushed, and the config.
#[derive(Clone, Debug)]
struct Run {
    policy: Policy,
    max: Option<u32>,
    /// `(push before tick, task)`, in push order.
    pushes: Vec<(usize, Task)>,
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::Fifo), Just(Policy::Priority)]
}

/// Tasks with distinct ids (`0..3n`, shuffled), few agents so that rounds
/// matter, colliding seqs and priorities, and deps that may name queued,
/// dispatched, never-pushed or the task's own id. `dep_chance` is in percent.
fn run(max_tasks: usize, dep_chance: u32) -> impl Strategy<Value = Run> {
    (policy(), prop::option::of(0u32..6), 0..=max_tasks).prop_flat_map(move |(policy, max, n)| {
        let ids = Just((0..3 * n as u64).collect::<Vec<_>>()).prop_shuffle();
        let specs = prop::collection::vec(
            (
                0u32..5,
                0u8..3,
                0u64..6,
                0usize..3,
                prop::collection::vec((0u32..100, 0usize..8, 0u64..(3 * n as u64 + 4)), 0..3),
            ),
            n,
        );
        (Just(policy), Just(max), ids, specs).prop_map(move |(policy, max, ids, specs)| {
            // Most deps name a task of the run (queued or dispatched by then);
            // one in eight names any id, usually one never pushed.
            let tasks = specs.len().max(1);
            let pushes = specs
                .iter()
                .zip(&ids)
                .map(|((agent, prio, seq, before, deps), &id)| {
                    let deps: Vec<u64> = deps
                        .iter()
                        .filter(|&&(p, _, _)| p < dep_chance)
                        .map(|&(_, pick, raw)| {
                            if pick == 0 {
                                raw
                            } else {
                                ids[(raw as usize) % tasks]
                            }
                        })
                        .collect();
                    (*before, task(id, *agent, *prio, *seq, &deps))
                })
                .collect();
            Run {
                policy,
                max,
                pushes,
            }
        })
    })
}

/// Per tick: the dispatched ids, or the cycle error's ids (then the run stops).
fn run_sched(run: &Run) -> Vec<Result<Vec<u64>, Vec<u64>>> {
    let mut s = Scheduler::new(SchedConfig {
        policy: run.policy,
        max_tasks_per_tick: run.max,
    });
    let mut ticks = Vec::new();
    for t in 0..TICKS {
        for (_, task) in run.pushes.iter().filter(|(b, _)| *b == t) {
            s.push(task.clone()).unwrap();
        }
        let mut out = Vec::new();
        match s.dispatch_tick(&mut out) {
            Ok(()) => ticks.push(Ok(out.iter().map(|t| t.id.0).collect())),
            Err(e) => {
                let ids = e.cycle().expect("only cycles fail a tick");
                assert!(out.is_empty());
                ticks.push(Err(ids.iter().map(|i| i.0).collect()));
                break;
            }
        }
    }
    ticks
}

fn run_model(run: &Run) -> Vec<Result<Vec<u64>, Vec<u64>>> {
    let mut m = Model::new(run.policy, run.max);
    let mut ticks = Vec::new();
    for t in 0..TICKS {
        for (_, task) in run.pushes.iter().filter(|(b, _)| *b == t) {
            m.push(task.clone());
        }
        let r = m.tick();
        let stop = r.is_err();
        ticks.push(r);
        if stop {
            break;
        }
    }
    ticks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The scheduler gives exactly the model's order, cycles included (about a
    /// third of these runs end in a cycle).
    #[test]
    fn matches_the_reference_model(run in run(24, 25)) {
        prop_assert_eq!(run_sched(&run), run_model(&run));
    }

    /// The same with few dependencies, so that most runs go all the way.
    #[test]
    fn matches_the_reference_model_with_few_deps(run in run(32, 4)) {
        prop_assert_eq!(run_sched(&run), run_model(&run));
    }

    /// Pushing the same tasks (same ticks, same seqs) in another order changes nothing.
    #[test]
    fn order_is_a_function_of_queue_contents(
        (run, shuffled) in run(24, 15).prop_flat_map(|r| {
            let pushes = Just(r.pushes.clone()).prop_shuffle();
            (Just(r), pushes)
        })
    ) {
        let other = Run { pushes: shuffled, ..run.clone() };
        prop_assert_eq!(run_sched(&run), run_sched(&other));
    }

    /// Dependencies are never violated, the budget holds, one agent's tasks leave
    /// in (seq, id) order, and every task is either dispatched once or still queued.
    #[test]
    fn invariants_hold(run in run(40, 20)) {
        let mut s = Scheduler::new(SchedConfig {
            policy: run.policy,
            max_tasks_per_tick: run.max,
        });
        let by_id: BTreeMap<u64, &Task> =
            run.pushes.iter().map(|(_, t)| (t.id.0, t)).collect();
        let mut dispatched: BTreeSet<u64> = BTreeSet::new();
        let mut last_of_agent: BTreeMap<u32, (u64, u64, usize)> = BTreeMap::new();
        let mut pushed = 0usize;
        // Extra ticks drain what the budget held back.
        for t in 0..TICKS * 8 {
            for (_, task) in run.pushes.iter().filter(|(b, _)| *b == t) {
                s.push(task.clone()).unwrap();
                pushed += 1;
            }
            let mut out = Vec::new();
            if s.dispatch_tick(&mut out).is_err() {
                break;
            }
            if let Some(max) = run.max {
                prop_assert!(out.len() <= max as usize);
            }
            for task in &out {
                prop_assert_eq!(by_id[&task.id.0], task);
                for d in &task.deps {
                    prop_assert!(dispatched.contains(&d.0), "{} before its dep {}", task.id, d);
                }
                prop_assert!(dispatched.insert(task.id.0), "{} twice", task.id);
                if let Some(&(seq, id, at)) = last_of_agent.get(&task.agent.index) {
                    // A smaller (seq, id) may only follow if it was pushed after
                    // the previous task of its agent had left.
                    let pushed_at = run.pushes.iter().find(|(_, p)| p.id == task.id).map(|p| p.0);
                    prop_assert!((seq, id) < (task.seq, task.id.0) || pushed_at > Some(at));
                }
                last_of_agent.insert(task.agent.index, (task.seq, task.id.0, t));
            }
            prop_assert_eq!(dispatched.len() + s.len(), pushed);
        }
        for id in &dispatched {
            prop_assert!(s.is_dispatched(we_core::TaskId(*id)));
        }
    }
}
