//! A reference of the `infer` workload digest (shared/workloads.md) computed with
//! ONNX Runtime directly, so the runtime's digest can be compared with it, and the
//! same workload through `OrtBackend`, which must agree.

use ort::value::TensorRef;
use we_core::{InferenceBackend, Tick};

use crate::{
    argmax, backend, batch, decode, manager, observation, policy_reference, policy_request,
    xorshift64,
};

/// Digest of one tick: `blake3(D || t || messages)`, a message being
/// `(u32::MAX, agent, action)` little-endian.
fn advance(d: [u8; 32], tick: u64, actions: &[u64]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&d);
    h.update(&tick.to_le_bytes());
    for (agent, a) in actions.iter().enumerate() {
        h.update(&u32::MAX.to_le_bytes());
        h.update(&(agent as u32).to_le_bytes());
        h.update(&a.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// Runs the workload with `act` choosing each tick's actions from the states.
fn workload(n: usize, t: u64, mut act: impl FnMut(u64, &[u64]) -> Vec<u64>) -> String {
    let mut states: Vec<u64> = (0..n as u64).map(|i| i + 1).collect();
    let mut inbox: Option<Vec<u64>> = None;
    let mut d = [0u8; 32];
    for tick in 0..t {
        if let Some(actions) = inbox.take() {
            for (s, a) in states.iter_mut().zip(actions) {
                *s = xorshift64(*s ^ a);
            }
        }
        let actions = act(tick, &states);
        d = advance(d, tick, &actions);
        inbox = Some(actions);
    }
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn infer_workload_reference_digest_n8_t5() {
    const N: usize = 8;
    const T: u64 = 5;

    // ONNX Runtime directly: one run per tick on a [N, 16] batch.
    let mut m = manager();
    let session = m.session_mut("policy").unwrap();
    let direct = workload(N, T, |_, states| {
        let obs: Vec<f32> = states.iter().flat_map(|&s| observation(s)).collect();
        let input = TensorRef::from_array_view(([N, 16], obs.as_slice())).unwrap();
        let outputs = session.run(ort::inputs!["obs" => input]).unwrap();
        let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().unwrap();
        logits.chunks_exact(4).map(|l| argmax(l) as u64).collect()
    });

    // Through the backend: one request per agent per tick.
    let mut b = backend();
    let via_backend = workload(N, T, |tick, states| {
        let requests: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(i, &s)| policy_request(i as u32, &observation(s)))
            .collect();
        b.run(Tick(tick), &batch(&requests))
            .iter()
            .map(|r| argmax(&decode(r.outcome.as_ref().unwrap())[0].f32s()) as u64)
            .collect()
    });

    // Plain Rust f32, for information: agrees unless a near-tie flips an argmax.
    let plain = workload(N, T, |_, states| {
        states
            .iter()
            .map(|&s| argmax(&policy_reference(&observation(s))) as u64)
            .collect()
    });

    println!("infer workload N={N} T={T} digest (ort direct):  {direct}");
    println!("infer workload N={N} T={T} digest (OrtBackend):  {via_backend}");
    println!("infer workload N={N} T={T} digest (plain Rust):  {plain}");
    assert_eq!(
        direct, via_backend,
        "the backend must give the direct ONNX Runtime digest"
    );
}
