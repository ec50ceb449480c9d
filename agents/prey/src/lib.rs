//! A prey of the `predator-prey` demo, rule-based.
//!
//! Each tick it reads the committed grid within [`SIGHT`] cells of itself. If a
//! predator is in sight it moves to the free neighbouring cell farthest from
//! the nearest predator (staying put if that is best); otherwise it wanders:
//! half of the ticks it tries a random direction. The move goes to the world
//! agent as a message; a caught prey sends nothing until the world puts it
//! back on the grid.

use gridworld::{EMPTY, Move, PREDATOR, read_view};
use we_agent::prelude::*;

/// How far a prey sees (rows and columns either side).
pub const SIGHT: i32 = 3;

/// A prey's state: its view buffer and how often it fled.
#[derive(Debug, Default)]
pub struct Prey {
    rows: Vec<u8>,
    fled: u64,
}

impl Prey {
    /// Ticks on which it fled from a predator.
    pub fn fled(&self) -> u64 {
        self.fled
    }
}

/// Manhattan distance.
fn dist((dx, dy): (i32, i32)) -> i32 {
    dx.abs() + dy.abs()
}

impl Agent for Prey {
    fn step(&mut self, ctx: &mut Ctx) {
        let roll = ctx.rand_u64();
        let mut rows = core::mem::take(&mut self.rows);
        let choice = read_view(ctx, SIGHT, &mut rows).map(|view| {
            let world = view.header.world;
            let chosen = match view.nearest(PREDATOR) {
                Some(threat) => {
                    self.fled += 1;
                    let mut best = (dist(threat), Move::Stay);
                    for m in Move::DIRECTIONS {
                        let (dx, dy) = m.delta();
                        if view.at(dx, dy) != EMPTY {
                            continue;
                        }
                        let d = dist((threat.0 - dx, threat.1 - dy));
                        if d > best.0 {
                            best = (d, m);
                        }
                    }
                    best.1
                }
                None if roll & 1 == 0 => {
                    let m = Move::DIRECTIONS[((roll >> 1) % 4) as usize];
                    let (dx, dy) = m.delta();
                    if view.at(dx, dy) == EMPTY {
                        m
                    } else {
                        Move::Stay
                    }
                }
                None => Move::Stay,
            };
            (world, chosen)
        });
        self.rows = rows;
        if let Some((world, m)) = choice
            && m != Move::Stay
        {
            ctx.send_u64(world, m.to_u64());
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id rand_u64 emit log region_read region_len
     send = *
     regions = 1"
);

export_agent!(Prey);
