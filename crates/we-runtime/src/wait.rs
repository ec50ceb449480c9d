//! How the runtime's threads wait for work: the pool's workers for jobs, the
//! orchestrator for their batches, the recording loop for committed ticks.
//!
//! A tick's serial part (commit, digest, trace) is tens to hundreds of
//! microseconds, and a blocked thread takes about as long again to be woken;
//! polling through it keeps a hand-off between phases at a few microseconds.
//! A wait longer than the poll would have lasted (a serial phase of
//! milliseconds, as a tick of 10,000 inference requests has) makes the next
//! wait block at once, leaving the core to the threads that have work instead
//! of polling it away. How a thread waits never changes what a tick computes.

use crossbeam_channel::{Receiver, RecvError, Select, TryRecvError};
use std::time::{Duration, Instant};

/// How long a thread polls before it blocks. The poll yields, so a thread
/// that has work on this core gets it.
pub(crate) const POLL_BEFORE_BLOCKING: Duration = Duration::from_micros(500);

/// Polls between two checks of the clock (and yields of the core).
const POLLS_PER_YIELD: u32 = 64;

/// One thread's way of waiting: it polls while its waits are short and blocks
/// at once after a long one (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    /// The last wait outlasted [`POLL_BEFORE_BLOCKING`].
    long: bool,
}

/// A value from one of two channels, or that channel's closing.
#[derive(Debug)]
pub(crate) enum Either<A, B> {
    First(Result<A, RecvError>),
    Second(Result<B, RecvError>),
}

impl Waiter {
    /// Receives from `rx`.
    pub(crate) fn recv<T>(&mut self, rx: &Receiver<T>) -> Result<T, RecvError> {
        self.wait(|| ready(rx), || rx.recv())
    }

    /// Receives from whichever of `first` and `second` has a value: `first`
    /// when both have one while polling (a blocked wait takes whichever
    /// wakes it). A closed channel is reported as that channel's error.
    pub(crate) fn recv_either<A, B>(
        &mut self,
        first: &Receiver<A>,
        second: &Receiver<B>,
    ) -> Either<A, B> {
        self.wait(
            || {
                ready(first)
                    .map(Either::First)
                    .or_else(|| ready(second).map(Either::Second))
            },
            || {
                let mut select = Select::new();
                let a = select.recv(first);
                select.recv(second);
                let op = select.select();
                if op.index() == a {
                    Either::First(op.recv(first))
                } else {
                    Either::Second(op.recv(second))
                }
            },
        )
    }

    /// Polls with `poll` (while waits are short) until it has an answer, or
    /// blocks with `block`.
    fn wait<R>(&mut self, mut poll: impl FnMut() -> Option<R>, block: impl FnOnce() -> R) -> R {
        let began = Instant::now();
        let got = if self.long {
            block()
        } else {
            let mut polls = 0u32;
            loop {
                if let Some(got) = poll() {
                    break got;
                }
                polls = polls.wrapping_add(1);
                if polls.is_multiple_of(POLLS_PER_YIELD) {
                    if began.elapsed() >= POLL_BEFORE_BLOCKING {
                        break block();
                    }
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        };
        self.long = began.elapsed() > POLL_BEFORE_BLOCKING;
        got
    }
}

/// What `rx` has now: a value, its closing, or nothing yet.
fn ready<T>(rx: &Receiver<T>) -> Option<Result<T, RecvError>> {
    match rx.try_recv() {
        Ok(v) => Some(Ok(v)),
        Err(TryRecvError::Disconnected) => Some(Err(RecvError)),
        Err(TryRecvError::Empty) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Either, POLL_BEFORE_BLOCKING, Waiter};
    use crossbeam_channel::{bounded, never};
    use std::time::Duration;

    #[test]
    fn a_waiter_blocks_at_once_after_a_long_wait_and_polls_again_after_a_short_one() {
        let (tx, rx) = bounded::<u32>(1);
        let mut waiter = Waiter::default();
        // A value already there: a short wait.
        tx.send(1).unwrap();
        assert_eq!(waiter.recv(&rx).unwrap(), 1);
        assert!(!waiter.long);
        // A value sent well after the poll would have ended.
        let late = std::thread::spawn({
            let tx = tx.clone();
            move || {
                std::thread::sleep(POLL_BEFORE_BLOCKING * 4);
                tx.send(2).unwrap();
            }
        });
        assert_eq!(waiter.recv(&rx).unwrap(), 2);
        assert!(
            waiter.long,
            "a wait of {:?} counts as long",
            POLL_BEFORE_BLOCKING * 4
        );
        late.join().unwrap();
        // Blocking, it still receives; a quick value makes it poll again.
        let soon = std::thread::spawn({
            let tx = tx.clone();
            move || {
                std::thread::sleep(Duration::from_micros(10));
                tx.send(3).unwrap();
            }
        });
        assert_eq!(waiter.recv(&rx).unwrap(), 3);
        soon.join().unwrap();
        tx.send(4).unwrap();
        assert_eq!(waiter.recv(&rx).unwrap(), 4);
        assert!(!waiter.long);
        // A closed channel ends the wait either way.
        drop(tx);
        assert!(waiter.recv(&rx).is_err());
    }

    #[test]
    fn waiting_on_two_channels_takes_the_first_when_both_have_a_value() {
        let (tx_a, rx_a) = bounded::<u32>(4);
        let (tx_b, rx_b) = bounded::<&str>(4);
        let mut waiter = Waiter::default();
        tx_b.send("b").unwrap();
        tx_a.send(1).unwrap();
        assert!(matches!(
            waiter.recv_either(&rx_a, &rx_b),
            Either::First(Ok(1))
        ));
        assert!(matches!(
            waiter.recv_either(&rx_a, &rx_b),
            Either::Second(Ok("b"))
        ));
        // Blocked after a long wait, a value on either channel wakes it.
        for late_on_first in [true, false] {
            let sender = std::thread::spawn({
                let (tx_a, tx_b) = (tx_a.clone(), tx_b.clone());
                move || {
                    std::thread::sleep(POLL_BEFORE_BLOCKING * 4);
                    if late_on_first {
                        tx_a.send(2).unwrap();
                    } else {
                        tx_b.send("late").unwrap();
                    }
                }
            });
            let got = waiter.recv_either(&rx_a, &rx_b);
            sender.join().unwrap();
            assert!(waiter.long);
            match got {
                Either::First(Ok(2)) => assert!(late_on_first),
                Either::Second(Ok("late")) => assert!(!late_on_first),
                other => panic!("unexpected {other:?}"),
            }
        }
        // A channel that never has a value stands for a missing one; the
        // other's closing is reported as its own, polling or blocked.
        let idle = never::<u32>();
        tx_b.send("c").unwrap();
        assert!(matches!(
            waiter.recv_either(&idle, &rx_b),
            Either::Second(Ok("c"))
        ));
        drop(tx_b);
        assert!(matches!(
            waiter.recv_either(&idle, &rx_b),
            Either::Second(Err(_))
        ));
        drop(tx_a);
        assert!(matches!(
            waiter.recv_either(&rx_a, &idle),
            Either::First(Err(_))
        ));
    }
}
