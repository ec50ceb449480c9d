//! Inference on ONNX Runtime: the model manager and the runtime's
//! [`we_core::InferenceBackend`].
//!
//! - [`ModelRegistry`]: models by name and version, with their files' blake3 and
//!   their tensor signatures, read from a TOML file (`fixtures/models/models.toml`).
//! - [`ModelManager`]: an LRU cache of ONNX Runtime sessions under a byte budget,
//!   with preloading; every load checks the file's blake3 and the model's
//!   signature; a failure is an [`Error`] value, never a crash.
//! - [`OrtBackend`]: serves one tick's requests, batching the requests that hit the
//!   same batchable model into one run, in commit order; inputs and results are in
//!   the we-abi tensor format.
//!
//! CPU sessions are configured for reproducibility (see [`Provider`]); CUDA is used
//! when asked for and present, with CPU as the fallback, and
//! [`ModelManager::describe`] says which and why.
//!
//! Architecture invariant: this is the only crate of the workspace that names
//! `ort`. ONNX Runtime itself is a shared library loaded at run time (feature
//! `load-dynamic`, on by default) from `ORT_DYLIB_PATH` or
//! [`ManagerConfig::dylib`]; `cargo xtask provision-ort` fetches the matching
//! release ([`ORT_VERSION`]) from PyPI. The `download-binaries` feature (with
//! default features off) lets `ort` download and link a build instead.

mod backend;
mod error;
mod manager;
mod provider;
mod registry;
mod runtime;

pub use backend::OrtBackend;
pub use error::{Error, PROVISION_HINT, Result};
pub use manager::{ManagerConfig, ModelManager};
pub use provider::{GraphOptimization, Provider};
pub use registry::{DType, ModelEntry, ModelRegistry, TensorSpec};
pub use runtime::{ORT_MINOR_REQUIRED, ORT_VERSION};
