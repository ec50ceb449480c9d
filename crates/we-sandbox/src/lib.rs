//! The wasmer host of wasm-engine: loads agent modules and runs them sandboxed.
//!
//! Architecture invariant: this is the only crate that names wasmer.
//!
//! - Each module is validated and compiled once ([`Sandbox::load`]), with
//!   Cranelift, NaN canonicalisation on, and the threads, relaxed-SIMD,
//!   multi-memory, memory64 and exceptions proposals off, so a module that uses
//!   them is refused at validation.
//! - Each agent gets its own instance in its own `Store`, so a faulted agent can
//!   be dropped alone and instances can move between worker threads.
//! - Fuel: every operator costs one point, charged by region (see
//!   [`Metering::Regions`]): a function call or a loop iteration is charged the
//!   operators of its longest path on entry. Each export call gets
//!   `fuel_per_call` points; running out traps the call, and the agent is
//!   faulted with [`FaultKind::FuelExhausted`](we_core::FaultKind::FuelExhausted), the same way on every machine.
//! - Memory: linear memory is capped at `memory_pages_max` pages through
//!   [`tunables::LimitingTunables`]; `memory.grow` past the cap fails inside the
//!   guest, and a module whose minimum exceeds the cap is refused at instantiation.
//! - Host imports are exactly those of `we_abi::imports`; every pointer and length
//!   a guest passes is checked against its memory, and a bad one traps that agent.

mod error;
mod fuel;
mod host;
mod instance;
mod layout;
mod pack;
pub mod tunables;

pub use error::{Error, Result};
pub use instance::WasmAgent;
pub use pack::{CHUNK_BYTES, WasmPack};

use layout::GuestLayout;
use std::sync::{Arc, OnceLock};
use tunables::{LimitingTunables, MemoryStyleChoice};
use wasmer::sys::{CompilerConfig, Cranelift, EngineBuilder, Features, NativeEngineExt};
use wasmer::{Engine, Module};
use we_core::{AgentHost, AgentId, AgentInstance, BoxError, ModuleInfo};

/// Limits and settings of the sandbox, the same for every agent of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Fuel (WebAssembly operators) each export call may use.
    pub fuel_per_call: u64,
    /// Maximum linear memory per agent, in 64 KiB pages.
    pub memory_pages_max: u32,
    /// Maximum effect bytes one export call may emit.
    pub effect_bytes_max: u32,
    /// Maximum payload bytes of one message.
    pub message_bytes_max: u32,
    /// Maximum log lines one export call may write; further lines are counted
    /// and dropped with a marker line.
    pub log_lines_max: u32,
    /// Maximum bytes of one log line; longer lines are cut.
    pub log_line_bytes_max: u32,
    /// How linear memories are reserved. With [`MemoryStyleChoice::Dynamic`],
    /// a pack of at least [`PACK_STATIC_SLOTS_MIN`] agents still gets a
    /// static memory (see there).
    pub memory_style: MemoryStyleChoice,
    /// Fuel metering. Always [`Metering::Regions`] in runs; the others exist
    /// only so benchmarks can measure what metering costs
    /// (`we bench-workload --metering`).
    pub metering: Metering,
}

/// How fuel is metered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Metering {
    /// A check per function call and per loop iteration, each charged the
    /// operators of its region's longest path (fuel.rs). What runs use.
    #[default]
    Regions,
    /// Measurement only: a check per basic block, charged its operators as it
    /// runs (the wasmer-middlewares scheme), to compare against.
    Blocks,
    /// Measurement only: no fuel at all; nothing stops an agent that never
    /// returns.
    Off,
}

impl Metering {
    /// The name `we bench-workload --metering` takes and prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Regions => "regions",
            Self::Blocks => "blocks",
            Self::Off => "off",
        }
    }

    /// The scheme named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Regions, Self::Blocks, Self::Off]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            fuel_per_call: 50_000_000,
            memory_pages_max: 256,
            effect_bytes_max: 8 << 20,
            message_bytes_max: 64 << 10,
            log_lines_max: 64,
            log_line_bytes_max: 1024,
            memory_style: MemoryStyleChoice::Dynamic,
            metering: Metering::Regions,
        }
    }
}

/// Packs of at least this many agents run on a build of their module with
/// static memories (no bounds checks in the generated code) even when the
/// sandbox's style is dynamic. A static memory reserves about 8 GiB of
/// address space, which bounds a process to about 15,000 of them; one per
/// 64 agents or more still leaves room for a million agents, and guest code
/// without bounds checks is what a pack's tick mostly runs (an inference
/// tick of 10,000 agents in packs of 1,000 is about 10 % faster). What an
/// agent computes, its limits and its faults do not depend on the style.
pub const PACK_STATIC_SLOTS_MIN: u32 = 64;

/// A compiled module and the engine it was compiled with.
struct Loaded {
    engine: Engine,
    module: Module,
    info: ModuleInfo,
    layout: GuestLayout,
    /// The module's bytes, for its build with static memories.
    bytes: Arc<[u8]>,
    /// That build (see [`PACK_STATIC_SLOTS_MIN`]), made for the first pack
    /// that needs it; a build that failed holds its error.
    packed: OnceLock<std::result::Result<(Engine, Module), String>>,
}

/// The wasmer implementation of [`AgentHost`].
pub struct Sandbox {
    config: Arc<SandboxConfig>,
    modules: Vec<Loaded>,
}

impl Sandbox {
    /// A sandbox with the given limits.
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            config: Arc::new(config),
            modules: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// An engine configured for determinism, with memories reserved in
    /// `style`. Each module gets its own engine because the metering
    /// middleware instruments exactly one module.
    fn engine(&self, style: MemoryStyleChoice) -> Engine {
        let mut compiler = Cranelift::new();
        compiler.canonicalize_nans(true);
        // Profiling aid: `WE_PERFMAP=1` names the guest's compiled functions
        // in /tmp/perf-<pid>.map, which `perf report` reads (modules built
        // without `strip` have the names to give).
        if std::env::var_os("WE_PERFMAP").is_some() {
            compiler.enable_perfmap();
        }
        let limit = self.config.fuel_per_call;
        match self.config.metering {
            Metering::Regions => {
                compiler.push_middleware(Arc::new(fuel::RegionMetering::new(limit)))
            }
            Metering::Blocks => {
                compiler.push_middleware(Arc::new(wasmer_middlewares::Metering::new(limit, |_| 1)))
            }
            Metering::Off => {}
        }
        let mut features = Features::new();
        features
            .threads(false)
            .relaxed_simd(false)
            .multi_memory(false)
            .memory64(false)
            .exceptions(false)
            .tail_call(false);
        let mut engine: Engine = EngineBuilder::new(compiler)
            .set_features(Some(features))
            .engine()
            .into();
        engine.set_tunables(LimitingTunables::new(self.config.memory_pages_max, style));
        engine
    }

    /// Validates, checks and compiles `bytes`, named `name` in errors.
    pub fn load_module(&mut self, name: &str, bytes: &[u8]) -> Result<usize> {
        let engine = self.engine(self.config.memory_style);
        Module::validate(&engine, bytes).map_err(|e| Error::InvalidModule {
            module: name.to_string(),
            reason: e.to_string(),
        })?;
        let module = Module::new(&engine, bytes).map_err(|e| Error::InvalidModule {
            module: name.to_string(),
            reason: e.to_string(),
        })?;
        let imports = host::check_imports(name, &module)?;
        host::check_exports(name, &module)?;
        let capabilities = host::read_capabilities(name, bytes)?;
        host::check_declared(name, &module, &capabilities)?;
        let hash = *blake3::hash(bytes).as_bytes();
        let mut info = ModuleInfo {
            name: name.to_string(),
            hash,
            abi_version: 0,
            imports,
            capabilities,
            packable: host::exports_pack_call(&module),
        };
        // The declared ABI version is read by running the export once in a
        // throw-away instance, under the normal fuel and memory limits.
        let layout = GuestLayout::of(name, bytes);
        let mut probe = WasmAgent::new(
            &engine,
            &module,
            &info,
            layout,
            AgentId::new(u32::MAX),
            0,
            self.config.clone(),
        )?;
        let declared = probe.abi_version().map_err(|fault| Error::AbiProbe {
            module: name.to_string(),
            fault,
        })?;
        if !(we_abi::ABI_VERSION_MIN..=we_abi::ABI_VERSION_MAX).contains(&declared) {
            return Err(Error::AbiMismatch {
                module: name.to_string(),
                declared,
                min: we_abi::ABI_VERSION_MIN,
                max: we_abi::ABI_VERSION_MAX,
            });
        }
        info.abi_version = declared;
        self.modules.push(Loaded {
            engine,
            module,
            info,
            layout,
            bytes: bytes.into(),
            packed: OnceLock::new(),
        });
        Ok(self.modules.len() - 1)
    }

    /// Makes an instance of a loaded module for `agent`.
    pub fn instantiate_agent(&self, module: usize, agent: AgentId, seed: u64) -> Result<WasmAgent> {
        let loaded = self.modules.get(module).ok_or(Error::UnknownModule {
            index: module,
            count: self.modules.len(),
        })?;
        WasmAgent::new(
            &loaded.engine,
            &loaded.module,
            &loaded.info,
            loaded.layout,
            agent,
            seed,
            self.config.clone(),
        )
    }
}

impl Sandbox {
    /// Makes an instance of a loaded module that hosts a pack of `slots` agents.
    pub fn instantiate_pack_of(&self, module: usize, slots: u32, seed: u64) -> Result<WasmPack> {
        let loaded = self.modules.get(module).ok_or(Error::UnknownModule {
            index: module,
            count: self.modules.len(),
        })?;
        if !loaded.info.packable {
            return Err(Error::MissingExport {
                module: loaded.info.name.clone(),
                export: we_abi::exports::PACK_CALL.to_string(),
                expected: "(i32, i32) -> i32, to host a pack of agents".to_string(),
            });
        }
        let (engine, module) = if self.config.memory_style == MemoryStyleChoice::Dynamic
            && slots >= PACK_STATIC_SLOTS_MIN
        {
            let built = loaded.packed.get_or_init(|| {
                let engine = self.engine(MemoryStyleChoice::Static);
                Module::new(&engine, &*loaded.bytes)
                    .map(|module| (engine, module))
                    .map_err(|e| e.to_string())
            });
            match built {
                Ok((engine, module)) => (engine, module),
                Err(reason) => {
                    return Err(Error::InvalidModule {
                        module: loaded.info.name.clone(),
                        reason: format!("build with static memories for a pack: {reason}"),
                    });
                }
            }
        } else {
            (&loaded.engine, &loaded.module)
        };
        WasmPack::new(
            engine,
            module,
            &loaded.info,
            loaded.layout,
            slots,
            seed,
            self.config.clone(),
        )
    }
}

impl AgentHost for Sandbox {
    fn load(&mut self, name: &str, bytes: &[u8]) -> Result<usize, BoxError> {
        Ok(self.load_module(name, bytes)?)
    }

    fn module_info(&self, module: usize) -> Option<&ModuleInfo> {
        self.modules.get(module).map(|m| &m.info)
    }

    fn instantiate(
        &self,
        module: usize,
        agent: AgentId,
        seed: u64,
    ) -> Result<Box<dyn AgentInstance>, BoxError> {
        Ok(Box::new(self.instantiate_agent(module, agent, seed)?))
    }

    fn instantiate_pack(
        &self,
        module: usize,
        slots: u32,
        seed: u64,
    ) -> Result<Box<dyn we_core::PackInstance>, BoxError> {
        Ok(Box::new(self.instantiate_pack_of(module, slots, seed)?))
    }
}
