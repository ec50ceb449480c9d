//! The bus: double-buffered per-receiver inbox arenas, topics, backpressure.

use crate::{Error, Refusal, Result};
use std::collections::BTreeMap;
use we_abi::{MessageHeader, msg_kind, write_record};

/// Bus limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Messages one receiver's inbox may hold for one tick.
    pub mailbox_capacity: u32,
    /// Largest payload in bytes.
    pub max_message_bytes: u32,
    /// Topics one agent may be subscribed to (counting joins and leaves not yet
    /// applied).
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
    /// Subscribers that did not (full mailbox, closed, or the payload too large
    /// for any of them).
    pub refused: u32,
}

/// Totals since the bus was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages committed into an inbox.
    pub delivered: u64,
    /// Messages refused (full mailbox, too large, unknown or closed receiver).
    /// Refused joins are not messages and are not counted here.
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

/// One side of the double buffer: every receiver's inbox, plus the receivers
/// that hold something, so that clearing costs what was written, not `N`.
#[derive(Clone, Debug)]
struct Side {
    inboxes: Vec<Inbox>,
    /// Receivers with `count > 0` (or carried bytes), each listed once.
    touched: Vec<u32>,
}

impl Side {
    fn new(n: usize) -> Self {
        Self {
            inboxes: vec![Inbox::default(); n],
            touched: Vec::new(),
        }
    }

    /// Empties the side, keeping every arena's capacity.
    fn clear(&mut self) {
        // Bounded by the number of receivers.
        for &r in &self.touched {
            if let Some(inbox) = self.inboxes.get_mut(r as usize) {
                inbox.bytes.clear();
                inbox.count = 0;
            }
        }
        self.touched.clear();
    }
}

/// Per-sender refusal counts of one commit, with the senders that have one.
#[derive(Clone, Debug)]
struct Refusals {
    counts: Vec<u32>,
    senders: Vec<u32>,
}

impl Refusals {
    fn new(n: usize) -> Self {
        Self {
            counts: vec![0; n],
            senders: Vec::new(),
        }
    }

    fn add(&mut self, sender: u32) {
        if let Some(c) = self.counts.get_mut(sender as usize) {
            if *c == 0 {
                self.senders.push(sender);
            }
            *c = c.saturating_add(1);
        }
    }

    fn clear(&mut self) {
        // Bounded by the number of agents.
        for &s in &self.senders {
            if let Some(c) = self.counts.get_mut(s as usize) {
                *c = 0;
            }
        }
        self.senders.clear();
    }
}

/// The message bus of one run; see the crate documentation.
///
/// The header of a message of `kind` from `sender` on `channel` carrying
/// `payload`. Truncating the length is harmless: a payload over `u32::MAX` is
/// refused as too large before it is written.
#[inline]
fn message_header(sender: u32, kind: u16, channel: u32, payload: &[u8]) -> MessageHeader {
    MessageHeader {
        sender,
        kind,
        flags: 0,
        channel,
        len: payload.len() as u32,
    }
}

/// Commit calls append to the *next* side in call order; the runtime calls in
/// (agent id, emission index) order, so each inbox ends up ordered by
/// (sender id, emission index). [`Bus::flip`] makes the next side current.
#[derive(Clone, Debug)]
pub struct Bus {
    config: BusConfig,
    /// Delivered inboxes, read during a tick.
    current: Side,
    /// Inboxes being committed for the next tick.
    next: Side,
    /// Subscribers per topic, sorted ascending, deduplicated; a topic without
    /// subscribers has no entry. Changes only at [`Bus::flip`].
    topics: BTreeMap<u32, Vec<u32>>,
    /// The topics each agent will be subscribed to once `pending` applies,
    /// sorted; the topic limit is checked against it.
    joined: Vec<Vec<u32>>,
    /// Subscription changes of the commit being built, in call order.
    pending: Vec<SubChange>,
    /// Refusals per sender in the commit being built.
    refused_next: Refusals,
    /// Refusals per sender in the last finished commit.
    refused_last: Refusals,
    /// Receivers that are refused outright (e.g. faulted agents).
    closed: Vec<bool>,
    stats: BusStats,
}

impl Bus {
    /// A bus for agents `0..agent_count`.
    pub fn new(agent_count: u32, config: BusConfig) -> Self {
        let n = agent_count as usize;
        Self {
            config,
            current: Side::new(n),
            next: Side::new(n),
            topics: BTreeMap::new(),
            joined: vec![Vec::new(); n],
            pending: Vec::new(),
            refused_next: Refusals::new(n),
            refused_last: Refusals::new(n),
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
        self.current.inboxes.len() as u32
    }

    /// The delivered inbox of `agent` as we-abi message records (empty if
    /// unknown).
    #[inline]
    pub fn inbox(&self, agent: u32) -> &[u8] {
        self.current
            .inboxes
            .get(agent as usize)
            .map_or(&[][..], |i| i.bytes.as_slice())
    }

    /// Number of messages in the delivered inbox of `agent`.
    #[inline]
    pub fn inbox_len(&self, agent: u32) -> u32 {
        self.current
            .inboxes
            .get(agent as usize)
            .map_or(0, |i| i.count)
    }

    /// Messages already committed for `agent` in the commit being built.
    pub fn next_len(&self, agent: u32) -> u32 {
        self.next.inboxes.get(agent as usize).map_or(0, |i| i.count)
    }

    /// How many of `sender`'s effects were refused in the last finished commit
    /// (messages and joins): the value for its next `StepContext::refused`.
    #[inline]
    pub fn refused_last_commit(&self, sender: u32) -> u32 {
        self.refused_last
            .counts
            .get(sender as usize)
            .copied()
            .unwrap_or(0)
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

    /// Appends one record to `receiver`'s next inbox, or refuses it.
    #[inline]
    fn put(&mut self, header: MessageHeader, receiver: u32, payload: &[u8]) -> Result<(), Refusal> {
        let outcome = put_checked(
            &self.config,
            &mut self.next.inboxes,
            &self.closed,
            receiver,
            header,
            payload,
            &mut self.next.touched,
        );
        match outcome {
            Ok(()) => {
                self.stats.delivered += 1;
                Ok(())
            }
            Err(why) => {
                self.refused_next.add(header.sender);
                self.stats.refused += 1;
                Err(why)
            }
        }
    }

    /// Commits a direct message for delivery at the next tick.
    #[inline]
    pub fn commit_send(
        &mut self,
        sender: u32,
        receiver: u32,
        payload: &[u8],
    ) -> Result<(), Refusal> {
        let header = message_header(sender, msg_kind::DIRECT, 0, payload);
        self.put(header, receiver, payload)
    }

    /// Commits a publish: one message per current subscriber of `topic`, in
    /// ascending id order, the publisher excluded. `on_delivered` is called for
    /// each receiver that got it, in that order. Each refused copy counts as
    /// one refusal of the sender.
    pub fn commit_publish(
        &mut self,
        sender: u32,
        topic: u32,
        payload: &[u8],
        on_delivered: impl FnMut(u32),
    ) -> PublishOutcome {
        // Subscriptions change only at flip, so the list is stable during a
        // commit; it is moved out (no allocation) so `put` can borrow `self`.
        let Some(subs) = self.topics.get_mut(&topic).map(std::mem::take) else {
            return PublishOutcome::default();
        };
        let header = message_header(sender, msg_kind::TOPIC, topic, payload);
        let out = publish_to(
            &subs,
            sender,
            |receiver| self.put(header, receiver, payload),
            on_delivered,
        );
        if let Some(slot) = self.topics.get_mut(&topic) {
            *slot = subs;
        }
        out
    }

    /// Commits one copy of a publish to `topic` for `receiver` alone (the
    /// runtime's fault injection expands a publish itself to drop, delay or
    /// duplicate single copies).
    pub fn commit_topic_copy(
        &mut self,
        sender: u32,
        receiver: u32,
        topic: u32,
        payload: &[u8],
    ) -> Result<(), Refusal> {
        let header = message_header(sender, msg_kind::TOPIC, topic, payload);
        self.put(header, receiver, payload)
    }

    /// Commits a message from the runtime or the inference service
    /// (`sender` is `we_abi::SENDER_RUNTIME` or `SENDER_INFERENCE`), of we-abi
    /// message `kind`, with `channel` (the request tag for inference).
    pub fn commit_notice(
        &mut self,
        receiver: u32,
        kind: u16,
        sender: u32,
        channel: u32,
        payload: &[u8],
    ) -> Result<(), Refusal> {
        let header = message_header(sender, kind, channel, payload);
        self.put(header, receiver, payload)
    }

    /// Subscribes `agent` to `topic`. Applied at [`Bus::flip`]: publishes
    /// committed before that flip (the rest of this commit) do not reach it.
    ///
    /// Joining a topic already joined (or joined earlier in this commit) is a
    /// no-op. Refused, and counted as one refusal of `agent` for
    /// [`Bus::refused_last_commit`], when the agent would be in more than
    /// `max_topics_per_agent` topics.
    pub fn join(&mut self, agent: u32, topic: u32) -> Result<()> {
        let max = self.config.max_topics_per_agent;
        let joined = self
            .joined
            .get_mut(agent as usize)
            .ok_or(Error::UnknownAgent { agent })?;
        let Err(at) = joined.binary_search(&topic) else {
            return Ok(());
        };
        if joined.len() >= max as usize {
            self.refused_next.add(agent);
            return Err(Error::TooManyTopics { agent, max });
        }
        joined.insert(at, topic);
        self.pending.push(SubChange::Join { agent, topic });
        Ok(())
    }

    /// Unsubscribes `agent` from `topic`, applied at [`Bus::flip`] like
    /// [`Bus::join`]: the agent still gets publishes of this commit. Leaving a
    /// topic not joined, or naming an unknown agent, does nothing.
    pub fn leave(&mut self, agent: u32, topic: u32) {
        let Some(joined) = self.joined.get_mut(agent as usize) else {
            return;
        };
        if let Ok(at) = joined.binary_search(&topic) {
            joined.remove(at);
            self.pending.push(SubChange::Leave { agent, topic });
        }
    }

    /// Drops the messages committed to `agent` for the next tick (its
    /// generation died); returns how many, for the caller to count.
    pub fn discard_next(&mut self, agent: u32) -> u32 {
        let Some(next) = self.next.inboxes.get_mut(agent as usize) else {
            return 0;
        };
        let n = next.count;
        next.count = 0;
        next.bytes.clear();
        n
    }

    /// Unsubscribes `agent` from every topic, applied at [`Bus::flip`] (a dead
    /// generation's subscriptions are not inherited by a restarted one).
    pub fn leave_all(&mut self, agent: u32) {
        let Some(joined) = self.joined.get_mut(agent as usize) else {
            return;
        };
        for topic in joined.drain(..) {
            self.pending.push(SubChange::Leave { agent, topic });
        }
    }

    /// Keeps `agent`'s delivered inbox for the next tick (its turn was
    /// deferred by the scheduler): the old messages go first, in their order,
    /// and count against the next tick's capacity. Call before any commit of
    /// the tick.
    pub fn carry_over(&mut self, agent: u32) {
        let i = agent as usize;
        let (Some(cur), Some(next)) = (self.current.inboxes.get(i), self.next.inboxes.get_mut(i))
        else {
            return;
        };
        if cur.bytes.is_empty() {
            return;
        }
        if next.count == 0 && next.bytes.is_empty() {
            self.next.touched.push(agent);
        }
        next.bytes.extend_from_slice(&cur.bytes);
        next.count = next.count.saturating_add(cur.count);
    }

    /// Ends a commit: the next inboxes become the delivered ones (the old
    /// delivered ones are cleared, keeping their capacity), pending
    /// subscription changes apply in call order, and refusal counts move to
    /// "last commit".
    pub fn flip(&mut self) {
        std::mem::swap(&mut self.current, &mut self.next);
        self.next.clear();
        std::mem::swap(&mut self.refused_last, &mut self.refused_next);
        self.refused_next.clear();
        // Bounded by the joins and leaves of one commit.
        for change in self.pending.drain(..) {
            match change {
                SubChange::Join { agent, topic } => {
                    let subs = self.topics.entry(topic).or_default();
                    if let Err(at) = subs.binary_search(&agent) {
                        subs.insert(at, agent);
                    }
                }
                SubChange::Leave { agent, topic } => {
                    if let Some(subs) = self.topics.get_mut(&topic)
                        && let Ok(at) = subs.binary_search(&agent)
                    {
                        subs.remove(at);
                        if subs.is_empty() {
                            self.topics.remove(&topic);
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

/// Whether a copy for `receiver` is admitted, by the bus's checks for every
/// message, in this order: size, receiver known (`count` is its inbox's
/// count so far, `None` for an unknown receiver), receiver open (`closed`
/// is indexed by receiver), room. Shared by [`Bus`] and [`CommitPart`].
#[inline]
fn admission(
    config: &BusConfig,
    closed: &[bool],
    receiver: u32,
    payload_len: usize,
    count: Option<u32>,
) -> Result<(), Refusal> {
    let max = config.max_message_bytes;
    if payload_len > max as usize {
        return Err(Refusal::TooLarge {
            len: payload_len,
            max,
        });
    }
    let Some(count) = count else {
        return Err(Refusal::UnknownReceiver { receiver });
    };
    if closed.get(receiver as usize) == Some(&true) {
        return Err(Refusal::ReceiverClosed { receiver });
    }
    if count >= config.mailbox_capacity {
        return Err(Refusal::MailboxFull { receiver });
    }
    Ok(())
}

/// Appends one record to `receiver`'s next inbox (`inboxes` by receiver), or
/// says why not ([`admission`]). `touched` gets the receiver when this is its
/// first record.
#[inline]
fn put_checked(
    config: &BusConfig,
    inboxes: &mut [Inbox],
    closed: &[bool],
    receiver: u32,
    header: MessageHeader,
    payload: &[u8],
    touched: &mut Vec<u32>,
) -> Result<(), Refusal> {
    let inbox = inboxes.get_mut(receiver as usize);
    let count = inbox.as_deref().map(|i| i.count);
    admission(config, closed, receiver, payload.len(), count)?;
    if let Some(inbox) = inbox {
        if inbox.count == 0 && inbox.bytes.is_empty() {
            touched.push(receiver);
        }
        append_record(&mut inbox.bytes, header.encode(), payload);
        inbox.count += 1;
    }
    Ok(())
}

/// Offers one copy of a publish from `sender` to each of `subs` in order, the
/// publisher excluded; `on_delivered` hears of each copy `put` accepted.
/// Bounded by the subscriber list (at most the agent count).
fn publish_to(
    subs: &[u32],
    sender: u32,
    mut put: impl FnMut(u32) -> Result<(), Refusal>,
    mut on_delivered: impl FnMut(u32),
) -> PublishOutcome {
    let mut out = PublishOutcome::default();
    for &receiver in subs {
        if receiver == sender {
            continue;
        }
        match put(receiver) {
            Ok(()) => {
                out.delivered += 1;
                on_delivered(receiver);
            }
            Err(_) => out.refused += 1,
        }
    }
    out
}

/// `we_abi::write_record`, with the common small payloads (at most 8 bytes)
/// appended as one fixed-size piece: one capacity check and one copy.
#[inline]
fn append_record(bytes: &mut Vec<u8>, header: [u8; 16], payload: &[u8]) {
    if payload.is_empty() {
        bytes.extend_from_slice(&header);
    } else if payload.len() <= 8 {
        let mut record = [0u8; 24];
        let (head, tail) = record.split_at_mut(16);
        head.copy_from_slice(&header);
        for (d, s) in tail.iter_mut().zip(payload) {
            *d = *s;
        }
        bytes.extend_from_slice(&record);
    } else {
        write_record(bytes, header, payload);
    }
}

/// One of the two halves of a commit split by receiver ([`Bus::split_commit`]):
/// it commits the copies of sends, publishes and notices whose receiver it
/// owns, and ignores the others.
///
/// Two parts fed the same calls in the same (sender, emission index) order,
/// one per thread, leave every inbox exactly as one [`Bus`] fed those calls
/// would: an inbox is written by one part only, in call order, and the
/// per-sender refusal counts and totals only add up
/// ([`Bus::absorb`]). Subscriptions and closed receivers are only read.
#[derive(Debug)]
pub struct CommitPart<'a> {
    config: BusConfig,
    /// The first receiver this part owns.
    first: u32,
    /// This part also answers (with a refusal) for receivers past the last
    /// agent.
    takes_unknown: bool,
    inboxes: &'a mut [Inbox],
    closed: &'a [bool],
    topics: &'a BTreeMap<u32, Vec<u32>>,
    tally: CommitTally,
    plan: Plan,
    /// Per topic published to: its publishes admitted whole and not yet
    /// added to `plan.counts` ([`Deferred`]).
    deferred: BTreeMap<u32, Deferred<'a>>,
    /// Per owned inbox: the topics it hears (built at the first publish).
    hears: Vec<Hears>,
}

/// The subscribers among `subs` (sorted) of the `len` inboxes from `first`
/// on.
#[inline]
fn owned_of(subs: &[u32], first: u32, len: usize) -> &[u32] {
    let end = first as usize + len;
    let from = subs.partition_point(|&r| r < first);
    let to = subs.partition_point(|&r| (r as usize) < end);
    subs.get(from..to).unwrap_or(&[])
}

/// What each of the `len` inboxes from `first` on hears.
fn hears(topics: &BTreeMap<u32, Vec<u32>>, first: u32, len: usize) -> Vec<Hears> {
    let mut out = vec![Hears::Nothing; len];
    for (&topic, subs) in topics {
        for &r in owned_of(subs, first, len) {
            if let Some(h) = out.get_mut((r - first) as usize) {
                *h = match *h {
                    Hears::Nothing => Hears::One(topic),
                    _ => Hears::Several,
                };
            }
        }
    }
    out
}

/// The topics an inbox hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hears {
    Nothing,
    One(u32),
    Several,
}

/// A topic's publishes whose copies every owned subscriber admitted, counted
/// once each instead of once per copy. Kept only for a topic each of whose
/// owned subscribers hears it alone and is open, so that its counts move
/// only with its own publishes and with direct copies, which bring them up
/// to date first ([`CommitPart::admit`]). A publish is admitted whole while
/// fewer of them are pending than the room the fullest owned inbox had when
/// the counts were last brought up to date; past that the counts are
/// brought up to date and the copies admitted one by one.
#[derive(Debug)]
struct Deferred<'a> {
    owned: &'a [u32],
    /// Every owned subscriber hears this topic alone and is open.
    eligible: bool,
    /// Publishes admitted whole, not yet in the counts.
    pending: u32,
    /// The owned inboxes (local) of their publishers, which got no copy of
    /// their own: one entry per such publish.
    own: Vec<u32>,
    /// Copies the fullest owned inbox still had room for when the counts
    /// were last brought up to date.
    room: u32,
}

impl Deferred<'_> {
    /// Adds the pending publishes to `counts` (by owned inbox, the part's
    /// first receiver at 0) and measures the room left.
    fn settle(&mut self, counts: &mut [u32], first: u32, capacity: u32) {
        let mut room = u32::MAX;
        for &r in self.owned {
            if let Some(c) = counts.get_mut((r - first) as usize) {
                *c += self.pending;
            }
        }
        for &local in &self.own {
            if let Some(c) = counts.get_mut(local as usize) {
                *c -= 1;
            }
        }
        for &r in self.owned {
            let c = counts
                .get((r - first) as usize)
                .copied()
                .unwrap_or(capacity);
            room = room.min(capacity.saturating_sub(c));
        }
        self.pending = 0;
        self.own.clear();
        self.room = room;
    }
}

/// A [`CommitPart`]'s copies, decided call by call but written at
/// [`CommitPart::finish`], receiver by receiver.
///
/// A large publish reaches hundreds of inboxes spread over memory; writing
/// each copy where it lands made a commit wait for a cache miss per copy.
/// Instead each call's record is kept once, each copy is only admitted or
/// refused (by the same rules, against the inbox's count plus the copies
/// admitted before it), and `finish` then fills each inbox in one sequential
/// pass over the calls that reach it, in call order: the same bytes, counts
/// and refusals as writing at once.
///
/// A topic's records are kept back to back ([`TopicPlan`]), so that an inbox
/// that hears one topic and nothing else, and admitted every copy offered
/// to it, is filled with at most two copies of that block (before and after
/// its own publishes), not one per message.
#[derive(Debug, Default)]
struct Plan {
    /// Per owned inbox: its count as writing at once would have left it so
    /// far (its count at the split plus the copies admitted since).
    counts: Vec<u32>,
    /// The record (header, payload, padding) of every direct call, once.
    records: Vec<u8>,
    /// Per call, in call order: its record's range (in `records`, or in its
    /// topic's `bytes`) and sender.
    calls: Vec<PlanCall>,
    /// Direct calls (sends, notices) as (owned inbox, call), in call order.
    direct: Vec<(u32, u32)>,
    /// Publish calls by topic.
    by_topic: BTreeMap<u32, TopicPlan>,
}

#[derive(Clone, Copy, Debug)]
struct PlanCall {
    start: u32,
    end: u32,
    sender: u32,
    /// Whether its payload is over the size limit (refused everywhere, and
    /// taking no room).
    too_large: bool,
}

/// The publish calls to one topic, in call order, with their records back to
/// back.
#[derive(Debug)]
struct TopicPlan {
    /// Call indices.
    calls: Vec<u32>,
    /// Per call: its sender.
    senders: Vec<u32>,
    /// Per call: where its record ends in `bytes` (a call over the size
    /// limit has an empty record).
    ends: Vec<u32>,
    bytes: Vec<u8>,
    /// Calls over the size limit.
    too_large: u32,
    /// Whether the senders never decrease (the runtime's order), so that a
    /// sender's calls are one run.
    sorted: bool,
}

impl Default for TopicPlan {
    fn default() -> Self {
        Self {
            calls: Vec::new(),
            senders: Vec::new(),
            ends: Vec::new(),
            bytes: Vec::new(),
            too_large: 0,
            sorted: true,
        }
    }
}

impl TopicPlan {
    /// Where call `k`'s record starts in `bytes`.
    fn start(&self, k: usize) -> usize {
        match k.checked_sub(1) {
            Some(prev) => self.ends.get(prev).map_or(0, |&e| e as usize),
            None => 0,
        }
    }

    /// The inbox bytes and count of a receiver that hears this topic alone
    /// and admitted `admitted` copies, when that was every copy offered to
    /// it: the block without `receiver`'s own records, as (before, after).
    /// `None` when some copy was refused or the calls are out of order.
    fn whole_for(&self, receiver: u32, admitted: u32) -> Option<(&[u8], &[u8])> {
        if !self.sorted {
            return None;
        }
        let lo = self.senders.partition_point(|&s| s < receiver);
        let hi = self.senders.partition_point(|&s| s <= receiver);
        // Own calls over the size limit are neither offered nor counted
        // twice.
        let own_too_large = (lo..hi)
            .filter(|&k| self.start(k) == self.ends.get(k).map_or(0, |&e| e as usize))
            .count();
        let offered = self.calls.len() - (hi - lo) - (self.too_large as usize - own_too_large);
        if offered != admitted as usize {
            return None;
        }
        let (before, rest) = self.bytes.split_at_checked(self.start(lo))?;
        let after = rest.get(self.start(hi) - self.start(lo)..)?;
        Some((before, after))
    }
}

impl Plan {
    /// Records a direct call's message once; returns its index.
    fn call(&mut self, header: MessageHeader, payload: &[u8]) -> u32 {
        let start = self.records.len() as u32;
        append_record(&mut self.records, header.encode(), payload);
        self.calls.push(PlanCall {
            start,
            end: self.records.len() as u32,
            sender: header.sender,
            too_large: false,
        });
        (self.calls.len() - 1) as u32
    }

    /// Records a publish call's message once, in its topic's block.
    fn topic_call(&mut self, topic: u32, header: MessageHeader, payload: &[u8], too_large: bool) {
        let index = self.calls.len() as u32;
        let tp = self.by_topic.entry(topic).or_default();
        let start = tp.bytes.len() as u32;
        if too_large {
            tp.too_large += 1;
        } else {
            append_record(&mut tp.bytes, header.encode(), payload);
        }
        if tp.senders.last().is_some_and(|&s| s > header.sender) {
            tp.sorted = false;
        }
        tp.calls.push(index);
        tp.senders.push(header.sender);
        tp.ends.push(tp.bytes.len() as u32);
        self.calls.push(PlanCall {
            start,
            end: tp.bytes.len() as u32,
            sender: header.sender,
            too_large,
        });
    }
}

/// What a [`CommitPart`] did, for [`Bus::absorb`].
#[derive(Debug, Default)]
pub struct CommitTally {
    touched: Vec<u32>,
    /// The sender of each refused copy, in order.
    refused_senders: Vec<u32>,
    delivered: u64,
    refused: u64,
}

impl<'a> CommitPart<'a> {
    /// Whether this part commits copies for `receiver`.
    pub fn owns(&self, receiver: u32) -> bool {
        let end = self.first as usize + self.inboxes.len();
        let r = receiver as usize;
        (r >= self.first as usize && r < end) || (self.takes_unknown && r >= end)
    }

    /// Admits or refuses one copy for `receiver` by [`put_checked`]'s rules,
    /// counting the copies admitted earlier in this commit (written later,
    /// by [`CommitPart::finish`]).
    fn admit(&mut self, sender: u32, receiver: u32, payload_len: usize) -> Result<(), Refusal> {
        let local = (receiver as usize)
            .checked_sub(self.first as usize)
            .filter(|&l| l < self.inboxes.len());
        if let Some(Hears::One(topic)) = local.and_then(|l| self.hears.get(l))
            && let Some(d) = self.deferred.get_mut(topic)
        {
            if d.pending > 0 {
                d.settle(
                    &mut self.plan.counts,
                    self.first,
                    self.config.mailbox_capacity,
                );
            }
            // A copy admitted here takes room the deferral counted on.
            d.room = d.room.saturating_sub(1);
        }
        let count = local.and_then(|l| self.plan.counts.get(l).copied());
        let outcome = admission(&self.config, self.closed, receiver, payload_len, count);
        if outcome.is_ok()
            && let Some(c) = local.and_then(|l| self.plan.counts.get_mut(l))
        {
            *c += 1;
        }
        match outcome {
            Ok(()) => self.tally.delivered += 1,
            Err(_) => {
                self.tally.refused_senders.push(sender);
                self.tally.refused += 1;
            }
        }
        outcome
    }

    /// [`Bus::commit_send`], if this part owns `receiver` (`None` otherwise).
    pub fn send(
        &mut self,
        sender: u32,
        receiver: u32,
        payload: &[u8],
    ) -> Option<Result<(), Refusal>> {
        self.notice(receiver, msg_kind::DIRECT, sender, 0, payload)
    }

    /// [`Bus::commit_notice`] (any message of `kind` on `channel`), if this
    /// part owns `receiver`.
    pub fn notice(
        &mut self,
        receiver: u32,
        kind: u16,
        sender: u32,
        channel: u32,
        payload: &[u8],
    ) -> Option<Result<(), Refusal>> {
        if !self.owns(receiver) {
            return None;
        }
        let outcome = self.admit(sender, receiver, payload.len());
        if outcome.is_ok() {
            let header = message_header(sender, kind, channel, payload);
            let call = self.plan.call(header, payload);
            self.plan.direct.push((receiver - self.first, call));
        }
        Some(outcome)
    }

    /// [`Bus::commit_publish`] for the subscribers this part owns, in
    /// ascending order, the publisher excluded.
    ///
    /// Returns the outcome and the subscribers this part owns, ascending
    /// (the publisher among them if it is subscribed, which gets no copy).
    /// Each refused one is pushed onto `refused`, in that order; every other
    /// one but the publisher got a copy. So a caller that needs the
    /// receivers walks them only when it wants to, and learns from
    /// `outcome.refused == 0` that the copies reached the whole list.
    ///
    /// Each copy is admitted by [`admission`]'s rules, written out for the
    /// one case a publish meets (a known receiver): over the size limit,
    /// closed or full is refused.
    pub fn publish(
        &mut self,
        sender: u32,
        topic: u32,
        payload: &[u8],
        refused: &mut Vec<u32>,
    ) -> (PublishOutcome, &'a [u32]) {
        let topics: &'a BTreeMap<u32, Vec<u32>> = self.topics;
        let Some(subs) = topics.get(&topic) else {
            return (PublishOutcome::default(), &[]);
        };
        let first = self.first;
        // Subscribers are sorted and are all known agents.
        let owned = owned_of(subs, first, self.inboxes.len());
        if owned.iter().all(|&r| r == sender) {
            return (PublishOutcome::default(), owned);
        }
        let header = message_header(sender, msg_kind::TOPIC, topic, payload);
        let too_large = payload.len() > self.config.max_message_bytes as usize;
        self.plan.topic_call(topic, header, payload, too_large);
        let capacity = self.config.mailbox_capacity;
        let closed = self.closed;
        let counts = &mut self.plan.counts;
        let mut out = PublishOutcome::default();
        if !too_large {
            if self.hears.is_empty() {
                self.hears = hears(topics, first, self.inboxes.len());
            }
            let hears = &self.hears;
            let d = self.deferred.entry(topic).or_insert_with(|| {
                let eligible = owned.iter().all(|&r| {
                    hears.get((r - first) as usize) == Some(&Hears::One(topic))
                        && closed.get(r as usize) != Some(&true)
                });
                Deferred {
                    owned,
                    eligible,
                    pending: 0,
                    own: Vec::new(),
                    room: 0,
                }
            });
            if d.eligible {
                if d.pending >= d.room {
                    d.settle(counts, first, capacity);
                }
                if d.pending < d.room {
                    d.pending += 1;
                    let own = owned.binary_search(&sender).is_ok();
                    if own {
                        d.own.push(sender - first);
                    }
                    out.delivered = (owned.len() - usize::from(own)) as u32;
                    self.tally.delivered += u64::from(out.delivered);
                    return (out, owned);
                }
            }
        }
        for &receiver in owned {
            if receiver == sender {
                continue;
            }
            let count = counts.get_mut((receiver - first) as usize);
            let admitted = match count {
                Some(c) if !too_large && *c < capacity => {
                    closed.get(receiver as usize) != Some(&true) && {
                        *c += 1;
                        true
                    }
                }
                _ => false,
            };
            if admitted {
                out.delivered += 1;
            } else {
                out.refused += 1;
                refused.push(receiver);
                self.tally.refused_senders.push(sender);
            }
        }
        self.tally.delivered += u64::from(out.delivered);
        self.tally.refused += u64::from(out.refused);
        (out, owned)
    }

    /// Writes the admitted copies, one inbox at a time, each in call order
    /// (see [`Plan`]); then the tally is for [`Bus::absorb`].
    pub fn finish(mut self) -> CommitTally {
        for d in self.deferred.values_mut() {
            if d.pending > 0 {
                d.settle(
                    &mut self.plan.counts,
                    self.first,
                    self.config.mailbox_capacity,
                );
            }
        }
        let plan = std::mem::take(&mut self.plan);
        // Each owned subscriber of a topic published to, with the topic.
        let mut reach: Vec<(u32, u32)> = Vec::new();
        for &topic in plan.by_topic.keys() {
            let Some(subs) = self.topics.get(&topic) else {
                continue;
            };
            for &r in owned_of(subs, self.first, self.inboxes.len()) {
                reach.push((r - self.first, topic));
            }
        }
        reach.sort_unstable();
        let mut direct = plan.direct;
        // Stable: a receiver's direct calls stay in call order.
        direct.sort_by_key(|&(local, _)| local);
        let (mut d, mut t) = (0usize, 0usize);
        let mut lists: Vec<&TopicPlan> = Vec::new();
        let mut heads: Vec<usize> = Vec::new();
        for (local, inbox) in self.inboxes.iter_mut().enumerate() {
            let local32 = local as u32;
            let d_from = d;
            while direct.get(d).is_some_and(|&(l, _)| l == local32) {
                d += 1;
            }
            lists.clear();
            while let Some(&(l, topic)) = reach.get(t) {
                if l != local32 {
                    break;
                }
                if let Some(tp) = plan.by_topic.get(&topic) {
                    lists.push(tp);
                }
                t += 1;
            }
            let admitted = plan
                .counts
                .get(local)
                .map_or(0, |&c| c.saturating_sub(inbox.count));
            if admitted == 0 {
                continue;
            }
            let receiver = self.first + local32;
            if inbox.count == 0 && inbox.bytes.is_empty() {
                self.tally.touched.push(receiver);
            }
            let directs = direct.get(d_from..d).unwrap_or(&[]);
            // One topic and nothing else, every copy admitted: its block.
            if let ([tp], []) = (lists.as_slice(), directs)
                && let Some((before, after)) = tp.whole_for(receiver, admitted)
            {
                inbox.bytes.extend_from_slice(before);
                inbox.bytes.extend_from_slice(after);
                inbox.count += admitted;
                continue;
            }
            heads.clear();
            heads.resize(lists.len(), 0);
            let mut next_direct = 0usize;
            let mut left = admitted;
            // Merge this inbox's calls by call index (= call order).
            while left > 0 {
                let mut best: Option<(u32, Option<usize>)> =
                    directs.get(next_direct).map(|&(_, c)| (c, None));
                for (k, tp) in lists.iter().enumerate() {
                    if let Some(&c) = tp.calls.get(heads[k])
                        && best.is_none_or(|(b, _)| c < b)
                    {
                        best = Some((c, Some(k)));
                    }
                }
                let Some((c, from_list)) = best else {
                    break;
                };
                let bytes = match from_list {
                    None => {
                        next_direct += 1;
                        &plan.records
                    }
                    Some(k) => {
                        heads[k] += 1;
                        &lists[k].bytes
                    }
                };
                let Some(call) = plan.calls.get(c as usize) else {
                    continue;
                };
                // A publish skips its publisher; a payload over the limit
                // was refused everywhere. Anything else here was admitted.
                if (from_list.is_some() && call.sender == receiver) || call.too_large {
                    continue;
                }
                if let Some(record) = bytes.get(call.start as usize..call.end as usize) {
                    inbox.bytes.extend_from_slice(record);
                    inbox.count += 1;
                    left -= 1;
                }
            }
        }
        self.tally
    }
}

impl Bus {
    /// Splits the commit being built into two parts by receiver (the lower
    /// half of the agents and the upper half), to be fed the same calls from
    /// two threads; then [`Bus::absorb`] their tallies. Joins, leaves and
    /// flips wait until the parts are finished (they borrow the bus).
    pub fn split_commit(&mut self) -> [CommitPart<'_>; 2] {
        let n = self.next.inboxes.len();
        let mid = n / 2;
        let counts = |inboxes: &[Inbox]| inboxes.iter().map(|i| i.count).collect::<Vec<u32>>();
        let (low, high) = self.next.inboxes.split_at_mut(mid);
        let (low_counts, high_counts) = (counts(low), counts(high));
        let part = |first: usize, takes_unknown: bool, inboxes, counts| CommitPart {
            config: self.config,
            first: first as u32,
            takes_unknown,
            plan: Plan {
                counts,
                ..Plan::default()
            },
            inboxes,
            closed: &self.closed,
            topics: &self.topics,
            tally: CommitTally::default(),
            deferred: BTreeMap::new(),
            hears: Vec::new(),
        };
        [
            part(0, false, low, low_counts),
            part(mid, true, high, high_counts),
        ]
    }

    /// Takes in what the parts of a split commit did: receivers touched,
    /// refusals per sender, totals.
    pub fn absorb(&mut self, tallies: impl IntoIterator<Item = CommitTally>) {
        for tally in tallies {
            self.next.touched.extend(tally.touched);
            for sender in tally.refused_senders {
                self.refused_next.add(sender);
            }
            self.stats.delivered += tally.delivered;
            self.stats.refused += tally.refused;
        }
    }
}
