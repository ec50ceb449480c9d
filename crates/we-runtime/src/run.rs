//! The tick loop: schedule, run on the pool, commit in agent order, digest, trace.

use crate::affinity;
use crate::fanout;
use crate::faults::{Fate, Injector};
use crate::pool::{AgentSpec, Phase, Pool, RUN_RESTART, RUN_SKIP, RUN_STEP, Shared};
use crate::recorder::{self, Bundle, Chain, DIGEST_PREFIX, Outcome, Recorder, Returned};
use crate::regions::Regions;
use crate::scenario::{PolicyName, Scenario};
use crate::supervise::{Decision, Supervisor};
use crate::{Error, Result};
use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use we_abi::{EffectHeader, Records, msg_kind, op, tensor};
use we_core::hint::short_eq;
use we_core::{
    AgentHost, AgentId, Capabilities, FaultKind, InferenceBackend, Postprocess, Requests, Snapshot,
    StateObserver, Task, TaskId, TaskKind, ThreadStart, Tick, TickRecord, TraceHeader, TraceSink,
};
use we_ipc::{Bus, BusConfig};
use we_sched::{Policy, SchedConfig, Scheduler};

/// How to run, beyond what the scenario says. Nothing here changes results.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads; overrides the scenario; `None` uses the scenario's value,
    /// else the number of available cores.
    pub workers: Option<usize>,
    /// Test-only: workers sleep up to this many microseconds before each agent,
    /// to shake out any dependence on timing.
    pub perturb_us: u32,
    /// Keep this many recent log lines in memory.
    pub log_tail_lines: usize,
    /// Development only: run modules that carry no signature. The run summary
    /// and the trace header say so.
    pub allow_unsigned: bool,
    /// With two or more workers, a tick's commit is split over two threads by
    /// receiver when the previous tick's delivered at least this many
    /// messages, and always in the first tick (`None`:
    /// [`DEFAULT_SPLIT_COMMIT_MIN`]; `Some(0)`: always). The result is the
    /// same either way.
    pub split_commit_min: Option<u64>,
    /// In [`Runtime::run`], a tick whose workload-digest input is at least
    /// this many bytes is recorded before the next tick starts instead of
    /// alongside it (`None`: 16 MiB; `Some(0)`: every tick). The trace is
    /// the same either way.
    pub record_wait_bytes: Option<usize>,
    /// Let the threads the runtime starts run on every CPU. By default they
    /// keep off one, which the orchestrator's thread then has to itself
    /// (when there are at least as many CPUs as workers; see
    /// `affinity.rs`). For measurements.
    pub share_orchestrator_cpu: bool,
    /// In [`Runtime::run`], where ticks are recorded: `Some(true)` on the
    /// last pool worker's thread between its phases, `Some(false)` on a
    /// thread of their own; `None` on the worker when every CPU already
    /// runs a partition (at least two workers, and no more CPUs than
    /// workers), where a thread of their own would only share a worker's
    /// core. The trace is the same either way.
    pub record_on_worker: Option<bool>,
}

/// Below this many messages a tick's commit is not worth a second thread.
pub const DEFAULT_SPLIT_COMMIT_MIN: u64 = 16_384;

/// Wall time of each tick, for reports only.
#[derive(Clone, Debug, Default)]
pub struct TickTimes {
    /// Nanoseconds per tick, in tick order.
    pub ns: Vec<u64>,
}

impl TickTimes {
    /// The `q` quantile (0..=1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.ns.is_empty() {
            return 0.0;
        }
        let mut sorted = self.ns.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1e6
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Ticks run.
    pub ticks: u64,
    /// Agents in the run.
    pub agents: u32,
    /// Worker threads used.
    pub workers: usize,
    /// Messages delivered (committed into an inbox).
    pub messages_delivered: u64,
    /// Messages refused by backpressure or addressing.
    pub messages_refused: u64,
    /// Inference requests served.
    pub inferences: u64,
    /// Faults by kind name.
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Every fault as (agent, tick, kind), in order.
    pub faults: Vec<(AgentId, u64, FaultKind)>,
    /// The workload digest (`shared/workloads.md`) after the last tick.
    pub workload_digest: [u8; 32],
    /// Trace chain head after the last tick (zero without a trace).
    pub chain_head: [u8; 32],
    /// Wall time of the tick loop in seconds (init and shutdown excluded).
    pub wall_s: f64,
    /// Wall time of the init phase (`agent_init` of every agent) in seconds.
    pub init_s: f64,
    /// Log lines written by agents.
    pub log_lines: u64,
    /// The inference provider and why it was chosen (empty without inference).
    pub inference_provider: String,
    /// Region effects refused (non-owner writes, bad ranges, limits).
    pub region_refusals: u64,
    /// Effects refused because the module does not declare the capability.
    pub capability_refusals: u64,
    /// Modules that ran without a signature (allowed for development).
    pub unsigned_modules: Vec<String>,
    /// Signed modules and the id of the trusted key that signed each.
    pub signed_modules: Vec<(String, String)>,
    /// Injected faults by kind: `trap`, `drop`, `delay`, `duplicate`, `model`.
    pub injected: BTreeMap<String, u64>,
    /// Supervised restarts (agents restarted, group restarts included).
    pub restarts: u64,
    /// Messages addressed to a dead generation: left unread in a faulted
    /// agent's inbox, or sent to it while it was down.
    pub dead_letters: u64,
}

/// Advances a workload digest: `blake3(prev || bytes)`, where `bytes` is the
/// tick number (u64 LE) followed by the encodings of the tick's messages.
pub fn workload_digest_update(prev: &[u8; 32], tick_and_messages: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(tick_and_messages);
    *h.finalize().as_bytes()
}

/// A 64-bit digest of an agent's effect bytes: a cheap locator of the first
/// diverging agent (tamper evidence comes from the blake3 chain over the
/// whole record). FNV-1a's step over 8-byte little-endian words (effect
/// records are 8-aligned, so there is no tail in practice; a tail is taken
/// byte by byte), then the length, then a final fold of the high half into
/// the low. Workers compute it for the effects of their own agents, beside
/// the call.
pub(crate) fn agent_digest(index: u32, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ index as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(PRIME);
    }
    h = (h ^ bytes.len() as u64).wrapping_mul(PRIME);
    h ^ (h >> 32)
}

/// The tick state, which the orchestrator alone holds between phases.
fn exclusive(shared: &mut Arc<Shared>) -> Result<&mut Shared> {
    Arc::get_mut(shared).ok_or(Error::Internal(
        "a worker still holds the shared tick state at commit",
    ))
}

/// The last model name an inference request of the commit named, decoded,
/// and whether the agents of its group may use it: the agents of a workload
/// ask one model tick after tick, so the name is decoded and looked up once
/// for a run of such requests, not once per request.
#[derive(Default)]
struct ModelCheck {
    /// The group whose capabilities `allowed` answers for.
    group: Option<usize>,
    /// The name's bytes as the request gave them.
    raw: Vec<u8>,
    /// The name decoded (lossily, where the bytes are not UTF-8), as the
    /// requests carry it: one allocation for every request of the model,
    /// kept from tick to tick (see [`intern`]).
    shared: Arc<str>,
    allowed: bool,
}

/// Most model names kept shared from tick to tick.
const MODEL_NAMES_KEPT: usize = 16;

/// The shared copy of `name` from `names`, made and kept there (the oldest
/// dropped beyond [`MODEL_NAMES_KEPT`]) if it is not yet. Requests of one
/// model then hold one allocation, tick after tick: a recycled request
/// already holds it, and the backend tells models apart by pointer.
fn intern(names: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(kept) = names.iter().find(|n| ***n == *name) {
        return Arc::clone(kept);
    }
    let new: Arc<str> = Arc::from(name);
    if names.len() >= MODEL_NAMES_KEPT {
        names.remove(0);
    }
    names.push(Arc::clone(&new));
    new
}

impl ModelCheck {
    /// Whether this is the check of `raw` for `group`.
    #[inline]
    fn holds(&self, group: usize, raw: &[u8]) -> bool {
        self.group == Some(group) && short_eq(&self.raw, raw)
    }

    /// Decodes `raw` (strictly first: the lossy decoder's chunking is the
    /// slower path) and looks it up in `caps`.
    fn check(&mut self, group: usize, raw: &[u8], caps: &Capabilities, names: &mut Vec<Arc<str>>) {
        self.group = Some(group);
        self.raw.clear();
        self.raw.extend_from_slice(raw);
        let name = match std::str::from_utf8(raw) {
            Ok(name) => std::borrow::Cow::Borrowed(name),
            Err(_) => String::from_utf8_lossy(raw),
        };
        self.allowed = caps.models.allows(&name);
        self.shared = intern(names, &name);
    }
}

struct AgentMeta {
    id: AgentId,
    /// Stopped by its supervisor (a group restart) without a fault of its own.
    stopped: bool,
    /// Index of its `[[agents]]` group.
    group: usize,
    priority: u8,
    fault: Option<(u64, FaultKind)>,
    queued: bool,
}

/// A prepared run: modules loaded, agents instantiated on their workers.
pub struct Runtime {
    scenario: Scenario,
    agents: Vec<AgentMeta>,
    pool: Pool,
    shared: Arc<Shared>,
    sched: Scheduler,
    task_seq: u64,
    dispatched: Vec<Task>,
    inference: Option<Box<dyn InferenceBackend>>,
    observer: Option<Box<dyn StateObserver>>,
    /// Models the scenario post-processes with `argmax`.
    argmax_models: Vec<String>,
    /// Of those, the ones the backend does not post-process itself.
    argmax_here: Vec<String>,
    /// Capabilities each group's module declares.
    group_caps: Vec<Capabilities>,
    header_notes: Vec<String>,
    next_tick: u64,
    started: bool,
    /// The workload digest, the trace chain and the sink; with the
    /// recording loop while [`Runtime::run`] runs.
    chain: Chain,
    /// The recording loop, while [`Runtime::run`] runs (see recorder.rs).
    recorder: Option<Recorder>,
    /// The last committed tick, not yet handed to the recording loop.
    pending: Option<Bundle>,
    /// Bundles back from the recording loop, for their buffers.
    free: Vec<Bundle>,
    digest_buf: Vec<u8>,
    /// Runs of `digest_buf` left in a split commit's buffers.
    pieces: recorder::Pieces,
    /// The bytes of one commit's effects digest, gathered so that blake3 hashes
    /// them in one call (its SIMD path needs whole chunks in one update).
    effects_buf: Vec<u8>,
    /// The thread that commits half of a split delivery (see fanout.rs) with
    /// two or more workers; started at the first commit, `None` without a
    /// second core or when no thread could be had (the commit then does both
    /// halves).
    helper: Option<rayon_core::ThreadPool>,
    /// Whether starting `helper` was tried (it is tried once).
    helper_tried: bool,
    /// Where the threads the runtime starts run (`None`: anywhere).
    support: Option<affinity::Cpus>,
    /// Messages committed in the last tick's commit; `u64::MAX` before the
    /// first tick, whose size nothing tells in advance (it is split, with
    /// two workers).
    last_messages: u64,
    /// The buffers of the two threads of a split commit, kept between ticks.
    fanned_spare: [fanout::Fanned; 2],
    /// Fewest messages in the last commit for the next one to be split over
    /// two threads ([`RunOptions::split_commit_min`]).
    split_commit_min: u64,
    /// [`RunOptions::record_wait_bytes`].
    record_wait_bytes: usize,
    /// [`RunOptions::record_on_worker`], decided.
    record_on_worker: bool,
    /// This tick's inference requests (their buffers kept from tick to tick).
    requests: Requests,
    /// Model names shared by the requests (see [`intern`]).
    model_names: Vec<Arc<str>>,
    /// Results of an earlier tick, kept for their buffers.
    spare_results: Vec<we_core::InferenceResult>,
    summary: RunSummary,
    log_tail: VecDeque<String>,
    log_tail_lines: usize,
    times: TickTimes,
    last_record: TickRecord,
    last_fuel: u64,
    last_depth: u32,
    snapshot_regions: Vec<(u32, Vec<u8>)>,
    /// blake3 of each group's module file, as recorded in the trace header.
    group_file_hashes: Vec<[u8; 32]>,
    injector: Injector,
    supervisor: Supervisor,
    /// Agents to restart, by tick.
    restarts_due: BTreeMap<u64, Vec<u32>>,
    /// Message copies held back by a delay fault, by the tick of their commit:
    /// `(sender, receiver, topic, payload)`.
    delayed: BTreeMap<u64, Vec<HeldCopy>>,
    /// Events of the coming commit decided before it (restarts at schedule).
    pending_events: Vec<String>,
    /// Set when a supervisor gives up; returned after the tick is recorded.
    abort: Option<Error>,
}

/// A message copy held back by a delay fault: `(sender, receiver, topic of a
/// publish, payload)`.
type HeldCopy = (u32, u32, Option<u32>, Vec<u8>);

impl AgentMeta {
    fn alive(&self) -> bool {
        self.fault.is_none() && !self.stopped
    }
}

impl Runtime {
    /// Loads the scenario's modules into `host` and instantiates every agent.
    pub fn new(
        scenario: Scenario,
        mut host: Box<dyn AgentHost>,
        options: RunOptions,
    ) -> Result<Self> {
        let mut specs = Vec::with_capacity(scenario.agent_count() as usize);
        let mut agents = Vec::with_capacity(specs.capacity());
        let mut index = 0u32;
        let mut group_modules = Vec::with_capacity(scenario.agents.len());
        let mut group_file_hashes = Vec::with_capacity(scenario.agents.len());
        let key_paths: Vec<PathBuf> = scenario
            .security
            .trusted_keys
            .iter()
            .map(|k| scenario.base_dir.join(k))
            .collect();
        let trusted = we_sign::load_trusted_keys(&key_paths)
            .map_err(|e| Error::TrustedKeys(e.to_string()))?;
        let mut unsigned_modules = Vec::new();
        let mut signed_modules = Vec::new();
        for (g, group) in scenario.agents.iter().enumerate() {
            let path = scenario
                .module_path(g)
                .ok_or(Error::Internal("group index out of range"))?;
            let module_err = |reason: String| Error::Module {
                group: group.name.clone(),
                path: path.clone(),
                reason,
            };
            let bytes = std::fs::read(&path).map_err(|e| module_err(e.to_string()))?;
            let shown = path.display().to_string();
            // The signature is checked before anything is compiled; the
            // compiler gets exactly the bytes that were signed.
            let verdict = we_sign::check_module(&shown, &bytes, &trusted, options.allow_unsigned)
                .map_err(|e| module_err(e.to_string()))?;
            let code = match verdict {
                we_sign::Verdict::Signed(v) => {
                    signed_modules.push((group.module.display().to_string(), v.key_id.to_string()));
                    v.module
                }
                we_sign::Verdict::UnsignedAllowed => {
                    unsigned_modules.push(group.module.display().to_string());
                    &bytes[..]
                }
            };
            let module = host
                .load(&shown, code)
                .map_err(|e| module_err(e.to_string()))?;
            if group.pack > 1 && !host.module_info(module).is_some_and(|info| info.packable) {
                return Err(module_err(format!(
                    "`pack = {}` needs a module that exports `{}` (agents built with the \
                     we-agent SDK do)",
                    group.pack,
                    we_abi::exports::PACK_CALL
                )));
            }
            group_modules.push(module);
            group_file_hashes.push(*blake3::hash(&bytes).as_bytes());
            let config: Arc<[u8]> = scenario.config_bytes(g).into();
            for k in 0..group.count {
                let id = AgentId::new(index);
                specs.push(AgentSpec {
                    id,
                    module,
                    group: g,
                    group_index: k,
                    config: config.clone(),
                    pack: group.pack,
                });
                agents.push(AgentMeta {
                    id,
                    stopped: false,
                    group: g,
                    priority: group.priority,
                    fault: None,
                    queued: false,
                });
                index += 1;
            }
        }
        let agent_count = index;
        let scenario_error = |(field, problem): (String, String)| Error::Scenario {
            file: scenario.base_dir.display().to_string(),
            field,
            problem,
        };
        let injector = Injector::new(&scenario.faults, scenario.seed).map_err(scenario_error)?;
        let group_names: Vec<String> = scenario.agents.iter().map(|g| g.name.clone()).collect();
        let supervisor = Supervisor::new(&scenario.supervision, &group_names, agent_count)
            .map_err(scenario_error)?;
        let group_caps = group_modules
            .iter()
            .map(|&m| {
                host.module_info(m)
                    .map(|info| info.capabilities.clone())
                    .unwrap_or_default()
            })
            .collect();
        let host: Arc<dyn AgentHost> = Arc::from(host);
        let workers = options
            .workers
            .or(scenario.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let support = if options.share_orchestrator_cpu {
            None
        } else {
            affinity::support_cpus(workers)
        };
        let pool = Pool::new(
            host.clone(),
            &specs,
            workers,
            scenario.seed,
            support.clone(),
        )?;
        let limits = &scenario.limits;
        let bus = Bus::new(
            agent_count,
            BusConfig {
                mailbox_capacity: limits.mailbox_capacity,
                max_message_bytes: limits.message_bytes_max,
                max_topics_per_agent: limits.topics_per_agent_max,
            },
        );
        let sched = Scheduler::new(SchedConfig {
            policy: match scenario.scheduler.policy {
                PolicyName::Fifo => Policy::Fifo,
                PolicyName::Priority => Policy::Priority,
            },
            max_tasks_per_tick: match scenario.scheduler.max_tasks_per_tick {
                0 => None,
                n => Some(n),
            },
        });
        let mut sched = sched;
        // The round-robin rotates over every agent from tick 0 on.
        sched
            .reserve_agents(agent_count)
            .map_err(|e| Error::Sched(e.to_string()))?;
        let shared = Arc::new(Shared {
            tick: Tick(0),
            agent_count,
            bus,
            regions: Regions::new(limits.region_bytes_max, limits.regions_max),
            run: vec![RUN_SKIP; agent_count as usize],
            generations: vec![0; agent_count as usize],
            fuel_per_call: limits.fuel_per_call,
            perturb_us: options.perturb_us,
        });
        let argmax_models: Vec<String> = scenario
            .inference
            .as_ref()
            .map(|i| {
                i.postprocess
                    .iter()
                    .filter(|(_, v)| v.as_str() == "argmax")
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            summary: RunSummary {
                agents: agent_count,
                workers,
                unsigned_modules,
                signed_modules,
                ..RunSummary::default()
            },
            scenario,
            agents,
            pool,
            shared,
            sched,
            task_seq: 0,
            dispatched: Vec::new(),
            inference: None,
            observer: None,
            argmax_here: argmax_models.clone(),
            argmax_models,
            group_caps,
            header_notes: Vec::new(),
            next_tick: 0,
            started: false,
            chain: Chain::default(),
            recorder: None,
            pending: None,
            free: Vec::new(),
            digest_buf: Vec::new(),
            pieces: recorder::Pieces::default(),
            effects_buf: Vec::new(),
            helper: None,
            helper_tried: false,
            support,
            last_messages: u64::MAX,
            fanned_spare: Default::default(),
            split_commit_min: options.split_commit_min.unwrap_or(DEFAULT_SPLIT_COMMIT_MIN),
            record_wait_bytes: options.record_wait_bytes.unwrap_or(recorder::WAIT_MIN),
            record_on_worker: options
                .record_on_worker
                .unwrap_or(workers >= 2 && workers >= affinity::cpu_count()),
            requests: Requests::new(),
            model_names: Vec::new(),
            spare_results: Vec::new(),
            log_tail: VecDeque::new(),
            log_tail_lines: options.log_tail_lines,
            times: TickTimes::default(),
            last_record: TickRecord::default(),
            last_fuel: 0,
            last_depth: 0,
            snapshot_regions: Vec::new(),
            group_file_hashes,
            injector,
            supervisor,
            restarts_due: BTreeMap::new(),
            delayed: BTreeMap::new(),
            pending_events: Vec::new(),
            abort: None,
        })
    }

    /// Records the run into `sink`.
    pub fn set_trace(&mut self, sink: Box<dyn TraceSink>) {
        self.chain.sink = Some(sink);
    }

    /// Serves inference requests with `backend`.
    pub fn set_inference(&mut self, mut backend: Box<dyn InferenceBackend>) {
        self.argmax_here = self
            .argmax_models
            .iter()
            .filter(|m| !backend.postprocess(m, Postprocess::Argmax))
            .cloned()
            .collect();
        if let Some(cpus) = self.support.clone() {
            backend.start_threads_with(ThreadStart::new(move || affinity::keep_to(Some(&cpus))));
        }
        self.inference = Some(backend);
    }

    /// Publishes a snapshot to `observer` after each tick.
    pub fn set_observer(&mut self, observer: Box<dyn StateObserver>) {
        self.observer = Some(observer);
    }

    /// Adds a `key=value` note to the trace header (before [`Runtime::start`]).
    pub fn add_header_note(&mut self, note: String) {
        self.header_notes.push(note);
    }

    /// Number of agents.
    pub fn agent_count(&self) -> u32 {
        self.summary.agents
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The summary so far.
    pub fn summary(&self) -> &RunSummary {
        &self.summary
    }

    /// Wall time per tick so far.
    pub fn tick_times(&self) -> &TickTimes {
        &self.times
    }

    /// The most recent log lines.
    pub fn log_tail(&self) -> impl Iterator<Item = &str> {
        self.log_tail.iter().map(String::as_str)
    }

    /// The record of the last committed tick.
    pub fn last_record(&self) -> &TickRecord {
        &self.last_record
    }

    fn shared_mut(&mut self) -> Result<&mut Shared> {
        exclusive(&mut self.shared)
    }

    /// Runs `agent_init` on every agent, commits its effects (delivered at
    /// tick 0) and writes the trace header.
    pub fn start(&mut self) -> Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.pool.run(Phase::Init, &self.shared)?;
        self.digest_buf.clear();
        self.pieces.splices.clear();
        self.commit(u64::MAX, true)?;
        let init_effects = *blake3::hash(&self.effects_buf).as_bytes();
        let mut notes = vec![
            format!("abi_version={}", we_abi::ABI_VERSION),
            format!("init_effects_digest={}", hex(&init_effects)),
        ];
        if let Some(backend) = &self.inference {
            // Only the provider's kind goes into the header (which the chain
            // hashes); the full reason names machine-specific paths and is in
            // the run summary instead.
            let described = backend.describe();
            // "...; cuda (...)" when CUDA serves, else CPU (possibly after a fallback).
            let kind = if described.split("; ").any(|part| part.starts_with("cuda")) {
                "cuda"
            } else {
                "cpu"
            };
            notes.push(format!("inference_provider={kind}"));
            self.summary.inference_provider = described;
        }
        if !self.summary.unsigned_modules.is_empty() {
            notes.push(format!(
                "security=UNSIGNED MODULES ALLOWED (development): {}",
                self.summary.unsigned_modules.join(", ")
            ));
        }
        for (module, key) in &self.summary.signed_modules {
            notes.push(format!("signed_by={module}:{key}"));
        }
        notes.append(&mut self.header_notes);
        if let Some(sink) = self.chain.sink.as_mut() {
            // Modules are named as the scenario writes them, so the header (and
            // the chain) does not depend on where the run was started from.
            let modules = self
                .scenario
                .agents
                .iter()
                .zip(&self.group_file_hashes)
                .map(|(g, hash)| (g.module.display().to_string(), *hash))
                .collect();
            let header = TraceHeader {
                runtime_version: env!("CARGO_PKG_VERSION").to_string(),
                scenario_digest: *blake3::hash(&self.scenario.source).as_bytes(),
                config_digest: config_digest(&self.scenario),
                seed: self.scenario.seed,
                agent_count: self.summary.agents,
                modules,
                notes,
                scenario: self.scenario.source.clone(),
            };
            sink.begin(&header).map_err(|e| Error::Trace {
                tick: 0,
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Whether every tick of the scenario has run.
    pub fn finished(&self) -> bool {
        self.next_tick >= self.scenario.ticks
    }

    /// Runs one tick; returns its number.
    pub fn step(&mut self) -> Result<u64> {
        self.start()?;
        let t = self.next_tick;
        let began = Instant::now();
        self.schedule(t)?;
        self.pool.run(Phase::Tick, &self.shared)?;
        if self.recorder.is_some() {
            self.take_buffers()?;
        }
        // The digest's whole input in one buffer (`D_{t-1}`, filled in when
        // recorded, t, the tick's message encodings), so that it can be
        // hashed on two threads.
        self.digest_buf.clear();
        self.pieces.splices.clear();
        self.digest_buf.extend_from_slice(&[0; DIGEST_PREFIX]);
        self.digest_buf.extend_from_slice(&t.to_le_bytes());
        self.commit(t, false)?;
        self.last_record.tick = Tick(t);
        if self.recorder.is_some() {
            let large = self.digest_buf.len() + self.pieces.len() >= self.record_wait_bytes;
            self.pending = Some(self.take_bundle());
            if large {
                self.wait_recording()?;
            }
        } else {
            self.record_here(t)?;
        }
        self.next_tick = t + 1;
        if let Some(e) = self.abort.take() {
            // The tick that gave up is recorded; the run stops here.
            self.summary.ticks = self.next_tick;
            return Err(e);
        }
        self.summary.ticks = self.next_tick;
        let ns = began.elapsed().as_nanos() as u64;
        self.times.ns.push(ns);
        if self.observer.is_some() {
            let n = self.summary.agents;
            let mut fuel = 0u64;
            let mut depth = 0u32;
            for i in 0..n {
                if let Some(r) = self.pool.result(i) {
                    fuel += r.emitted.fuel_used;
                }
                depth = depth.max(self.shared.bus.inbox_len(i));
            }
            self.last_fuel = fuel;
            self.last_depth = depth;
        }
        if self.observer.is_some() {
            let mut regions = std::mem::take(&mut self.snapshot_regions);
            self.shared
                .regions
                .snapshot_into(we_core::SNAPSHOT_REGION_BYTES_MAX, &mut regions);
            self.snapshot_regions = regions;
        }
        if let Some(observer) = self.observer.as_mut() {
            let snapshot = Snapshot {
                regions: self.snapshot_regions.clone(),
                fuel_last_tick: self.last_fuel,
                mailbox_depth_max: self.last_depth,
                tick: t,
                agent_count: self.summary.agents,
                faulted: self
                    .agents
                    .iter()
                    .filter_map(|a| a.fault.as_ref().map(|(_, k)| (a.id, k.clone())))
                    .collect(),
                messages_last_tick: self.last_record.messages,
                messages_total: self.summary.messages_delivered,
                tick_time_ns: ns,
                chain_head: self.chain.head,
                log_tail: self.log_tail.iter().rev().take(20).rev().cloned().collect(),
            };
            observer.publish(&snapshot);
        }
        Ok(t)
    }

    /// Runs the remaining ticks, then shuts the agents down.
    pub fn run(&mut self, mut progress: impl FnMut(u64)) -> Result<RunSummary> {
        let init_began = Instant::now();
        self.start()?;
        self.summary.init_s = init_began.elapsed().as_secs_f64();
        let began = Instant::now();
        // The UI's snapshots carry each tick's chain head: with an observer
        // every tick is recorded before the next one runs.
        if self.observer.is_none() && self.recorder.is_none() {
            let parallel = self.pool.width() >= 2;
            let chain = std::mem::take(&mut self.chain);
            let hosted = if self.record_on_worker {
                Recorder::hosted(chain, parallel, &self.pool)
            } else {
                Err(chain)
            };
            match hosted.or_else(|chain| Recorder::spawn(chain, parallel, self.support.clone())) {
                Ok(recorder) => self.recorder = Some(recorder),
                // No thread to be had: record on this one.
                Err(chain) => self.chain = chain,
            }
        }
        let mut ran = Ok(());
        while !self.finished() {
            match self.step() {
                Ok(t) => progress(t),
                Err(e) => {
                    ran = Err(e);
                    break;
                }
            }
        }
        // Every committed tick is recorded before the run reports anything,
        // a failure included; a trace that could not be written comes first.
        let recorded = self.stop_recording();
        self.summary.wall_s = began.elapsed().as_secs_f64();
        recorded?;
        ran?;
        self.shutdown()?;
        Ok(self.summary.clone())
    }

    /// Records the tick just committed on this thread.
    fn record_here(&mut self, t: u64) -> Result<()> {
        let mut bundle = self.take_bundle();
        let recorded = self.chain.record(&mut bundle, self.pool.width() >= 2);
        self.put_bundle(bundle);
        self.summary.workload_digest = self.chain.digest;
        recorded.map_err(|e| recorder::sink_error(t, e, |a| self.describe_effects(a)))?;
        self.summary.chain_head = self.chain.head;
        Ok(())
    }

    /// With the recording loop: hands it the last committed tick and puts
    /// free buffers in place for this tick's commit.
    fn take_buffers(&mut self) -> Result<()> {
        self.hand_over(false)?;
        let fresh = self.free.pop().unwrap_or_default();
        self.put_bundle(fresh);
        Ok(())
    }

    /// With the recording loop: hands it the tick just committed and waits
    /// until every tick handed over is recorded.
    fn wait_recording(&mut self) -> Result<()> {
        self.hand_over(true)
    }

    /// Hands the pending tick to the recording loop and takes back what it
    /// is done with: everything handed over with `wait`, else what is back.
    fn hand_over(&mut self, wait: bool) -> Result<()> {
        let Some(recorder) = self.recorder.as_mut() else {
            return Ok(());
        };
        let mut back = Vec::new();
        if let Some(bundle) = self.pending.take() {
            back.extend(recorder.submit(bundle)?);
        }
        if wait {
            back.extend(recorder.wait_all()?);
        } else {
            back.extend(std::iter::from_fn(|| recorder.try_take()));
        }
        for returned in back {
            self.absorb(returned)?;
        }
        Ok(())
    }

    /// The committed tick's record and digest inputs, leaving empty ones.
    fn take_bundle(&mut self) -> Bundle {
        Bundle {
            record: std::mem::take(&mut self.last_record),
            digest_buf: std::mem::take(&mut self.digest_buf),
            pieces: std::mem::take(&mut self.pieces),
            effects_buf: std::mem::take(&mut self.effects_buf),
        }
    }

    /// Puts `bundle`'s record and buffers in place for a commit.
    fn put_bundle(&mut self, bundle: Bundle) {
        self.last_record = bundle.record;
        self.digest_buf = bundle.digest_buf;
        self.pieces = bundle.pieces;
        self.effects_buf = bundle.effects_buf;
    }

    /// Takes a tick back from the recording loop: its digests into the
    /// summary, its buffers for reuse.
    fn absorb(&mut self, returned: Returned) -> Result<()> {
        self.free.push(returned.bundle);
        match returned.outcome {
            Outcome::Recorded { digest, head } => {
                self.chain.digest = digest;
                self.chain.head = head;
                self.summary.workload_digest = digest;
                self.summary.chain_head = head;
                Ok(())
            }
            Outcome::Failed(e) => Err(e),
            Outcome::Skipped => Ok(()),
        }
    }

    /// Records every tick handed over or pending, ends the recording loop
    /// and takes the chain back. The first recording failure is returned.
    fn stop_recording(&mut self) -> Result<()> {
        let Some(mut recorder) = self.recorder.take() else {
            return Ok(());
        };
        let mut first = Ok(());
        if let Some(bundle) = self.pending.take() {
            match recorder.submit(bundle) {
                Ok(Some(earlier)) => first = self.absorb(earlier),
                Ok(None) => {}
                Err(e) => first = Err(e),
            }
        }
        let (chain, returned) = recorder.finish()?;
        for r in returned {
            let absorbed = self.absorb(r);
            if first.is_ok() {
                first = absorbed;
            }
        }
        // The digests as recorded (`absorb` saw the same), and the sink back.
        self.chain = chain;
        if let Some(last) = self.free.pop() {
            self.put_bundle(last);
        }
        self.free.clear();
        first
    }

    /// Calls `agent_shutdown` on every live agent and closes the trace.
    pub fn shutdown(&mut self) -> Result<()> {
        let t = self.next_tick;
        let alive: Vec<bool> = self.agents.iter().map(AgentMeta::alive).collect();
        let shared = self.shared_mut()?;
        shared.tick = Tick(t);
        for (flag, alive) in shared.run.iter_mut().zip(alive) {
            *flag = if alive { RUN_STEP } else { RUN_SKIP };
        }
        self.pool.run(Phase::Shutdown, &self.shared)?;
        for i in 0..self.summary.agents {
            let fault = self.pool.result(i).and_then(|r| r.fault.clone());
            if let Some(kind) = fault {
                self.record_fault(i, t, kind);
            }
        }
        if let Some(sink) = self.chain.sink.as_mut() {
            sink.finish().map_err(|e| Error::Trace {
                tick: t,
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Queues a step for every live agent that has none queued and asks the
    /// scheduler which run this tick.
    fn schedule(&mut self, t: u64) -> Result<()> {
        // Restarts due now: a new generation, accepting messages again.
        let restarting = self.restarts_due.remove(&t).unwrap_or_default();
        for &i in &restarting {
            let Some(meta) = self.agents.get_mut(i as usize) else {
                continue;
            };
            meta.fault = None;
            meta.stopped = false;
            meta.id.generation = meta.id.generation.wrapping_add(1);
            self.summary.restarts += 1;
            self.pending_events
                .push(format!("restart agent {} g{}", i, meta.id.generation));
        }
        let unlimited = self.scenario.scheduler.max_tasks_per_tick == 0;
        if !unlimited {
            for meta in &mut self.agents {
                if meta.alive() && !meta.queued {
                    // Ids are dense from 0: the scheduler forgets an id once
                    // every id below it is dispatched, so a gap would keep it
                    // growing.
                    let task = Task::new(
                        TaskId(self.task_seq),
                        meta.id,
                        TaskKind::Step,
                        meta.priority,
                        self.task_seq,
                    );
                    self.task_seq += 1;
                    self.sched
                        .push(task)
                        .map_err(|e| Error::Sched(e.to_string()))?;
                    meta.queued = true;
                }
            }
            self.dispatched.clear();
            self.sched
                .dispatch_tick(&mut self.dispatched)
                .map_err(|e| Error::Sched(e.to_string()))?;
        }
        let shared = Arc::get_mut(&mut self.shared).ok_or(Error::Internal(
            "a worker still holds the shared tick state at schedule",
        ))?;
        shared.tick = Tick(t);
        if unlimited {
            // Without a per-tick limit the scheduler dispatches every queued
            // task under either policy, so the tick runs every live agent; the
            // order it would list them in does not matter (workers run their
            // agents by id, the commit is by id). It is skipped: same result,
            // none of its per-task cost.
            for (slot, meta) in shared.run.iter_mut().zip(&self.agents) {
                *slot = if meta.alive() { RUN_STEP } else { RUN_SKIP };
            }
        } else {
            shared.run.iter_mut().for_each(|r| *r = RUN_SKIP);
            for task in &self.dispatched {
                let i = task.agent.index as usize;
                if let Some(meta) = self.agents.get_mut(i) {
                    meta.queued = false;
                    if meta.alive()
                        && let Some(slot) = shared.run.get_mut(i)
                    {
                        *slot = RUN_STEP;
                    }
                }
            }
        }
        for &i in &restarting {
            if let (Some(meta), Some(slot), Some(generation)) = (
                self.agents.get(i as usize),
                shared.run.get_mut(i as usize),
                shared.generations.get_mut(i as usize),
            ) {
                *slot = RUN_RESTART;
                *generation = meta.id.generation;
                shared.bus.reopen(i);
            }
        }
        Ok(())
    }

    fn record_fault(&mut self, index: u32, t: u64, kind: FaultKind) {
        let Some(meta) = self.agents.get_mut(index as usize) else {
            return;
        };
        if meta.fault.is_some() {
            return;
        }
        meta.fault = Some((t, kind.clone()));
        let (id, group) = (meta.id, meta.group);
        *self
            .summary
            .faults_by_kind
            .entry(kind.name().to_string())
            .or_default() += 1;
        self.summary.faults.push((id, t, kind.clone()));
        self.last_record.faults.push((id, kind));
        self.take_down(index);
        if t == u64::MAX {
            // A fault in `agent_init` before tick 0: the agent stays down.
            return;
        }
        match self.supervisor.on_fault(index, group, t) {
            Decision::Stop => {
                self.last_record.events.push(format!("stop agent {index}"));
            }
            Decision::Restart { at } => {
                self.restarts_due.entry(at).or_default().push(index);
                self.last_record
                    .events
                    .push(format!("restart agent {index} due at tick {at}"));
            }
            Decision::RestartGroup { at } => {
                let members: Vec<u32> = self
                    .agents
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.group == group)
                    .map(|(k, _)| k as u32)
                    .collect();
                for &k in &members {
                    if let Some(m) = self.agents.get_mut(k as usize)
                        && m.alive()
                    {
                        m.stopped = true;
                        self.take_down(k);
                    }
                }
                let due = self.restarts_due.entry(at).or_default();
                for k in members {
                    if !due.contains(&k) {
                        due.push(k);
                    }
                }
                due.sort_unstable();
                let name = self
                    .scenario
                    .agents
                    .get(group)
                    .map(|g| g.name.clone())
                    .unwrap_or_default();
                self.last_record.events.push(format!(
                    "escalate agent {index}: restart group `{name}` due at tick {at}"
                ));
            }
            Decision::Abort { reason } => {
                self.last_record.events.push(format!("abort: {reason}"));
                if self.abort.is_none() {
                    self.abort = Some(Error::Supervision { tick: t, reason });
                }
            }
        }
    }

    /// An agent goes down: later messages to it are refused and counted, the
    /// unread ones committed to it are dead letters, its regions are released
    /// (handles to them become stale).
    fn take_down(&mut self, index: u32) {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            self.summary.dead_letters += u64::from(shared.bus.discard_next(index));
            shared.bus.close(index);
            shared.bus.leave_all(index);
            shared.regions.release_all(index);
        }
    }

    fn push_log(&mut self, line: String) {
        self.summary.log_lines += 1;
        if self.log_tail_lines == 0 {
            return;
        }
        if self.log_tail.len() >= self.log_tail_lines {
            self.log_tail.pop_front();
        }
        self.log_tail.push_back(line);
    }

    /// Commits the results of the last phase in agent id order, leaving in
    /// `effects_buf` the bytes the effects digest hashes and in `digest_buf`
    /// the tick's message encodings. `t == u64::MAX` marks the init phase.
    fn commit(&mut self, t: u64, init: bool) -> Result<()> {
        let mut record = std::mem::take(&mut self.last_record);
        record.faults.clear();
        // An earlier tick's results, for the backend to reuse their buffers.
        self.spare_results = std::mem::take(&mut record.inference);
        record.inputs.clear();
        record.agent_digests.clear();
        record.events.clear();
        record.events.append(&mut self.pending_events);
        record.messages = 0;
        self.last_record = record;
        // Last tick's requests keep their buffers for this tick's.
        self.requests.clear();
        let mut effects_buf = std::mem::take(&mut self.effects_buf);
        effects_buf.clear();
        effects_buf.extend_from_slice(&t.to_le_bytes());
        let n = self.summary.agents;
        if self.pool.width() >= 2 && !self.helper_tried {
            self.helper_tried = true;
            let support = self.support.clone();
            self.helper = rayon_core::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "we-commit".to_string())
                .start_handler(move |_| affinity::keep_to(support.as_ref()))
                .build()
                .ok();
        }
        let mut messages = 0u64;
        let mut refused = 0u64;
        let mut faults = Vec::new();
        let mut logs = Vec::new();
        let mut region_refusals = 0u64;
        let mut capability_refusals = 0u64;
        let mut dead_letters = 0u64;
        // Injected: trap, drop, delay, duplicate.
        let mut injected = [0u64; 4];
        let mut last_model = ModelCheck::default();
        let due = if init {
            Vec::new()
        } else {
            self.delayed.remove(&t).unwrap_or_default()
        };
        // Worth a thread only for a tick with many deliveries (judged by the
        // last one: the choice never changes what is committed).
        let split = self.pool.width() >= 2 && self.last_messages >= self.split_commit_min;
        {
            let helper = self.helper.as_ref();
            let pool = &self.pool;
            let agents = &self.agents;
            let group_caps = &self.group_caps;
            let injector = &self.injector;
            let message_rules = injector.has_message_rules() && !init;
            let delayed = &mut self.delayed;
            let digest_buf = &mut self.digest_buf;
            let splices = &mut self.pieces.splices;
            let requests = &mut self.requests;
            let model_names = &mut self.model_names;
            let fanned_spare = &mut self.fanned_spare;
            let agent_digests = &mut self.last_record.agent_digests;
            let events = &mut self.last_record.events;
            let shared = exclusive(&mut self.shared)?;
            let bus = &mut shared.bus;
            let regions = &mut shared.regions;
            // Without a per-tick limit every live agent ran (see `schedule`),
            // so no turn was deferred and there is nothing to carry over.
            let limited = self.scenario.scheduler.max_tasks_per_tick != 0;
            if !init && limited {
                // An agent whose turn the scheduler deferred keeps its inbox for
                // its next turn, ahead of anything committed now.
                for (i, meta) in self.agents.iter().enumerate() {
                    let i = i as u32;
                    let ran = pool.result(i).is_some_and(|r| r.ran);
                    if !ran && meta.alive() && bus.inbox_len(i) > 0 {
                        bus.carry_over(i);
                    }
                }
            }
            // Copies held back by a delay fault go first, in their order.
            for (sender, receiver, topic, payload) in &due {
                match deliver(bus, digest_buf, *sender, *receiver, *topic, payload) {
                    Ok(()) => messages += 1,
                    Err(closed) => {
                        refused += 1;
                        dead_letters += u64::from(closed);
                    }
                }
            }
            // With a second core and no per-copy fault rules, the tick's
            // deliveries are committed by two threads first (see fanout.rs).
            let mut merge = None;
            if split && !init && !message_rules && due.is_empty() {
                let caps = |i: u32| {
                    agents
                        .get(i as usize)
                        .and_then(|meta| group_caps.get(meta.group))
                };
                let inputs = fanout::Inputs {
                    tick: t,
                    agents: n,
                    results: pool.results(),
                    caps: &caps,
                    injector,
                };
                let [low, high] = bus.split_commit();
                let [low_buf, high_buf] = std::mem::take(fanned_spare);
                let inputs = &inputs;
                let (low, high) = match helper {
                    Some(helper) => {
                        // A panic of the other half is caught there and
                        // reported here.
                        let mut other = None;
                        let low = helper.in_place_scope(|scope| {
                            let other = &mut other;
                            scope.spawn(move |_| {
                                *other = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                    fanout::fan_out(inputs, high, high_buf)
                                }))
                                .ok();
                            });
                            fanout::fan_out(inputs, low, low_buf)
                        });
                        (low, other)
                    }
                    None => (
                        fanout::fan_out(inputs, low, low_buf),
                        Some(fanout::fan_out(inputs, high, high_buf)),
                    ),
                };
                let high = high.ok_or(Error::Internal("the commit thread panicked"))?;
                bus.absorb([low.1, high.1]);
                let m = fanout::Merge::new([low.0, high.0]);
                let (delivered, refusals, dead) = m.totals();
                messages += delivered;
                refused += refusals;
                dead_letters += dead;
                merge = Some(m);
            }
            let results = pool.results();
            for i in 0..n {
                let Some((result, effects)) = results.with_effects(i) else {
                    agent_digests.push(0);
                    continue;
                };
                if !result.ran {
                    agent_digests.push(0);
                    continue;
                }
                for line in &result.emitted.log {
                    logs.push(format!("t={} agent={i}: {}", tick_label(t), line.text));
                }
                let fault = match &result.fault {
                    Some(kind) => Some(kind.clone()),
                    None if !init && injector.trap(t, i) => {
                        injected[0] += 1;
                        Some(FaultKind::Injected)
                    }
                    None => None,
                };
                if let Some(kind) = fault {
                    // A faulting agent's effects of this tick are discarded
                    // whole: its tick is atomic.
                    faults.push((i, kind.clone()));
                    agent_digests.push(agent_digest(i, kind.name().as_bytes()));
                    effects_buf.extend_from_slice(&i.to_le_bytes());
                    effects_buf.extend_from_slice(b"fault:");
                    effects_buf.extend_from_slice(kind.to_string().as_bytes());
                    continue;
                }
                let Some((group, caps)) = agents
                    .get(i as usize)
                    .and_then(|meta| Some((meta.group, group_caps.get(meta.group)?)))
                else {
                    return Err(Error::Internal("agent without a group"));
                };
                agent_digests.push(result.digest);
                effects_buf.extend_from_slice(&i.to_le_bytes());
                effects_buf.extend_from_slice(&(effects.len() as u64).to_le_bytes());
                effects_buf.extend_from_slice(effects);
                // Index of the message copy among the agent's copies this tick,
                // an input of the fault plan's decisions.
                let mut seq = 0u64;
                for record in Records::new(effects) {
                    // The sandbox validated every batch when it was emitted.
                    let Ok((header, payload)) = record else {
                        return Err(Error::Internal("unvalidated effect batch"));
                    };
                    let Some(h) = EffectHeader::decode(header) else {
                        return Err(Error::Internal("unvalidated effect header"));
                    };
                    if let Some(why) = undeclared(caps, h.op, h.target) {
                        capability_refusals += 1;
                        logs.push(capability_refusal(t, i, &why));
                        continue;
                    }
                    match h.op {
                        op::SEND | op::PUBLISH if merge.is_some() => {
                            // Committed by the split pass; its encodings go
                            // in here, at the effect's place.
                            if let Some(m) = merge.as_mut() {
                                m.take(digest_buf, splices);
                            }
                        }
                        op::SEND if !message_rules => {
                            match deliver(bus, digest_buf, i, h.target, None, payload) {
                                Ok(()) => messages += 1,
                                Err(closed) => {
                                    refused += 1;
                                    dead_letters += u64::from(closed);
                                }
                            }
                        }
                        op::PUBLISH if !message_rules => {
                            let out = bus.commit_publish(i, h.target, payload, |receiver| {
                                digest_message(digest_buf, i, receiver, payload);
                            });
                            messages += out.delivered as u64;
                            refused += out.refused as u64;
                        }
                        op::SEND | op::PUBLISH => {
                            // The fault plan decides the fate of every copy.
                            let (topic, receivers) = if h.op == op::SEND {
                                (None, vec![h.target])
                            } else {
                                let subs = bus.subscribers(h.target);
                                (
                                    Some(h.target),
                                    subs.iter().copied().filter(|&r| r != i).collect(),
                                )
                            };
                            for receiver in receivers {
                                let fate = injector.message(t, i, receiver, topic, seq);
                                seq += 1;
                                let via =
                                    topic.map(|tp| format!(" topic {tp}")).unwrap_or_default();
                                let copies = match fate {
                                    Fate::Deliver => 1,
                                    Fate::Duplicate => {
                                        injected[3] += 1;
                                        events.push(format!("duplicate {i}->{receiver}{via}"));
                                        2
                                    }
                                    Fate::Drop => {
                                        injected[1] += 1;
                                        events.push(format!("drop {i}->{receiver}{via}"));
                                        0
                                    }
                                    Fate::Delay(k) => {
                                        injected[2] += 1;
                                        events.push(format!("delay {i}->{receiver}{via} by {k}"));
                                        delayed.entry(t.saturating_add(k)).or_default().push((
                                            i,
                                            receiver,
                                            topic,
                                            payload.to_vec(),
                                        ));
                                        0
                                    }
                                };
                                for _ in 0..copies {
                                    match deliver(bus, digest_buf, i, receiver, topic, payload) {
                                        Ok(()) => messages += 1,
                                        Err(closed) => {
                                            refused += 1;
                                            dead_letters += u64::from(closed);
                                        }
                                    }
                                }
                            }
                        }
                        op::JOIN => {
                            if bus.join(i, h.target).is_err() {
                                refused += 1;
                            }
                        }
                        op::LEAVE => bus.leave(i, h.target),
                        op::INFER => match tensor::read_request_header(payload) {
                            Ok((raw, count, inputs)) => {
                                // The model is known only once the request
                                // is parsed: its capability is checked here,
                                // once for a run of requests of one group
                                // that name the same model bytes.
                                if !last_model.holds(group, raw) {
                                    last_model.check(group, raw, caps, model_names);
                                }
                                let model = &last_model.shared;
                                if last_model.allowed {
                                    // Into the tick's batch: the tensors
                                    // appended to its one buffer, no
                                    // allocation a request.
                                    requests.push(AgentId::new(i), h.aux, model, inputs, count);
                                } else {
                                    capability_refusals += 1;
                                    let why = format!("inference on model `{model}`");
                                    logs.push(capability_refusal(t, i, &why));
                                }
                            }
                            Err(_) if merge.is_some() => {
                                if let Some(m) = merge.as_mut() {
                                    m.take(digest_buf, splices);
                                }
                            }
                            Err(e) => {
                                let reason = malformed_request(&e);
                                if bus
                                    .commit_notice(
                                        i,
                                        msg_kind::INFER_ERROR,
                                        we_abi::SENDER_INFERENCE,
                                        h.aux,
                                        reason.as_bytes(),
                                    )
                                    .is_ok()
                                {
                                    messages += 1;
                                    digest_message(
                                        digest_buf,
                                        we_abi::SENDER_INFERENCE,
                                        i,
                                        reason.as_bytes(),
                                    );
                                }
                            }
                        },
                        op::REGION_CREATE | op::REGION_WRITE => {
                            let outcome = if h.op == op::REGION_CREATE {
                                regions.create(i, h.target, h.aux)
                            } else {
                                regions.write(i, h.target, h.aux, payload)
                            };
                            if let Err(why) = outcome {
                                region_refusals += 1;
                                let what = if h.op == op::REGION_CREATE {
                                    "create"
                                } else {
                                    "write"
                                };
                                logs.push(format!(
                                    "t={} agent={i}: region {what} of {} refused: {why}",
                                    tick_label(t),
                                    h.target
                                ));
                            }
                        }
                        _ => refused += 1,
                    }
                }
            }
            if let Some(m) = merge {
                let mut parts = m.into_parts();
                if !splices.is_empty() {
                    // The runs spliced in stay in these buffers until the
                    // tick is recorded; the bundle's earlier ones come back.
                    let lent = self
                        .pieces
                        .parts
                        .iter_mut()
                        .zip(self.pieces.receivers.iter_mut());
                    for (part, (bytes, receivers)) in parts.iter_mut().zip(lent) {
                        part.swap_buffers(bytes, receivers);
                    }
                }
                *fanned_spare = parts;
            }
        }
        self.summary.region_refusals += region_refusals;
        self.summary.capability_refusals += capability_refusals;
        self.summary.dead_letters += dead_letters;
        for (name, count) in ["trap", "drop", "delay", "duplicate"].iter().zip(injected) {
            if count > 0 {
                *self
                    .summary
                    .injected
                    .entry((*name).to_string())
                    .or_default() += count;
            }
        }
        for line in logs {
            self.push_log(line);
        }
        for (i, kind) in faults {
            self.record_fault(i, t, kind);
        }
        messages += self.serve_inference(t)?;
        let shared = self.shared_mut()?;
        shared.bus.flip();
        shared.regions.flip();
        if !init {
            self.last_messages = messages;
        }
        self.summary.messages_delivered += messages;
        self.summary.messages_refused += refused;
        self.last_record.messages = messages;
        if init {
            self.last_record.agent_digests.clear();
        }
        self.effects_buf = effects_buf;
        Ok(())
    }

    /// Runs the tick's inference requests and commits their results as messages
    /// delivered at the next tick, in request order.
    fn serve_inference(&mut self, t: u64) -> Result<u64> {
        if self.requests.is_empty() {
            return Ok(0);
        }
        // Requests the fault plan fails as if their model could not load.
        let failing: Vec<bool> = if self.injector.has_model_rules() {
            self.requests
                .iter()
                .enumerate()
                .map(|(seq, r)| {
                    self.injector
                        .model_fails(t, r.agent.index, r.model, seq as u64)
                })
                .collect()
        } else {
            Vec::new()
        };
        // Empty without model rules: nothing fails.
        let failed = failing.iter().filter(|&&f| f).count();
        let serve = |backend: Option<&mut Box<dyn InferenceBackend>>,
                     requests: &Requests,
                     results: &mut Vec<we_core::InferenceResult>| {
            match backend {
                Some(backend) => backend.run_into(Tick(t), requests, results),
                None => {
                    results.clear();
                    results.extend(requests.iter().map(|r| we_core::InferenceResult {
                        agent: r.agent,
                        tag: r.tag,
                        outcome: Err("no inference backend is configured for this run".to_string()),
                    }));
                }
            }
        };
        let mut results = std::mem::take(&mut self.spare_results);
        if failed == 0 {
            serve(self.inference.as_mut(), &self.requests, &mut results);
        } else {
            let mut healthy = Requests::new();
            for (r, _) in self.requests.iter().zip(&failing).filter(|(_, f)| !**f) {
                healthy.push(r.agent, r.tag, r.model, r.inputs, r.tensor_count);
            }
            let mut served = Vec::new();
            serve(self.inference.as_mut(), &healthy, &mut served);
            let mut served = served.into_iter();
            results.clear();
            for (r, &fails) in self.requests.iter().zip(&failing) {
                if fails {
                    self.last_record.events.push(format!(
                        "model `{}` load failure for agent {} tag {}",
                        r.model, r.agent.index, r.tag
                    ));
                    results.push(we_core::InferenceResult {
                        agent: r.agent,
                        tag: r.tag,
                        outcome: Err(format!(
                            "model `{}` failed to load (injected fault)",
                            r.model
                        )),
                    });
                } else if let Some(result) = served.next() {
                    results.push(result);
                }
            }
            *self
                .summary
                .injected
                .entry("model".to_string())
                .or_default() += failed as u64;
        }
        if results.len() != self.requests.len() {
            return Err(Error::Internal(
                "inference backend returned a wrong result count",
            ));
        }
        self.summary.inferences += results.len() as u64;
        let mut delivered = 0;
        let requests = std::mem::take(&mut self.requests);
        let argmax_here = &self.argmax_here;
        let digest_buf = &mut self.digest_buf;
        let bus = &mut exclusive(&mut self.shared)?.bus;
        for (request, result) in requests.iter().zip(results.iter_mut()) {
            // The post-processing the backend left to the runtime: the
            // trace records the payload delivered either way.
            if let Ok(bytes) = &result.outcome
                && !argmax_here.is_empty()
                && argmax_here.iter().any(|m| **m == **request.model)
            {
                result.outcome = match argmax(bytes) {
                    Some(a) => Ok((a as u64).to_le_bytes().to_vec()),
                    None => Err(tensor::ARGMAX_NOT_F32.to_string()),
                };
            }
            let (kind, payload) = match &result.outcome {
                Ok(bytes) => (msg_kind::INFER_RESULT, bytes.as_slice()),
                Err(reason) => (msg_kind::INFER_ERROR, reason.as_bytes()),
            };
            let receiver = request.agent.index;
            if bus
                .commit_notice(
                    receiver,
                    kind,
                    we_abi::SENDER_INFERENCE,
                    request.tag,
                    payload,
                )
                .is_ok()
            {
                delivered += 1;
                digest_message(digest_buf, we_abi::SENDER_INFERENCE, receiver, payload);
            }
        }
        self.requests = requests;
        self.last_record.inference = results;
        Ok(delivered)
    }

    /// The agent's effects of the last tick, one per line, for divergence reports.
    pub fn describe_effects(&self, agent: u32) -> String {
        let Some((result, effects)) = self.pool.results().with_effects(agent) else {
            return String::new();
        };
        if let Some(kind) = &result.fault {
            return format!("    fault: {kind}");
        }
        let mut out = String::new();
        for record in Records::new(effects).flatten() {
            let (header, payload) = record;
            if let Some(h) = EffectHeader::decode(header) {
                let name = match h.op {
                    op::SEND => "send to",
                    op::PUBLISH => "publish to topic",
                    op::JOIN => "join topic",
                    op::LEAVE => "leave topic",
                    op::INFER => "infer, model slot",
                    _ => "op",
                };
                out.push_str(&format!(
                    "    {name} {} payload {}\n",
                    h.target,
                    hex(payload)
                ));
            }
        }
        if out.is_empty() {
            out.push_str("    (no effects)\n");
        }
        out
    }
}

/// What an effect would use that `caps` does not declare, as words for the
/// log; `None` when it is declared, needs no capability (leaving a topic), or
/// is an inference request (its model is checked once the request is parsed).
#[inline]
pub(crate) fn undeclared(caps: &Capabilities, op_code: u16, target: u32) -> Option<String> {
    match op_code {
        op::SEND if !caps.send.allows(target) => Some(format!("send to agent {target}")),
        op::PUBLISH if !caps.topics.allows(target) => Some(format!("publish to topic {target}")),
        op::JOIN if !caps.topics.allows(target) => Some(format!("join of topic {target}")),
        op::REGION_CREATE | op::REGION_WRITE
            if !caps.regions.allows(target & crate::regions::NAME_MAX) =>
        {
            Some(format!(
                "write of region {}",
                target & crate::regions::NAME_MAX
            ))
        }
        _ => None,
    }
}

/// The log line of an effect refused for want of a capability.
fn capability_refusal(t: u64, agent: u32, what: &str) -> String {
    format!(
        "t={} agent={agent}: {what} refused: not declared in the module's capabilities",
        tick_label(t)
    )
}

/// Commits one copy (direct, or of a publish to `topic`) and digests it;
/// `Err(true)` when refused because the receiver is down (a dead letter),
/// `Err(false)` when refused for another reason.
#[inline]
fn deliver(
    bus: &mut Bus,
    digest_buf: &mut Vec<u8>,
    sender: u32,
    receiver: u32,
    topic: Option<u32>,
    payload: &[u8],
) -> std::result::Result<(), bool> {
    let outcome = match topic {
        None => bus.commit_send(sender, receiver, payload),
        Some(tp) => bus.commit_topic_copy(sender, receiver, tp, payload),
    };
    match outcome {
        Ok(()) => {
            digest_message(digest_buf, sender, receiver, payload);
            Ok(())
        }
        Err(we_ipc::Refusal::ReceiverClosed { .. }) => Err(true),
        Err(_) => Err(false),
    }
}

/// Appends the 16-byte workload encoding of a message (8-byte payloads as in
/// `shared/workloads.md`; other payloads are appended whole).
#[inline(always)]
pub(crate) fn digest_message(buf: &mut Vec<u8>, sender: u32, receiver: u32, payload: &[u8]) {
    let mut ids = [0u8; 8];
    ids[..4].copy_from_slice(&sender.to_le_bytes());
    ids[4..].copy_from_slice(&receiver.to_le_bytes());
    if let Ok(word) = <[u8; 8]>::try_from(payload) {
        // The workloads' case: one fixed-size append.
        let mut encoding = [0u8; 16];
        encoding[..8].copy_from_slice(&ids);
        encoding[8..].copy_from_slice(&word);
        buf.extend_from_slice(&encoding);
    } else {
        buf.extend_from_slice(&ids);
        buf.extend_from_slice(payload);
    }
}

/// The error notice an agent gets for an inference request it malformed.
pub(crate) fn malformed_request(e: &impl std::fmt::Debug) -> String {
    format!("malformed inference request: {e:?}")
}

/// Index of the largest element of the first tensor of a result payload, lowest
/// index on a tie; `None` unless that tensor is a non-empty f32 tensor.
/// The `argmax` post-processing of a result payload (see
/// [`Postprocess::Argmax`]).
fn argmax(result: &[u8]) -> Option<usize> {
    let (_, body) = tensor::read_result_header(result).ok()?;
    let first = tensor::Tensors::new(body).next()?.ok()?;
    if first.dtype != tensor::DTYPE_F32 {
        return None;
    }
    tensor::argmax_f32_le(first.data)
}

fn tick_label(t: u64) -> String {
    if t == u64::MAX {
        "init".to_string()
    } else {
        t.to_string()
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// blake3 of the settings that must match for a replay: everything in the
/// scenario except the worker count, which never changes results.
fn config_digest(s: &Scenario) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&s.seed.to_le_bytes());
    h.update(&s.ticks.to_le_bytes());
    h.update(format!("{:?}", s.scheduler).as_bytes());
    h.update(format!("{:?}", s.limits).as_bytes());
    h.update(format!("{:?}", s.inference).as_bytes());
    for g in &s.agents {
        h.update(format!("{:?}", g).as_bytes());
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::{MODEL_NAMES_KEPT, ModelCheck, intern};
    use std::sync::Arc;
    use we_core::Capabilities;

    #[test]
    fn a_model_check_answers_only_for_its_group_and_name() {
        let policy = Capabilities::parse("models = policy").unwrap();
        let none = Capabilities::default();
        let mut names = Vec::new();
        let mut check = ModelCheck::default();
        assert!(!check.holds(0, b"policy"));
        check.check(0, b"policy", &policy, &mut names);
        assert!(check.holds(0, b"policy") && check.allowed);
        assert_eq!(&*check.shared, "policy");
        let first = Arc::clone(&check.shared);
        // Another group, or other bytes (as long, or longer), is not this check.
        assert!(!check.holds(1, b"policy"));
        assert!(!check.holds(0, b"polica"));
        assert!(!check.holds(0, b"policy2"));
        check.check(1, b"policy", &none, &mut names);
        assert!(check.holds(1, b"policy") && !check.allowed);
        // The same name, checked again (another group, a later tick), is the
        // same allocation.
        assert!(Arc::ptr_eq(&first, &check.shared));
        // Bytes that are not UTF-8 are named lossily, and refused.
        check.check(0, b"pol\xffcy", &policy, &mut names);
        assert_eq!(&*check.shared, "pol\u{fffd}cy");
        assert!(!check.allowed);
    }

    #[test]
    fn interned_names_are_shared_and_bounded() {
        let mut names = Vec::new();
        let a = intern(&mut names, "policy");
        let b = intern(&mut names, "policy");
        assert!(Arc::ptr_eq(&a, &b));
        let c = intern(&mut names, "value");
        assert!(!Arc::ptr_eq(&a, &c) && &*c == "value");
        // Many other names: the oldest are let go, the list stays bounded,
        // and a dropped name comes back equal (a new allocation).
        for k in 0..3 * MODEL_NAMES_KEPT {
            let n = format!("model-{k}");
            assert_eq!(&*intern(&mut names, &n), n);
        }
        assert_eq!(names.len(), MODEL_NAMES_KEPT);
        let again = intern(&mut names, "policy");
        assert_eq!(&*again, "policy");
        assert!(!Arc::ptr_eq(&a, &again));
    }
}
