//! The error type of we-ipc, and [`Refusal`], the deterministic outcome of a
//! message the bus did not take.

/// Errors of bus configuration calls and of reading inboxes.
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
    /// An inbox record could not be read: truncated, misaligned, or a header
    /// that fails rkyv's validation.
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

/// Why a message was not committed. The caller learns it at once; the sender's
/// count for the commit ([`crate::Bus::refused_last_commit`]) and the totals
/// ([`crate::Bus::stats`]) record it. When several reasons apply, the first in
/// this order is given: `TooLarge`, `UnknownReceiver`, `ReceiverClosed`,
/// `MailboxFull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The receiver's inbox for the next tick already holds
    /// `mailbox_capacity` messages.
    #[error("mailbox of agent {receiver} is full")]
    MailboxFull {
        /// The receiver.
        receiver: u32,
    },
    /// The payload exceeds `max_message_bytes`.
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
    /// The receiver is faulted or stopped ([`crate::Bus::close`]).
    #[error("agent {receiver} is not running")]
    ReceiverClosed {
        /// The receiver.
        receiver: u32,
    },
}
