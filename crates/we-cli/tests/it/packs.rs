//! Agent packs (`pack = K` in a group): the same results as unpacked agents
//! for every reference workload and worker count, the same faults and
//! restarts under a fault plan, and the pack as the unit of isolation: a
//! trap in one member faults its pack-mates and nobody else, while an error
//! status stays with the member that returned it.

use crate::infer::{infer_scenario_packed, reference as infer_reference};
use crate::{Group, group, reference, run, scenario, scenario_packed};
use we_core::FaultKind;

#[test]
fn packed_workloads_match_the_reference_at_every_worker_count() {
    let cases = [
        ("ring", 37u32, 12u64, 5u32, reference::ring(37, 12)),
        ("ring", 1000, 10, 300, reference::ring(1000, 10)),
        ("compute", 13, 3, 4, reference::compute(13, 3)),
        ("gossip", 41, 8, 8, reference::gossip(41, 8)),
        ("gossip", 41, 8, 41, reference::gossip(41, 8)),
        // 312 subscribers a topic: a split commit's runs of encodings are
        // long enough to be spliced into the digest input, which is large
        // enough to be hashed on two threads.
        ("gossip", 5000, 4, 1000, reference::gossip(5000, 4)),
    ];
    for (name, n, t, pack, expected) in cases {
        for (workers, perturb) in [(1, 0), (2, 0), (3, 30)] {
            let s = run(
                scenario_packed(&[group(name, n)], t, "", pack),
                workers,
                perturb,
            );
            assert_eq!(
                s.workload_digest, expected,
                "{name} N={n} T={t} pack={pack} W={workers}"
            );
            assert!(s.faults.is_empty(), "{:?}", s.faults);
        }
    }
}

#[test]
fn packed_infer_matches_ort_direct() {
    let expected = infer_reference(64, 6);
    for workers in [1, 2] {
        let s = run(infer_scenario_packed(64, 6, 16), workers, 0);
        assert_eq!(s.workload_digest, expected, "W={workers}");
        assert_eq!(s.inferences, 64 * 6);
        assert!(s.faults.is_empty(), "{:?}", s.faults);
    }
}

#[test]
fn packed_agents_log_under_their_own_name() {
    // No [inference] section: every request is answered with an error and
    // each infer agent logs a warning, from inside a pack of 3.
    let s = run(crate::scenario_packed(&[group("infer", 4)], 3, "", 3), 2, 0);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    assert_eq!(s.messages_delivered, 12);
    assert!(s.log_lines >= 8, "{} lines", s.log_lines);
}

/// A ring of 20 (packed 3 to an instance) beside three `hostile-trap` agents
/// in one pack, of which only group index 1 is hostile (`config`); returns
/// the faults as (agent, tick, kind).
fn ring_and_hostile_pack(config: &str, workers: usize) -> Vec<(u32, u64, FaultKind)> {
    let ring = "14000000";
    let groups = [
        Group {
            module: "ring",
            count: 20,
            config_hex: ring,
        },
        Group {
            module: "hostile-trap",
            count: 3,
            config_hex: config,
        },
    ];
    let s = run(scenario_packed(&groups, 8, "", 3), workers, 0);
    assert_eq!(
        s.workload_digest,
        reference::ring(20, 8),
        "the ring is untouched (W={workers})"
    );
    s.faults
        .iter()
        .map(|(a, t, k)| (a.index, *t, k.clone()))
        .collect()
}

#[test]
fn a_trap_faults_its_pack_mates_and_nobody_else() {
    // Mode 2: trap in `agent_step` from tick 3; byte 9: only group index 1.
    let config = "020300000000000000".to_string() + "01";
    for workers in [1, 2] {
        let faults = ring_and_hostile_pack(&config, workers);
        let trap = FaultKind::Trap {
            code: "unreachable".to_string(),
        };
        // Agents 20..23 are the hostile group; all three share the trap.
        assert_eq!(
            faults,
            vec![(20, 3, trap.clone()), (21, 3, trap.clone()), (22, 3, trap)],
            "W={workers}"
        );
    }
    // Unpacked, the same trap takes only the hostile agent.
    let groups = [Group {
        module: "hostile-trap",
        count: 3,
        config_hex: &config,
    }];
    let alone = run(scenario(&groups, 8, ""), 1, 0);
    assert_eq!(alone.faults.len(), 1, "{:?}", alone.faults);
    assert_eq!(alone.faults[0].0.index, 1);
}

#[test]
fn an_error_status_stays_with_its_member() {
    // Mode 5: `agent_step` returns status 0x7E from tick 2; only index 1.
    let config = "050200000000000000".to_string() + "01";
    for workers in [1, 2] {
        let faults = ring_and_hostile_pack(&config, workers);
        assert_eq!(
            faults,
            vec![(21, 2, FaultKind::ErrorCode(0x7E))],
            "W={workers}"
        );
    }
}

#[test]
fn injected_faults_and_restarts_are_the_same_packed_or_not() {
    let plan = r#"
[[faults.trap]]
agents = "3 17"
tick = 5
[[faults.trap]]
agents = "3"
tick = 12
[[supervision]]
group = "ring"
on_fault = "restart"
backoff_ticks = 2
"#;
    let alone = run(scenario(&[group("ring", 40)], 20, plan), 1, 0);
    assert_eq!(alone.restarts, 3);
    for (workers, pack) in [(1, 8), (2, 8), (2, 40), (3, 7)] {
        let packed = run(
            scenario_packed(&[group("ring", 40)], 20, plan, pack),
            workers,
            0,
        );
        assert_eq!(
            packed.workload_digest, alone.workload_digest,
            "pack={pack} W={workers}"
        );
        assert_eq!(packed.faults, alone.faults, "pack={pack} W={workers}");
        assert_eq!(packed.restarts, alone.restarts);
        assert_eq!(packed.messages_refused, alone.messages_refused);
        assert_eq!(packed.dead_letters, alone.dead_letters);
    }
}

#[test]
fn a_pack_on_static_memories_faults_as_a_small_pack_and_a_lone_agent_do() {
    // A pack this large runs on the static-memory build of its module.
    let large = we_sandbox::PACK_STATIC_SLOTS_MIN;
    // Mode 4: `agent_step` recurses until a stack runs out, from tick 2;
    // byte 9: only group index 1.
    let config = "040200000000000000".to_string() + "01";
    let groups = [Group {
        module: "hostile-trap",
        count: large,
        config_hex: &config,
    }];
    let alone = run(scenario(&groups, 4, ""), 1, 0);
    assert_eq!(alone.faults.len(), 1, "{:?}", alone.faults);
    let (agent, tick, kind) = &alone.faults[0];
    assert_eq!((agent.index, *tick), (1, 2));
    for (pack, faulted) in [(4, 4), (large, large)] {
        for workers in [1, 2] {
            let s = run(scenario_packed(&groups, 4, "", pack), workers, 0);
            // The whole pack of the hostile agent, with its fault.
            let expected: Vec<_> = (0..faulted).map(|i| (i, 2, kind.clone())).collect();
            let got: Vec<_> = s
                .faults
                .iter()
                .map(|(a, t, k)| (a.index, *t, k.clone()))
                .collect();
            assert_eq!(got, expected, "pack={pack} W={workers}");
        }
    }
}
