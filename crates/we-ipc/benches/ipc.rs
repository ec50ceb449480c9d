//! Commit cost per message, beside a raw crossbeam channel send+recv of the same
//! record as the baseline.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use we_ipc::{Bus, BusConfig};

fn commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipc");
    for &n in &[10_000u32, 1_000_000] {
        g.throughput(Throughput::Elements(n as u64));
        let agents = 10_000u32.min(n);
        let mut bus = Bus::new(
            agents,
            BusConfig {
                mailbox_capacity: n,
                ..BusConfig::default()
            },
        );
        g.bench_with_input(BenchmarkId::new("commit_send+flip", n), &n, |b, &n| {
            b.iter(|| {
                for i in 0..n {
                    let _ = bus.commit_send(i % agents, (i + 1) % agents, &(i as u64).to_le_bytes());
                }
                bus.flip();
            })
        });
        let (tx, rx) = crossbeam_channel::bounded::<[u8; 24]>(1024);
        g.bench_with_input(BenchmarkId::new("crossbeam_send+recv", n), &n, |b, &n| {
            b.iter(|| {
                for i in 0..n {
                    let mut rec = [0u8; 24];
                    rec[16..24].copy_from_slice(&(i as u64).to_le_bytes());
                    let _ = tx.send(rec);
                    black_box(rx.recv().ok());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
