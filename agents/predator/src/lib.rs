//! A predator of the `predator-prey` demo, steered by the ONNX policy
//! [`MODEL`] (`fixtures/models/hunter.onnx`) and hunting in packs.
//!
//! Each tick it reads the committed grid within [`SIGHT`] cells of itself,
//! tells its pack (topic `PACK_TOPIC_BASE + group_index % PACKS`) where the
//! nearest prey it sees is, and asks the policy for a direction on a
//! 16-feature observation ([`observe`]): the way to the nearest prey in sight,
//! else the way to the freshest prey a packmate reported, which neighbouring
//! cells hold predators, and a little noise from its PRNG. The runtime batches
//! every predator's request of a tick into one inference call; the answer (the
//! argmax action, post-processed by the runtime) arrives next tick and goes to
//! the world agent as a move. Moving onto a prey catches it.

use gridworld::{Move, PACK_TOPIC_BASE, PACKS, PREDATOR, PREY, read_sighting, read_view, sighting};
use we_agent::prelude::*;

/// The policy model.
pub const MODEL: &str = "hunter";
/// Observation width.
pub const OBS: usize = 16;
/// How far a predator sees.
pub const SIGHT: i32 = 4;
/// Ticks a packmate's report stays worth following.
pub const HINT_TICKS: u64 = 8;

/// Splits an offset into its pull towards up, down, left and right, summing to 1.
pub fn pull((dx, dy): (i32, i32)) -> [f32; 4] {
    let s = (dx.abs() + dy.abs()) as f32;
    if s == 0.0 {
        return [0.0; 4];
    }
    [
        (-dy).max(0) as f32 / s,
        dy.max(0) as f32 / s,
        (-dx).max(0) as f32 / s,
        dx.max(0) as f32 / s,
    ]
}

/// The policy's input: four groups of four features (up, down, left, right):
/// the pull towards the prey in sight, the pull towards the pack's hint (only
/// without prey in sight), 1 for a neighbouring predator, and noise in [0, 1).
pub fn observe(
    prey: Option<(i32, i32)>,
    hint: Option<(i32, i32)>,
    blocked: [bool; 4],
    noise: u64,
) -> [f32; OBS] {
    let mut obs = [0f32; OBS];
    if let Some(p) = prey {
        obs[0..4].copy_from_slice(&pull(p));
    } else if let Some(h) = hint {
        obs[4..8].copy_from_slice(&pull(h));
    }
    for a in 0..4 {
        obs[8 + a] = if blocked[a] { 1.0 } else { 0.0 };
        obs[12 + a] = ((noise >> (16 * a)) & 0xFFFF) as f32 / 65536.0;
    }
    obs
}

/// A predator's state.
#[derive(Debug, Default)]
pub struct Predator {
    rows: Vec<u8>,
    world: Option<u32>,
    topic: u32,
    /// The freshest pack report: `(cell, tick)`.
    hint: Option<(u16, u64)>,
    moves: u64,
}

impl Predator {
    /// The pack topic it joined.
    pub fn topic(&self) -> u32 {
        self.topic
    }

    /// The pack report it follows, if any.
    pub fn hint(&self) -> Option<(u16, u64)> {
        self.hint
    }

    /// Moves sent to the world so far.
    pub fn moves(&self) -> u64 {
        self.moves
    }
}

impl Agent for Predator {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        self.topic = PACK_TOPIC_BASE + ctx.group_index() % PACKS;
        ctx.join(self.topic);
    }

    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        if msg.is_inference_result() {
            if let Some(world) = self.world {
                let m = Move::from_u64(msg.u64());
                ctx.send_u64(world, m.to_u64());
                self.moves += 1;
            }
        } else if msg.is_topic() {
            let (cell, tick) = read_sighting(msg.u64());
            if self.hint.is_none_or(|(_, t)| tick > t) {
                self.hint = Some((cell, tick));
            }
        }
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let tick = ctx.tick();
        let noise = ctx.rand_u64();
        let mut rows = core::mem::take(&mut self.rows);
        let seen = read_view(ctx, SIGHT, &mut rows).map(|view| {
            let g = view.header.geometry;
            let prey = view.nearest(PREY);
            let blocked = Move::DIRECTIONS.map(|m| {
                let (dx, dy) = m.delta();
                view.at(dx, dy) == PREDATOR
            });
            (view.header.world, g, view.me.cell, prey, blocked)
        });
        self.rows = rows;
        let Some((world, g, cell, prey, blocked)) = seen else {
            return;
        };
        self.world = Some(world);
        if let Some((dx, dy)) = prey {
            let (x, y) = g.xy(cell);
            ctx.publish_u64(self.topic, sighting(g.cell(x + dx, y + dy), tick));
        }
        let hint = self
            .hint
            .filter(|&(_, t)| tick.saturating_sub(t) <= HINT_TICKS)
            .map(|(c, _)| g.offset(cell, c));
        let obs = observe(prey, hint, blocked, noise);
        if let Err(e) = ctx.infer(
            MODEL,
            tick as u32,
            &[TensorRef::f32("obs", &[1, OBS as u64], &obs)],
        ) {
            ctx.fail(e);
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id rand_u64 emit log region_read region_len
     send = *
     topics = 100-107
     regions = 1
     models = hunter"
);

export_agent!(Predator);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_points_along_the_offset() {
        assert_eq!(pull((3, -1)), [0.25, 0.0, 0.0, 0.75]);
        assert_eq!(pull((0, 0)), [0.0; 4]);
    }

    #[test]
    fn prey_in_sight_wins_over_the_hint() {
        let obs = observe(Some((0, 2)), Some((5, 0)), [false; 4], 0);
        assert_eq!(&obs[0..8], &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
