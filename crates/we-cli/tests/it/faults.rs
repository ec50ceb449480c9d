//! Fault injection and supervision, end to end: the same plan and seed give
//! the same faults, recoveries and trace across runs and worker counts; each
//! restart policy does what docs/FAULTS.md says.

use crate::{agents_dir, dev_key};
use std::path::Path;
use we_core::{FaultKind, TickRecord};
use we_runtime::{Error as RtError, RunOptions, RunSummary, Scenario};

const N: u32 = 40;

/// Scenario text: a ring of `N` with `extra` TOML (fault plan, supervision).
fn ring_text(ticks: u64, extra: &str) -> String {
    format!(
        "seed = 3\nticks = {ticks}\n[security]\ntrusted_keys = [{:?}]\n{extra}\n[[agents]]\nname = \"ring\"\nmodule = \"ring.wasm\"\ncount = {N}\n",
        dev_key()
    )
}

/// A ring of `N` with `extra` TOML (fault plan, supervision).
fn ring_scenario(ticks: u64, extra: &str) -> Scenario {
    Scenario::parse(
        "fault-test",
        ring_text(ticks, extra).as_bytes(),
        agents_dir(),
    )
    .unwrap()
}

/// Runs with a trace (every commit split over two threads when there are
/// two or more workers); returns the summary and every record.
fn traced(s: Scenario, workers: usize, dir: &Path) -> (RunSummary, Vec<TickRecord>) {
    let path = dir.join(format!("w{workers}-{}.trace", rand_name()));
    let mut rt = we_cli::build(
        s,
        RunOptions {
            workers: Some(workers),
            split_commit_min: Some(0),
            ..RunOptions::default()
        },
    )
    .unwrap();
    we_cli::record_to(&mut rt, &path, we_replay::FsyncPolicy::Never).unwrap();
    let summary = rt.run(|_| {}).unwrap();
    let records = we_replay::TraceReader::open(&path)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    // Every faulty run replays to the same chain.
    let out =
        we_cli::verify_trace(&path, we_cli::InferenceMode::Recorded, None, None, None).unwrap();
    assert_eq!(out.chain_head, summary.chain_head);
    (summary, records)
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const STORM: &str = r#"
[faults]
seed = 5
[[faults.trap]]
probability = 0.02
[[faults.message]]
action = "drop"
probability = 0.05
[[faults.message]]
action = "delay"
delay_ticks = 2
probability = 0.05
[[faults.message]]
action = "duplicate"
probability = 0.05

[[supervision]]
group = "ring"
on_fault = "restart"
backoff_ticks = 1
max_restarts = 100
window_ticks = 1000
"#;

#[test]
fn same_plan_and_seed_give_identical_traces_across_runs_and_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = traced(ring_scenario(40, STORM), 1, dir.path());
    for kind in ["trap", "drop", "delay", "duplicate"] {
        assert!(
            a.injected.get(kind).copied().unwrap_or(0) > 0,
            "no {kind}: {:?}",
            a.injected
        );
    }
    assert!(a.restarts > 0);
    assert!(
        ra.iter()
            .any(|r| r.events.iter().any(|e| e.starts_with("drop ")))
    );
    assert!(
        ra.iter()
            .any(|r| r.events.iter().any(|e| e.starts_with("restart agent")))
    );
    for workers in [1, 2, 3] {
        let (b, rb) = traced(ring_scenario(40, STORM), workers, dir.path());
        assert_eq!(a.chain_head, b.chain_head, "W={workers}");
        assert_eq!(ra, rb, "W={workers}");
        assert_eq!(a.injected, b.injected);
        assert_eq!(a.faults, b.faults);
    }
    // Another fault seed: other faults, another chain.
    let (c, _) = traced(
        ring_scenario(40, &STORM.replace("seed = 5", "seed = 6")),
        2,
        dir.path(),
    );
    assert_ne!(a.chain_head, c.chain_head);
    assert_ne!(a.faults, c.faults);
}

#[test]
fn restart_gives_a_new_generation_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let plan = r#"
[[faults.trap]]
agents = "3"
tick = 5
[[faults.trap]]
agents = "3"
tick = 12
[[supervision]]
group = "ring"
on_fault = "restart"
backoff_ticks = 2
"#;
    let (s, records) = traced(ring_scenario(20, plan), 2, dir.path());
    let faults: Vec<(u32, u32, u64, FaultKind)> = s
        .faults
        .iter()
        .map(|(a, t, k)| (a.index, a.generation, *t, k.clone()))
        .collect();
    // The first fault is generation 0; the restarted agent is generation 1.
    assert_eq!(
        faults,
        vec![
            (3, 0, 5, FaultKind::Injected),
            (3, 1, 12, FaultKind::Injected)
        ]
    );
    assert_eq!(s.restarts, 2);
    let events = |t: usize| records[t].events.clone();
    assert_eq!(events(5), vec!["restart agent 3 due at tick 8".to_string()]);
    assert_eq!(events(8), vec!["restart agent 3 g1".to_string()]);
    assert_eq!(events(15), vec!["restart agent 3 g2".to_string()]);
    // Agent 2 sends to 3 every tick: what it sent while 3 was down (ticks
    // 6, 7, 13, 14) is refused, and the message committed to 3 in the tick it
    // died (5, 12) is discarded; all six are dead letters, none is lost.
    assert_eq!(s.messages_refused, 4);
    assert_eq!(s.dead_letters, 6);
}

#[test]
fn stop_leaves_the_agent_down_and_counts_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let plan = "[[faults.trap]]\nagents = \"10\"\ntick = 2\n[[supervision]]\ngroup = \"ring\"\non_fault = \"stop\"\n";
    let (s, records) = traced(ring_scenario(8, plan), 1, dir.path());
    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.restarts, 0);
    assert_eq!(records[2].events, vec!["stop agent 10".to_string()]);
    // Agent 9 sends to 10 at every tick: the copy committed at tick 2 is
    // discarded, those of ticks 3..=7 are refused; six dead letters.
    assert_eq!(s.messages_refused, 5);
    assert_eq!(s.dead_letters, 6);
}

#[test]
fn escalate_restarts_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let plan = "[[faults.trap]]\nagents = \"7\"\ntick = 4\n[[supervision]]\ngroup = \"ring\"\non_fault = \"escalate\"\nbackoff_ticks = 0\n";
    let (s, records) = traced(ring_scenario(10, plan), 2, dir.path());
    assert_eq!(s.restarts, u64::from(N));
    assert_eq!(
        records[4].events,
        vec!["escalate agent 7: restart group `ring` due at tick 5".to_string()]
    );
    assert_eq!(records[5].events.len(), N as usize);
    assert!(records[5].events.iter().all(|e| e.ends_with(" g1")));
}

#[test]
fn a_restart_storm_hits_the_limit_then_escalates_then_aborts() {
    let plan = r#"
[[faults.trap]]
agents = "3"
from_tick = 2
[[supervision]]
group = "ring"
on_fault = "restart"
max_restarts = 2
window_ticks = 50
on_limit = "escalate"
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storm.trace");
    let mut rt = we_cli::build(ring_scenario(30, plan), RunOptions::default()).unwrap();
    we_cli::record_to(&mut rt, &path, we_replay::FsyncPolicy::Never).unwrap();
    let err = rt.run(|_| {}).unwrap_err();
    // A restarted agent runs `agent_init` in its restart tick and the trap
    // rule fires again there. Faults at 2, 3 (restarts at 3, 4), 4 (agent
    // limit: escalates, group restart at 5), 5 (second group restart at 6),
    // 6: the group limit is spent, the run aborts.
    let RtError::Supervision { tick, reason } = &err else {
        panic!("expected a supervision abort, got {err}");
    };
    assert_eq!(*tick, 6, "{reason}");
    assert!(
        reason.contains("group `ring`") && reason.contains("agent 3"),
        "{reason}"
    );
    // Everything up to the abort is recorded and readable.
    let records: Vec<TickRecord> = we_replay::TraceReader::open(&path)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(records.last().unwrap().tick.0, 6);
    assert!(records[6].events.iter().any(|e| e.starts_with("abort: ")));

    // With on_limit = "stop" the agent stays down after its two restarts.
    let stop = plan.replace("on_limit = \"escalate\"", "on_limit = \"stop\"");
    let (s, _) = traced(ring_scenario(30, &stop), 1, dir.path());
    assert_eq!(s.restarts, 2);
    assert_eq!(s.faults.len(), 3);
}

#[test]
fn injected_model_load_failures_reach_the_agent_as_errors() {
    let text = format!(
        "seed = 1\nticks = 6\n[security]\ntrusted_keys = [{key:?}]\n[inference]\nregistry = {reg:?}\npreload = [\"policy\"]\n[inference.postprocess]\npolicy = \"argmax\"\n[[faults.model]]\nmodel = \"policy\"\ntick = 2\n[[agents]]\nname = \"infer\"\nmodule = \"infer.wasm\"\ncount = 8\n",
        key = dev_key(),
        reg = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/models/models.toml"),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Scenario::parse("model-fault", text.as_bytes(), agents_dir()).unwrap();
    let (a, records) = traced(s.clone(), 1, dir.path());
    assert_eq!(a.injected.get("model"), Some(&8));
    let failed = &records[2];
    assert_eq!(failed.events.len(), 8);
    assert!(failed.inference.iter().all(|r| {
        r.outcome
            .as_ref()
            .is_err_and(|e| e.contains("injected fault"))
    }));
    let (b, _) = traced(s, 2, dir.path());
    assert_eq!(a.chain_head, b.chain_head);
}

#[test]
fn bad_fault_plans_and_supervision_rules_are_named() {
    for (extra, needle) in [
        (
            "[[faults.trap]]\nprobability = 2.0\n",
            "faults.trap[0].probability",
        ),
        (
            "[[faults.message]]\naction = \"delay\"\n",
            "faults.message[0].delay_ticks",
        ),
        (
            "[[supervision]]\ngroup = \"nope\"\n",
            "supervision[0].group",
        ),
        (
            "[[supervision]]\ngroup = \"ring\"\nwindow_ticks = 0\n",
            "supervision[0].window_ticks",
        ),
    ] {
        let e = Scenario::parse("fault-test", ring_text(3, extra).as_bytes(), agents_dir())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fault-test"), "{e}");
        assert!(e.contains(needle), "{extra}: {e}");
    }
}
