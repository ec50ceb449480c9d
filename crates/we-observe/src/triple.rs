//! A lock-free triple buffer: one writer, one reader, three slots.
//!
//! The writer fills its own back slot, then swaps it with the shared middle slot
//! in one atomic exchange; the reader swaps the middle slot with its own front
//! slot when the middle one is newer. Neither side ever waits for the other: a
//! write is a fill plus one `swap`, whatever the reader is doing (or not doing),
//! which is why the runtime can publish after every tick without ever being held
//! up by an observer. A reader that is slower than the writer simply sees the
//! newest value and skips the ones in between.
//!
//! Each slot is owned by exactly one party at a time: the writer owns the index
//! in `Writer::back`, the reader the index in `Reader::front`, and the third
//! index lives in `Shared::middle`, owned by nobody until an exchange hands it
//! over. The exchanges are `AcqRel`: the release half publishes what the giver
//! wrote (or finished reading), the acquire half makes the taker see it.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Bits of `middle` holding a slot index.
const INDEX: u8 = 0b011;
/// Set in `middle` when the writer has published a slot the reader has not taken.
const FRESH: u8 = 0b100;

struct Shared<T> {
    slots: [UnsafeCell<T>; 3],
    /// Index of the middle slot, with [`FRESH`] when it holds an unread value.
    middle: AtomicU8,
}

// SAFETY: the slots are only reached through `Writer` and `Reader`, which each
// own a distinct slot index (the exchange on `middle` hands indices over and
// never duplicates one), so no slot is ever accessed from two threads at once.
// Values move between threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Shared<T> {}

/// The writing half; see the module documentation.
pub struct Writer<T> {
    shared: Arc<Shared<T>>,
    back: u8,
}

/// The reading half; see the module documentation.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    front: u8,
}

/// A triple buffer whose three slots start as clones of `initial`.
pub fn triple_buffer<T: Clone + Send>(initial: T) -> (Writer<T>, Reader<T>) {
    let shared = Arc::new(Shared {
        slots: [
            UnsafeCell::new(initial.clone()),
            UnsafeCell::new(initial.clone()),
            UnsafeCell::new(initial),
        ],
        middle: AtomicU8::new(1),
    });
    (
        Writer {
            shared: Arc::clone(&shared),
            back: 0,
        },
        Reader { shared, front: 2 },
    )
}

impl<T> Writer<T> {
    /// The slot being written. It holds an older value (whatever was last in it):
    /// overwrite every field, reusing its allocations.
    pub fn back_mut(&mut self) -> &mut T {
        let slot = &self.shared.slots[usize::from(self.back & INDEX)];
        // SAFETY: `back` is owned by this writer alone (see the module doc), and
        // `&mut self` keeps the borrow unique on this side.
        unsafe { &mut *slot.get() }
    }

    /// Hands the back slot to the reader; the writer gets the old middle slot.
    pub fn publish(&mut self) {
        let old = self.shared.middle.swap(self.back | FRESH, Ordering::AcqRel);
        self.back = old & INDEX;
    }
}

impl<T> Reader<T> {
    /// Takes the newest published value if there is one the reader has not seen;
    /// returns whether it did. Never waits.
    pub fn update(&mut self) -> bool {
        if self.shared.middle.load(Ordering::Relaxed) & FRESH == 0 {
            return false;
        }
        let old = self.shared.middle.swap(self.front, Ordering::AcqRel);
        self.front = old & INDEX;
        true
    }

    /// The value taken by the last successful [`Reader::update`] (or the initial
    /// value before any).
    pub fn current(&self) -> &T {
        let slot = &self.shared.slots[usize::from(self.front & INDEX)];
        // SAFETY: `front` is owned by this reader alone; the writer never touches
        // it until the reader gives it back in `update`, which takes `&mut self`
        // and so cannot run while this shared borrow lives.
        unsafe { &*slot.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_sees_nothing_new_until_a_publish() {
        let (mut w, mut r) = triple_buffer(0u32);
        assert!(!r.update());
        *w.back_mut() = 7;
        assert!(!r.update(), "not published yet");
        w.publish();
        assert!(r.update());
        assert_eq!(*r.current(), 7);
        assert!(!r.update(), "nothing newer");
        assert_eq!(*r.current(), 7);
    }

    #[test]
    fn a_slow_reader_gets_the_newest_value() {
        let (mut w, mut r) = triple_buffer(0u32);
        for v in 1..=10 {
            *w.back_mut() = v;
            w.publish();
        }
        assert!(r.update());
        assert_eq!(*r.current(), 10);
    }

    #[test]
    fn concurrent_reads_are_never_torn_and_never_go_back() {
        const N: u64 = 200_000;
        let (mut w, mut r) = triple_buffer([0u64; 32]);
        let writer = std::thread::spawn(move || {
            for v in 1..=N {
                w.back_mut().iter_mut().for_each(|x| *x = v);
                w.publish();
            }
        });
        let mut last = 0;
        let mut seen = 0u64;
        while last < N {
            if r.update() {
                let value = r.current();
                assert!(value.iter().all(|x| *x == value[0]), "torn read {value:?}");
                assert!(value[0] > last, "went back from {last} to {}", value[0]);
                last = value[0];
                seen += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        writer.join().unwrap();
        assert!(seen >= 1);
    }
}
