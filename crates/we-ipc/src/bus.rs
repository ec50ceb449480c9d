//! The bus: double-buffered per-receiver inbox arenas, topics, backpressure.

use crate::{Error, Refusal, Result};
use we_abi::{MessageHeader, msg_kind, write_record};

/// Bus limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Messages one receiver's inbox may hold for one tick.
    pub mailbox_capacity: u32,
    /// Largest payload in bytes.
    pub max_message_bytes: u32,
    /// Topics one agent may be subscribed to.
    pub max_topics_per_agent: u32,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            mailbox_capacity: 4096,
            max_message_bytes: 64 << 10,
            max_topics_per_agent: 256,
        }
    }
}

/// Outcome of one publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Subscribers that got the message.
    pub delivered: u32,
    /// Subscribers whose mailbox was full.
    pub refused: u32,
}

/// Totals since the bus was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages committed into an inbox.
    pub delivered: u64,
    /// Messages refused (full mailbox, too large, unknown receiver).
    pub refused: u64,
}

/// One receiver's inbox for one tick: records and their count.
#[derive(Clone, Debug, Default)]
struct Inbox {
    bytes: Vec<u8>,
    count: u32,
}

/// A subscription change, applied at [`Bus::flip`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubChange {
    Join { agent: u32, topic: u32 },
    Leave { agent: u32, topic: u32 },
}

/// The message bus of one run.
///
/// Commit calls append to the *next* side in call order; the runtime calls in
/// (agent id, emission index) order, so each inbox ends up ordered by
/// (sender id, emission index). [`Bus::flip`] makes the next side current.
#[derive(Clone, Debug)]
pub struct Bus {
    config: BusConfig,
    current: Vec<Inbox>,
    next: Vec<Inbox>,
    /// Subscribers per topic, sorted ascending, deduplicated.
    topics: std::collections::BTreeMap<u32, Vec<u32>>,
    /// Number of topics each agent is subscribed to (after pending changes).
    topic_count: Vec<u32>,
    pending: Vec<SubChange>,
    /// Refusals per sender in the commit being built.
    refused_next: Vec<u32>,
    /// Refusals per sender in the last finished commit.
    refused_last: Vec<u32>,
    /// Receivers that are refused outright (e.g. faulted agents).
    closed: Vec<bool>,
    stats: BusStats,
}

impl Bus {
    /// A bus for `agent_count` agents.
    pub fn new(agent_count: u32, config: BusConfig) -> Self {
        let n = agent_count as usize;
        Self {
            config,
            current: vec![Inbox::default(); n],
            next: vec![Inbox::default(); n],
            topics: Default::default(),
            topic_count: vec![0; n],
            pending: Vec::new(),
            refused_next: vec![0; n],
            refused_last: vec![0; n],
            closed: vec![false; n],
            stats: BusStats::default(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Number of agents.
    pub fn agent_count(&self) -> u32 {
        self.current.len() as u32
    }

    /// The delivered inbox of `agent` as message records (empty if unknown).
    #[inline]
    pub fn inbox(&self, agent: u32) -> &[u8] {
        self.current
            .get(agent as usize)
            .map_or(&[][..], |i| i.bytes.as_slice())
    }

    /// Number of messages in the delivered inbox of `agent`.
    #[inline]
    pub fn inbox_len(&self, agent: u32) -> u32 {
        self.current.get(agent as usize).map_or(0, |i| i.count)
    }

    /// Messages already committed for `agent` in the commit being built.
    pub fn next_len(&self, agent: u32) -> u32 {
        self.next.get(agent as usize).map_or(0, |i| i.count)
    }

    /// How many of `sender`'s messages were refused in the last finished commit.
    #[inline]
    pub fn refused_last_commit(&self, sender: u32) -> u32 {
        self.refused_last.get(sender as usize).copied().unwrap_or(0)
    }

    /// Totals.
    pub fn stats(&self) -> BusStats {
        self.stats
    }

    /// Refuses every later message to `agent` (a faulted or stopped agent):
    /// messages to it are counted as refused, never silently dropped.
    pub fn close(&mut self, agent: u32) {
        if let Some(c) = self.closed.get_mut(agent as usize) {
            *c = true;
        }
    }

    /// Accepts messages to `agent` again (a restarted agent).
    pub fn reopen(&mut self, agent: u32) {
        if let Some(c) = self.closed.get_mut(agent as usize) {
            *c = false;
        }
    }

    fn refuse(&mut self, sender: u32, why: Refusal) -> Refusal {
        if let Some(r) = self.refused_next.get_mut(sender as usize) {
            *r = r.saturating_add(1);
        }
        self.stats.refused += 1;
        why
    }

    /// Appends one record to `receiver`'s next inbox, or refuses it.
    #[inline]
    fn put(&mut self, header: MessageHeader, receiver: u32, payload: &[u8]) -> Result<(), Refusal> {
        let sender = header.sender;
        if payload.len() > self.config.max_message_bytes as usize {
            return Err(self.refuse(
                sender,
                Refusal::TooLarge {
                    len: payload.len(),
                    max: self.config.max_message_bytes,
                },
            ));
        }
        let cap = self.config.mailbox_capacity;
        let closed = self.closed.get(receiver as usize).copied().unwrap_or(false);
        let Some(inbox) = self.next.get_mut(receiver as usize) else {
            return Err(self.refuse(sender, Refusal::UnknownReceiver { receiver }));
        };
        if closed {
            return Err(self.refuse(sender, Refusal::ReceiverClosed { receiver }));
        }
        if inbox.count >= cap {
            return Err(self.refuse(sender, Refusal::MailboxFull { receiver }));
        }
        write_record(&mut inbox.bytes, header.encode(), payload);
        inbox.count += 1;
        self.stats.delivered += 1;
        Ok(())
    }

    /// Commits a direct message for delivery at the next tick.
    #[inline]
    pub fn commit_send(&mut self, sender: u32, receiver: u32, payload: &[u8]) -> Result<(), Refusal> {
        let header = MessageHeader {
            sender,
            kind: msg_kind::DIRECT,
            flags: 0,
            channel: 0,
            len: payload.len() as u32,
        };
        self.put(header, receiver, payload)
    }

    /// Commits a publish: one message per current subscriber of `topic`, in
    /// ascending id order, the publisher excluded. `on_delivered` is called for
    /// each receiver that got it, in that order.
    pub fn commit_publish(
        &mut self,
        sender: u32,
        topic: u32,
        payload: &[u8],
        mut on_delivered: impl FnMut(u32),
    ) -> PublishOutcome {
        let mut out = PublishOutcome::default();
        // Subscriptions change only at flip, so the list is stable during a
        // commit; it is moved out (no allocation) so `put` can borrow `self`.
        let Some(subs) = self.topics.get_mut(&topic).map(std::mem::take) else {
            return out;
        };
        let header = MessageHeader {
            sender,
            kind: msg_kind::TOPIC,
            flags: 0,
            channel: topic,
            len: payload.len() as u32,
        };
        for &receiver in &subs {
            if receiver == sender {
                continue;
            }
            match self.put(header, receiver, payload) {
                Ok(()) => {
                    out.delivered += 1;
                    on_delivered(receiver);
                }
                Err(_) => out.refused += 1,
            }
        }
        if let Some(slot) = self.topics.get_mut(&topic) {
            *slot = subs;
        }
        out
    }

    /// Commits a message from the runtime or the inference service
    /// (`sender` is `we_abi::SENDER_RUNTIME` or `SENDER_INFERENCE`).
    pub fn commit_notice(
        &mut self,
        receiver: u32,
        kind: u16,
        sender: u32,
        channel: u32,
        payload: &[u8],
    ) -> Result<(), Refusal> {
        let header = MessageHeader {
            sender,
            kind,
            flags: 0,
            channel,
            len: payload.len() as u32,
        };
        self.put(header, receiver, payload)
    }

    /// Subscribes `agent` to `topic` from the next commit on.
    pub fn join(&mut self, agent: u32, topic: u32) -> Result<()> {
        let count = self
            .topic_count
            .get_mut(agent as usize)
            .ok_or(Error::UnknownAgent { agent })?;
        if *count >= self.config.max_topics_per_agent {
            return Err(Error::TooManyTopics {
                agent,
                max: self.config.max_topics_per_agent,
            });
        }
        *count += 1;
        self.pending.push(SubChange::Join { agent, topic });
        Ok(())
    }

    /// Unsubscribes `agent` from `topic` from the next commit on.
    pub fn leave(&mut self, agent: u32, topic: u32) {
        self.pending.push(SubChange::Leave { agent, topic });
    }

    /// Keeps `agent`'s delivered inbox for the next tick (its turn was
    /// deferred by the scheduler): the old messages go first, in their order.
    /// Call before any commit of the tick.
    pub fn carry_over(&mut self, agent: u32) {
        let i = agent as usize;
        let (Some(cur), Some(next)) = (self.current.get(i), self.next.get_mut(i)) else {
            return;
        };
        next.bytes.extend_from_slice(&cur.bytes);
        next.count += cur.count;
    }

    /// Ends a commit: the next inboxes become the delivered ones, pending
    /// subscription changes apply, refusal counts move to "last commit".
    pub fn flip(&mut self) {
        std::mem::swap(&mut self.current, &mut self.next);
        for inbox in &mut self.next {
            inbox.bytes.clear();
            inbox.count = 0;
        }
        std::mem::swap(&mut self.refused_last, &mut self.refused_next);
        self.refused_next.iter_mut().for_each(|r| *r = 0);
        for change in std::mem::take(&mut self.pending) {
            match change {
                SubChange::Join { agent, topic } => {
                    let subs = self.topics.entry(topic).or_default();
                    match subs.binary_search(&agent) {
                        Ok(_) => {
                            // Already subscribed: the reserved count goes back.
                            if let Some(c) = self.topic_count.get_mut(agent as usize) {
                                *c = c.saturating_sub(1);
                            }
                        }
                        Err(at) => subs.insert(at, agent),
                    }
                }
                SubChange::Leave { agent, topic } => {
                    if let Some(subs) = self.topics.get_mut(&topic) {
                        if let Ok(at) = subs.binary_search(&agent) {
                            subs.remove(at);
                            if let Some(c) = self.topic_count.get_mut(agent as usize) {
                                *c = c.saturating_sub(1);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Current subscribers of `topic`, ascending.
    pub fn subscribers(&self, topic: u32) -> &[u32] {
        self.topics.get(&topic).map_or(&[][..], |s| s.as_slice())
    }
}
