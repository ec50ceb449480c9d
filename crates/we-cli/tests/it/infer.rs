//! The `infer` workload through the runtime equals a plain-Rust reference that
//! calls ONNX Runtime directly, across runs and worker counts; a missing model
//! reaches the agent as an error message, never a crash.

use crate::{group, run, scenario};
use ort::value::TensorRef;
use std::path::PathBuf;
use we_infer::{ManagerConfig, ModelManager, ModelRegistry};

fn registry_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/models.toml")
}

fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// The workload of shared/workloads.md with the policy run by ort directly.
pub(crate) fn reference(n: usize, ticks: u64) -> [u8; 32] {
    let registry = ModelRegistry::load(registry_path()).unwrap();
    let mut manager = ModelManager::new(registry, ManagerConfig::default()).unwrap();
    let session = manager.session_mut("policy").unwrap();
    let mut state: Vec<u64> = (1..=n as u64).collect();
    let mut pending: Option<Vec<u64>> = None;
    let mut d = [0u8; 32];
    for t in 0..ticks {
        if let Some(actions) = pending.take() {
            for (s, a) in state.iter_mut().zip(actions) {
                *s = xorshift64(*s ^ a);
            }
        }
        let obs: Vec<f32> = state
            .iter()
            .flat_map(|&s| (0..16).map(move |j| ((s >> (4 * j)) & 15) as f32 / 15.0))
            .collect();
        let input = TensorRef::from_array_view(([n, 16], obs.as_slice())).unwrap();
        let outputs = session.run(ort::inputs!["obs" => input]).unwrap();
        let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().unwrap();
        let actions: Vec<u64> = logits
            .chunks_exact(4)
            .map(|l| {
                let mut best = 0;
                for k in 1..4 {
                    if l[k] > l[best] {
                        best = k;
                    }
                }
                best as u64
            })
            .collect();
        let mut h = blake3::Hasher::new();
        h.update(&d);
        h.update(&t.to_le_bytes());
        for (i, a) in actions.iter().enumerate() {
            h.update(&u32::MAX.to_le_bytes());
            h.update(&(i as u32).to_le_bytes());
            h.update(&a.to_le_bytes());
        }
        d = *h.finalize().as_bytes();
        pending = Some(actions);
    }
    d
}

fn infer_scenario(n: u32, ticks: u64) -> we_runtime::Scenario {
    infer_scenario_packed(n, ticks, 1)
}

/// The infer workload with `pack` agents per instance.
pub(crate) fn infer_scenario_packed(n: u32, ticks: u64, pack: u32) -> we_runtime::Scenario {
    let extra = format!(
        "[inference]\nregistry = {:?}\npreload = [\"policy\"]\n[inference.postprocess]\npolicy = \"argmax\"\n",
        registry_path()
    );
    crate::scenario_packed(&[group("infer", n)], ticks, &extra, pack)
}

#[test]
fn infer_digest_matches_ort_direct_across_worker_counts() {
    for (n, t) in [(8u32, 5u64), (64, 12)] {
        let expected = reference(n as usize, t);
        for workers in [1, 2, 3] {
            let s = run(infer_scenario(n, t), workers, 0);
            assert_eq!(s.workload_digest, expected, "infer N={n} T={t} W={workers}");
            assert_eq!(s.inferences, n as u64 * t);
            assert!(s.faults.is_empty(), "{:?}", s.faults);
        }
    }
}

#[test]
fn a_missing_model_reaches_the_agent_as_an_error_message() {
    // No [inference] section: every request is answered with INFER_ERROR; the
    // infer agent logs a warning and the run goes on.
    let s = run(scenario(&[group("infer", 4)], 3, ""), 1, 0);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    assert_eq!(s.inferences, 12);
    assert_eq!(s.messages_delivered, 12, "one error message per request");
    assert!(
        s.log_lines >= 8,
        "the agents saw the errors: {} lines",
        s.log_lines
    );
}
