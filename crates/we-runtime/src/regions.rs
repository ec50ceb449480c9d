//! Shared regions: single-writer, multi-reader byte buffers flipped at tick
//! boundaries.
//!
//! An agent creates a region by name (`REGION_CREATE`, names below 2^24) and
//! becomes its only writer. Writes (`REGION_WRITE`) are effects like any other:
//! committed in agent order into the region's *pending* buffer. At the end of the
//! commit the pending buffer becomes the *committed* one (a buffer flip, two
//! buffers per region). During a tick every agent reads the committed version:
//! the state at the end of the previous tick, whatever worker it runs on. Reads
//! take no lock: the runtime mutates regions only between ticks, while it owns
//! the shared tick state alone.
//!
//! Handles are generational: a handle is `name | generation << 24`. A region
//! starts at generation 0, so in a run without restarts its handle is its name.
//! When the owner faults, restarts or releases it, the region is dropped and its
//! generation advances: old handles are refused as stale.

use std::collections::BTreeMap;
use we_core::{AgentId, RegionView};

/// Largest region name.
pub const NAME_MAX: u32 = (1 << 24) - 1;

/// Why a region effect was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegionRefusal {
    NotOwner { owner: u32 },
    NoSuchRegion,
    BadName,
    TooLarge { max: u32 },
    TooMany { max: u32 },
    OutOfRange { len: u32 },
}

impl std::fmt::Display for RegionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotOwner { owner } => write!(f, "not the owner (agent {owner} is)"),
            Self::NoSuchRegion => write!(f, "no such region"),
            Self::BadName => write!(f, "region names are below 2^24"),
            Self::TooLarge { max } => write!(f, "larger than the {max}-byte limit"),
            Self::TooMany { max } => write!(f, "more than {max} regions"),
            Self::OutOfRange { len } => write!(f, "outside the region's {len} bytes"),
        }
    }
}

#[derive(Clone, Debug)]
struct Region {
    owner: u32,
    committed: Vec<u8>,
    pending: Vec<u8>,
    /// Whether `pending` differs from `committed` in this commit.
    dirty: bool,
}

/// Every region of a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Regions {
    live: BTreeMap<u32, Region>,
    /// Current generation of every name ever used.
    generations: BTreeMap<u32, u8>,
    bytes_max: u32,
    count_max: u32,
}

impl Regions {
    pub fn new(bytes_max: u32, count_max: u32) -> Self {
        Self {
            bytes_max,
            count_max,
            ..Self::default()
        }
    }

    fn generation(&self, name: u32) -> u8 {
        self.generations.get(&name).copied().unwrap_or(0)
    }

    /// Creates (or resizes) region `name` owned by `agent`.
    pub fn create(&mut self, agent: u32, name: u32, len: u32) -> Result<(), RegionRefusal> {
        if name > NAME_MAX {
            return Err(RegionRefusal::BadName);
        }
        if len > self.bytes_max {
            return Err(RegionRefusal::TooLarge {
                max: self.bytes_max,
            });
        }
        match self.live.get_mut(&name) {
            Some(r) if r.owner != agent => Err(RegionRefusal::NotOwner { owner: r.owner }),
            Some(r) => {
                if !r.dirty {
                    r.pending.clone_from(&r.committed);
                    r.dirty = true;
                }
                r.pending.resize(len as usize, 0);
                Ok(())
            }
            None => {
                if self.live.len() >= self.count_max as usize {
                    return Err(RegionRefusal::TooMany {
                        max: self.count_max,
                    });
                }
                self.live.insert(
                    name,
                    Region {
                        owner: agent,
                        committed: Vec::new(),
                        pending: vec![0; len as usize],
                        dirty: true,
                    },
                );
                Ok(())
            }
        }
    }

    /// Writes `data` at `offset` of region `name` (pending until the flip).
    pub fn write(
        &mut self,
        agent: u32,
        name: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<(), RegionRefusal> {
        let Some(r) = self.live.get_mut(&(name & NAME_MAX)) else {
            return Err(RegionRefusal::NoSuchRegion);
        };
        if r.owner != agent {
            return Err(RegionRefusal::NotOwner { owner: r.owner });
        }
        if !r.dirty {
            r.pending.clone_from(&r.committed);
            r.dirty = true;
        }
        let start = offset as usize;
        let end = start.saturating_add(data.len());
        if end > r.pending.len() {
            return Err(RegionRefusal::OutOfRange {
                len: r.pending.len() as u32,
            });
        }
        r.pending[start..end].copy_from_slice(data);
        Ok(())
    }

    /// Drops every region of `agent` and advances their generations, so old
    /// handles become stale.
    pub fn release_all(&mut self, agent: u32) {
        let names: Vec<u32> = self
            .live
            .iter()
            .filter(|(_, r)| r.owner == agent)
            .map(|(&n, _)| n)
            .collect();
        for name in names {
            self.live.remove(&name);
            let g = self.generations.entry(name).or_insert(0);
            *g = (*g + 1) & 0x7F;
        }
    }

    /// Ends a commit: written regions publish their pending version.
    pub fn flip(&mut self) {
        for r in self.live.values_mut() {
            if r.dirty {
                std::mem::swap(&mut r.committed, &mut r.pending);
                r.dirty = false;
            }
        }
    }

    /// Copies every committed region of at most `max_len` bytes into `out` as
    /// `(name, bytes)`, ascending by name, reusing `out`'s buffers.
    pub fn snapshot_into(&self, max_len: usize, out: &mut Vec<(u32, Vec<u8>)>) {
        let mut k = 0;
        for (&name, r) in &self.live {
            if r.committed.len() > max_len {
                continue;
            }
            if k == out.len() {
                out.push((name, Vec::new()));
            }
            let slot = &mut out[k];
            slot.0 = name;
            slot.1.clear();
            slot.1.extend_from_slice(&r.committed);
            k += 1;
        }
        out.truncate(k);
    }

    /// The committed bytes behind a handle, if it is current.
    fn resolve(&self, handle: u32) -> Option<&[u8]> {
        let name = handle & NAME_MAX;
        let generation = (handle >> 24) as u8;
        if generation != self.generation(name) {
            return None;
        }
        self.live.get(&name).map(|r| r.committed.as_slice())
    }
}

impl RegionView for Regions {
    fn region_len(&self, _reader: AgentId, region: u32) -> i32 {
        match self.resolve(region) {
            Some(bytes) => bytes.len() as i32,
            None => we_abi::REGION_STALE,
        }
    }

    fn region_read(&self, _reader: AgentId, region: u32, offset: u32, dst: &mut [u8]) -> i32 {
        let Some(bytes) = self.resolve(region) else {
            return we_abi::REGION_STALE;
        };
        let start = offset as usize;
        let Some(end) = start.checked_add(dst.len()) else {
            return we_abi::REGION_OUT_OF_RANGE;
        };
        if end > bytes.len() {
            return we_abi::REGION_OUT_OF_RANGE;
        }
        dst.copy_from_slice(&bytes[start..end]);
        dst.len() as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(r: &Regions, handle: u32) -> Result<Vec<u8>, i32> {
        let len = r.region_len(AgentId::new(9), handle);
        if len < 0 {
            return Err(len);
        }
        let mut buf = vec![0; len as usize];
        match r.region_read(AgentId::new(9), handle, 0, &mut buf) {
            n if n < 0 => Err(n),
            _ => Ok(buf),
        }
    }

    #[test]
    fn writes_become_visible_only_after_the_flip() {
        let mut r = Regions::new(1024, 16);
        r.create(1, 7, 4).unwrap();
        assert_eq!(
            read(&r, 7),
            Ok(vec![]),
            "created this tick: nothing committed yet"
        );
        r.flip();
        r.write(1, 7, 0, &[1, 2]).unwrap();
        assert_eq!(read(&r, 7), Ok(vec![0, 0, 0, 0]), "the write is pending");
        r.flip();
        assert_eq!(read(&r, 7), Ok(vec![1, 2, 0, 0]));
        r.write(1, 7, 2, &[3]).unwrap();
        r.flip();
        assert_eq!(
            read(&r, 7),
            Ok(vec![1, 2, 3, 0]),
            "pending starts from committed"
        );
    }

    #[test]
    fn only_the_owner_writes_and_stale_handles_are_refused() {
        let mut r = Regions::new(1024, 16);
        r.create(1, 7, 4).unwrap();
        r.flip();
        assert_eq!(
            r.write(2, 7, 0, &[1]),
            Err(RegionRefusal::NotOwner { owner: 1 })
        );
        assert_eq!(r.create(2, 7, 8), Err(RegionRefusal::NotOwner { owner: 1 }));
        assert_eq!(
            r.write(1, 7, 3, &[1, 2]),
            Err(RegionRefusal::OutOfRange { len: 4 })
        );
        r.release_all(1);
        assert_eq!(read(&r, 7), Err(we_abi::REGION_STALE));
        r.create(2, 7, 2).unwrap();
        r.flip();
        assert_eq!(
            read(&r, 7),
            Err(we_abi::REGION_STALE),
            "generation 0 handle is stale"
        );
        assert_eq!(read(&r, 7 | 1 << 24), Ok(vec![0, 0]));
    }

    #[test]
    fn limits_hold() {
        let mut r = Regions::new(8, 1);
        assert_eq!(r.create(1, 1, 9), Err(RegionRefusal::TooLarge { max: 8 }));
        r.create(1, 1, 8).unwrap();
        assert_eq!(r.create(1, 2, 1), Err(RegionRefusal::TooMany { max: 1 }));
        assert_eq!(r.create(1, NAME_MAX + 1, 1), Err(RegionRefusal::BadName));
    }
}
