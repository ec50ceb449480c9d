//! we-ipc: commit order and fan-out against a reference model of
//! shared/workloads.md, backpressure, join timing, rkyv envelope layout.

use proptest::prelude::*;
use we_abi::MessageHeader;
use we_ipc::{Bus, BusConfig, EnvelopeHeader, Refusal, read_envelopes};

/// An effect in a tick, in (sender, emission index) order.
#[derive(Clone, Debug)]
enum Op {
    Send { to: u32, v: u64 },
    Publish { topic: u32, v: u64 },
    Join { topic: u32 },
}

fn op(n: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n, any::<u64>()).prop_map(|(to, v)| Op::Send { to, v }),
        (0..4u32, any::<u64>()).prop_map(|(topic, v)| Op::Publish { topic, v }),
        (0..4u32).prop_map(|topic| Op::Join { topic }),
    ]
}

/// Reference: per tick, per receiver, the (sender, payload) list in commit
/// order; subscriptions change after the tick's commit.
fn reference(n: u32, cap: u32, ticks: &[Vec<Vec<Op>>]) -> (Vec<Vec<Vec<(u32, u64)>>>, u64) {
    let mut subs: Vec<Vec<u32>> = vec![Vec::new(); 4];
    let mut out = Vec::new();
    let mut refused = 0;
    for tick in ticks {
        let mut inbox: Vec<Vec<(u32, u64)>> = vec![Vec::new(); n as usize];
        let mut joins = Vec::new();
        for (sender, ops) in tick.iter().enumerate() {
            let sender = sender as u32;
            for op in ops {
                let mut put = |r: u32, v: u64| {
                    if inbox[r as usize].len() < cap as usize {
                        inbox[r as usize].push((sender, v));
                    } else {
                        refused += 1;
                    }
                };
                match op {
                    Op::Send { to, v } => put(*to, *v),
                    Op::Publish { topic, v } => {
                        for &r in &subs[*topic as usize] {
                            if r != sender {
                                put(r, *v);
                            }
                        }
                    }
                    Op::Join { topic } => joins.push((sender, *topic)),
                }
            }
        }
        for (a, t) in joins {
            let s = &mut subs[t as usize];
            if !s.contains(&a) {
                s.push(a);
                s.sort_unstable();
            }
        }
        out.push(inbox);
    }
    (out, refused)
}

fn run_bus(n: u32, cap: u32, ticks: &[Vec<Vec<Op>>]) -> (Vec<Vec<Vec<(u32, u64)>>>, u64) {
    let mut bus = Bus::new(
        n,
        BusConfig {
            mailbox_capacity: cap,
            ..BusConfig::default()
        },
    );
    let mut out = Vec::new();
    for tick in ticks {
        for (sender, ops) in tick.iter().enumerate() {
            for op in ops {
                match op {
                    Op::Send { to, v } => {
                        let _ = bus.commit_send(sender as u32, *to, &v.to_le_bytes());
                    }
                    Op::Publish { topic, v } => {
                        bus.commit_publish(sender as u32, *topic, &v.to_le_bytes(), |_| {});
                    }
                    Op::Join { topic } => bus.join(sender as u32, *topic).unwrap(),
                }
            }
        }
        bus.flip();
        let inboxes = (0..n)
            .map(|r| {
                read_envelopes(bus.inbox(r))
                    .map(|e| {
                        let (h, p) = e.unwrap();
                        (h.sender.to_native(), u64::from_le_bytes(p.try_into().unwrap()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        out.push(inboxes);
    }
    (out, bus.stats().refused)
}

proptest! {
    #[test]
    fn commit_order_and_fanout_match_the_reference(
        (n, ticks) in (1u32..6).prop_flat_map(|n| (
            Just(n),
            prop::collection::vec(prop::collection::vec(prop::collection::vec(op(n), 0..5), n as usize), 1..5),
        )),
        cap in 1u32..6,
    ) {
        let (expected, refused) = reference(n, cap, &ticks);
        let (actual, actual_refused) = run_bus(n, cap, &ticks);
        prop_assert_eq!(actual, expected);
        prop_assert_eq!(actual_refused, refused);
    }
}

#[test]
fn backpressure_refuses_the_overflow_and_tells_the_sender() {
    let mut bus = Bus::new(
        3,
        BusConfig {
            mailbox_capacity: 2,
            ..BusConfig::default()
        },
    );
    assert_eq!(bus.commit_send(0, 2, b"a"), Ok(()));
    assert_eq!(bus.commit_send(1, 2, b"b"), Ok(()));
    assert_eq!(bus.commit_send(1, 2, b"c"), Err(Refusal::MailboxFull { receiver: 2 }));
    assert_eq!(bus.commit_send(1, 7, b"d"), Err(Refusal::UnknownReceiver { receiver: 7 }));
    bus.flip();
    assert_eq!(bus.inbox_len(2), 2);
    assert_eq!(bus.refused_last_commit(1), 2);
    assert_eq!(bus.refused_last_commit(0), 0);
    assert_eq!(bus.stats().delivered, 2);
    assert_eq!(bus.stats().refused, 2);
    bus.flip();
    assert_eq!(bus.refused_last_commit(1), 0, "counts cover one commit");
    assert_eq!(bus.inbox_len(2), 0);
}

#[test]
fn oversized_and_closed_receivers_are_refused() {
    let mut bus = Bus::new(
        2,
        BusConfig {
            max_message_bytes: 4,
            ..BusConfig::default()
        },
    );
    assert!(matches!(bus.commit_send(0, 1, b"12345"), Err(Refusal::TooLarge { len: 5, max: 4 })));
    bus.close(1);
    assert_eq!(bus.commit_send(0, 1, b"1"), Err(Refusal::ReceiverClosed { receiver: 1 }));
    bus.reopen(1);
    assert_eq!(bus.commit_send(0, 1, b"1"), Ok(()));
}

#[test]
fn a_join_does_not_receive_publishes_of_its_own_commit() {
    let mut bus = Bus::new(3, BusConfig::default());
    bus.join(1, 5).unwrap();
    assert_eq!(bus.commit_publish(0, 5, b"x", |_| {}).delivered, 0);
    bus.flip();
    let mut got = Vec::new();
    assert_eq!(bus.commit_publish(0, 5, b"x", |r| got.push(r)).delivered, 1);
    assert_eq!(got, vec![1]);
    bus.leave(1, 5);
    bus.flip();
    assert_eq!(bus.commit_publish(0, 5, b"x", |_| {}).delivered, 0);
}

#[test]
fn topic_limit_is_enforced() {
    let mut bus = Bus::new(
        1,
        BusConfig {
            max_topics_per_agent: 2,
            ..BusConfig::default()
        },
    );
    bus.join(0, 1).unwrap();
    bus.join(0, 2).unwrap();
    assert!(bus.join(0, 3).is_err());
}

#[test]
fn carried_over_messages_come_first() {
    let mut bus = Bus::new(2, BusConfig::default());
    bus.commit_send(0, 1, b"old").unwrap();
    bus.flip();
    bus.carry_over(1);
    bus.commit_send(0, 1, b"new").unwrap();
    bus.flip();
    let payloads: Vec<_> = read_envelopes(bus.inbox(1)).map(|e| e.unwrap().1.to_vec()).collect();
    assert_eq!(payloads, vec![b"old".to_vec(), b"new".to_vec()]);
}

#[test]
fn envelope_header_archive_is_the_abi_layout() {
    let h = EnvelopeHeader {
        sender: 0x0403_0201,
        kind: 0x0605,
        flags: 0x0807,
        channel: 0x0c0b_0a09,
        len: 0x100f_0e0d,
    };
    let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&h).unwrap();
    let abi = MessageHeader {
        sender: h.sender,
        kind: h.kind,
        flags: h.flags,
        channel: h.channel,
        len: h.len,
    }
    .encode();
    assert_eq!(archived.as_slice(), &abi[..]);
}
