//! Property tests: the bus against the reference model over random ticks of
//! sends, publishes, joins, leaves, notices and closed receivers.
//!
//! A failing case is shrunk and printed by proptest; its seed is saved under
//! `tests/it/proptest-regressions/` in this crate and replayed first next time.

use crate::model::{Model, Notice, Op, Outcome, Tick};
use proptest::prelude::*;
use we_abi::msg_kind;
use we_ipc::{Bus, BusConfig, read_envelopes};

const TOPICS: u32 = 4;
const MAX_BYTES: u32 = 10;

fn payload() -> impl Strategy<Value = Vec<u8>> {
    // Up to two bytes over the limit, so that some are refused as too large;
    // lengths not a multiple of 8 exercise the padding.
    prop::collection::vec(any::<u8>(), 0..(MAX_BYTES as usize + 3))
}

fn op(n: u32) -> impl Strategy<Value = Op> {
    op_weighted(n, [4, 3, 2, 1])
}

/// Mostly publishes, as in a gossip workload: with a roomy mailbox most
/// inboxes hear one topic and nothing else.
fn publish_op(n: u32) -> impl Strategy<Value = Op> {
    op_weighted(n, [1, 12, 1, 1])
}

/// Sends, publishes, joins and leaves, in the proportions of `weights`.
fn op_weighted(n: u32, [send, publish, join, leave]: [u32; 4]) -> impl Strategy<Value = Op> {
    prop_oneof![
        send => (0..n + 1, payload()).prop_map(|(to, payload)| Op::Send { to, payload }),
        publish => (0..TOPICS, payload()).prop_map(|(topic, payload)| Op::Publish { topic, payload }),
        join => (0..TOPICS).prop_map(|topic| Op::Join { topic }),
        leave => (0..TOPICS).prop_map(|topic| Op::Leave { topic }),
    ]
}

fn tick(n: u32) -> impl Strategy<Value = Tick> {
    tick_of(n, op(n), 0.15)
}

fn tick_of(n: u32, op: impl Strategy<Value = Op>, closed: f64) -> impl Strategy<Value = Tick> {
    (
        prop::collection::vec(prop::collection::vec(op, 0..6), n as usize),
        prop::collection::vec(
            (0..n + 1, 0u32..100, payload()).prop_map(|(to, channel, payload)| Notice {
                to,
                channel,
                payload,
            }),
            0..3,
        ),
        prop::collection::vec(prop::bool::weighted(closed), n as usize),
    )
        .prop_map(|(effects, notices, closed)| Tick {
            effects,
            notices,
            closed,
        })
}

/// `(agents, mailbox capacity, topic limit, ticks)`.
fn scenario() -> impl Strategy<Value = (u32, u32, u32, Vec<Tick>)> {
    (1u32..6, 0u32..5, 0u32..3).prop_flat_map(|(n, cap, max_topics)| {
        (
            Just(n),
            Just(cap),
            Just(max_topics),
            prop::collection::vec(tick(n), 1..6),
        )
    })
}

/// `(agents, mailbox capacity, ticks)`: agent `i` joins topic `i % TOPICS`
/// in the first tick, then mostly publishes; capacities up to over the most
/// copies a receiver can be offered.
fn gossip_scenario() -> impl Strategy<Value = (u32, u32, Vec<Tick>)> {
    (4u32..40, 0u32..200).prop_flat_map(|(n, cap)| {
        let joins = Tick {
            effects: (0..n)
                .map(|i| vec![Op::Join { topic: i % TOPICS }])
                .collect(),
            notices: Vec::new(),
            closed: vec![false; n as usize],
        };
        (
            Just(n),
            Just(cap),
            prop::collection::vec(tick_of(n, publish_op(n), 0.03), 1..5).prop_map(
                move |mut ticks| {
                    ticks.insert(0, joins.clone());
                    ticks
                },
            ),
        )
    })
}

/// Opens and closes receivers as the tick says.
fn apply_closed(bus: &mut Bus, t: &Tick) {
    for (agent, &closed) in t.closed.iter().enumerate() {
        if closed {
            bus.close(agent as u32);
        } else {
            bus.reopen(agent as u32);
        }
    }
}

/// What the tick left in the bus, after its flip.
fn outcome(bus: &Bus, results: Vec<Result<Vec<u32>, String>>) -> Outcome {
    let n = bus.agent_count();
    let stats = bus.stats();
    Outcome {
        inboxes: (0..n).map(|r| bus.inbox(r).to_vec()).collect(),
        counts: (0..n).map(|r| bus.inbox_len(r)).collect(),
        refused: (0..n).map(|a| bus.refused_last_commit(a)).collect(),
        results,
        delivered_total: stats.delivered,
        refused_total: stats.refused,
    }
}

/// Runs one tick through the bus, calling it the way the runtime does.
fn commit(bus: &mut Bus, t: &Tick) -> Outcome {
    apply_closed(bus, t);
    let mut results = Vec::new();
    for (sender, ops) in t.effects.iter().enumerate() {
        let sender = sender as u32;
        for op in ops {
            match op {
                Op::Send { to, payload } => {
                    let r = bus.commit_send(sender, *to, payload);
                    results.push(r.map(|()| vec![*to]).map_err(name));
                }
                Op::Publish { topic, payload } => {
                    let mut got = Vec::new();
                    let out = bus.commit_publish(sender, *topic, payload, |r| got.push(r));
                    assert_eq!(out.delivered as usize, got.len());
                    results.push(Ok(got));
                }
                Op::Join { topic } => {
                    results.push(joined(bus.join(sender, *topic)));
                }
                Op::Leave { topic } => bus.leave(sender, *topic),
            }
        }
    }
    for notice in &t.notices {
        let r = bus.commit_notice(
            notice.to,
            msg_kind::INFER_RESULT,
            we_abi::SENDER_INFERENCE,
            notice.channel,
            &notice.payload,
        );
        results.push(r.map(|()| vec![notice.to]).map_err(name));
    }
    bus.flip();
    outcome(bus, results)
}

/// As [`commit`], but the sends, publishes and notices go through the two
/// halves of [`Bus::split_commit`] (each fed every call, in order), and the
/// joins and leaves after them, as the runtime's parallel commit does.
fn commit_split(bus: &mut Bus, t: &Tick) -> Outcome {
    apply_closed(bus, t);
    let mut results = Vec::new();
    let mut subscriptions = Vec::new();
    let [mut low, mut high] = bus.split_commit();
    for (sender, ops) in t.effects.iter().enumerate() {
        let sender = sender as u32;
        for op in ops {
            match op {
                Op::Send { to, payload } => {
                    let a = low.send(sender, *to, payload);
                    let b = high.send(sender, *to, payload);
                    assert!(a.is_some() != b.is_some(), "exactly one part owns {to}");
                    let r = a.or(b).unwrap();
                    results.push(r.map(|()| vec![*to]).map_err(name));
                }
                Op::Publish { topic, payload } => {
                    let mut got = Vec::new();
                    for part in [&mut low, &mut high] {
                        let mut refused = Vec::new();
                        let (out, owned) = part.publish(sender, *topic, payload, &mut refused);
                        assert_eq!(out.refused as usize, refused.len());
                        let reached: Vec<u32> = owned
                            .iter()
                            .copied()
                            .filter(|r| *r != sender && !refused.contains(r))
                            .collect();
                        assert_eq!(out.delivered as usize, reached.len());
                        got.extend(reached);
                    }
                    results.push(Ok(got));
                }
                Op::Join { .. } | Op::Leave { .. } => {
                    subscriptions.push((results.len(), sender, op.clone()));
                    if matches!(op, Op::Join { .. }) {
                        results.push(Ok(vec![]));
                    }
                }
            }
        }
    }
    for notice in &t.notices {
        let call = |part: &mut we_ipc::CommitPart<'_>| {
            part.notice(
                notice.to,
                msg_kind::INFER_RESULT,
                we_abi::SENDER_INFERENCE,
                notice.channel,
                &notice.payload,
            )
        };
        let r = call(&mut low).or_else(|| call(&mut high)).unwrap();
        results.push(r.map(|()| vec![notice.to]).map_err(name));
    }
    let tallies = [low.finish(), high.finish()];
    bus.absorb(tallies);
    for (at, sender, op) in subscriptions {
        match op {
            Op::Join { topic } => {
                results[at] = joined(bus.join(sender, topic));
            }
            Op::Leave { topic } => bus.leave(sender, topic),
            _ => {}
        }
    }
    bus.flip();
    outcome(bus, results)
}

/// A join's result as the model states it.
fn joined(r: we_ipc::Result<()>) -> Result<Vec<u32>, String> {
    r.map(|()| vec![]).map_err(|e| match e {
        we_ipc::Error::TooManyTopics { .. } => "TooManyTopics".to_string(),
        other => format!("{other:?}"),
    })
}

fn name(r: we_ipc::Refusal) -> String {
    let debug = format!("{r:?}");
    debug
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Inbox bytes, counts, per-sender refusals, every call's result and the
    /// totals equal the model's, tick after tick.
    #[test]
    fn bus_matches_the_reference_model((n, cap, max_topics, ticks) in scenario()) {
        let mut bus = Bus::new(n, BusConfig {
            mailbox_capacity: cap,
            max_message_bytes: MAX_BYTES,
            max_topics_per_agent: max_topics,
        });
        let mut model = Model::new(n, cap, MAX_BYTES, max_topics);
        for (i, t) in ticks.iter().enumerate() {
            let got = commit(&mut bus, t);
            let expect = model.commit(t);
            prop_assert_eq!(&got, &expect, "tick {}", i);

            // Nothing is lost beyond refusals: the model counts every copy
            // once, as delivered or refused, and the totals above matched.
            // The zero-copy reader sees the same messages as the raw bytes.
            for r in 0..n {
                let read: Vec<_> = read_envelopes(bus.inbox(r)).collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(read.len() as u32, bus.inbox_len(r));
                for (h, p) in read {
                    prop_assert_eq!(h.len.to_native() as usize, p.len());
                }
            }
        }
    }

    /// A commit split by receiver into two parts leaves the bus exactly as
    /// the serial commit does: inboxes, counts, refusals, results, totals.
    #[test]
    fn split_commit_equals_the_serial_commit((n, cap, max_topics, ticks) in scenario()) {
        let config = BusConfig {
            mailbox_capacity: cap,
            max_message_bytes: MAX_BYTES,
            max_topics_per_agent: max_topics,
        };
        let mut serial = Bus::new(n, config);
        let mut split = Bus::new(n, config);
        for (i, t) in ticks.iter().enumerate() {
            let expect = commit(&mut serial, t);
            let got = commit_split(&mut split, t);
            prop_assert_eq!(&got, &expect, "tick {}", i);
        }
    }

    /// As above, for publish-heavy ticks, where an inbox that heard one topic
    /// alone and admitted every copy is filled from the topic's block.
    #[test]
    fn split_commit_equals_the_serial_commit_for_gossip((n, cap, ticks) in gossip_scenario()) {
        let config = BusConfig {
            mailbox_capacity: cap,
            max_message_bytes: MAX_BYTES,
            max_topics_per_agent: 2,
        };
        let mut serial = Bus::new(n, config);
        let mut split = Bus::new(n, config);
        for (i, t) in ticks.iter().enumerate() {
            let expect = commit(&mut serial, t);
            let got = commit_split(&mut split, t);
            prop_assert_eq!(&got, &expect, "tick {}", i);
        }
    }
}
