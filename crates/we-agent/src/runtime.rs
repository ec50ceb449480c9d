//! The glue between the ABI exports and an [`Agent`]: the exchange buffer,
//! context decoding, and the per-call status.
//!
//! [`export_agent!`](crate::export_agent) keeps one [`Runtime`] per module in a
//! `thread_local!` and forwards each export to it; the native
//! [`Harness`](crate::native::Harness) drives the same type through the same
//! entry points, so the byte-level path is tested on the host.

use crate::error::status;
use crate::{Agent, AgentError, Ctx, Inbox};
use core::ops::Range;
use we_abi::pack::{PACK_INIT, PACK_SHUTDOWN, PACK_STEP, PackEntry, PackHeader};
use we_abi::{InitContext, STATUS_OK, SplitMix64, StepContext};

/// Highest slot a pack may use: a bound on what one malformed entry can make
/// the guest allocate.
const PACK_SLOTS_MAX: u32 = 1 << 20;

/// An agent, its context and its exchange buffer; for a pack, also the
/// packed agents by slot.
#[derive(Debug)]
pub struct Runtime<A> {
    agent: A,
    ctx: Ctx,
    buffer: Vec<u8>,
    /// Makes the agents of a pack; `None`: this runtime cannot host a pack.
    make: Option<fn() -> A>,
    slots: Vec<Option<Slot<A>>>,
}

/// One agent of a pack.
#[derive(Debug)]
struct Slot<A> {
    agent: A,
    init: InitContext,
    rng: SplitMix64,
}

impl<A: Agent> Runtime<A> {
    /// A runtime around a freshly constructed agent.
    pub fn new(agent: A) -> Self {
        Self {
            agent,
            ctx: Ctx::new(),
            buffer: Vec::new(),
            make: None,
            slots: Vec::new(),
        }
    }

    /// A runtime whose agents `make` constructs: one for the single-agent
    /// exports, and one per slot when the instance hosts a pack.
    pub fn with_factory(make: fn() -> A) -> Self {
        Self {
            make: Some(make),
            ..Self::new(make())
        }
    }

    /// The agent.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// The agent, mutably.
    pub fn agent_mut(&mut self) -> &mut A {
        &mut self.agent
    }

    /// The agent's context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// `we_buffer(capacity)`: the address of a buffer of at least `capacity`
    /// bytes, stable until the next call; 0 if `capacity` is negative or the
    /// memory cannot be had (the wasm export turns 0 into a trap).
    pub fn we_buffer(&mut self, capacity: i32) -> i32 {
        let Ok(capacity) = usize::try_from(capacity) else {
            return 0;
        };
        if self.buffer.len() < capacity {
            let extra = capacity - self.buffer.len();
            if self.buffer.try_reserve_exact(extra).is_err() {
                return 0;
            }
            self.buffer.resize(capacity, 0);
        }
        // Guest addresses are 32-bit; on a native target the truncated address is
        // only ever compared with itself (see `span`).
        self.buffer.as_mut_ptr() as usize as u32 as i32
    }

    /// The exchange buffer, for a native host to write into.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.buffer
    }

    /// The byte range of the exchange buffer that `(ptr, len)` names, or `None`
    /// if it is not inside the buffer. Arguments are never dereferenced: a host
    /// can only point the SDK at bytes the SDK owns.
    fn span(&self, ptr: i32, len: i32) -> Option<Range<usize>> {
        let base = self.buffer.as_ptr() as usize as u32;
        let start = (ptr as u32).wrapping_sub(base) as usize;
        let len = usize::try_from(len).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.buffer.len()).then_some(start..end)
    }

    /// `agent_init(ptr, len)`: an [`InitContext`] then the config bytes.
    pub fn agent_init(&mut self, ptr: i32, len: i32) -> i32 {
        let Some(range) = self.span(ptr, len) else {
            return status::BAD_CONTEXT;
        };
        let bytes = &self.buffer[range];
        let Some(init) = InitContext::decode(bytes) else {
            return status::BAD_CONTEXT;
        };
        let config_end = InitContext::SIZE.saturating_add(init.config_len as usize);
        let Some(config) = bytes.get(InitContext::SIZE..config_end) else {
            return status::BAD_CONTEXT;
        };
        self.ctx.begin_init(init);
        self.agent.init(&mut self.ctx, config);
        self.ctx.finish()
    }

    /// `agent_receive(ptr, len)`: the tick's inbox as message records.
    pub fn agent_receive(&mut self, ptr: i32, len: i32) -> i32 {
        let Some(range) = self.span(ptr, len) else {
            return status::BAD_CONTEXT;
        };
        let Some(inbox) = Inbox::checked(&self.buffer[range]) else {
            return status::BAD_CONTEXT;
        };
        self.ctx.begin_call(None);
        self.agent.receive_all(&mut self.ctx, inbox);
        self.ctx.finish()
    }

    /// `agent_step(ptr, len)`: a [`StepContext`], then (ABI v2) the tick's
    /// inbox as message records when it is not empty: the messages go to
    /// `receive_all`, then `step` runs, in one export call. A failure in
    /// `receive_all` ends the call before `step`, as a failed `agent_receive`
    /// did in ABI v1.
    pub fn agent_step(&mut self, ptr: i32, len: i32) -> i32 {
        let Some(range) = self.span(ptr, len) else {
            return status::BAD_CONTEXT;
        };
        let bytes = &self.buffer[range];
        let Some(step) = StepContext::decode(bytes) else {
            return status::BAD_CONTEXT;
        };
        let inbox = bytes.get(StepContext::SIZE..).unwrap_or(&[]);
        if !inbox.is_empty() {
            // The runtime wrote these records and counted them in the
            // context: no walk to validate them first (an inbox of hundreds
            // of messages was walked twice). Iteration checks each record.
            let inbox = Inbox::counted(inbox, step.inbox_len as usize);
            self.ctx.begin_call(Some(step.tick));
            self.agent.receive_all(&mut self.ctx, inbox);
            if self.ctx.failed().is_some() {
                return self.ctx.finish();
            }
        }
        self.ctx.begin_step(step);
        self.agent.step(&mut self.ctx);
        self.ctx.finish()
    }

    /// `agent_shutdown()`.
    pub fn agent_shutdown(&mut self) -> i32 {
        self.ctx.begin_call(None);
        self.agent.shutdown(&mut self.ctx);
        self.ctx.finish()
    }

    /// `we_pack_call(ptr, len)`: runs the entries of a pack call in order
    /// (see `we_abi::pack`), each as its single-agent export would, and
    /// closes each entry's effects with its `PACK_END` record. An entry for
    /// a slot that holds no agent ends with [`status::BAD_CONTEXT`]; a
    /// buffer that cannot be read fails the whole call.
    pub fn pack_call(&mut self, ptr: i32, len: i32) -> i32 {
        let Some(make) = self.make else {
            return status::BAD_CONTEXT;
        };
        let Some(range) = self.span(ptr, len) else {
            return status::BAD_CONTEXT;
        };
        let bytes = &self.buffer[range];
        let Some(head) = PackHeader::decode(bytes) else {
            return status::BAD_CONTEXT;
        };
        let Some(body_start) = (head.count as usize)
            .checked_mul(PackEntry::SIZE)
            .and_then(|n| n.checked_add(PackHeader::SIZE))
            .filter(|&end| end <= bytes.len())
        else {
            return status::BAD_CONTEXT;
        };
        if head.kind > PACK_SHUTDOWN {
            return status::BAD_CONTEXT;
        }
        let body = &bytes[body_start..];
        let config = if head.kind == PACK_INIT {
            match body.get(..head.config_len as usize) {
                Some(config) => config,
                None => return status::BAD_CONTEXT,
            }
        } else {
            &[]
        };
        let mut inbox_at = 0usize;
        for k in 0..head.count as usize {
            let at = PackHeader::SIZE + k * PackEntry::SIZE;
            let Some(e) = PackEntry::decode(&bytes[at..]) else {
                return status::BAD_CONTEXT;
            };
            if e.slot >= PACK_SLOTS_MAX {
                return status::BAD_CONTEXT;
            }
            let slot = e.slot as usize;
            if head.kind == PACK_INIT {
                if self.slots.len() <= slot {
                    self.slots.resize_with(slot + 1, || None);
                }
                let init = InitContext {
                    agent_id: e.agent_id,
                    generation: e.generation,
                    agent_count: head.agent_count,
                    group_index: e.group_index,
                    config_len: head.config_len,
                };
                self.slots[slot] = Some(Slot {
                    agent: make(),
                    init,
                    rng: SplitMix64::from_state(e.rng_state),
                });
            }
            let inbox = if head.kind == PACK_STEP {
                let end = inbox_at.saturating_add(e.inbox_bytes as usize);
                let Some(inbox) = body.get(inbox_at..end) else {
                    return status::BAD_CONTEXT;
                };
                inbox_at = end;
                inbox
            } else {
                &[]
            };
            let Some(Some(packed)) = self.slots.get_mut(slot) else {
                self.ctx.begin_call(Some(head.tick));
                self.ctx.fail(AgentError::BadContext);
                self.ctx.leave_slot(e.slot);
                continue;
            };
            let ctx = &mut self.ctx;
            ctx.enter_slot(e.slot, packed.init, packed.rng.clone());
            match head.kind {
                PACK_INIT => {
                    ctx.begin_init(packed.init);
                    ctx.begin_call(Some(head.tick));
                    packed.agent.init(ctx, config);
                }
                PACK_STEP => {
                    let step = StepContext {
                        tick: head.tick,
                        agent_id: e.agent_id,
                        generation: e.generation,
                        inbox_len: e.inbox_len,
                        refused: e.refused,
                        fuel_per_call: head.fuel_per_call,
                    };
                    let mut failed = false;
                    if !inbox.is_empty() {
                        ctx.begin_call(Some(head.tick));
                        let inbox = Inbox::counted(inbox, e.inbox_len as usize);
                        packed.agent.receive_all(ctx, inbox);
                        failed = ctx.failed().is_some();
                    }
                    if !failed {
                        ctx.begin_step(step);
                        packed.agent.step(ctx);
                    }
                }
                _ => {
                    ctx.begin_call(Some(head.tick));
                    packed.agent.shutdown(ctx);
                }
            }
            if let Some(rng) = ctx.leave_slot(e.slot) {
                packed.rng = rng;
            }
        }
        // Every entry's status is in its marker; the call itself succeeded
        // unless the host refused the effects.
        self.ctx.finish_pack()
    }
}

/// Runs `f` on the runtime in `key`; `busy` if the runtime is already borrowed
/// (an export entered from inside another) or thread-local storage is gone.
pub fn with<A: 'static, R: Copy>(
    key: &'static std::thread::LocalKey<core::cell::RefCell<Runtime<A>>>,
    busy: R,
    f: impl FnOnce(&mut Runtime<A>) -> R,
) -> R {
    key.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut rt) => f(&mut rt),
        Err(_) => busy,
    })
    .unwrap_or(busy)
}

/// The status of an export entered while another was running.
pub const REENTERED: i32 = AgentError::Reentered.status();

/// The ABI version as the `we_abi_version` export returns it.
pub const ABI_VERSION: i32 = we_abi::ABI_VERSION as i32;

/// Success.
pub const OK: i32 = STATUS_OK;
