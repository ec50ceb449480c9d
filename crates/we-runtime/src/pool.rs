//! The worker pool: agents partitioned over threads that own their instances.
//!
//! The pool's units are single agents and packs (several agents of a group in
//! one instance, see [`we_core::PackInstance`]), in id order; unit `u` lives on
//! worker `u % W` for the whole run (without packs: agent `i` on worker
//! `i % W`). wasmer instances are tied to the thread that made them, and
//! keeping them put means nothing is re-instantiated or moved on the hot path. Each tick the orchestrator hands
//! every worker the same read-only [`Shared`] state and a [`Batch`] to fill; the
//! worker runs its agents in ascending id order and sends the batch back. The
//! orchestrator waits for all batches and commits them in agent id order, so
//! which worker finished first never matters.
//!
//! Partition 0 runs on the calling thread, which would otherwise only wait
//! during a phase; partitions 1 to W-1 get a thread each. With one worker there
//! are no threads and no channels. The last worker's thread may also host the
//! recording loop between its phases (see recorder.rs).

use crate::recorder::{Bundle, Duty};
use crate::regions::Regions;
use crate::run::agent_digest;
use crate::wait::{Either, Waiter};
use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;
use std::thread::JoinHandle;
use we_abi::{InitContext, StepContext};
use we_core::hint::prefetch;
use we_core::{
    AgentCall, AgentHost, AgentId, AgentInstance, CallOutcome, Emitted, FaultKind, PackInstance,
    PackMember, PackOutputs, PackPhase, Tick,
};
use we_ipc::Bus;

/// What an agent is, for instantiation.
#[derive(Clone, Debug)]
pub(crate) struct AgentSpec {
    pub id: AgentId,
    pub module: usize,
    /// Index of its `[[agents]]` group.
    pub group: usize,
    pub group_index: u32,
    pub config: Arc<[u8]>,
    /// The group's pack size: 1 runs each agent in its own instance; K > 1
    /// runs group indices `[mK, (m+1)K)` in one pack (slot = index % K).
    pub pack: u32,
}

/// A pack of a partition: specs `first..first + len`, one instance.
struct PackUnit {
    first: usize,
    len: usize,
    module: usize,
    instance: Option<Box<dyn PackInstance>>,
    /// Per slot: its agent was initialised in the current instance and has
    /// not faulted since.
    live: Vec<bool>,
}

/// What a partition runs, in id order.
enum Unit {
    /// One agent (an index into the partition's specs).
    Single(usize),
    /// A pack (an index into the partition's packs).
    Pack(usize),
}

/// Splits `specs` (in id order) into units: each agent of a group whose
/// pack size is 1 alone, the others by pack. Returns spec ranges.
fn units_of(specs: &[AgentSpec]) -> Vec<std::ops::Range<usize>> {
    let mut units = Vec::new();
    let mut i = 0;
    while i < specs.len() {
        let start = i;
        let pack = specs[i].pack.max(1);
        i += 1;
        if pack > 1 {
            let (group, number) = (specs[start].group, specs[start].group_index / pack);
            while i < specs.len()
                && specs[i].group == group
                && specs[i].group_index / pack == number
            {
                i += 1;
            }
        }
        units.push(start..i);
    }
    units
}

/// Read-only state all workers see during one phase.
pub(crate) struct Shared {
    pub tick: Tick,
    pub agent_count: u32,
    pub bus: Bus,
    /// Shared regions, committed versions readable during the tick.
    pub regions: Regions,
    /// Per agent: what it does in this phase ([`RUN_SKIP`], [`RUN_STEP`],
    /// [`RUN_RESTART`]).
    pub run: Vec<u8>,
    /// Per agent: its current generation (a restart instantiates this one).
    pub generations: Vec<u32>,
    pub fuel_per_call: u64,
    /// Test-only timing perturbation: workers sleep up to this many microseconds
    /// before each agent.
    pub perturb_us: u32,
}

/// The agent does nothing this phase.
pub(crate) const RUN_SKIP: u8 = 0;
/// The agent runs the phase's export (in a tick: receive, then step).
pub(crate) const RUN_STEP: u8 = 1;
/// The agent is replaced by a fresh instance at its new generation, which runs
/// `agent_init` (a supervised restart; ticks only).
pub(crate) const RUN_RESTART: u8 = 2;

/// The result of one agent in one phase.
#[derive(Debug, Default)]
pub(crate) struct AgentResult {
    /// Its log lines and fuel, and the effects of an agent with its own
    /// instance (a packed agent's are in its batch, at `packed`).
    pub emitted: Emitted,
    /// Where a packed agent's effects lie in [`Batch::packed`].
    pub packed: std::ops::Range<usize>,
    pub fault: Option<FaultKind>,
    pub ran: bool,
    /// [`agent_digest`] of the emitted effects, computed by the worker.
    pub digest: u64,
}

impl AgentResult {
    /// Empties the result for a new phase, keeping the buffers.
    fn reset(&mut self) {
        self.emitted.clear();
        self.packed = 0..0;
        self.fault = None;
        self.ran = false;
        self.digest = 0;
    }

    /// [`AgentResult::reset`] for a packed agent, which leaves the effects
    /// buffer alone (it is not used) and writes the log and fuel only when
    /// they hold something: the result was read by the committing thread,
    /// and each line written here has to be taken back from it.
    fn reset_packed(&mut self) {
        if !self.emitted.log.is_empty() {
            self.emitted.log.clear();
        }
        if self.emitted.fuel_used != 0 {
            self.emitted.fuel_used = 0;
        }
        if self.fault.is_some() {
            self.fault = None;
        }
        self.packed = 0..0;
        self.ran = false;
        self.digest = 0;
    }
}

/// One worker's results, one entry per agent it owns, in ascending id order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub results: Vec<AgentResult>,
    /// The effects of the partition's packed agents, pack call after pack
    /// call, as the packs emitted them (see [`PackOutputs`]).
    pub packed: Vec<u8>,
}

impl Batch {
    /// The effects of `result`, one of this batch's.
    #[inline]
    fn effects_of<'a>(&'a self, result: &'a AgentResult) -> &'a [u8] {
        if result.packed.is_empty() {
            &result.emitted.effects
        } else {
            self.packed.get(result.packed.clone()).unwrap_or_default()
        }
    }
}

/// Which export a phase runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Init,
    Tick,
    Shutdown,
}

/// The agents of one worker.
struct Partition {
    host: Arc<dyn AgentHost>,
    seed: u64,
    specs: Vec<AgentSpec>,
    /// Per agent: its module takes the inbox with the step context (ABI v2).
    step_with_inbox: Vec<bool>,
    /// Per agent: its own instance (`None` for a packed agent).
    instances: Vec<Option<Box<dyn AgentInstance>>>,
    units: Vec<Unit>,
    packs: Vec<PackUnit>,
    /// Members' outputs of a pack call, kept for their buffers.
    pack_out: PackOutputs,
    scratch: Vec<u8>,
    perturb_state: u64,
}

impl Partition {
    /// The partition of `specs` (in id order) cut into `units` (spec ranges).
    fn new(
        host: Arc<dyn AgentHost>,
        specs: Vec<AgentSpec>,
        units: &[std::ops::Range<usize>],
        seed: u64,
    ) -> Result<Self> {
        let mut instances = Vec::with_capacity(specs.len());
        let mut partition_units = Vec::with_capacity(units.len());
        let mut packs = Vec::new();
        for range in units {
            let first = &specs[range.start];
            if first.pack > 1 {
                let len = range.len();
                let instance = host
                    .instantiate_pack(first.module, len as u32, seed)
                    .map_err(|e| Error::Instantiate {
                        agent: first.id.index,
                        reason: format!("pack of {len} agents: {e}"),
                    })?;
                partition_units.push(Unit::Pack(packs.len()));
                packs.push(PackUnit {
                    first: range.start,
                    len,
                    module: first.module,
                    instance: Some(instance),
                    live: vec![false; len],
                });
                instances.extend(range.clone().map(|_| None));
                continue;
            }
            let spec = first;
            let instance =
                host.instantiate(spec.module, spec.id, seed)
                    .map_err(|e| Error::Instantiate {
                        agent: spec.id.index,
                        reason: e.to_string(),
                    })?;
            partition_units.push(Unit::Single(range.start));
            instances.push(Some(instance));
        }
        let step_with_inbox = specs
            .iter()
            .map(|spec| {
                host.module_info(spec.module)
                    .is_some_and(|info| info.abi_version >= we_abi::ABI_STEP_WITH_INBOX)
            })
            .collect();
        Ok(Self {
            host,
            seed,
            step_with_inbox,
            specs,
            instances,
            units: partition_units,
            packs,
            pack_out: PackOutputs::default(),
            scratch: Vec::new(),
            perturb_state: 0x2545_F491_4F6C_DD1D ^ seed,
        })
    }

    fn run(&mut self, phase: Phase, shared: &Shared, batch: &mut Batch) {
        batch
            .results
            .resize_with(self.specs.len(), AgentResult::default);
        batch.packed.clear();
        for u in 0..self.units.len() {
            match self.units[u] {
                Unit::Single(j) => self.run_single(j, phase, shared, batch),
                Unit::Pack(p) => self.run_pack(p, phase, shared, batch),
            }
        }
    }

    /// Runs agent `j` (its own instance) for the phase.
    fn run_single(&mut self, j: usize, phase: Phase, shared: &Shared, batch: &mut Batch) {
        let next_effects = batch.results.get(j + 1).map(|r| r.emitted.effects.as_ptr());
        let result = &mut batch.results[j];
        result.reset();
        let index = self.specs[j].id.index as usize;
        let flag = shared.run.get(index).copied().unwrap_or(RUN_SKIP);
        let mut phase = phase;
        if phase != Phase::Init && flag == RUN_SKIP {
            return;
        }
        if phase == Phase::Tick && flag == RUN_RESTART {
            // A fresh instance at the new generation runs `agent_init`.
            let generation = shared.generations.get(index).copied().unwrap_or(0);
            let spec = &mut self.specs[j];
            spec.id.generation = generation;
            self.instances[j] = None;
            match self.host.instantiate(spec.module, spec.id, self.seed) {
                Ok(instance) => self.instances[j] = Some(instance),
                Err(e) => {
                    result.ran = true;
                    result.fault = Some(FaultKind::Trap {
                        code: format!("restart failed: {e}"),
                    });
                    return;
                }
            }
            phase = Phase::Init;
        }
        // Start loading the agents after this one while it runs: at
        // 10,000 agents the tick is bound by cache and TLB misses on each
        // agent's instance and memory. Two ahead: the instance itself
        // (only its address is needed); one ahead: what it points to
        // (reading the instance, loaded by the previous step).
        if let Some(Some(after_next)) = self.instances.get(j + 2) {
            prefetch(&**after_next as *const dyn AgentInstance as *const u8);
        }
        if let Some(Some(next)) = self.instances.get(j + 1) {
            next.prefetch();
            // The host side of its call: its inbox and its effects buffer.
            if let Some(spec) = self.specs.get(j + 1) {
                prefetch(shared.bus.inbox(spec.id.index).as_ptr());
            }
            if let Some(effects) = next_effects {
                prefetch(effects);
            }
        }
        let spec = &self.specs[j];
        let Some(instance) = self.instances[j].as_mut() else {
            return;
        };
        if shared.perturb_us > 0 {
            // xorshift: deliberately not seeded from anything in the trace,
            // so it perturbs only timing.
            self.perturb_state ^= self.perturb_state << 13;
            self.perturb_state ^= self.perturb_state >> 7;
            self.perturb_state ^= self.perturb_state << 17;
            let us = self.perturb_state % (shared.perturb_us as u64 + 1);
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
        result.ran = true;
        let outcome = match phase {
            Phase::Init => {
                let ctx = InitContext {
                    agent_id: spec.id.index,
                    generation: spec.id.generation,
                    agent_count: shared.agent_count,
                    group_index: spec.group_index,
                    config_len: spec.config.len() as u32,
                };
                let mut head = [0u8; InitContext::SIZE];
                ctx.encode(&mut head);
                self.scratch.clear();
                self.scratch.extend_from_slice(&head);
                self.scratch.extend_from_slice(&spec.config);
                instance.call(
                    shared.tick,
                    AgentCall::Init {
                        context: &self.scratch,
                    },
                    None,
                    &mut result.emitted,
                )
            }
            Phase::Tick => {
                let inbox = shared.bus.inbox(spec.id.index);
                let inbox_len = shared.bus.inbox_len(spec.id.index);
                let one_call = self.step_with_inbox.get(j).copied().unwrap_or(false);
                let mut outcome = CallOutcome::Ok;
                if inbox_len > 0 && !one_call {
                    outcome = instance.call(
                        shared.tick,
                        AgentCall::Receive { inbox },
                        Some(&shared.regions),
                        &mut result.emitted,
                    );
                }
                if outcome == CallOutcome::Ok {
                    let ctx = StepContext {
                        tick: shared.tick.0,
                        agent_id: spec.id.index,
                        generation: spec.id.generation,
                        inbox_len,
                        refused: shared.bus.refused_last_commit(spec.id.index),
                        fuel_per_call: shared.fuel_per_call,
                    };
                    let mut bytes = [0u8; StepContext::SIZE];
                    ctx.encode(&mut bytes);
                    let call = if one_call && inbox_len > 0 {
                        AgentCall::StepWithInbox {
                            context: &bytes,
                            inbox,
                        }
                    } else {
                        AgentCall::Step { context: &bytes }
                    };
                    outcome = instance.call(
                        shared.tick,
                        call,
                        Some(&shared.regions),
                        &mut result.emitted,
                    );
                }
                outcome
            }
            Phase::Shutdown => {
                instance.call(shared.tick, AgentCall::Shutdown, None, &mut result.emitted)
            }
        };
        if let CallOutcome::Fault(kind) = outcome {
            result.fault = Some(kind);
            // A faulted instance is dropped at once: its memory goes back.
            self.instances[j] = None;
        } else {
            result.digest = agent_digest(spec.id.index, &result.emitted.effects);
        }
    }

    /// Runs pack `p` for the phase: restarted members get a fresh agent
    /// (`agent_init`, re-instantiating the pack if it is gone), then one
    /// pack call runs the members due to step (or to init or shut down).
    fn run_pack(&mut self, p: usize, phase: Phase, shared: &Shared, batch: &mut Batch) {
        let (first, len) = (self.packs[p].first, self.packs[p].len);
        let mut restart = Vec::new();
        let mut run = Vec::with_capacity(len);
        for j in first..first + len {
            batch.results[j].reset_packed();
            let index = self.specs[j].id.index as usize;
            match shared.run.get(index).copied().unwrap_or(RUN_SKIP) {
                _ if phase == Phase::Init => run.push(j),
                RUN_RESTART if phase == Phase::Tick => {
                    let generation = shared.generations.get(index).copied().unwrap_or(0);
                    self.specs[j].id.generation = generation;
                    restart.push(j);
                }
                RUN_SKIP => {}
                _ => run.push(j),
            }
        }
        if !restart.is_empty() && self.packs[p].instance.is_none() {
            match self
                .host
                .instantiate_pack(self.packs[p].module, len as u32, self.seed)
            {
                Ok(instance) => {
                    self.packs[p].instance = Some(instance);
                    self.packs[p].live.iter_mut().for_each(|l| *l = false);
                }
                Err(e) => {
                    let kind = FaultKind::Trap {
                        code: format!("restart failed: {e}"),
                    };
                    for &j in &restart {
                        batch.results[j].ran = true;
                        batch.results[j].fault = Some(kind.clone());
                    }
                    restart.clear();
                }
            }
        }
        let config = self.specs[first].config.clone();
        let init_phase = PackPhase::Init {
            config: &config,
            agent_count: shared.agent_count,
        };
        if !restart.is_empty() {
            self.call_pack(p, init_phase, &restart, shared, batch);
        }
        if !run.is_empty() {
            let pack_phase = match phase {
                Phase::Init => init_phase,
                Phase::Tick => PackPhase::Step,
                Phase::Shutdown => PackPhase::Shutdown,
            };
            self.call_pack(p, pack_phase, &run, shared, batch);
        }
    }

    /// One pack call for the members at spec indices `members`; their
    /// results are filled in.
    fn call_pack(
        &mut self,
        p: usize,
        phase: PackPhase<'_>,
        members: &[usize],
        shared: &Shared,
        batch: &mut Batch,
    ) {
        let first = self.packs[p].first;
        let init = matches!(phase, PackPhase::Init { .. });
        // A member whose agent is not in the current instance (the pack
        // trapped when it was not run, and was made again since or not at
        // all) is lost with the instance it lived in.
        let (members, lost): (Vec<usize>, Vec<usize>) = members
            .iter()
            .partition(|&&j| init || self.packs[p].live.get(j - first) == Some(&true));
        for &j in &lost {
            let result = &mut batch.results[j];
            result.ran = true;
            result.fault = Some(FaultKind::Trap {
                code: "pack instance lost to an earlier fault".to_string(),
            });
        }
        if members.is_empty() {
            return;
        }
        let tick_phase = matches!(phase, PackPhase::Step);
        let list: Vec<PackMember<'_>> = members
            .iter()
            .map(|&j| {
                let spec = &self.specs[j];
                let index = spec.id.index;
                PackMember {
                    slot: (j - first) as u32,
                    id: spec.id,
                    group_index: spec.group_index,
                    inbox: if tick_phase {
                        shared.bus.inbox(index)
                    } else {
                        &[]
                    },
                    inbox_len: if tick_phase {
                        shared.bus.inbox_len(index)
                    } else {
                        0
                    },
                    refused: shared.bus.refused_last_commit(index),
                }
            })
            .collect();
        let regions = match phase {
            PackPhase::Step => Some(&shared.regions as &dyn we_core::RegionView),
            _ => None,
        };
        let pack = &mut self.packs[p];
        let out = &mut self.pack_out;
        // The members' effects go straight into the batch's buffer.
        std::mem::swap(&mut out.effects, &mut batch.packed);
        let outcome = match pack.instance.as_mut() {
            Some(instance) => instance.call(shared.tick, phase, &list, regions, out),
            None => Err(FaultKind::Trap {
                code: "pack instance lost to an earlier fault".to_string(),
            }),
        };
        std::mem::swap(&mut out.effects, &mut batch.packed);
        if outcome.is_err() || out.members.len() != members.len() {
            // A faulted pack is dropped at once: its memory goes back, and
            // none of its agents lives on.
            pack.instance = None;
            pack.live.iter_mut().for_each(|l| *l = false);
        }
        for (k, &j) in members.iter().enumerate() {
            let result = &mut batch.results[j];
            result.ran = true;
            let member = match &outcome {
                Err(kind) => {
                    result.fault = Some(kind.clone());
                    continue;
                }
                Ok(()) => match out.members.get_mut(k) {
                    Some(member) => member,
                    None => {
                        result.fault = Some(FaultKind::Trap {
                            code: "pack call gave no output for a member".to_string(),
                        });
                        continue;
                    }
                },
            };
            if member.status != we_abi::STATUS_OK {
                result.fault = Some(FaultKind::ErrorCode(member.status));
            }
            if member.fuel_used != 0 {
                result.emitted.fuel_used += member.fuel_used;
            }
            if let Some(live) = pack.live.get_mut(j - first) {
                *live = result.fault.is_none() && (init || *live);
            }
            if result.fault.is_none() {
                let effects = batch.packed.get(member.effects.clone()).unwrap_or_default();
                result.packed = member.effects.clone();
                result.digest = agent_digest(self.specs[j].id.index, effects);
            }
        }
        for (k, line) in out.logs.drain(..) {
            if let Some(&j) = members.get(k) {
                batch.results[j].emitted.log.push(line);
            }
        }
    }
}

enum Job {
    Run {
        phase: Phase,
        shared: Arc<Shared>,
        batch: Batch,
    },
    /// Record ticks between phases until the duty's channel closes.
    Host(Box<Duty>),
}

/// A worker thread's loop: runs its partition for each job and, while it
/// hosts the recording loop, records the bundles sent to it between jobs.
/// A bundle waiting is taken before a job: it was sent first (the
/// orchestrator hands a tick over after a phase, and sends no bundle while a
/// job is out), and recording it while the orchestrator commits is what
/// keeps it off the tick's path.
fn serve(part: &mut Partition, jobs: &Receiver<Job>, done: &Sender<Result<Batch>>) {
    let mut waiter = Waiter::default();
    let mut duty: Option<Box<Duty>> = None;
    let none = crossbeam_channel::never::<Bundle>();
    loop {
        let bundles = duty.as_ref().map_or(&none, |d| d.bundles());
        match waiter.recv_either(bundles, jobs) {
            Either::First(Ok(bundle)) => {
                if let Some(d) = duty.as_mut()
                    && !d.record(bundle)
                {
                    // Nobody takes bundles back any more.
                    duty = None;
                }
            }
            Either::First(Err(_)) => {
                // The orchestrator has handed over its last tick.
                if let Some(d) = duty.take() {
                    d.finish();
                }
            }
            Either::Second(Ok(Job::Run {
                phase,
                shared,
                mut batch,
            })) => {
                part.run(phase, &shared, &mut batch);
                // Drop the shared state before replying, so the
                // orchestrator owns it alone again once all replies are in.
                drop(shared);
                if done.send(Ok(batch)).is_err() {
                    break;
                }
            }
            Either::Second(Ok(Job::Host(d))) => duty = Some(d),
            Either::Second(Err(_)) => break,
        }
    }
    // The pool closed with the loop still here: the chain goes back.
    if let Some(d) = duty {
        d.finish();
    }
}

struct Worker {
    jobs: Sender<Job>,
    done: Receiver<Result<Batch>>,
    /// How the orchestrator waits for `done`.
    waiter: Waiter,
    handle: Option<JoinHandle<()>>,
}

/// The pool: partition 0 on the calling thread, W-1 worker threads.
pub(crate) struct Pool {
    /// Partition 0, run on the calling thread.
    inline: Partition,
    workers: Vec<Worker>,
    batches: Vec<Batch>,
    width: usize,
    /// Per agent: `(partition, position in that partition's batch)`.
    locations: Vec<(u32, u32)>,
}

impl Pool {
    /// Instantiates every agent, each on the worker that will run it.
    pub fn new(
        host: Arc<dyn AgentHost>,
        specs: &[AgentSpec],
        workers: usize,
        seed: u64,
        cpus: Option<crate::affinity::Cpus>,
    ) -> Result<Self> {
        let width = workers.max(1);
        // Unit `u` goes to partition `u % W`; each partition's specs stay
        // in id order, cut into its units.
        let mut parts: Vec<(Vec<AgentSpec>, Vec<std::ops::Range<usize>>)> =
            vec![(Vec::new(), Vec::new()); width];
        let mut locations = vec![(0u32, 0u32); specs.len()];
        for (u, range) in units_of(specs).into_iter().enumerate() {
            let w = u % width;
            let (part_specs, part_units) = &mut parts[w];
            let start = part_specs.len();
            for spec in &specs[range.clone()] {
                if let Some(at) = locations.get_mut(spec.id.index as usize) {
                    *at = (w as u32, part_specs.len() as u32);
                }
                part_specs.push(spec.clone());
            }
            part_units.push(start..part_specs.len());
        }
        // Partition 0 runs on the calling thread, which would otherwise only
        // wait during the phase; the others get a thread each.
        let (inline_specs, inline_units) = parts.remove(0);
        let mut pool_workers = Vec::with_capacity(width - 1);
        let mut ready = Vec::with_capacity(width - 1);
        for (k, (part_specs, part_units)) in parts.into_iter().enumerate() {
            let k = k + 1;
            let (job_tx, job_rx) = bounded::<Job>(1);
            let (done_tx, done_rx) = bounded::<Result<Batch>>(1);
            let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
            let host = host.clone();
            let cpus = cpus.clone();
            let handle = std::thread::Builder::new()
                .name(format!("we-worker-{k}"))
                .spawn(move || {
                    crate::affinity::keep_to(cpus.as_ref());
                    let mut part = match Partition::new(host, part_specs, &part_units, seed) {
                        Ok(p) => {
                            let _ = ready_tx.send(Ok(()));
                            p
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    serve(&mut part, &job_rx, &done_tx);
                })
                .map_err(|e| Error::Worker {
                    worker: k,
                    reason: e.to_string(),
                })?;
            pool_workers.push(Worker {
                jobs: job_tx,
                done: done_rx,
                waiter: Waiter::default(),
                handle: Some(handle),
            });
            ready.push(ready_rx);
        }
        // Instantiated here while the workers instantiate theirs.
        let inline = Partition::new(host, inline_specs, &inline_units, seed)?;
        for (k, rx) in ready.into_iter().enumerate() {
            rx.recv().map_err(|_| Error::Worker {
                worker: k + 1,
                reason: "worker stopped while instantiating".into(),
            })??;
        }
        Ok(Self {
            inline,
            batches: (0..width).map(|_| Batch::default()).collect(),
            workers: pool_workers,
            width,
            locations,
        })
    }

    /// Gives the recording loop to the last worker, which records the
    /// bundles sent to it between its phases (see recorder.rs); the duty
    /// back if the pool has no worker thread.
    pub(crate) fn host(&self, duty: Box<Duty>) -> std::result::Result<(), Box<Duty>> {
        let Some(worker) = self.workers.last() else {
            return Err(duty);
        };
        if let Err(refused) = worker.jobs.send(Job::Host(duty))
            && let Job::Host(duty) = refused.into_inner()
        {
            return Err(duty);
        }
        Ok(())
    }

    /// Runs one phase on every worker and waits for all of them.
    pub fn run(&mut self, phase: Phase, shared: &Arc<Shared>) -> Result<()> {
        // Worker k (from 1) runs partition k; the caller runs partition 0.
        for (k, worker) in self.workers.iter().enumerate() {
            let k = k + 1;
            let batch = std::mem::take(&mut self.batches[k]);
            worker
                .jobs
                .send(Job::Run {
                    phase,
                    shared: shared.clone(),
                    batch,
                })
                .map_err(|_| Error::Worker {
                    worker: k,
                    reason: "worker stopped".into(),
                })?;
        }
        self.inline.run(phase, shared, &mut self.batches[0]);
        // Replies are collected in worker order; arrival order is irrelevant.
        for (k, worker) in self.workers.iter_mut().enumerate() {
            let k = k + 1;
            let batch = worker
                .waiter
                .recv(&worker.done)
                .map_err(|_| Error::Worker {
                    worker: k,
                    reason: "worker stopped during a tick".into(),
                })??;
            self.batches[k] = batch;
        }
        Ok(())
    }

    /// The result of agent `index` in the last phase.
    #[inline]
    pub fn result(&self, index: u32) -> Option<&AgentResult> {
        self.results().get(index)
    }

    /// The results of the last phase, as a view other threads may read.
    pub fn results(&self) -> Results<'_> {
        Results {
            batches: &self.batches,
            locations: &self.locations,
        }
    }

    /// Number of partitions (threads, the calling one included).
    pub fn width(&self) -> usize {
        self.width
    }
}

/// The results of one phase, by agent index.
#[derive(Clone, Copy)]
pub(crate) struct Results<'a> {
    batches: &'a [Batch],
    locations: &'a [(u32, u32)],
}

impl<'a> Results<'a> {
    /// The result of agent `index` and the batch that holds it.
    #[inline]
    fn locate(&self, index: u32) -> Option<(&'a Batch, &'a AgentResult)> {
        let &(w, j) = self.locations.get(index as usize)?;
        let batch = self.batches.get(w as usize)?;
        Some((batch, batch.results.get(j as usize)?))
    }

    /// The result of agent `index`.
    #[inline]
    pub fn get(&self, index: u32) -> Option<&'a AgentResult> {
        self.locate(index).map(|(_, result)| result)
    }

    /// The result of agent `index` and its effects.
    #[inline]
    pub fn with_effects(&self, index: u32) -> Option<(&'a AgentResult, &'a [u8])> {
        self.locate(index)
            .map(|(batch, result)| (result, batch.effects_of(result)))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Closing the job channel ends the worker's loop.
            let (dead_tx, _) = bounded(0);
            worker.jobs = dead_tx;
            if let Some(handle) = worker.handle.take() {
                let _ = handle.join();
            }
        }
    }
}
