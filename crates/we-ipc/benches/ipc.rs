//! Commit cost per message at 10k and 1M messages per commit, the cost of a
//! flip, and a baseline: a raw `crossbeam_channel` bounded send + recv of the
//! same 24-byte record (16-byte header, 8-byte payload), so the ratio can be
//! reported.
//!
//! Messages go from sender `i % agents` to receiver `(i + 1) % agents` (the
//! ring workload's pattern), 8-byte payloads, mailboxes large enough that
//! nothing is refused. The bus is reused across iterations, so arenas have
//! their steady-state capacity, as in a run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use we_abi::{MessageHeader, msg_kind};
use we_ipc::{Bus, BusConfig};

/// `(messages per commit, agents)`.
const SIZES: [(u32, u32); 2] = [(10_000, 1_000), (1_000_000, 10_000)];

fn new_bus(n: u32, agents: u32) -> Bus {
    Bus::new(
        agents,
        BusConfig {
            mailbox_capacity: n,
            ..BusConfig::default()
        },
    )
}

/// Commits `n` messages; returns how many were delivered.
fn commit(bus: &mut Bus, n: u32, agents: u32) -> u32 {
    let mut delivered = 0;
    let (mut from, mut to) = (0u32, 1 % agents);
    // Bounded by `n`.
    for i in 0..n {
        if bus
            .commit_send(from, to, &u64::from(i).to_le_bytes())
            .is_ok()
        {
            delivered += 1;
        }
        from = to;
        to = if to + 1 == agents { 0 } else { to + 1 };
    }
    delivered
}

fn ipc(c: &mut Criterion) {
    for (n, agents) in SIZES {
        let mut g = c.benchmark_group(format!("ipc/{n}"));
        g.throughput(Throughput::Elements(u64::from(n)));
        if n >= 1_000_000 {
            g.sample_size(20);
        }

        // commit_send alone: each iteration fills the next side; a flip
        // outside the timing empties it again.
        let mut bus = new_bus(n, agents);
        g.bench_function(BenchmarkId::new("commit_send", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    bus.flip();
                    let start = Instant::now();
                    black_box(commit(&mut bus, n, agents));
                    total += start.elapsed();
                }
                total
            })
        });

        // flip alone, after a full commit (outside the timing).
        let mut bus = new_bus(n, agents);
        g.bench_function(BenchmarkId::new("flip", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    commit(&mut bus, n, agents);
                    let start = Instant::now();
                    bus.flip();
                    total += start.elapsed();
                }
                total
            })
        });

        // Baseline: the same record through a bounded crossbeam channel,
        // one send and one recv per message on one thread.
        let (tx, rx) = crossbeam_channel::bounded::<[u8; 24]>(1024);
        let header = MessageHeader {
            sender: 0,
            kind: msg_kind::DIRECT,
            flags: 0,
            channel: 0,
            len: 8,
        }
        .encode();
        g.bench_function(BenchmarkId::new("crossbeam_send_recv", n), |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for i in 0..u64::from(n) {
                    let mut rec = [0u8; 24];
                    rec[..16].copy_from_slice(&header);
                    rec[16..].copy_from_slice(&i.to_le_bytes());
                    if tx.send(rec).is_ok()
                        && let Ok(got) = rx.recv()
                    {
                        sum = sum.wrapping_add(u64::from(got[16]));
                    }
                }
                black_box(sum)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, ipc);
criterion_main!(benches);
