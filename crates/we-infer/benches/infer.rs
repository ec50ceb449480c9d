//! Inference overhead: a raw `Session::run` on a batch of 1,000 policy
//! observations against `OrtBackend::run` with 1,000 requests (decode, batch,
//! split, encode), and batched against unbatched throughput.
//!
//! Run: `ORT_DYLIB_PATH=… cargo bench -p we-infer --bench infer` (without the
//! variable the library under `build/onnxruntime/` is used). The per-request
//! overhead is `(backend - raw) / 1000`; the bench prints it at the end from its
//! own short timing, and Criterion's numbers give the same by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use ort::value::TensorRef;
use we_abi::tensor;
use we_core::{AgentId, InferenceBackend, InferenceRequest, Requests, Tick};
use we_infer::{ManagerConfig, ModelEntry, ModelManager, ModelRegistry, OrtBackend};

const N: usize = 1000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dylib() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = workspace().join("build/onnxruntime");
    std::fs::read_dir(&dir)
        .ok()
        .and_then(|entries| {
            entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("libonnxruntime.so")
                        || n.ends_with(".dylib")
                        || n == "onnxruntime.dll"
                })
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no ONNX Runtime under {}: run `cargo xtask provision-ort` or set ORT_DYLIB_PATH",
                dir.display()
            )
        })
}

fn registry(batchable: bool) -> ModelRegistry {
    let reg = ModelRegistry::load(workspace().join("fixtures/models/models.toml")).unwrap();
    let policy = reg.get("policy").unwrap().clone();
    ModelRegistry::from_entries(vec![ModelEntry {
        batchable,
        ..policy
    }])
    .unwrap()
}

fn config() -> ManagerConfig {
    ManagerConfig {
        dylib: Some(dylib()),
        ..ManagerConfig::default()
    }
}

/// The `infer` workload's observations of N agents.
fn observations() -> Vec<f32> {
    (0..N as u64)
        .flat_map(|i| {
            let state = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (0..16).map(move |j| ((state >> (4 * j)) & 15) as f32 / 15.0)
        })
        .collect()
}

fn requests(obs: &[f32]) -> Vec<InferenceRequest> {
    // One shared name, as the runtime gives the requests of one model.
    let model: std::sync::Arc<str> = "policy".into();
    obs.chunks_exact(16)
        .enumerate()
        .map(|(i, o)| {
            let bytes: Vec<u8> = o.iter().flat_map(|x| x.to_le_bytes()).collect();
            let mut inputs = Vec::new();
            tensor::write_tensor(&mut inputs, "obs", tensor::DTYPE_F32, &[1, 16], &bytes);
            InferenceRequest {
                agent: AgentId {
                    index: i as u32,
                    generation: 0,
                },
                tag: 0,
                model: std::sync::Arc::clone(&model),
                inputs,
                tensor_count: 1,
            }
        })
        .collect()
}

fn raw_run(manager: &mut ModelManager, obs: &[f32], rows: usize) -> f32 {
    let session = manager.session_mut("policy").unwrap();
    let input = TensorRef::from_array_view(([rows, 16], obs)).unwrap();
    let outputs = session.run(ort::inputs!["obs" => input]).unwrap();
    let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().unwrap();
    logits[0]
}

fn bench(c: &mut Criterion) {
    let obs = observations();
    let reqs: Requests = requests(&obs).into_iter().collect();
    let mut raw = ModelManager::new(registry(true), config()).unwrap();
    let mut batched = OrtBackend::new(ModelManager::new(registry(true), config()).unwrap());
    let mut unbatched = OrtBackend::new(ModelManager::new(registry(false), config()).unwrap());
    println!("provider: {}", batched.describe());

    let mut g = c.benchmark_group("policy_1000");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("raw_session_run_batch_1000", |b| {
        b.iter(|| black_box(raw_run(&mut raw, &obs, N)))
    });
    // As the runtime calls it: the last tick's results handed back for reuse.
    let mut results = Vec::new();
    g.bench_function("backend_run_1000_requests_batched", |b| {
        b.iter(|| {
            batched.run_into(Tick(0), &reqs, &mut results);
            black_box(results.len())
        })
    });
    g.bench_function("raw_session_run_1000_x_batch_1", |b| {
        b.iter(|| {
            for o in obs.chunks_exact(16) {
                black_box(raw_run(&mut raw, o, 1));
            }
        })
    });
    g.bench_function("backend_run_1000_requests_unbatched", |b| {
        b.iter(|| black_box(unbatched.run(Tick(0), &reqs)))
    });
    g.finish();

    // A direct estimate of the per-request overhead, interleaved to share noise.
    let rounds = 200;
    let (mut raw_ns, mut backend_ns) = (0u128, 0u128);
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(raw_run(&mut raw, &obs, N));
        raw_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        batched.run_into(Tick(0), &reqs, &mut results);
        black_box(results.len());
        backend_ns += t.elapsed().as_nanos();
    }
    let per_req = |ns: u128| ns as f64 / rounds as f64 / N as f64 / 1000.0;
    println!(
        "per request: raw {:.3} us, backend {:.3} us, overhead {:.3} us (batch of {N}, mean of {rounds} rounds)",
        per_req(raw_ns),
        per_req(backend_ns),
        per_req(backend_ns.saturating_sub(raw_ns))
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
