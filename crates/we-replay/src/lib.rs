//! The hash-chained trace: recorder, validating reader, torn-tail recovery.
//!
//! A trace is the record of one run (R8): a header that says what ran, then one
//! record per committed tick with everything needed to re-run that tick. Every
//! record is chained to the one before it with blake3, so changing, dropping or
//! reordering any byte is detected, and the chain head after the last tick is a
//! 32-byte fingerprint of the whole run that replay compares tick by tick.
//!
//! Architecture invariant: the trace format lives only in this crate. Other
//! crates see [`we_core::TraceSink`], [`TraceReader`] and the pure functions
//! below, never the bytes.
//!
//! # Format, version 2
//!
//! All integers are little-endian. `FORMAT.md` beside `Cargo.toml` holds the
//! same description with every field of the bodies.
//!
//! | offset        | size | field                                                   |
//! |---------------|------|---------------------------------------------------------|
//! | 0             | 8    | magic `WETRACE\0`                                       |
//! | 8             | 4    | format version `u32` (= [`FORMAT_VERSION`])             |
//! | 12            | 4    | header body length `H` (`u32`, at most [`MAX_HEADER_BODY_LEN`]) |
//! | 16            | H    | header body: [`we_core::TraceHeader`], see [`encode_header_body`] |
//! | 16 + H        | 32   | `chain_0 = blake3(header body)`                          |
//! | 48 + H        | ...  | record frames, one per committed tick                   |
//!
//! A record frame at offset `F`:
//!
//! | offset        | size | field                                                   |
//! |---------------|------|---------------------------------------------------------|
//! | F             | 4    | body length `L` (`u32`, [`MIN_RECORD_BODY_LEN`]..=[`MAX_RECORD_BODY_LEN`]) |
//! | F + 4         | L    | body: [`we_core::TickRecord`], see [`encode_record_body`] |
//! | F + 4 + L     | 32   | `chain_i = blake3(chain_{i-1} ‖ body_i)`                 |
//!
//! The next frame starts at `F + 36 + L`. The body starts with the record's tick
//! (`u64`); ticks are strictly increasing. Both bodies are canonical: one value
//! has exactly one encoding, the decoder accepts nothing else (no trailing
//! bytes, no unknown tags, valid UTF-8 only), so `encode(decode(b)) == b`.
//!
//! # Crash safety
//!
//! [`TraceWriter`] assembles each frame whole in memory and hands it to the OS
//! with one `write_all` before [`we_core::TraceSink::record`] returns, so a
//! killed process leaves at worst a torn *last* frame: every earlier frame is
//! already whole in the OS page cache. [`FsyncPolicy`] decides when the data
//! also reaches the disk (power loss). [`recover`] and
//! [`TraceReader::open_recover`] cut a torn tail at the last whole record; a
//! frame that is whole but does not verify (chain mismatch, a length that
//! disagrees with its body) is an error wherever it is, never silently cut.
//!
//! # Example
//!
//! ```
//! use we_core::{Tick, TickRecord, TraceHeader, TraceSink};
//! use we_replay::{FsyncPolicy, TraceReader, TraceWriter};
//!
//! # fn main() -> Result<(), we_core::BoxError> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("run.trace");
//! let mut sink = TraceWriter::create(&path, FsyncPolicy::OnFinish)?;
//! sink.begin(&TraceHeader { seed: 7, ..TraceHeader::default() })?;
//! let head = sink.record(&TickRecord { tick: Tick(1), ..TickRecord::default() })?;
//! sink.finish()?;
//!
//! let mut reader = TraceReader::open(&path)?;
//! let records = reader.by_ref().collect::<we_replay::Result<Vec<_>>>()?;
//! assert_eq!(records.len(), 1);
//! assert_eq!(reader.chain_head(), head);
//! # Ok(())
//! # }
//! ```

mod chain;
mod codec;
mod dump;
mod error;
mod reader;
mod writer;

pub use chain::{Chain, chain_next};
pub use codec::{
    decode_header_body, decode_record_body, encode_header_body, encode_record_body,
    encoded_record_body_len, header_hash,
};
pub use dump::{DumpFilter, dump_jsonl};
pub use error::{Error, Result};
pub use reader::{
    Entry, RecoverAction, RecoveryReport, Summary, TornReason, TornTail, TraceReader, recover,
};
pub use writer::{FsyncPolicy, TraceWriter};

/// The eight bytes every trace starts with.
pub const MAGIC: [u8; 8] = *b"WETRACE\0";
/// The format version this crate writes and the only one it reads. Version 3
/// records inference results as delivered, post-processing (`argmax`) done;
/// version 2 recorded the backend's raw tensors.
pub const FORMAT_VERSION: u32 = 3;
/// Largest header body accepted (64 MiB); the header holds the scenario file.
pub const MAX_HEADER_BODY_LEN: u32 = 64 << 20;
/// Largest record body accepted (256 MiB).
pub const MAX_RECORD_BODY_LEN: u32 = 256 << 20;
/// Smallest possible record body: the fixed fields and five empty lists.
pub const MIN_RECORD_BODY_LEN: u32 = 100;
/// Bytes before the header body: magic, version, header body length.
pub const FILE_PREFIX_LEN: u64 = 16;
/// Length of a blake3 hash, of the header hash and of every chain value.
pub const HASH_LEN: usize = 32;
/// Bytes a frame adds around its body: the length prefix and the chain hash.
pub const FRAME_OVERHEAD: u64 = 4 + HASH_LEN as u64;

/// Offset of the first record frame for a header body of `header_body_len` bytes.
pub const fn first_frame_offset(header_body_len: u32) -> u64 {
    FILE_PREFIX_LEN + header_body_len as u64 + HASH_LEN as u64
}
