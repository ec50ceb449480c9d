//! The grid world of the `predator-prey` demo, shared by its three agents: the
//! layout of the grid region, torus geometry, and the messages they exchange.
//!
//! The world agent owns region [`GRID_REGION`] (shared regions have one writer)
//! and rewrites it every tick; predators and prey read it, decide, and send the
//! world a move ([`Move`]) by message. The world applies the moves it receives,
//! in inbox order (sender id order), so the next version of the grid is a pure
//! function of the previous one and the messages.
//!
//! Region layout (little-endian):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `GRID` (the UI draws any region that starts so) |
//! | 4 | 2 | width |
//! | 6 | 2 | height |
//! | 8 | 4 | offset of the cells ([`HEADER_LEN`]) |
//! | 12 | 4 | offset of the agent table |
//! | 16 | 4 | agents in the table (the run's agent count) |
//! | 20 | 4 | tick of the world's last write |
//! | 24 | 4 | prey alive |
//! | 28 | 4 | prey caught so far |
//! | 32 | 4 | predators |
//! | 36 | 4 | prey |
//! | 40 | 4 | the world agent's id |
//! | 44 | 20 | zero |
//! | 64 | width x height | cells, row-major: [`EMPTY`], [`PREY`] or [`PREDATOR`] |
//! | .. | 4 x agents | per agent: cell `u16` ([`NO_CELL`] if none), kind `u8`, alive `u8` |

use we_agent::Ctx;

/// The region the world owns.
pub const GRID_REGION: u32 = 1;
/// Region magic: the first four bytes.
pub const MAGIC: [u8; 4] = *b"GRID";
/// Bytes before the cells.
pub const HEADER_LEN: usize = 64;
/// Bytes per agent in the agent table.
pub const ENTRY_LEN: usize = 4;
/// Cell value: nobody there.
pub const EMPTY: u8 = 0;
/// Cell value (and agent kind): a prey.
pub const PREY: u8 = 1;
/// Cell value (and agent kind): a predator.
pub const PREDATOR: u8 = 2;
/// Agent table cell of an agent with no place on the grid.
pub const NO_CELL: u16 = u16::MAX;
/// Predator packs; pack `p` coordinates on topic `PACK_TOPIC_BASE + p`.
pub const PACKS: u32 = 8;
/// First pack topic.
pub const PACK_TOPIC_BASE: u32 = 100;

/// A move request, sent to the world as a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// y - 1.
    Up,
    /// y + 1.
    Down,
    /// x - 1.
    Left,
    /// x + 1.
    Right,
    /// Stay put.
    Stay,
}

impl Move {
    /// The four moving directions, in policy action order.
    pub const DIRECTIONS: [Move; 4] = [Move::Up, Move::Down, Move::Left, Move::Right];

    /// The move of policy action `a` (0 up, 1 down, 2 left, 3 right, else stay).
    pub fn from_u64(a: u64) -> Move {
        match a {
            0 => Move::Up,
            1 => Move::Down,
            2 => Move::Left,
            3 => Move::Right,
            _ => Move::Stay,
        }
    }

    /// The wire value.
    pub fn to_u64(self) -> u64 {
        match self {
            Move::Up => 0,
            Move::Down => 1,
            Move::Left => 2,
            Move::Right => 3,
            Move::Stay => 4,
        }
    }

    /// `(dx, dy)`.
    pub fn delta(self) -> (i32, i32) {
        match self {
            Move::Up => (0, -1),
            Move::Down => (0, 1),
            Move::Left => (-1, 0),
            Move::Right => (1, 0),
            Move::Stay => (0, 0),
        }
    }
}

/// Grid geometry: a torus of `width x height` cells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Geometry {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

impl Geometry {
    /// Number of cells.
    pub fn cells(&self) -> usize {
        usize::from(self.width) * usize::from(self.height)
    }

    /// `(x, y)` of a cell index.
    pub fn xy(&self, cell: u16) -> (i32, i32) {
        let w = i32::from(self.width.max(1));
        (i32::from(cell) % w, i32::from(cell) / w)
    }

    /// Cell index of `(x, y)`, wrapped around the torus.
    pub fn cell(&self, x: i32, y: i32) -> u16 {
        let w = i32::from(self.width.max(1));
        let h = i32::from(self.height.max(1));
        (y.rem_euclid(h) * w + x.rem_euclid(w)) as u16
    }

    /// The cell one step from `cell` in direction `m`.
    pub fn step(&self, cell: u16, m: Move) -> u16 {
        let (x, y) = self.xy(cell);
        let (dx, dy) = m.delta();
        self.cell(x + dx, y + dy)
    }

    /// Shortest signed offset from `a` to `b` along an axis of length `n`.
    pub fn wrap_delta(a: i32, b: i32, n: i32) -> i32 {
        let n = n.max(1);
        let d = (b - a).rem_euclid(n);
        if d > n / 2 { d - n } else { d }
    }

    /// Shortest `(dx, dy)` from cell `a` to cell `b` on the torus.
    pub fn offset(&self, a: u16, b: u16) -> (i32, i32) {
        let (ax, ay) = self.xy(a);
        let (bx, by) = self.xy(b);
        (
            Self::wrap_delta(ax, bx, i32::from(self.width)),
            Self::wrap_delta(ay, by, i32::from(self.height)),
        )
    }
}

/// The header of the grid region, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Geometry.
    pub geometry: Geometry,
    /// Offset of the cells.
    pub cells_offset: u32,
    /// Offset of the agent table.
    pub table_offset: u32,
    /// Entries in the agent table.
    pub agents: u32,
    /// Tick of the world's last write.
    pub tick: u32,
    /// Prey alive.
    pub prey_alive: u32,
    /// Prey caught so far.
    pub caught: u32,
    /// Predators.
    pub predators: u32,
    /// Prey.
    pub prey: u32,
    /// The world agent's id.
    pub world: u32,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
}

impl Header {
    /// Decodes a header; `None` unless `bytes` starts with [`MAGIC`].
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        if bytes.get(..4)? != MAGIC {
            return None;
        }
        Some(Header {
            geometry: Geometry {
                width: u16_at(bytes, 4)?,
                height: u16_at(bytes, 6)?,
            },
            cells_offset: u32_at(bytes, 8)?,
            table_offset: u32_at(bytes, 12)?,
            agents: u32_at(bytes, 16)?,
            tick: u32_at(bytes, 20)?,
            prey_alive: u32_at(bytes, 24)?,
            caught: u32_at(bytes, 28)?,
            predators: u32_at(bytes, 32)?,
            prey: u32_at(bytes, 36)?,
            world: u32_at(bytes, 40)?,
        })
    }

    /// Encodes into the first [`HEADER_LEN`] bytes of `out` (which must hold them).
    pub fn encode(&self, out: &mut [u8]) {
        let Some(out) = out.get_mut(..HEADER_LEN) else {
            return;
        };
        out.fill(0);
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.geometry.width.to_le_bytes());
        out[6..8].copy_from_slice(&self.geometry.height.to_le_bytes());
        let words = [
            self.cells_offset,
            self.table_offset,
            self.agents,
            self.tick,
            self.prey_alive,
            self.caught,
            self.predators,
            self.prey,
            self.world,
        ];
        for (k, w) in words.iter().enumerate() {
            out[8 + 4 * k..12 + 4 * k].copy_from_slice(&w.to_le_bytes());
        }
    }

    /// Total region length for `geometry` and `agents` table entries.
    pub fn region_len(geometry: Geometry, agents: u32) -> usize {
        HEADER_LEN + geometry.cells() + ENTRY_LEN * agents as usize
    }

    /// Offset of agent `id`'s table entry.
    pub fn entry_offset(&self, id: u32) -> u32 {
        self.table_offset + ENTRY_LEN as u32 * id
    }
}

/// One agent table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its cell, or [`NO_CELL`].
    pub cell: u16,
    /// [`PREY`], [`PREDATOR`] or 0.
    pub kind: u8,
    /// Whether it is on the grid.
    pub alive: bool,
}

impl Entry {
    /// Decodes 4 bytes.
    pub fn decode(b: [u8; ENTRY_LEN]) -> Entry {
        Entry {
            cell: u16::from_le_bytes([b[0], b[1]]),
            kind: b[2],
            alive: b[3] != 0,
        }
    }

    /// Encodes to 4 bytes.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let c = self.cell.to_le_bytes();
        [c[0], c[1], self.kind, u8::from(self.alive)]
    }
}

/// A pack message: a prey seen at `cell` at `tick`, as a `u64`.
pub fn sighting(cell: u16, tick: u64) -> u64 {
    u64::from(cell) | ((tick & 0xFFFF_FFFF) << 32)
}

/// `(cell, tick)` of a pack message.
pub fn read_sighting(v: u64) -> (u16, u64) {
    ((v & 0xFFFF) as u16, v >> 32)
}

/// What an agent sees of the grid around itself: the rows within `radius` of
/// its own, read from the committed region.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The header.
    pub header: Header,
    /// The agent's own entry.
    pub me: Entry,
    /// `2 * radius + 1` full rows, the agent's row in the middle.
    pub rows: &'a [u8],
    /// The radius.
    pub radius: i32,
}

impl View<'_> {
    /// The cell value at offset `(dx, dy)` from the agent (`|dy| <= radius`).
    pub fn at(&self, dx: i32, dy: i32) -> u8 {
        let g = self.header.geometry;
        let w = i32::from(g.width.max(1));
        let (x, _) = g.xy(self.me.cell);
        let row = dy + self.radius;
        let col = (x + dx).rem_euclid(w);
        let idx = row * w + col;
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.rows.get(i).copied())
            .unwrap_or(EMPTY)
    }

    /// The nearest cell holding `kind` within the view (Manhattan distance,
    /// ties to the first in row-major order), as `(dx, dy)`.
    pub fn nearest(&self, kind: u8) -> Option<(i32, i32)> {
        let mut best: Option<(i32, i32, i32)> = None;
        for dy in -self.radius..=self.radius {
            for dx in -self.radius..=self.radius {
                if (dx, dy) == (0, 0) || self.at(dx, dy) != kind {
                    continue;
                }
                let d = dx.abs() + dy.abs();
                if best.is_none_or(|(b, _, _)| d < b) {
                    best = Some((d, dx, dy));
                }
            }
        }
        best.map(|(_, dx, dy)| (dx, dy))
    }
}

/// Reads the header, the agent's own entry and the rows within `radius` of it
/// from the committed grid region into `buf`. `None` if the region is not
/// there (yet) or the agent is not on the grid.
pub fn read_view<'a>(ctx: &Ctx, radius: i32, buf: &'a mut Vec<u8>) -> Option<View<'a>> {
    let mut head = [0u8; HEADER_LEN];
    ctx.region_read(GRID_REGION, 0, &mut head).ok()?;
    let header = Header::decode(&head)?;
    let mut entry = [0u8; ENTRY_LEN];
    ctx.region_read(GRID_REGION, header.entry_offset(ctx.id()), &mut entry)
        .ok()?;
    let me = Entry::decode(entry);
    if !me.alive || me.cell == NO_CELL {
        return None;
    }
    let g = header.geometry;
    let w = usize::from(g.width);
    let rows = (2 * radius + 1) as usize;
    buf.resize(rows * w, 0);
    let rows_buf = buf.as_mut_slice();
    let (_, y) = g.xy(me.cell);
    for (k, chunk) in rows_buf.chunks_exact_mut(w).enumerate() {
        let row = (y + k as i32 - radius).rem_euclid(i32::from(g.height.max(1)));
        let offset = header.cells_offset + row as u32 * u32::from(g.width);
        ctx.region_read(GRID_REGION, offset, chunk).ok()?;
    }
    Some(View {
        header,
        me,
        rows: rows_buf,
        radius,
    })
}
