//! The guest/host contract of wasm-engine agents (ABI v1), written once.
//!
//! Both sides of the sandbox boundary use this crate: the host (`we-sandbox`,
//! `we-runtime`) and the guest SDK (`we-agent`). It has no dependencies and is
//! `no_std`, so it compiles for `wasm32-unknown-unknown` and for the host alike.
//!
//! Everything that crosses the boundary is little-endian bytes with the fixed
//! layouts below; nothing is a Rust struct reinterpreted in place, so the layout
//! does not depend on either compiler. `docs/ABI.md` is the prose version of
//! this file and the golden tests in `tests/it` pin every offset.
//!
//! # Calls, in order, for one agent
//! 1. `we_abi_version()`: checked at load, before anything else runs.
//! 2. `we_buffer(capacity)`: the host asks for a guest-owned exchange buffer of at
//!    least `capacity` bytes; it is called again only when a larger one is needed.
//! 3. `agent_init(ptr, len)`: the buffer holds an [`InitContext`] then the agent's
//!    init configuration bytes.
//! 4. Every tick: `agent_receive(ptr, len)` with the whole inbox as message
//!    records (only when the inbox is not empty), then `agent_step(ptr, len)` with
//!    a [`StepContext`].
//! 5. `agent_shutdown()` once at the end of the run.
//!
//! Each export returns an `i32`: [`STATUS_OK`] or an agent-chosen non-zero error
//! code, which the host records as a fault of that agent.
//!
//! Effects (sends, publishes, joins, inference requests) are written by the guest
//! as effect records into its own memory and handed to the host in batches with
//! the `emit` import; the host commits them after the tick, in
//! (agent id, emission index) order.

#![no_std]

/// The ABI version this crate describes.
///
/// Version 2 differs from 1 in one point: when the agent's inbox is not
/// empty, the host passes it to `agent_step` right after the `StepContext`
/// (one call per tick) instead of calling `agent_receive` first. A module
/// declaring 1 is still called the version 1 way.
pub const ABI_VERSION: u32 = 2;
/// Oldest ABI version a host built from this crate accepts.
pub const ABI_VERSION_MIN: u32 = 1;
/// Newest ABI version a host built from this crate accepts.
pub const ABI_VERSION_MAX: u32 = 2;
/// First ABI version whose `agent_step` takes the inbox after the context.
pub const ABI_STEP_WITH_INBOX: u32 = 2;

/// The only import module a guest may import from.
pub const IMPORT_MODULE: &str = "we";

/// Names of the functions a guest exports.
pub mod exports {
    /// `() -> i32`: the ABI version the module targets.
    pub const ABI_VERSION: &str = "we_abi_version";
    /// `(capacity: i32) -> i32`: pointer to a guest buffer of at least `capacity` bytes.
    pub const BUFFER: &str = "we_buffer";
    /// `(ptr: i32, len: i32) -> i32`: [`crate::InitContext`] then the config bytes.
    pub const AGENT_INIT: &str = "agent_init";
    /// `(ptr: i32, len: i32) -> i32`: a [`crate::StepContext`].
    pub const AGENT_STEP: &str = "agent_step";
    /// `(ptr: i32, len: i32) -> i32`: the tick's inbox as message records.
    pub const AGENT_RECEIVE: &str = "agent_receive";
    /// `() -> i32`: the run is ending.
    pub const AGENT_SHUTDOWN: &str = "agent_shutdown";
    /// The linear memory every agent exports.
    pub const MEMORY: &str = "memory";
    /// `(ptr: i32, len: i32) -> i32`, optional: one call for many agents of
    /// a pack (see [`crate::pack`]). Only modules that export it can be
    /// packed; the SDK's `export_agent!` always does.
    pub const PACK_CALL: &str = "we_pack_call";
    /// The signature of [`PACK_CALL`].
    pub const PACK_CALL_SIGNATURE: crate::Signature =
        crate::Signature::new(PACK_CALL, &[I32, I32], &[I32]);

    use crate::ValType::I32;

    /// Every function export the host requires, with its signature.
    pub const SIGNATURES: [crate::Signature; 6] = [
        crate::Signature::new(ABI_VERSION, &[], &[I32]),
        crate::Signature::new(BUFFER, &[I32], &[I32]),
        crate::Signature::new(AGENT_INIT, &[I32, I32], &[I32]),
        crate::Signature::new(AGENT_STEP, &[I32, I32], &[I32]),
        crate::Signature::new(AGENT_RECEIVE, &[I32, I32], &[I32]),
        crate::Signature::new(AGENT_SHUTDOWN, &[], &[I32]),
    ];
}

/// Names of the host functions in module [`IMPORT_MODULE`].
pub mod imports {
    /// `() -> i64`: the current logical tick.
    pub const TICK: &str = "tick";
    /// `() -> i32`: this agent's id (its index; the generation is in the contexts).
    pub const SELF_ID: &str = "self_id";
    /// `() -> i64`: the next value of this agent's deterministic PRNG.
    pub const RAND_U64: &str = "rand_u64";
    /// `(ptr: i32, len: i32) -> i32`: hand a batch of effect records to the host.
    /// Returns [`crate::STATUS_OK`]. A range outside guest memory, a malformed
    /// record, a payload over the message size limit or a batch over the
    /// per-call effect budget faults the agent (it never returns to the guest).
    pub const EMIT: &str = "emit";
    /// `(level: i32, ptr: i32, len: i32) -> i32`: append a line to the run's log.
    pub const LOG: &str = "log";
    /// `(region: i32, offset: i32, dst: i32, len: i32) -> i32`: copy bytes of a
    /// shared region's committed version into guest memory; returns bytes copied
    /// or a negative `REGION_*` code.
    pub const REGION_READ: &str = "region_read";
    /// `(region: i32) -> i32`: length in bytes of a region's committed version,
    /// or a negative `REGION_*` code.
    pub const REGION_LEN: &str = "region_len";

    use crate::ValType::{I32, I64};

    /// Every import a host built from this crate provides, with its signature.
    pub const SIGNATURES: [crate::Signature; 7] = [
        crate::Signature::new(TICK, &[], &[I64]),
        crate::Signature::new(SELF_ID, &[], &[I32]),
        crate::Signature::new(RAND_U64, &[], &[I64]),
        crate::Signature::new(EMIT, &[I32, I32], &[I32]),
        crate::Signature::new(LOG, &[I32, I32, I32], &[I32]),
        crate::Signature::new(REGION_READ, &[I32, I32, I32, I32], &[I32]),
        crate::Signature::new(REGION_LEN, &[I32], &[I32]),
    ];
}

/// A WebAssembly value type used at the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

/// The name and type of a function crossing the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Export or import name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result types.
    pub results: &'static [ValType],
}

impl Signature {
    /// A signature.
    pub const fn new(
        name: &'static str,
        params: &'static [ValType],
        results: &'static [ValType],
    ) -> Self {
        Self {
            name,
            params,
            results,
        }
    }
}

/// Export status: success.
pub const STATUS_OK: i32 = 0;

/// Region call result: no such region or the handle is stale.
pub const REGION_STALE: i32 = -1;
/// Region call result: the range is outside the region.
pub const REGION_OUT_OF_RANGE: i32 = -2;
/// Region call result: the agent lacks the capability.
pub const REGION_DENIED: i32 = -3;

/// Log levels for the `log` import.
pub mod log_level {
    /// Errors.
    pub const ERROR: i32 = 1;
    /// Warnings.
    pub const WARN: i32 = 2;
    /// Information.
    pub const INFO: i32 = 3;
    /// Debug detail.
    pub const DEBUG: i32 = 4;
}

/// Records are padded so that every header starts on this alignment.
pub const RECORD_ALIGN: usize = 8;

/// Rounds `len` up to [`RECORD_ALIGN`].
#[inline]
pub const fn pad(len: usize) -> usize {
    (len + (RECORD_ALIGN - 1)) & !(RECORD_ALIGN - 1)
}

#[inline]
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The context handed to `agent_init`, 32 bytes, followed by the config bytes.
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 4 | `agent_id` |
/// | 4 | 4 | `generation` |
/// | 8 | 4 | `agent_count` |
/// | 12 | 4 | `group_index` (index of the agent inside its group) |
/// | 16 | 4 | `config_len` |
/// | 20 | 12 | reserved, zero |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InitContext {
    /// The agent's id.
    pub agent_id: u32,
    /// The agent's generation (0 on first start, +1 per restart).
    pub generation: u32,
    /// Number of agents in the run.
    pub agent_count: u32,
    /// Index of the agent inside its scenario group.
    pub group_index: u32,
    /// Length of the config bytes that follow the context.
    pub config_len: u32,
}

impl InitContext {
    /// Encoded size in bytes.
    pub const SIZE: usize = 32;

    /// Writes the context into `out[..32]`.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        *out = [0; Self::SIZE];
        out[0..4].copy_from_slice(&self.agent_id.to_le_bytes());
        out[4..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..12].copy_from_slice(&self.agent_count.to_le_bytes());
        out[12..16].copy_from_slice(&self.group_index.to_le_bytes());
        out[16..20].copy_from_slice(&self.config_len.to_le_bytes());
    }

    /// Reads a context; `None` if `b` is shorter than 32 bytes.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            agent_id: get_u32(b, 0),
            generation: get_u32(b, 4),
            agent_count: get_u32(b, 8),
            group_index: get_u32(b, 12),
            config_len: get_u32(b, 16),
        })
    }
}

/// The context handed to `agent_step`, 32 bytes.
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 8 | `tick` |
/// | 8 | 4 | `agent_id` |
/// | 12 | 4 | `generation` |
/// | 16 | 4 | `inbox_len` (messages delivered by `agent_receive` this tick) |
/// | 20 | 4 | `refused` (this agent's effects refused at the last commit) |
/// | 24 | 8 | `fuel_per_call` (the budget of each export call) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StepContext {
    /// The logical tick.
    pub tick: u64,
    /// The agent's id.
    pub agent_id: u32,
    /// The agent's generation.
    pub generation: u32,
    /// Messages delivered this tick.
    pub inbox_len: u32,
    /// Effects of this agent refused at the previous commit (backpressure).
    pub refused: u32,
    /// Fuel budget of one export call.
    pub fuel_per_call: u64,
}

impl StepContext {
    /// Encoded size in bytes.
    pub const SIZE: usize = 32;

    /// Writes the context into `out[..32]`.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        out[0..8].copy_from_slice(&self.tick.to_le_bytes());
        out[8..12].copy_from_slice(&self.agent_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.generation.to_le_bytes());
        out[16..20].copy_from_slice(&self.inbox_len.to_le_bytes());
        out[20..24].copy_from_slice(&self.refused.to_le_bytes());
        out[24..32].copy_from_slice(&self.fuel_per_call.to_le_bytes());
    }

    /// Reads a context; `None` if `b` is shorter than 32 bytes.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            tick: get_u64(b, 0),
            agent_id: get_u32(b, 8),
            generation: get_u32(b, 12),
            inbox_len: get_u32(b, 16),
            refused: get_u32(b, 20),
            fuel_per_call: get_u64(b, 24),
        })
    }
}

/// Kinds of message records in an inbox.
pub mod msg_kind {
    /// A direct message from `send`.
    pub const DIRECT: u16 = 0;
    /// A message published to a topic the receiver joined.
    pub const TOPIC: u16 = 1;
    /// The result of an inference request (sender is [`crate::SENDER_INFERENCE`]).
    pub const INFER_RESULT: u16 = 2;
    /// An inference request failed; the payload is a UTF-8 reason.
    pub const INFER_ERROR: u16 = 3;
    /// A notice from the runtime (sender is [`crate::SENDER_RUNTIME`]).
    pub const SYSTEM: u16 = 4;
}

/// Sender id of inference results.
pub const SENDER_INFERENCE: u32 = u32::MAX;
/// Sender id of runtime notices.
pub const SENDER_RUNTIME: u32 = u32::MAX - 1;

/// Header of one message record in an inbox, 16 bytes, then `len` payload bytes,
/// then zero padding to [`RECORD_ALIGN`].
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 4 | `sender` |
/// | 4 | 2 | `kind` (see [`msg_kind`]) |
/// | 6 | 2 | `flags`, zero in v1 |
/// | 8 | 4 | `channel`: topic for `TOPIC`, request tag for inference, else 0 |
/// | 12 | 4 | `len` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MessageHeader {
    /// Sending agent id, or one of the `SENDER_*` constants.
    pub sender: u32,
    /// One of [`msg_kind`].
    pub kind: u16,
    /// Reserved flags.
    pub flags: u16,
    /// Topic id, inference request tag, or 0.
    pub channel: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl MessageHeader {
    /// Encoded size in bytes.
    pub const SIZE: usize = 16;

    /// Encodes the header.
    #[inline]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[0..4].copy_from_slice(&self.sender.to_le_bytes());
        out[4..6].copy_from_slice(&self.kind.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.channel.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes a header; `None` if fewer than 16 bytes.
    #[inline]
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            sender: get_u32(b, 0),
            kind: get_u16(b, 4),
            flags: get_u16(b, 6),
            channel: get_u32(b, 8),
            len: get_u32(b, 12),
        })
    }

    /// Size of the whole record (header, payload, padding).
    #[inline]
    pub fn record_size(&self) -> usize {
        Self::SIZE + pad(self.len as usize)
    }
}

/// Effect operations a guest may emit.
pub mod op {
    /// Send `payload` to agent `target`.
    pub const SEND: u16 = 1;
    /// Publish `payload` to topic `target`.
    pub const PUBLISH: u16 = 2;
    /// Subscribe to topic `target` (visible from the next tick).
    pub const JOIN: u16 = 3;
    /// Unsubscribe from topic `target`.
    pub const LEAVE: u16 = 4;
    /// Request inference; `target` is the model slot, `aux` the request tag,
    /// the payload an inference request (see `docs/ABI.md`).
    pub const INFER: u16 = 5;
    /// Write `payload` into the agent's own region `target` at byte offset `aux`.
    pub const REGION_WRITE: u16 = 6;
    /// Create (or resize) the agent's own region `target` to `aux` bytes.
    pub const REGION_CREATE: u16 = 7;

    /// Highest op code defined in v1.
    pub const MAX: u16 = 7;

    /// Only inside a pack call ([`crate::pack`]): ends the effects of the
    /// pack's slot `target`, whose call ended with status `aux` (an `i32`'s
    /// bits; 0 is success). Never valid outside a pack call.
    pub const PACK_END: u16 = 8;
}

/// Header of one effect record, 16 bytes, then `len` payload bytes, then zero
/// padding to [`RECORD_ALIGN`].
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 2 | `op` (see [`op`]) |
/// | 2 | 2 | `flags`, zero in v1 |
/// | 4 | 4 | `target`: receiver, topic, model slot or region |
/// | 8 | 4 | `aux`: request tag or region offset |
/// | 12 | 4 | `len` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EffectHeader {
    /// One of [`op`].
    pub op: u16,
    /// Reserved flags.
    pub flags: u16,
    /// Receiver, topic, model slot or region, by op.
    pub target: u32,
    /// Op-specific extra word.
    pub aux: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl EffectHeader {
    /// Encoded size in bytes.
    pub const SIZE: usize = 16;

    /// Encodes the header.
    #[inline]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[0..2].copy_from_slice(&self.op.to_le_bytes());
        out[2..4].copy_from_slice(&self.flags.to_le_bytes());
        out[4..8].copy_from_slice(&self.target.to_le_bytes());
        out[8..12].copy_from_slice(&self.aux.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes a header; `None` if fewer than 16 bytes.
    #[inline]
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            op: get_u16(b, 0),
            flags: get_u16(b, 2),
            target: get_u32(b, 4),
            aux: get_u32(b, 8),
            len: get_u32(b, 12),
        })
    }

    /// Size of the whole record (header, payload, padding).
    #[inline]
    pub fn record_size(&self) -> usize {
        Self::SIZE + pad(self.len as usize)
    }
}

/// Why a batch of records could not be walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A header starts at `offset` but fewer than 16 bytes remain.
    TruncatedHeader {
        /// Byte offset of the header in the batch.
        offset: usize,
    },
    /// The payload of the record at `offset` runs past the end of the batch.
    TruncatedPayload {
        /// Byte offset of the header in the batch.
        offset: usize,
        /// Declared payload length.
        len: u32,
    },
}

/// Walks a batch of records with 16-byte headers and padded payloads.
///
/// Yields `(header bytes, payload)` pairs; stops with an error at the first record
/// that does not fit. Used for both inboxes ([`MessageHeader`]) and outboxes
/// ([`EffectHeader`]), whose `len` field sits at the same offset.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    /// Starts walking `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> usize {
        self.at
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.len() - self.at;
        if rest == 0 {
            return None;
        }
        if rest < 16 {
            let offset = self.at;
            self.at = self.bytes.len();
            return Some(Err(RecordError::TruncatedHeader { offset }));
        }
        let header = &self.bytes[self.at..self.at + 16];
        let len = get_u32(header, 12);
        let body_start = self.at + 16;
        let padded = pad(len as usize);
        if padded > self.bytes.len() - body_start {
            let offset = self.at;
            self.at = self.bytes.len();
            return Some(Err(RecordError::TruncatedPayload { offset, len }));
        }
        let payload = &self.bytes[body_start..body_start + len as usize];
        self.at = body_start + padded;
        Some(Ok((header, payload)))
    }
}

/// Appends one record (header, payload, zero padding) to a byte sink.
///
/// The sink is any `extend`-able byte container; the guest SDK and the host both
/// use it, so records are laid out by one piece of code.
///
/// The payload goes in 8-byte pieces: a copy of a length known only at run time
/// becomes `memory.copy` in a guest, which wasmer serves through a call into the
/// runtime, several times dearer than the few loads and stores of a small
/// payload.
#[inline]
pub fn write_record(sink: &mut impl Extend<u8>, header: [u8; 16], payload: &[u8]) {
    sink.extend(header);
    let mut words = payload.chunks_exact(8);
    for word in &mut words {
        if let Ok(w) = <[u8; 8]>::try_from(word) {
            sink.extend(w);
        }
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // The last piece, zero-padded to 8 bytes: records are 8-aligned.
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(rest) {
            *d = *s;
        }
        sink.extend(w);
    }
}

/// The per-agent PRNG behind `rand_u64`: SplitMix64.
///
/// The state starts at `seed ^ (agent_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
/// ^ ((generation as u64) << 32)`, then each call adds `0x9E37_79B9_7F4A_7C15` and
/// returns the mixed state. Defined here so a native test harness produces the
/// same stream as the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream of `agent_id` (at `generation`) in a run seeded with `seed`.
    pub fn for_agent(seed: u64, agent_id: u32, generation: u32) -> Self {
        Self {
            state: seed
                ^ (agent_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ ((generation as u64) << 32),
        }
    }

    /// A stream that continues from `state` (see [`SplitMix64::state`]).
    pub const fn from_state(state: u64) -> Self {
        Self { state }
    }

    /// The state: [`SplitMix64::from_state`] of it continues this stream.
    pub const fn state(&self) -> u64 {
        self.state
    }

    /// The next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Agent packs: one instance hosts several agents of one group, and one
/// `we_pack_call(ptr, len)` runs many of them.
///
/// The buffer holds a [`PackHeader`], `count` [`PackEntry`]s, then the body:
/// for [`PACK_INIT`] the group's config bytes (`config_len`), shared by every
/// entry; for [`PACK_STEP`] each entry's inbox (`inbox_bytes` of message
/// records), back to back in entry order; for [`PACK_SHUTDOWN`] nothing.
///
/// The guest runs the entries in order, each exactly as the single-agent
/// export would (init; or the inbox then step; or shutdown), and ends each
/// entry's effects with a [`crate::op::PACK_END`] record naming the entry's
/// slot and its status. The host splits the call's effects at those records,
/// so every agent's effects are its own, in emission order, as if it had run
/// alone. The call returns [`crate::STATUS_OK`], or a non-zero status when the
/// pack as a whole could not run (a malformed buffer).
pub mod pack {
    use super::{get_u32, get_u64};

    /// `kind`: run `agent_init` for each entry (a fresh agent in its slot).
    pub const PACK_INIT: u32 = 0;
    /// `kind`: run a tick (inbox, then step) for each entry.
    pub const PACK_STEP: u32 = 1;
    /// `kind`: run `agent_shutdown` for each entry.
    pub const PACK_SHUTDOWN: u32 = 2;

    /// The head of a pack call's buffer, 32 bytes.
    ///
    /// | offset | size | field |
    /// |---:|---:|---|
    /// | 0 | 4 | `kind` ([`PACK_INIT`], [`PACK_STEP`], [`PACK_SHUTDOWN`]) |
    /// | 4 | 4 | `count` (entries that follow) |
    /// | 8 | 8 | `tick` |
    /// | 16 | 8 | `fuel_per_call` (each agent's budget; the call gets `count` times it) |
    /// | 24 | 4 | `agent_count` (agents in the run) |
    /// | 28 | 4 | `config_len` (init only, else 0) |
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct PackHeader {
        /// What the call runs.
        pub kind: u32,
        /// Number of entries.
        pub count: u32,
        /// The logical tick.
        pub tick: u64,
        /// Fuel budget of one agent.
        pub fuel_per_call: u64,
        /// Agents in the run.
        pub agent_count: u32,
        /// Config bytes after the entries (init only).
        pub config_len: u32,
    }

    impl PackHeader {
        /// Encoded size in bytes.
        pub const SIZE: usize = 32;

        /// Writes the header into `out[..32]`.
        pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
            out[0..4].copy_from_slice(&self.kind.to_le_bytes());
            out[4..8].copy_from_slice(&self.count.to_le_bytes());
            out[8..16].copy_from_slice(&self.tick.to_le_bytes());
            out[16..24].copy_from_slice(&self.fuel_per_call.to_le_bytes());
            out[24..28].copy_from_slice(&self.agent_count.to_le_bytes());
            out[28..32].copy_from_slice(&self.config_len.to_le_bytes());
        }

        /// Reads a header; `None` if `b` is shorter than 32 bytes.
        pub fn decode(b: &[u8]) -> Option<Self> {
            if b.len() < Self::SIZE {
                return None;
            }
            Some(Self {
                kind: get_u32(b, 0),
                count: get_u32(b, 4),
                tick: get_u64(b, 8),
                fuel_per_call: get_u64(b, 16),
                agent_count: get_u32(b, 24),
                config_len: get_u32(b, 28),
            })
        }
    }

    /// One agent of a pack call, 40 bytes.
    ///
    /// | offset | size | field |
    /// |---:|---:|---|
    /// | 0 | 4 | `slot` (the agent's place in the pack, from 0) |
    /// | 4 | 4 | `agent_id` |
    /// | 8 | 4 | `generation` |
    /// | 12 | 4 | `group_index` |
    /// | 16 | 4 | `inbox_len` (messages; step only) |
    /// | 20 | 4 | `inbox_bytes` (step only) |
    /// | 24 | 4 | `refused` (step only) |
    /// | 28 | 4 | reserved, zero |
    /// | 32 | 8 | `rng_state`: the agent's PRNG stream (init only; see below) |
    ///
    /// A packed agent's `rand_u64` stream is kept in the guest: an init entry
    /// carries the state the host's stream for that agent starts from
    /// ([`crate::SplitMix64::state`]), so the values are the same as an
    /// unpacked agent gets from the `rand_u64` import.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct PackEntry {
        /// Place in the pack.
        pub slot: u32,
        /// The agent's id.
        pub agent_id: u32,
        /// The agent's generation.
        pub generation: u32,
        /// Index of the agent inside its group.
        pub group_index: u32,
        /// Messages in its inbox.
        pub inbox_len: u32,
        /// Bytes of its inbox in the body.
        pub inbox_bytes: u32,
        /// Its effects refused at the last commit.
        pub refused: u32,
        /// Initial PRNG state (init only).
        pub rng_state: u64,
    }

    impl PackEntry {
        /// Encoded size in bytes.
        pub const SIZE: usize = 40;

        /// Writes the entry into `out[..40]`.
        pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
            out[0..4].copy_from_slice(&self.slot.to_le_bytes());
            out[4..8].copy_from_slice(&self.agent_id.to_le_bytes());
            out[8..12].copy_from_slice(&self.generation.to_le_bytes());
            out[12..16].copy_from_slice(&self.group_index.to_le_bytes());
            out[16..20].copy_from_slice(&self.inbox_len.to_le_bytes());
            out[20..24].copy_from_slice(&self.inbox_bytes.to_le_bytes());
            out[24..28].copy_from_slice(&self.refused.to_le_bytes());
            out[28..32].copy_from_slice(&[0; 4]);
            out[32..40].copy_from_slice(&self.rng_state.to_le_bytes());
        }

        /// Reads an entry; `None` if `b` is shorter than 40 bytes.
        #[inline]
        pub fn decode(b: &[u8]) -> Option<Self> {
            if b.len() < Self::SIZE {
                return None;
            }
            Some(Self {
                slot: get_u32(b, 0),
                agent_id: get_u32(b, 4),
                generation: get_u32(b, 8),
                group_index: get_u32(b, 12),
                inbox_len: get_u32(b, 16),
                inbox_bytes: get_u32(b, 20),
                refused: get_u32(b, 24),
                rng_state: get_u64(b, 32),
            })
        }
    }
}

/// The byte format of inference requests and results.
///
/// An `INFER` effect payload is a [`tensor::RequestHeader`] (`model_name_len: u16`,
/// `tensor_count: u16`), the model name (UTF-8), then `tensor_count` tensors. An
/// `INFER_RESULT` message payload is `tensor_count: u16`, two zero bytes, then the
/// tensors. A tensor is:
///
/// | size | field |
/// |---:|---|
/// | 1 | `dtype` ([`tensor::DTYPE_F32`] or [`tensor::DTYPE_I64`]) |
/// | 1 | `rank` (at most [`tensor::MAX_RANK`]) |
/// | 2 | `name_len` |
/// | 4 | `data_len` in bytes |
/// | 8 x rank | dims, `u64` each |
/// | `name_len` | name, UTF-8 |
/// | `data_len` | elements, little-endian, row-major |
///
/// No padding inside a payload: readers copy elements out.
pub mod tensor {
    use super::{get_u16, get_u32, get_u64};

    /// 32-bit float elements.
    pub const DTYPE_F32: u8 = 1;
    /// 64-bit signed integer elements.
    pub const DTYPE_I64: u8 = 2;
    /// Largest rank a tensor may have.
    pub const MAX_RANK: usize = 8;

    /// Size in bytes of one element of `dtype`, or `None` for an unknown dtype.
    pub const fn element_size(dtype: u8) -> Option<usize> {
        match dtype {
            DTYPE_F32 => Some(4),
            DTYPE_I64 => Some(8),
            _ => None,
        }
    }

    /// Appends a request header and model name.
    #[inline]
    pub fn write_request_header(sink: &mut impl Extend<u8>, model: &str, tensor_count: u16) {
        sink.extend((model.len() as u16).to_le_bytes());
        sink.extend(tensor_count.to_le_bytes());
        sink.extend(model.bytes());
    }

    /// Appends a result header.
    pub fn write_result_header(sink: &mut impl Extend<u8>, tensor_count: u16) {
        sink.extend(tensor_count.to_le_bytes());
        sink.extend([0u8, 0u8]);
    }

    /// Appends one tensor. `data` holds the elements as little-endian bytes.
    #[inline]
    pub fn write_tensor(
        sink: &mut impl Extend<u8>,
        name: &str,
        dtype: u8,
        dims: &[u64],
        data: &[u8],
    ) {
        sink.extend([dtype, dims.len() as u8]);
        sink.extend((name.len() as u16).to_le_bytes());
        sink.extend((data.len() as u32).to_le_bytes());
        for d in dims {
            sink.extend(d.to_le_bytes());
        }
        sink.extend(name.bytes());
        sink.extend(data.iter().copied());
    }

    /// A tensor read in place from a payload.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TensorView<'a> {
        /// Element type.
        pub dtype: u8,
        /// Dims as `rank` little-endian `u64`s.
        pub dims_raw: &'a [u8],
        /// Name bytes (UTF-8 when written by a conforming writer).
        pub name: &'a [u8],
        /// Element bytes.
        pub data: &'a [u8],
    }

    impl TensorView<'_> {
        /// Number of dims.
        pub fn rank(&self) -> usize {
            self.dims_raw.len() / 8
        }

        /// Dim `i`.
        pub fn dim(&self, i: usize) -> u64 {
            get_u64(self.dims_raw, i * 8)
        }

        /// Product of the dims (saturating).
        pub fn element_count(&self) -> u64 {
            (0..self.rank()).fold(1u64, |acc, i| acc.saturating_mul(self.dim(i)))
        }
    }

    /// Why a tensor payload could not be read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum TensorError {
        /// The payload ended at `offset` in the middle of something.
        Truncated {
            /// Byte offset where more bytes were needed.
            offset: usize,
        },
        /// A tensor declared an unknown dtype.
        BadDtype {
            /// The dtype byte.
            dtype: u8,
        },
        /// A tensor declared a rank above [`MAX_RANK`].
        BadRank {
            /// The rank byte.
            rank: u8,
        },
        /// `data_len` disagrees with the dims and dtype.
        ShapeMismatch {
            /// Declared data bytes.
            data_len: u32,
        },
    }

    /// Splits a request payload into model name and tensor bytes.
    pub fn read_request_header(b: &[u8]) -> Result<(&[u8], u16, &[u8]), TensorError> {
        if b.len() < 4 {
            return Err(TensorError::Truncated { offset: b.len() });
        }
        let name_len = get_u16(b, 0) as usize;
        let count = get_u16(b, 2);
        if b.len() < 4 + name_len {
            return Err(TensorError::Truncated { offset: b.len() });
        }
        Ok((&b[4..4 + name_len], count, &b[4 + name_len..]))
    }

    /// The `argmax` post-processing of a model's results: the index of the
    /// greatest of the little-endian f32 values in `data` (the first output's
    /// data, flattened), the lowest on a tie; a NaN is never greater. `None`
    /// for empty data.
    pub fn argmax_f32_le(data: &[u8]) -> Option<usize> {
        let mut best = None;
        let mut best_v = f32::NEG_INFINITY;
        for (k, chunk) in data.chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if best.is_none() || v > best_v {
                best = Some(k);
                best_v = v;
            }
        }
        best
    }

    /// What the `argmax` post-processing says of a result whose first output
    /// is not a non-empty f32 tensor.
    pub const ARGMAX_NOT_F32: &str = "argmax: the first output is not a non-empty f32 tensor";

    /// Splits a result payload into tensor count and tensor bytes.
    pub fn read_result_header(b: &[u8]) -> Result<(u16, &[u8]), TensorError> {
        if b.len() < 4 {
            return Err(TensorError::Truncated { offset: b.len() });
        }
        Ok((get_u16(b, 0), &b[4..]))
    }

    /// Walks the tensors of a payload body.
    #[derive(Clone, Debug)]
    pub struct Tensors<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Tensors<'a> {
        /// Starts walking tensor bytes.
        pub fn new(bytes: &'a [u8]) -> Self {
            Self { bytes, at: 0 }
        }

        fn read_one(&mut self) -> Result<TensorView<'a>, TensorError> {
            let b = self.bytes;
            let at = self.at;
            if b.len() - at < 8 {
                return Err(TensorError::Truncated { offset: b.len() });
            }
            let dtype = b[at];
            let rank = b[at + 1];
            let name_len = get_u16(b, at + 2) as usize;
            let data_len = get_u32(b, at + 4);
            let elem = element_size(dtype).ok_or(TensorError::BadDtype { dtype })?;
            if rank as usize > MAX_RANK {
                return Err(TensorError::BadRank { rank });
            }
            let dims_start = at + 8;
            let name_start = dims_start + 8 * rank as usize;
            let data_start = name_start + name_len;
            let end = data_start as u64 + data_len as u64;
            if end > b.len() as u64 {
                return Err(TensorError::Truncated { offset: b.len() });
            }
            let view = TensorView {
                dtype,
                dims_raw: &b[dims_start..name_start],
                name: &b[name_start..data_start],
                data: &b[data_start..end as usize],
            };
            let expected = view.element_count().saturating_mul(elem as u64);
            if expected != data_len as u64 {
                return Err(TensorError::ShapeMismatch { data_len });
            }
            self.at = end as usize;
            Ok(view)
        }
    }

    impl<'a> Iterator for Tensors<'a> {
        type Item = Result<TensorView<'a>, TensorError>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.at >= self.bytes.len() {
                return None;
            }
            let r = self.read_one();
            if r.is_err() {
                self.at = self.bytes.len();
            }
            Some(r)
        }
    }
}
