//! Shared regions through the whole runtime: a reader never sees a write of the
//! same tick, visibility is the same for any worker count, a non-owner write is
//! refused and reported, a handle to a released region is refused as stale.

use crate::{Group, scenario};
use we_runtime::RunOptions;

/// Runs writer (agent 0) and readers (agents 1..=3); returns the summary and the
/// readers' log lines.
fn run(
    writer_config: &str,
    reader_config: &str,
    workers: usize,
) -> (we_runtime::RunSummary, Vec<String>) {
    let groups = [
        Group {
            module: "region-writer",
            count: 1,
            config_hex: writer_config,
        },
        Group {
            module: "region-reader",
            count: 3,
            config_hex: reader_config,
        },
    ];
    let mut rt = we_cli::build(
        scenario(&groups, 8, ""),
        RunOptions {
            workers: Some(workers),
            log_tail_lines: 1000,
            ..RunOptions::default()
        },
    )
    .unwrap();
    let summary = rt.run(|_| {}).unwrap();
    (summary, rt.log_tail().map(String::from).collect())
}

#[test]
fn readers_see_the_previous_tick_for_any_worker_count() {
    let (_, reference) = run("", "", 1);
    for t in 0..8u64 {
        // Created in init with zeros; written with t at tick t, visible at t + 1.
        let expected = t.saturating_sub(1);
        for agent in 1..=3 {
            let line = format!("t={t} agent={agent}: tick {t} saw {expected}");
            assert!(
                reference.contains(&line),
                "missing `{line}` in {reference:?}"
            );
        }
    }
    for workers in [2, 3, 4] {
        let (_, lines) = run("", "", workers);
        assert_eq!(lines, reference, "W={workers}");
    }
}

#[test]
fn a_non_owner_write_is_refused_and_reported() {
    let (summary, lines) = run("", "01", 2);
    assert_eq!(summary.region_refusals, 3, "one refused write per reader");
    assert!(
        lines
            .iter()
            .any(|l| l
                .contains("t=3 agent=1: region write of 7 refused: not the owner (agent 0 is)")),
        "{lines:?}"
    );
    // The intruders changed nothing: tick 4 still sees the writer's 3.
    assert!(
        lines.iter().any(|l| l == "t=4 agent=2: tick 4 saw 3"),
        "{lines:?}"
    );
}

#[test]
fn a_released_region_is_stale_for_old_handles() {
    // The writer traps at tick 5: its region goes with it.
    let config: String = 5u64
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (summary, lines) = run(&config, "", 2);
    assert_eq!(summary.faults.len(), 1);
    assert!(
        lines.iter().any(|l| l == "t=5 agent=1: tick 5 saw 4"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "t=6 agent=1: tick 6 stale"),
        "{lines:?}"
    );
}
