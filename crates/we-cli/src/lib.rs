//! Wiring of the `we` command: builds a runtime from a scenario with the real
//! parts (the wasmer sandbox, the trace writer, ONNX Runtime inference), and the
//! replay verifier and determinism check built on them.
//!
//! Kept as a library so integration tests drive exactly what the binary drives.

mod replay;

pub use replay::{InferenceMode, VerifyOutcome, check_determinism, verify_trace};

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use we_infer::{ManagerConfig, OrtBackend, Provider};
use we_replay::{FsyncPolicy, TraceWriter};
use we_runtime::{RunOptions, Runtime, Scenario};
use we_sandbox::tunables::MemoryStyleChoice;
use we_sandbox::{Sandbox, SandboxConfig};

/// The sandbox limits a scenario asks for.
pub fn sandbox_config(scenario: &Scenario) -> SandboxConfig {
    let l = &scenario.limits;
    // Dynamic memories (we-sandbox `ReservedMemory`) map the capped size once
    // and grow in place: as fast per tick as static ones (docs/BENCHMARKS.md),
    // ~29 KiB resident per idle agent, and 100,000 agents fit in one process;
    // static memories reserve ~8 GiB of address space each (~15,000 at most),
    // so only large packs get them (`we_sandbox::PACK_STATIC_SLOTS_MIN`).
    // `WE_MEMORY_STYLE=static` makes every memory static (for measurements).
    let memory_style = match std::env::var("WE_MEMORY_STYLE").as_deref() {
        Ok("static") => MemoryStyleChoice::Static,
        _ => MemoryStyleChoice::Dynamic,
    };
    SandboxConfig {
        fuel_per_call: l.fuel_per_call,
        memory_pages_max: l.memory_pages,
        effect_bytes_max: l.effect_bytes_max,
        message_bytes_max: l.message_bytes_max,
        memory_style,
        ..SandboxConfig::default()
    }
}

/// Whether the runtime's threads may run on the orchestrator's CPU too
/// (`RunOptions::share_orchestrator_cpu`): `WE_ORCHESTRATOR_CPU=shared`, for
/// measurements; by default that CPU is left to the orchestrator.
pub fn orchestrator_cpu_shared() -> bool {
    std::env::var("WE_ORCHESTRATOR_CPU").as_deref() == Ok("shared")
}

/// Where `Runtime::run` records ticks (`RunOptions::record_on_worker`):
/// `WE_RECORDER=worker` on the last pool worker's thread, `WE_RECORDER=thread`
/// on a thread of its own, for measurements; unset (or anything else), the
/// runtime chooses by the CPUs it has.
pub fn record_on_worker() -> Option<bool> {
    match std::env::var("WE_RECORDER").as_deref() {
        Ok("worker") => Some(true),
        Ok("thread") => Some(false),
        _ => None,
    }
}

/// The ONNX Runtime backend a scenario's `[inference]` section asks for.
pub fn inference_backend(scenario: &Scenario) -> Result<Option<OrtBackend>> {
    let Some(section) = &scenario.inference else {
        return Ok(None);
    };
    let Some(registry) = &section.registry else {
        bail!("scenario: field `inference.registry`: a model registry file is required");
    };
    let registry = scenario.base_dir.join(registry);
    let provider = match section.provider.as_deref() {
        None | Some("cpu") => Provider::Cpu,
        Some("cuda") => Provider::Cuda { device_id: 0 },
        Some(other) => {
            bail!("scenario: field `inference.provider`: `{other}` is not `cpu` or `cuda`")
        }
    };
    let mut config = ManagerConfig {
        provider,
        ..ManagerConfig::default()
    };
    if let Some(bytes) = section.cache_bytes {
        config.budget_bytes = bytes;
    }
    let mut backend = OrtBackend::from_registry_file(&registry, config)
        .with_context(|| format!("inference registry {}", registry.display()))?;
    let preload: Vec<&str> = section.preload.iter().map(String::as_str).collect();
    backend
        .manager_mut()
        .preload(&preload)
        .context("preloading models")?;
    Ok(Some(backend))
}

/// Builds a runtime for a parsed scenario, with inference if it asks for it.
pub fn build(scenario: Scenario, options: RunOptions) -> Result<Runtime> {
    let config = sandbox_config(&scenario);
    build_with_sandbox(scenario, options, config)
}

/// [`build`] with explicit sandbox settings (benchmarks: `--metering`).
pub fn build_with_sandbox(
    scenario: Scenario,
    options: RunOptions,
    config: SandboxConfig,
) -> Result<Runtime> {
    let backend = inference_backend(&scenario)?;
    let sandbox = Sandbox::new(config);
    let mut runtime = Runtime::new(scenario, Box::new(sandbox), options)?;
    if let Some(backend) = backend {
        runtime.set_inference(Box::new(backend));
    }
    Ok(runtime)
}

/// Loads a scenario file and builds a runtime for it.
pub fn build_from_file(path: &Path, options: RunOptions) -> Result<Runtime> {
    let scenario = Scenario::load(path)?;
    build(scenario, options).with_context(|| format!("preparing {}", path.display()))
}

/// Records `runtime`'s run into a trace file at `path`.
pub fn record_to(runtime: &mut Runtime, path: &Path, fsync: FsyncPolicy) -> Result<()> {
    let writer = TraceWriter::create(path, fsync)
        .with_context(|| format!("creating trace {}", path.display()))?;
    // Replays look for modules relative to where the scenario was; the note is
    // relative to the trace's own directory so it means the same on any machine
    // with the same layout.
    let trace_dir = absolute(path.parent().unwrap_or(Path::new(".")));
    let scenario_dir = absolute(&runtime.scenario().base_dir);
    runtime.add_header_note(format!(
        "scenario_dir={}",
        relative_path(&trace_dir, &scenario_dir).display()
    ));
    runtime.set_trace(Box::new(writer));
    Ok(())
}

/// `path` made absolute against the current directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// `to` expressed relative to `from` (both absolute), lexically after
/// canonicalising what exists.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from = std::fs::canonicalize(from).unwrap_or_else(|_| from.to_path_buf());
    let to = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_path_buf());
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
