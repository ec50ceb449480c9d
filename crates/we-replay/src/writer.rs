//! The trace recorder: a [`TraceSink`] that appends whole frames to a file.
//!
//! Each frame is assembled in a reused buffer and handed to the OS with a
//! single `write_all` before [`TraceSink::record`] returns. This is the
//! writer's buffering, in place of a `BufWriter`, because a `BufWriter` drains
//! whenever it fills and so may hand the OS half a frame while holding the
//! other half: here the OS only ever sees whole frames, one write per tick
//! (a few microseconds, small next to a tick). A killed process therefore
//! loses nothing it recorded, and a crash inside that one write leaves a torn
//! *last* frame, which [`crate::recover`] cuts. Durability against power loss
//! is the [`FsyncPolicy`]'s job.

use crate::chain::Chain;
use crate::reader::{RecoverAction, recover};
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use we_core::{BoxError, TickRecord, TraceHeader, TraceSink};

/// When the writer asks the OS to put the trace on disk (`fsync`).
///
/// Every policy hands each frame to the OS before `record` returns, so a
/// killed process loses nothing; the policy only matters for power loss or a
/// kernel crash, where records after the last sync may be lost (and are then
/// cut as a torn tail).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Never sync; the OS writes back when it likes.
    Never,
    /// Sync the data after every record (slow: one disk flush per tick).
    EveryTick,
    /// Sync the data after every `n` records (`n >= 1`), and at finish.
    EveryN(u32),
    /// Sync once, when the trace is finished.
    #[default]
    OnFinish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Finished,
    /// A write failed; the file's tail is unknown, so nothing more is written.
    Poisoned,
}

/// Records a trace to a file. See the module docs for the crash guarantees.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
    policy: FsyncPolicy,
    chain: Chain,
    /// The header of the trace being appended to, checked by `begin`.
    existing_header: Option<TraceHeader>,
    frame: Vec<u8>,
    unsynced: u32,
    state: State,
}

impl TraceWriter {
    /// Creates (or truncates) the trace file at `path`. The header is written
    /// by [`TraceSink::begin`].
    pub fn create(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<TraceWriter> {
        check_policy(policy)?;
        let path = path.as_ref();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        if policy != FsyncPolicy::Never {
            sync_parent_dir(path)?;
        }
        Ok(TraceWriter {
            file,
            path: path.to_path_buf(),
            policy,
            chain: Chain::default(),
            existing_header: None,
            frame: Vec::new(),
            unsynced: 0,
            state: State::Open,
        })
    }

    /// Reopens an existing trace for appending: verifies it whole, cuts a torn
    /// tail (a damaged frame is an error, as in [`crate::recover`]), and goes on
    /// from its chain head and last tick. [`TraceSink::begin`] must then be
    /// called with the trace's own header (anything else is
    /// [`Error::HeaderMismatch`]).
    pub fn append_to(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<TraceWriter> {
        check_policy(policy)?;
        let path = path.as_ref();
        let report = recover(path, RecoverAction::Truncate)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io("open for append", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        if len != report.valid_bytes {
            // Someone else changed the file between the recovery and the open.
            return Err(Error::State {
                what: "trace file changed while it was being reopened",
            });
        }
        Ok(TraceWriter {
            file,
            path: path.to_path_buf(),
            policy,
            chain: Chain::resume(
                report.chain_head,
                report.last_tick,
                report.records,
                report.valid_bytes,
            ),
            existing_header: Some(report.header),
            frame: Vec::new(),
            unsynced: 0,
            state: State::Open,
        })
    }

    /// The trace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chain value after the last record (the header hash before any).
    pub fn chain_head(&self) -> [u8; 32] {
        self.chain.head()
    }

    /// Records in the trace, including those there before [`Self::append_to`].
    pub fn record_count(&self) -> u64 {
        self.chain.record_count()
    }

    /// Bytes of the trace handed to the OS.
    pub fn bytes(&self) -> u64 {
        self.chain.bytes()
    }

    /// Writes the file header. Called once, before the first record.
    pub fn write_header(&mut self, header: &TraceHeader) -> Result<()> {
        self.check_open()?;
        if let Some(existing) = &self.existing_header {
            if existing != header {
                return Err(Error::HeaderMismatch {
                    path: self.path.clone(),
                });
            }
            // The header is on disk already; the chain was resumed from it.
            self.existing_header = None;
            return Ok(());
        }
        let mut bytes = std::mem::take(&mut self.frame);
        bytes.clear();
        let result = self
            .chain
            .begin_into(header, &mut bytes)
            .and_then(|()| self.write_out(&bytes));
        self.frame = bytes;
        result?;
        if matches!(self.policy, FsyncPolicy::EveryTick | FsyncPolicy::EveryN(_)) {
            self.sync()?;
        }
        Ok(())
    }

    /// Appends `record` as one frame; returns the chain head after it.
    pub fn write_record(&mut self, record: &TickRecord) -> Result<[u8; 32]> {
        self.check_open()?;
        if self.existing_header.is_some() {
            return Err(Error::State {
                what: "record before begin on an appended trace",
            });
        }
        let mut frame = std::mem::take(&mut self.frame);
        let result = self
            .chain
            .push_frame(record, &mut frame)
            .and_then(|head| self.write_out(&frame).map(|()| head));
        self.frame = frame;
        let head = result?;
        self.unsynced = self.unsynced.saturating_add(1);
        let due = match self.policy {
            FsyncPolicy::EveryTick => true,
            FsyncPolicy::EveryN(n) => self.unsynced >= n,
            FsyncPolicy::Never | FsyncPolicy::OnFinish => false,
        };
        if due {
            self.sync()?;
        }
        Ok(head)
    }

    /// Syncs per the policy and closes the trace to further writes.
    pub fn close(&mut self) -> Result<()> {
        self.check_open()?;
        if self.policy != FsyncPolicy::Never {
            self.sync()?;
        }
        self.state = State::Finished;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            State::Open => Ok(()),
            State::Finished => Err(Error::State {
                what: "the trace is finished",
            }),
            State::Poisoned => Err(Error::State {
                what: "an earlier write failed; the trace must be recovered",
            }),
        }
    }

    fn write_out(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| {
            self.state = State::Poisoned;
            Error::io("write", &self.path, e)
        })
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| {
            self.state = State::Poisoned;
            Error::io("sync", &self.path, e)
        })?;
        self.unsynced = 0;
        Ok(())
    }
}

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("chain", &self.chain)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TraceSink for TraceWriter {
    fn begin(&mut self, header: &TraceHeader) -> Result<(), BoxError> {
        Ok(self.write_header(header)?)
    }

    fn record(&mut self, record: &TickRecord) -> Result<[u8; 32], BoxError> {
        Ok(self.write_record(record)?)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(self.close()?)
    }
}

fn check_policy(policy: FsyncPolicy) -> Result<()> {
    if policy == FsyncPolicy::EveryN(0) {
        return Err(Error::InvalidPolicy {
            what: "EveryN(0): n must be at least 1",
        });
    }
    Ok(())
}

/// Makes the new file's directory entry durable. Only meaningful (and only
/// possible: directories cannot be opened as files on Windows) on Unix.
#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory of", path, e))
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> Result<()> {
    Ok(())
}
