//! The JSON messages the observer streams, one WebSocket text message each.
//!
//! One place for the wire format: the server serializes these types and the UI
//! (we-ui) deserializes the same ones. Every message is a [`Frame`]: the newest
//! snapshot plus the per-tick samples that arrived since the previous message,
//! so a client sees every tick's time and message count even when the server
//! coalesces many ticks into one message. A client's first message carries the
//! recent history instead.

use serde::{Deserialize, Serialize};
use we_core::Snapshot;

/// Version of the wire format; bumped on any incompatible change.
pub const WIRE_VERSION: u32 = 1;

/// The numbers of one tick, small enough to keep many of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickSample {
    /// The tick.
    pub tick: u64,
    /// Wall time of the tick in nanoseconds.
    pub tick_time_ns: u64,
    /// Messages committed in the tick.
    pub messages: u64,
    /// Fuel used in the tick, all agents together.
    pub fuel: u64,
    /// Deepest inbox after the tick.
    pub mailbox_depth_max: u32,
}

impl TickSample {
    /// The sample of `snapshot`'s tick.
    pub fn of(snapshot: &Snapshot) -> TickSample {
        TickSample {
            tick: snapshot.tick,
            tick_time_ns: snapshot.tick_time_ns,
            messages: snapshot.messages_last_tick,
            fuel: snapshot.fuel_last_tick,
            mailbox_depth_max: snapshot.mailbox_depth_max,
        }
    }
}

/// A faulted agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Agent index.
    pub agent: u32,
    /// Short stable kind (`trap`, `fuel_exhausted`, ...), as `FaultKind::name`.
    pub kind: String,
    /// Human text, as `FaultKind`'s `Display`.
    pub detail: String,
}

/// One streamed message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// [`WIRE_VERSION`].
    pub version: u32,
    /// How many snapshots the runtime had published when this one was taken.
    pub published: u64,
    /// Last committed tick.
    pub tick: u64,
    /// Number of agents.
    pub agent_count: u32,
    /// Faulted agents, in agent order.
    pub faulted: Vec<Fault>,
    /// Messages committed in the last tick.
    pub messages_last_tick: u64,
    /// Messages delivered since the start.
    pub messages_total: u64,
    /// Wall time of the last tick in nanoseconds.
    pub tick_time_ns: u64,
    /// Fuel used in the last tick.
    pub fuel_last_tick: u64,
    /// Deepest inbox of the next tick.
    pub mailbox_depth_max: u32,
    /// Trace chain head after the last tick, hex (all zeros without a trace).
    pub chain_head: String,
    /// Newest agent log lines, oldest first.
    pub log_tail: Vec<String>,
    /// Per-tick samples newer than the previous message's (on a client's first
    /// message: the recent history), in tick order.
    pub samples: Vec<TickSample>,
}

impl Frame {
    /// The frame of `snapshot` (without samples).
    pub fn of(snapshot: &Snapshot, published: u64) -> Frame {
        let Snapshot {
            tick,
            agent_count,
            faulted,
            messages_last_tick,
            messages_total,
            tick_time_ns,
            fuel_last_tick,
            mailbox_depth_max,
            chain_head,
            log_tail,
            // Not on the wire yet.
            regions: _,
        } = snapshot;
        Frame {
            version: WIRE_VERSION,
            published,
            tick: *tick,
            agent_count: *agent_count,
            faulted: faulted
                .iter()
                .map(|(id, kind)| Fault {
                    agent: id.index,
                    kind: kind.name().to_string(),
                    detail: kind.to_string(),
                })
                .collect(),
            messages_last_tick: *messages_last_tick,
            messages_total: *messages_total,
            tick_time_ns: *tick_time_ns,
            fuel_last_tick: *fuel_last_tick,
            mailbox_depth_max: *mailbox_depth_max,
            chain_head: hex(chain_head),
            log_tail: log_tail.clone(),
            samples: Vec::new(),
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use we_core::{AgentId, FaultKind};

    #[test]
    fn frame_round_trips_through_json() {
        let snapshot = Snapshot {
            tick: 41,
            agent_count: 8,
            faulted: vec![(
                AgentId::new(3),
                FaultKind::Trap {
                    code: "unreachable".into(),
                },
            )],
            messages_last_tick: 8,
            messages_total: 336,
            tick_time_ns: 12_345,
            fuel_last_tick: 99,
            mailbox_depth_max: 2,
            chain_head: [0xab; 32],
            log_tail: vec!["agent 1: hello".into()],
            regions: Vec::new(),
        };
        let mut frame = Frame::of(&snapshot, 42);
        frame.samples.push(TickSample::of(&snapshot));
        assert_eq!(frame.faulted[0].kind, "trap");
        assert_eq!(frame.faulted[0].detail, "trap: unreachable");
        assert_eq!(frame.chain_head, "ab".repeat(32));
        let text = serde_json::to_string(&frame).unwrap();
        let back: Frame = serde_json::from_str(&text).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
