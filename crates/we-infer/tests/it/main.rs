//! Integration tests of we-infer against a real ONNX Runtime and the models in
//! `fixtures/models/`.
//!
//! They need the ONNX Runtime shared library: `ORT_DYLIB_PATH`, or else the one
//! `cargo xtask provision-ort` puts under `<workspace>/build/onnxruntime/`. Without
//! either they fail (never skip) and say how to provision it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod manager;
mod registry;
mod workload;

use std::path::{Path, PathBuf};

use we_abi::tensor;
use we_core::{AgentId, InferenceRequest, Requests};
use we_infer::{ManagerConfig, ModelManager, ModelRegistry, OrtBackend};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fixtures/models/`.
pub fn models_dir() -> PathBuf {
    workspace().join("fixtures/models")
}

/// The ONNX Runtime library to test with.
pub fn dylib() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = workspace().join("build/onnxruntime");
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        let mut libs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("libonnxruntime.so")
                        || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
                        || n == "onnxruntime.dll"
                })
            })
            .collect();
        libs.sort();
        libs.pop()
    });
    match found {
        Some(p) => p,
        None => panic!(
            "ONNX Runtime is not provisioned: ORT_DYLIB_PATH is unset and {} holds no \
             libonnxruntime; run `cargo xtask provision-ort` (or set ORT_DYLIB_PATH to an \
             ONNX Runtime 1.31 shared library)",
            dir.display()
        ),
    }
}

/// A config using the test library.
pub fn config(budget_bytes: u64) -> ManagerConfig {
    ManagerConfig {
        budget_bytes,
        dylib: Some(dylib()),
        ..ManagerConfig::default()
    }
}

/// The project registry.
pub fn registry() -> ModelRegistry {
    ModelRegistry::load(models_dir().join("models.toml"))
        .expect("fixtures/models/models.toml loads")
}

/// A manager over the project registry with a generous budget.
pub fn manager() -> ModelManager {
    ModelManager::new(registry(), config(64 << 20)).unwrap_or_else(|e| panic!("{e}"))
}

/// A backend over the project registry.
pub fn backend() -> OrtBackend {
    OrtBackend::new(manager())
}

/// A tensor to put in a request.
pub enum T<'a> {
    /// Name, dims, f32 elements.
    F32(&'a str, &'a [u64], &'a [f32]),
    /// Name, dims, i64 elements.
    I64(&'a str, &'a [u64], &'a [i64]),
}

/// An inference request of `agent` for `model` with `tensors`.
pub fn request(agent: u32, model: &str, tensors: &[T<'_>]) -> InferenceRequest {
    let mut inputs = Vec::new();
    for t in tensors {
        match t {
            T::F32(name, dims, data) => {
                let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                tensor::write_tensor(&mut inputs, name, tensor::DTYPE_F32, dims, &bytes);
            }
            T::I64(name, dims, data) => {
                let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                tensor::write_tensor(&mut inputs, name, tensor::DTYPE_I64, dims, &bytes);
            }
        }
    }
    InferenceRequest {
        agent: AgentId {
            index: agent,
            generation: 0,
        },
        tag: agent.wrapping_mul(10),
        model: model.into(),
        inputs,
        tensor_count: tensors.len() as u16,
    }
}

/// A policy request with one observation.
pub fn policy_request(agent: u32, obs: &[f32; 16]) -> InferenceRequest {
    request(agent, "policy", &[T::F32("obs", &[1, 16], obs)])
}

/// A decoded result tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Out {
    /// Tensor name.
    pub name: String,
    /// we-abi dtype code.
    pub dtype: u8,
    /// Dims.
    pub dims: Vec<u64>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

impl Out {
    /// The elements as f32.
    pub fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, tensor::DTYPE_F32, "{} is not f32", self.name);
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// The elements as i64.
    pub fn i64s(&self) -> Vec<i64> {
        assert_eq!(self.dtype, tensor::DTYPE_I64, "{} is not i64", self.name);
        self.data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Decodes a result payload.
pub fn decode(payload: &[u8]) -> Vec<Out> {
    let (count, body) = tensor::read_result_header(payload).expect("result header");
    let outs: Vec<Out> = tensor::Tensors::new(body)
        .map(|t| {
            let t = t.expect("result tensor");
            Out {
                name: String::from_utf8(t.name.to_vec()).unwrap(),
                dtype: t.dtype,
                dims: (0..t.rank()).map(|i| t.dim(i)).collect(),
                data: t.data.to_vec(),
            }
        })
        .collect();
    assert_eq!(
        outs.len(),
        usize::from(count),
        "tensor count in the result header"
    );
    outs
}

/// `xorshift64` of shared/workloads.md.
pub fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// The policy weights of shared/workloads.md: element k of the tensor with seed s.
pub fn weight(k: usize, seed: usize) -> f32 {
    ((((k * 7919 + seed) % 2001) as f64 - 1000.0) / 1000.0) as f32
}

/// The policy MLP in plain Rust f32.
pub fn policy_reference(obs: &[f32; 16]) -> [f32; 4] {
    let mut h = [0f32; 64];
    for (k, hk) in h.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (j, o) in obs.iter().enumerate() {
            acc += o * weight(j * 64 + k, 1);
        }
        *hk = (acc + weight(k, 2)).max(0.0);
    }
    let mut logits = [0f32; 4];
    for (m, l) in logits.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (k, hk) in h.iter().enumerate() {
            acc += hk * weight(k * 4 + m, 3);
        }
        *l = acc + weight(m, 4);
    }
    logits
}

/// Index of the largest value, lowest index on a tie.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The `infer` workload observation of a state.
pub fn observation(state: u64) -> [f32; 16] {
    let mut obs = [0f32; 16];
    for (j, o) in obs.iter_mut().enumerate() {
        *o = ((state >> (4 * j)) & 15) as f32 / 15.0;
    }
    obs
}

/// `requests` as one tick's batch.
pub fn batch(requests: &[InferenceRequest]) -> Requests {
    requests.iter().collect()
}
