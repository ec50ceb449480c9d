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
//! A publish of an 8-byte payload that reached every subscriber a thread
//! owns, and enough of them, is only noted (its sender, payload and
//! receivers): its encodings are written as the digest input is hashed
//! (`hash::Run::Copies`), never into memory (100 MB a tick for gossip at
//! 10,000 agents).
//!
//! Used only when the fault plan has no message rules (those decide copy by
//! copy, in order) and there is a second core to run on.

use crate::faults::Injector;
use crate::hash::{Run, Splice};
use crate::pool::Results;
use std::collections::BTreeMap;
use we_abi::{EffectHeader, Records, msg_kind, op, tensor};
use we_core::Capabilities;
use we_ipc::{CommitPart, CommitTally, PublishOutcome, Refusal};

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

/// Bytes of one copy's workload encoding (an 8-byte payload).
const COPY: usize = 16;

/// What one thread committed.
#[derive(Debug, Default)]
pub(crate) struct Fanned {
    /// Workload encodings of the delivered copies, in commit order, but for
    /// those noted in `noted`.
    digest: Vec<u8>,
    /// For each delivering effect, in commit order: where its encodings end
    /// in `digest`.
    ends: Vec<usize>,
    /// Publishes whose copies are noted rather than encoded, in commit order.
    noted: Vec<Noted>,
    /// The receivers noted copies go to: each topic's subscribers owned by
    /// this thread, once per tick.
    receivers: Vec<u32>,
    /// Where a topic's owned subscribers are in `receivers`.
    topics: BTreeMap<u32, (usize, usize)>,
    /// The receivers that refused the publish being committed.
    refusals: Vec<u32>,
    pub messages: u64,
    pub refused: u64,
    pub dead_letters: u64,
}

/// Copies of one 8-byte publish from `sender` to `receivers[start..end]`.
#[derive(Clone, Copy, Debug)]
struct Noted {
    /// Index of its effect among the delivering effects (in `ends`).
    effect: usize,
    sender: u32,
    word: [u8; 8],
    start: usize,
    end: usize,
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
    out.noted.clear();
    out.receivers.clear();
    out.topics.clear();
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
                    out.refusals.clear();
                    let (published, owned) = part.publish(i, h.target, payload, &mut out.refusals);
                    out.messages += u64::from(published.delivered);
                    out.refused += u64::from(published.refused);
                    out.published(i, h.target, payload, published, owned);
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
    /// Exchanges the encodings and receiver buffers with a recorded tick's.
    pub(crate) fn swap_buffers(&mut self, bytes: &mut Vec<u8>, receivers: &mut Vec<u32>) {
        std::mem::swap(&mut self.digest, bytes);
        std::mem::swap(&mut self.receivers, receivers);
    }

    /// Keeps the encodings of a publish's copies that this thread committed
    /// (`owned`: the topic's subscribers it owns; `refusals`: those of them
    /// that refused): noted, when every owned subscriber but the publisher
    /// got an 8-byte payload and the run is long enough to be spliced;
    /// written out otherwise.
    fn published(
        &mut self,
        sender: u32,
        topic: u32,
        payload: &[u8],
        published: PublishOutcome,
        owned: &[u32],
    ) {
        if published.delivered == 0 {
            return;
        }
        let word = <[u8; 8]>::try_from(payload).ok();
        match word {
            Some(word)
                if published.refused == 0 && COPY * published.delivered as usize >= SPLICE_MIN =>
            {
                let (start, len) = *self.topics.entry(topic).or_insert_with(|| {
                    let start = self.receivers.len();
                    self.receivers.extend_from_slice(owned);
                    (start, owned.len())
                });
                // The publisher gets no copy: the list on either side of it.
                let runs = match owned.binary_search(&sender) {
                    Ok(p) => [(start, start + p), (start + p + 1, start + len)],
                    Err(_) => [(start, start + len), (0, 0)],
                };
                for (start, end) in runs {
                    if end > start {
                        self.noted.push(Noted {
                            effect: self.ends.len(),
                            sender,
                            word,
                            start,
                            end,
                        });
                    }
                }
            }
            _ => {
                let mut refusals = self.refusals.iter().peekable();
                for &receiver in owned {
                    if receiver == sender {
                        continue;
                    }
                    if refusals.next_if_eq(&&receiver).is_some() {
                        continue;
                    }
                    crate::run::digest_message(&mut self.digest, sender, receiver, payload);
                }
            }
        }
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
    /// Per part: its next noted publish.
    noted: [usize; 2],
}

impl Merge {
    pub(crate) fn new(parts: [Fanned; 2]) -> Self {
        Self {
            parts,
            next: 0,
            from: [0; 2],
            noted: [0; 2],
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
    /// short run copied, a long one ([`SPLICE_MIN`]) and noted copies
    /// recorded in `splices` where they belong and left in place (see
    /// `recorder::Pieces`).
    pub(crate) fn take(&mut self, digest: &mut Vec<u8>, splices: &mut Vec<Splice>) {
        for (k, (part, (from, noted))) in self
            .parts
            .iter()
            .zip(self.from.iter_mut().zip(self.noted.iter_mut()))
            .enumerate()
        {
            let end = part.ends.get(self.next).copied().unwrap_or(*from);
            if end.saturating_sub(*from) >= SPLICE_MIN {
                splices.push(Splice {
                    at: digest.len(),
                    part: k,
                    run: Run::Bytes { start: *from, end },
                });
            } else if let Some(bytes) = part.digest.get(*from..end) {
                digest.extend_from_slice(bytes);
            }
            *from = end;
            while let Some(n) = part.noted.get(*noted).filter(|n| n.effect == self.next) {
                splices.push(Splice {
                    at: digest.len(),
                    part: k,
                    run: Run::Copies {
                        sender: n.sender,
                        word: n.word,
                        start: n.start,
                        end: n.end,
                    },
                });
                *noted += 1;
            }
        }
        self.next += 1;
    }
}
