//! What the scheduler knows about every task id it has seen: queued or
//! dispatched, its seq, how many dependencies it still waits for, and whether
//! some task waits for it.
//!
//! Ids must be unique within a run and a dependency may name a task dispatched
//! long ago, so the scheduler has to remember dispatched ids. Remembering each one
//! in a hash set costs a hash probe per task and memory that grows with the run.
//! The runtime hands out ids from a counter, so ids are dense: this table keeps a
//! watermark `low` below which every id is dispatched, a slot per id in a window
//! `[low, low + DENSE_SPAN)`, and a hash map only for ids outside the window. For
//! dense ids every operation is an array access and memory stays bounded by the
//! window; sparse ids still work, at hash-map cost.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// How far above the watermark an id may be and still live in the dense window
/// (16 bytes each, so at most 32 MiB).
pub(crate) const DENSE_SPAN: u64 = 1 << 21;

/// A small multiplicative hasher for integer keys.
///
/// std's `RandomState` seeds itself from the OS; this crate uses no randomness,
/// and the keys are task ids, so a fixed, fast hash (the FxHash mix) is enough.
/// Iteration order of maps hashed with it is never observable in the output.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Bounded by the key's size; only integer keys are hashed in this crate.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX_K);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(FX_K);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with the deterministic [`IdHasher`].
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Where an id is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdState {
    /// Never pushed.
    Unseen,
    /// Pushed, not yet dispatched.
    Queued,
    /// Dispatched in an earlier tick or earlier in the current batch.
    Dispatched,
}

/// What is known of one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) state: IdState,
    /// Some task has (or had, until this one was dispatched) a dependency on it.
    pub(crate) awaited: bool,
    /// Dependencies of this task not yet dispatched (queued tasks only).
    pub(crate) pending: u32,
    /// The task's seq (queued tasks only).
    pub(crate) seq: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        state: IdState::Unseen,
        awaited: false,
        pending: 0,
        seq: 0,
    };
    const DISPATCHED: Slot = Slot {
        state: IdState::Dispatched,
        ..Slot::EMPTY
    };

    /// Whether nothing is recorded in this slot.
    #[inline]
    fn is_empty(&self) -> bool {
        self.state == IdState::Unseen && !self.awaited
    }
}

/// Per-id state, see the module doc.
///
/// Invariant: each id has one home, the dense window or the sparse map, chosen
/// when something is first recorded for it; an empty dense slot may therefore
/// still have a record in the sparse map, and lookups consult both.
#[derive(Debug, Default)]
pub(crate) struct IdTable {
    /// Every id below `low` is dispatched.
    low: u64,
    /// Slots of ids `low..low + dense.len()`.
    dense: VecDeque<Slot>,
    /// Slots of ids recorded outside the window.
    sparse: IdMap<u64, Slot>,
}

impl IdTable {
    /// What is known of `id`.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Slot {
        if id < self.low {
            return Slot::DISPATCHED;
        }
        if let Some(slot) = self.dense.get((id - self.low) as usize)
            && !slot.is_empty()
        {
            return *slot;
        }
        if self.sparse.is_empty() {
            Slot::EMPTY
        } else {
            self.sparse.get(&id).copied().unwrap_or(Slot::EMPTY)
        }
    }

    /// The slot of `id`, created empty if needed; `None` for an id below the
    /// watermark (dispatched, nothing left to change).
    #[inline]
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Slot> {
        if id < self.low {
            return None;
        }
        let off = id - self.low;
        let in_dense = matches!(self.dense.get(off as usize), Some(s) if !s.is_empty());
        if !in_dense && !self.sparse.is_empty() && self.sparse.contains_key(&id) {
            return self.sparse.get_mut(&id);
        }
        if in_dense || off < DENSE_SPAN {
            if off as usize >= self.dense.len() {
                // Bounded by DENSE_SPAN.
                self.dense.resize(off as usize + 1, Slot::EMPTY);
            }
            return self.dense.get_mut(off as usize);
        }
        Some(self.sparse.entry(id).or_insert(Slot::EMPTY))
    }

    /// Records `id` as dispatched, advances the watermark and returns the slot
    /// as it was.
    #[inline]
    pub(crate) fn mark_dispatched(&mut self, id: u64) -> Slot {
        if id < self.low {
            return Slot::DISPATCHED;
        }
        let off = id - self.low;
        let before = match self.dense.get_mut(off as usize) {
            Some(slot) if !slot.is_empty() => std::mem::replace(slot, Slot::DISPATCHED),
            _ => {
                // Homed in the sparse map. Move it into the window when it now
                // fits, so that the watermark can pass it.
                let before = self.sparse.remove(&id).unwrap_or(Slot::EMPTY);
                if let Some(slot) = self.get_mut(id) {
                    *slot = Slot::DISPATCHED;
                }
                before
            }
        };
        self.advance();
        before
    }

    /// Number of ids remembered individually (not folded into the watermark).
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.dense.len() + self.sparse.len()
    }

    /// Folds dispatched ids at the bottom of the window into the watermark.
    fn advance(&mut self) {
        // Bounded: each turn removes one window slot.
        while let Some(front) = self.dense.front() {
            let folded = match front.state {
                IdState::Dispatched => true,
                IdState::Unseen if front.is_empty() && !self.sparse.is_empty() => {
                    match self.sparse.get(&self.low) {
                        Some(s) if s.state == IdState::Dispatched => {
                            self.sparse.remove(&self.low);
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if !folded {
                break;
            }
            self.dense.pop_front();
            self.low += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(t: &mut IdTable, id: u64) -> bool {
        if t.get(id).state != IdState::Unseen {
            return false;
        }
        t.get_mut(id).unwrap().state = IdState::Queued;
        true
    }

    #[test]
    fn dense_ids_fold_into_the_watermark() {
        let mut t = IdTable::default();
        for id in 0..100 {
            assert!(queue(&mut t, id));
        }
        assert!(!queue(&mut t, 5));
        // Out of order: 1..100 first, then 0 releases the whole window.
        for id in 1..100 {
            t.mark_dispatched(id);
        }
        assert_eq!(t.get(0).state, IdState::Queued);
        assert_eq!(t.get(50).state, IdState::Dispatched);
        t.mark_dispatched(0);
        assert_eq!(t.remembered(), 0);
        assert_eq!(t.get(99).state, IdState::Dispatched);
        assert_eq!(t.get(100).state, IdState::Unseen);
        assert!(!queue(&mut t, 42));
    }

    #[test]
    fn sparse_ids_are_exact() {
        let mut t = IdTable::default();
        let far = DENSE_SPAN * 3 + 7;
        assert!(queue(&mut t, far));
        assert!(queue(&mut t, 0));
        assert_eq!(t.get(far).state, IdState::Queued);
        assert_eq!(t.get(far - 1).state, IdState::Unseen);
        t.get_mut(far + 1).unwrap().awaited = true;
        assert!(t.get(far + 1).awaited);
        let before = t.mark_dispatched(far);
        assert_eq!(before.state, IdState::Queued);
        assert_eq!(t.get(far).state, IdState::Dispatched);
        assert!(!queue(&mut t, far));
        t.mark_dispatched(0);
        assert_eq!(t.get(0).state, IdState::Dispatched);
        assert_eq!(t.get(1).state, IdState::Unseen);
        assert_eq!(t.get(far).state, IdState::Dispatched);
    }

    #[test]
    fn sparse_id_dispatched_inside_the_window_moves_there() {
        let mut t = IdTable::default();
        let far = DENSE_SPAN + 1;
        assert!(queue(&mut t, far));
        // Fill and release the window below `far` so that `far` comes within it.
        for id in 0..far {
            assert!(queue(&mut t, id));
        }
        for id in 0..far {
            t.mark_dispatched(id);
        }
        assert_eq!(t.get(far).state, IdState::Queued);
        t.mark_dispatched(far);
        assert_eq!(t.remembered(), 0);
        assert_eq!(t.get(far).state, IdState::Dispatched);
    }
}
