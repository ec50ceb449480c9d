//! The validating reader and torn-tail recovery.
//!
//! [`TraceReader::open`] checks the magic, the version and the header hash;
//! each step of the iteration then checks the frame's length against its
//! bounds and the file, the chain hash, the body's decoding and the tick
//! order, in that order, so a damaged byte is reported as a chain mismatch of
//! the frame that holds it. The file's length is taken once at open; bytes
//! appended later are not read.
//!
//! A frame that runs past the end of the file is a *torn tail* only if no
//! whole, verifying record starts there: a damaged length prefix in front of
//! an intact record is reported as [`Error::CorruptLength`], never cut.

use crate::codec::{Cursor, decode_header, decode_record, decode_record_prefix};
use crate::{
    Error, FILE_PREFIX_LEN, FORMAT_VERSION, FRAME_OVERHEAD, HASH_LEN, MAGIC, MAX_HEADER_BODY_LEN,
    MAX_RECORD_BODY_LEN, MIN_RECORD_BODY_LEN, Result, chain_next,
};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use we_core::{TickRecord, TraceHeader};

/// Read-ahead buffer of the reader.
const READ_BUFFER: usize = 64 << 10;
/// Chunk used when checking that a tail is all zeros.
const ZERO_CHECK_CHUNK: usize = 64 << 10;

/// One verified record with where it is and the chain value after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the record's frame in the file.
    pub offset: u64,
    /// Index of the record (0-based).
    pub index: u64,
    /// Length of the record's body.
    pub body_len: u32,
    /// Chain value after this record.
    pub chain: [u8; 32],
    /// The record.
    pub record: TickRecord,
}

/// Why the tail of a trace is incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TornReason {
    /// Fewer than four bytes: the length prefix itself is cut.
    PartialLength,
    /// The length prefix says more than the file holds.
    PartialFrame {
        /// The length prefix.
        body_len: u32,
    },
    /// The tail is all zero bytes (a crash after the file grew but before
    /// its data reached the disk).
    ZeroFilled,
}

/// An incomplete final frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the incomplete frame starts: the end of the last whole record.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// What is missing.
    pub reason: TornReason,
}

/// What [`TraceReader::summarize`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The header.
    pub header: TraceHeader,
    /// Number of records (ticks recorded).
    pub ticks: u64,
    /// Tick of the first record.
    pub first_tick: Option<u64>,
    /// Tick of the last record.
    pub last_tick: Option<u64>,
    /// Chain value after the last record.
    pub chain_head: [u8; 32],
    /// Bytes of whole records and header (the file length unless a torn
    /// tail was skipped).
    pub bytes: u64,
}

/// What [`recover`] to do with a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverAction {
    /// Only report it.
    Report,
    /// Cut the file at the last whole record and sync it.
    Truncate,
}

/// What [`recover`] found (and did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The header.
    pub header: TraceHeader,
    /// Whole, verified records.
    pub records: u64,
    /// Tick of the first whole record.
    pub first_tick: Option<u64>,
    /// Tick of the last whole record.
    pub last_tick: Option<u64>,
    /// Chain value after the last whole record.
    pub chain_head: [u8; 32],
    /// Bytes of the header and whole records: where a torn tail starts.
    pub valid_bytes: u64,
    /// Bytes of the file as found.
    pub file_bytes: u64,
    /// The torn tail, if there was one.
    pub torn: Option<TornTail>,
    /// Whether the file was cut to `valid_bytes`.
    pub truncated: bool,
}

/// Verifies the whole trace at `path`; a torn final frame is reported and,
/// with [`RecoverAction::Truncate`], cut. Any other damage (a bad header, a
/// chain mismatch anywhere, a bad length, a tick out of order) is an error and
/// the file is left alone.
pub fn recover(path: impl AsRef<Path>, action: RecoverAction) -> Result<RecoveryReport> {
    let path = path.as_ref();
    let mut reader = TraceReader::open_recover(path)?;
    // Each step consumes at least one frame of the file, and the loop stops at
    // the end of the file, so it is bounded by the file length.
    while let Some(entry) = reader.next_entry() {
        entry?;
    }
    let torn = reader.torn_tail();
    let mut truncated = false;
    if let (Some(tail), RecoverAction::Truncate) = (torn, action) {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open for truncation", path, e))?;
        file.set_len(tail.offset)
            .map_err(|e| Error::io("truncate", path, e))?;
        file.sync_all().map_err(|e| Error::io("sync", path, e))?;
        truncated = true;
    }
    Ok(RecoveryReport {
        header: reader.header.clone(),
        records: reader.records,
        first_tick: reader.first_tick,
        last_tick: reader.last_tick,
        chain_head: reader.chain,
        valid_bytes: reader.pos,
        file_bytes: reader.file_len,
        torn,
        truncated,
    })
}

/// Reads and verifies a trace, record by record.
///
/// Iterating yields `Result<TickRecord>`; after the first error the iterator
/// ends. [`TraceReader::next_entry`] yields records with their offsets and
/// chain values.
pub struct TraceReader {
    file: BufReader<File>,
    path: PathBuf,
    header: TraceHeader,
    header_hash: [u8; 32],
    file_len: u64,
    /// Offset of the next frame.
    pos: u64,
    chain: [u8; 32],
    first_tick: Option<u64>,
    last_tick: Option<u64>,
    records: u64,
    recovering: bool,
    torn: Option<TornTail>,
    done: bool,
    body: Vec<u8>,
}

impl TraceReader {
    /// Opens a trace and verifies its header. A torn tail is an error
    /// ([`Error::Truncated`]) when iteration reaches it.
    pub fn open(path: impl AsRef<Path>) -> Result<TraceReader> {
        Self::open_with(path.as_ref(), false)
    }

    /// Opens a trace for recovery: iteration ends cleanly at the last whole
    /// record when the final frame is torn ([`Self::torn_tail`] says so
    /// afterwards). Damage anywhere else is still an error.
    pub fn open_recover(path: impl AsRef<Path>) -> Result<TraceReader> {
        Self::open_with(path.as_ref(), true)
    }

    fn open_with(path: &Path, recovering: bool) -> Result<TraceReader> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let mut file = BufReader::with_capacity(READ_BUFFER, file);
        let truncated_header = |needed: u64| Error::Truncated {
            offset: 0,
            record: None,
            tick: None,
            needed,
            available: file_len,
        };

        if file_len < FILE_PREFIX_LEN {
            return Err(truncated_header(FILE_PREFIX_LEN));
        }
        let mut prefix = [0u8; FILE_PREFIX_LEN as usize];
        read_exact(&mut file, &mut prefix, path)?;
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&prefix[0..8]);
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = le_u32(&prefix[8..12]);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let header_len = le_u32(&prefix[12..16]);
        if header_len > MAX_HEADER_BODY_LEN {
            return Err(Error::HeaderTooLarge {
                len: u64::from(header_len),
                max: u64::from(MAX_HEADER_BODY_LEN),
            });
        }
        let header_end = crate::first_frame_offset(header_len);
        if file_len < header_end {
            return Err(truncated_header(header_end));
        }
        // Bounded by MAX_HEADER_BODY_LEN and by the file length, both checked.
        let mut body = vec![0u8; header_len as usize];
        read_exact(&mut file, &mut body, path)?;
        let mut stored = [0u8; HASH_LEN];
        read_exact(&mut file, &mut stored, path)?;
        let header_hash = *blake3::hash(&body).as_bytes();
        if header_hash != stored {
            return Err(Error::HeaderHashMismatch {
                offset: FILE_PREFIX_LEN,
                body_len: header_len,
            });
        }
        let header = decode_header(&body).map_err(|e| e.into_error(FILE_PREFIX_LEN, None))?;
        Ok(TraceReader {
            file,
            path: path.to_path_buf(),
            header,
            header_hash,
            file_len,
            pos: header_end,
            chain: header_hash,
            first_tick: None,
            last_tick: None,
            records: 0,
            recovering,
            torn: None,
            done: false,
            body,
        })
    }

    /// The trace's header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// blake3 of the header body: the chain's starting value.
    pub fn header_hash(&self) -> [u8; 32] {
        self.header_hash
    }

    /// The chain value after the last record read so far.
    pub fn chain_head(&self) -> [u8; 32] {
        self.chain
    }

    /// Records read and verified so far.
    pub fn record_count(&self) -> u64 {
        self.records
    }

    /// Tick of the first record read.
    pub fn first_tick(&self) -> Option<u64> {
        self.first_tick
    }

    /// Tick of the last record read so far.
    pub fn last_tick(&self) -> Option<u64> {
        self.last_tick
    }

    /// Offset of the next frame: the bytes verified so far.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Length of the file when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The torn tail that ended the iteration, in recovery mode.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn
    }

    /// Reads the remaining records and summarizes the trace.
    pub fn summarize(mut self) -> Result<Summary> {
        // Bounded by the file length: each step consumes a frame.
        while let Some(entry) = self.next_entry() {
            entry?;
        }
        Ok(Summary {
            header: self.header,
            ticks: self.records,
            first_tick: self.first_tick,
            last_tick: self.last_tick,
            chain_head: self.chain,
            bytes: self.pos,
        })
    }

    /// The next verified record, `None` at the end (or after an error).
    pub fn next_entry(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        if self.pos >= self.file_len {
            self.done = true;
            return None;
        }
        match self.read_frame() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Reads the frame at `self.pos`. `Ok(None)`: a torn tail in recovery mode.
    fn read_frame(&mut self) -> Result<Option<Entry>> {
        let offset = self.pos;
        let record = self.records;
        let available = self.file_len - offset;
        if available < 4 {
            return self.torn_or_error(offset, available, TornReason::PartialLength, None);
        }
        let mut len_bytes = [0u8; 4];
        read_exact(&mut self.file, &mut len_bytes, &self.path)?;
        let body_len = u32::from_le_bytes(len_bytes);
        let frame_len = u64::from(body_len) + FRAME_OVERHEAD;

        if body_len > MAX_RECORD_BODY_LEN
            || (body_len < MIN_RECORD_BODY_LEN && !(self.recovering && body_len == 0))
        {
            return Err(Error::BadFrameLength {
                offset,
                record,
                len: body_len,
                min: MIN_RECORD_BODY_LEN,
                max: MAX_RECORD_BODY_LEN,
            });
        }
        if body_len == 0 {
            // Recovery mode only (checked above): a zero-filled tail is torn.
            return if self.rest_is_zero(available - 4)? {
                self.torn_or_error(offset, available, TornReason::ZeroFilled, None)
            } else {
                Err(Error::BadFrameLength {
                    offset,
                    record,
                    len: body_len,
                    min: MIN_RECORD_BODY_LEN,
                    max: MAX_RECORD_BODY_LEN,
                })
            };
        }
        if frame_len > available {
            return self.past_end(offset, record, body_len, available);
        }

        // Bounded by MAX_RECORD_BODY_LEN and by the bytes the file holds.
        self.body.resize(body_len as usize, 0);
        read_exact(&mut self.file, &mut self.body, &self.path)?;
        let mut stored = [0u8; HASH_LEN];
        read_exact(&mut self.file, &mut stored, &self.path)?;
        let claimed_tick = self.body.get(0..8).map(le_u64);
        let chain = chain_next(&self.chain, &self.body);
        if chain != stored {
            return Err(Error::ChainMismatch {
                offset,
                record,
                tick: claimed_tick,
            });
        }
        let decoded = decode_record(&self.body)
            .map_err(|e| e.into_error(offset, Some((record, claimed_tick))))?;
        let tick = decoded.tick.0;
        if let Some(previous) = self.last_tick
            && tick <= previous
        {
            return Err(Error::TickOrder {
                offset,
                record,
                tick,
                previous,
            });
        }
        self.chain = chain;
        self.first_tick.get_or_insert(tick);
        self.last_tick = Some(tick);
        self.records += 1;
        self.pos += frame_len;
        Ok(Some(Entry {
            offset,
            index: record,
            body_len,
            chain,
            record: decoded,
        }))
    }

    /// A frame whose length runs past the end of the file: a torn tail, unless
    /// an intact record of another length starts there (a damaged length).
    fn past_end(
        &mut self,
        offset: u64,
        record: u64,
        body_len: u32,
        available: u64,
    ) -> Result<Option<Entry>> {
        // `available < body_len + 36 <= MAX_RECORD_BODY_LEN + 36`: bounded.
        let rest_len = (available - 4) as usize;
        let mut rest = Vec::with_capacity(rest_len);
        (&mut self.file)
            .take(rest_len as u64)
            .read_to_end(&mut rest)
            .map_err(|e| Error::io("read", &self.path, e))?;
        let claimed_tick = rest.get(0..8).map(le_u64);
        let mut cursor = Cursor::new(&rest);
        if decode_record_prefix(&mut cursor).is_ok() {
            let actual = cursor.at;
            if let (Some(body), Some(stored)) =
                (rest.get(..actual), rest.get(actual..actual + HASH_LEN))
                && chain_next(&self.chain, body) == stored
            {
                return Err(Error::CorruptLength {
                    offset,
                    record,
                    claimed: body_len,
                    actual: actual as u32,
                });
            }
        }
        self.torn_or_error(
            offset,
            available,
            TornReason::PartialFrame { body_len },
            claimed_tick,
        )
    }

    fn torn_or_error(
        &mut self,
        offset: u64,
        available: u64,
        reason: TornReason,
        tick: Option<u64>,
    ) -> Result<Option<Entry>> {
        if self.recovering {
            self.torn = Some(TornTail {
                offset,
                bytes: available,
                reason,
            });
            return Ok(None);
        }
        let needed = match reason {
            TornReason::PartialFrame { body_len } => u64::from(body_len) + FRAME_OVERHEAD,
            TornReason::PartialLength | TornReason::ZeroFilled => 4,
        };
        Err(Error::Truncated {
            offset,
            record: Some(self.records),
            tick,
            needed,
            available,
        })
    }

    /// Whether the next `len` bytes of the file are all zero.
    fn rest_is_zero(&mut self, len: u64) -> Result<bool> {
        let mut left = len;
        let mut chunk = vec![0u8; ZERO_CHECK_CHUNK];
        // Bounded: each pass consumes up to a chunk of the `len` bytes.
        while left > 0 {
            let n = left.min(ZERO_CHECK_CHUNK as u64) as usize;
            let buf = &mut chunk[..n];
            read_exact(&mut self.file, buf, &self.path)?;
            if buf.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            left -= n as u64;
        }
        Ok(true)
    }
}

impl std::fmt::Debug for TraceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceReader")
            .field("path", &self.path)
            .field("file_len", &self.file_len)
            .field("offset", &self.pos)
            .field("records", &self.records)
            .field("last_tick", &self.last_tick)
            .field("recovering", &self.recovering)
            .field("torn", &self.torn)
            .finish_non_exhaustive()
    }
}

impl Iterator for TraceReader {
    type Item = Result<TickRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().map(|r| r.map(|e| e.record))
    }
}

impl std::iter::FusedIterator for TraceReader {}

fn read_exact(file: &mut BufReader<File>, buf: &mut [u8], path: &Path) -> Result<()> {
    file.read_exact(buf).map_err(|e| Error::io("read", path, e))
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
