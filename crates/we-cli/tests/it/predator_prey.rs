//! The flagship demo (`fixtures/scenarios/predator-prey.toml`): a 1,153-agent
//! grid world with batched inference, a shared region and pack topics gives the
//! same replay-verified chain head with one worker and with two.

use crate::agents_dir;
use std::path::PathBuf;
use we_cli::{InferenceMode, hex, verify_trace};
use we_replay::FsyncPolicy;
use we_runtime::{RunOptions, RunSummary, Scenario};

const TICKS: u64 = 100;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo's scenario as `cargo xtask run predator-prey` runs it (modules
/// from `build/agents`), shortened to `TICKS`.
fn scenario() -> Scenario {
    // The agents must have been built where the scenario looks for them.
    agents_dir();
    let dir = root().join("fixtures/scenarios");
    let text = std::fs::read_to_string(dir.join("predator-prey.toml")).unwrap();
    assert!(text.contains("ticks = 300"), "the demo runs 300 ticks");
    let text = text.replace("ticks = 300", &format!("ticks = {TICKS}"));
    Scenario::parse("predator-prey (test)", text.as_bytes(), dir).unwrap()
}

/// Runs with a trace, verifies the trace by replay; returns the summary and
/// the replay's chain head.
fn run_and_verify(workers: usize) -> (RunSummary, [u8; 32]) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("predator-prey.trace");
    // Every commit split over two threads at W >= 2; the replay commits
    // serially (few messages a tick), so it checks the split commit.
    let options = RunOptions {
        workers: Some(workers),
        log_tail_lines: 64,
        split_commit_min: Some(0),
        ..RunOptions::default()
    };
    let mut runtime = we_cli::build(scenario(), options).unwrap();
    we_cli::record_to(&mut runtime, &trace, FsyncPolicy::Never).unwrap();
    let summary = runtime.run(|_| {}).unwrap();
    drop(runtime);
    let verified = verify_trace(&trace, InferenceMode::Recorded, Some(workers), None, None)
        .unwrap_or_else(|e| panic!("replay of W={workers}: {e:#}"));
    assert_eq!(verified.ticks, TICKS);
    assert_eq!(
        hex(&verified.chain_head),
        hex(&summary.chain_head),
        "W={workers}: the replay ends on the run's chain head"
    );
    (summary, verified.chain_head)
}

#[test]
fn same_replay_verified_chain_head_for_one_and_two_workers() {
    let (one, head_one) = run_and_verify(1);
    assert_eq!(one.agents, 1 + 128 + 1024);
    assert!(one.faults.is_empty(), "faults: {:?}", one.faults);
    assert_eq!(
        one.inferences,
        128 * TICKS,
        "one request per predator per tick"
    );
    assert_eq!(one.region_refusals, 0);
    assert!(one.messages_delivered > 1000 * TICKS);
    let (two, head_two) = run_and_verify(2);
    assert_eq!(two.workers, 2);
    assert_eq!(hex(&head_one), hex(&head_two), "chain head, W=1 vs W=2");
    assert_eq!(
        hex(&one.workload_digest),
        hex(&two.workload_digest),
        "digest, W=1 vs W=2"
    );
}
