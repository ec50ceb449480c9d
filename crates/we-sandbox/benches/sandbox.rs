//! `agent_step` through we-sandbox beside a raw wasmer typed call of an empty
//! export (the baseline): the ratio is the sandbox's overhead per call (fuel
//! reset and read-back, context copy, effect buffer swap). Also a pack of
//! 1,000 ring agents stepped by one call, per agent. And the compute
//! workload's agent step (`shared/workloads.md`: 10,000 rounds of
//! xorshift64) through a pack, metered and unmetered, beside the same loop
//! compiled natively: the native loop is the ceiling that no runtime passes.
//! And the whole compute tick at N = 1,000 run natively on two threads in
//! lockstep: what two cores can do with no runtime at all.
//!
//! Needs the built agents (`cargo xtask build-agents`).

#![allow(clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wasmer::{Instance, Module, Store, TypedFunction, imports};
use we_abi::StepContext;
use we_core::{AgentCall, AgentHost, AgentId, Emitted, Tick};
use we_sandbox::{Sandbox, SandboxConfig};

fn ring_module() -> Vec<u8> {
    agent_module("ring.wasm")
}

fn agent_module(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../build/agents")
        .join(file);
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "{}: {e}: run `cargo xtask build-agents` first",
            path.display()
        ),
    }
}

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("call");

    // Baseline: a raw wasmer typed call of an empty export, default engine.
    // (module (func (export "nop") (param i32 i32) (result i32) i32.const 0))
    let wasm: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type (i32 i32) -> i32
        0x03, 0x02, 0x01, 0x00, // one function of type 0
        0x07, 0x07, 0x01, 0x03, b'n', b'o', b'p', 0x00, 0x00, // export "nop"
        0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b, // body: i32.const 0
    ];
    let mut store = Store::default();
    let module = Module::new(&store, wasm).expect("compiles");
    let instance = Instance::new(&mut store, &module, &imports! {}).expect("instantiates");
    let nop: TypedFunction<(i32, i32), i32> = instance
        .exports
        .get_typed_function(&store, "nop")
        .expect("export");
    g.bench_function("raw_wasmer_typed_call", |b| {
        b.iter(|| black_box(nop.call(&mut store, black_box(0), black_box(0))))
    });

    // agent_step of the ring agent at a tick where it has nothing to do.
    let mut sandbox = Sandbox::new(SandboxConfig::default());
    let m = sandbox
        .load_module("ring.wasm", &ring_module())
        .expect("loads");
    let mut agent = sandbox
        .instantiate(m, AgentId::new(0), 1)
        .expect("instantiates");
    let mut out = Emitted::default();
    let mut init = [0u8; 32];
    we_abi::InitContext {
        agent_count: 2,
        ..Default::default()
    }
    .encode(&mut init);
    agent.call(Tick(0), AgentCall::Init { context: &init }, None, &mut out);
    let mut ctx = [0u8; 32];
    StepContext {
        tick: 5,
        fuel_per_call: 50_000_000,
        ..Default::default()
    }
    .encode(&mut ctx);
    g.bench_function("sandbox_agent_step", |b| {
        b.iter(|| {
            out.clear();
            black_box(agent.call(Tick(5), AgentCall::Step { context: &ctx }, None, &mut out))
        })
    });

    // agent_receive with one message, which makes the ring agent send one.
    let mut inbox = Vec::new();
    we_abi::write_record(
        &mut inbox,
        we_abi::MessageHeader {
            sender: 1,
            len: 8,
            ..Default::default()
        }
        .encode(),
        &7u64.to_le_bytes(),
    );
    g.bench_function("sandbox_agent_receive_1msg_send_1", |b| {
        b.iter(|| {
            out.clear();
            black_box(agent.call(
                Tick(5),
                AgentCall::Receive { inbox: &inbox },
                None,
                &mut out,
            ))
        })
    });
    // The call the runtime makes each tick (ABI v2): context and inbox in one
    // `agent_step`, here with the one message that makes the agent send one.
    g.bench_function("sandbox_agent_step_with_inbox_1msg_send_1", |b| {
        b.iter(|| {
            out.clear();
            black_box(agent.call(
                Tick(5),
                AgentCall::StepWithInbox {
                    context: &ctx,
                    inbox: &inbox,
                },
                None,
                &mut out,
            ))
        })
    });

    // A pack of 1,000 ring agents, each with that one message: one pack
    // call steps them all. Reported per agent (criterion's elements).
    const PACK: u32 = 1_000;
    let mut pack = sandbox
        .instantiate_pack(m, PACK, 1)
        .expect("instantiates a pack");
    let mut outs = we_core::PackOutputs::default();
    let members = |inbox: &'static [u8]| -> Vec<we_core::PackMember<'static>> {
        (0..PACK)
            .map(|slot| we_core::PackMember {
                slot,
                id: AgentId::new(slot),
                group_index: slot,
                inbox,
                inbox_len: u32::from(!inbox.is_empty()),
                refused: 0,
            })
            .collect()
    };
    let init_phase = we_core::PackPhase::Init {
        config: &[],
        agent_count: PACK,
    };
    pack.call(Tick(0), init_phase, &members(&[]), None, &mut outs)
        .expect("pack init");
    let inbox: &'static [u8] = Box::leak(inbox.into_boxed_slice());
    let stepped = members(inbox);
    g.throughput(criterion::Throughput::Elements(u64::from(PACK)));
    g.bench_function("sandbox_pack_step_1msg_send_1_per_agent", |b| {
        b.iter(|| {
            outs.effects.clear();
            black_box(pack.call(Tick(5), we_core::PackPhase::Step, &stepped, None, &mut outs))
        })
    });
    g.finish();
}

/// Rounds of xorshift64 in one compute agent step.
const COMPUTE_ROUNDS: u32 = 10_000;

/// One compute agent step's loop, compiled natively.
#[inline(never)]
fn native_compute_step(mut x: u64) -> u64 {
    for _ in 0..COMPUTE_ROUNDS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn compute(c: &mut Criterion) {
    let mut g = c.benchmark_group("compute");
    g.bench_function("native_agent_step", |b| {
        b.iter(|| black_box(native_compute_step(black_box(7))))
    });
    // Packs of 100 compute agents with empty inboxes, stepped by one call:
    // per agent, the loop plus the sandbox's share of a pack call (and each
    // agent's one send).
    const PACK: u32 = 100;
    let bytes = agent_module("compute.wasm");
    for (name, metering) in [
        ("sandbox_pack_agent_step", we_sandbox::Metering::Regions),
        (
            "sandbox_pack_agent_step_unmetered",
            we_sandbox::Metering::Off,
        ),
    ] {
        let mut sandbox = Sandbox::new(SandboxConfig {
            metering,
            ..SandboxConfig::default()
        });
        let m = sandbox.load_module("compute.wasm", &bytes).expect("loads");
        let mut pack = sandbox
            .instantiate_pack(m, PACK, 1)
            .expect("instantiates a pack");
        let mut outs = we_core::PackOutputs::default();
        let members: Vec<we_core::PackMember<'static>> = (0..PACK)
            .map(|slot| we_core::PackMember {
                slot,
                id: AgentId::new(slot),
                group_index: slot,
                inbox: &[],
                inbox_len: 0,
                refused: 0,
            })
            .collect();
        let init_phase = we_core::PackPhase::Init {
            config: &[],
            agent_count: PACK,
        };
        pack.call(Tick(0), init_phase, &members, None, &mut outs)
            .expect("pack init");
        // The step is what the workload says: checked against the native loop
        // (agent 0 holds 1, and sends its new state).
        outs.effects.clear();
        pack.call(Tick(1), we_core::PackPhase::Step, &members, None, &mut outs)
            .expect("pack step");
        let first = &outs.effects[outs.members[0].effects.clone()];
        let sent: Vec<u8> = we_abi::Records::new(first)
            .filter_map(|r| r.ok())
            .filter(|(h, _)| {
                we_abi::EffectHeader::decode(h).is_some_and(|h| h.op == we_abi::op::SEND)
            })
            .flat_map(|(_, payload)| payload.to_vec())
            .collect();
        assert_eq!(
            sent,
            native_compute_step(1).to_le_bytes(),
            "the compute agent's first send is its state after one step"
        );
        g.throughput(criterion::Throughput::Elements(u64::from(PACK)));
        g.bench_function(name, |b| {
            b.iter(|| {
                outs.effects.clear();
                black_box(pack.call(Tick(5), we_core::PackPhase::Step, &members, None, &mut outs))
            })
        });
    }
    // The workload's tick with no runtime: 1,000 agents' native steps on two
    // threads, 500 each, the threads meeting at a barrier after every tick as
    // a tick loop's workers do. What two cores of this machine can do. Ten
    // milliseconds an iteration: ten samples.
    g.sample_size(10);
    g.throughput(criterion::Throughput::Elements(1_000));
    g.bench_function("native_two_thread_tick", |b| {
        b.iter_custom(|iters| {
            let barrier = std::sync::Barrier::new(2);
            let began = std::time::Instant::now();
            std::thread::scope(|scope| {
                for half in 0..2u64 {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let mut states: Vec<u64> = (0..500).map(|i| 2 * i + half + 1).collect();
                        for _ in 0..iters {
                            for state in &mut states {
                                *state = native_compute_step(black_box(*state));
                            }
                            barrier.wait();
                        }
                        black_box(states)
                    });
                }
            });
            began.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, calls, compute);
criterion_main!(benches);
