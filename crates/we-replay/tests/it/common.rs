//! Shared helpers: sample traces, proptest strategies, and an independent walk
//! of the raw file bytes that does not use the crate's reader.

use proptest::prelude::*;
use std::path::Path;
use we_core::{AgentId, FaultKind, InferenceResult, Tick, TickRecord, TraceHeader, TraceSink};
use we_replay::{FsyncPolicy, TraceReader, TraceWriter};

pub fn sample_header() -> TraceHeader {
    TraceHeader {
        runtime_version: "0.1.0-test".into(),
        scenario_digest: [0x11; 32],
        config_digest: [0x22; 32],
        seed: 0xDEAD_BEEF,
        agent_count: 3,
        modules: vec![("agents/ping.wasm".into(), [0x33; 32])],
        notes: vec!["inference=cpu".into()],
        scenario: b"[run]\nticks = 4\n".to_vec(),
    }
}

/// A we-abi result payload with one f32 tensor of shape [2, 2].
pub fn f32_payload(values: [f32; 4]) -> Vec<u8> {
    let mut p = Vec::new();
    we_abi::tensor::write_result_header(&mut p, 1);
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    we_abi::tensor::write_tensor(&mut p, "logits", we_abi::tensor::DTYPE_F32, &[2, 2], &data);
    p
}

/// Every fault kind, in tag order.
pub fn all_fault_kinds() -> Vec<FaultKind> {
    vec![
        FaultKind::FuelExhausted,
        FaultKind::Trap {
            code: "unreachable".into(),
        },
        FaultKind::StackOverflow,
        FaultKind::OutOfBounds {
            what: "send".into(),
        },
        FaultKind::MalformedEffects { offset: 12 },
        FaultKind::EffectLimit,
        FaultKind::MessageTooLarge { len: 70_000 },
        FaultKind::ErrorCode(-3),
        FaultKind::Injected,
        FaultKind::Watchdog,
    ]
}

/// A small trace's records: ticks 1, 2, 4, 7, with faults, results and inputs.
pub fn sample_records() -> Vec<TickRecord> {
    let kinds = all_fault_kinds();
    [1u64, 2, 4, 7]
        .iter()
        .enumerate()
        .map(|(i, &tick)| TickRecord {
            tick: Tick(tick),
            effects_digest: [i as u8 + 1; 32],
            workload_digest: [0xA0 + i as u8; 32],
            messages: 10 * i as u64,
            agent_digests: vec![tick, tick * 3, u64::MAX - tick],
            faults: match i {
                1 => vec![(AgentId::new(1), kinds[1].clone())],
                3 => vec![
                    (AgentId::new(0), kinds[6].clone()),
                    (
                        AgentId {
                            index: 2,
                            generation: 1,
                        },
                        kinds[7].clone(),
                    ),
                ],
                _ => vec![],
            },
            inference: match i {
                2 => vec![
                    InferenceResult {
                        agent: AgentId::new(0),
                        tag: 7,
                        outcome: Ok(f32_payload([0.5, -1.25, 1.0 / 3.0, 2.0])),
                    },
                    InferenceResult {
                        agent: AgentId::new(2),
                        tag: 8,
                        outcome: Err("model not found: tiny".into()),
                    },
                ],
                _ => vec![],
            },
            inputs: if i == 0 {
                vec![b"hello".to_vec()]
            } else {
                vec![]
            },
            events: if i == 2 {
                vec!["drop 1->2 seq 0".into(), "restart agent 2 g1".into()]
            } else {
                vec![]
            },
        })
        .collect()
}

/// Writes a trace through the `TraceSink` trait; returns the chain heads.
pub fn write_trace(path: &Path, header: &TraceHeader, records: &[TickRecord]) -> Vec<[u8; 32]> {
    let mut w = TraceWriter::create(path, FsyncPolicy::Never).unwrap();
    let sink: &mut dyn TraceSink = &mut w;
    sink.begin(header).unwrap();
    let heads = records.iter().map(|r| sink.record(r).unwrap()).collect();
    sink.finish().unwrap();
    heads
}

/// Reads every record, stopping at the first error.
pub fn read_all(path: &Path) -> we_replay::Result<Vec<TickRecord>> {
    TraceReader::open(path)?.collect()
}

/// The raw layout of a trace, found without the crate's reader.
#[derive(Debug)]
pub struct Layout {
    /// Offset of the first frame.
    pub header_end: u64,
    /// `(start, end)` of every whole frame.
    pub frames: Vec<(u64, u64)>,
    /// `blake3(chain_{i-1} || body_i)` recomputed here, starting from
    /// `blake3(header body)`.
    pub chain: Vec<[u8; 32]>,
    pub header_hash: [u8; 32],
}

/// Walks a well-formed trace's bytes.
pub fn layout(bytes: &[u8]) -> Layout {
    assert_eq!(&bytes[..8], b"WETRACE\0");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        we_replay::FORMAT_VERSION
    );
    let h = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let header_hash = *blake3::hash(&bytes[16..16 + h]).as_bytes();
    assert_eq!(&bytes[16 + h..48 + h], &header_hash);
    let mut at = 48 + h;
    let mut frames = Vec::new();
    let mut chain = Vec::new();
    let mut head = header_hash;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let body = &bytes[at + 4..at + 4 + len];
        let mut hasher = blake3::Hasher::new();
        hasher.update(&head);
        hasher.update(body);
        head = *hasher.finalize().as_bytes();
        assert_eq!(&bytes[at + 4 + len..at + 36 + len], &head);
        chain.push(head);
        frames.push((at as u64, (at + 36 + len) as u64));
        at += 36 + len;
    }
    assert_eq!(at, bytes.len());
    Layout {
        header_end: (48 + h) as u64,
        frames,
        chain,
        header_hash,
    }
}

pub fn arb_fault_kind() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::FuelExhausted),
        ".{0,12}".prop_map(|code| FaultKind::Trap { code }),
        Just(FaultKind::StackOverflow),
        ".{0,12}".prop_map(|what| FaultKind::OutOfBounds { what }),
        any::<u32>().prop_map(|offset| FaultKind::MalformedEffects { offset }),
        Just(FaultKind::EffectLimit),
        any::<u32>().prop_map(|len| FaultKind::MessageTooLarge { len }),
        any::<i32>().prop_map(FaultKind::ErrorCode),
        Just(FaultKind::Injected),
        Just(FaultKind::Watchdog),
    ]
}

pub fn arb_agent() -> impl Strategy<Value = AgentId> {
    (0u32..64, 0u32..4).prop_map(|(index, generation)| AgentId { index, generation })
}

pub fn arb_inference() -> impl Strategy<Value = InferenceResult> {
    (
        arb_agent(),
        any::<u32>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Ok),
            ".{0,16}".prop_map(Err),
        ],
    )
        .prop_map(|(agent, tag, outcome)| InferenceResult {
            agent,
            tag,
            outcome,
        })
}

/// A record with tick 0; the caller sets increasing ticks.
pub fn arb_record() -> impl Strategy<Value = TickRecord> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        proptest::collection::vec(any::<u64>(), 0..20),
        proptest::collection::vec((arb_agent(), arb_fault_kind()), 0..4),
        proptest::collection::vec(arb_inference(), 0..3),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..3),
        proptest::collection::vec(".{0,24}", 0..3),
    )
        .prop_map(
            |(
                effects_digest,
                workload_digest,
                messages,
                agent_digests,
                faults,
                inference,
                inputs,
                events,
            )| {
                TickRecord {
                    tick: Tick(0),
                    effects_digest,
                    workload_digest,
                    messages,
                    agent_digests,
                    faults,
                    inference,
                    inputs,
                    events,
                }
            },
        )
}

/// Records with strictly increasing ticks from a random start.
pub fn arb_records(max: usize) -> impl Strategy<Value = Vec<TickRecord>> {
    (
        0u64..1_000_000,
        proptest::collection::vec((1u64..5, arb_record()), 0..max),
    )
        .prop_map(|(start, items)| {
            let mut tick = start;
            items
                .into_iter()
                .map(|(step, mut r)| {
                    tick += step;
                    r.tick = Tick(tick);
                    r
                })
                .collect()
        })
}

pub fn arb_header() -> impl Strategy<Value = TraceHeader> {
    (
        ".{0,10}",
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec((".{0,10}", any::<[u8; 32]>()), 0..3),
        proptest::collection::vec(".{0,10}", 0..3),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(
                runtime_version,
                scenario_digest,
                config_digest,
                seed,
                agent_count,
                modules,
                notes,
                scenario,
            )| {
                TraceHeader {
                    runtime_version,
                    scenario_digest,
                    config_digest,
                    seed,
                    agent_count,
                    modules,
                    notes,
                    scenario,
                }
            },
        )
}
