//! The worker pool: agents partitioned over threads that own their instances.
//!
//! Agent `i` lives on worker `i % W` for the whole run: wasmer instances are tied
//! to the thread that made them, and keeping them put means nothing is
//! re-instantiated or moved on the hot path. Each tick the orchestrator hands
//! every worker the same read-only [`Shared`] state and a [`Batch`] to fill; the
//! worker runs its agents in ascending id order and sends the batch back. The
//! orchestrator waits for all batches and commits them in agent id order, so
//! which worker finished first never matters.
//!
//! Partition 0 runs on the calling thread, which would otherwise only wait
//! during a phase; partitions 1 to W-1 get a thread each. With one worker there
//! are no threads and no channels.

use crate::regions::Regions;
use crate::run::agent_digest;
use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;
use std::thread::JoinHandle;
use we_abi::{InitContext, StepContext};
use we_core::hint::prefetch;
use we_core::{
    AgentCall, AgentHost, AgentId, AgentInstance, CallOutcome, Emitted, FaultKind, Tick,
};
use we_ipc::Bus;

/// What an agent is, for instantiation.
#[derive(Clone, Debug)]
pub(crate) struct AgentSpec {
    pub id: AgentId,
    pub module: usize,
    pub group_index: u32,
    pub config: Arc<[u8]>,
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
    pub emitted: Emitted,
    pub fault: Option<FaultKind>,
    pub ran: bool,
    /// [`agent_digest`] of the emitted effects, computed by the worker.
    pub digest: u64,
}

/// One worker's results, one entry per agent it owns, in ascending id order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub results: Vec<AgentResult>,
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
    instances: Vec<Option<Box<dyn AgentInstance>>>,
    scratch: Vec<u8>,
    perturb_state: u64,
}

impl Partition {
    fn new(host: Arc<dyn AgentHost>, specs: Vec<AgentSpec>, seed: u64) -> Result<Self> {
        let mut instances = Vec::with_capacity(specs.len());
        for spec in &specs {
            let instance =
                host.instantiate(spec.module, spec.id, seed)
                    .map_err(|e| Error::Instantiate {
                        agent: spec.id.index,
                        reason: e.to_string(),
                    })?;
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
            scratch: Vec::new(),
            perturb_state: 0x2545_F491_4F6C_DD1D ^ seed,
        })
    }

    fn run(&mut self, phase: Phase, shared: &Shared, batch: &mut Batch) {
        batch
            .results
            .resize_with(self.specs.len(), AgentResult::default);
        for j in 0..self.specs.len() {
            let next_effects = batch.results.get(j + 1).map(|r| r.emitted.effects.as_ptr());
            let result = &mut batch.results[j];
            result.emitted.clear();
            result.fault = None;
            result.ran = false;
            result.digest = 0;
            let index = self.specs[j].id.index as usize;
            let flag = shared.run.get(index).copied().unwrap_or(RUN_SKIP);
            let mut phase = phase;
            if phase != Phase::Init && flag == RUN_SKIP {
                continue;
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
                        continue;
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
                continue;
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
    }
}

enum Job {
    Run {
        phase: Phase,
        shared: Arc<Shared>,
        batch: Batch,
    },
}

struct Worker {
    jobs: Sender<Job>,
    done: Receiver<Result<Batch>>,
    handle: Option<JoinHandle<()>>,
}

/// The pool: partition 0 on the calling thread, W-1 worker threads.
pub(crate) struct Pool {
    /// Partition 0, run on the calling thread.
    inline: Partition,
    workers: Vec<Worker>,
    batches: Vec<Batch>,
    /// Position of agent `i` in its worker's batch is `i / W`.
    width: usize,
}

impl Pool {
    /// Instantiates every agent, each on the worker that will run it.
    pub fn new(
        host: Arc<dyn AgentHost>,
        specs: &[AgentSpec],
        workers: usize,
        seed: u64,
    ) -> Result<Self> {
        let width = workers.max(1);
        let mut parts: Vec<Vec<AgentSpec>> = vec![Vec::new(); width];
        for spec in specs {
            parts[spec.id.index as usize % width].push(spec.clone());
        }
        // Partition 0 runs on the calling thread, which would otherwise only
        // wait during the phase; the others get a thread each.
        let inline_specs = parts.remove(0);
        let mut pool_workers = Vec::with_capacity(width - 1);
        let mut ready = Vec::with_capacity(width - 1);
        for (k, part_specs) in parts.into_iter().enumerate() {
            let k = k + 1;
            let (job_tx, job_rx) = bounded::<Job>(1);
            let (done_tx, done_rx) = bounded::<Result<Batch>>(1);
            let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
            let host = host.clone();
            let handle = std::thread::Builder::new()
                .name(format!("we-worker-{k}"))
                .spawn(move || {
                    let mut part = match Partition::new(host, part_specs, seed) {
                        Ok(p) => {
                            let _ = ready_tx.send(Ok(()));
                            p
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    while let Ok(Job::Run {
                        phase,
                        shared,
                        mut batch,
                    }) = job_rx.recv()
                    {
                        part.run(phase, &shared, &mut batch);
                        // Drop the shared state before replying, so the
                        // orchestrator owns it alone again once all replies are in.
                        drop(shared);
                        if done_tx.send(Ok(batch)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| Error::Worker {
                    worker: k,
                    reason: e.to_string(),
                })?;
            pool_workers.push(Worker {
                jobs: job_tx,
                done: done_rx,
                handle: Some(handle),
            });
            ready.push(ready_rx);
        }
        // Instantiated here while the workers instantiate theirs.
        let inline = Partition::new(host, inline_specs, seed)?;
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
        })
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
        for (k, worker) in self.workers.iter().enumerate() {
            let k = k + 1;
            let batch = worker.done.recv().map_err(|_| Error::Worker {
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
            width: self.width,
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
    width: usize,
}

impl<'a> Results<'a> {
    /// The result of agent `index`.
    #[inline]
    pub fn get(&self, index: u32) -> Option<&'a AgentResult> {
        let i = index as usize;
        self.batches
            .get(i % self.width)
            .and_then(|b| b.results.get(i / self.width))
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
