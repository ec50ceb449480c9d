//! The traits the runtime composes its parts through, and the data they exchange.
//!
//! `we-runtime` holds `Box<dyn AgentHost>`, `Box<dyn InferenceBackend>`,
//! `Box<dyn TraceSink>` and `Box<dyn StateObserver>`; each implementation lives
//! in its own crate and can be used alone.

use crate::{AgentId, Tick};
use std::fmt;
use std::sync::Arc;

/// A boxed error crossing a trait boundary; each implementing crate has its own
/// typed error underneath.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an agent call did not complete. Every variant except [`FaultKind::Watchdog`]
/// is a deterministic function of the agent's inputs and is recorded in the trace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The call used its whole fuel budget.
    FuelExhausted,
    /// The guest trapped; `code` is the WebAssembly trap code, e.g. `unreachable`.
    Trap {
        /// Trap code text (stable across machines).
        code: String,
    },
    /// The guest's call stack overflowed.
    StackOverflow,
    /// The guest passed a pointer/length outside its memory to a host function
    /// or exported a buffer that does not fit its memory.
    OutOfBounds {
        /// Which host call or buffer.
        what: String,
    },
    /// A batch of effect records was malformed.
    MalformedEffects {
        /// Byte offset of the bad record in the batch.
        offset: u32,
    },
    /// The agent emitted more effect bytes in one call than allowed.
    EffectLimit,
    /// A message payload exceeded the configured maximum size.
    MessageTooLarge {
        /// The payload length.
        len: u32,
    },
    /// An export returned a non-zero status.
    ErrorCode(i32),
    /// A fault injected by the scenario's fault plan.
    Injected,
    /// The wall-clock watchdog stopped the call. Not reproducible; a run with a
    /// watchdog fault is reported as such and never verifies.
    Watchdog,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::FuelExhausted => write!(f, "fuel exhausted"),
            FaultKind::Trap { code } => write!(f, "trap: {code}"),
            FaultKind::StackOverflow => write!(f, "stack overflow"),
            FaultKind::OutOfBounds { what } => write!(f, "out-of-bounds pointer in {what}"),
            FaultKind::MalformedEffects { offset } => {
                write!(f, "malformed effect record at byte {offset}")
            }
            FaultKind::EffectLimit => write!(f, "effect limit exceeded"),
            FaultKind::MessageTooLarge { len } => write!(f, "message of {len} bytes too large"),
            FaultKind::ErrorCode(c) => write!(f, "export returned error code {c}"),
            FaultKind::Injected => write!(f, "injected fault"),
            FaultKind::Watchdog => write!(f, "watchdog (not reproducible)"),
        }
    }
}

impl FaultKind {
    /// A short stable name for counting faults by kind.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::FuelExhausted => "fuel_exhausted",
            FaultKind::Trap { .. } => "trap",
            FaultKind::StackOverflow => "stack_overflow",
            FaultKind::OutOfBounds { .. } => "out_of_bounds",
            FaultKind::MalformedEffects { .. } => "malformed_effects",
            FaultKind::EffectLimit => "effect_limit",
            FaultKind::MessageTooLarge { .. } => "message_too_large",
            FaultKind::ErrorCode(_) => "error_code",
            FaultKind::Injected => "injected",
            FaultKind::Watchdog => "watchdog",
        }
    }
}

/// Outcome of one export call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The call returned `STATUS_OK`.
    Ok,
    /// The call faulted; the agent is marked faulted by the runtime.
    Fault(FaultKind),
}

/// One export call of an agent. Contexts are the we-abi byte layouts, already
/// encoded, so the host copies them into guest memory as they are.
#[derive(Clone, Copy, Debug)]
pub enum AgentCall<'a> {
    /// `agent_init` with an encoded init context followed by the config bytes.
    Init {
        /// `InitContext` bytes then config bytes.
        context: &'a [u8],
    },
    /// `agent_receive` with the inbox as message records.
    Receive {
        /// Message records.
        inbox: &'a [u8],
    },
    /// `agent_step` with an encoded step context.
    Step {
        /// `StepContext` bytes.
        context: &'a [u8],
    },
    /// ABI v2: `agent_step` with the step context followed by the inbox
    /// (message records), in one call.
    StepWithInbox {
        /// `StepContext` bytes.
        context: &'a [u8],
        /// Message records.
        inbox: &'a [u8],
    },
    /// `agent_shutdown`.
    Shutdown,
}

/// A line an agent logged through the `log` import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// we-abi log level.
    pub level: i32,
    /// The text, lossily decoded, cut at the configured maximum.
    pub text: String,
}

/// What one call of an agent produced, gathered by the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Emitted {
    /// Effect records (we-abi `EffectHeader` layout) in emission order.
    pub effects: Vec<u8>,
    /// Lines logged, in order.
    pub log: Vec<LogLine>,
    /// Fuel used by the calls since the last clear.
    pub fuel_used: u64,
}

impl Emitted {
    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.effects.clear();
        self.log.clear();
        self.fuel_used = 0;
    }
}

/// Read access to shared regions during a tick: the versions committed at the
/// end of the previous tick. Implementations are lock-free and `Sync`, since
/// agents on different workers read concurrently.
pub trait RegionView: Sync {
    /// Length of `region`'s committed version as seen by `reader`, or a negative
    /// we-abi `REGION_*` code.
    fn region_len(&self, reader: AgentId, region: u32) -> i32;
    /// Copies from `region` at `offset` into `dst`; bytes copied or a negative
    /// we-abi `REGION_*` code.
    fn region_read(&self, reader: AgentId, region: u32, offset: u32, dst: &mut [u8]) -> i32;
}

/// A running agent: one sandboxed instance. Not `Send`: engines such as wasmer
/// tie an instance to the thread that created it, so the runtime creates each
/// instance on the worker that runs it and keeps it there.
pub trait AgentInstance {
    /// Runs one export. Effects and log lines are appended to `out`. A fault
    /// leaves the instance unusable; the runtime stops calling it.
    fn call(
        &mut self,
        tick: Tick,
        call: AgentCall<'_>,
        regions: Option<&dyn RegionView>,
        out: &mut Emitted,
    ) -> CallOutcome;

    /// Bytes of linear memory the instance currently holds.
    fn memory_bytes(&self) -> u64;

    /// A hint that the instance is called next: an implementation may start
    /// loading what a call touches into the cache. Changes no state and no
    /// result; the default does nothing. Callers should have brought the
    /// instance itself near (see `we_runtime`'s pool) a step earlier, since
    /// this reads it.
    fn prefetch(&self) {}
}

/// One agent of a pack call, as the runtime lists it (ascending slots).
#[derive(Clone, Copy, Debug)]
pub struct PackMember<'a> {
    /// Its place in the pack, from 0.
    pub slot: u32,
    /// Its id and generation.
    pub id: AgentId,
    /// Its index inside its scenario group.
    pub group_index: u32,
    /// Its inbox as message records (step only).
    pub inbox: &'a [u8],
    /// Messages in `inbox`.
    pub inbox_len: u32,
    /// Its effects refused at the last commit.
    pub refused: u32,
}

/// What a pack call runs for each member.
#[derive(Clone, Copy, Debug)]
pub enum PackPhase<'a> {
    /// `agent_init` with the group's config bytes: a fresh agent per member.
    Init {
        /// The group's config bytes.
        config: &'a [u8],
        /// Agents in the run.
        agent_count: u32,
    },
    /// A tick: the member's inbox, then its step.
    Step,
    /// `agent_shutdown`.
    Shutdown,
}

/// What one member of a pack call produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackOutput {
    /// Where its effects lie in [`PackOutputs::effects`].
    pub effects: std::ops::Range<usize>,
    /// Fuel of the guest calls this member was the first of (the call's fuel
    /// is counted on the first member of each guest call).
    pub fuel_used: u64,
    /// The status its turn ended with: `we_abi::STATUS_OK`, or its own
    /// failure ([`FaultKind::ErrorCode`]), which leaves the pack and the
    /// other members running.
    pub status: i32,
}

/// What the members of a pack call produced. The effects of every member stay
/// in one buffer, appended call after call until the caller empties it, and
/// each member's are found by range: no buffer per member, and nothing is
/// copied out of what the guest emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackOutputs {
    /// Effect records (we-abi `EffectHeader` layout). A member's lie at its
    /// [`PackOutput::effects`]; bytes between members are not effects.
    pub effects: Vec<u8>,
    /// One per member of the last call, in the order of its `members`.
    pub members: Vec<PackOutput>,
    /// Lines logged in the last call, each with its member's position in
    /// `members`, in order.
    pub logs: Vec<(usize, LogLine)>,
}

/// Several agents of one group in one sandboxed instance: one memory, one
/// call for many agents. What an agent sees and does is as if it ran alone
/// (its own id, inbox, PRNG stream, effects and faults), with two
/// differences that make the pack the unit of isolation: the members share
/// one linear memory and its cap, and a trap or fuel exhaustion (whose
/// budget is the per-agent budget times the members in a call) faults every
/// member. Packs are opt-in per scenario group.
pub trait PackInstance {
    /// Runs `phase` for `members` (ascending slots): appends their effects to
    /// `out.effects` and sets `out.members[k]` for member `k` (and nothing
    /// else) and `out.logs`. `Err` faults every member, leaves `out.effects`
    /// as it was before the call and `out.members` and `out.logs` empty, and
    /// the instance is unusable from then on.
    fn call(
        &mut self,
        tick: Tick,
        phase: PackPhase<'_>,
        members: &[PackMember<'_>],
        regions: Option<&dyn RegionView>,
        out: &mut PackOutputs,
    ) -> Result<(), FaultKind>;

    /// Bytes of linear memory the instance currently holds.
    fn memory_bytes(&self) -> u64;
}

/// Facts about a loaded agent module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Name the module was loaded under (usually its path).
    pub name: String,
    /// blake3 of the module bytes.
    pub hash: [u8; 32],
    /// ABI version the module declares.
    pub abi_version: u32,
    /// Imports the module uses, as `module.name`.
    pub imports: Vec<String>,
    /// What the module declares it may use.
    pub capabilities: crate::Capabilities,
    /// Whether the module exports `we_pack_call`, so that its agents can be
    /// packed ([`PackInstance`]).
    pub packable: bool,
}

/// Something that loads agent modules and makes instances of them.
pub trait AgentHost: Send + Sync {
    /// Validates and compiles a module once; returns its index for
    /// [`AgentHost::instantiate`].
    fn load(&mut self, name: &str, bytes: &[u8]) -> Result<usize, BoxError>;
    /// Facts about a loaded module.
    fn module_info(&self, module: usize) -> Option<&ModuleInfo>;
    /// Makes a fresh instance of `module` for `agent`. `seed` is the run seed,
    /// from which the instance derives its PRNG stream.
    fn instantiate(
        &self,
        module: usize,
        agent: AgentId,
        seed: u64,
    ) -> Result<Box<dyn AgentInstance>, BoxError>;

    /// Makes a fresh instance of `module` that hosts a pack of `slots`
    /// agents (see [`PackInstance`]). The default: this host has no packs.
    fn instantiate_pack(
        &self,
        module: usize,
        slots: u32,
        seed: u64,
    ) -> Result<Box<dyn PackInstance>, BoxError> {
        let _ = (module, slots, seed);
        Err("this agent host cannot run agent packs".into())
    }
}

/// An inference request committed in tick `tick`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferenceRequest {
    /// The requesting agent.
    pub agent: AgentId,
    /// The agent's tag for matching the result.
    pub tag: u32,
    /// Model name. Shared: the runtime gives the requests of one model one
    /// allocation, so telling two requests' models apart is a pointer
    /// comparison ([`Arc::ptr_eq`]) rather than a read of each request's
    /// name from wherever its own copy lives.
    pub model: Arc<str>,
    /// Input tensors in the we-abi tensor format (without the request header).
    pub inputs: Vec<u8>,
    /// Number of tensors in `inputs`.
    pub tensor_count: u16,
}

/// One request of a [`Requests`] batch, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The requesting agent.
    pub agent: AgentId,
    /// The agent's tag for matching the result.
    pub tag: u32,
    /// Model name (shared, see [`InferenceRequest::model`]).
    pub model: &'a Arc<str>,
    /// Input tensors in the we-abi tensor format (without the request header).
    pub inputs: &'a [u8],
    /// Number of tensors in `inputs`.
    pub tensor_count: u16,
}

impl Request<'_> {
    /// The request as an owned [`InferenceRequest`].
    pub fn to_owned(&self) -> InferenceRequest {
        InferenceRequest {
            agent: self.agent,
            tag: self.tag,
            model: Arc::clone(self.model),
            inputs: self.inputs.to_vec(),
            tensor_count: self.tensor_count,
        }
    }
}

/// Where one request of a [`Requests`] batch keeps its fields.
#[derive(Clone, Debug)]
struct RequestHead {
    agent: AgentId,
    tag: u32,
    model: Arc<str>,
    start: usize,
    len: usize,
    tensor_count: u16,
}

/// One tick's inference requests, in commit order, every request's tensors
/// in one buffer.
///
/// The commit appends a request's tensors where the last one's end, and the
/// backend reads them in the same order: one stream through memory, not a
/// visit to a buffer of each request's own. [`Requests::clear`] keeps
/// everything for the next tick; a request pushed where an earlier one was
/// keeps that one's model name when it is the same allocation, so a model
/// asked tick after tick costs no reference counting.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    heads: Vec<RequestHead>,
    live: usize,
    bytes: Vec<u8>,
}

impl Requests {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of requests.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there is no request.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Forgets the requests, keeping the buffers (and the model names) for
    /// the next ones.
    pub fn clear(&mut self) {
        self.live = 0;
        self.bytes.clear();
    }

    /// Appends a request; `inputs` are copied into the batch's buffer.
    #[inline]
    pub fn push(
        &mut self,
        agent: AgentId,
        tag: u32,
        model: &Arc<str>,
        inputs: &[u8],
        tensor_count: u16,
    ) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(inputs);
        let len = inputs.len();
        match self.heads.get_mut(self.live) {
            Some(h) => {
                h.agent = agent;
                h.tag = tag;
                if !Arc::ptr_eq(&h.model, model) {
                    h.model = Arc::clone(model);
                }
                h.start = start;
                h.len = len;
                h.tensor_count = tensor_count;
            }
            None => self.heads.push(RequestHead {
                agent,
                tag,
                model: Arc::clone(model),
                start,
                len,
                tensor_count,
            }),
        }
        self.live += 1;
    }

    /// The request at `index`.
    #[inline]
    pub fn get(&self, index: usize) -> Option<Request<'_>> {
        self.heads
            .get(..self.live)
            .unwrap_or_default()
            .get(index)
            .map(|h| self.view(h))
    }

    /// The requests in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Request<'_>> + '_ {
        self.heads
            .get(..self.live)
            .unwrap_or_default()
            .iter()
            .map(|h| self.view(h))
    }

    #[inline]
    fn view<'a>(&'a self, h: &'a RequestHead) -> Request<'a> {
        Request {
            agent: h.agent,
            tag: h.tag,
            model: &h.model,
            inputs: self.bytes.get(h.start..h.start + h.len).unwrap_or_default(),
            tensor_count: h.tensor_count,
        }
    }
}

impl PartialEq for Requests {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Requests {}

impl<'a> Extend<&'a InferenceRequest> for Requests {
    fn extend<I: IntoIterator<Item = &'a InferenceRequest>>(&mut self, iter: I) {
        for r in iter {
            self.push(r.agent, r.tag, &r.model, &r.inputs, r.tensor_count);
        }
    }
}

impl FromIterator<InferenceRequest> for Requests {
    fn from_iter<I: IntoIterator<Item = InferenceRequest>>(iter: I) -> Self {
        let mut requests = Self::new();
        for r in iter {
            requests.push(r.agent, r.tag, &r.model, &r.inputs, r.tensor_count);
        }
        requests
    }
}

impl<'a> FromIterator<&'a InferenceRequest> for Requests {
    fn from_iter<I: IntoIterator<Item = &'a InferenceRequest>>(iter: I) -> Self {
        let mut requests = Self::new();
        requests.extend(iter);
        requests
    }
}

/// The answer to one [`InferenceRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferenceResult {
    /// The requesting agent.
    pub agent: AgentId,
    /// The request's tag.
    pub tag: u32,
    /// A we-abi result payload (result header and tensors), or why it failed.
    pub outcome: Result<Vec<u8>, String>,
}

/// Serves inference requests. Requests of one tick come in commit order; the
/// results must come back in the same order, one per request.
pub trait InferenceBackend: Send {
    /// Runs the requests of one tick into `results`: one result per request,
    /// in request order. `results` comes holding an earlier tick's results,
    /// whose buffers a backend may reuse; every entry is overwritten and the
    /// length set to the number of requests.
    fn run_into(&mut self, tick: Tick, requests: &Requests, results: &mut Vec<InferenceResult>);
    /// Runs the requests of one tick; [`InferenceBackend::run_into`] into a
    /// new vector.
    fn run(&mut self, tick: Tick, requests: &Requests) -> Vec<InferenceResult> {
        let mut results = Vec::with_capacity(requests.len());
        self.run_into(tick, requests, &mut results);
        results
    }
    /// Which execution provider serves requests and why; recorded in the trace header.
    fn describe(&self) -> String;
    /// Asks the backend to apply `post` to every result of `model` itself, so
    /// that what it returns for `model` is the payload delivered. Returns
    /// whether it will; by default it will not, and the runtime applies it.
    fn postprocess(&mut self, model: &str, post: Postprocess) -> bool {
        let _ = (model, post);
        false
    }
    /// What each thread the backend starts from now on runs first: the
    /// runtime keeps its own threads off the orchestrator's CPU this way,
    /// and asks the backend's helpers to do the same. By default the backend
    /// starts no thread of its own and ignores it.
    fn start_threads_with(&mut self, start: ThreadStart) {
        let _ = start;
    }
}

/// A hook a thread runs first thing (see
/// [`InferenceBackend::start_threads_with`]).
#[derive(Clone)]
pub struct ThreadStart(std::sync::Arc<dyn Fn() + Send + Sync>);

impl ThreadStart {
    /// The hook `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }

    /// Runs the hook on the calling thread.
    pub fn run(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for ThreadStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadStart")
    }
}

/// What a model's results go through before they are delivered (the
/// scenario's `[inference.postprocess]`). The trace records the delivered
/// payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Postprocess {
    /// The index of the greatest value of the first output, an f32 tensor
    /// (lowest index on a tie), as a little-endian `u64`; an error result if
    /// that output is not a non-empty f32 tensor.
    Argmax,
}

/// What a trace starts with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeader {
    /// Version of the runtime that recorded it.
    pub runtime_version: String,
    /// blake3 of the scenario file bytes.
    pub scenario_digest: [u8; 32],
    /// blake3 of the resolved, worker-independent configuration.
    pub config_digest: [u8; 32],
    /// Run seed.
    pub seed: u64,
    /// Number of agents.
    pub agent_count: u32,
    /// `(name, blake3)` of every agent module, in load order.
    pub modules: Vec<(String, [u8; 32])>,
    /// Free-form settings recorded for humans (`key=value`), e.g. the inference
    /// provider or that unsigned modules were allowed.
    pub notes: Vec<String>,
    /// The scenario file itself, so a trace can be replayed on its own.
    pub scenario: Vec<u8>,
}

/// What one committed tick leaves in the trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickRecord {
    /// The tick.
    pub tick: Tick,
    /// blake3 over every committed effect of the tick, in commit order.
    pub effects_digest: [u8; 32],
    /// The workload digest after this tick (see `shared/workloads.md`).
    pub workload_digest: [u8; 32],
    /// Messages committed for delivery at the next tick.
    pub messages: u64,
    /// Per-agent digests of the effects each agent emitted, so a divergence
    /// can be pinned to an agent: a 64-bit FNV-1a fold of the effect bytes
    /// (a locator; tamper evidence comes from the blake3 chain over the
    /// record), of the fault's name for an agent that faulted, 0 for one
    /// that did not run; one per agent, in id order.
    pub agent_digests: Vec<u64>,
    /// Faults of the tick as `(agent, kind)`.
    pub faults: Vec<(AgentId, FaultKind)>,
    /// Inference results delivered at the next tick, in commit order, as
    /// delivered: the scenario's post-processing done.
    pub inference: Vec<InferenceResult>,
    /// External inputs that became tasks in this tick.
    pub inputs: Vec<Vec<u8>>,
    /// Runtime events of the tick, in order: injected faults (dropped,
    /// delayed, duplicated messages, failed model loads) and supervision
    /// (stops, restarts, group restarts), as canonical text.
    pub events: Vec<String>,
}

/// Receives the trace of a run.
pub trait TraceSink: Send {
    /// Writes the header; called once before the first tick.
    fn begin(&mut self, header: &TraceHeader) -> Result<(), BoxError>;
    /// Appends a committed tick; returns the chain hash after it.
    fn record(&mut self, record: &TickRecord) -> Result<[u8; 32], BoxError>;
    /// Flushes and closes the trace.
    fn finish(&mut self) -> Result<(), BoxError>;
}

/// A point-in-time view of the run for observers such as the UI.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Last committed tick.
    pub tick: u64,
    /// Number of agents.
    pub agent_count: u32,
    /// Faulted agents with their fault.
    pub faulted: Vec<(AgentId, FaultKind)>,
    /// Messages committed in the last tick.
    pub messages_last_tick: u64,
    /// Total messages delivered.
    pub messages_total: u64,
    /// Wall time of the last tick in nanoseconds (observability only).
    pub tick_time_ns: u64,
    /// Fuel used in the last tick, all agents together.
    pub fuel_last_tick: u64,
    /// Deepest inbox of the next tick.
    pub mailbox_depth_max: u32,
    /// Trace chain head after the last tick (zero without a trace).
    pub chain_head: [u8; 32],
    /// The newest log lines, oldest first.
    pub log_tail: Vec<String>,
    /// Committed shared regions as `(name, bytes)`, ascending by name, for
    /// observers that draw them (e.g. a grid world); regions larger than
    /// [`SNAPSHOT_REGION_BYTES_MAX`] are left out.
    pub regions: Vec<(u32, Vec<u8>)>,
}

/// Largest region copied into a [`Snapshot`].
pub const SNAPSHOT_REGION_BYTES_MAX: usize = 256 << 10;

/// Watches the run. `publish` must never block the tick.
pub trait StateObserver: Send {
    /// Called after each committed tick.
    fn publish(&mut self, snapshot: &Snapshot);
}

/// The first difference between a replay and its recording, returned (boxed)
/// by a verifying [`TraceSink`] so the runtime can stop and report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// First tick that differs.
    pub tick: u64,
    /// First agent whose effects differ, when known.
    pub agent: Option<u32>,
    /// What differs, expected versus actual.
    pub what: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "diverged at tick {}", self.tick)?;
        if let Some(agent) = self.agent {
            write!(f, ", agent {agent}")?;
        }
        write!(f, ": {}", self.what)
    }
}

impl std::error::Error for Divergence {}

#[cfg(test)]
mod tests {
    use super::{InferenceRequest, Requests};
    use crate::AgentId;
    use std::sync::Arc;

    fn owned(agent: u32, model: &Arc<str>, inputs: &[u8]) -> InferenceRequest {
        InferenceRequest {
            agent: AgentId::new(agent),
            tag: agent * 10,
            model: Arc::clone(model),
            inputs: inputs.to_vec(),
            tensor_count: 1,
        }
    }

    #[test]
    fn a_batch_gives_back_what_was_pushed_and_reuses_its_heads() {
        let policy: Arc<str> = "policy".into();
        let value: Arc<str> = "value".into();
        let first = [
            owned(0, &policy, b"abc"),
            owned(1, &value, b""),
            owned(2, &policy, b"defgh"),
        ];
        let mut batch: Requests = first.iter().collect();
        assert_eq!(batch.len(), 3);
        for (i, want) in first.iter().enumerate() {
            let got = batch.get(i).unwrap();
            assert_eq!(got.to_owned(), *want);
            assert!(Arc::ptr_eq(got.model, &want.model));
        }
        assert!(batch.get(3).is_none());
        assert_eq!(batch.iter().len(), 3);

        // A second tick: fewer requests, the heads' model names kept where
        // they are the same allocation, replaced where not.
        batch.clear();
        assert!(batch.is_empty() && batch.get(0).is_none());
        batch.push(AgentId::new(7), 70, &policy, b"xy", 1);
        batch.push(AgentId::new(8), 80, &policy, b"z", 2);
        assert_eq!(batch.len(), 2);
        let r = batch.get(1).unwrap();
        assert_eq!(
            (r.agent.index, r.tag, r.inputs, r.tensor_count),
            (8, 80, &b"z"[..], 2)
        );
        assert!(Arc::ptr_eq(r.model, &policy));
        assert_eq!(
            batch.iter().map(|r| r.agent.index).collect::<Vec<_>>(),
            [7, 8]
        );
        // Equal batches compare equal whatever their history.
        let fresh: Requests = [owned(7, &policy, b"xy"), owned(8, &policy, b"z")]
            .into_iter()
            .map(|mut r| {
                r.tag = r.agent.index * 10;
                r.tensor_count = if r.agent.index == 8 { 2 } else { 1 };
                r
            })
            .collect();
        assert_eq!(batch, fresh);
    }
}
