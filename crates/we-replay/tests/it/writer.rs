//! The writer: ordering rules, fsync policies, appending, and a process killed
//! while writing.

use crate::common::*;
use std::time::{Duration, Instant};
use we_core::{Tick, TickRecord, TraceSink};
use we_replay::{Error, FsyncPolicy, RecoverAction, TraceReader, TraceWriter, recover};

#[test]
fn every_fsync_policy_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, policy) in [
        FsyncPolicy::Never,
        FsyncPolicy::EveryTick,
        FsyncPolicy::EveryN(3),
        FsyncPolicy::OnFinish,
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("{i}.trace"));
        let mut w = TraceWriter::create(&path, policy).unwrap();
        w.write_header(&sample_header()).unwrap();
        for r in sample_records() {
            w.write_record(&r).unwrap();
        }
        w.close().unwrap();
        files.push(std::fs::read(&path).unwrap());
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]));
    assert!(matches!(
        TraceWriter::create(dir.path().join("x"), FsyncPolicy::EveryN(0)),
        Err(Error::InvalidPolicy { .. })
    ));
}

#[test]
fn the_writer_refuses_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let mut w = TraceWriter::create(&path, FsyncPolicy::Never).unwrap();
    let r = sample_records();
    assert!(matches!(w.write_record(&r[0]), Err(Error::State { .. })));
    w.write_header(&sample_header()).unwrap();
    assert!(matches!(
        w.write_header(&sample_header()),
        Err(Error::State { .. })
    ));
    let head = w.write_record(&r[1]).unwrap();
    // Ticks must strictly increase; a refused record changes nothing.
    let err = w.write_record(&r[0]).unwrap_err();
    assert!(
        matches!(err, Error::TickOrder { record: 1, tick: 1, previous: 2, offset } if offset == w.bytes()),
        "{err}"
    );
    assert!(matches!(
        w.write_record(&r[1]),
        Err(Error::TickOrder { .. })
    ));
    assert_eq!(w.chain_head(), head);
    assert_eq!(w.record_count(), 1);
    w.write_record(&r[2]).unwrap();
    w.close().unwrap();
    assert!(matches!(w.write_record(&r[3]), Err(Error::State { .. })));
    assert_eq!(read_all(&path).unwrap(), vec![r[1].clone(), r[2].clone()]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), w.bytes());
}

#[test]
fn appending_needs_the_same_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let records = sample_records();
    write_trace(&path, &sample_header(), &records[..2]);
    let mut w = TraceWriter::append_to(&path, FsyncPolicy::OnFinish).unwrap();
    assert!(matches!(
        w.write_record(&records[2]),
        Err(Error::State { .. })
    ));
    let mut other = sample_header();
    other.seed += 1;
    assert!(matches!(
        w.write_header(&other),
        Err(Error::HeaderMismatch { .. })
    ));
    let sink: &mut dyn TraceSink = &mut w;
    sink.begin(&sample_header()).unwrap();
    // The appended trace still refuses ticks that do not follow.
    assert!(sink.record(&records[1]).is_err());
    for r in &records[2..] {
        sink.record(r).unwrap();
    }
    sink.finish().unwrap();
    assert_eq!(read_all(&path).unwrap(), records);
}

/// The child half of [`a_killed_writer_leaves_a_recoverable_trace`]: writes
/// records of varying size until killed (or a bound is reached).
#[test]
#[ignore = "run as a child process by a_killed_writer_leaves_a_recoverable_trace"]
fn child_writer_loop() {
    let Some(path) = std::env::var_os("WE_REPLAY_CHILD_TRACE") else {
        return;
    };
    let mut w = TraceWriter::create(&path, FsyncPolicy::Never).unwrap();
    w.write_header(&sample_header()).unwrap();
    for tick in 1..200_000u64 {
        // Mostly small records, now and then a 400 KB one, so that the kill
        // can land inside a large write.
        let n = if tick % 16 == 0 {
            50_000
        } else {
            (tick % 97) as usize
        };
        let r = TickRecord {
            tick: Tick(tick),
            agent_digests: (0..n as u64).collect(),
            ..TickRecord::default()
        };
        w.write_record(&r).unwrap();
        if w.bytes() > 64 << 20 {
            break;
        }
    }
    // Bounded: the parent kills this process within seconds.
    std::thread::sleep(Duration::from_secs(60));
}

/// A writer process killed with SIGKILL (TerminateProcess on Windows) mid-run
/// leaves a trace whose whole records all verify; at worst the last frame is
/// torn.
#[test]
fn a_killed_writer_leaves_a_recoverable_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.trace");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "writer::child_writer_loop",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env("WE_REPLAY_CHILD_TRACE", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&path).map_or(0, |m| m.len()) < 4 << 20 {
        assert!(Instant::now() < deadline, "the child wrote nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let report = recover(&path, RecoverAction::Truncate).unwrap();
    eprintln!(
        "killed writer: {} whole records, {} of {} bytes kept, torn tail {:?}",
        report.records, report.valid_bytes, report.file_bytes, report.torn
    );
    assert!(report.records > 10, "{report:?}");
    let mut reader = TraceReader::open(&path).unwrap();
    let mut tick = 0;
    for r in reader.by_ref() {
        let r = r.unwrap();
        assert_eq!(r.tick.0, tick + 1);
        tick = r.tick.0;
    }
    assert_eq!(reader.record_count(), report.records);
    assert_eq!(reader.chain_head(), report.chain_head);
}
