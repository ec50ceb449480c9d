//! Recording off the tick loop: `Runtime::run` digests and traces each tick on
//! a thread of its own, one tick behind; `Runtime::step` on its own records on
//! the orchestrator's thread. Both must leave the same bytes, and a run must
//! record every tick it committed, whatever stops it.

use crate::{agents_dir, group, scenario};
use std::sync::{Arc, Mutex};
use we_core::{BoxError, TickRecord, TraceHeader, TraceSink};
use we_replay::FsyncPolicy;
use we_runtime::{Error, RunOptions, Runtime, Scenario};

fn mixed() -> Scenario {
    scenario(&[group("ring", 30), group("gossip", 41)], 25, "")
}

fn runtime(s: Scenario, workers: usize) -> Runtime {
    runtime_recording(s, workers, None, None)
}

/// With `wait` and `on_worker`, [`RunOptions::record_wait_bytes`] and
/// [`RunOptions::record_on_worker`].
fn runtime_recording(
    s: Scenario,
    workers: usize,
    wait: Option<usize>,
    on_worker: Option<bool>,
) -> Runtime {
    we_cli::build(
        s,
        RunOptions {
            workers: Some(workers),
            record_wait_bytes: wait,
            record_on_worker: on_worker,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn run_and_step_by_step_write_the_same_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (threaded, here) = (dir.path().join("run.trace"), dir.path().join("step.trace"));

    let mut rt = runtime(mixed(), 2);
    we_cli::record_to(&mut rt, &threaded, FsyncPolicy::Never).unwrap();
    let by_run = rt.run(|_| {}).unwrap();

    let mut rt = runtime(mixed(), 2);
    we_cli::record_to(&mut rt, &here, FsyncPolicy::Never).unwrap();
    rt.start().unwrap();
    let mut heads = Vec::new();
    while !rt.finished() {
        rt.step().unwrap();
        heads.push(rt.summary().chain_head);
    }
    rt.shutdown().unwrap();
    let by_step = rt.summary().clone();

    assert_eq!(by_run.ticks, 25);
    assert_eq!(by_run.chain_head, by_step.chain_head);
    assert_eq!(by_run.workload_digest, by_step.workload_digest);
    assert_ne!(by_run.chain_head, [0; 32]);
    // Step by step, the summary follows the chain tick by tick.
    assert_eq!(heads.len(), 25);
    assert_eq!(heads.last(), Some(&by_step.chain_head));
    assert_ne!(heads[0], heads[1]);
    let (a, b) = (
        std::fs::read(&threaded).unwrap(),
        std::fs::read(&here).unwrap(),
    );
    assert!(a.len() > 10_000, "trace of {} bytes", a.len());
    assert!(
        a == b,
        "the two traces differ ({} and {} bytes)",
        a.len(),
        b.len()
    );
    // And with the tick loop waiting for every tick's recording, and
    // recorded on a pool worker's thread between its phases or on a thread
    // of its own (whichever the default was above), with and without the
    // wait.
    let cases = [
        (None, Some(0)),
        (Some(true), None),
        (Some(false), None),
        (Some(true), Some(0)),
    ];
    for (on_worker, wait) in cases {
        let other = dir
            .path()
            .join(format!("on-worker-{on_worker:?}-{wait:?}.trace"));
        let mut rt = runtime_recording(mixed(), 2, wait, on_worker);
        we_cli::record_to(&mut rt, &other, FsyncPolicy::Never).unwrap();
        let by_other = rt.run(|_| {}).unwrap();
        assert_eq!(by_other.chain_head, by_run.chain_head);
        assert!(
            std::fs::read(&other).unwrap() == a,
            "the trace recorded on_worker {on_worker:?}, wait {wait:?} differs"
        );
    }
    // And the thread-recorded trace replays.
    let out = we_cli::verify_trace(
        &threaded,
        we_cli::InferenceMode::Recorded,
        Some(1),
        Some(&agents_dir()),
        None,
    )
    .unwrap();
    assert_eq!(out.chain_head, by_run.chain_head);
}

/// A sink that fails on one tick and notes what it was given, and on which
/// thread.
struct FailingSink {
    fail_at: u64,
    seen: Arc<Mutex<Vec<u64>>>,
    threads: Arc<Mutex<Vec<String>>>,
}

impl TraceSink for FailingSink {
    fn begin(&mut self, _header: &TraceHeader) -> Result<(), BoxError> {
        Ok(())
    }

    fn record(&mut self, record: &TickRecord) -> Result<[u8; 32], BoxError> {
        self.seen.lock().unwrap().push(record.tick.0);
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().unwrap().push(thread);
        if record.tick.0 == self.fail_at {
            return Err("disk full".into());
        }
        Ok(*blake3::hash(&record.tick.0.to_le_bytes()).as_bytes())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_failing_sink_stops_the_run_at_its_tick_with_every_earlier_tick_recorded() {
    let cases = [
        (1, None, None),
        (2, None, Some(false)),
        (2, None, Some(true)),
        (2, Some(0), Some(false)),
        (2, Some(0), Some(true)),
    ];
    for (workers, wait, on_worker) in cases {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let mut rt = runtime_recording(mixed(), workers, wait, on_worker);
        rt.set_trace(Box::new(FailingSink {
            fail_at: 7,
            seen: Arc::clone(&seen),
            threads: Arc::clone(&threads),
        }));
        let err = rt.run(|_| {}).unwrap_err();
        assert!(
            matches!(&err, Error::Trace { tick: 7, reason } if reason.contains("disk full")),
            "{err}"
        );
        // Ticks 0..=7 were handed to the sink in order, and nothing after
        // the failure: the chain stops where the sink failed.
        assert_eq!(*seen.lock().unwrap(), (0..=7).collect::<Vec<u64>>());
        // Every tick was recorded where the options said.
        let expected = match on_worker {
            Some(true) => "we-worker-1",
            _ => "we-recorder",
        };
        assert!(
            threads.lock().unwrap().iter().all(|t| t == expected),
            "workers {workers}, on_worker {on_worker:?}: recorded on {:?}",
            threads.lock().unwrap()
        );
        // The summary's head is that of the last tick recorded (6).
        assert_eq!(
            rt.summary().chain_head,
            *blake3::hash(&6u64.to_le_bytes()).as_bytes()
        );
    }
}
