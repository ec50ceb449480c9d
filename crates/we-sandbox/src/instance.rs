//! One sandboxed agent: a wasmer instance in its own store, with fuel, the
//! exchange buffer and fault classification.

use crate::host::{self, HostEnv};
use crate::layout::GuestLayout;
use crate::{Error, Metering, Result, SandboxConfig, fuel};
use std::sync::Arc;
use wasmer::{
    Engine, Function, FunctionEnv, Global, Imports, Instance, Memory, Module, RuntimeError, Store,
    TypedFunction, Value,
};
use we_abi::{SplitMix64, exports, imports as names};
use we_core::{
    AgentCall, AgentId, AgentInstance, CallOutcome, Emitted, FaultKind, LogLine, ModuleInfo,
    RegionView, Tick,
};

/// Smallest exchange buffer requested from a guest.
const BUFFER_MIN: u32 = 4096;

/// What every sandboxed instance has, agent or pack: the store, the host
/// state, the memory, the exchange buffer and the metering globals.
pub(crate) struct Guest {
    pub(crate) store: Store,
    pub(crate) env: FunctionEnv<HostEnv>,
    pub(crate) memory: Memory,
    f_buffer: TypedFunction<i32, i32>,
    /// The metering globals; `None` only in an unmetered benchmark sandbox.
    remaining: Option<Global>,
    exhausted: Option<Global>,
    /// Whether the last metered call failed, so `exhausted` may be raised.
    exhausted_may_be_set: bool,
    pub(crate) buf_ptr: u32,
    buf_cap: u32,
    /// Host address of the exchange buffer, for [`AgentInstance::prefetch`]
    /// only (never dereferenced). Memories never move: both memory styles
    /// grow in place.
    buf_host: usize,
    /// Host addresses of what every call touches besides the exchange
    /// buffer (see [`crate::layout`]): the top of the guest stack, the
    /// statics, the start of the guest heap and the host state of the
    /// instance; 0 where unknown. For [`AgentInstance::prefetch`] only.
    hot: [usize; 4],
    pub(crate) fuel_per_call: u64,
}

/// A running agent instance.
pub struct WasmAgent {
    guest: Guest,
    f_version: TypedFunction<(), i32>,
    f_init: TypedFunction<(i32, i32), i32>,
    f_step: TypedFunction<(i32, i32), i32>,
    f_receive: TypedFunction<(i32, i32), i32>,
    f_shutdown: TypedFunction<(), i32>,
    faulted: Option<FaultKind>,
}

/// The addresses [`WasmAgent::hot`] lists. Memories never move (both memory
/// styles grow in place), and the host state is boxed by the store, so they
/// hold for the instance's life.
fn hot_addresses(
    store: &mut Store,
    memory: &Memory,
    env: &FunctionEnv<HostEnv>,
    exports: &wasmer::Exports,
    layout: GuestLayout,
) -> [usize; 4] {
    let base = memory.view(store).data_ptr() as usize;
    let at = |offset: Option<u32>| offset.map_or(0, |o| base.wrapping_add(o as usize));
    let heap_base = match exports.get_global("__heap_base").map(|g| g.get(store)) {
        Ok(Value::I32(v)) => Some(v as u32),
        _ => None,
    };
    [
        at(layout.stack_top.map(|t| t.saturating_sub(64))),
        at(layout.stack_top),
        at(heap_base),
        env.as_ref(store) as *const HostEnv as usize,
    ]
}

pub(crate) fn instantiate_error(info: &ModuleInfo, agent: AgentId, reason: impl ToString) -> Error {
    Error::Instantiate {
        module: info.name.clone(),
        agent: agent.to_string(),
        reason: reason.to_string(),
    }
}

impl Guest {
    /// Instantiates `module` for `agent` (a pack passes its own marker id);
    /// returns the instance too, for the caller's exports.
    pub(crate) fn new(
        engine: &Engine,
        module: &Module,
        info: &ModuleInfo,
        layout: GuestLayout,
        agent: AgentId,
        seed: u64,
        config: Arc<SandboxConfig>,
    ) -> Result<(Self, Instance)> {
        let mut store = Store::new(engine.clone());
        let fuel_per_call = config.fuel_per_call;
        let fuel_globals = match config.metering {
            Metering::Regions => Some((fuel::REMAINING, fuel::EXHAUSTED)),
            // The wasmer-middlewares metering's globals.
            Metering::Blocks => Some((
                "wasmer_metering_remaining_points",
                "wasmer_metering_points_exhausted",
            )),
            Metering::Off => None,
        };
        let env = FunctionEnv::new(
            &mut store,
            HostEnv {
                memory: None,
                agent,
                tick: 0,
                rng: SplitMix64::for_agent(seed, agent.index, agent.generation),
                effects: Vec::new(),
                log: Vec::new(),
                log_dropped: 0,
                regions: None,
                fault: None,
                pack: None,
                config,
            },
        );
        // Only declared host functions are provided (load refuses a module
        // importing anything else; this keeps the link itself least-privilege).
        let mut import_object = Imports::new();
        let host_fns = [
            (
                names::TICK,
                Function::new_typed_with_env(&mut store, &env, host::tick),
            ),
            (
                names::SELF_ID,
                Function::new_typed_with_env(&mut store, &env, host::self_id),
            ),
            (
                names::RAND_U64,
                Function::new_typed_with_env(&mut store, &env, host::rand_u64),
            ),
            (
                names::EMIT,
                Function::new_typed_with_env(&mut store, &env, host::emit),
            ),
            (
                names::LOG,
                Function::new_typed_with_env(&mut store, &env, host::log),
            ),
            (
                names::REGION_READ,
                Function::new_typed_with_env(&mut store, &env, host::region_read),
            ),
            (
                names::REGION_LEN,
                Function::new_typed_with_env(&mut store, &env, host::region_len),
            ),
        ];
        for (name, function) in host_fns {
            if info.capabilities.allows_host(name) {
                import_object.define(we_abi::IMPORT_MODULE, name, function);
            }
        }
        let instance = Instance::new(&mut store, module, &import_object)
            .map_err(|e| instantiate_error(info, agent, e))?;
        let ex = &instance.exports;
        let memory = ex
            .get_memory(exports::MEMORY)
            .map_err(|e| instantiate_error(info, agent, e))?
            .clone();
        let typed_err = |e| instantiate_error(info, agent, e);
        let f_buffer = ex
            .get_typed_function(&store, exports::BUFFER)
            .map_err(typed_err)?;
        let (remaining, exhausted) = match fuel_globals {
            Some((remaining, exhausted)) => (
                Some(ex.get_global(remaining).map_err(typed_err)?.clone()),
                Some(ex.get_global(exhausted).map_err(typed_err)?.clone()),
            ),
            None => (None, None),
        };
        env.as_mut(&mut store).memory = Some(memory.clone());
        let hot = hot_addresses(&mut store, &memory, &env, ex, layout);
        Ok((
            Self {
                store,
                env,
                memory,
                f_buffer,
                remaining,
                exhausted,
                exhausted_may_be_set: false,
                buf_ptr: 0,
                buf_cap: 0,
                buf_host: 0,
                hot,
                fuel_per_call,
            },
            instance,
        ))
    }

    /// Runs `f` with a fresh fuel budget of `budget` and classifies a failure.
    pub(crate) fn metered<T>(
        &mut self,
        budget: u64,
        fuel_used: &mut u64,
        f: impl FnOnce(&mut Store) -> std::result::Result<T, RuntimeError>,
    ) -> Result<T, FaultKind> {
        let (Some(remaining), Some(exhausted_flag)) =
            (self.remaining.clone(), self.exhausted.clone())
        else {
            // Unmetered (benchmarks only): no budget, no fuel accounting.
            let result = f(&mut self.store);
            return result.map_err(|e| self.classify(e, false));
        };
        // The globals are created by the metering middleware with these exact
        // types, so `set` cannot fail on a type mismatch.
        let _ = remaining.set(&mut self.store, Value::I64(budget as i64));
        // The middleware raises `exhausted` only together with a trap, so it
        // can be set only after a call that failed: reset it then, and read it
        // only when a call failed (two global accesses fewer per call).
        if self.exhausted_may_be_set {
            let _ = exhausted_flag.set(&mut self.store, Value::I32(0));
            self.exhausted_may_be_set = false;
        }
        let result = f(&mut self.store);
        let exhausted = result.is_err()
            && matches!(exhausted_flag.get(&mut self.store), Value::I32(x) if x != 0);
        self.exhausted_may_be_set = result.is_err();
        let left = match remaining.get(&mut self.store) {
            Value::I64(v) if !exhausted => v as u64,
            _ => 0,
        };
        *fuel_used += budget.saturating_sub(left);
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.classify(e, exhausted)),
        }
    }

    fn classify(&mut self, error: RuntimeError, exhausted: bool) -> FaultKind {
        if let Some(kind) = self.env.as_mut(&mut self.store).fault.take() {
            return kind;
        }
        if exhausted {
            return FaultKind::FuelExhausted;
        }
        match error.to_trap() {
            Some(wasmer_types::TrapCode::StackOverflow) => FaultKind::StackOverflow,
            Some(code) => FaultKind::Trap {
                code: code.to_string(),
            },
            None => FaultKind::Trap {
                code: "host".to_string(),
            },
        }
    }

    /// Makes sure the guest exchange buffer holds `need` bytes; returns its address.
    pub(crate) fn buffer(&mut self, need: usize, fuel: &mut u64) -> Result<u32, FaultKind> {
        let too_big = || FaultKind::OutOfBounds {
            what: exports::BUFFER.to_string(),
        };
        let need = u32::try_from(need).map_err(|_| too_big())?;
        if need <= self.buf_cap && self.buf_cap > 0 {
            return Ok(self.buf_ptr);
        }
        let cap = need.max(BUFFER_MIN).max(self.buf_cap.saturating_mul(2));
        let f = self.f_buffer.clone();
        let budget = self.fuel_per_call;
        let ptr = self.metered(budget, fuel, |store| f.call(store, cap as i32))?;
        let size = self.memory.view(&self.store).data_size();
        if ptr < 0 || (ptr as u64) + (cap as u64) > size {
            return Err(too_big());
        }
        self.buf_ptr = ptr as u32;
        self.buf_cap = cap;
        self.buf_host =
            (self.memory.view(&self.store).data_ptr() as usize).wrapping_add(ptr as usize);
        Ok(self.buf_ptr)
    }

    /// Starts loading what the next call touches (see [`AgentInstance::prefetch`]).
    pub(crate) fn prefetch(&self) {
        we_core::hint::prefetch(self.buf_host as *const u8);
        for address in self.hot {
            if address != 0 {
                we_core::hint::prefetch(address as *const u8);
            }
        }
    }

    /// Readies the host state for a guest call at `tick`: the call's effects
    /// and log lines go into `out`'s buffers (swapped in, so no copy), and
    /// `regions` is readable until [`Guest::leave`], which must follow
    /// before `regions`' borrow ends.
    pub(crate) fn enter(
        &mut self,
        tick: Tick,
        regions: Option<&dyn RegionView>,
        out: &mut Emitted,
    ) {
        let env = self.env.as_mut(&mut self.store);
        env.tick = tick.0;
        std::mem::swap(&mut env.effects, &mut out.effects);
        std::mem::swap(&mut env.log, &mut out.log);
        env.log_dropped = 0;
        // SAFETY: the reference is stored with its lifetime erased only for
        // the duration of one call: every caller pairs this with `leave`,
        // which resets it to `None`, within the same borrow of `regions`, and
        // the host functions that read it run only in between.
        env.regions = regions
            .map(|r| unsafe { std::mem::transmute::<&dyn RegionView, &'static dyn RegionView>(r) });
    }

    /// Ends what [`Guest::enter`] began: the effects and log lines go back to
    /// `out`, with a marker line if some were dropped.
    pub(crate) fn leave(&mut self, out: &mut Emitted) {
        let env = self.env.as_mut(&mut self.store);
        env.regions = None;
        std::mem::swap(&mut env.effects, &mut out.effects);
        std::mem::swap(&mut env.log, &mut out.log);
        if env.log_dropped > 0 {
            out.log.push(LogLine {
                level: we_abi::log_level::WARN,
                text: format!("[{} log lines dropped: per-call limit]", env.log_dropped),
            });
        }
    }

    /// Bytes of linear memory.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory.view(&self.store).data_size()
    }
}

impl WasmAgent {
    pub(crate) fn new(
        engine: &Engine,
        module: &Module,
        info: &ModuleInfo,
        layout: GuestLayout,
        agent: AgentId,
        seed: u64,
        config: Arc<SandboxConfig>,
    ) -> Result<Self> {
        let (guest, instance) = Guest::new(engine, module, info, layout, agent, seed, config)?;
        let ex = &instance.exports;
        let store = &guest.store;
        let typed_err = |e| instantiate_error(info, agent, e);
        Ok(Self {
            f_version: ex
                .get_typed_function(store, exports::ABI_VERSION)
                .map_err(typed_err)?,
            f_init: ex
                .get_typed_function(store, exports::AGENT_INIT)
                .map_err(typed_err)?,
            f_step: ex
                .get_typed_function(store, exports::AGENT_STEP)
                .map_err(typed_err)?,
            f_receive: ex
                .get_typed_function(store, exports::AGENT_RECEIVE)
                .map_err(typed_err)?,
            f_shutdown: ex
                .get_typed_function(store, exports::AGENT_SHUTDOWN)
                .map_err(typed_err)?,
            guest,
            faulted: None,
        })
    }

    /// Calls `we_abi_version`.
    pub(crate) fn abi_version(&mut self) -> Result<u32, FaultKind> {
        let f = self.f_version.clone();
        let mut fuel = 0;
        let v = self.metered(&mut fuel, |store| f.call(store))?;
        Ok(v as u32)
    }

    /// The fault that stopped this agent, if any.
    pub fn fault(&self) -> Option<&FaultKind> {
        self.faulted.as_ref()
    }

    /// Runs `f` with a fresh per-call fuel budget.
    fn metered<T>(
        &mut self,
        fuel_used: &mut u64,
        f: impl FnOnce(&mut Store) -> std::result::Result<T, RuntimeError>,
    ) -> Result<T, FaultKind> {
        let budget = self.guest.fuel_per_call;
        self.guest.metered(budget, fuel_used, f)
    }

    /// Copies `bytes` into the exchange buffer and calls `f(ptr, len)`.
    fn call_with_bytes(
        &mut self,
        f: TypedFunction<(i32, i32), i32>,
        bytes: &[u8],
        fuel: &mut u64,
    ) -> Result<i32, FaultKind> {
        let ptr = self.guest.buffer(bytes.len(), fuel)?;
        host::write_guest(
            &self.guest.memory.view(&self.guest.store),
            u64::from(ptr),
            bytes,
        )
        .map_err(|()| FaultKind::OutOfBounds {
            what: exports::BUFFER.to_string(),
        })?;
        let len = bytes.len() as i32;
        self.metered(fuel, |store| f.call(store, ptr as i32, len))
    }

    fn dispatch(&mut self, call: AgentCall<'_>, fuel: &mut u64) -> Result<i32, FaultKind> {
        match call {
            AgentCall::Init { context } => {
                let f = self.f_init.clone();
                self.call_with_bytes(f, context, fuel)
            }
            AgentCall::Receive { inbox } => {
                let f = self.f_receive.clone();
                self.call_with_bytes(f, inbox, fuel)
            }
            AgentCall::Step { context } => {
                let f = self.f_step.clone();
                self.call_with_bytes(f, context, fuel)
            }
            AgentCall::StepWithInbox { context, inbox } => {
                // Context and inbox are written back to back into the
                // exchange buffer: one export call, no host-side concatenation.
                let ptr = self.guest.buffer(context.len() + inbox.len(), fuel)?;
                let oob = |()| FaultKind::OutOfBounds {
                    what: exports::BUFFER.to_string(),
                };
                let view = self.guest.memory.view(&self.guest.store);
                host::write_guest(&view, u64::from(ptr), context).map_err(oob)?;
                host::write_guest(&view, u64::from(ptr) + context.len() as u64, inbox)
                    .map_err(oob)?;
                let f = self.f_step.clone();
                let len = (context.len() + inbox.len()) as i32;
                self.metered(fuel, |store| f.call(store, ptr as i32, len))
            }
            AgentCall::Shutdown => {
                let f = self.f_shutdown.clone();
                self.metered(fuel, |store| f.call(store))
            }
        }
    }
}

impl AgentInstance for WasmAgent {
    fn call(
        &mut self,
        tick: Tick,
        call: AgentCall<'_>,
        regions: Option<&dyn RegionView>,
        out: &mut Emitted,
    ) -> CallOutcome {
        if let Some(kind) = &self.faulted {
            return CallOutcome::Fault(kind.clone());
        }
        self.guest.enter(tick, regions, out);
        let mut fuel = 0;
        let result = self.dispatch(call, &mut fuel);
        self.guest.leave(out);
        out.fuel_used += fuel;
        match result {
            Ok(we_abi::STATUS_OK) => CallOutcome::Ok,
            Ok(code) => {
                let kind = FaultKind::ErrorCode(code);
                self.faulted = Some(kind.clone());
                CallOutcome::Fault(kind)
            }
            Err(kind) => {
                self.faulted = Some(kind.clone());
                CallOutcome::Fault(kind)
            }
        }
    }

    fn prefetch(&self) {
        self.guest.prefetch();
    }

    fn memory_bytes(&self) -> u64 {
        self.guest.memory_bytes()
    }
}
