//! The per-tick structure that yields agents in key order without sorting.
//!
//! A key (see `Keys::key` in the scheduler) is `(rank, round, position)` packed
//! in a `u64`, rank in the top 8 bits. There is one lane per rank (one lane in
//! all under FIFO, where the rank is always 0), and the lowest non-empty lane
//! holds the smallest key. Inside a lane:
//!
//! * `round` holds keys of one round, sorted by position, walked from `at`;
//! * `next` collects the keys that agents picked from `round` get for the
//!   following round: picked in position order, they arrive sorted, and all of
//!   them come after everything left in `round`;
//! * `urgent` is a heap for every other arrival (an agent freed by a dependency
//!   in the middle of the tick, or one whose next head has another priority).
//!
//! The next key is the smaller of the heap top and `round[at]`, so the common
//! case (no dependencies, one priority per agent) costs O(1) per task, and the
//! order is exactly that of one global priority queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Keys of one rank.
#[derive(Debug, Default)]
struct Lane {
    round: Vec<u64>,
    at: usize,
    next: Vec<u64>,
    urgent: BinaryHeap<Reverse<u64>>,
}

impl Lane {
    fn clear(&mut self) {
        self.round.clear();
        self.at = 0;
        self.next.clear();
        self.urgent.clear();
    }

    /// Removes and returns the smallest key, and whether it came from `round`.
    #[inline]
    fn pop(&mut self) -> Option<(u64, bool)> {
        if self.at == self.round.len() && !self.next.is_empty() {
            std::mem::swap(&mut self.round, &mut self.next);
            self.next.clear();
            self.at = 0;
        }
        let listed = self.round.get(self.at).copied();
        match (self.urgent.peek(), listed) {
            (Some(&Reverse(u)), Some(r)) if u < r => {
                self.urgent.pop();
                Some((u, false))
            }
            (_, Some(r)) => {
                self.at += 1;
                Some((r, true))
            }
            (Some(&Reverse(u)), None) => {
                self.urgent.pop();
                Some((u, false))
            }
            (None, None) => None,
        }
    }
}

/// All lanes of a tick, with a bitmap of the ones that may be non-empty.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
    /// Bit `r` set: lane `r` may hold keys.
    occupied: [u64; 4],
}

/// The rank of a key: its top 8 bits.
#[inline]
fn rank(key: u64) -> usize {
    (key >> 56) as usize
}

impl Lanes {
    /// Empties every lane, keeping their buffers (at most 256 lanes).
    pub(crate) fn clear(&mut self) {
        for lane in &mut self.lanes {
            lane.clear();
        }
        self.occupied = [0; 4];
    }

    fn lane(&mut self, key: u64) -> &mut Lane {
        let r = rank(key);
        self.occupied[r / 64] |= 1 << (r % 64);
        if self.lanes.len() <= r {
            self.lanes.resize_with(r + 1, Lane::default);
        }
        &mut self.lanes[r]
    }

    /// Adds a key of round 0 while building the tick; callers add them in
    /// ascending position.
    #[inline]
    pub(crate) fn push_initial(&mut self, key: u64) {
        self.lane(key).round.push(key);
    }

    /// Adds the next key of an agent just picked with `picked` (which came from
    /// a `round` list if `from_round`).
    #[inline]
    pub(crate) fn push_after(&mut self, picked: u64, from_round: bool, key: u64) {
        if from_round && rank(picked) == rank(key) {
            self.lane(key).next.push(key);
        } else {
            self.push_urgent(key);
        }
    }

    /// Adds a key out of band.
    #[inline]
    pub(crate) fn push_urgent(&mut self, key: u64) {
        self.lane(key).urgent.push(Reverse(key));
    }

    /// Removes the smallest key, and whether it came from a `round` list.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(u64, bool)> {
        // Bounded: each turn either returns or clears one occupied bit.
        for word in 0..4 {
            while self.occupied[word] != 0 {
                let r = word * 64 + self.occupied[word].trailing_zeros() as usize;
                if let Some(found) = self.lanes.get_mut(r).and_then(Lane::pop) {
                    return Some(found);
                }
                self.occupied[word] &= !(1 << (r % 64));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_key_order() {
        let mut lanes = Lanes::default();
        let key = |rank: u64, round: u64, pos: u64| (rank << 56) | (round << 20) | pos;
        for pos in [0, 2, 5] {
            lanes.push_initial(key(3, 0, pos));
        }
        lanes.push_initial(key(1, 0, 4));
        lanes.push_urgent(key(3, 0, 1));
        let mut got = Vec::new();
        while let Some((k, from_round)) = lanes.pop() {
            got.push(k);
            // Every agent of rank 3 gives one more task, same rank.
            if rank(k) == 3 && (k >> 20) & 0xF == 0 {
                lanes.push_after(k, from_round, k + (1 << 20));
            }
        }
        let expect = vec![
            key(1, 0, 4),
            key(3, 0, 0),
            key(3, 0, 1),
            key(3, 0, 2),
            key(3, 0, 5),
            key(3, 1, 0),
            key(3, 1, 1),
            key(3, 1, 2),
            key(3, 1, 5),
        ];
        assert_eq!(got, expect);
        lanes.clear();
        assert_eq!(lanes.pop(), None);
    }
}
