//! [`Sim`]: many native agents under a simulated orchestrator with the
//! runtime's rules, so a multi-agent interaction is a plain unit test.
//!
//! Each agent runs in a [`Harness`] (the SDK's simulated host, which drives it
//! through the same entry points as the wasm exports). The simulator plays the
//! orchestrator around them, with the ordering rules of the real runtime
//! (`docs/ARCHITECTURE.md`, `docs/ABI.md`):
//!
//! - every agent runs each tick, in id order: `receive` with its whole inbox (if
//!   not empty), then `step`;
//! - effects are committed after all agents ran, in (agent id, emission index)
//!   order: sends land in the receiver's next inbox; a publish fans out to the
//!   topic's subscribers in ascending id order, the publisher excluded; joins and
//!   leaves take effect at the end of the commit;
//! - inference requests of a tick are answered by the simulator's inference
//!   function and delivered next tick, after the agents' messages, in request
//!   order;
//! - shared regions have one writer (the creator); writes are committed at the
//!   end of the tick and every agent reads the committed version;
//! - an agent whose call fails is faulted: that tick's effects are discarded
//!   and it is not called again; its regions are dropped;
//! - the workload digest advances exactly as the runtime's, so a simulated run
//!   and the same agents' `.wasm` under the runtime print the same digest
//!   (for agents that use no inference, or whose inference replies match).
//!
//! Mailboxes are unbounded here (the runtime's are bounded by
//! `limits.mailbox_capacity`), and fuel and memory are not metered.

use crate::Error;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use we_abi::{SENDER_INFERENCE, msg_kind, tensor};
use we_agent::Agent;
use we_agent::native::{Effect, Harness, Tensor};

/// An inference request, as the simulator's inference function sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The tick it was made in.
    pub tick: u64,
    /// The requesting agent.
    pub agent: u32,
    /// The request tag.
    pub tag: u32,
    /// The model name.
    pub model: String,
    /// The input tensors.
    pub inputs: Vec<Tensor>,
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Output tensors (an inference result message).
    Tensors(Vec<Tensor>),
    /// An 8-byte `u64` payload: what the runtime delivers for a model marked
    /// `argmax` in the scenario (the index of the largest output element).
    Action(u64),
    /// A failed request (an inference error message with this text).
    Error(String),
}

impl Reply {
    /// One f32 output tensor.
    pub fn f32(name: &str, dims: &[u64], values: &[f32]) -> Reply {
        Reply::Tensors(vec![Tensor {
            name: name.to_string(),
            dtype: tensor::DTYPE_F32,
            dims: dims.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }])
    }

    /// The message kind and payload this reply is delivered as.
    fn encode(&self) -> (u16, Vec<u8>) {
        match self {
            Reply::Tensors(tensors) => {
                let mut payload = Vec::new();
                let count = u16::try_from(tensors.len()).unwrap_or(u16::MAX);
                tensor::write_result_header(&mut payload, count);
                for t in tensors.iter().take(usize::from(count)) {
                    tensor::write_tensor(&mut payload, &t.name, t.dtype, &t.dims, &t.data);
                }
                (msg_kind::INFER_RESULT, payload)
            }
            Reply::Action(a) => (msg_kind::INFER_RESULT, a.to_le_bytes().to_vec()),
            Reply::Error(text) => (msg_kind::INFER_ERROR, text.as_bytes().to_vec()),
        }
    }
}

/// A committed message, as the digest and the inbox see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Sender id (`SENDER_INFERENCE` for inference results).
    pub sender: u32,
    /// Receiver id.
    pub receiver: u32,
    /// we-abi message kind.
    pub kind: u16,
    /// Topic or inference tag.
    pub channel: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// The tick.
    pub tick: u64,
    /// Every agent's effects (log lines included), in commit order.
    pub effects: Vec<(u32, Effect)>,
    /// Messages committed for the next tick, in commit order.
    pub messages: Vec<Delivery>,
    /// Agents that faulted in this tick, with the failing status.
    pub faults: Vec<(u32, i32)>,
}

impl TickReport {
    /// The effects of agent `id`, in order.
    pub fn effects_of(&self, id: u32) -> Vec<&Effect> {
        self.effects
            .iter()
            .filter(|(a, _)| *a == id)
            .map(|(_, e)| e)
            .collect()
    }

    /// `(to, value)` of every `u64` send of agent `id`.
    pub fn sends_u64(&self, id: u32) -> Vec<(u32, u64)> {
        self.effects_of(id)
            .into_iter()
            .filter_map(Effect::as_send_u64)
            .collect()
    }
}

/// One agent slot: the type-erased harness.
trait Slot {
    fn init(&mut self, config: &[u8]) -> Vec<Effect>;
    fn deliver(&mut self, d: &Delivery);
    fn set_tick(&mut self, tick: u64);
    fn step(&mut self) -> Vec<Effect>;
    fn shutdown(&mut self) -> Vec<Effect>;
    fn fault_count(&self) -> usize;
    fn last_fault_status(&self) -> i32;
    fn set_region(&mut self, name: u32, bytes: &[u8]);
    fn remove_region(&mut self, name: u32);
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<A: Agent + 'static> Slot for Harness<A> {
    fn init(&mut self, config: &[u8]) -> Vec<Effect> {
        Harness::init(self, config)
    }
    fn deliver(&mut self, d: &Delivery) {
        self.deliver_record(d.sender, d.kind, d.channel, &d.payload);
    }
    fn set_tick(&mut self, tick: u64) {
        Harness::set_tick(self, tick);
    }
    fn step(&mut self) -> Vec<Effect> {
        Harness::step(self)
    }
    fn shutdown(&mut self) -> Vec<Effect> {
        Harness::shutdown(self)
    }
    fn fault_count(&self) -> usize {
        self.faults().len()
    }
    fn last_fault_status(&self) -> i32 {
        self.faults().last().map_or(0, |f| f.status)
    }
    fn set_region(&mut self, name: u32, bytes: &[u8]) {
        Harness::set_region(self, name, bytes);
    }
    fn remove_region(&mut self, name: u32) {
        Harness::remove_region(self, name);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

type Maker = Box<dyn FnOnce(u32, u32, u64) -> Box<dyn Slot>>;

struct Entry {
    slot: Option<Box<dyn Slot>>,
    maker: Option<Maker>,
    config: Vec<u8>,
    faulted: bool,
    /// Region versions this agent's host holds.
    seen: BTreeMap<u32, u64>,
}

struct Region {
    owner: u32,
    committed: Vec<u8>,
    pending: Option<Vec<u8>>,
    version: u64,
}

type InferFn = Box<dyn FnMut(&Request) -> Reply>;

/// One agent's call: its effects and, if it failed, the status.
type Ran = (Vec<Effect>, Option<i32>);

/// Native agents under a simulated, deterministic orchestrator.
///
/// ```
/// use we_agent::prelude::*;
/// use we_testkit::Sim;
///
/// /// Passes every counter on to the next agent, one larger.
/// #[derive(Default)]
/// struct Ring;
/// impl Agent for Ring {
///     fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
///         let next = (ctx.id() + 1) % ctx.agent_count();
///         ctx.send_u64(next, msg.u64() + 1);
///     }
///     fn step(&mut self, ctx: &mut Ctx) {
///         if ctx.tick() == 0 {
///             let next = (ctx.id() + 1) % ctx.agent_count();
///             ctx.send_u64(next, u64::from(ctx.id()));
///         }
///     }
/// }
///
/// let mut sim = Sim::new(7);
/// sim.add_group(3, |_| Ring);
/// sim.init().unwrap();
/// assert_eq!(sim.step().sends_u64(2), vec![(0, 2)]);
/// assert_eq!(sim.step().sends_u64(0), vec![(1, 3)]);
/// assert_eq!(sim.tick(), 2);
/// ```
pub struct Sim {
    seed: u64,
    tick: u64,
    entries: Vec<Entry>,
    inboxes: Vec<Vec<Delivery>>,
    topics: BTreeMap<u32, BTreeSet<u32>>,
    regions: BTreeMap<u32, Region>,
    inference: Option<InferFn>,
    digest: [u8; 32],
    log: Vec<String>,
    initialised: bool,
    last: TickReport,
    messages_total: u64,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("tick", &self.tick)
            .field("agents", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty simulation of a run seeded with `seed` (each agent's PRNG
    /// stream is the one the runtime gives it under that seed).
    pub fn new(seed: u64) -> Sim {
        Sim {
            seed,
            tick: 0,
            entries: Vec::new(),
            inboxes: Vec::new(),
            topics: BTreeMap::new(),
            regions: BTreeMap::new(),
            inference: None,
            digest: [0; 32],
            log: Vec::new(),
            initialised: false,
            last: TickReport::default(),
            messages_total: 0,
        }
    }

    /// Adds one agent (group index 0); returns its id.
    pub fn add<A: Agent + 'static>(&mut self, agent: A) -> u32 {
        self.add_configured(agent, 0, Vec::new())
    }

    /// Adds one agent with init config bytes and a group index; returns its id.
    pub fn add_configured<A: Agent + 'static>(
        &mut self,
        agent: A,
        group_index: u32,
        config: impl Into<Vec<u8>>,
    ) -> u32 {
        let id = self.entries.len() as u32;
        let maker: Maker = Box::new(move |id, count, seed| {
            Box::new(Harness::with_agent(agent, id, count, seed).with_group_index(group_index))
        });
        self.entries.push(Entry {
            slot: None,
            maker: Some(maker),
            config: config.into(),
            faulted: false,
            seen: BTreeMap::new(),
        });
        self.inboxes.push(Vec::new());
        id
    }

    /// Adds `count` agents made by `make(group_index)`, like one `[[agents]]`
    /// group of a scenario; returns their ids.
    pub fn add_group<A: Agent + 'static>(
        &mut self,
        count: u32,
        mut make: impl FnMut(u32) -> A,
    ) -> std::ops::Range<u32> {
        let first = self.entries.len() as u32;
        for k in 0..count {
            self.add_configured(make(k), k, Vec::new());
        }
        first..first + count
    }

    /// As [`Sim::add_group`], every agent with the same config bytes.
    pub fn add_group_configured<A: Agent + 'static>(
        &mut self,
        count: u32,
        config: &[u8],
        mut make: impl FnMut(u32) -> A,
    ) -> std::ops::Range<u32> {
        let first = self.entries.len() as u32;
        for k in 0..count {
            self.add_configured(make(k), k, config.to_vec());
        }
        first..first + count
    }

    /// Answers inference requests with `f` (without it every request fails,
    /// as in a run with no inference backend).
    pub fn set_inference(&mut self, f: impl FnMut(&Request) -> Reply + 'static) {
        self.inference = Some(Box::new(f));
    }

    /// Number of agents.
    pub fn agent_count(&self) -> u32 {
        self.entries.len() as u32
    }

    /// The tick the next [`Sim::step`] runs.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// The workload digest so far (`shared/workloads.md`), as the runtime's.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The workload digest as lower-case hex.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Messages committed so far (init excluded).
    pub fn messages_total(&self) -> u64 {
        self.messages_total
    }

    /// Log lines so far, `t=T agent=I: text` as in the runtime's log.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// The report of the last tick run.
    pub fn last(&self) -> &TickReport {
        &self.last
    }

    /// Whether agent `id` has faulted.
    pub fn is_faulted(&self, id: u32) -> bool {
        self.entries.get(id as usize).is_some_and(|e| e.faulted)
    }

    /// Region `name`'s committed bytes.
    pub fn region(&self, name: u32) -> Option<&[u8]> {
        self.regions.get(&name).map(|r| r.committed.as_slice())
    }

    /// Subscribers of `topic`, ascending.
    pub fn subscribers(&self, topic: u32) -> Vec<u32> {
        self.topics
            .get(&topic)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Messages waiting for agent `id`'s next tick.
    pub fn inbox(&self, id: u32) -> &[Delivery] {
        self.inboxes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Agent `id`'s state, if it is an `A`.
    pub fn agent<A: Agent + 'static>(&self, id: u32) -> Option<&A> {
        self.entries
            .get(id as usize)?
            .slot
            .as_ref()?
            .as_any()
            .downcast_ref::<Harness<A>>()
            .map(Harness::agent)
    }

    /// Agent `id`'s state, mutably, if it is an `A`.
    pub fn agent_mut<A: Agent + 'static>(&mut self, id: u32) -> Option<&mut A> {
        self.entries
            .get_mut(id as usize)?
            .slot
            .as_mut()?
            .as_any_mut()
            .downcast_mut::<Harness<A>>()
            .map(Harness::agent_mut)
    }

    /// Queues a direct message from `sender` to `receiver` for the next tick
    /// (after the messages already queued).
    pub fn deliver(&mut self, sender: u32, receiver: u32, payload: &[u8]) {
        self.push_delivery(Delivery {
            sender,
            receiver,
            kind: msg_kind::DIRECT,
            channel: 0,
            payload: payload.to_vec(),
        });
    }

    /// Queues a direct `u64` message for the next tick.
    pub fn deliver_u64(&mut self, sender: u32, receiver: u32, value: u64) {
        self.deliver(sender, receiver, &value.to_le_bytes());
    }

    fn push_delivery(&mut self, d: Delivery) {
        if let Some(inbox) = self.inboxes.get_mut(d.receiver as usize) {
            inbox.push(d);
        }
    }

    /// Runs every agent's `init` (in id order) and commits its effects, which
    /// are visible from tick 0. Call once, after adding every agent.
    pub fn init(&mut self) -> Result<&TickReport, Error> {
        if self.initialised {
            return Err(Error::AlreadyInitialised);
        }
        self.initialised = true;
        let count = self.agent_count();
        let seed = self.seed;
        let mut ran = Vec::with_capacity(self.entries.len());
        for (id, e) in self.entries.iter_mut().enumerate() {
            let Some(maker) = e.maker.take() else {
                ran.push((Vec::new(), None));
                continue;
            };
            let mut slot = maker(id as u32, count, seed);
            let before = slot.fault_count();
            let effects = slot.init(&e.config);
            let one = Self::checked(&*slot, before, effects);
            Self::note(e, &one);
            ran.push(one);
            e.slot = Some(slot);
        }
        self.commit(None, ran);
        Ok(&self.last)
    }

    /// Runs one tick and commits it; returns what it did.
    pub fn step(&mut self) -> &TickReport {
        if !self.initialised {
            // `init` fails only when called twice.
            let _ = self.init();
        }
        let tick = self.tick;
        let mut ran = Vec::with_capacity(self.entries.len());
        for (id, e) in self.entries.iter_mut().enumerate() {
            let inbox = std::mem::take(&mut self.inboxes[id]);
            if e.faulted {
                ran.push((Vec::new(), None));
                continue;
            }
            let Some(slot) = e.slot.as_mut() else {
                ran.push((Vec::new(), None));
                continue;
            };
            for (name, r) in &self.regions {
                if e.seen.get(name) != Some(&r.version) {
                    slot.set_region(*name, &r.committed);
                    e.seen.insert(*name, r.version);
                }
            }
            for d in &inbox {
                slot.deliver(d);
            }
            slot.set_tick(tick);
            let before = slot.fault_count();
            let effects = slot.step();
            let one = Self::checked(&**slot, before, effects);
            Self::note(e, &one);
            ran.push(one);
        }
        self.commit(Some(tick), ran);
        self.tick += 1;
        &self.last
    }

    /// Runs `ticks` ticks.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step();
        }
    }

    /// Runs every live agent's `shutdown`; returns their effects (not committed).
    pub fn shutdown(&mut self) -> Vec<(u32, Effect)> {
        let mut out = Vec::new();
        for (id, e) in self.entries.iter_mut().enumerate() {
            if e.faulted {
                continue;
            }
            if let Some(slot) = e.slot.as_mut() {
                out.extend(slot.shutdown().into_iter().map(|x| (id as u32, x)));
            }
        }
        out
    }

    /// The effects of a call and, if it failed, its status (only its log
    /// lines are then kept: the runtime discards a faulting tick whole).
    fn checked(slot: &dyn Slot, faults_before: usize, effects: Vec<Effect>) -> Ran {
        if slot.fault_count() > faults_before {
            let kept = effects
                .into_iter()
                .filter(|x| matches!(x, Effect::Log { .. }))
                .collect();
            return (kept, Some(slot.last_fault_status()));
        }
        (effects, None)
    }

    /// Marks a faulted agent; makes a region writer re-read the committed
    /// regions (its host applied its own writes, which may have been refused).
    fn note(e: &mut Entry, ran: &Ran) {
        if ran.1.is_some() {
            e.faulted = true;
        } else if ran
            .0
            .iter()
            .any(|x| matches!(x, Effect::RegionCreate { .. } | Effect::RegionWrite { .. }))
        {
            e.seen.clear();
        }
    }

    fn commit(&mut self, tick: Option<u64>, ran: Vec<Ran>) {
        let label = tick.map_or_else(|| "init".to_string(), |t| t.to_string());
        let mut report = TickReport {
            tick: tick.unwrap_or(u64::MAX),
            ..TickReport::default()
        };
        let mut joins: Vec<(u32, u32, bool)> = Vec::new();
        let mut requests: Vec<Request> = Vec::new();
        for (id, (effects, fault)) in ran.into_iter().enumerate() {
            let id = id as u32;
            if let Some(status) = fault {
                report.faults.push((id, status));
                self.drop_regions_of(id);
            }
            for effect in effects {
                match &effect {
                    Effect::Log { text, .. } => {
                        self.log.push(format!("t={label} agent={id}: {text}"));
                    }
                    Effect::Send { to, payload } => report.messages.push(Delivery {
                        sender: id,
                        receiver: *to,
                        kind: msg_kind::DIRECT,
                        channel: 0,
                        payload: payload.clone(),
                    }),
                    Effect::Publish { topic, payload } => {
                        for &sub in self.topics.get(topic).into_iter().flatten() {
                            if sub != id {
                                report.messages.push(Delivery {
                                    sender: id,
                                    receiver: sub,
                                    kind: msg_kind::TOPIC,
                                    channel: *topic,
                                    payload: payload.clone(),
                                });
                            }
                        }
                    }
                    Effect::Join { topic } => joins.push((id, *topic, true)),
                    Effect::Leave { topic } => joins.push((id, *topic, false)),
                    Effect::Infer {
                        tag, model, inputs, ..
                    } => requests.push(Request {
                        tick: report.tick,
                        agent: id,
                        tag: *tag,
                        model: model.clone(),
                        inputs: inputs.clone(),
                    }),
                    Effect::RegionCreate { region, len } => {
                        if let Err(why) = self.region_create(id, *region, *len) {
                            self.log.push(format!(
                                "t={label} agent={id}: region create of {region} refused: {why}"
                            ));
                        }
                    }
                    Effect::RegionWrite {
                        region,
                        offset,
                        data,
                    } => {
                        if let Err(why) = self.region_write(id, *region, *offset, data) {
                            self.log.push(format!(
                                "t={label} agent={id}: region write of {region} refused: {why}"
                            ));
                        }
                    }
                    _ => {}
                }
                report.effects.push((id, effect));
            }
        }
        for request in &requests {
            let reply = match self.inference.as_mut() {
                Some(f) => f(request),
                None => Reply::Error("no inference backend is configured for this run".into()),
            };
            let (kind, payload) = reply.encode();
            report.messages.push(Delivery {
                sender: SENDER_INFERENCE,
                receiver: request.agent,
                kind,
                channel: request.tag,
                payload,
            });
        }
        for (id, topic, join) in joins {
            let subs = self.topics.entry(topic).or_default();
            if join {
                subs.insert(id);
            } else {
                subs.remove(&id);
            }
        }
        for r in self.regions.values_mut() {
            if let Some(p) = r.pending.take() {
                r.committed = p;
                r.version += 1;
            }
        }
        // Messages to agents that do not exist are refused, as by the bus.
        report
            .messages
            .retain(|d| self.entries.get(d.receiver as usize).is_some());
        if let Some(t) = tick {
            let mut buf = Vec::with_capacity(8 + 24 * report.messages.len());
            buf.extend_from_slice(&t.to_le_bytes());
            for d in &report.messages {
                buf.extend_from_slice(&d.sender.to_le_bytes());
                buf.extend_from_slice(&d.receiver.to_le_bytes());
                buf.extend_from_slice(&d.payload);
            }
            let mut h = blake3::Hasher::new();
            h.update(&self.digest);
            h.update(&buf);
            self.digest = *h.finalize().as_bytes();
            self.messages_total += report.messages.len() as u64;
        }
        for d in &report.messages {
            if let Some(inbox) = self.inboxes.get_mut(d.receiver as usize) {
                inbox.push(d.clone());
            }
        }
        self.last = report;
    }

    fn region_create(&mut self, id: u32, name: u32, len: u32) -> Result<(), String> {
        match self.regions.get_mut(&name) {
            Some(r) if r.owner != id => Err(format!("not the owner (agent {} is)", r.owner)),
            Some(r) => {
                let pending = r.pending.get_or_insert_with(|| r.committed.clone());
                pending.resize(len as usize, 0);
                Ok(())
            }
            None => {
                self.regions.insert(
                    name,
                    Region {
                        owner: id,
                        committed: Vec::new(),
                        pending: Some(vec![0; len as usize]),
                        version: 0,
                    },
                );
                Ok(())
            }
        }
    }

    fn region_write(&mut self, id: u32, name: u32, offset: u32, data: &[u8]) -> Result<(), String> {
        let Some(r) = self.regions.get_mut(&name) else {
            return Err("no such region".into());
        };
        if r.owner != id {
            return Err(format!("not the owner (agent {} is)", r.owner));
        }
        let pending = r.pending.get_or_insert_with(|| r.committed.clone());
        let len = pending.len();
        let start = offset as usize;
        match pending.get_mut(start..start.saturating_add(data.len())) {
            Some(dst) => {
                dst.copy_from_slice(data);
                Ok(())
            }
            None => Err(format!("outside the region's {len} bytes")),
        }
    }

    fn drop_regions_of(&mut self, id: u32) {
        let names: Vec<u32> = self
            .regions
            .iter()
            .filter(|(_, r)| r.owner == id)
            .map(|(n, _)| *n)
            .collect();
        for name in names {
            self.regions.remove(&name);
            for e in &mut self.entries {
                e.seen.remove(&name);
                if let Some(slot) = e.slot.as_mut() {
                    slot.remove_region(name);
                }
            }
        }
    }
}
