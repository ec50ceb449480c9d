//! Recording a committed tick: its workload digest, its effects digest and its
//! trace record.
//!
//! None of the three feeds the next tick: the commit decides every delivery,
//! and the digests and the trace only describe it. So [`Runtime::run`]
//! records in a loop of its own ([`Duty`]), one tick behind the tick loop:
//! tick t is handed over once tick t+1's agents have run, and is recorded
//! while the orchestrator commits t+1, when the workers' cores would
//! otherwise wait. The loop has a thread of its own, or, when every CPU
//! already runs a partition, runs on the last pool worker's thread between
//! its phases, so that no two polling threads share a core
//! (`RunOptions::record_on_worker`).
//! At most one tick is being recorded while another waits to be, so the trace
//! is never more than two ticks behind, and a run that stops (finished, given
//! up, or failed) records every tick it committed before it returns.
//!
//! A tick whose digest input is [`WAIT_MIN`] bytes or more (a million
//! messages; `RunOptions::record_wait_bytes`) is recorded before the next
//! tick starts: hashing it on both
//! cores while they would otherwise wait beats spreading it over the next
//! tick's phases, which keep both cores busy themselves and would share the
//! memory bandwidth (gossip at 10,000 agents, 100 MB a tick, was 15 % slower
//! pipelined).
//!
//! The bytes, the chain and the trace file are the same whichever thread
//! records: every path runs [`Chain::record`]. [`Runtime::step`] called on its
//! own (replay, the UI) records on the orchestrator's thread, so that a
//! verifying sink can stop at the diverging tick and name the agent's effects.
//!
//! [`Runtime::run`]: crate::Runtime::run
//! [`Runtime::step`]: crate::Runtime::step

use crate::hash;
use crate::pool::Pool;
use crate::wait::Waiter;
use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::thread::JoinHandle;
use we_core::{BoxError, TickRecord, TraceSink};

/// Digest input from which the tick loop waits for the tick's recording, by
/// default.
pub(crate) const WAIT_MIN: usize = 16 << 20;

/// Bytes of the previous workload digest at the head of [`Bundle::digest_buf`].
pub(crate) const DIGEST_PREFIX: usize = 32;

/// One committed tick, as the commit left it.
#[derive(Debug, Default)]
pub(crate) struct Bundle {
    /// The tick's record; its digests are filled in by [`Chain::record`].
    pub(crate) record: TickRecord,
    /// [`DIGEST_PREFIX`] bytes for `D_{t-1}`, then t and the encodings of
    /// the tick's messages in commit order (`shared/workloads.md`).
    pub(crate) digest_buf: Vec<u8>,
    /// Encodings of a split commit left in its threads' buffers, which
    /// belong in `digest_buf` at the places noted.
    pub(crate) pieces: Pieces,
    /// What the effects digest hashes: t, then every agent's effects.
    pub(crate) effects_buf: Vec<u8>,
}

/// Large runs of message encodings that a split commit left with its two
/// threads, spliced into the digest input where they belong instead of
/// being copied there (a gossip tick at 10,000 agents has 100 MB of them):
/// encodings the threads wrote, and publishes' copies they only noted (their
/// sender, payload and receivers), whose encodings are written as they are
/// hashed. The buffers travel with the tick's bundle and come back with it.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    /// The two threads' encoding buffers.
    pub(crate) parts: [Vec<u8>; 2],
    /// The two threads' receivers of noted copies.
    pub(crate) receivers: [Vec<u32>; 2],
    /// In order: the offset in `digest_buf` a run goes before, its thread,
    /// and what it is.
    pub(crate) splices: Vec<hash::Splice>,
}

impl Pieces {
    /// Bytes spliced in.
    pub(crate) fn len(&self) -> usize {
        self.splices.iter().map(hash::Splice::len).sum()
    }

    /// The buffers the splices point into.
    pub(crate) fn buffers(&self) -> hash::Parts<'_> {
        hash::Parts {
            bytes: &self.parts,
            receivers: &self.receivers,
        }
    }
}

/// The running digests and the trace.
#[derive(Default)]
pub(crate) struct Chain {
    /// Workload digest after the last recorded tick.
    pub(crate) digest: [u8; 32],
    /// Trace chain head after the last recorded tick (zero without a trace).
    pub(crate) head: [u8; 32],
    pub(crate) sink: Option<Box<dyn TraceSink>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("digest", &self.digest)
            .field("head", &self.head)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

impl Chain {
    /// Digests the bundle's tick and appends its record to the trace. On a
    /// sink error the digest has advanced but the chain head has not.
    pub(crate) fn record(&mut self, b: &mut Bundle, parallel: bool) -> Result<(), BoxError> {
        if let Some(prefix) = b.digest_buf.get_mut(..DIGEST_PREFIX) {
            prefix.copy_from_slice(&self.digest);
        }
        self.digest = hash::hash_spliced(
            &b.digest_buf,
            b.pieces.buffers(),
            &b.pieces.splices,
            parallel,
        );
        b.record.effects_digest = *blake3::hash(&b.effects_buf).as_bytes();
        b.record.workload_digest = self.digest;
        if let Some(sink) = self.sink.as_mut() {
            self.head = sink.record(&b.record)?;
        }
        Ok(())
    }
}

/// The error a sink gave for a tick, as the runtime reports it.
pub(crate) fn sink_error(
    tick: u64,
    e: BoxError,
    actual_effects: impl FnOnce(u32) -> String,
) -> Error {
    match e.downcast::<we_core::Divergence>() {
        Ok(d) => {
            let actual_effects = d.agent.map(actual_effects).unwrap_or_default();
            Error::Diverged {
                divergence: *d,
                actual_effects,
            }
        }
        Err(e) => Error::Trace {
            tick,
            reason: e.to_string(),
        },
    }
}

/// What the recording loop says of one bundle.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Recorded: the workload digest and chain head after it.
    Recorded { digest: [u8; 32], head: [u8; 32] },
    /// The sink failed on this tick; nothing after it is recorded.
    Failed(Error),
    /// Not recorded because an earlier tick failed.
    Skipped,
}

/// A bundle back from the recording loop, its buffers free for reuse.
#[derive(Debug)]
pub(crate) struct Returned {
    pub(crate) bundle: Bundle,
    pub(crate) outcome: Outcome,
}

/// The recording loop: the chain, the bundles it is sent, and where it sends
/// them back. It runs on a thread of its own ([`Recorder::spawn`]) or on a
/// pool worker's thread between that worker's phases ([`Recorder::hosted`]).
pub(crate) struct Duty {
    chain: Chain,
    parallel: bool,
    /// An earlier tick's recording failed: later ones are skipped.
    failed: bool,
    bundles: Receiver<Bundle>,
    to_main: Sender<Returned>,
    chain_back: Sender<Chain>,
}

impl Duty {
    /// The channel the orchestrator hands ticks over on; it closes after the
    /// last one.
    pub(crate) fn bundles(&self) -> &Receiver<Bundle> {
        &self.bundles
    }

    /// Records one tick and hands its bundle back; `false` once nobody takes
    /// bundles back.
    pub(crate) fn record(&mut self, mut bundle: Bundle) -> bool {
        let outcome = if self.failed {
            Outcome::Skipped
        } else {
            match self.chain.record(&mut bundle, self.parallel) {
                Ok(()) => Outcome::Recorded {
                    digest: self.chain.digest,
                    head: self.chain.head,
                },
                Err(e) => {
                    self.failed = true;
                    // The agent's effects are gone by now.
                    Outcome::Failed(sink_error(bundle.record.tick.0, e, |_| String::new()))
                }
            }
        };
        self.to_main.send(Returned { bundle, outcome }).is_ok()
    }

    /// Gives the chain back, every tick handed over recorded.
    pub(crate) fn finish(self) {
        // A recorder that is gone no longer wants it.
        let _ = self.chain_back.send(self.chain);
    }
}

/// The orchestrator's end of the recording loop and the bundles in its hands.
#[derive(Debug)]
pub(crate) struct Recorder {
    to: Option<Sender<Bundle>>,
    back: Receiver<Returned>,
    chain_back: Receiver<Chain>,
    /// The loop's own thread; `None` when a pool worker hosts it.
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
    /// How the orchestrator waits for a bundle back.
    waiter: Waiter,
}

impl Recorder {
    /// A recorder and the loop that serves it, with `chain`, hashing a large
    /// digest input on two threads when `parallel`.
    fn new(chain: Chain, parallel: bool) -> (Self, Duty) {
        let (to, bundles) = bounded::<Bundle>(2);
        let (to_main, back) = bounded::<Returned>(4);
        let (chain_to, chain_back) = bounded::<Chain>(1);
        let duty = Duty {
            chain,
            parallel,
            failed: false,
            bundles,
            to_main,
            chain_back: chain_to,
        };
        let recorder = Self {
            to: Some(to),
            back,
            chain_back,
            thread: None,
            in_flight: 0,
            waiter: Waiter::default(),
        };
        (recorder, duty)
    }

    /// Starts a thread that runs the recording loop; the chain back if no
    /// thread can be had. Both sides wait for bundles as the pool's workers
    /// wait for jobs ([`Waiter`]): polling while the ticks are short, so that
    /// a hand-off needs no wake-up through the kernel, blocking once they are
    /// long.
    pub(crate) fn spawn(
        chain: Chain,
        parallel: bool,
        cpus: Option<crate::affinity::Cpus>,
    ) -> std::result::Result<Self, Chain> {
        let (mut recorder, duty) = Self::new(chain, parallel);
        // The loop goes to the thread once it runs, so that a thread that
        // cannot be had leaves the chain here.
        let (give, take) = bounded::<Duty>(1);
        let spawned = std::thread::Builder::new()
            .name("we-recorder".into())
            .spawn(move || {
                crate::affinity::keep_to(cpus.as_ref());
                let Ok(mut duty) = take.recv() else {
                    return;
                };
                let mut waiter = Waiter::default();
                while let Ok(bundle) = waiter.recv(&duty.bundles) {
                    if !duty.record(bundle) {
                        return;
                    }
                }
                duty.finish();
            });
        let Ok(thread) = spawned else {
            return Err(duty.chain);
        };
        give.send(duty).map_err(|e| e.into_inner().chain)?;
        recorder.thread = Some(thread);
        Ok(recorder)
    }

    /// Gives the recording loop to `pool`'s last worker, which records
    /// between its phases instead of beside them on a thread that would share
    /// its core; the chain back if the pool has no worker thread.
    pub(crate) fn hosted(
        chain: Chain,
        parallel: bool,
        pool: &Pool,
    ) -> std::result::Result<Self, Chain> {
        let (recorder, duty) = Self::new(chain, parallel);
        pool.host(Box::new(duty)).map_err(|duty| duty.chain)?;
        Ok(recorder)
    }

    /// Hands a bundle over. With one already in the recorder's hands, first
    /// waits for it and returns it.
    pub(crate) fn submit(&mut self, bundle: Bundle) -> Result<Option<Returned>> {
        let earlier = if self.in_flight >= 1 {
            Some(self.wait()?)
        } else {
            None
        };
        let to = self
            .to
            .as_ref()
            .ok_or(Error::Internal("the recording loop was stopped"))?;
        to.send(bundle)
            .map_err(|_| Error::Internal("the recording loop stopped"))?;
        self.in_flight += 1;
        Ok(earlier)
    }

    /// Waits for every bundle handed over; the loop goes on.
    pub(crate) fn wait_all(&mut self) -> Result<Vec<Returned>> {
        let mut returned = Vec::with_capacity(self.in_flight);
        while self.in_flight > 0 {
            returned.push(self.wait()?);
        }
        Ok(returned)
    }

    /// A bundle the recorder is done with, if one is back already.
    pub(crate) fn try_take(&mut self) -> Option<Returned> {
        let r = self.back.try_recv().ok()?;
        self.in_flight -= 1;
        Some(r)
    }

    fn wait(&mut self) -> Result<Returned> {
        let r = self
            .waiter
            .recv(&self.back)
            .map_err(|_| Error::Internal("the recording loop stopped"))?;
        self.in_flight -= 1;
        Ok(r)
    }

    /// Waits for every bundle handed over, ends the loop (and its thread) and
    /// gives the chain back with the bundles, in tick order.
    pub(crate) fn finish(mut self) -> Result<(Chain, Vec<Returned>)> {
        let returned = self.wait_all()?;
        self.to = None;
        let chain = self
            .chain_back
            .recv()
            .map_err(|_| Error::Internal("the recording loop stopped"))?;
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| Error::Internal("the recording thread panicked"))?;
        }
        Ok((chain, returned))
    }
}
