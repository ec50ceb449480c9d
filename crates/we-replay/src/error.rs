//! The error type of we-replay.
//!
//! Every error about a trace's bytes names where it is: the byte offset in the
//! file and, past the header, the record (0-based) and the tick when known, so a
//! damaged trace can be located with a hex editor.

use std::path::PathBuf;

/// Errors raised while writing, reading, recovering or dumping a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on the trace file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `read`, `write`, `sync`, ...).
        op: &'static str,
        /// The trace file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing the dump output failed.
    #[error("writing the dump: {source}")]
    Output {
        /// The error of the output writer.
        source: std::io::Error,
    },
    /// Serializing a dump line failed.
    #[error("serializing a dump line: {source}")]
    Json {
        /// The serde_json error.
        source: serde_json::Error,
    },
    /// The file does not start with `WETRACE\0` (byte offset 0).
    #[error("not a trace: the first bytes are {found:02x?}, not WETRACE\\0")]
    BadMagic {
        /// The first eight bytes of the file.
        found: [u8; 8],
    },
    /// The format version (byte offset 8) is not one this crate reads.
    #[error("trace format version {found} is not supported (this reader supports {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
    /// The header body length (byte offset 12) is over the bound.
    #[error("header body of {len} bytes exceeds the maximum of {max}")]
    HeaderTooLarge {
        /// The declared or encoded length.
        len: u64,
        /// [`crate::MAX_HEADER_BODY_LEN`].
        max: u64,
    },
    /// The header body does not hash to the stored header hash: the body,
    /// its length prefix (byte 12) or the hash was changed.
    #[error(
        "header hash mismatch: the {body_len}-byte header body at byte {offset} does not hash to the value stored after it"
    )]
    HeaderHashMismatch {
        /// Offset of the header body (16).
        offset: u64,
        /// The header body length the file declares.
        body_len: u32,
    },
    /// The file ends inside the header (`record` is `None`) or inside a record
    /// frame.
    #[error(
        "trace truncated at byte {offset} ({}): {needed} bytes needed, {available} present",
        place(*record, *tick)
    )]
    Truncated {
        /// Start of the incomplete header (0) or frame.
        offset: u64,
        /// The incomplete record, `None` in the header.
        record: Option<u64>,
        /// The tick the incomplete record claims, when its first bytes are there.
        tick: Option<u64>,
        /// Bytes the header or frame needs from `offset`.
        needed: u64,
        /// Bytes present from `offset` to the end of the file.
        available: u64,
    },
    /// A frame's length prefix is outside the allowed range.
    #[error("record {record} at byte {offset}: body length {len} is outside {min}..={max}")]
    BadFrameLength {
        /// Start of the frame.
        offset: u64,
        /// The record.
        record: u64,
        /// The length prefix.
        len: u32,
        /// [`crate::MIN_RECORD_BODY_LEN`].
        min: u32,
        /// [`crate::MAX_RECORD_BODY_LEN`].
        max: u32,
    },
    /// A frame's length prefix claims more bytes than the file holds, but a
    /// whole, verifying record of another length starts there: the length was
    /// damaged. Never treated as a torn tail.
    #[error(
        "record {record} at byte {offset}: length prefix says {claimed} bytes but the verified body has {actual}"
    )]
    CorruptLength {
        /// Start of the frame.
        offset: u64,
        /// The record.
        record: u64,
        /// The length prefix.
        claimed: u32,
        /// The length of the body that verifies.
        actual: u32,
    },
    /// A record's stored chain hash is not `blake3(previous chain ‖ body)`:
    /// the body, its length or the hash was changed.
    #[error("chain hash mismatch in record {record} at byte {offset} ({})", place(Some(*record), *tick))]
    ChainMismatch {
        /// Start of the frame.
        offset: u64,
        /// The record.
        record: u64,
        /// The tick the body claims; unverified, since the chain failed.
        tick: Option<u64>,
    },
    /// A body (or the header body) verified but does not decode: the writer
    /// was not a conforming one.
    #[error("cannot decode at byte {offset} ({}): {what}", place(*record, *tick))]
    Decode {
        /// Start of the frame (or of the header body, or the position in a
        /// body given to [`crate::decode_record_body`]).
        offset: u64,
        /// The record, `None` for the header.
        record: Option<u64>,
        /// The record's tick when it could be read.
        tick: Option<u64>,
        /// What was wrong, with the position inside the body.
        what: String,
    },
    /// A record's tick does not follow the previous record's tick.
    #[error(
        "record {record} at byte {offset}: tick {tick} does not follow tick {previous} (ticks must strictly increase)"
    )]
    TickOrder {
        /// Start of the frame (when writing: where it would have gone).
        offset: u64,
        /// The record.
        record: u64,
        /// Its tick.
        tick: u64,
        /// The previous record's tick.
        previous: u64,
    },
    /// A record to write encodes to more than [`crate::MAX_RECORD_BODY_LEN`].
    #[error("record of tick {tick} encodes to {len} bytes, over the maximum of {max}")]
    RecordTooLarge {
        /// The record's tick.
        tick: u64,
        /// Its encoded body length.
        len: u64,
        /// [`crate::MAX_RECORD_BODY_LEN`].
        max: u64,
    },
    /// A fault kind added to we-core after this format version; the format
    /// needs a tag for it before it can be recorded.
    #[error(
        "fault kind `{name}` of agent {agent} at tick {tick} has no encoding in trace format v1"
    )]
    UnsupportedFault {
        /// The tick.
        tick: u64,
        /// The agent index.
        agent: u32,
        /// [`we_core::FaultKind::name`].
        name: &'static str,
    },
    /// A writer or chain call came in the wrong order.
    #[error("trace writer misuse: {what}")]
    State {
        /// Which rule was broken, e.g. `record before begin`.
        what: &'static str,
    },
    /// [`crate::TraceWriter::append_to`] was given a header other than the
    /// one the existing trace holds.
    #[error("the trace at {} was recorded with a different header", path.display())]
    HeaderMismatch {
        /// The trace file.
        path: PathBuf,
    },
    /// An invalid [`crate::FsyncPolicy`], e.g. `EveryN(0)`.
    #[error("invalid fsync policy: {what}")]
    InvalidPolicy {
        /// Why.
        what: &'static str,
    },
}

/// Result with the we-replay [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The byte offset in the trace file the error is about, when it is about
    /// the file's bytes.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::BadMagic { .. } => Some(0),
            Error::UnsupportedVersion { .. } => Some(8),
            Error::HeaderTooLarge { .. } => Some(12),
            Error::HeaderHashMismatch { offset, .. }
            | Error::Truncated { offset, .. }
            | Error::BadFrameLength { offset, .. }
            | Error::CorruptLength { offset, .. }
            | Error::ChainMismatch { offset, .. }
            | Error::Decode { offset, .. }
            | Error::TickOrder { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The record (0-based) the error is about; `None` for the header and for
    /// errors that are not about the file's bytes.
    pub fn record(&self) -> Option<u64> {
        match self {
            Error::Truncated { record, .. } | Error::Decode { record, .. } => *record,
            Error::BadFrameLength { record, .. }
            | Error::CorruptLength { record, .. }
            | Error::ChainMismatch { record, .. }
            | Error::TickOrder { record, .. } => Some(*record),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// "record 3, tick 41", "header", "record 3, tick unknown".
fn place(record: Option<u64>, tick: Option<u64>) -> String {
    match (record, tick) {
        (None, _) => "header".to_string(),
        (Some(r), Some(t)) => format!("record {r}, tick {t}"),
        (Some(r), None) => format!("record {r}, tick unknown"),
    }
}
