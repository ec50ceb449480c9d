//! The world of the `predator-prey` demo: the only writer of the grid region
//! ([`gridworld::GRID_REGION`]).
//!
//! In `init` it places every predator and prey on a random free cell (its own
//! deterministic PRNG) and writes the region. Each tick it applies the moves
//! received (sent by the agents in the previous tick), in inbox order: a move
//! into a free cell is made; a predator moving onto a prey catches it (the
//! prey leaves the grid and comes back [`RESPAWN_TICKS`] later on a random
//! free cell); anything else is refused and the mover stays. Then it rewrites
//! the region, committed at the end of the tick for everyone to read in the
//! next one, and every [`REPORT_EVERY`] ticks logs a line of statistics.
//!
//! Config (text, `key=value` separated by spaces): `width`, `height`,
//! `predators`, `prey` (defaults 64, 64, 128, 1024). The predators are the
//! agents right after the world's id, the prey right after them (the order of
//! the scenario's groups).

use gridworld::{
    EMPTY, ENTRY_LEN, Entry, Geometry, HEADER_LEN, Header, Move, NO_CELL, PREDATOR, PREY,
};
use we_agent::prelude::*;

/// Ticks a caught prey stays off the grid.
pub const RESPAWN_TICKS: u64 = 16;
/// Ticks between two statistics log lines.
pub const REPORT_EVERY: u64 = 50;

/// The world's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Grid geometry.
    pub geometry: Geometry,
    /// Number of predators.
    pub predators: u32,
    /// Number of prey.
    pub prey: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            geometry: Geometry {
                width: 64,
                height: 64,
            },
            predators: 128,
            prey: 1024,
        }
    }
}

impl Config {
    /// Parses `key=value` pairs; unknown keys and bad numbers are ignored.
    pub fn parse(text: &[u8]) -> Config {
        let mut c = Config::default();
        let text = core::str::from_utf8(text).unwrap_or("");
        for pair in text.split_whitespace() {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u32>() else { continue };
            match k {
                "width" => c.geometry.width = v.clamp(4, 256) as u16,
                "height" => c.geometry.height = v.clamp(4, 256) as u16,
                "predators" => c.predators = v,
                "prey" => c.prey = v,
                _ => {}
            }
        }
        c
    }
}

/// The world's state: the grid, the agent table, the statistics.
#[derive(Debug, Default)]
pub struct World {
    config: Config,
    header: Header,
    cells: Vec<u8>,
    entries: Vec<Entry>,
    /// Caught prey and the tick they come back, in catch order.
    respawn: Vec<(u32, u64)>,
    region: Vec<u8>,
    caught_last_report: u32,
}

impl World {
    /// The header as last written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The cells, row-major.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// Agent `id`'s entry.
    pub fn entry(&self, id: u32) -> Option<Entry> {
        self.entries.get(id as usize).copied()
    }

    fn kind_of(&self, id: u32, me: u32) -> u8 {
        let first_predator = me + 1;
        let first_prey = first_predator + self.config.predators;
        if (first_predator..first_prey).contains(&id) {
            PREDATOR
        } else if (first_prey..first_prey + self.config.prey).contains(&id) {
            PREY
        } else {
            EMPTY
        }
    }

    /// A random free cell: a few random probes, then a scan from the last one.
    fn free_cell(&self, ctx: &mut Ctx) -> Option<u16> {
        let n = self.cells.len();
        if n == 0 {
            return None;
        }
        let mut probe = 0usize;
        for _ in 0..16 {
            probe = (ctx.rand_u64() % n as u64) as usize;
            if self.cells[probe] == EMPTY {
                return Some(probe as u16);
            }
        }
        (0..n)
            .map(|k| (probe + k) % n)
            .find(|&c| self.cells[c] == EMPTY)
            .map(|c| c as u16)
    }

    fn place(&mut self, id: u32, cell: u16) {
        if let Some(e) = self.entries.get_mut(id as usize) {
            e.cell = cell;
            e.alive = true;
            self.cells[usize::from(cell)] = e.kind;
        }
    }

    /// Applies one agent's move request.
    pub fn apply(&mut self, id: u32, m: Move) {
        let Some(me) = self.entries.get(id as usize).copied() else {
            return;
        };
        if !me.alive || me.cell == NO_CELL || m == Move::Stay {
            return;
        }
        let g = self.header.geometry;
        let to = g.step(me.cell, m);
        let target = self.cells[usize::from(to)];
        let moves = match (me.kind, target) {
            (_, EMPTY) => true,
            (PREDATOR, PREY) => {
                self.catch_at(to);
                true
            }
            _ => false,
        };
        if moves {
            self.cells[usize::from(me.cell)] = EMPTY;
            self.cells[usize::from(to)] = me.kind;
            if let Some(e) = self.entries.get_mut(id as usize) {
                e.cell = to;
            }
        }
    }

    fn catch_at(&mut self, cell: u16) {
        let Some(victim) = self
            .entries
            .iter()
            .position(|e| e.alive && e.kind == PREY && e.cell == cell)
        else {
            return;
        };
        if let Some(e) = self.entries.get_mut(victim) {
            e.alive = false;
            e.cell = NO_CELL;
        }
        self.cells[usize::from(cell)] = EMPTY;
        self.header.caught += 1;
        self.header.prey_alive = self.header.prey_alive.saturating_sub(1);
        let back = u64::from(self.header.tick) + RESPAWN_TICKS;
        self.respawn.push((victim as u32, back));
    }

    fn write_region(&mut self, ctx: &mut Ctx) {
        let len = Header::region_len(self.header.geometry, self.header.agents);
        self.region.resize(len, 0);
        self.header.encode(&mut self.region);
        let cells_end = HEADER_LEN + self.cells.len();
        self.region[HEADER_LEN..cells_end].copy_from_slice(&self.cells);
        for (k, e) in self.entries.iter().enumerate() {
            let at = cells_end + ENTRY_LEN * k;
            self.region[at..at + ENTRY_LEN].copy_from_slice(&e.encode());
        }
        ctx.region_write(gridworld::GRID_REGION, 0, &self.region);
    }
}

impl Agent for World {
    fn init(&mut self, ctx: &mut Ctx, config: &[u8]) {
        self.config = Config::parse(config);
        let g = self.config.geometry;
        let agents = ctx.agent_count();
        self.cells = vec![EMPTY; g.cells()];
        let me = ctx.id();
        self.entries = (0..agents)
            .map(|id| Entry {
                cell: NO_CELL,
                kind: self.kind_of(id, me),
                alive: false,
            })
            .collect();
        self.header = Header {
            geometry: g,
            cells_offset: HEADER_LEN as u32,
            table_offset: (HEADER_LEN + g.cells()) as u32,
            agents,
            tick: 0,
            prey_alive: 0,
            caught: 0,
            predators: self.config.predators,
            prey: self.config.prey,
            world: me,
        };
        for id in 0..agents {
            if self.entries[id as usize].kind == EMPTY {
                continue;
            }
            match self.free_cell(ctx) {
                Some(cell) => {
                    self.place(id, cell);
                    if self.entries[id as usize].kind == PREY {
                        self.header.prey_alive += 1;
                    }
                }
                None => ctx.warn("world: the grid is full"),
            }
        }
        let len = Header::region_len(g, agents);
        ctx.region_create(gridworld::GRID_REGION, len as u32);
        self.write_region(ctx);
    }

    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        self.header.tick = ctx.tick() as u32;
        if msg.is_direct() {
            self.apply(msg.sender(), Move::from_u64(msg.u64()));
        }
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let tick = ctx.tick();
        self.header.tick = tick as u32;
        // Caught prey come back in catch order, each on a random free cell.
        let mut k = 0;
        while k < self.respawn.len() {
            let (id, at) = self.respawn[k];
            if at > tick {
                k += 1;
                continue;
            }
            self.respawn.remove(k);
            if let Some(cell) = self.free_cell(ctx) {
                self.place(id, cell);
                self.header.prey_alive += 1;
            }
        }
        self.write_region(ctx);
        if tick % REPORT_EVERY == REPORT_EVERY - 1 {
            let caught = self.header.caught;
            ctx.info(&format!(
                "tick {tick}: {} of {} prey alive, {} caught ({} in the last {REPORT_EVERY} ticks)",
                self.header.prey_alive,
                self.config.prey,
                caught,
                caught - self.caught_last_report
            ));
            self.caught_last_report = caught;
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id rand_u64 emit log
     regions = 1"
);

export_agent!(World);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::Harness;

    #[test]
    fn places_everyone_and_applies_moves() {
        let mut h = Harness::<World>::new(0, 4, 1);
        h.init(b"width=8 height=8 predators=1 prey=2");
        let w = h.agent();
        assert_eq!(w.header().prey_alive, 2);
        assert_eq!(w.cells().iter().filter(|&&c| c == PREY).count(), 2);
        assert_eq!(w.cells().iter().filter(|&&c| c == PREDATOR).count(), 1);
        let predator = w.entry(1).unwrap();
        let prey = w.entry(2).unwrap();
        assert_eq!(predator.kind, PREDATOR);
        assert!(prey.alive);
    }

    /// The `hunter` model of `fixtures/models/gen.py`, in plain Rust:
    /// `logits[a] = 2 obs[a] + obs[4+a] - 4 obs[8+a] + 0.3 obs[12+a]` (after a
    /// ReLU, a no-op on these non-negative features), answered as its argmax.
    fn hunter(req: &we_testkit::Request) -> we_testkit::Reply {
        let obs = req.inputs[0].f32_values().unwrap_or_default();
        let logits: Vec<f32> = (0..4)
            .map(|a| {
                let f = |g: usize| obs.get(4 * g + a).copied().unwrap_or(0.0).max(0.0);
                2.0 * f(0) + f(1) - 4.0 * f(2) + 0.3 * f(3)
            })
            .collect();
        we_testkit::Reply::Action(argmax(logits).unwrap_or(0) as u64)
    }

    fn small_world(seed: u64) -> we_testkit::Sim {
        let mut sim = we_testkit::Sim::new(seed);
        sim.add_configured(
            World::default(),
            0,
            "width=12 height=12 predators=4 prey=12",
        );
        sim.add_group(4, |_| predator::Predator::default());
        sim.add_group(12, |_| prey::Prey::default());
        sim.set_inference(hunter);
        sim.init().unwrap();
        sim
    }

    #[test]
    fn predators_catch_prey_in_a_simulated_run() {
        let mut sim = small_world(3);
        sim.run(80);
        let header =
            gridworld::Header::decode(sim.region(gridworld::GRID_REGION).unwrap()).unwrap();
        assert_eq!(header.tick, 79);
        assert!(header.caught > 0, "no prey caught in 80 ticks");
        let world = sim.agent::<World>(0).unwrap();
        let on_grid = world.cells().iter().filter(|&&c| c == PREY).count() as u32;
        assert_eq!(on_grid, header.prey_alive);
        // Four predators, one request each per tick, answered next tick.
        assert_eq!(
            sim.last()
                .effects
                .iter()
                .filter(|(_, e)| matches!(e, we_testkit::Effect::Infer { .. }))
                .count(),
            4
        );
        assert!((0..17).all(|id| !sim.is_faulted(id)));
        // Same seed, same run.
        let mut again = small_world(3);
        again.run(80);
        assert_eq!(again.digest(), sim.digest());
    }
}
