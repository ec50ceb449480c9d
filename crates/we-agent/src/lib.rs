//! Guest SDK for wasm-engine agents: the [`Agent`] trait, the
//! [`export_agent!`] macro, and typed host calls through [`Ctx`].
//!
//! A complete agent:
//!
//! ```
//! use we_agent::prelude::*;
//!
//! #[derive(Default)]
//! struct Ring;
//!
//! impl Agent for Ring {
//!     fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
//!         let next = (ctx.id() + 1) % ctx.agent_count();
//!         ctx.send_u64(next, msg.u64().wrapping_add(1));
//!     }
//!     fn step(&mut self, ctx: &mut Ctx) {
//!         if ctx.tick() == 0 {
//!             let next = (ctx.id() + 1) % ctx.agent_count();
//!             ctx.send_u64(next, u64::from(ctx.id()));
//!         }
//!     }
//! }
//!
//! export_agent!(Ring);
//! ```
//!
//! Built for `wasm32-unknown-unknown` as a `cdylib`, this module exports
//! `memory` and the six ABI v1 functions and imports only from module `"we"`.
//! Built for any other target, [`export_agent!`] expands to nothing and the same
//! `Ring` runs under [`native::Harness`] in ordinary unit tests.
//!
//! # How a call flows
//! The host writes a context (or the inbox) into the exchange buffer that
//! `we_buffer` hands out, then calls an export. The SDK checks that the range
//! lies inside that buffer, decodes it with `we_abi`, and calls the agent. Every
//! effect the agent makes is appended to one outbox, which is handed to the host
//! with a single `emit` import call when the export returns (or earlier, every
//! [`FLUSH_THRESHOLD`] bytes). The export returns 0, or the non-zero status of
//! the [`AgentError`] the agent passed to [`Ctx::fail`] (or that the SDK met).
//!
//! # Errors
//! Agent methods return nothing; an agent that wants its call to end as a
//! fault calls [`Ctx::fail`]. Fallible calls that the agent may want to handle
//! ([`Ctx::infer`], region reads) return a `Result`.

pub mod bytes;
mod ctx;
mod error;
mod message;
mod runtime;
mod sys;
pub mod tensor;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

pub use ctx::{Ctx, FLUSH_THRESHOLD, RegionError};
pub use error::{AgentError, status};
pub use message::{Inbox, InboxIter, Message};
pub use tensor::TensorRef;
pub use we_abi;

#[cfg(target_arch = "wasm32")]
pub use sys::raw;

/// The common imports of an agent crate.
pub mod prelude {
    pub use crate::bytes::{le_u32, le_u64};
    pub use crate::tensor::{argmax, f32_values, i64_values};
    pub use crate::{Agent, AgentError, Ctx, Inbox, Message, TensorRef, export_agent};
    pub use we_abi::{SENDER_INFERENCE, SENDER_RUNTIME, log_level, msg_kind};
}

/// An agent: the code behind one sandboxed instance.
///
/// Every method has a no-op default, so an agent implements only what it uses.
/// Per tick the runtime calls [`Agent::receive_all`] with the whole inbox (only
/// when it is not empty), then [`Agent::step`]. Nothing an agent does is visible
/// to others before the next tick.
pub trait Agent {
    /// Called once, before tick 0, with the scenario's config bytes for this agent.
    /// Joins made here take effect before tick 0's delivery.
    fn init(&mut self, ctx: &mut Ctx, config: &[u8]) {
        let _ = (ctx, config);
    }

    /// Called for each message of the inbox, in delivery order, by the default
    /// [`Agent::receive_all`].
    fn receive(&mut self, ctx: &mut Ctx, msg: &Message<'_>) {
        let _ = (ctx, msg);
    }

    /// Called once per tick with the whole inbox, before [`Agent::step`]. The
    /// default calls [`Agent::receive`] for each message.
    fn receive_all(&mut self, ctx: &mut Ctx, inbox: Inbox<'_>) {
        for msg in inbox {
            self.receive(ctx, &msg);
        }
    }

    /// Called once per tick, after the inbox.
    fn step(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }

    /// Called once when the run ends.
    fn shutdown(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
}

/// Generates the ABI v1 exports for an [`Agent`] type.
///
/// `export_agent!(MyAgent)` constructs the agent with `Default`;
/// `export_agent!(MyAgent, MyAgent::new(..))` with the given expression, which
/// is evaluated once per agent (the module can also host a pack of agents,
/// through the `we_pack_call` export; see `we_abi::pack`). The
/// exports exist only when compiling for `wasm32`; elsewhere the macro expands
/// to nothing, so the crate can also be tested natively.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        $crate::export_agent!($agent, <$agent as ::core::default::Default>::default());
    };
    ($agent:ty, $make:expr) => {
        // Checked on every target: the type is an `Agent` and `$make` builds one.
        const _: () = $crate::__private::is_agent::<$agent>();
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $agent = || $make;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::{RefCell, Runtime, with};

            $crate::__private::thread_local! {
                static WE_AGENT_RUNTIME: RefCell<Runtime<$agent>> = RefCell::new(Runtime::with_factory(|| $make));
            }

            // SAFETY (every `no_mangle` below): these are the ABI's export names,
            // defined once per module by this single macro call; nothing else in
            // an agent crate defines a symbol of these names.
            #[unsafe(no_mangle)]
            extern "C" fn we_abi_version() -> i32 {
                $crate::__private::ABI_VERSION
            }

            /// A buffer that cannot be had traps the agent: the host must not be
            /// handed address 0 to write into.
            #[unsafe(no_mangle)]
            extern "C" fn we_buffer(capacity: i32) -> i32 {
                let ptr = with(&WE_AGENT_RUNTIME, 0, |rt| rt.we_buffer(capacity));
                if ptr == 0 {
                    ::core::arch::wasm32::unreachable();
                }
                ptr
            }

            #[unsafe(no_mangle)]
            extern "C" fn agent_init(ptr: i32, len: i32) -> i32 {
                with(&WE_AGENT_RUNTIME, $crate::__private::REENTERED, |rt| {
                    rt.agent_init(ptr, len)
                })
            }

            #[unsafe(no_mangle)]
            extern "C" fn agent_receive(ptr: i32, len: i32) -> i32 {
                with(&WE_AGENT_RUNTIME, $crate::__private::REENTERED, |rt| {
                    rt.agent_receive(ptr, len)
                })
            }

            #[unsafe(no_mangle)]
            extern "C" fn agent_step(ptr: i32, len: i32) -> i32 {
                with(&WE_AGENT_RUNTIME, $crate::__private::REENTERED, |rt| {
                    rt.agent_step(ptr, len)
                })
            }

            #[unsafe(no_mangle)]
            extern "C" fn agent_shutdown() -> i32 {
                with(&WE_AGENT_RUNTIME, $crate::__private::REENTERED, |rt| {
                    rt.agent_shutdown()
                })
            }

            #[unsafe(no_mangle)]
            extern "C" fn we_pack_call(ptr: i32, len: i32) -> i32 {
                with(&WE_AGENT_RUNTIME, $crate::__private::REENTERED, |rt| {
                    rt.pack_call(ptr, len)
                })
            }
        };
    };
}

/// Declares what the agent may use: host functions, agents it sends to, topics,
/// shared regions and models. The runtime denies everything not declared: an
/// undeclared host import is not linked (the module is refused at load), and an
/// undeclared send, publish, join, region write or inference request is refused
/// and counted.
///
/// The text is stored in the module's `we.capabilities` custom section, one
/// `key = values` line per capability (`*` for all; ids and `lo-hi` ranges):
///
/// ```
/// we_agent::capabilities!(
///     "host = tick self_id emit log
///      send = *
///      topics = 1 2 10-19
///      regions = 7
///      models = policy"
/// );
/// ```
///
/// Call it once per agent crate. `we inspect <module.wasm>` prints what a
/// module declares. On every target the text is also the constant
/// `WE_CAPABILITIES`, for native tests.
#[macro_export]
macro_rules! capabilities {
    ($text:expr) => {
        /// This agent's capability declaration (see `we_agent::capabilities!`).
        pub const WE_CAPABILITIES: &str = $text;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            // SAFETY: `link_section` only places this byte array in a custom
            // section named `we.capabilities`; nothing reads it through Rust,
            // and one call per crate gives the section a single definition.
            #[used]
            #[unsafe(link_section = "we.capabilities")]
            static WE_CAPABILITIES_SECTION: [u8; WE_CAPABILITIES.len()] =
                $crate::__private::text_bytes::<{ WE_CAPABILITIES.len() }>(WE_CAPABILITIES);
        };
    };
}

/// Items the [`export_agent!`] expansion names; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::runtime::{ABI_VERSION, OK, REENTERED, Runtime, with};

    /// Compiles only for an [`Agent`](crate::Agent) type.
    pub const fn is_agent<A: crate::Agent>() {}

    /// The bytes of `text` as an array of its exact length (for
    /// [`capabilities!`](crate::capabilities)).
    pub const fn text_bytes<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N && i < bytes.len() {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
    pub use core::cell::RefCell;
    pub use std::thread_local;
}
