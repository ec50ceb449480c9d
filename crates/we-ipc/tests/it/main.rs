//! Integration tests of we-ipc: worked examples of commit order, topics,
//! backpressure and the rkyv envelope layout, then property tests against a
//! reference model (`model.rs`, `props.rs`).

// A test may panic: a failed unwrap is a failed test, and helpers that are not
// `#[test]` functions are not covered by `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model;
mod props;

use we_abi::{MessageHeader, msg_kind};
use we_ipc::{Bus, BusConfig, EnvelopeHeader, Refusal, read_envelopes};

fn bus(n: u32, cap: u32) -> Bus {
    Bus::new(
        n,
        BusConfig {
            mailbox_capacity: cap,
            ..BusConfig::default()
        },
    )
}

/// `(sender, kind, channel, payload)` of every message in `agent`'s inbox.
fn messages(bus: &Bus, agent: u32) -> Vec<(u32, u16, u32, Vec<u8>)> {
    read_envelopes(bus.inbox(agent))
        .map(|m| {
            let (h, p) = m.unwrap();
            (
                h.sender.to_native(),
                h.kind.to_native(),
                h.channel.to_native(),
                p.to_vec(),
            )
        })
        .collect()
}

#[test]
fn inbox_is_in_commit_order_with_publishes_expanded_in_place() {
    let mut b = bus(4, 16);
    for a in [0, 1, 3] {
        b.join(a, 7).unwrap();
    }
    b.flip();
    // Commit order: (sender, emission index).
    b.commit_send(0, 3, b"s0").unwrap();
    let mut fanout = Vec::new();
    let out = b.commit_publish(1, 7, b"p1", |r| fanout.push(r));
    b.commit_send(2, 3, b"s2").unwrap();
    b.commit_notice(
        3,
        msg_kind::INFER_RESULT,
        we_abi::SENDER_INFERENCE,
        42,
        b"r",
    )
    .unwrap();
    b.flip();
    // Subscribers 0 and 3 ascending, publisher 1 excluded.
    assert_eq!(fanout, [0, 3]);
    assert_eq!((out.delivered, out.refused), (2, 0));
    assert_eq!(
        messages(&b, 3),
        [
            (0, msg_kind::DIRECT, 0, b"s0".to_vec()),
            (1, msg_kind::TOPIC, 7, b"p1".to_vec()),
            (2, msg_kind::DIRECT, 0, b"s2".to_vec()),
            (
                we_abi::SENDER_INFERENCE,
                msg_kind::INFER_RESULT,
                42,
                b"r".to_vec()
            ),
        ]
    );
    assert_eq!(messages(&b, 0), [(1, msg_kind::TOPIC, 7, b"p1".to_vec())]);
    assert!(messages(&b, 1).is_empty());
}

#[test]
fn records_are_the_abi_layout_with_zero_padding() {
    let mut b = bus(2, 4);
    b.commit_send(0, 1, b"abc").unwrap();
    b.flip();
    let header = MessageHeader {
        sender: 0,
        kind: msg_kind::DIRECT,
        flags: 0,
        channel: 0,
        len: 3,
    };
    let mut expect = header.encode().to_vec();
    expect.extend_from_slice(b"abc\0\0\0\0\0");
    assert_eq!(b.inbox(1), &expect[..]);
}

#[test]
fn backpressure_refuses_the_overflow_and_tells_the_sender() {
    let mut b = bus(3, 2);
    assert_eq!(b.commit_send(0, 2, b"a"), Ok(()));
    assert_eq!(b.commit_send(1, 2, b"b"), Ok(()));
    assert_eq!(
        b.commit_send(1, 2, b"c"),
        Err(Refusal::MailboxFull { receiver: 2 })
    );
    assert_eq!(
        b.commit_send(1, 7, b"d"),
        Err(Refusal::UnknownReceiver { receiver: 7 })
    );
    // Counts of the commit being built are not visible until the flip.
    assert_eq!(b.refused_last_commit(1), 0);
    assert_eq!(b.next_len(2), 2);
    b.flip();
    assert_eq!(b.inbox_len(2), 2);
    assert_eq!(b.refused_last_commit(1), 2);
    assert_eq!(b.refused_last_commit(0), 0);
    assert_eq!(b.stats().delivered, 2);
    assert_eq!(b.stats().refused, 2);
    b.flip();
    assert_eq!(b.refused_last_commit(1), 0, "counts cover one commit");
    assert_eq!(b.inbox_len(2), 0);
}

#[test]
fn a_publish_into_full_mailboxes_is_refused_per_copy() {
    let mut b = bus(4, 1);
    for a in 1..4 {
        b.join(a, 0).unwrap();
    }
    b.flip();
    b.commit_send(0, 2, b"x").unwrap();
    let mut got = Vec::new();
    let out = b.commit_publish(0, 0, b"y", |r| got.push(r));
    assert_eq!((out.delivered, out.refused), (2, 1));
    assert_eq!(got, [1, 3]);
    b.flip();
    assert_eq!(b.refused_last_commit(0), 1);
}

#[test]
fn oversized_and_closed_receivers_are_refused() {
    let mut b = Bus::new(
        2,
        BusConfig {
            max_message_bytes: 4,
            ..BusConfig::default()
        },
    );
    assert_eq!(
        b.commit_send(0, 1, b"12345"),
        Err(Refusal::TooLarge { len: 5, max: 4 })
    );
    b.close(1);
    assert_eq!(
        b.commit_send(0, 1, b"1"),
        Err(Refusal::ReceiverClosed { receiver: 1 })
    );
    b.reopen(1);
    assert_eq!(b.commit_send(0, 1, b"1"), Ok(()));
    b.flip();
    assert_eq!(b.refused_last_commit(0), 2);
}

#[test]
fn joins_and_leaves_apply_at_flip() {
    let mut b = bus(3, 8);
    b.join(1, 5).unwrap();
    assert_eq!(b.commit_publish(0, 5, b"x", |_| {}).delivered, 0);
    b.flip();
    let mut got = Vec::new();
    assert_eq!(b.commit_publish(0, 5, b"x", |r| got.push(r)).delivered, 1);
    assert_eq!(got, [1]);
    b.leave(1, 5);
    // Still subscribed for the rest of this commit.
    assert_eq!(b.commit_publish(0, 5, b"x", |_| {}).delivered, 1);
    b.flip();
    assert_eq!(b.commit_publish(0, 5, b"x", |_| {}).delivered, 0);
    assert!(b.subscribers(5).is_empty());
}

#[test]
fn topic_limit_counts_distinct_topics_after_pending_changes() {
    let mut b = Bus::new(
        1,
        BusConfig {
            max_topics_per_agent: 2,
            ..BusConfig::default()
        },
    );
    b.join(0, 1).unwrap();
    b.join(0, 1).unwrap(); // already joined: no-op
    b.join(0, 2).unwrap();
    assert_eq!(
        b.join(0, 3),
        Err(we_ipc::Error::TooManyTopics { agent: 0, max: 2 })
    );
    b.leave(0, 2);
    b.join(0, 3).unwrap();
    assert!(b.join(9, 1).is_err());
    b.flip();
    assert_eq!(b.subscribers(1), [0]);
    assert!(b.subscribers(2).is_empty());
    assert_eq!(b.subscribers(3), [0]);
    assert_eq!(b.refused_last_commit(0), 1, "the refused join counts");
    assert_eq!(b.stats().refused, 0, "but it is not a message");
}

#[test]
fn flip_reuses_the_arenas() {
    let mut b = bus(2, 1000);
    for _ in 0..3 {
        for i in 0..100u64 {
            b.commit_send(0, 1, &i.to_le_bytes()).unwrap();
        }
        b.flip();
        assert_eq!(b.inbox_len(1), 100);
        assert_eq!(b.inbox(1).len(), 100 * 24);
    }
    // A tick with nothing for agent 1 leaves it an empty inbox.
    b.flip();
    assert_eq!(b.inbox_len(1), 0);
    assert!(b.inbox(1).is_empty());
}

#[test]
fn carried_over_messages_come_first() {
    let mut b = bus(2, 8);
    b.commit_send(0, 1, b"old").unwrap();
    b.flip();
    b.carry_over(1);
    b.commit_send(0, 1, b"new").unwrap();
    b.flip();
    let payloads: Vec<_> = messages(&b, 1).into_iter().map(|m| m.3).collect();
    assert_eq!(payloads, [b"old".to_vec(), b"new".to_vec()]);
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
    assert_eq!(
        abi,
        *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
    );
    // And back: the archive reads as the same values.
    let back = rkyv::from_bytes::<EnvelopeHeader, rkyv::rancor::Error>(&archived).unwrap();
    assert_eq!(back, h);
}

#[test]
fn bad_inboxes_are_errors_not_panics() {
    let mut b = bus(2, 8);
    b.commit_send(0, 1, b"hello").unwrap();
    b.flip();
    let inbox = b.inbox(1);
    // Truncated payload.
    let cut: Vec<_> = read_envelopes(&inbox[..20]).collect();
    assert_eq!(cut.len(), 1);
    assert!(matches!(
        cut[0],
        Err(we_ipc::Error::BadRecord { offset: 0, .. })
    ));
    // Truncated header after a good record.
    let mut two = inbox.to_vec();
    two.extend_from_slice(&[0; 8]);
    let got: Vec<_> = read_envelopes(&two).collect();
    assert!(got[0].is_ok());
    assert!(matches!(
        got[1],
        Err(we_ipc::Error::BadRecord { offset: 24, .. })
    ));
    // Misaligned copy: refused by rkyv's checked access.
    let mut shifted = vec![0u8; inbox.len() + 1];
    shifted[1..].copy_from_slice(inbox);
    let first = read_envelopes(&shifted[1..]).next().unwrap();
    let aligned = (shifted[1..].as_ptr() as usize).is_multiple_of(4);
    assert_eq!(first.is_ok(), aligned);
}
