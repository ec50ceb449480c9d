//! A simulated host, so an [`Agent`] can be unit-tested natively.
//!
//! On targets other than `wasm32` the SDK's host calls land here instead of in
//! `we.*` imports: a thread-local simulated host answers `tick`, `rand_u64` (the
//! same [`SplitMix64`] stream as the sandbox), `region_*`, and records what the
//! agent `emit`s and `log`s. [`Harness`] owns one agent and one simulated host
//! and drives the agent through the very entry points the wasm exports use
//! (`we_buffer`, `agent_init`, `agent_receive`, `agent_step`, `agent_shutdown`),
//! so the context encoding, the inbox walk and the outbox batching are the ones
//! that run in the sandbox.
//!
//! Several harnesses may live on one thread: each installs its host state only
//! for the duration of a call.
//!
//! ```
//! use we_agent::native::{Effect, Harness};
//! use we_agent::prelude::*;
//!
//! #[derive(Default)]
//! struct Echo;
//! impl Agent for Echo {
//!     fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
//!         ctx.send_u64(msg.sender(), msg.u64() + 1);
//!     }
//! }
//!
//! let mut h = Harness::<Echo>::new(1, 4, 42);
//! h.init(&[]);
//! h.deliver_u64(3, 10);
//! assert_eq!(h.step(), vec![Effect::send_u64(3, 11)]);
//! ```

use crate::runtime::Runtime;
use crate::{Agent, AgentError, TensorRef, status};
use core::cell::RefCell;
use std::collections::BTreeMap;
use we_abi::tensor::{Tensors, read_request_header};
use we_abi::{
    EffectHeader, InitContext, MessageHeader, REGION_OUT_OF_RANGE, REGION_STALE, Records,
    SENDER_INFERENCE, STATUS_OK, SplitMix64, StepContext, msg_kind, op,
};

/// What the simulated `emit` answers where the sandbox would fault the agent
/// (the sandbox traps inside `emit`; a native call cannot, so it answers and
/// the SDK ends the call with this status, which [`Harness::faults`] records).
pub mod emit_status {
    /// A record was malformed (bad op, non-zero flags, a payload on an op
    /// without one, a truncated record, an undecodable inference request).
    pub const MALFORMED: i32 = -1;
    /// The call emitted more effect bytes than [`super::Harness::with_effect_bytes_max`].
    pub const EFFECT_LIMIT: i32 = -2;
    /// A payload exceeded [`super::Harness::with_max_payload`].
    pub const TOO_LARGE: i32 = -3;
}

/// A tensor decoded from an inference request, owning its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Name.
    pub name: String,
    /// we-abi dtype byte.
    pub dtype: u8,
    /// Dims.
    pub dims: Vec<u64>,
    /// Elements as little-endian bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// The elements, if this is an f32 tensor.
    pub fn f32_values(&self) -> Option<Vec<f32>> {
        (self.dtype == we_abi::tensor::DTYPE_F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| <[u8; 4]>::try_from(c).map_or(0.0, f32::from_le_bytes))
                .collect()
        })
    }

    /// The elements, if this is an i64 tensor.
    pub fn i64_values(&self) -> Option<Vec<i64>> {
        (self.dtype == we_abi::tensor::DTYPE_I64).then(|| {
            self.data
                .chunks_exact(8)
                .map(|c| <[u8; 8]>::try_from(c).map_or(0, i64::from_le_bytes))
                .collect()
        })
    }
}

/// Something an agent did, as the simulated host saw it, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// `send`.
    Send {
        /// Receiving agent.
        to: u32,
        /// Payload.
        payload: Vec<u8>,
    },
    /// `publish`.
    Publish {
        /// Topic.
        topic: u32,
        /// Payload.
        payload: Vec<u8>,
    },
    /// `join`.
    Join {
        /// Topic.
        topic: u32,
    },
    /// `leave`.
    Leave {
        /// Topic.
        topic: u32,
    },
    /// An inference request.
    Infer {
        /// Model-slot word of the effect (0: resolve by name).
        slot: u32,
        /// Request tag.
        tag: u32,
        /// Model name.
        model: String,
        /// Input tensors.
        inputs: Vec<Tensor>,
    },
    /// `region_create`.
    RegionCreate {
        /// Region.
        region: u32,
        /// New length in bytes.
        len: u32,
    },
    /// `region_write`.
    RegionWrite {
        /// Region.
        region: u32,
        /// Byte offset.
        offset: u32,
        /// Bytes written.
        data: Vec<u8>,
    },
    /// The end of one packed agent's effects in a pack call (`we_abi::pack`).
    PackEnd {
        /// The agent's slot in the pack.
        slot: u32,
        /// Its status (0 is success).
        status: i32,
    },
    /// A line logged with the `log` import (immediately, so it precedes the
    /// effects of the same call, which are emitted when the call returns).
    Log {
        /// we-abi log level.
        level: i32,
        /// The text, decoded lossily.
        text: String,
    },
}

impl Effect {
    /// A `Send` of a `u64` payload, for building expectations.
    pub fn send_u64(to: u32, value: u64) -> Self {
        Effect::Send {
            to,
            payload: value.to_le_bytes().to_vec(),
        }
    }

    /// A `Publish` of a `u64` payload, for building expectations.
    pub fn publish_u64(topic: u32, value: u64) -> Self {
        Effect::Publish {
            topic,
            payload: value.to_le_bytes().to_vec(),
        }
    }

    /// `(to, value)` of a send with an 8-byte payload.
    pub fn as_send_u64(&self) -> Option<(u32, u64)> {
        match self {
            Effect::Send { to, payload } => Some((*to, le_u64(payload)?)),
            _ => None,
        }
    }

    /// `(topic, value)` of a publish with an 8-byte payload.
    pub fn as_publish_u64(&self) -> Option<(u32, u64)> {
        match self {
            Effect::Publish { topic, payload } => Some((*topic, le_u64(payload)?)),
            _ => None,
        }
    }
}

fn le_u64(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_le_bytes)
}

/// The simulated host state behind the SDK's host calls on a native target.
#[derive(Debug)]
pub(crate) struct SimHost {
    pub(crate) tick: u64,
    pub(crate) rng: SplitMix64,
    events: Vec<Effect>,
    regions: BTreeMap<u32, Vec<u8>>,
    emit_calls: u64,
    max_payload: usize,
    effect_bytes_max: usize,
    effect_bytes_call: usize,
}

impl Default for SimHost {
    fn default() -> Self {
        Self {
            tick: 0,
            rng: SplitMix64::for_agent(0, 0, 0),
            events: Vec::new(),
            regions: BTreeMap::new(),
            emit_calls: 0,
            max_payload: usize::MAX,
            effect_bytes_max: usize::MAX,
            effect_bytes_call: 0,
        }
    }
}

impl SimHost {
    /// `we.emit`: checks a whole batch as the sandbox does, then decodes it; a
    /// bad record refuses all of it.
    pub(crate) fn emit(&mut self, bytes: &[u8]) -> i32 {
        self.emit_calls += 1;
        self.effect_bytes_call = self.effect_bytes_call.saturating_add(bytes.len());
        if self.effect_bytes_call > self.effect_bytes_max {
            return emit_status::EFFECT_LIMIT;
        }
        let mut batch = Vec::new();
        for record in Records::new(bytes) {
            let Ok((header, payload)) = record else {
                return emit_status::MALFORMED;
            };
            let Some(h) = EffectHeader::decode(header) else {
                return emit_status::MALFORMED;
            };
            let payload_allowed =
                matches!(h.op, op::SEND | op::PUBLISH | op::INFER | op::REGION_WRITE);
            if h.flags != 0 || (!payload_allowed && h.len != 0) {
                return emit_status::MALFORMED;
            }
            if payload.len() > self.max_payload {
                return emit_status::TOO_LARGE;
            }
            let Some(effect) = decode_effect(h, payload) else {
                return emit_status::MALFORMED;
            };
            batch.push(effect);
        }
        self.events.extend(batch);
        STATUS_OK
    }

    /// `we.log`.
    pub(crate) fn log(&mut self, level: i32, bytes: &[u8]) -> i32 {
        self.events.push(Effect::Log {
            level,
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
        STATUS_OK
    }

    /// `we.region_len`.
    pub(crate) fn region_len(&self, region: u32) -> i32 {
        match self.regions.get(&region) {
            Some(r) => i32::try_from(r.len()).unwrap_or(i32::MAX),
            None => REGION_STALE,
        }
    }

    /// `we.region_read`.
    pub(crate) fn region_read(&self, region: u32, offset: u32, dst: &mut [u8]) -> i32 {
        let Some(r) = self.regions.get(&region) else {
            return REGION_STALE;
        };
        let Some(rest) = r.get(offset as usize..) else {
            return REGION_OUT_OF_RANGE;
        };
        let n = rest.len().min(dst.len()).min(i32::MAX as usize);
        dst[..n].copy_from_slice(&rest[..n]);
        n as i32
    }

    /// Commits region effects, as the runtime does at the end of a tick
    /// (simplified: one id space, writes outside the region are dropped).
    fn commit_regions(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::RegionCreate { region, len } => {
                    self.regions
                        .entry(*region)
                        .or_default()
                        .resize(*len as usize, 0);
                }
                Effect::RegionWrite {
                    region,
                    offset,
                    data,
                } => {
                    let start = *offset as usize;
                    if let Some(dst) = self
                        .regions
                        .get_mut(region)
                        .and_then(|r| r.get_mut(start..start.saturating_add(data.len())))
                    {
                        dst.copy_from_slice(data);
                    }
                }
                _ => {}
            }
        }
    }
}

fn decode_effect(h: EffectHeader, payload: &[u8]) -> Option<Effect> {
    Some(match h.op {
        op::SEND => Effect::Send {
            to: h.target,
            payload: payload.to_vec(),
        },
        op::PUBLISH => Effect::Publish {
            topic: h.target,
            payload: payload.to_vec(),
        },
        op::JOIN => Effect::Join { topic: h.target },
        op::LEAVE => Effect::Leave { topic: h.target },
        op::INFER => {
            let (model, count, body) = read_request_header(payload).ok()?;
            let model = String::from_utf8(model.to_vec()).ok()?;
            let mut inputs = Vec::new();
            for t in Tensors::new(body) {
                let t = t.ok()?;
                inputs.push(Tensor {
                    name: String::from_utf8(t.name.to_vec()).ok()?,
                    dtype: t.dtype,
                    dims: (0..t.rank()).map(|i| t.dim(i)).collect(),
                    data: t.data.to_vec(),
                });
            }
            if inputs.len() != count as usize {
                return None;
            }
            Effect::Infer {
                slot: h.target,
                tag: h.aux,
                model,
                inputs,
            }
        }
        op::PACK_END => Effect::PackEnd {
            slot: h.target,
            status: h.aux as i32,
        },
        op::REGION_CREATE => Effect::RegionCreate {
            region: h.target,
            len: h.aux,
        },
        op::REGION_WRITE => Effect::RegionWrite {
            region: h.target,
            offset: h.aux,
            data: payload.to_vec(),
        },
        _ => return None,
    })
}

thread_local! {
    static HOST: RefCell<SimHost> = RefCell::new(SimHost::default());
}

/// Runs `f` on this thread's installed host; `R::default()` in the impossible
/// case that the host is already borrowed or thread-local storage is gone.
pub(crate) fn with_host<R: Default>(f: impl FnOnce(&mut SimHost) -> R) -> R {
    HOST.try_with(|cell| cell.try_borrow_mut().ok().map(|mut h| f(&mut h)))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Exchanges `host` with this thread's installed host.
fn swap_host(host: &mut SimHost) {
    let _ = HOST.try_with(|cell| {
        if let Ok(mut installed) = cell.try_borrow_mut() {
            core::mem::swap(&mut *installed, host);
        }
    });
}

/// Installs a host for the lifetime of the guard, restoring the previous one
/// on drop (also when the agent panics).
struct Installed<'a>(&'a mut SimHost);

impl<'a> Installed<'a> {
    fn new(host: &'a mut SimHost) -> Self {
        swap_host(host);
        Self(host)
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        swap_host(self.0);
    }
}

/// Which export a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Export {
    /// `agent_init`.
    Init,
    /// `agent_receive`.
    Receive,
    /// `agent_step`.
    Step,
    /// `agent_shutdown`.
    Shutdown,
    /// `we_pack_call` (the bytes are a whole pack call buffer, see
    /// `we_abi::pack`; only a harness made with [`Harness::new`] can host one).
    Pack,
}

/// An export call that returned a non-zero status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Tick of the call.
    pub tick: u64,
    /// The export.
    pub export: Export,
    /// The status it returned.
    pub status: i32,
}

/// One agent on a simulated host: deliver messages, step ticks, read effects.
///
/// Each [`Harness::step`] runs one tick: `agent_receive` with everything
/// delivered since the last step (if anything), then `agent_step`, and returns
/// the effects of both calls in order. Unlike the real runtime, a harness keeps
/// calling an agent after a fault; [`Harness::faults`] lists the failed calls.
#[derive(Debug)]
pub struct Harness<A: Agent> {
    runtime: Runtime<A>,
    host: SimHost,
    init: InitContext,
    seed: u64,
    tick: u64,
    inbox: Vec<u8>,
    inbox_len: u32,
    refused: u32,
    fuel_per_call: u64,
    faults: Vec<Fault>,
}

impl<A: Agent + Default> Harness<A> {
    /// Agent `agent_id` of `agent_count`, generation 0, in a run seeded with `seed`.
    pub fn new(agent_id: u32, agent_count: u32, seed: u64) -> Self {
        let mut harness = Self::with_agent(A::default(), agent_id, agent_count, seed);
        harness.runtime = Runtime::with_factory(A::default);
        harness
    }
}

impl<A: Agent> Harness<A> {
    /// As [`Harness::new`], with an agent constructed by the caller.
    pub fn with_agent(agent: A, agent_id: u32, agent_count: u32, seed: u64) -> Self {
        let host = SimHost {
            rng: SplitMix64::for_agent(seed, agent_id, 0),
            ..SimHost::default()
        };
        Self {
            runtime: Runtime::new(agent),
            host,
            init: InitContext {
                agent_id,
                generation: 0,
                agent_count,
                group_index: agent_id,
                config_len: 0,
            },
            seed,
            tick: 0,
            inbox: Vec::new(),
            inbox_len: 0,
            refused: 0,
            fuel_per_call: 0,
            faults: Vec::new(),
        }
    }

    /// Sets the generation (and so the PRNG stream) before `init`.
    pub fn with_generation(mut self, generation: u32) -> Self {
        self.init.generation = generation;
        self.host.rng = SplitMix64::for_agent(self.seed, self.init.agent_id, generation);
        self
    }

    /// Sets the group index (default: the agent id).
    pub fn with_group_index(mut self, group_index: u32) -> Self {
        self.init.group_index = group_index;
        self
    }

    /// Refuses effect payloads above `bytes` (the sandbox's message size limit).
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.host.max_payload = bytes;
        self
    }

    /// Refuses more than `bytes` of effect records per export call (the
    /// sandbox's per-call effect budget).
    pub fn with_effect_bytes_max(mut self, bytes: usize) -> Self {
        self.host.effect_bytes_max = bytes;
        self
    }

    /// The agent's id.
    pub fn agent_id(&self) -> u32 {
        self.init.agent_id
    }

    /// The agent.
    pub fn agent(&self) -> &A {
        self.runtime.agent()
    }

    /// The agent, mutably.
    pub fn agent_mut(&mut self) -> &mut A {
        self.runtime.agent_mut()
    }

    /// The tick the next [`Harness::step`] runs.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Moves the clock.
    pub fn set_tick(&mut self, tick: u64) {
        self.tick = tick;
    }

    /// The `refused` count the next step context carries.
    pub fn set_refused(&mut self, refused: u32) {
        self.refused = refused;
    }

    /// The `fuel_per_call` the next step context carries.
    pub fn set_fuel_per_call(&mut self, fuel: u64) {
        self.fuel_per_call = fuel;
    }

    /// Sets a region's committed bytes.
    pub fn set_region(&mut self, region: u32, bytes: &[u8]) {
        self.host.regions.insert(region, bytes.to_vec());
    }

    /// Removes a region, so reads of it answer stale (as after its owner faulted).
    pub fn remove_region(&mut self, region: u32) {
        self.host.regions.remove(&region);
    }

    /// A region's committed bytes.
    pub fn region(&self, region: u32) -> Option<&[u8]> {
        self.host.regions.get(&region).map(Vec::as_slice)
    }

    /// Calls that returned a non-zero status, oldest first.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Number of `emit` host calls the agent has made.
    pub fn emit_calls(&self) -> u64 {
        self.host.emit_calls
    }

    /// Messages delivered and not yet handed to the agent.
    pub fn pending(&self) -> u32 {
        self.inbox_len
    }

    /// Runs `agent_init` with `config`, at the current tick; returns its effects.
    pub fn init(&mut self, config: &[u8]) -> Vec<Effect> {
        let mut bytes = vec![0u8; InitContext::SIZE];
        let mut init = self.init;
        init.config_len = u32::try_from(config.len()).unwrap_or(u32::MAX);
        let mut head = [0u8; InitContext::SIZE];
        init.encode(&mut head);
        bytes.copy_from_slice(&head);
        bytes.extend_from_slice(config);
        self.call(Export::Init, &bytes);
        self.take_events()
    }

    /// Queues a direct message for the next step.
    pub fn deliver(&mut self, sender: u32, payload: &[u8]) {
        self.deliver_record(sender, msg_kind::DIRECT, 0, payload);
    }

    /// Queues a direct message with a `u64` payload for the next step.
    pub fn deliver_u64(&mut self, sender: u32, value: u64) {
        self.deliver(sender, &value.to_le_bytes());
    }

    /// Queues a topic message for the next step.
    pub fn deliver_topic(&mut self, sender: u32, topic: u32, payload: &[u8]) {
        self.deliver_record(sender, msg_kind::TOPIC, topic, payload);
    }

    /// Queues the result of inference request `tag` for the next step.
    pub fn deliver_infer_result(
        &mut self,
        tag: u32,
        outputs: &[TensorRef<'_>],
    ) -> Result<(), AgentError> {
        let count = u16::try_from(outputs.len()).map_err(|_| AgentError::TooLarge {
            what: "tensor count",
            len: outputs.len(),
        })?;
        let mut payload = Vec::new();
        we_abi::tensor::write_result_header(&mut payload, count);
        for t in outputs {
            t.encoded_len()?;
            t.write(&mut payload);
        }
        self.deliver_record(SENDER_INFERENCE, msg_kind::INFER_RESULT, tag, &payload);
        Ok(())
    }

    /// Queues a failed inference request `tag` for the next step.
    pub fn deliver_infer_error(&mut self, tag: u32, reason: &str) {
        self.deliver_record(
            SENDER_INFERENCE,
            msg_kind::INFER_ERROR,
            tag,
            reason.as_bytes(),
        );
    }

    /// Queues any message record for the next step. Payloads of 4 GiB or more
    /// cannot be described by a record and are dropped.
    pub fn deliver_record(&mut self, sender: u32, kind: u16, channel: u32, payload: &[u8]) {
        let Ok(len) = u32::try_from(payload.len()) else {
            return;
        };
        let header = MessageHeader {
            sender,
            kind,
            flags: 0,
            channel,
            len,
        };
        we_abi::write_record(&mut self.inbox, header.encode(), payload);
        self.inbox_len += 1;
    }

    /// Runs one tick (`agent_receive` if anything was delivered, then
    /// `agent_step`), commits region effects, advances the clock, and returns
    /// the effects in order.
    pub fn step(&mut self) -> Vec<Effect> {
        let inbox_len = self.inbox_len;
        if inbox_len > 0 {
            let inbox = core::mem::take(&mut self.inbox);
            self.call(Export::Receive, &inbox);
            self.inbox = inbox;
            self.inbox.clear();
            self.inbox_len = 0;
        }
        let context = StepContext {
            tick: self.tick,
            agent_id: self.init.agent_id,
            generation: self.init.generation,
            inbox_len,
            refused: self.refused,
            fuel_per_call: self.fuel_per_call,
        };
        let mut bytes = [0u8; StepContext::SIZE];
        context.encode(&mut bytes);
        self.call(Export::Step, &bytes);
        let effects = self.take_events();
        self.host.commit_regions(&effects);
        self.tick += 1;
        effects
    }

    /// Runs `agent_shutdown`; returns its effects.
    pub fn shutdown(&mut self) -> Vec<Effect> {
        self.call(Export::Shutdown, &[]);
        self.take_events()
    }

    /// Calls the agent through the raw export path, with this harness's host installed.
    pub fn call_raw(&mut self, export: Export, bytes: &[u8]) -> i32 {
        self.call(export, bytes)
    }

    /// The effects recorded since the last step/init/shutdown.
    pub fn take_events(&mut self) -> Vec<Effect> {
        core::mem::take(&mut self.host.events)
    }

    fn call(&mut self, export: Export, bytes: &[u8]) -> i32 {
        self.host.tick = self.tick;
        self.host.effect_bytes_call = 0;
        let status = {
            let _installed = Installed::new(&mut self.host);
            let rt = &mut self.runtime;
            match export {
                Export::Shutdown => rt.agent_shutdown(),
                Export::Init | Export::Receive | Export::Step | Export::Pack => {
                    match i32::try_from(bytes.len()) {
                        Err(_) => status::TOO_LARGE,
                        Ok(len) => {
                            let ptr = rt.we_buffer(len);
                            match rt.buffer_mut().get_mut(..bytes.len()) {
                                None => status::OUT_OF_MEMORY,
                                Some(dst) => {
                                    dst.copy_from_slice(bytes);
                                    match export {
                                        Export::Init => rt.agent_init(ptr, len),
                                        Export::Receive => rt.agent_receive(ptr, len),
                                        Export::Pack => rt.pack_call(ptr, len),
                                        _ => rt.agent_step(ptr, len),
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        if status != STATUS_OK {
            self.faults.push(Fault {
                tick: self.tick,
                export,
                status,
            });
        }
        status
    }
}
