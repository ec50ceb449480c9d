//! Execution providers and the session settings that make CPU inference
//! reproducible.
//!
//! CPU sessions run with a fixed number of intra-op threads (1 by default), one
//! inter-op thread, sequential execution, ONNX Runtime's deterministic compute
//! switch on, no thread spinning, and a fixed graph optimisation level. With one
//! intra-op thread no reduction is ever split across threads, so a result depends
//! only on the model, the inputs and the machine's instruction set.
//!
//! CUDA is attempted only when asked for. Whether this ONNX Runtime build has the
//! CUDA provider at all is decided once, when the manager is created, so
//! [`crate::ModelManager::describe`] can say before any model is loaded which
//! provider serves requests; a session for which CUDA still fails (no device,
//! missing CUDA libraries) falls back to CPU and the reason is added to the
//! description.

#[cfg(feature = "cuda")]
use ort::ep::ExecutionProvider as _;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::runtime::Runtime;

/// Where inference runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Provider {
    /// ONNX Runtime's CPU provider, configured for reproducibility.
    #[default]
    Cpu,
    /// NVIDIA CUDA on `device_id`, falling back to CPU when unavailable.
    Cuda {
        /// CUDA device ordinal.
        device_id: i32,
    },
}

/// ONNX Runtime graph optimisation level; fixed per manager so that the same
/// graph transformations (and so the same arithmetic) apply on every run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GraphOptimization {
    /// No graph transformation.
    Disabled,
    /// Semantics-preserving, hardware-independent rewrites (constant folding,
    /// redundant node removal, basic fusions). The default: the graph that runs is
    /// the same on every machine.
    #[default]
    Basic,
    /// `Basic` plus fusions specific to the provider.
    Extended,
    /// Everything, including layout changes chosen by the CPU's instruction set.
    All,
}

impl GraphOptimization {
    fn to_ort(self) -> GraphOptimizationLevel {
        match self {
            GraphOptimization::Disabled => GraphOptimizationLevel::Disable,
            GraphOptimization::Basic => GraphOptimizationLevel::Level1,
            GraphOptimization::Extended => GraphOptimizationLevel::Level2,
            GraphOptimization::All => GraphOptimizationLevel::Level3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            GraphOptimization::Disabled => "disabled",
            GraphOptimization::Basic => "basic",
            GraphOptimization::Extended => "extended",
            GraphOptimization::All => "all",
        }
    }
}

/// Session settings shared by every model of a manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionSettings {
    pub(crate) intra_threads: usize,
    pub(crate) optimization: GraphOptimization,
}

/// What the manager will do, decided once at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// CPU only; `note` says why when another provider was asked for.
    Cpu { note: Option<String> },
    /// Try CUDA on this device for each session.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Cuda { device_id: i32 },
}

impl Plan {
    pub(crate) fn decide(requested: Provider, _runtime: &Runtime) -> Plan {
        match requested {
            Provider::Cpu => Plan::Cpu { note: None },
            #[cfg(not(feature = "cuda"))]
            Provider::Cuda { .. } => Plan::Cpu {
                note: Some(
                    "cuda requested but not available: we-infer was built without its `cuda` feature"
                        .to_owned(),
                ),
            },
            #[cfg(feature = "cuda")]
            Provider::Cuda { device_id } => {
                let available = std::panic::catch_unwind(ort::ep::CUDA::is_available);
                match available {
                    Ok(Ok(true)) => Plan::Cuda { device_id },
                    Ok(Ok(false)) => Plan::Cpu {
                        note: Some(
                            "cuda requested but not available: this ONNX Runtime build has no \
                             CUDAExecutionProvider (the PyPI `onnxruntime` package is CPU-only; \
                             `onnxruntime-gpu` has CUDA)"
                                .to_owned(),
                        ),
                    },
                    Ok(Err(e)) => Plan::Cpu {
                        note: Some(format!("cuda requested but not available: {e}")),
                    },
                    Err(_) => Plan::Cpu {
                        note: Some(
                            "cuda requested but not available: probing the providers failed"
                                .to_owned(),
                        ),
                    },
                }
            }
        }
    }
}

/// Which provider a session ended up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Used {
    Cpu,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Cuda,
}

impl Used {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Used::Cpu => "cpu",
            Used::Cuda => "cuda",
        }
    }
}

/// Creates a session for `bytes` following `plan`. On a CUDA failure the session is
/// built on CPU and the second value says why.
pub(crate) fn build(
    runtime: &Runtime,
    bytes: &[u8],
    settings: SessionSettings,
    plan: &Plan,
) -> Result<(Session, Used, Option<String>), String> {
    match plan {
        Plan::Cpu { .. } => Ok((build_cpu(runtime, bytes, settings)?, Used::Cpu, None)),
        #[cfg(not(feature = "cuda"))]
        Plan::Cuda { .. } => Ok((build_cpu(runtime, bytes, settings)?, Used::Cpu, None)),
        #[cfg(feature = "cuda")]
        Plan::Cuda { device_id } => match build_cuda(runtime, bytes, settings, *device_id) {
            Ok(session) => Ok((session, Used::Cuda, None)),
            Err(cuda_error) => {
                let session = build_cpu(runtime, bytes, settings)?;
                Ok((
                    session,
                    Used::Cpu,
                    Some(format!(
                        "cuda session failed, fell back to cpu: {cuda_error}"
                    )),
                ))
            }
        },
    }
}

/// The settings every session gets, whatever the provider.
fn base_builder(runtime: &Runtime, settings: SessionSettings) -> Result<SessionBuilder, String> {
    fn msg<E: std::fmt::Display>(e: E) -> String {
        e.to_string()
    }
    Session::builder(&runtime.env)
        .map_err(msg)?
        .with_no_environment_execution_providers()
        .map_err(msg)?
        .with_intra_threads(settings.intra_threads.max(1))
        .map_err(msg)?
        .with_inter_threads(1)
        .map_err(msg)?
        .with_parallel_execution(false)
        .map_err(msg)?
        .with_intra_op_spinning(false)
        .map_err(msg)?
        .with_inter_op_spinning(false)
        .map_err(msg)?
        .with_deterministic_compute(true)
        .map_err(msg)?
        .with_optimization_level(settings.optimization.to_ort())
        .map_err(msg)
}

fn build_cpu(
    runtime: &Runtime,
    bytes: &[u8],
    settings: SessionSettings,
) -> Result<Session, String> {
    let mut builder = base_builder(runtime, settings)?;
    builder.commit_from_memory(bytes).map_err(|e| e.to_string())
}

#[cfg(feature = "cuda")]
fn build_cuda(
    runtime: &Runtime,
    bytes: &[u8],
    settings: SessionSettings,
    device_id: i32,
) -> Result<Session, String> {
    let cuda = ort::ep::CUDA::default()
        .with_device_id(device_id)
        .build()
        .error_on_failure();
    let mut builder = base_builder(runtime, settings)?
        .with_execution_providers([cuda])
        .map_err(|e| e.to_string())?;
    builder.commit_from_memory(bytes).map_err(|e| e.to_string())
}

/// The settings part of `describe`: `cpu (intra_threads=1, ...)`.
pub(crate) fn describe(plan: &Plan, settings: SessionSettings) -> String {
    let knobs = format!(
        "intra_threads={}, inter_threads=1, sequential, deterministic_compute, graph_optimization={}",
        settings.intra_threads.max(1),
        settings.optimization.name()
    );
    match plan {
        Plan::Cpu { note: None } => format!("cpu ({knobs})"),
        Plan::Cpu { note: Some(note) } => format!("cpu ({note}; {knobs})"),
        Plan::Cuda { device_id } => format!("cuda device {device_id} (cpu fallback; {knobs})"),
    }
}
