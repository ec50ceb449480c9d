//! The errors an agent call can end with, and the export status each becomes.
//!
//! An export returns [`we_abi::STATUS_OK`] or a non-zero status that the host
//! records as a fault of the agent. Agent-chosen codes are positive by
//! convention; the SDK's own codes are the negative values in [`status`]. (An
//! ABI v1 host faults a bad `emit` batch itself; a host that answers `emit`
//! with a non-zero code instead gets that code back as the call's status.)

use core::fmt;
use core::num::NonZeroI32;

/// Export statuses the SDK itself returns (negative, far from small host codes).
pub mod status {
    /// The host handed a context or buffer range the SDK could not read.
    pub const BAD_CONTEXT: i32 = -100;
    /// A payload, name or tensor was larger than the ABI can carry.
    pub const TOO_LARGE: i32 = -101;
    /// A tensor's data did not match its dims, or its rank was too high.
    pub const BAD_TENSOR: i32 = -102;
    /// An export was entered while another export of the same agent was running.
    pub const REENTERED: i32 = -103;
    /// The guest could not allocate memory for an effect or the exchange buffer.
    pub const OUT_OF_MEMORY: i32 = -104;
}

/// Why an agent call failed; [`AgentError::status`] is the export status it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// An agent-chosen error code.
    Code(NonZeroI32),
    /// The host answered `emit` with this non-zero code.
    Emit(i32),
    /// The host handed a context or buffer range the SDK could not read.
    BadContext,
    /// Something was larger than the ABI can carry.
    TooLarge {
        /// What was too large (payload, model name, tensor name, ...).
        what: &'static str,
        /// Its length in bytes or elements.
        len: usize,
    },
    /// A tensor's element count did not match its dims, or its rank was too high.
    BadTensor {
        /// What was wrong with it.
        what: &'static str,
    },
    /// An export was entered while another export was running.
    Reentered,
    /// The guest could not allocate `bytes` bytes.
    OutOfMemory {
        /// The size of the failed allocation.
        bytes: usize,
    },
}

impl AgentError {
    /// An agent-chosen error code. Zero means success on the wire, so a zero
    /// code is mapped to 1: an error is never reported as success.
    pub const fn code(code: i32) -> Self {
        const ONE: NonZeroI32 = match NonZeroI32::new(1) {
            Some(one) => one,
            None => NonZeroI32::MAX,
        };
        match NonZeroI32::new(code) {
            Some(c) => AgentError::Code(c),
            None => AgentError::Code(ONE),
        }
    }

    /// The non-zero export status this error becomes.
    pub const fn status(&self) -> i32 {
        match self {
            AgentError::Code(c) => c.get(),
            AgentError::Emit(code) => {
                if *code == 0 {
                    status::BAD_CONTEXT
                } else {
                    *code
                }
            }
            AgentError::BadContext => status::BAD_CONTEXT,
            AgentError::TooLarge { .. } => status::TOO_LARGE,
            AgentError::BadTensor { .. } => status::BAD_TENSOR,
            AgentError::Reentered => status::REENTERED,
            AgentError::OutOfMemory { .. } => status::OUT_OF_MEMORY,
        }
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Code(c) => write!(f, "agent error code {c}"),
            AgentError::Emit(code) => {
                write!(f, "host refused an effect batch (emit returned {code})")
            }
            AgentError::BadContext => write!(f, "unreadable context or buffer range from the host"),
            AgentError::TooLarge { what, len } => write!(f, "{what} of {len} too large for ABI v1"),
            AgentError::BadTensor { what } => write!(f, "bad tensor: {what}"),
            AgentError::Reentered => write!(f, "export entered while another was running"),
            AgentError::OutOfMemory { bytes } => write!(f, "could not allocate {bytes} bytes"),
        }
    }
}

impl std::error::Error for AgentError {}
