//! Agent ids with generations, and logical ticks.

use crate::{Error, Result};
use std::fmt;

/// A logical tick. Ticks are decoupled from wall time: tick `t + 1` follows tick
/// `t` when the orchestrator has committed `t`, however long that took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tick(pub u64);

impl Tick {
    /// The tick after this one.
    #[inline]
    pub const fn next(self) -> Tick {
        Tick(self.0 + 1)
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A handle to an agent: its index in the run and the generation it was issued
/// for. A restart bumps the generation, so a handle kept from before the restart
/// is refused as stale by [`GenerationTable::check`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId {
    /// Index of the agent in the run (`0..N`); the order of commits.
    pub index: u32,
    /// Generation of the agent this handle was issued for.
    pub generation: u32,
}

impl AgentId {
    /// A handle to generation 0 of agent `index`.
    #[inline]
    pub const fn new(index: u32) -> Self {
        Self {
            index,
            generation: 0,
        }
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@g{}", self.index, self.generation)
    }
}

/// The current generation of every agent in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerationTable {
    generations: Vec<u32>,
}

impl GenerationTable {
    /// A table of `count` agents, all at generation 0.
    pub fn new(count: u32) -> Self {
        Self {
            generations: vec![0; count as usize],
        }
    }

    /// Number of agents.
    pub fn len(&self) -> u32 {
        self.generations.len() as u32
    }

    /// Whether there are no agents.
    pub fn is_empty(&self) -> bool {
        self.generations.is_empty()
    }

    /// The current handle of agent `index`.
    pub fn current(&self, index: u32) -> Result<AgentId> {
        match self.generations.get(index as usize) {
            Some(&generation) => Ok(AgentId { index, generation }),
            None => Err(Error::UnknownAgent {
                index,
                count: self.len(),
            }),
        }
    }

    /// Accepts `id` only if it names the agent's current generation.
    pub fn check(&self, id: AgentId) -> Result<()> {
        let current = self.current(id.index)?.generation;
        if current == id.generation {
            Ok(())
        } else {
            Err(Error::StaleAgent { id, current })
        }
    }

    /// Moves agent `index` to its next generation (a restart) and returns the
    /// new handle. Handles to earlier generations become stale.
    pub fn bump(&mut self, index: u32) -> Result<AgentId> {
        let count = self.len();
        let slot = self
            .generations
            .get_mut(index as usize)
            .ok_or(Error::UnknownAgent { index, count })?;
        *slot = slot.wrapping_add(1);
        Ok(AgentId {
            index,
            generation: *slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handle_is_refused_after_restart() {
        let mut table = GenerationTable::new(3);
        let old = table.current(1).unwrap();
        assert_eq!(table.check(old), Ok(()));
        let new = table.bump(1).unwrap();
        assert_eq!(new.generation, 1);
        assert_eq!(
            table.check(old),
            Err(Error::StaleAgent {
                id: old,
                current: 1
            })
        );
        assert_eq!(table.check(new), Ok(()));
        assert!(matches!(
            table.check(AgentId::new(3)),
            Err(Error::UnknownAgent { index: 3, count: 3 })
        ));
    }
}
