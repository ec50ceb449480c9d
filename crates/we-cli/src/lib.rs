//! Wiring of the `we` command: builds a runtime from a scenario with the real
//! parts (the wasmer sandbox, the trace writer, ONNX Runtime inference).
//!
//! Kept as a library so integration tests drive exactly what the binary drives.

use anyhow::{Context, Result};
use std::path::Path;
use we_runtime::{RunOptions, Runtime, Scenario};
use we_sandbox::tunables::MemoryStyleChoice;
use we_sandbox::{Sandbox, SandboxConfig};

/// The sandbox limits a scenario asks for.
pub fn sandbox_config(scenario: &Scenario) -> SandboxConfig {
    let l = &scenario.limits;
    // Static memories reserve ~8 GiB of address space each; past a few
    // thousand agents the dynamic style is the one that fits.
    let memory_style = if scenario.agent_count() <= 4096 {
        MemoryStyleChoice::Static
    } else {
        MemoryStyleChoice::Dynamic
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

/// Builds a runtime for a parsed scenario.
pub fn build(scenario: Scenario, options: RunOptions) -> Result<Runtime> {
    let sandbox = Sandbox::new(sandbox_config(&scenario));
    let runtime = Runtime::new(scenario, Box::new(sandbox), options)?;
    Ok(runtime)
}

/// Loads a scenario file and builds a runtime for it.
pub fn build_from_file(path: &Path, options: RunOptions) -> Result<Runtime> {
    let scenario = Scenario::load(path)?;
    build(scenario, options).with_context(|| format!("preparing {}", path.display()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
