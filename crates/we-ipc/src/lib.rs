//! The message bus of wasm-engine: every message between agents goes through it.
//!
//! During a tick agents only *emit* effects; afterwards the runtime commits them
//! into the bus in (agent id, emission index) order. Each receiver has an inbox
//! arena for the next tick; commits append we-abi message records to it, so an
//! inbox is ordered by (sender id, emission index), and a publish expands at its
//! place in that order into one message per subscriber, ascending, publisher
//! excluded (`shared/workloads.md`). [`Bus::flip`] at the end of a commit makes
//! the new inboxes the delivered ones; arenas are reused, never shrunk.
//!
//! Backpressure is explicit and deterministic: a receiver's inbox holds at most
//! `mailbox_capacity` messages per tick; the message that would overflow it is
//! refused, the refusal is returned to the caller, counted in the totals and in
//! the sender's per-commit count (which the runtime hands the sender in its
//! next `StepContext::refused`). Nothing is dropped silently.
//!
//! Envelope headers are rkyv archives: [`EnvelopeHeader`]'s archived form is,
//! byte for byte, `we_abi::MessageHeader`'s encoding, so host-side tools read
//! inboxes zero-copy and validated with [`read_envelopes`].
//!
//! ```
//! use we_ipc::{Bus, BusConfig};
//! let mut bus = Bus::new(3, BusConfig::default());
//! bus.join(2, 9).unwrap();
//! bus.flip(); // joins apply at the end of a commit
//! bus.commit_send(0, 1, &7u64.to_le_bytes()).unwrap();
//! let out = bus.commit_publish(1, 9, b"hi", |_| {});
//! assert_eq!(out.delivered, 1);
//! bus.flip();
//! assert_eq!(bus.inbox_len(1), 1);
//! assert_eq!(bus.inbox_len(2), 1);
//! let (header, payload) = we_ipc::read_envelopes(bus.inbox(2)).next().unwrap().unwrap();
//! assert_eq!((header.sender.to_native(), payload), (1, &b"hi"[..]));
//! ```

mod bus;

pub use bus::{Bus, BusConfig, BusStats, PublishOutcome};

/// Errors of bus configuration calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent id outside the bus.
    #[error("unknown agent {agent}")]
    UnknownAgent {
        /// The id.
        agent: u32,
    },
    /// An agent would exceed its topic limit.
    #[error("agent {agent} may join at most {max} topics")]
    TooManyTopics {
        /// The agent.
        agent: u32,
        /// The limit.
        max: u32,
    },
    /// An inbox record could not be read.
    #[error("inbox record at byte {offset}: {what}")]
    BadRecord {
        /// Byte offset of the record.
        offset: usize,
        /// What is wrong.
        what: String,
    },
}

/// Result with the we-ipc [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a message was not committed. The sender is told at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The receiver's inbox for the next tick is full.
    #[error("mailbox of agent {receiver} is full")]
    MailboxFull {
        /// The receiver.
        receiver: u32,
    },
    /// The payload exceeds the size limit.
    #[error("payload of {len} bytes exceeds {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// No such receiver.
    #[error("no agent {receiver}")]
    UnknownReceiver {
        /// The receiver.
        receiver: u32,
    },
    /// The receiver is faulted or stopped.
    #[error("agent {receiver} is not running")]
    ReceiverClosed {
        /// The receiver.
        receiver: u32,
    },
}

/// The header of a message envelope as an rkyv type. Its archived form is the
/// we-abi `MessageHeader` layout (16 bytes, little-endian, field order kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EnvelopeHeader {
    /// Sender id.
    pub sender: u32,
    /// we-abi message kind.
    pub kind: u16,
    /// Reserved flags.
    pub flags: u16,
    /// Topic or request tag.
    pub channel: u32,
    /// Payload length.
    pub len: u32,
}

/// Walks an inbox, accessing each header zero-copy through rkyv's validated
/// `access`. Stops at the first bad record with its offset.
pub fn read_envelopes(
    inbox: &[u8],
) -> impl Iterator<Item = Result<(&ArchivedEnvelopeHeader, &[u8])>> + '_ {
    let mut records = we_abi::Records::new(inbox);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let offset = records.offset();
        let next = records.next()?;
        let item = next
            .map_err(|e| Error::BadRecord {
                offset,
                what: format!("{e:?}"),
            })
            .and_then(|(header, payload)| {
                rkyv::access::<ArchivedEnvelopeHeader, rkyv::rancor::Error>(header)
                    .map(|h| (h, payload))
                    .map_err(|e| Error::BadRecord {
                        offset,
                        what: e.to_string(),
                    })
            });
        failed = item.is_err();
        Some(item)
    })
}
