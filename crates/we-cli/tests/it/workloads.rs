//! Reference workloads: the runtime's digest equals a plain-Rust reference, and
//! does not depend on the worker count or on timing.

use crate::{group, reference, run, scenario};

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn ring_digest_matches_reference() {
    for (n, t) in [(1, 5), (2, 3), (7, 13), (100, 20), (1000, 10)] {
        let s = run(scenario(&[group("ring", n)], t, ""), 1, 0);
        assert_eq!(
            hex(&s.workload_digest),
            hex(&reference::ring(n, t)),
            "ring N={n} T={t}"
        );
        assert_eq!(s.messages_delivered, n as u64 * t);
        assert!(s.faults.is_empty(), "{:?}", s.faults);
    }
}

#[test]
fn compute_digest_matches_reference() {
    for (n, t) in [(1, 3), (3, 4), (50, 5)] {
        let s = run(scenario(&[group("compute", n)], t, ""), 1, 0);
        assert_eq!(
            hex(&s.workload_digest),
            hex(&reference::compute(n, t)),
            "compute N={n} T={t}"
        );
        assert!(s.faults.is_empty(), "{:?}", s.faults);
    }
}

#[test]
fn gossip_digest_matches_reference() {
    for (n, t) in [(1, 3), (5, 4), (17, 9), (100, 10)] {
        let s = run(scenario(&[group("gossip", n)], t, ""), 1, 0);
        assert_eq!(
            hex(&s.workload_digest),
            hex(&reference::gossip(n, t)),
            "gossip N={n} T={t}"
        );
        assert!(s.faults.is_empty(), "{:?}", s.faults);
    }
}

/// The digest of every workload is identical for W in {1, 2, 3, 4, 8}, with
/// workers sleeping random microseconds before each agent: 60 perturbed runs.
#[test]
fn digests_do_not_depend_on_worker_count_or_timing() {
    let cases = [
        ("ring", 37u32, 12u64, reference::ring(37, 12)),
        ("compute", 13, 3, reference::compute(13, 3)),
        ("gossip", 41, 8, reference::gossip(41, 8)),
    ];
    let mut runs = 0;
    let mut mismatches = Vec::new();
    for (name, n, t, expected) in &cases {
        for workers in [1usize, 2, 3, 4, 8] {
            for repeat in 0..4 {
                let perturb = if repeat == 0 { 0 } else { 50 };
                let s = run(scenario(&[group(name, *n)], *t, ""), workers, perturb);
                runs += 1;
                assert_eq!(s.workers, workers);
                if s.workload_digest != *expected {
                    mismatches.push(format!("{name} W={workers} repeat={repeat}"));
                }
            }
        }
    }
    assert!(runs >= 50, "only {runs} runs");
    assert!(mismatches.is_empty(), "digest mismatches: {mismatches:?}");
}

/// With a per-tick task limit, agents whose turn is deferred keep their inbox
/// for their next turn: messages are never lost. A ring of 5 (agents 0..5) plus
/// three agents forwarding into it, 4 steps per tick out of 8: the scheduler's
/// window does not follow the tokens, so agents holding messages are deferred
/// every few ticks. Every message a running agent holds is forwarded, so the
/// number of messages in flight never drops; losing a deferred inbox would.
#[test]
fn deferred_agents_keep_their_inbox() {
    let size5 = "05000000";
    let groups = [
        crate::Group {
            module: "ring",
            count: 5,
            config_hex: size5,
        },
        crate::Group {
            module: "ring",
            count: 3,
            config_hex: size5,
        },
    ];
    let extra = "[scheduler]\nmax_tasks_per_tick = 4\n";
    let a = run(scenario(&groups, 200, extra), 1, 0);
    let b = run(scenario(&groups, 200, extra), 2, 0);
    assert_eq!(a.workload_digest, b.workload_digest);
    assert_eq!(a.messages_refused, 0);
    // Four tokens start at tick 0 and are forwarded whenever their holder runs
    // (506 deliveries here); with deferred inboxes dropped, 19.
    assert!(
        a.messages_delivered >= 400,
        "messages were lost: only {} deliveries",
        a.messages_delivered
    );
}
