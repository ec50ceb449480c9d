//! A reference model of the bus, written from `shared/workloads.md` and the
//! crate documentation with plain collections: per tick, messages in
//! (sender id, emission index) order, a publish expanding at its place into one
//! message per subscriber ascending (publisher excluded), capacity refusals in
//! that order, subscription changes applied after the commit.

use std::collections::{BTreeMap, BTreeSet};
use we_abi::{MessageHeader, msg_kind, pad};

/// One effect of an agent, or a runtime notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Send { to: u32, payload: Vec<u8> },
    Publish { topic: u32, payload: Vec<u8> },
    Join { topic: u32 },
    Leave { topic: u32 },
}

/// A runtime notice, committed after every agent's effects (as the runtime
/// does with inference results).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub to: u32,
    pub channel: u32,
    pub payload: Vec<u8>,
}

/// One tick: each agent's effects in emission order, notices, and which
/// receivers are closed during the commit.
#[derive(Clone, Debug)]
pub struct Tick {
    pub effects: Vec<Vec<Op>>,
    pub notices: Vec<Notice>,
    pub closed: Vec<bool>,
}

/// What a commit yields, compared field by field with the bus.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Per receiver: the exact inbox bytes after the flip.
    pub inboxes: Vec<Vec<u8>>,
    /// Per receiver: message count.
    pub counts: Vec<u32>,
    /// Per agent: refusals of the commit.
    pub refused: Vec<u32>,
    /// In commit order: `Ok(receivers delivered)` or the refusal's name, per
    /// send, publish, join and notice.
    pub results: Vec<Result<Vec<u32>, String>>,
    /// Totals so far.
    pub delivered_total: u64,
    pub refused_total: u64,
}

/// `(sender, kind, channel, payload)` of one delivered message.
type Msg = (u32, u16, u32, Vec<u8>);

pub struct Model {
    n: u32,
    cap: u32,
    max_bytes: u32,
    max_topics: u32,
    subs: BTreeMap<u32, BTreeSet<u32>>,
    /// Topics of each agent once pending changes apply.
    joined: Vec<BTreeSet<u32>>,
    delivered_total: u64,
    refused_total: u64,
}

impl Model {
    pub fn new(n: u32, cap: u32, max_bytes: u32, max_topics: u32) -> Self {
        Self {
            n,
            cap,
            max_bytes,
            max_topics,
            subs: BTreeMap::new(),
            joined: vec![BTreeSet::new(); n as usize],
            delivered_total: 0,
            refused_total: 0,
        }
    }

    pub fn commit(&mut self, tick: &Tick) -> Outcome {
        let n = self.n as usize;
        let mut msgs: Vec<Vec<Msg>> = vec![Vec::new(); n];
        let mut refused = vec![0u32; n];
        let mut results = Vec::new();
        let mut changes: Vec<(u32, u32, bool)> = Vec::new();

        // Returns whether the message was delivered.
        let mut put = |msgs: &mut Vec<Vec<Msg>>,
                       refused: &mut Vec<u32>,
                       sender: u32,
                       to: u32,
                       kind: u16,
                       channel: u32,
                       payload: &[u8]|
         -> Result<(), String> {
            let why = if payload.len() > self.max_bytes as usize {
                "TooLarge"
            } else if to as usize >= n {
                "UnknownReceiver"
            } else if tick.closed[to as usize] {
                "ReceiverClosed"
            } else if msgs[to as usize].len() >= self.cap as usize {
                "MailboxFull"
            } else {
                msgs[to as usize].push((sender, kind, channel, payload.to_vec()));
                self.delivered_total += 1;
                return Ok(());
            };
            if (sender as usize) < n {
                refused[sender as usize] += 1;
            }
            self.refused_total += 1;
            Err(why.to_string())
        };

        for (sender, ops) in tick.effects.iter().enumerate() {
            let sender = sender as u32;
            for op in ops {
                match op {
                    Op::Send { to, payload } => {
                        let r = put(
                            &mut msgs,
                            &mut refused,
                            sender,
                            *to,
                            msg_kind::DIRECT,
                            0,
                            payload,
                        );
                        results.push(r.map(|()| vec![*to]));
                    }
                    Op::Publish { topic, payload } => {
                        let mut got = Vec::new();
                        let subs: Vec<u32> = self
                            .subs
                            .get(topic)
                            .map(|s| s.iter().copied().collect())
                            .unwrap_or_default();
                        for r in subs.into_iter().filter(|&r| r != sender) {
                            let kind = msg_kind::TOPIC;
                            if put(&mut msgs, &mut refused, sender, r, kind, *topic, payload)
                                .is_ok()
                            {
                                got.push(r);
                            }
                        }
                        results.push(Ok(got));
                    }
                    Op::Join { topic } => {
                        let joined = &mut self.joined[sender as usize];
                        if joined.contains(topic) {
                            results.push(Ok(vec![]));
                        } else if joined.len() >= self.max_topics as usize {
                            refused[sender as usize] += 1;
                            results.push(Err("TooManyTopics".to_string()));
                        } else {
                            joined.insert(*topic);
                            changes.push((sender, *topic, true));
                            results.push(Ok(vec![]));
                        }
                    }
                    Op::Leave { topic } => {
                        if self.joined[sender as usize].remove(topic) {
                            changes.push((sender, *topic, false));
                        }
                    }
                }
            }
        }
        for notice in &tick.notices {
            let r = put(
                &mut msgs,
                &mut refused,
                we_abi::SENDER_INFERENCE,
                notice.to,
                msg_kind::INFER_RESULT,
                notice.channel,
                &notice.payload,
            );
            results.push(r.map(|()| vec![notice.to]));
        }
        for (agent, topic, join) in changes {
            let subs = self.subs.entry(topic).or_default();
            if join {
                subs.insert(agent);
            } else {
                subs.remove(&agent);
            }
        }

        let mut out = Outcome {
            refused,
            results,
            delivered_total: self.delivered_total,
            refused_total: self.refused_total,
            ..Outcome::default()
        };
        for list in msgs {
            let mut bytes = Vec::new();
            for (sender, kind, channel, payload) in &list {
                let header = MessageHeader {
                    sender: *sender,
                    kind: *kind,
                    flags: 0,
                    channel: *channel,
                    len: payload.len() as u32,
                };
                bytes.extend_from_slice(&header.encode());
                bytes.extend_from_slice(payload);
                bytes.resize(bytes.len() + pad(payload.len()) - payload.len(), 0);
            }
            out.counts.push(list.len() as u32);
            out.inboxes.push(bytes);
        }
        out
    }
}
