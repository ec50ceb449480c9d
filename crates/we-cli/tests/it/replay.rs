//! Replay: a recorded run verifies; a deliberately different agent is caught at
//! the right tick and agent; a run killed with SIGKILL leaves a trace that
//! verifies up to its last whole record; the determinism self-check.

use crate::{Group, agents_dir, scenario};
use std::time::{Duration, Instant};
use we_cli::InferenceMode;
use we_replay::FsyncPolicy;
use we_runtime::{RunOptions, Scenario};

fn record(s: Scenario, path: &std::path::Path, workers: usize) -> we_runtime::RunSummary {
    let mut rt = we_cli::build(
        s,
        RunOptions {
            workers: Some(workers),
            ..RunOptions::default()
        },
    )
    .unwrap();
    we_cli::record_to(&mut rt, path, FsyncPolicy::Never).unwrap();
    rt.run(|_| {}).unwrap()
}

fn nondet(switch: u8, at_tick: u64) -> Scenario {
    let config = format!(
        "{switch:02x}{}",
        at_tick
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let groups = [
        crate::group("ring", 5),
        Group {
            module: "nondet",
            count: 1,
            config_hex: &config,
        },
        crate::group("ring", 4),
    ];
    scenario(&groups, 12, "")
}

#[test]
fn a_recorded_run_verifies_with_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("ring.trace");
    let summary = record(scenario(&[crate::group("ring", 50)], 30, ""), &trace, 2);
    for workers in [1, 3] {
        let out = we_cli::verify_trace(
            &trace,
            InferenceMode::Recorded,
            Some(workers),
            Some(&agents_dir()),
            None,
        )
        .unwrap();
        assert_eq!(out.ticks, 30);
        assert_eq!(out.chain_head, summary.chain_head);
        assert_eq!(out.workload_digest, summary.workload_digest);
        assert_eq!(out.torn_tail, None);
    }
}

#[test]
fn a_diverging_agent_is_named_with_its_first_tick() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("nondet.trace");
    record(nondet(0, 7), &trace, 1);
    // The same run replays cleanly.
    we_cli::verify_trace(
        &trace,
        InferenceMode::Recorded,
        Some(2),
        None,
        Some(nondet(0, 7)),
    )
    .unwrap();
    // The agent deviating at tick 7 (agent 5, between the rings) is caught there.
    let err = we_cli::verify_trace(
        &trace,
        InferenceMode::Recorded,
        Some(2),
        None,
        Some(nondet(1, 7)),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("diverged at tick 7, agent 5"), "{err}");
    assert!(
        err.contains("send to"),
        "the actual effects are shown: {err}"
    );
}

#[test]
fn a_trace_tampered_in_the_middle_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("ring.trace");
    record(scenario(&[crate::group("ring", 8)], 10, ""), &trace, 1);
    let mut bytes = std::fs::read(&trace).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&trace, &bytes).unwrap();
    let err = we_cli::verify_trace(
        &trace,
        InferenceMode::Recorded,
        Some(1),
        Some(&agents_dir()),
        None,
    )
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("chain hash mismatch") && text.contains("at byte"),
        "{text}"
    );
}

/// `we run --trace` killed with SIGKILL mid-run: the file opens and verifies up
/// to its last whole record.
#[test]
#[cfg(unix)]
fn a_killed_run_leaves_a_trace_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let scenario_path = dir.path().join("long.toml");
    let ring = agents_dir().join("ring.wasm");
    std::fs::write(
        &scenario_path,
        format!(
            "seed = 3\nticks = 100000000\n[security]\ntrusted_keys = [{key:?}]\n[[agents]]\nname = \"ring\"\nmodule = {ring:?}\ncount = 200\n",
            key = crate::dev_key()
        ),
    )
    .unwrap();
    let trace = dir.path().join("killed.trace");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_we"))
        .args(["run", "--quiet", "--fsync", "never", "--trace"])
        .arg(&trace)
        .arg(&scenario_path)
        .spawn()
        .unwrap();
    let began = Instant::now();
    // Wait until a good number of ticks are on disk (each record is ~1.7 KB).
    while std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0) < 200_000 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the run did not start writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = we_cli::verify_trace(&trace, InferenceMode::Recorded, Some(1), None, None).unwrap();
    assert!(out.ticks > 50, "only {} ticks verified", out.ticks);
}

#[test]
fn determinism_self_check_passes_and_counts_ticks() {
    let s = scenario(&[crate::group("gossip", 33)], 9, "");
    assert_eq!(we_cli::check_determinism(&s, 3, false).unwrap(), 9);
}
