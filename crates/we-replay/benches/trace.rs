//! Trace cost per tick for a large record: a tick with 10,000 per-agent
//! digests (an 80 KB body). Measures encoding plus chaining without I/O,
//! appending to a file, and reading back with full verification, against
//! blake3 over the same body bytes as the floor.
//!
//! Run: `cargo bench -p we-replay --bench trace`.

// A bench is test code: a broken setup should stop it loudly.
#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use we_core::{AgentId, FaultKind, Tick, TickRecord, TraceHeader};
use we_replay::{Chain, FsyncPolicy, TraceReader, TraceWriter, encode_record_body};

const AGENTS: u64 = 10_000;
/// Records per file in the write benchmark, so the file stays small.
const RECORDS_PER_FILE: u64 = 512;

fn header() -> TraceHeader {
    TraceHeader {
        runtime_version: "bench".into(),
        agent_count: AGENTS as u32,
        ..TraceHeader::default()
    }
}

fn record(tick: u64) -> TickRecord {
    TickRecord {
        tick: Tick(tick),
        effects_digest: [7; 32],
        workload_digest: [9; 32],
        messages: 20_000,
        agent_digests: (0..AGENTS)
            .map(|i| (i ^ tick).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect(),
        faults: vec![(AgentId::new(3), FaultKind::FuelExhausted)],
        inference: vec![],
        inputs: vec![],
        events: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let mut body = Vec::new();
    encode_record_body(&record(1), &mut body).expect("encode");
    let frame_bytes = body.len() as u64 + we_replay::FRAME_OVERHEAD;
    eprintln!(
        "record with {AGENTS} agent digests: body {} bytes, frame {frame_bytes} bytes ({:.2} bytes per agent)",
        body.len(),
        frame_bytes as f64 / AGENTS as f64
    );

    let mut group = c.benchmark_group("trace_10k_agents");
    group.throughput(Throughput::Bytes(frame_bytes));
    group.sample_size(30);

    group.bench_function(BenchmarkId::new("blake3_baseline", body.len()), |b| {
        b.iter(|| blake3::hash(black_box(&body)))
    });

    group.bench_function("encode_and_chain", |b| {
        let mut chain = Chain::start(&header()).expect("start");
        let mut tick = 0;
        let mut r = record(0);
        b.iter(|| {
            tick += 1;
            r.tick = Tick(tick);
            chain.push(black_box(&r)).expect("push")
        })
    });

    group.bench_function("write_record_fsync_never", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.trace");
        let mut r = record(0);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            // Bounded: each pass writes up to RECORDS_PER_FILE of `iters`.
            while done < iters {
                let mut w = TraceWriter::create(&path, FsyncPolicy::Never).expect("create");
                w.write_header(&header()).expect("header");
                let n = (iters - done).min(RECORDS_PER_FILE);
                let start = Instant::now();
                for tick in 1..=n {
                    r.tick = Tick(tick);
                    black_box(w.write_record(&r).expect("record"));
                }
                total += start.elapsed();
                w.close().expect("close");
                done += n;
            }
            total
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("read.trace");
    let mut w = TraceWriter::create(&path, FsyncPolicy::Never).expect("create");
    w.write_header(&header()).expect("header");
    for tick in 1..=RECORDS_PER_FILE {
        w.write_record(&record(tick)).expect("record");
    }
    w.close().expect("close");
    group.bench_function("read_and_verify", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            // Bounded: each pass reads up to RECORDS_PER_FILE of `iters`.
            while done < iters {
                let n = (iters - done).min(RECORDS_PER_FILE);
                let start = Instant::now();
                let mut reader = TraceReader::open(&path).expect("open");
                for _ in 0..n {
                    black_box(reader.next_entry().expect("entry").expect("valid"));
                }
                total += start.elapsed();
                done += n;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
