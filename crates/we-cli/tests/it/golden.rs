//! Golden traces: every `fixtures/golden/<name>.toml` has a recorded
//! `<name>.trace` that must replay tick by tick, with 1 and 2 workers, on any
//! machine. `UPDATE_GOLDEN=1` re-records them and prints what changed
//! (`cargo xtask replay-verify` runs this test).

use std::path::PathBuf;
use we_cli::{InferenceMode, hex};
use we_replay::{FsyncPolicy, TraceReader};
use we_runtime::{RunOptions, Scenario};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

#[test]
fn golden_traces_replay() {
    crate::agents_dir();
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 4, "golden scenarios: {scenarios:?}");
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    for scenario in &scenarios {
        let trace = scenario.with_extension("trace");
        if update {
            let old = TraceReader::open(&trace)
                .ok()
                .and_then(|r| r.summarize().ok())
                .map(|s| hex(&s.chain_head))
                .unwrap_or_else(|| "(none)".into());
            let mut rt = we_cli::build(
                Scenario::load(scenario).unwrap(),
                RunOptions {
                    workers: Some(1),
                    ..RunOptions::default()
                },
            )
            .unwrap();
            let tmp = trace.with_extension("trace.new");
            we_cli::record_to(&mut rt, &tmp, FsyncPolicy::OnFinish).unwrap();
            let summary = rt.run(|_| {}).unwrap();
            std::fs::rename(&tmp, &trace).unwrap();
            let new = hex(&summary.chain_head);
            if old == new {
                println!("unchanged  {}  {new}", trace.display());
            } else {
                println!(
                    "CHANGED    {}\n  was      {old}\n  now      {new}",
                    trace.display()
                );
            }
            continue;
        }
        assert!(
            trace.exists(),
            "golden trace {} is missing: record it with UPDATE_GOLDEN=1 cargo xtask replay-verify",
            trace.display()
        );
        for workers in [1, 2] {
            let out =
                we_cli::verify_trace(&trace, InferenceMode::Recorded, Some(workers), None, None)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", trace.display()));
            println!(
                "verified   {} (W={workers})  {}",
                trace.display(),
                hex(&out.chain_head)
            );
            assert!(out.ticks > 0);
        }
    }
}
