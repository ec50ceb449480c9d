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

/// Largest grid put on the wire, in cells.
pub const GRID_CELLS_MAX: usize = 1 << 16;

/// A grid drawn from a shared region: any committed region whose bytes start
/// with the magic `GRID`, then width `u16`, height `u16` and the offset of the
/// cells `u32` (little-endian); one byte per cell, row-major. The
/// predator-prey world writes one (`agents/gridworld`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// The region's name.
    pub region: u32,
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// The cells, one byte each, as lower-case hex.
    pub cells: String,
}

impl Grid {
    /// The grid in `bytes`, if they hold one.
    pub fn of(region: u32, bytes: &[u8]) -> Option<Grid> {
        if bytes.get(..4)? != b"GRID" {
            return None;
        }
        let width = u16::from_le_bytes(bytes.get(4..6)?.try_into().ok()?);
        let height = u16::from_le_bytes(bytes.get(6..8)?.try_into().ok()?);
        let offset = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
        let n = usize::from(width) * usize::from(height);
        if n == 0 || n > GRID_CELLS_MAX {
            return None;
        }
        let cells = bytes.get(offset..offset.checked_add(n)?)?;
        Some(Grid {
            region,
            width,
            height,
            cells: hex(cells),
        })
    }
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
    /// Grids held in committed shared regions ([`Grid`]), by region name.
    #[serde(default)]
    pub grids: Vec<Grid>,
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
            regions,
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
            grids: regions
                .iter()
                .filter_map(|(name, bytes)| Grid::of(*name, bytes))
                .collect(),
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
    fn a_grid_region_goes_on_the_wire() {
        let mut bytes = b"GRID".to_vec();
        bytes.extend_from_slice(&3u16.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&[9; 4]);
        bytes.extend_from_slice(&[0, 1, 2, 0, 2, 1, 7]);
        let snapshot = Snapshot {
            regions: vec![(1, bytes), (2, b"not a grid".to_vec())],
            ..Snapshot::default()
        };
        let frame = Frame::of(&snapshot, 1);
        assert_eq!(
            frame.grids,
            vec![Grid {
                region: 1,
                width: 3,
                height: 2,
                cells: "000102000201".into()
            }]
        );
        assert_eq!(Grid::of(3, b"GRID"), None);
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
