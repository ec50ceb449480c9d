//! Hostile agents are contained: the run finishes, the well-behaved agents'
//! results are exactly those of a run without the hostile one, the fault is
//! reported with agent id, kind and tick, and memory stays within the cap.
//!
//! The well-behaved agents form a ring of `N` (config: the ring size), and the
//! hostile agent is agent `N`, outside the ring.

use crate::{Group, group, reference, run, scenario};
use we_core::FaultKind;

const N: u32 = 20;
const T: u64 = 8;

fn ring_of(n: u32) -> String {
    n.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn le_u64_hex(v: u64) -> String {
    v.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the ring of N beside `hostile` and checks containment; returns the
/// hostile agent's fault as (tick, kind).
fn contained(hostile: &str, config_hex: &str, limits: &str) -> (u64, FaultKind) {
    let ring_config = ring_of(N);
    let groups = [
        Group {
            module: "ring",
            count: N,
            config_hex: &ring_config,
        },
        Group {
            module: hostile,
            count: 1,
            config_hex,
        },
    ];
    let mut results = Vec::new();
    for workers in [1, 2] {
        let s = run(scenario(&groups, T, limits), workers, 0);
        assert_eq!(
            s.workload_digest,
            reference::ring(N, T),
            "{hostile} ({config_hex}) changed the ring's result (W={workers})"
        );
        assert_eq!(s.faults.len(), 1, "{hostile}: faults {:?}", s.faults);
        let (agent, tick, kind) = s.faults[0].clone();
        assert_eq!(
            agent.index, N,
            "{hostile}: the fault names the hostile agent"
        );
        results.push((tick, kind));
    }
    assert_eq!(
        results[0], results[1],
        "{hostile}: fault differs across worker counts"
    );
    results.remove(0)
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let (tick, kind) = contained(
        "hostile-loop",
        &le_u64_hex(2),
        "[limits]\nfuel_per_call = 1000000\n",
    );
    assert_eq!((tick, kind), (2, FaultKind::FuelExhausted));
}

#[test]
fn memory_bomb_stays_under_the_cap() {
    // memory.grow refused at the cap: the agent reports it with an error status.
    let (tick, kind) = contained("hostile-membomb", "00", "[limits]\nmemory_pages = 64\n");
    assert_eq!(tick, 0);
    assert!(matches!(kind, FaultKind::ErrorCode(_)), "{kind:?}");
    // Allocation until the allocator gives up: a trap.
    let (tick, kind) = contained("hostile-membomb", "01", "[limits]\nmemory_pages = 64\n");
    assert_eq!(tick, 0);
    assert!(matches!(kind, FaultKind::Trap { .. }), "{kind:?}");
}

#[test]
fn out_of_bounds_pointers_trap_the_agent() {
    for (mode, what) in [
        (0u8, "emit"),
        (1, "log"),
        (2, "region_read"),
        (3, "emit"),
        (4, "emit"),
    ] {
        let config = format!("{mode:02x}{}", le_u64_hex(1));
        let (tick, kind) = contained("hostile-oob", &config, "");
        assert_eq!(tick, 1, "mode {mode}");
        assert_eq!(
            kind,
            FaultKind::OutOfBounds {
                what: what.to_string()
            },
            "mode {mode}"
        );
    }
}

#[test]
fn traps_in_each_export_are_contained() {
    let (tick, kind) = contained("hostile-trap", "00", "");
    assert_eq!(tick, u64::MAX, "init faults are reported at the init phase");
    assert_eq!(
        kind,
        FaultKind::Trap {
            code: "unreachable".into()
        }
    );
    let (tick, kind) = contained("hostile-trap", &format!("02{}", le_u64_hex(3)), "");
    assert_eq!(
        (tick, kind),
        (
            3,
            FaultKind::Trap {
                code: "unreachable".into()
            }
        )
    );
    let (tick, kind) = contained("hostile-trap", "03", "");
    assert_eq!(
        (tick, kind),
        (
            T,
            FaultKind::Trap {
                code: "unreachable".into()
            }
        )
    );
    let (tick, kind) = contained("hostile-trap", &format!("05{}", le_u64_hex(1)), "");
    assert_eq!(tick, 1);
    assert!(matches!(kind, FaultKind::ErrorCode(_)), "{kind:?}");
    let (tick, kind) = contained("hostile-trap", &format!("04{}", le_u64_hex(2)), "");
    assert_eq!(tick, 2);
    assert!(
        matches!(kind, FaultKind::StackOverflow | FaultKind::Trap { .. }),
        "{kind:?}"
    );
}

#[test]
fn trap_in_receive_is_contained() {
    // The agent messages itself at tick 0, so its own message is in the digest:
    // compare against the same run with the fault happening, across workers.
    let groups = [
        Group {
            module: "ring",
            count: N,
            config_hex: &ring_of(N),
        },
        Group {
            module: "hostile-trap",
            count: 1,
            config_hex: "01",
        },
    ];
    let a = run(scenario(&groups, T, ""), 1, 0);
    let b = run(scenario(&groups, T, ""), 2, 0);
    assert_eq!(a.workload_digest, b.workload_digest);
    assert_eq!(a.faults.len(), 1);
    let (agent, tick, kind) = &a.faults[0];
    assert_eq!((agent.index, *tick), (N, 1));
    assert_eq!(
        *kind,
        FaultKind::Trap {
            code: "unreachable".into()
        }
    );
    assert_eq!(a.messages_delivered, N as u64 * T + 1);
}

#[test]
fn oversized_message_faults_the_sender() {
    let (tick, kind) = contained(
        "hostile-bigmsg",
        "",
        "[limits]\nmessage_bytes_max = 65536\nmemory_pages = 512\neffect_bytes_max = 33554432\n",
    );
    assert_eq!(tick, 0);
    assert_eq!(kind, FaultKind::MessageTooLarge { len: 16 << 20 });
}

#[test]
fn message_flood_is_refused_by_backpressure_not_lost() {
    // 1,000 messages a tick to agent 0, whose mailbox holds 64: the excess is
    // refused and counted, the run goes on, and nothing panics.
    let flood_count = 1000u32;
    let config: String = flood_count
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let groups = [
        group("ring", 4),
        Group {
            module: "hostile-flood",
            count: 1,
            config_hex: &config,
        },
    ];
    let s = run(
        scenario(&groups, 3, "[limits]\nmailbox_capacity = 64\n"),
        2,
        0,
    );
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    assert!(s.messages_refused > 0);
    // Every message was either delivered or refused.
    let ring_sent = 4 * 3;
    assert!(s.messages_delivered + s.messages_refused >= ring_sent + 3 * flood_count as u64);
}

/// Config of hostile-loop: first looping tick, then the export that loops.
fn loop_in(export: u8, from_tick: u64) -> String {
    format!("{}{export:02x}", le_u64_hex(from_tick))
}

#[test]
fn infinite_loop_in_init_is_contained() {
    let (tick, kind) = contained(
        "hostile-loop",
        &loop_in(1, 0),
        "[limits]\nfuel_per_call = 1000000\n",
    );
    assert_eq!((tick, kind), (u64::MAX, FaultKind::FuelExhausted));
}

#[test]
fn infinite_loop_in_shutdown_is_contained() {
    let (tick, kind) = contained(
        "hostile-loop",
        &loop_in(3, 0),
        "[limits]\nfuel_per_call = 1000000\n",
    );
    // Shutdown runs after the last tick.
    assert_eq!((tick, kind), (T, FaultKind::FuelExhausted));
}

#[test]
fn infinite_loop_in_receive_is_contained() {
    // The agent mails itself at every step; from tick 3 its receive spins.
    let config = loop_in(2, 3);
    let groups = [
        Group {
            module: "ring",
            count: N,
            config_hex: &ring_of(N),
        },
        Group {
            module: "hostile-loop",
            count: 1,
            config_hex: &config,
        },
    ];
    let mut seen = Vec::new();
    for workers in [1, 2] {
        let s = run(
            scenario(&groups, T, "[limits]\nfuel_per_call = 1000000\n"),
            workers,
            0,
        );
        let faults: Vec<(u32, u64, FaultKind)> = s
            .faults
            .iter()
            .map(|(a, t, k)| (a.index, *t, k.clone()))
            .collect();
        assert_eq!(faults, vec![(N, 3, FaultKind::FuelExhausted)]);
        // The ring's N messages per tick, plus the hostile agent's own three
        // (sent at ticks 0, 1, 2; the one of tick 3 died with its tick).
        assert_eq!(s.messages_delivered, u64::from(N) * T + 3);
        seen.push(s.workload_digest);
    }
    assert_eq!(seen[0], seen[1]);
}
