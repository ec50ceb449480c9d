//! [`Ctx`]: what an agent sees of the world during one export call, and the
//! outbox through which everything it does leaves the sandbox.
//!
//! Effects (sends, publishes, joins, inference requests, region writes) are
//! appended to one outbox as we-abi effect records and handed to the host with a
//! single `emit` call when the export returns, or earlier once the outbox holds
//! [`FLUSH_THRESHOLD`] bytes. A tick of a thousand sends therefore costs one host
//! call, not a thousand.

use crate::tensor::TensorRef;
use crate::{AgentError, sys};
use core::cell::Cell;
use we_abi::{EffectHeader, InitContext, SplitMix64, StepContext, log_level, op, pad, tensor};

/// Outbox size at which effects are flushed before the export returns.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Outbox capacity kept after a flush; a larger buffer (left by one big
/// message) is given back so it does not stay resident for the whole run.
const OUTBOX_KEEP: usize = 1024 * 1024;

const RECORD_ALIGN_U32: u32 = we_abi::RECORD_ALIGN as u32;

/// Why a region call failed: the host's negative `REGION_*` code, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegionError {
    /// No such region, or the handle is stale.
    Stale,
    /// The range is outside the region.
    OutOfRange,
    /// The agent lacks the capability.
    Denied,
    /// A code this SDK does not know.
    Other(i32),
}

impl RegionError {
    fn from_code(code: i32) -> Self {
        match code {
            we_abi::REGION_STALE => RegionError::Stale,
            we_abi::REGION_OUT_OF_RANGE => RegionError::OutOfRange,
            we_abi::REGION_DENIED => RegionError::Denied,
            other => RegionError::Other(other),
        }
    }
}

/// The agent's view of the run during one export call, and its outbox.
#[derive(Debug, Default)]
pub struct Ctx {
    init: InitContext,
    step: StepContext,
    in_step: bool,
    tick: Cell<Option<u64>>,
    outbox: Vec<u8>,
    error: Option<AgentError>,
    /// Set when the host answered `emit` with anything but `STATUS_OK`; the
    /// rest of the call's effects are then dropped.
    emit_error: Option<AgentError>,
    emit_calls: u64,
    /// In a pack call: the running agent's slot and its PRNG stream, kept in
    /// the guest (see `we_abi::pack`).
    pack_slot: Option<u32>,
    rng: Option<SplitMix64>,
}

impl Ctx {
    /// A context before `agent_init` (all ids zero).
    pub fn new() -> Self {
        Self::default()
    }

    // ----- identity and time ---------------------------------------------------

    /// This agent's id (its index in the run).
    #[inline]
    pub fn id(&self) -> u32 {
        self.init.agent_id
    }

    /// This agent's generation: 0 on first start, +1 per restart.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.init.generation
    }

    /// Number of agents in the run.
    #[inline]
    pub fn agent_count(&self) -> u32 {
        self.init.agent_count
    }

    /// Index of this agent inside its scenario group.
    #[inline]
    pub fn group_index(&self) -> u32 {
        self.init.group_index
    }

    /// The current logical tick. Read from the step context in `step`; elsewhere
    /// asked of the host once per export call and remembered.
    #[inline]
    pub fn tick(&self) -> u64 {
        if let Some(t) = self.tick.get() {
            return t;
        }
        let t = sys::tick();
        self.tick.set(Some(t));
        t
    }

    /// The next value of this agent's deterministic PRNG stream (host-side SplitMix64).
    #[inline]
    pub fn rand_u64(&mut self) -> u64 {
        match &mut self.rng {
            // A packed agent: the same stream, kept in the guest.
            Some(rng) => rng.next_u64(),
            None => sys::rand_u64(),
        }
    }

    /// This agent's effects refused at the last commit (backpressure), as of the
    /// latest `step`.
    #[inline]
    pub fn refused(&self) -> u32 {
        self.step.refused
    }

    /// Messages delivered this tick, as of the latest `step`.
    #[inline]
    pub fn inbox_len(&self) -> u32 {
        self.step.inbox_len
    }

    /// Fuel budget of one export call, as of the latest `step`.
    #[inline]
    pub fn fuel_per_call(&self) -> u64 {
        self.step.fuel_per_call
    }

    /// Whether the current call is `agent_step`.
    #[inline]
    pub fn in_step(&self) -> bool {
        self.in_step
    }

    // ----- messaging -----------------------------------------------------------

    /// Sends `payload` to agent `to`; delivered next tick.
    #[inline]
    pub fn send(&mut self, to: u32, payload: &[u8]) {
        self.push(op::SEND, to, 0, payload);
    }

    /// Sends a `u64` (8 bytes, little-endian) to agent `to`.
    #[inline]
    pub fn send_u64(&mut self, to: u32, value: u64) {
        self.push_u64(op::SEND, to, value);
    }

    /// Sends a `len`-byte payload to agent `to` that `fill` writes straight into
    /// the outbox, so a large message is never held twice in guest memory.
    /// `fill` receives a zeroed slice of exactly `len` bytes.
    pub fn send_with(&mut self, to: u32, len: usize, fill: impl FnOnce(&mut [u8])) {
        let Some(start) = self.begin_record(op::SEND, to, 0, len) else {
            return;
        };
        if let Some(body) = self.outbox.get_mut(start..start + len) {
            fill(body);
        }
        self.after_push();
    }

    /// Publishes `payload` to `topic`: every subscriber but this agent gets it next tick.
    #[inline]
    pub fn publish(&mut self, topic: u32, payload: &[u8]) {
        self.push(op::PUBLISH, topic, 0, payload);
    }

    /// Publishes a `u64` (8 bytes, little-endian) to `topic`.
    #[inline]
    pub fn publish_u64(&mut self, topic: u32, value: u64) {
        self.push_u64(op::PUBLISH, topic, value);
    }

    /// Subscribes to `topic`, effective from the next tick (joins made in `init`
    /// take effect before tick 0's delivery).
    pub fn join(&mut self, topic: u32) {
        self.push(op::JOIN, topic, 0, &[]);
    }

    /// Unsubscribes from `topic`, effective from the next tick.
    pub fn leave(&mut self, topic: u32) {
        self.push(op::LEAVE, topic, 0, &[]);
    }

    // ----- inference -----------------------------------------------------------

    /// Requests inference of `model` on `inputs`. The result arrives at a later
    /// tick as a message with [`Message::is_inference_result`] and
    /// [`Message::tag`] equal to `tag`.
    ///
    /// The request names its model; the effect's model-slot word is 0 (resolve
    /// by name).
    ///
    /// [`Message::is_inference_result`]: crate::Message::is_inference_result
    /// [`Message::tag`]: crate::Message::tag
    #[inline]
    pub fn infer(
        &mut self,
        model: &str,
        tag: u32,
        inputs: &[TensorRef<'_>],
    ) -> Result<(), AgentError> {
        if model.len() > u16::MAX as usize {
            return Err(AgentError::TooLarge {
                what: "model name",
                len: model.len(),
            });
        }
        let count = u16::try_from(inputs.len()).map_err(|_| AgentError::TooLarge {
            what: "tensor count",
            len: inputs.len(),
        })?;
        let mut len = 4 + model.len();
        for t in inputs {
            len = len.saturating_add(t.encoded_len()?);
        }
        let Some(start) = self.begin_header(op::INFER, 0, tag, len)? else {
            return Err(self.emit_error.unwrap_or(AgentError::BadContext));
        };
        // The payload is encoded straight after the header (room for it,
        // padding included, is reserved), then padded.
        tensor::write_request_header(&mut self.outbox, model, count);
        for t in inputs {
            t.write(&mut self.outbox);
        }
        self.pad_from(start, len);
        self.after_push();
        Ok(())
    }

    // ----- shared regions ------------------------------------------------------

    /// Length of `region`'s committed version.
    pub fn region_len(&self, region: u32) -> Result<usize, RegionError> {
        let r = sys::region_len(region);
        usize::try_from(r).map_err(|_| RegionError::from_code(r))
    }

    /// Copies `region`'s committed bytes from `offset` into `dst`; returns the
    /// number of bytes copied.
    pub fn region_read(
        &self,
        region: u32,
        offset: u32,
        dst: &mut [u8],
    ) -> Result<usize, RegionError> {
        let r = sys::region_read(region, offset, dst);
        usize::try_from(r).map_err(|_| RegionError::from_code(r))
    }

    /// Creates (or resizes) this agent's own `region` to `len` bytes, committed
    /// with this tick's effects.
    pub fn region_create(&mut self, region: u32, len: u32) {
        self.push(op::REGION_CREATE, region, len, &[]);
    }

    /// Writes `data` into this agent's own `region` at `offset`, committed with
    /// this tick's effects.
    pub fn region_write(&mut self, region: u32, offset: u32, data: &[u8]) {
        self.push(op::REGION_WRITE, region, offset, data);
    }

    // ----- logging -------------------------------------------------------------

    /// Appends a line to the run's log at `level` (see [`we_abi::log_level`]).
    /// Logging is a host call per line: keep it off hot paths.
    pub fn log(&self, level: i32, text: &str) {
        // In a pack call the level's bits 8 and up carry slot + 1, so the
        // host files the line under the agent that wrote it.
        let level = match self.pack_slot {
            Some(slot) => (level & 0xff) | ((slot as i32).wrapping_add(1) << 8),
            None => level,
        };
        // The host's answer is informational; a refused log line is not an error.
        let _ = sys::log(level, text.as_bytes());
    }

    /// Logs at [`log_level::INFO`].
    pub fn info(&self, text: &str) {
        self.log(log_level::INFO, text);
    }

    /// Logs at [`log_level::WARN`].
    pub fn warn(&self, text: &str) {
        self.log(log_level::WARN, text);
    }

    /// Logs at [`log_level::DEBUG`].
    pub fn debug(&self, text: &str) {
        self.log(log_level::DEBUG, text);
    }

    // ----- errors and flushing -------------------------------------------------

    /// Ends the current export call with `error` (the first one wins). The call
    /// still returns normally; its status becomes `error.status()`.
    pub fn fail(&mut self, error: AgentError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// The error the current call will end with, if any.
    pub fn failed(&self) -> Option<AgentError> {
        self.error
    }

    /// Hands the outbox to the host now. Normally unnecessary: the SDK flushes
    /// when the export returns and whenever the outbox reaches [`FLUSH_THRESHOLD`].
    pub fn flush(&mut self) -> Result<(), AgentError> {
        if let Some(e) = self.emit_error {
            self.outbox.clear();
            return Err(e);
        }
        if self.outbox.is_empty() {
            return Ok(());
        }
        let rc = sys::emit(&self.outbox);
        self.emit_calls += 1;
        self.outbox.clear();
        if self.outbox.capacity() > OUTBOX_KEEP {
            self.outbox.shrink_to(FLUSH_THRESHOLD * 2);
        }
        if rc == we_abi::STATUS_OK {
            Ok(())
        } else {
            // The ABI v1 host faults the agent inside `emit` rather than return
            // an error, so this is a host that answers instead: later effects of
            // this call are dropped and the call's status reports the refusal.
            let err = AgentError::Emit(rc);
            self.emit_error = Some(err);
            self.fail(err);
            Err(err)
        }
    }

    /// Number of `emit` host calls made so far by this agent (for tests and
    /// benchmarks of the batching).
    pub fn emit_calls(&self) -> u64 {
        self.emit_calls
    }

    // ----- the runtime's side --------------------------------------------------

    pub(crate) fn begin_init(&mut self, init: InitContext) {
        self.init = init;
        self.begin_call(None);
    }

    pub(crate) fn begin_step(&mut self, step: StepContext) {
        self.step = step;
        self.begin_call(Some(step.tick));
        self.in_step = true;
    }

    pub(crate) fn begin_call(&mut self, tick: Option<u64>) {
        self.tick.set(tick);
        self.in_step = false;
        self.error = None;
        self.emit_error = None;
    }

    /// Makes the context that of a packed agent in `slot` (see
    /// `we_abi::pack`), until [`Ctx::leave_slot`].
    pub(crate) fn enter_slot(&mut self, slot: u32, init: InitContext, rng: SplitMix64) {
        self.init = init;
        self.pack_slot = Some(slot);
        self.rng = Some(rng);
    }

    /// Ends the turn of the packed agent in `slot`: its effects are closed
    /// with a `PACK_END` record carrying the turn's status, without a flush.
    /// Returns the agent's PRNG stream, to be kept with it.
    pub(crate) fn leave_slot(&mut self, slot: u32) -> Option<SplitMix64> {
        let status = self.error.take().map_or(we_abi::STATUS_OK, |e| e.status());
        let header = EffectHeader {
            op: op::PACK_END,
            flags: 0,
            target: slot,
            aux: status as u32,
            len: 0,
        };
        // A marker that cannot be written leaves the host with fewer markers
        // than entries, which faults the pack: never a silent misfiling.
        if self.outbox.try_reserve(EffectHeader::SIZE).is_ok() {
            self.outbox.extend_from_slice(&header.encode());
            self.after_push();
        }
        self.in_step = false;
        self.pack_slot = None;
        self.rng.take()
    }

    /// Ends a pack call: flushes the outbox (every agent's status is in its
    /// marker); the call fails only if the host refused the effects.
    pub(crate) fn finish_pack(&mut self) -> i32 {
        let flushed = self.flush();
        self.in_step = false;
        self.tick.set(None);
        self.error = None;
        match flushed {
            Ok(()) => we_abi::STATUS_OK,
            Err(e) => e.status(),
        }
    }

    /// Flushes the outbox and returns the call's export status.
    pub(crate) fn finish(&mut self) -> i32 {
        // A failed flush records its error in `self.error`.
        let _ = self.flush();
        self.in_step = false;
        self.tick.set(None);
        self.error.take().map_or(we_abi::STATUS_OK, |e| e.status())
    }

    // ----- the outbox ----------------------------------------------------------

    #[inline]
    fn push(&mut self, op: u16, target: u32, aux: u32, payload: &[u8]) {
        if self.emit_error.is_some() {
            return;
        }
        let Some(len) = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= u32::MAX - RECORD_ALIGN_U32)
        else {
            self.fail(AgentError::TooLarge {
                what: "payload",
                len: payload.len(),
            });
            return;
        };
        let record = EffectHeader::SIZE + pad(payload.len());
        if self.outbox.try_reserve(record).is_err() {
            self.fail(AgentError::OutOfMemory { bytes: record });
            return;
        }
        let header = EffectHeader {
            op,
            flags: 0,
            target,
            aux,
            len,
        };
        we_abi::write_record(&mut self.outbox, header.encode(), payload);
        self.after_push();
    }

    /// [`Ctx::push`] of an 8-byte payload: the 24-byte record is built in
    /// place and appended as one fixed-size piece (one capacity check, one
    /// copy the compiler unrolls; the agents' most common effect).
    #[inline]
    fn push_u64(&mut self, op: u16, target: u32, value: u64) {
        if self.emit_error.is_some() {
            return;
        }
        let header = EffectHeader {
            op,
            flags: 0,
            target,
            aux: 0,
            len: 8,
        };
        let mut record = [0u8; EffectHeader::SIZE + 8];
        record[..EffectHeader::SIZE].copy_from_slice(&header.encode());
        record[EffectHeader::SIZE..].copy_from_slice(&value.to_le_bytes());
        if self.outbox.try_reserve(record.len()).is_err() {
            self.fail(AgentError::OutOfMemory {
                bytes: record.len(),
            });
            return;
        }
        self.outbox.extend_from_slice(&record);
        self.after_push();
    }

    /// Appends a header and `len` zeroed payload bytes (padded); returns where
    /// the payload starts, or `None` (with the call marked failed) if it cannot.
    fn begin_record(&mut self, op: u16, target: u32, aux: u32, len: usize) -> Option<usize> {
        match self.begin_record_checked(op, target, aux, len) {
            Ok(start) => start,
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// As [`Ctx::begin_record`], but returns the error instead of recording it;
    /// `Ok(None)` when earlier effects of this call were refused by the host.
    fn begin_record_checked(
        &mut self,
        op: u16,
        target: u32,
        aux: u32,
        len: usize,
    ) -> Result<Option<usize>, AgentError> {
        let start = self.begin_header(op, target, aux, len)?;
        if let Some(start) = start {
            self.outbox.resize(start + pad(len), 0);
        }
        Ok(start)
    }

    /// Checks the size, reserves room for the whole record, appends its
    /// header and returns where the payload starts; the caller appends the
    /// `len` payload bytes and pads to [`pad`]`(len)`. `Ok(None)` when
    /// earlier effects of this call were refused by the host.
    fn begin_header(
        &mut self,
        op: u16,
        target: u32,
        aux: u32,
        len: usize,
    ) -> Result<Option<usize>, AgentError> {
        if self.emit_error.is_some() {
            return Ok(None);
        }
        // Leave room for the padding so `pad(len)` cannot overflow on wasm32.
        let len32 = u32::try_from(len)
            .ok()
            .filter(|l| *l <= u32::MAX - RECORD_ALIGN_U32)
            .ok_or(AgentError::TooLarge {
                what: "payload",
                len,
            })?;
        let record = EffectHeader::SIZE.saturating_add(pad(len));
        self.outbox
            .try_reserve(record)
            .map_err(|_| AgentError::OutOfMemory { bytes: record })?;
        let header = EffectHeader {
            op,
            flags: 0,
            target,
            aux,
            len: len32,
        };
        self.outbox.extend_from_slice(&header.encode());
        Ok(Some(self.outbox.len()))
    }

    /// Zeroes the padding after a payload of `len` bytes that starts at
    /// `start` and has just been appended (at most `RECORD_ALIGN - 1`
    /// bytes: a fixed-size copy where `len` is known, never a fill of a
    /// run-time length, which a guest makes a `memory.fill` call).
    #[inline]
    fn pad_from(&mut self, start: usize, len: usize) {
        const ZEROS: [u8; we_abi::RECORD_ALIGN] = [0; we_abi::RECORD_ALIGN];
        let padding = pad(len) - len;
        debug_assert_eq!(self.outbox.len(), start + len);
        self.outbox
            .extend_from_slice(ZEROS.get(..padding).unwrap_or_default());
    }

    #[inline]
    fn after_push(&mut self) {
        if self.outbox.len() >= FLUSH_THRESHOLD {
            // A failed flush records its error; later effects are dropped.
            let _ = self.flush();
        }
    }
}
