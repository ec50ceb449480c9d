//! Run observer (R11): snapshots of a live run, streamed read-only over a
//! loopback WebSocket for the UI (`we ui`) or any other client.
//!
//! [`WsObserver`] implements [`we_core::StateObserver`]. The runtime hands it a
//! [`we_core::Snapshot`] after every tick; it copies the snapshot into a
//! lock-free triple buffer ([`triple`]) and returns. A server thread takes the
//! newest snapshot from the other end and streams it as JSON ([`wire::Frame`])
//! to at most `max_clients` WebSocket clients on a loopback port.
//!
//! Architecture invariant: **nothing a client does reaches the tick.** The
//! only thing the runtime touches is the writing half of the triple buffer,
//! which never waits; sockets, JSON and clients live on the server thread. A
//! slow, stuck or killed client costs the server thread a dropped connection,
//! never the runtime a wait. Inbound data is read and ignored.
//!
//! The endpoint is off unless asked for (`we run --observe 127.0.0.1:PORT`) and
//! binds only loopback addresses.

pub mod server;
pub mod triple;
pub mod wire;

pub use server::{ObserveConfig, ObserverStats, StatsHandle, WsObserver};
pub use wire::{Fault, Frame, GRID_CELLS_MAX, Grid, TickSample, WIRE_VERSION};

use std::net::SocketAddr;

/// Errors of the observer endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address is not a loopback address; the endpoint serves this machine only.
    #[error("the observer listens on loopback only, not on {addr}")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding the listening socket failed.
    #[error("binding the observer endpoint to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Setting up the listening socket failed.
    #[error("observer socket {op}: {source}")]
    Socket {
        /// The socket call.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server thread could not be started.
    #[error("starting the observer thread: {source}")]
    Thread {
        /// The OS error.
        source: std::io::Error,
    },
    /// An invalid [`ObserveConfig`].
    #[error("invalid observer settings: {what}")]
    Config {
        /// What is wrong.
        what: &'static str,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
