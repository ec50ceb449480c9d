//! The parallel part of a commit: the bus deliveries of a tick (sends,
//! publishes, inference-error notices) committed by two threads at once, each
//! for half of the receivers (`we_ipc::CommitPart`).
//!
//! Each thread walks every agent's effects in commit order, exactly as the
//! serial commit does, skipping what it skips (agents that did not run or
//! faulted, effects refused for want of a capability), and commits the copies
//! whose receiver its half owns. An inbox is written by one thread only, in
//! commit order, so the inboxes, refusals and totals are those of the serial
//! commit. The workload encodings of the delivered copies are kept per
//! delivering effect; the serial pass ([`Merge`]) then appends them to the
//! tick's digest bytes at each effect's place, lower half first, which is the
//! serial order (a publish reaches its subscribers in ascending id order).
//!
//! Used only when the fault plan has no message rules (those decide copy by
//! copy, in order) and there is a second core to run on.

use crate::faults::Injector;
use crate::hash::Splice;
use crate::pool::Results;
use we_abi::{EffectHeader, Records, msg_kind, op, tensor};
use we_core::Capabilities;
use we_ipc::{CommitPart, CommitTally, Refusal};

/// Runs of encodings at least this long are spliced into the digest input
/// rather than copied.
pub(crate) const SPLICE_MIN: usize = 2 << 10;

/// What both threads read.
pub(crate) struct Inputs<'a> {
    pub tick: u64,
    pub agents: u32,
    pub results: Results<'a>,
    /// The capabilities of an agent's group.
    pub caps: &'a (dyn Fn(u32) -> Option<&'a Capabilities> + Sync),
    pub injector: &'a Injector,
}

/// What one thread committed.
#[derive(Debug, Default)]
pub(crate) struct Fanned {
    /// Workload encodings of the delivered copies, in commit order.
    digest: Vec<u8>,
    /// For each delivering effect, in commit order: where its encodings end
    /// in `digest`.
    ends: Vec<usize>,
    pub messages: u64,
    pub refused: u64,
    pub dead_letters: u64,
}

/// Commits the deliveries of receivers `part` owns, into `out` (emptied
/// first; its buffers are reused from tick to tick).
pub(crate) fn fan_out(
    inputs: &Inputs<'_>,
    mut part: CommitPart<'_>,
    mut out: Fanned,
) -> (Fanned, CommitTally) {
    out.digest.clear();
    out.ends.clear();
    out.messages = 0;
    out.refused = 0;
    out.dead_letters = 0;
    for i in 0..inputs.agents {
        let Some((result, effects)) = inputs.results.with_effects(i) else {
            continue;
        };
        if !result.ran || result.fault.is_some() || inputs.injector.trap(inputs.tick, i) {
            continue;
        }
        let Some(caps) = (inputs.caps)(i) else {
            continue;
        };
        for record in Records::new(effects) {
            // The serial pass reports malformed effects; nothing after them
            // is committed.
            let Ok((header, payload)) = record else {
                break;
            };
            let Some(h) = EffectHeader::decode(header) else {
                break;
            };
            if crate::run::undeclared(caps, h.op, h.target).is_some() {
                continue;
            }
            match h.op {
                op::SEND => {
                    if let Some(outcome) = part.send(i, h.target, payload) {
                        out.count(outcome, i, h.target, payload);
                    }
                    out.ends.push(out.digest.len());
                }
                op::PUBLISH => {
                    let digest = &mut out.digest;
                    let published = part.publish(i, h.target, payload, |receiver| {
                        crate::run::digest_message(digest, i, receiver, payload);
                    });
                    out.messages += u64::from(published.delivered);
                    out.refused += u64::from(published.refused);
                    out.ends.push(out.digest.len());
                }
                op::INFER => {
                    if let Err(e) = tensor::read_request_header(payload) {
                        let reason = crate::run::malformed_request(&e);
                        if let Some(Ok(())) = part.notice(
                            i,
                            msg_kind::INFER_ERROR,
                            we_abi::SENDER_INFERENCE,
                            h.aux,
                            reason.as_bytes(),
                        ) {
                            out.messages += 1;
                            crate::run::digest_message(
                                &mut out.digest,
                                we_abi::SENDER_INFERENCE,
                                i,
                                reason.as_bytes(),
                            );
                        }
                        out.ends.push(out.digest.len());
                    }
                }
                _ => {}
            }
        }
    }
    (out, part.finish())
}

impl Fanned {
    /// Exchanges the encodings buffer with `other` (a recorded tick's).
    pub(crate) fn swap_digest(&mut self, other: &mut Vec<u8>) {
        std::mem::swap(&mut self.digest, other);
    }

    /// Counts one direct copy as the serial commit's `deliver` does.
    fn count(&mut self, outcome: Result<(), Refusal>, sender: u32, receiver: u32, payload: &[u8]) {
        match outcome {
            Ok(()) => {
                self.messages += 1;
                crate::run::digest_message(&mut self.digest, sender, receiver, payload);
            }
            Err(Refusal::ReceiverClosed { .. }) => {
                self.refused += 1;
                self.dead_letters += 1;
            }
            Err(_) => self.refused += 1,
        }
    }
}

/// Appends the two threads' encodings, effect by effect, where the serial
/// pass reaches each delivering effect.
pub(crate) struct Merge {
    parts: [Fanned; 2],
    next: usize,
    from: [usize; 2],
}

impl Merge {
    pub(crate) fn new(parts: [Fanned; 2]) -> Self {
        Self {
            parts,
            next: 0,
            from: [0; 2],
        }
    }

    /// The two threads' buffers, for the next split commit.
    pub(crate) fn into_parts(self) -> [Fanned; 2] {
        self.parts
    }

    /// The totals of both threads: (messages, refused, dead letters).
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        self.parts.iter().fold((0, 0, 0), |(m, r, d), p| {
            (m + p.messages, r + p.refused, d + p.dead_letters)
        })
    }

    /// Appends the encodings of the next delivering effect to `digest`: a
    /// short run copied, a long one ([`SPLICE_MIN`]) noted in `splices`
    /// where it belongs and left in place (see `recorder::Pieces`).
    pub(crate) fn take(&mut self, digest: &mut Vec<u8>, splices: &mut Vec<Splice>) {
        for (k, (part, from)) in self.parts.iter().zip(self.from.iter_mut()).enumerate() {
            let end = part.ends.get(self.next).copied().unwrap_or(*from);
            if end.saturating_sub(*from) >= SPLICE_MIN {
                splices.push(Splice {
                    at: digest.len(),
                    part: k,
                    start: *from,
                    end,
                });
            } else if let Some(bytes) = part.digest.get(*from..end) {
                digest.extend_from_slice(bytes);
            }
            *from = end;
        }
        self.next += 1;
    }
}
