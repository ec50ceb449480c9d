//! The hash chain without a file: the state a writer advances and a replay
//! recomputes.
//!
//! [`Chain`] is also a [`TraceSink`], so a replay can run the scenario into a
//! `Chain` and compare [`Chain::head`] with the recorded trace tick by tick
//! without writing anything.

use crate::codec::{encode_record_body, write_file_header};
use crate::{Error, FRAME_OVERHEAD, Result};
use we_core::{BoxError, TickRecord, TraceHeader, TraceSink};

/// `blake3(previous ‖ body)`: the chain value after a record with `body`.
pub fn chain_next(previous: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(previous);
    h.update(body);
    *h.finalize().as_bytes()
}

/// The running state of a trace's hash chain: head, last tick, record count
/// and the byte length the trace file has so far.
#[derive(Clone, Default)]
pub struct Chain {
    started: bool,
    head: [u8; 32],
    last_tick: Option<u64>,
    records: u64,
    bytes: u64,
    scratch: Vec<u8>,
}

impl Chain {
    /// A chain started from `header`: its head is the header hash.
    pub fn start(header: &TraceHeader) -> Result<Self> {
        let mut chain = Chain::default();
        let mut file_header = Vec::new();
        chain.begin_into(header, &mut file_header)?;
        Ok(chain)
    }

    /// Resumes a chain from a verified trace's state (used when appending).
    pub(crate) fn resume(head: [u8; 32], last_tick: Option<u64>, records: u64, bytes: u64) -> Self {
        Chain {
            started: true,
            head,
            last_tick,
            records,
            bytes,
            scratch: Vec::new(),
        }
    }

    /// Whether the header has been seen.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// The chain value after the last record (the header hash before any).
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// The tick of the last record.
    pub fn last_tick(&self) -> Option<u64> {
        self.last_tick
    }

    /// Records chained so far.
    pub fn record_count(&self) -> u64 {
        self.records
    }

    /// Bytes a trace file holding the header and the records so far has.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Advances the chain by `record`; returns the new head.
    pub fn push(&mut self, record: &TickRecord) -> Result<[u8; 32]> {
        let mut frame = std::mem::take(&mut self.scratch);
        let result = self.push_frame(record, &mut frame);
        self.scratch = frame;
        result
    }

    /// Appends the file header for `header` to `out` and starts the chain.
    pub(crate) fn begin_into(&mut self, header: &TraceHeader, out: &mut Vec<u8>) -> Result<()> {
        if self.started {
            return Err(Error::State {
                what: "begin called twice",
            });
        }
        let before = out.len();
        self.head = write_file_header(header, out)?;
        self.bytes = (out.len() - before) as u64;
        self.started = true;
        Ok(())
    }

    /// Replaces `frame` with the whole frame of `record` and advances the
    /// chain; on error nothing changes.
    pub(crate) fn push_frame(
        &mut self,
        record: &TickRecord,
        frame: &mut Vec<u8>,
    ) -> Result<[u8; 32]> {
        if !self.started {
            return Err(Error::State {
                what: "record before begin",
            });
        }
        let tick = record.tick.0;
        if let Some(previous) = self.last_tick
            && tick <= previous
        {
            return Err(Error::TickOrder {
                offset: self.bytes,
                record: self.records,
                tick,
                previous,
            });
        }
        frame.clear();
        frame.extend_from_slice(&[0; 4]);
        encode_record_body(record, frame)?;
        let body_len = frame.len() - 4;
        // encode_record_body refuses bodies over MAX_RECORD_BODY_LEN (< 4 GiB).
        frame[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        let head = chain_next(&self.head, &frame[4..]);
        frame.extend_from_slice(&head);
        self.head = head;
        self.last_tick = Some(tick);
        self.records += 1;
        self.bytes += body_len as u64 + FRAME_OVERHEAD;
        Ok(head)
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("started", &self.started)
            .field("head", &Hex(&self.head))
            .field("last_tick", &self.last_tick)
            .field("records", &self.records)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Prints bytes as lowercase hex.
struct Hex<'a>(&'a [u8]);

impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl TraceSink for Chain {
    fn begin(&mut self, header: &TraceHeader) -> Result<(), BoxError> {
        let mut file_header = Vec::new();
        self.begin_into(header, &mut file_header)?;
        Ok(())
    }

    fn record(&mut self, record: &TickRecord) -> Result<[u8; 32], BoxError> {
        Ok(self.push(record)?)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}
