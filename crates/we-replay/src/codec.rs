//! The canonical byte encoding of the header body and of tick record bodies.
//!
//! Hand-written little-endian rather than rkyv: the format must be canonical
//! (one record, one byte string, on every machine) and the decoder must accept
//! exactly the strings the encoder produces, so that a verified chain hash
//! means one thing. A fixed, padding-free layout makes both easy to see.
//!
//! Lists and byte strings are a `u32` count or length followed by the items.
//! Before a list is allocated its count is checked against the bytes left
//! (each item has a known minimum size), so a damaged count never allocates
//! more than the body it came from.

use crate::{
    Error, HASH_LEN, MAX_HEADER_BODY_LEN, MAX_RECORD_BODY_LEN, MIN_RECORD_BODY_LEN, Result,
};
use we_core::{AgentId, FaultKind, InferenceResult, Tick, TickRecord, TraceHeader};

/// Tags of [`FaultKind`] variants. Stable: a new variant gets a new number.
mod fault_tag {
    pub const FUEL_EXHAUSTED: u8 = 0;
    pub const TRAP: u8 = 1;
    pub const STACK_OVERFLOW: u8 = 2;
    pub const OUT_OF_BOUNDS: u8 = 3;
    pub const MALFORMED_EFFECTS: u8 = 4;
    pub const EFFECT_LIMIT: u8 = 5;
    pub const MESSAGE_TOO_LARGE: u8 = 6;
    pub const ERROR_CODE: u8 = 7;
    pub const INJECTED: u8 = 8;
    pub const WATCHDOG: u8 = 9;
}

/// Tags of an inference outcome.
const OUTCOME_OK: u8 = 0;
const OUTCOME_ERR: u8 = 1;

/// Smallest encoding of one item of each list, for bounding counts.
const MIN_MODULE: usize = 4 + HASH_LEN;
const MIN_NOTE: usize = 4;
const MIN_FAULT: usize = 4 + 4 + 1;
const MIN_INFERENCE: usize = 4 + 4 + 4 + 1 + 4;
const MIN_INPUT: usize = 4;
const MIN_EVENT: usize = 4;

/// What a fault kind carries after its tag.
enum FaultPayload<'a> {
    Empty,
    Text(&'a str),
    U32(u32),
    I32(i32),
}

fn fault_parts(kind: &FaultKind) -> Option<(u8, FaultPayload<'_>)> {
    use fault_tag::*;
    Some(match kind {
        FaultKind::FuelExhausted => (FUEL_EXHAUSTED, FaultPayload::Empty),
        FaultKind::Trap { code } => (TRAP, FaultPayload::Text(code)),
        FaultKind::StackOverflow => (STACK_OVERFLOW, FaultPayload::Empty),
        FaultKind::OutOfBounds { what } => (OUT_OF_BOUNDS, FaultPayload::Text(what)),
        FaultKind::MalformedEffects { offset } => (MALFORMED_EFFECTS, FaultPayload::U32(*offset)),
        FaultKind::EffectLimit => (EFFECT_LIMIT, FaultPayload::Empty),
        FaultKind::MessageTooLarge { len } => (MESSAGE_TOO_LARGE, FaultPayload::U32(*len)),
        FaultKind::ErrorCode(code) => (ERROR_CODE, FaultPayload::I32(*code)),
        FaultKind::Injected => (INJECTED, FaultPayload::Empty),
        FaultKind::Watchdog => (WATCHDOG, FaultPayload::Empty),
        _ => return None,
    })
}

fn payload_len(p: &FaultPayload<'_>) -> u64 {
    match p {
        FaultPayload::Empty => 0,
        FaultPayload::Text(s) => 4 + s.len() as u64,
        FaultPayload::U32(_) | FaultPayload::I32(_) => 4,
    }
}

/// Length of the body [`encode_record_body`] would produce, computed without
/// allocating, so a writer can refuse an oversized record before encoding it.
pub fn encoded_record_body_len(record: &TickRecord) -> Result<u64> {
    let mut len = u64::from(MIN_RECORD_BODY_LEN);
    len += 8 * record.agent_digests.len() as u64;
    for (agent, kind) in &record.faults {
        let (_, payload) = fault_parts(kind).ok_or(Error::UnsupportedFault {
            tick: record.tick.0,
            agent: agent.index,
            name: kind.name(),
        })?;
        len += MIN_FAULT as u64 + payload_len(&payload);
    }
    for result in &record.inference {
        let data = match &result.outcome {
            Ok(payload) => payload.len(),
            Err(text) => text.len(),
        };
        len += MIN_INFERENCE as u64 + data as u64;
    }
    for input in &record.inputs {
        len += MIN_INPUT as u64 + input.len() as u64;
    }
    for event in &record.events {
        len += MIN_EVENT as u64 + event.len() as u64;
    }
    Ok(len)
}

/// Appends the canonical body of `record` to `out`.
///
/// Fails if the body would exceed [`MAX_RECORD_BODY_LEN`] (checked before
/// anything is written) or a fault kind has no tag in this format version.
/// Every count and length fits its `u32` because the whole body does.
pub fn encode_record_body(record: &TickRecord, out: &mut Vec<u8>) -> Result<()> {
    let len = encoded_record_body_len(record)?;
    if len > u64::from(MAX_RECORD_BODY_LEN) {
        return Err(Error::RecordTooLarge {
            tick: record.tick.0,
            len,
            max: u64::from(MAX_RECORD_BODY_LEN),
        });
    }
    out.reserve(len as usize);
    put_u64(out, record.tick.0);
    out.extend_from_slice(&record.effects_digest);
    out.extend_from_slice(&record.workload_digest);
    put_u64(out, record.messages);

    put_u32(out, record.agent_digests.len() as u32);
    // One resize and fixed-size copies: this list is the bulk of a large
    // record (10,000 agents: 80 KB), and this form compiles to a plain copy.
    let start = out.len();
    out.resize(start + 8 * record.agent_digests.len(), 0);
    for (slot, d) in out[start..].chunks_exact_mut(8).zip(&record.agent_digests) {
        slot.copy_from_slice(&d.to_le_bytes());
    }

    put_u32(out, record.faults.len() as u32);
    for (agent, kind) in &record.faults {
        let (tag, payload) = fault_parts(kind).ok_or(Error::UnsupportedFault {
            tick: record.tick.0,
            agent: agent.index,
            name: kind.name(),
        })?;
        put_agent(out, *agent);
        out.push(tag);
        match payload {
            FaultPayload::Empty => {}
            FaultPayload::Text(s) => put_bytes(out, s.as_bytes()),
            FaultPayload::U32(v) => put_u32(out, v),
            FaultPayload::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }

    put_u32(out, record.inference.len() as u32);
    for result in &record.inference {
        put_agent(out, result.agent);
        put_u32(out, result.tag);
        match &result.outcome {
            Ok(payload) => {
                out.push(OUTCOME_OK);
                put_bytes(out, payload);
            }
            Err(text) => {
                out.push(OUTCOME_ERR);
                put_bytes(out, text.as_bytes());
            }
        }
    }

    put_u32(out, record.inputs.len() as u32);
    for input in &record.inputs {
        put_bytes(out, input);
    }

    put_u32(out, record.events.len() as u32);
    for event in &record.events {
        put_bytes(out, event.as_bytes());
    }
    Ok(())
}

/// Decodes a record body. Accepts exactly the byte strings
/// [`encode_record_body`] produces; on failure the error's `offset` is the
/// position inside `body`.
pub fn decode_record_body(body: &[u8]) -> Result<TickRecord> {
    decode_record(body).map_err(|e| e.into_error(0, None))
}

pub(crate) fn decode_record(body: &[u8]) -> Result<TickRecord, DecodeError> {
    let mut c = Cursor::new(body);
    let record = decode_record_prefix(&mut c)?;
    c.finish()?;
    Ok(record)
}

/// Decodes one record from the start of `c`, leaving the cursor after it.
/// Used on its own to measure a body whose length prefix may be damaged.
pub(crate) fn decode_record_prefix(c: &mut Cursor<'_>) -> Result<TickRecord, DecodeError> {
    let tick = Tick(c.u64("tick")?);
    let effects_digest = c.digest("effects digest")?;
    let workload_digest = c.digest("workload digest")?;
    let messages = c.u64("message count")?;

    let n = c.count(8, "agent digest count")?;
    let agent_digests = c
        .take(8 * n, "agent digests")?
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();

    let n = c.count(MIN_FAULT, "fault count")?;
    let mut faults = Vec::with_capacity(n);
    for _ in 0..n {
        let agent = c.agent("fault agent")?;
        let at = c.at;
        let kind = match c.u8("fault kind")? {
            fault_tag::FUEL_EXHAUSTED => FaultKind::FuelExhausted,
            fault_tag::TRAP => FaultKind::Trap {
                code: c.string("trap code")?,
            },
            fault_tag::STACK_OVERFLOW => FaultKind::StackOverflow,
            fault_tag::OUT_OF_BOUNDS => FaultKind::OutOfBounds {
                what: c.string("out-of-bounds site")?,
            },
            fault_tag::MALFORMED_EFFECTS => FaultKind::MalformedEffects {
                offset: c.u32("malformed effect offset")?,
            },
            fault_tag::EFFECT_LIMIT => FaultKind::EffectLimit,
            fault_tag::MESSAGE_TOO_LARGE => FaultKind::MessageTooLarge {
                len: c.u32("message length")?,
            },
            fault_tag::ERROR_CODE => FaultKind::ErrorCode(c.i32("error code")?),
            fault_tag::INJECTED => FaultKind::Injected,
            fault_tag::WATCHDOG => FaultKind::Watchdog,
            other => {
                return Err(DecodeError::new(
                    at,
                    format!("unknown fault kind tag {other}"),
                ));
            }
        };
        faults.push((agent, kind));
    }

    let n = c.count(MIN_INFERENCE, "inference result count")?;
    let mut inference = Vec::with_capacity(n);
    for _ in 0..n {
        let agent = c.agent("inference agent")?;
        let tag = c.u32("inference tag")?;
        let at = c.at;
        let outcome = match c.u8("inference outcome")? {
            OUTCOME_OK => Ok(c.bytes("inference payload")?.to_vec()),
            OUTCOME_ERR => Err(c.string("inference error")?),
            other => {
                return Err(DecodeError::new(
                    at,
                    format!("unknown inference outcome tag {other}"),
                ));
            }
        };
        inference.push(InferenceResult {
            agent,
            tag,
            outcome,
        });
    }

    let n = c.count(MIN_INPUT, "external input count")?;
    let mut inputs = Vec::with_capacity(n);
    for _ in 0..n {
        inputs.push(c.bytes("external input")?.to_vec());
    }

    let n = c.count(MIN_EVENT, "event count")?;
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(c.string("event")?);
    }

    Ok(TickRecord {
        tick,
        effects_digest,
        workload_digest,
        messages,
        agent_digests,
        faults,
        inference,
        inputs,
        events,
    })
}

/// Appends the canonical header body of `header` to `out`. Fails if it would
/// exceed [`MAX_HEADER_BODY_LEN`].
pub fn encode_header_body(header: &TraceHeader, out: &mut Vec<u8>) -> Result<()> {
    let mut len: u64 = 4 + header.runtime_version.len() as u64 + 2 * HASH_LEN as u64 + 8 + 4;
    len += 4;
    for (name, _) in &header.modules {
        len += MIN_MODULE as u64 + name.len() as u64;
    }
    len += 4;
    for note in &header.notes {
        len += MIN_NOTE as u64 + note.len() as u64;
    }
    len += 4 + header.scenario.len() as u64;
    if len > u64::from(MAX_HEADER_BODY_LEN) {
        return Err(Error::HeaderTooLarge {
            len,
            max: u64::from(MAX_HEADER_BODY_LEN),
        });
    }
    out.reserve(len as usize);
    put_bytes(out, header.runtime_version.as_bytes());
    out.extend_from_slice(&header.scenario_digest);
    out.extend_from_slice(&header.config_digest);
    put_u64(out, header.seed);
    put_u32(out, header.agent_count);
    put_u32(out, header.modules.len() as u32);
    for (name, hash) in &header.modules {
        put_bytes(out, name.as_bytes());
        out.extend_from_slice(hash);
    }
    put_u32(out, header.notes.len() as u32);
    for note in &header.notes {
        put_bytes(out, note.as_bytes());
    }
    put_bytes(out, &header.scenario);
    Ok(())
}

/// Decodes a header body; on failure the error's `offset` is the position
/// inside `body`.
pub fn decode_header_body(body: &[u8]) -> Result<TraceHeader> {
    decode_header(body).map_err(|e| e.into_error(0, None))
}

pub(crate) fn decode_header(body: &[u8]) -> Result<TraceHeader, DecodeError> {
    let mut c = Cursor::new(body);
    let runtime_version = c.string("runtime version")?;
    let scenario_digest = c.digest("scenario digest")?;
    let config_digest = c.digest("config digest")?;
    let seed = c.u64("seed")?;
    let agent_count = c.u32("agent count")?;
    let n = c.count(MIN_MODULE, "module count")?;
    let mut modules = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.string("module name")?;
        modules.push((name, c.digest("module hash")?));
    }
    let n = c.count(MIN_NOTE, "note count")?;
    let mut notes = Vec::with_capacity(n);
    for _ in 0..n {
        notes.push(c.string("note")?);
    }
    let scenario = c.bytes("scenario")?.to_vec();
    c.finish()?;
    Ok(TraceHeader {
        runtime_version,
        scenario_digest,
        config_digest,
        seed,
        agent_count,
        modules,
        notes,
        scenario,
    })
}

/// blake3 of the canonical header body: the chain's starting value.
pub fn header_hash(header: &TraceHeader) -> Result<[u8; 32]> {
    let mut body = Vec::new();
    encode_header_body(header, &mut body)?;
    Ok(*blake3::hash(&body).as_bytes())
}

/// Appends the file header (magic, version, header body length, header body,
/// header hash) and returns the header hash.
pub(crate) fn write_file_header(header: &TraceHeader, out: &mut Vec<u8>) -> Result<[u8; 32]> {
    out.extend_from_slice(&crate::MAGIC);
    put_u32(out, crate::FORMAT_VERSION);
    let len_at = out.len();
    put_u32(out, 0);
    let body_at = out.len();
    encode_header_body(header, out)?;
    let body_len = (out.len() - body_at) as u32;
    out[len_at..body_at].copy_from_slice(&body_len.to_le_bytes());
    let hash = *blake3::hash(&out[body_at..]).as_bytes();
    out.extend_from_slice(&hash);
    Ok(hash)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_agent(out: &mut Vec<u8>, agent: AgentId) {
    put_u32(out, agent.index);
    put_u32(out, agent.generation);
}

/// Length-prefixed bytes; the caller has checked the length fits a `u32`.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Why a body did not decode, at which position inside it.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub(crate) at: usize,
    pub(crate) what: String,
}

impl DecodeError {
    fn new(at: usize, what: String) -> Self {
        Self { at, what }
    }

    /// The crate error for a body that starts `body_offset` bytes into the
    /// file (the position inside the body goes into the message).
    pub(crate) fn into_error(self, frame_offset: u64, record: Option<(u64, Option<u64>)>) -> Error {
        match record {
            None => Error::Decode {
                offset: frame_offset + self.at as u64,
                record: None,
                tick: None,
                what: self.what,
            },
            Some((record, tick)) => Error::Decode {
                offset: frame_offset,
                record: Some(record),
                tick,
                what: format!("{} (body byte {})", self.what, self.at),
            },
        }
    }
}

/// Reads little-endian fields from a byte slice, never past its end.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(DecodeError::new(
                self.at,
                format!(
                    "{what}: needs {n} bytes, {} left in the body",
                    self.remaining()
                ),
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn digest(&mut self, what: &str) -> Result<[u8; 32], DecodeError> {
        self.array(what)
    }

    fn agent(&mut self, what: &str) -> Result<AgentId, DecodeError> {
        let index = self.u32(what)?;
        let generation = self.u32(what)?;
        Ok(AgentId { index, generation })
    }

    /// A list count, refused when its items could not fit in what is left.
    fn count(&mut self, min_item: usize, what: &str) -> Result<usize, DecodeError> {
        let at = self.at;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(DecodeError::new(
                at,
                format!(
                    "{what} {n} cannot fit in the {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let at = self.at;
        let bytes = self.bytes(what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(DecodeError::new(at, format!("{what}: invalid UTF-8 ({e})"))),
        }
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::new(
                self.at,
                format!("{} trailing bytes after the last field", self.remaining()),
            ))
        }
    }
}
