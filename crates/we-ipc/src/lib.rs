//! The message bus of wasm-engine (requirement R3): every message between
//! agents goes through it.
//!
//! During a tick agents only *emit* effects; afterwards the runtime commits them
//! into the bus in (agent id, emission index) order. The bus stores them exactly
//! in call order, so it needs no sorting of its own:
//!
//! * **Double-buffered inboxes.** Each receiver has two byte arenas of we-abi
//!   message records (`MessageHeader`, payload, zero padding to 8 bytes, written
//!   with `we_abi::write_record`). [`Bus::inbox`] and [`Bus::inbox_len`] read the
//!   *current* (delivered) side; commit calls append to the *next* side;
//!   [`Bus::flip`] at the end of the commit makes next current and clears the
//!   other side. Arenas are reused, never shrunk, so a steady run allocates
//!   nothing per message. An inbox is ordered by (sender id, emission index).
//! * **Topics.** [`Bus::commit_publish`] expands, at its place in the commit
//!   order, into one message per current subscriber of the topic in ascending
//!   id order, the publisher excluded (`shared/workloads.md`). [`Bus::join`] and
//!   [`Bus::leave`] take effect at the next [`Bus::flip`]: a join committed in
//!   tick t does not receive publishes committed in the same commit, only those
//!   from tick t + 1's commit on (and a leave still receives them). Joins made
//!   before the first tick therefore need one `flip()` before the first commit.
//!   An agent may be in at most `max_topics_per_agent` topics.
//! * **Backpressure, explicit and deterministic.** A receiver's next inbox holds
//!   at most `mailbox_capacity` messages; the message that would overflow it is
//!   refused ([`Refusal::MailboxFull`]), as is an oversized payload
//!   ([`Refusal::TooLarge`]), an unknown receiver ([`Refusal::UnknownReceiver`])
//!   or a closed one ([`Refusal::ReceiverClosed`]). Each refusal is returned to
//!   the caller, counted in [`Bus::stats`] and in the sender's count for the
//!   commit; after [`Bus::flip`], [`Bus::refused_last_commit`] gives that count,
//!   which the runtime hands the sender in its next `StepContext::refused`.
//!   Nothing is dropped silently and nothing panics.
//! * **Bounds.** Per receiver and tick: `mailbox_capacity` records of at most
//!   `16 + pad(max_message_bytes)` bytes each; per agent: `max_topics_per_agent`
//!   topics; the subscription changes of one commit are bounded by its effects.
//!
//! Envelope headers are rkyv archives: [`EnvelopeHeader`]'s archived form is,
//! byte for byte, `we_abi::MessageHeader`'s encoding, so host-side tools read
//! inboxes zero-copy, validated, with [`read_envelopes`].
//!
//! The bus reads no clock, spawns no thread and uses no randomness.
//!
//! ```
//! use we_ipc::{Bus, BusConfig, Refusal};
//!
//! let mut bus = Bus::new(3, BusConfig { mailbox_capacity: 1, ..BusConfig::default() });
//! bus.join(2, 9)?;
//! bus.flip(); // joins apply at the end of a commit
//!
//! // One commit, in (sender, emission index) order.
//! bus.commit_send(0, 1, &7u64.to_le_bytes()).unwrap();
//! assert_eq!(
//!     bus.commit_send(2, 1, b"late"),
//!     Err(Refusal::MailboxFull { receiver: 1 })
//! );
//! let out = bus.commit_publish(1, 9, b"hi", |receiver| assert_eq!(receiver, 2));
//! assert_eq!((out.delivered, out.refused), (1, 0));
//! bus.flip();
//!
//! assert_eq!(bus.inbox_len(1), 1);
//! assert_eq!(bus.refused_last_commit(2), 1); // for agent 2's next StepContext
//! let (header, payload) = we_ipc::read_envelopes(bus.inbox(2)).next().unwrap()?;
//! assert_eq!((header.sender.to_native(), header.channel.to_native()), (1, 9));
//! assert_eq!(payload, b"hi");
//! # Ok::<(), we_ipc::Error>(())
//! ```

mod bus;
mod envelope;
mod error;

pub use bus::{Bus, BusConfig, BusStats, CommitPart, CommitTally, PublishOutcome};
pub use envelope::{ArchivedEnvelopeHeader, EnvelopeHeader, read_envelopes};
pub use error::{Error, Refusal, Result};
