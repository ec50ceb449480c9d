//! Host tests of the guest SDK, run through the native simulated host: the same
//! export entry points, context decoding and outbox batching as in the sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use we_abi::{InitContext, MessageHeader, SplitMix64, StepContext};
use we_agent::__private::Runtime;
use we_agent::native::{Effect, Export, Fault, Harness, emit_status};
use we_agent::prelude::*;
use we_agent::{FLUSH_THRESHOLD, RegionError, status};

/// The ring workload, as in the SDK's front-page example.
#[derive(Default)]
struct Ring;

impl Agent for Ring {
    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        ctx.send_u64((ctx.id() + 1) % ctx.agent_count(), msg.u64() + 1);
    }
    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.tick() == 0 {
            ctx.send_u64((ctx.id() + 1) % ctx.agent_count(), u64::from(ctx.id()));
        }
    }
}

#[test]
fn ring_agent_round_trip() {
    let mut h = Harness::<Ring>::new(2, 3, 1);
    assert!(h.init(b"cfg").is_empty());
    assert_eq!(h.tick(), 0);
    assert_eq!(h.step(), vec![Effect::send_u64(0, 2)]);
    assert_eq!(h.tick(), 1);
    h.deliver_u64(1, 7);
    h.deliver_u64(1, 9);
    assert_eq!(h.pending(), 2);
    assert_eq!(
        h.step(),
        vec![Effect::send_u64(0, 8), Effect::send_u64(0, 10)]
    );
    assert_eq!(h.pending(), 0);
    assert!(h.step().is_empty());
    assert!(h.shutdown().is_empty());
    assert!(h.faults().is_empty());
}

/// Records everything it is told, to check what the SDK hands an agent.
#[derive(Default)]
struct Recorder {
    config: Vec<u8>,
    ids: (u32, u32, u32, u32),
    seen: Vec<(u32, u16, u32, Vec<u8>)>,
    ticks: Vec<(u64, bool)>,
    step_info: Vec<(u32, u32, u64)>,
    shut: bool,
}

impl Agent for Recorder {
    fn init(&mut self, ctx: &mut Ctx, config: &[u8]) {
        self.config = config.to_vec();
        self.ids = (
            ctx.id(),
            ctx.generation(),
            ctx.agent_count(),
            ctx.group_index(),
        );
    }
    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        self.ticks.push((ctx.tick(), ctx.in_step()));
        self.seen.push((
            msg.sender(),
            msg.kind(),
            msg.channel(),
            msg.payload().to_vec(),
        ));
    }
    fn step(&mut self, ctx: &mut Ctx) {
        self.ticks.push((ctx.tick(), ctx.in_step()));
        self.step_info
            .push((ctx.inbox_len(), ctx.refused(), ctx.fuel_per_call()));
    }
    fn shutdown(&mut self, _ctx: &mut Ctx) {
        self.shut = true;
    }
}

#[test]
fn contexts_reach_the_agent() {
    let mut h = Harness::<Recorder>::new(4, 9, 0)
        .with_generation(2)
        .with_group_index(1);
    h.init(&[1, 2, 3]);
    assert_eq!(h.agent().config, vec![1, 2, 3]);
    assert_eq!(h.agent().ids, (4, 2, 9, 1));

    h.set_tick(10);
    h.set_refused(3);
    h.set_fuel_per_call(1_000);
    h.deliver(1, b"abc");
    h.deliver_topic(2, 5, &[]);
    h.deliver_record(7, msg_kind::SYSTEM, 0, b"sys");
    h.step();
    let a = h.agent();
    assert_eq!(
        a.seen,
        vec![
            (1, msg_kind::DIRECT, 0, b"abc".to_vec()),
            (2, msg_kind::TOPIC, 5, vec![]),
            (7, msg_kind::SYSTEM, 0, b"sys".to_vec()),
        ]
    );
    // In receive the tick comes from the host, in step from the step context.
    assert_eq!(
        a.ticks,
        vec![(10, false), (10, false), (10, false), (10, true)]
    );
    assert_eq!(a.step_info, vec![(3, 3, 1_000)]);
    h.shutdown();
    assert!(h.agent().shut);
}

/// Handles the inbox as a whole.
#[derive(Default)]
struct Batch {
    sizes: Vec<usize>,
}

impl Agent for Batch {
    fn receive_all(&mut self, ctx: &mut Ctx, inbox: Inbox) {
        self.sizes.push(inbox.len());
        let sum = inbox.iter().map(|m| m.u64()).sum::<u64>();
        ctx.publish_u64(3, sum);
    }
}

#[test]
fn receive_all_sees_the_whole_inbox() {
    let mut h = Harness::<Batch>::new(0, 2, 0);
    h.init(&[]);
    assert!(h.step().is_empty(), "no inbox, no receive");
    for v in 1..=4 {
        h.deliver_u64(1, v);
    }
    assert_eq!(h.step(), vec![Effect::publish_u64(3, 10)]);
    assert_eq!(h.agent().sizes, vec![4]);
}

/// Sends `n` messages per step.
struct Sender {
    n: u32,
}

impl Agent for Sender {
    fn step(&mut self, ctx: &mut Ctx) {
        for i in 0..self.n {
            ctx.send_u64(i % 7, u64::from(i));
        }
    }
}

#[test]
fn effects_leave_in_one_emit_per_call() {
    let mut h = Harness::with_agent(Sender { n: 1_000 }, 0, 7, 0);
    h.init(&[]);
    let effects = h.step();
    assert_eq!(effects.len(), 1_000);
    assert_eq!(effects[999], Effect::send_u64(999 % 7, 999));
    assert_eq!(h.emit_calls(), 1, "one emit per export call");
    h.step();
    assert_eq!(h.emit_calls(), 2);
}

#[test]
fn a_big_outbox_is_flushed_early() {
    let n = 10_000u32;
    let mut h = Harness::with_agent(Sender { n }, 0, 7, 0);
    h.init(&[]);
    let effects = h.step();
    assert_eq!(effects.len(), n as usize);
    let per_record = 24;
    let per_flush = FLUSH_THRESHOLD.div_ceil(per_record);
    let expected = (n as usize).div_ceil(per_flush) as u64;
    assert_eq!(h.emit_calls(), expected);
    // Order survives the flushes.
    for (i, e) in effects.iter().enumerate() {
        assert_eq!(e.as_send_u64(), Some(((i % 7) as u32, i as u64)));
    }
}

#[test]
fn an_effect_budget_faults_the_call_and_drops_the_rest() {
    let mut h = Harness::with_agent(Sender { n: 10_000 }, 0, 7, 0).with_effect_bytes_max(100_000);
    h.init(&[]);
    let effects = h.step();
    // The first 64 KiB batch fits; the second crosses the budget, and nothing after it leaves.
    let per_flush = FLUSH_THRESHOLD.div_ceil(24);
    assert_eq!(effects.len(), per_flush);
    assert_eq!(h.emit_calls(), 2);
    assert_eq!(
        h.faults(),
        &[Fault {
            tick: 0,
            export: Export::Step,
            status: emit_status::EFFECT_LIMIT
        }]
    );
}

/// Exercises every kind of effect.
#[derive(Default)]
struct Everything;

impl Agent for Everything {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        ctx.join(4);
        ctx.join(5);
        ctx.leave(5);
    }
    fn step(&mut self, ctx: &mut Ctx) {
        ctx.info("starting");
        ctx.send(1, b"hello");
        ctx.send_with(2, 3, |b| b.copy_from_slice(b"xyz"));
        ctx.publish(4, b"news");
        ctx.region_create(9, 8);
        ctx.region_write(9, 2, b"ab");
        let obs = [0.5f32, -1.0];
        let ids = [7i64, 8, 9];
        ctx.infer(
            "policy",
            77,
            &[
                TensorRef::f32("obs", &[1, 2], &obs),
                TensorRef::i64("ids", &[3], &ids),
            ],
        )
        .unwrap();
        ctx.log(log_level::DEBUG, "done");
    }
}

#[test]
fn every_effect_kind_round_trips() {
    let mut h = Harness::<Everything>::new(0, 3, 0);
    assert_eq!(
        h.init(&[]),
        vec![
            Effect::Join { topic: 4 },
            Effect::Join { topic: 5 },
            Effect::Leave { topic: 5 }
        ]
    );
    let effects = h.step();
    // Log lines are host calls made at once; effects leave when the call returns.
    assert_eq!(
        effects[0],
        Effect::Log {
            level: log_level::INFO,
            text: "starting".into()
        }
    );
    assert_eq!(
        effects[1],
        Effect::Log {
            level: log_level::DEBUG,
            text: "done".into()
        }
    );
    assert_eq!(
        effects[2],
        Effect::Send {
            to: 1,
            payload: b"hello".to_vec()
        }
    );
    assert_eq!(
        effects[3],
        Effect::Send {
            to: 2,
            payload: b"xyz".to_vec()
        }
    );
    assert_eq!(
        effects[4],
        Effect::Publish {
            topic: 4,
            payload: b"news".to_vec()
        }
    );
    assert_eq!(effects[5], Effect::RegionCreate { region: 9, len: 8 });
    assert_eq!(
        effects[6],
        Effect::RegionWrite {
            region: 9,
            offset: 2,
            data: b"ab".to_vec()
        }
    );
    let Effect::Infer {
        slot,
        tag,
        model,
        inputs,
    } = &effects[7]
    else {
        panic!("not an inference request: {:?}", effects[7]);
    };
    assert_eq!((*slot, *tag, model.as_str()), (0, 77, "policy"));
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].name, "obs");
    assert_eq!(inputs[0].dims, vec![1, 2]);
    assert_eq!(inputs[0].f32_values(), Some(vec![0.5, -1.0]));
    assert_eq!(inputs[1].i64_values(), Some(vec![7, 8, 9]));
    assert_eq!(inputs[1].f32_values(), None);
    assert_eq!(effects.len(), 8);
    // Region effects are committed at the end of the tick.
    assert_eq!(h.region(9), Some(&[0, 0, b'a', b'b', 0, 0, 0, 0][..]));
    assert!(h.faults().is_empty());
}

/// Makes bad inference requests.
#[derive(Default)]
struct BadInfer {
    errors: Vec<AgentError>,
}

impl Agent for BadInfer {
    fn step(&mut self, ctx: &mut Ctx) {
        let data = [0f32; 4];
        let cases = [
            ctx.infer("m", 0, &[TensorRef::f32("x", &[3], &data)]),
            ctx.infer("m", 0, &[TensorRef::f32("x", &[1; 9], &data[..1])]),
            ctx.infer("m", 0, &[TensorRef::f32("x", &[u64::MAX, 2], &data)]),
            ctx.infer(&"m".repeat(70_000), 0, &[]),
        ];
        self.errors = cases.into_iter().filter_map(Result::err).collect();
    }
}

#[test]
fn bad_inference_requests_are_refused_before_they_leave() {
    let mut h = Harness::<BadInfer>::new(0, 1, 0);
    h.init(&[]);
    assert!(h.step().is_empty());
    let errors = &h.agent().errors;
    assert_eq!(errors.len(), 4);
    assert!(matches!(errors[0], AgentError::BadTensor { .. }));
    assert!(matches!(errors[1], AgentError::BadTensor { .. }));
    assert!(matches!(errors[2], AgentError::BadTensor { .. }));
    assert!(matches!(
        errors[3],
        AgentError::TooLarge {
            what: "model name",
            ..
        }
    ));
    assert_eq!(errors[0].status(), status::BAD_TENSOR);
    // Returned errors the agent ignored do not fail the call.
    assert!(h.faults().is_empty());
}

/// What [`Reader`] saw of one message: tag, logits, count, argmax, error text.
type Seen = (
    Option<u32>,
    Option<Vec<f32>>,
    Option<Vec<i64>>,
    Option<usize>,
    Option<String>,
);

/// Reads inference results.
#[derive(Default)]
struct Reader {
    got: Vec<Seen>,
}

impl Agent for Reader {
    fn receive(&mut self, _ctx: &mut Ctx, msg: &Message) {
        let best = msg.tensor("logits").and_then(|t| argmax(f32_values(&t)?));
        self.got.push((
            msg.tag(),
            msg.tensor_f32("logits"),
            msg.tensor_i64("count"),
            best,
            msg.error_text().map(str::to_owned),
        ));
        assert_eq!(msg.sender(), SENDER_INFERENCE);
        assert_eq!(msg.topic(), None);
    }
}

#[test]
fn inference_results_decode() {
    let mut h = Harness::<Reader>::new(0, 1, 0);
    h.init(&[]);
    h.deliver_infer_result(
        5,
        &[
            TensorRef::i64("count", &[1, 1], &[3]),
            TensorRef::f32("logits", &[1, 4], &[0.25, 3.0, 3.0, -2.0]),
        ],
    )
    .unwrap();
    h.deliver_infer_error(6, "no such model");
    h.step();
    let got = &h.agent().got;
    assert_eq!(
        got[0],
        (
            Some(5),
            Some(vec![0.25, 3.0, 3.0, -2.0]),
            Some(vec![3]),
            Some(1),
            None
        )
    );
    assert_eq!(
        got[1],
        (Some(6), None, None, None, Some("no such model".into()))
    );
}

#[test]
fn message_views() {
    let header = MessageHeader {
        sender: 3,
        kind: msg_kind::TOPIC,
        flags: 0,
        channel: 12,
        len: 3,
    };
    let m = Message::new(header, &[1, 2, 3]);
    assert_eq!(m.u64(), 0x030201, "a short payload reads as zero-extended");
    assert_eq!(m.topic(), Some(12));
    assert_eq!(m.tag(), None);
    assert!(m.is_topic() && !m.is_direct() && !m.is_inference_result());
    assert_eq!(m.tensors().count(), 0);
    assert_eq!(m.tensor_f32("x"), None);

    let mut bytes = Vec::new();
    we_abi::write_record(&mut bytes, header.encode(), &[1, 2, 3]);
    we_abi::write_record(&mut bytes, MessageHeader { len: 0, ..header }.encode(), &[]);
    let inbox = Inbox::new(&bytes);
    assert_eq!(inbox.len(), 2);
    assert_eq!(Inbox::check(&bytes), Some(2));
    assert_eq!(Inbox::check(&bytes[..20]), None);
    assert_eq!(
        Inbox::new(&bytes[..20]).len(),
        0,
        "iteration stops at a bad record"
    );
    let checked = Inbox::checked(&bytes).map(|i| (i.len(), i.iter().count()));
    assert_eq!(checked, Some((2, 2)), "a checked inbox knows its count");
    assert!(Inbox::checked(&bytes[..20]).is_none());
    assert_eq!(Inbox::checked(&[]).map(|i| i.len()), Some(0));
    // The runtime's count is taken on trust; iteration still checks records.
    let counted = Inbox::counted(&bytes, 2);
    assert_eq!((counted.len(), counted.iter().count()), (2, 2));
    assert_eq!(Inbox::counted(&bytes[..20], 2).iter().count(), 0);
    // A payload of 8 bytes or more reads its first 8.
    let m = Message::new(
        MessageHeader { len: 9, ..header },
        &[1, 0, 0, 0, 0, 0, 0, 2, 9],
    );
    assert_eq!(m.u64(), 0x0200_0000_0000_0001);
}

#[test]
fn argmax_takes_the_lowest_index_on_a_tie() {
    assert_eq!(argmax([1.0, 5.0, 5.0, 2.0]), Some(1));
    assert_eq!(argmax([f32::NAN, 1.0]), Some(0));
    assert_eq!(argmax([1.0, f32::NAN, 2.0]), Some(2));
    assert_eq!(argmax([-0.0, 0.0]), Some(0));
    assert_eq!(argmax([]), None);
}

/// Draws random numbers and reports an error when told to.
#[derive(Default)]
struct Rng {
    draws: Vec<u64>,
    fail_with: i32,
}

impl Agent for Rng {
    fn init(&mut self, _ctx: &mut Ctx, config: &[u8]) {
        self.fail_with = le_u32(config, 0).unwrap_or(0) as i32;
    }
    fn step(&mut self, ctx: &mut Ctx) {
        self.draws.push(ctx.rand_u64());
        self.draws.push(ctx.rand_u64());
        ctx.send_u64(0, 1);
        if self.fail_with != 0 {
            ctx.fail(AgentError::code(self.fail_with));
            ctx.fail(AgentError::code(99));
        }
    }
}

#[test]
fn prng_matches_the_host_stream_and_harnesses_share_a_thread() {
    let mut a = Harness::<Rng>::new(1, 2, 42);
    let mut b = Harness::<Rng>::new(2, 3, 42).with_generation(1);
    a.init(&[]);
    b.init(&[]);
    for _ in 0..3 {
        a.step();
        b.step();
    }
    let mut sa = SplitMix64::for_agent(42, 1, 0);
    let mut sb = SplitMix64::for_agent(42, 2, 1);
    let ea: Vec<u64> = (0..6).map(|_| sa.next_u64()).collect();
    let eb: Vec<u64> = (0..6).map(|_| sb.next_u64()).collect();
    assert_eq!(a.agent().draws, ea);
    assert_eq!(b.agent().draws, eb);
}

#[test]
fn fail_sets_the_status_and_the_first_error_wins() {
    let mut h = Harness::<Rng>::new(0, 1, 0);
    h.init(&7u32.to_le_bytes());
    // Effects still leave; the status reports the error.
    assert_eq!(h.step(), vec![Effect::send_u64(0, 1)]);
    assert_eq!(
        h.faults(),
        &[Fault {
            tick: 0,
            export: Export::Step,
            status: 7
        }]
    );
    assert_eq!(AgentError::code(0).status(), 1, "an error is never success");
    assert_eq!(AgentError::code(-5).status(), -5);
}

/// Reads a shared region.
#[derive(Default)]
struct RegionReader {
    out: Vec<Result<(usize, Vec<u8>), RegionError>>,
    len: Vec<Result<usize, RegionError>>,
}

impl Agent for RegionReader {
    fn step(&mut self, ctx: &mut Ctx) {
        let mut buf = [0u8; 4];
        self.len.push(ctx.region_len(1));
        self.out.push(
            ctx.region_read(1, 2, &mut buf)
                .map(|n| (n, buf[..n].to_vec())),
        );
        self.out.push(
            ctx.region_read(1, 50, &mut buf)
                .map(|n| (n, buf[..n].to_vec())),
        );
        self.len.push(ctx.region_len(2));
    }
}

#[test]
fn regions_read_through_the_host() {
    let mut h = Harness::<RegionReader>::new(0, 1, 0);
    h.init(&[]);
    h.set_region(1, b"abcdef");
    h.step();
    let a = h.agent();
    assert_eq!(a.len, vec![Ok(6), Err(RegionError::Stale)]);
    assert_eq!(
        a.out,
        vec![Ok((4, b"cdef".to_vec())), Err(RegionError::OutOfRange)]
    );
}

#[test]
fn oversized_payloads_fault_like_the_sandbox() {
    #[derive(Default)]
    struct Big;
    impl Agent for Big {
        fn step(&mut self, ctx: &mut Ctx) {
            ctx.send_with(0, 5_000, |b| b.fill(1));
            ctx.send_u64(0, 2);
        }
    }
    let mut h = Harness::<Big>::new(0, 1, 0).with_max_payload(4_096);
    h.init(&[]);
    assert!(h.step().is_empty());
    assert_eq!(h.faults()[0].status, emit_status::TOO_LARGE);
}

fn init_bytes(config: &[u8], config_len: u32) -> Vec<u8> {
    let mut head = [0u8; InitContext::SIZE];
    InitContext {
        agent_id: 1,
        generation: 0,
        agent_count: 2,
        group_index: 0,
        config_len,
    }
    .encode(&mut head);
    let mut v = head.to_vec();
    v.extend_from_slice(config);
    v
}

#[test]
fn exports_check_what_the_host_hands_them() {
    let mut rt = Runtime::new(Recorder::default());
    assert_eq!(rt.we_buffer(-1), 0);
    let ptr = rt.we_buffer(64);
    assert_ne!(ptr, 0);
    assert_eq!(rt.we_buffer(16), ptr, "a smaller request keeps the buffer");

    // Ranges outside the buffer are refused without being dereferenced.
    assert_eq!(rt.agent_init(ptr.wrapping_add(60), 32), status::BAD_CONTEXT);
    assert_eq!(rt.agent_init(ptr, -1), status::BAD_CONTEXT);
    assert_eq!(rt.agent_init(ptr.wrapping_sub(1), 8), status::BAD_CONTEXT);
    assert_eq!(
        rt.agent_step(ptr, 16),
        status::BAD_CONTEXT,
        "short step context"
    );

    // A config length past the bytes handed in.
    let bytes = init_bytes(b"ab", 3);
    rt.buffer_mut()[..bytes.len()].copy_from_slice(&bytes);
    assert_eq!(rt.agent_init(ptr, bytes.len() as i32), status::BAD_CONTEXT);

    let bytes = init_bytes(b"abc", 3);
    rt.buffer_mut()[..bytes.len()].copy_from_slice(&bytes);
    assert_eq!(rt.agent_init(ptr, bytes.len() as i32), 0);
    assert_eq!(rt.agent().config, b"abc");
    assert_eq!(rt.ctx().id(), 1);

    // A malformed inbox is refused whole.
    let mut inbox = Vec::new();
    let h = MessageHeader {
        sender: 0,
        kind: msg_kind::DIRECT,
        flags: 0,
        channel: 0,
        len: 8,
    };
    we_abi::write_record(&mut inbox, h.encode(), &[0; 8]);
    we_abi::write_record(
        &mut inbox,
        MessageHeader { len: 100, ..h }.encode(),
        &[0; 8],
    );
    rt.buffer_mut()[..inbox.len()].copy_from_slice(&inbox);
    assert_eq!(
        rt.agent_receive(ptr, inbox.len() as i32),
        status::BAD_CONTEXT
    );
    assert!(rt.agent().seen.is_empty());

    // An offset inside the buffer is fine.
    let mut step = [0u8; StepContext::SIZE];
    StepContext {
        tick: 5,
        ..StepContext::default()
    }
    .encode(&mut step);
    rt.buffer_mut()[8..40].copy_from_slice(&step);
    assert_eq!(rt.agent_step(ptr.wrapping_add(8), 32), 0);
    assert_eq!(rt.agent().ticks, vec![(5, true)]);
}

#[test]
fn raw_calls_report_bad_contexts_as_faults() {
    let mut h = Harness::<Ring>::new(0, 1, 0);
    assert_eq!(h.call_raw(Export::Init, &[0; 8]), status::BAD_CONTEXT);
    assert_eq!(
        h.faults(),
        &[Fault {
            tick: 0,
            export: Export::Init,
            status: status::BAD_CONTEXT
        }]
    );
}

/// An agent whose effects show what a pack hands it: its id, its PRNG
/// stream, its inbox and the config; agent 1 fails its step at tick 1.
#[derive(Default)]
struct Packed {
    config_len: usize,
}

impl Agent for Packed {
    fn init(&mut self, ctx: &mut Ctx, config: &[u8]) {
        self.config_len = config.len();
        let r = ctx.rand_u64();
        ctx.send_u64(ctx.id(), r);
    }
    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        ctx.send_u64(msg.sender(), msg.u64() + self.config_len as u64);
    }
    fn step(&mut self, ctx: &mut Ctx) {
        if ctx.id() == 1 && ctx.tick() == 1 {
            ctx.fail(AgentError::code(7));
            return;
        }
        let r = ctx.rand_u64() ^ u64::from(ctx.group_index());
        ctx.publish_u64(ctx.tick() as u32, r);
    }
}

fn pack_buffer(
    kind: u32,
    tick: u64,
    entries: &[we_abi::pack::PackEntry],
    body: &[u8],
    config_len: u32,
) -> Vec<u8> {
    use we_abi::pack::{PackEntry, PackHeader};
    let head = PackHeader {
        kind,
        count: entries.len() as u32,
        tick,
        fuel_per_call: 1000,
        agent_count: 3,
        config_len,
    };
    let mut out = vec![0u8; PackHeader::SIZE];
    head.encode((&mut out[..]).try_into().unwrap());
    for e in entries {
        let mut b = [0u8; PackEntry::SIZE];
        e.encode(&mut b);
        out.extend_from_slice(&b);
    }
    out.extend_from_slice(body);
    out
}

#[test]
fn a_pack_call_runs_each_agent_as_alone_and_marks_where_each_ends() {
    use we_abi::pack::{PACK_INIT, PACK_STEP, PackEntry};
    let mut h = Harness::<Packed>::new(0, 3, 5);
    let stream = |id| SplitMix64::for_agent(5, id, 0);
    let entries: Vec<PackEntry> = (0..3)
        .map(|slot| PackEntry {
            slot,
            agent_id: slot,
            group_index: 10 + slot,
            rng_state: stream(slot).state(),
            ..PackEntry::default()
        })
        .collect();
    assert_eq!(
        h.call_raw(
            Export::Pack,
            &pack_buffer(PACK_INIT, 0, &entries, b"abcd", 4)
        ),
        0
    );
    let mut expected = Vec::new();
    for slot in 0..3 {
        expected.push(Effect::send_u64(slot, stream(slot).next_u64()));
        expected.push(Effect::PackEnd { slot, status: 0 });
    }
    assert_eq!(h.take_events(), expected);

    // Tick 1: agent 0 has two messages, agent 2 is not run, agent 1 fails.
    let mut inbox = Vec::new();
    for v in [100u64, 200] {
        let header = MessageHeader {
            sender: 2,
            kind: 0,
            flags: 0,
            channel: 0,
            len: 8,
        };
        we_abi::write_record(&mut inbox, header.encode(), &v.to_le_bytes());
    }
    let step_entries = [
        PackEntry {
            inbox_len: 2,
            inbox_bytes: inbox.len() as u32,
            ..entries[0]
        },
        PackEntry {
            rng_state: 0,
            ..entries[1]
        },
    ];
    assert_eq!(
        h.call_raw(
            Export::Pack,
            &pack_buffer(PACK_STEP, 1, &step_entries, &inbox, 0)
        ),
        0
    );
    let mut s0 = stream(0);
    s0.next_u64();
    assert_eq!(
        h.take_events(),
        vec![
            Effect::send_u64(2, 104),
            Effect::send_u64(2, 204),
            Effect::publish_u64(1, s0.next_u64() ^ 10),
            Effect::PackEnd { slot: 0, status: 0 },
            Effect::PackEnd { slot: 1, status: 7 },
        ]
    );

    // A slot that holds no agent fails alone; a truncated buffer fails the call.
    let ghost = [PackEntry {
        slot: 9,
        ..entries[0]
    }];
    assert_eq!(
        h.call_raw(Export::Pack, &pack_buffer(PACK_STEP, 2, &ghost, &[], 0)),
        0
    );
    assert_eq!(
        h.take_events(),
        vec![Effect::PackEnd {
            slot: 9,
            status: status::BAD_CONTEXT
        }]
    );
    let whole = pack_buffer(PACK_STEP, 2, &entries, &[], 0);
    assert_eq!(
        h.call_raw(Export::Pack, &whole[..whole.len() - 1]),
        status::BAD_CONTEXT
    );
    // A runtime without a factory cannot host a pack.
    let mut single = Harness::with_agent(Packed::default(), 0, 3, 5);
    assert_eq!(
        single.call_raw(Export::Pack, &pack_buffer(PACK_INIT, 0, &entries, b"", 0)),
        status::BAD_CONTEXT
    );
}
