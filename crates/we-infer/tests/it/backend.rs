//! The backend: results against plain Rust, batching, per-request errors, and
//! round trips of several named tensors through the we-abi format.

use we_core::{InferenceBackend, Postprocess, Tick};

use crate::{
    T, argmax, backend, batch, decode, observation, policy_reference, policy_request, request,
    xorshift64,
};

/// Random observations from a printed seed.
fn random_observations(seed: u64, n: usize) -> Vec<[f32; 16]> {
    println!("random observations: seed {seed:#x}");
    let mut x = seed;
    (0..n)
        .map(|_| {
            let mut obs = [0f32; 16];
            for o in &mut obs {
                x = xorshift64(x);
                *o = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            }
            obs
        })
        .collect()
}

#[test]
fn policy_logits_match_plain_rust_within_1e_5() {
    let mut b = backend();
    let mut cases: Vec<[f32; 16]> = (0..16).map(|i| observation(xorshift64(i + 1))).collect();
    cases.push([0.0; 16]);
    cases.push([1.0; 16]);
    cases.extend(random_observations(0x5eed_0001, 32));
    let requests: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, o)| policy_request(i as u32, o))
        .collect();
    let results = b.run(Tick(0), &batch(&requests));
    assert_eq!(results.len(), cases.len());
    for ((obs, req), res) in cases.iter().zip(&requests).zip(&results) {
        assert_eq!(
            (res.agent, res.tag),
            (req.agent, req.tag),
            "results come back in request order"
        );
        let outs = decode(res.outcome.as_ref().expect("policy result"));
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].name, "logits");
        assert_eq!(outs[0].dims, [1, 4]);
        let got = outs[0].f32s();
        let want = policy_reference(obs);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5,
                "obs {obs:?}: ort {got:?}, plain Rust {want:?}"
            );
        }
        assert_eq!(
            argmax(&got),
            argmax(&want),
            "obs {obs:?}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn batched_results_equal_one_by_one_results_bitwise() {
    let mut b = backend();
    let cases = random_observations(0x5eed_0100, 100);
    let requests: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, o)| policy_request(i as u32, o))
        .collect();
    let batched = b.run(Tick(0), &batch(&requests));
    for (i, req) in requests.iter().enumerate() {
        let alone = b.run(Tick(1), &batch(std::slice::from_ref(req)));
        assert_eq!(
            alone[0].outcome, batched[i].outcome,
            "request {i}: batch of 100 vs batch of 1 differ"
        );
    }
}

#[test]
fn a_request_may_carry_several_rows() {
    let mut b = backend();
    let cases = random_observations(0x5eed_0200, 5);
    let flat: Vec<f32> = cases[1..4].iter().flatten().copied().collect();
    let requests = vec![
        policy_request(0, &cases[0]),
        request(1, "policy", &[T::F32("obs", &[3, 16], &flat)]),
        policy_request(2, &cases[4]),
    ];
    let results = b.run(Tick(0), &batch(&requests));
    let three = decode(results[1].outcome.as_ref().unwrap());
    assert_eq!(three[0].dims, [3, 4]);
    let got = three[0].f32s();
    for (row, obs) in cases[1..4].iter().enumerate() {
        let single = b.run(Tick(1), &batch(&[policy_request(9, obs)]));
        let single = decode(single[0].outcome.as_ref().unwrap())[0].f32s();
        assert_eq!(&got[row * 4..row * 4 + 4], single.as_slice(), "row {row}");
    }
    let last = decode(results[2].outcome.as_ref().unwrap())[0].f32s();
    let single = b.run(Tick(2), &batch(&[policy_request(9, &cases[4])]));
    assert_eq!(last, decode(single[0].outcome.as_ref().unwrap())[0].f32s());
}

#[test]
fn a_missing_model_fails_only_its_requests() {
    let mut b = backend();
    let obs = observation(7);
    let requests = vec![
        policy_request(0, &obs),
        request(1, "no_such_model", &[T::F32("obs", &[1, 16], &obs)]),
        policy_request(2, &obs),
    ];
    let results = b.run(Tick(0), &batch(&requests));
    assert!(results[0].outcome.is_ok());
    let err = results[1].outcome.as_ref().unwrap_err();
    assert!(
        err.contains("no_such_model") && err.contains("not in the registry"),
        "{err}"
    );
    assert_eq!(results[0].outcome, results[2].outcome);
}

#[test]
fn bad_inputs_fail_only_their_requests_and_name_the_problem() {
    let mut b = backend();
    let obs = observation(3);
    let obs15 = &obs[..15];
    let ints = [1i64; 16];
    let mut truncated = policy_request(6, &obs);
    truncated.inputs.truncate(truncated.inputs.len() - 3);
    let requests = vec![
        policy_request(0, &obs),
        request(1, "policy", &[T::F32("observation", &[1, 16], &obs)]),
        request(2, "policy", &[T::I64("obs", &[1, 16], &ints)]),
        request(3, "policy", &[T::F32("obs", &[1, 15], obs15)]),
        request(
            4,
            "policy",
            &[T::F32("obs", &[1, 16], &obs), T::F32("obs", &[1, 16], &obs)],
        ),
        request(5, "policy", &[]),
        truncated,
        request(7, "policy", &[T::F32("obs", &[16], &obs)]),
        policy_request(8, &obs),
    ];
    let results = b.run(Tick(0), &batch(&requests));
    let expect = [
        (1, "has no input `observation`"),
        (2, "dtype i64, the model takes f32"),
        (3, "shape [1, 15], the model takes [-1, 16]"),
        (4, "takes 1 input tensor(s)"),
        (5, "takes 1 input tensor(s)"),
        (6, "malformed tensor bytes"),
        (7, "shape [16]"),
    ];
    for (i, text) in expect {
        let err = results[i].outcome.as_ref().unwrap_err();
        assert!(
            err.contains("policy@1") && err.contains(text),
            "request {i}: {err}"
        );
    }
    assert!(results[0].outcome.is_ok());
    assert_eq!(results[0].outcome, results[8].outcome);
}

#[test]
fn requests_as_long_as_a_valid_one_are_still_checked_in_full() {
    // After a valid request, requests of exactly its byte length that differ
    // in a name, a dtype or a dim (never only in data) must each be refused.
    let mut b = backend();
    let obs = observation(3);
    let other = observation(9);
    let ints = [7i64; 8];
    let requests = vec![
        policy_request(0, &obs),
        request(1, "policy", &[T::F32("obz", &[1, 16], &obs)]),
        request(2, "policy", &[T::I64("obs", &[1, 8], &ints)]),
        request(3, "policy", &[T::F32("obs", &[2, 8], &obs)]),
        policy_request(4, &other),
        policy_request(5, &obs),
    ];
    let lens: Vec<usize> = requests.iter().map(|r| r.inputs.len()).collect();
    assert!(lens.iter().all(|&l| l == lens[0]), "{lens:?}");
    let results = b.run(Tick(0), &batch(&requests));
    let expect = [
        (1, "has no input `obz`"),
        (2, "dtype i64, the model takes f32"),
        (3, "shape [2, 8], the model takes [-1, 16]"),
    ];
    for (i, text) in expect {
        let err = results[i].outcome.as_ref().unwrap_err();
        assert!(err.contains(text), "request {i}: {err}");
    }
    let logits = |i: usize| decode(results[i].outcome.as_ref().unwrap())[0].f32s();
    assert_eq!(logits(0), logits(5));
    let want = policy_reference(&other);
    for (got, want) in logits(4).iter().zip(want) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}

#[test]
fn multi_input_multi_output_round_trip() {
    let mut b = backend();
    let requests = vec![
        request(
            0,
            "multi_io",
            &[
                T::F32("a", &[1, 3], &[0.5, 1.5, -2.0]),
                T::I64("b", &[1, 3], &[1, 2, 3]),
            ],
        ),
        // Inputs in the other order, two rows.
        request(
            1,
            "multi_io",
            &[
                T::I64("b", &[2, 3], &[10, 20, 30, -1, -2, -3]),
                T::F32("a", &[2, 3], &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
            ],
        ),
        request(2, "policy", &[T::F32("obs", &[1, 16], &[0.0; 16])]),
    ];
    let results = b.run(Tick(0), &batch(&requests));
    let r0 = decode(results[0].outcome.as_ref().unwrap());
    assert_eq!(r0[0].name, "sum");
    assert_eq!(r0[0].dims, [1, 3]);
    assert_eq!(r0[0].f32s(), [1.5, 3.5, 1.0]);
    assert_eq!(r0[1].name, "count");
    assert_eq!(r0[1].dims, [1, 1]);
    assert_eq!(r0[1].i64s(), [6]);
    let r1 = decode(results[1].outcome.as_ref().unwrap());
    assert_eq!(r1[0].dims, [2, 3]);
    assert_eq!(r1[0].f32s(), [10.0, 20.0, 30.0, 0.0, -1.0, -2.0]);
    assert_eq!(r1[1].dims, [2, 1]);
    assert_eq!(r1[1].i64s(), [60, -6]);
    assert!(results[2].outcome.is_ok());
}

#[test]
fn stateful_model_state_round_trips_each_call() {
    let mut b = backend();
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let mut state = [0f32; 4];
    let mut expected = [0f32; 4];
    for tick in 0..4 {
        let req = request(
            0,
            "stateful",
            &[T::F32("x", &[4], &x), T::F32("state", &[4], &state)],
        );
        let res = b.run(Tick(tick), &batch(&[req]));
        let outs = decode(res[0].outcome.as_ref().unwrap());
        assert_eq!(outs[0].name, "state_out");
        assert_eq!(outs[0].dims, [4]);
        assert_eq!(outs[1].name, "norm");
        assert_eq!(outs[1].dims, Vec::<u64>::new(), "a scalar");
        for (e, xi) in expected.iter_mut().zip(&x) {
            *e = *e * 0.5 + xi;
        }
        state = outs[0].f32s().try_into().unwrap();
        assert_eq!(state, expected, "tick {tick}");
        assert_eq!(outs[1].f32s(), [expected.iter().sum::<f32>()]);
    }
}

#[test]
fn stateful_requests_of_one_tick_run_one_by_one() {
    let mut b = backend();
    let requests: Vec<_> = (0..3)
        .map(|i| {
            let v = i as f32;
            request(
                i,
                "stateful",
                &[
                    T::F32("x", &[4], &[v; 4]),
                    T::F32("state", &[4], &[10.0; 4]),
                ],
            )
        })
        .collect();
    let results = b.run(Tick(0), &batch(&requests));
    for (i, r) in results.iter().enumerate() {
        let outs = decode(r.outcome.as_ref().unwrap());
        assert_eq!(outs[0].f32s(), [5.0 + i as f32; 4]);
    }
}

#[test]
fn models_are_grouped_in_commit_order_and_results_keep_request_order() {
    let mut b = backend();
    let obs = observation(11);
    let mk_multi = |agent| {
        request(
            agent,
            "multi_io",
            &[
                T::F32("a", &[1, 3], &[1.0; 3]),
                T::I64("b", &[1, 3], &[1; 3]),
            ],
        )
    };
    let requests = vec![
        mk_multi(0),
        policy_request(1, &obs),
        mk_multi(2),
        policy_request(3, &obs),
    ];
    let results = b.run(Tick(0), &batch(&requests));
    let agents: Vec<u32> = results.iter().map(|r| r.agent.index).collect();
    assert_eq!(agents, [0, 1, 2, 3]);
    assert_eq!(results[0].outcome, results[2].outcome);
    assert_eq!(results[1].outcome, results[3].outcome);
    assert!(b.describe().contains("cpu"));
}

#[test]
fn requests_batch_together_only_when_their_dynamic_dims_agree() {
    let mut b = backend();
    // Sequences of length 2, 3, 2, 1, 3: three batches (seq 2, 3, 1), results in
    // request order.
    let seqs = [2usize, 3, 2, 1, 3];
    let inputs: Vec<Vec<f32>> = seqs
        .iter()
        .enumerate()
        .map(|(i, &seq)| (0..seq * 4).map(|k| (i * 100 + k) as f32).collect())
        .collect();
    let requests: Vec<_> = seqs
        .iter()
        .zip(&inputs)
        .enumerate()
        .map(|(i, (&seq, x))| {
            request(
                i as u32,
                "mean_pool",
                &[T::F32("x", &[1, seq as u64, 4], x)],
            )
        })
        .collect();
    let results = b.run(Tick(0), &batch(&requests));
    for (i, (&seq, x)) in seqs.iter().zip(&inputs).enumerate() {
        let outs = decode(results[i].outcome.as_ref().unwrap());
        assert_eq!(outs[0].dims, [1, 4]);
        let want: Vec<f32> = (0..4)
            .map(|c| (0..seq).map(|t| x[t * 4 + c]).sum::<f32>() / seq as f32)
            .collect();
        assert_eq!(outs[0].f32s(), want, "request {i} (seq {seq})");
        let alone = b.run(Tick(1), &batch(std::slice::from_ref(&requests[i])));
        assert_eq!(
            alone[0].outcome, results[i].outcome,
            "request {i}: batched vs alone"
        );
    }
}

#[test]
fn argmax_postprocessing_gives_each_requests_argmax_as_its_payload() {
    let mut raw = backend();
    let mut post = backend();
    assert!(post.postprocess("policy", Postprocess::Argmax));
    let cases = random_observations(0x5eed_0400, 40);
    let flat: Vec<f32> = cases[1..4].iter().flatten().copied().collect();
    let mut requests: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, o)| policy_request(i as u32, o))
        .collect();
    // A three-row request: the argmax is over its 12 logits, flattened.
    requests.push(request(77, "policy", &[T::F32("obs", &[3, 16], &flat)]));
    // A bad request keeps its own error.
    requests.push(request(
        78,
        "policy",
        &[T::F32("obs", &[1, 15], &flat[..15])],
    ));
    let logits = raw.run(Tick(0), &batch(&requests));
    let actions = post.run(Tick(0), &batch(&requests));
    assert_eq!(actions.len(), requests.len());
    for (i, (l, a)) in logits.iter().zip(&actions).enumerate() {
        assert_eq!((a.agent, a.tag), (l.agent, l.tag));
        match (&l.outcome, &a.outcome) {
            (Ok(l), Ok(a)) => {
                let want = argmax(&decode(l)[0].f32s()) as u64;
                assert_eq!(a.as_slice(), want.to_le_bytes(), "request {i}");
            }
            (Err(l), Err(a)) => assert_eq!(l, a, "request {i}"),
            other => panic!("request {i}: {other:?}"),
        }
    }
    assert!(actions[41].outcome.is_err());
}

#[test]
fn results_handed_back_are_overwritten_whole() {
    let mut b = backend();
    assert!(b.postprocess("policy", Postprocess::Argmax));
    let first: Vec<_> = random_observations(0x5eed_0500, 30)
        .iter()
        .enumerate()
        .map(|(i, o)| policy_request(i as u32, o))
        .collect();
    let second: Vec<_> = random_observations(0x5eed_0600, 12)
        .iter()
        .enumerate()
        .map(|(i, o)| policy_request(100 + i as u32, o))
        .collect();
    let mut results = Vec::new();
    b.run_into(Tick(0), &batch(&first), &mut results);
    assert_eq!(results.len(), 30);
    // Fewer requests, then more again: each time exactly what a fresh
    // backend gives.
    for (tick, reqs) in [(1, &second), (2, &first)] {
        b.run_into(Tick(tick), &batch(reqs), &mut results);
        let mut fresh = backend();
        assert!(fresh.postprocess("policy", Postprocess::Argmax));
        assert_eq!(results, fresh.run(Tick(tick), &batch(reqs)), "tick {tick}");
    }
}

/// A backend that splits batches of at least `split_rows` rows in two and
/// runs at most `chunk_rows` rows at a time (0: never).
fn backend_splitting(split_rows: u64, chunk_rows: u64) -> we_infer::OrtBackend {
    let config = we_infer::ManagerConfig {
        split_rows,
        chunk_rows,
        ..crate::config(64 << 20)
    };
    we_infer::OrtBackend::new(we_infer::ModelManager::new(crate::registry(), config).unwrap())
}

#[test]
fn a_batch_split_over_two_sessions_and_cut_in_runs_gives_the_same_bits_as_whole() {
    let cases = random_observations(0x5eed_0700, 3000);
    let flat: Vec<f32> = cases[..5].iter().flatten().copied().collect();
    let mut requests = Vec::new();
    for (i, obs) in cases.iter().enumerate() {
        let agent = i as u32;
        requests.push(match i {
            // Another model's requests among them, a bad one, and one of
            // five rows, all in the half that goes to the second session.
            _ if i % 97 == 5 => request(agent, "hunter", &[T::F32("obs", &[1, 16], obs)]),
            2500 => request(agent, "policy", &[T::F32("obs", &[1, 15], &obs[..15])]),
            2600 => request(agent, "policy", &[T::F32("obs", &[5, 16], &flat)]),
            _ => policy_request(agent, obs),
        });
    }
    // (split_rows, chunk_rows): the default cut, runs of 7 rows (the
    // five-row request ends one), and runs cut without a split.
    let cuts = [(1000, 1024), (1000, 7), (0, 300)];
    for ((split_rows, chunk_rows), argmax) in cuts.into_iter().zip([false, true, true]) {
        let mut whole = backend_splitting(0, 0);
        let mut split = backend_splitting(split_rows, chunk_rows);
        if argmax {
            assert!(whole.postprocess("policy", Postprocess::Argmax));
            assert!(split.postprocess("policy", Postprocess::Argmax));
        }
        let want = whole.run(Tick(0), &batch(&requests));
        let mut got = Vec::new();
        for tick in 0..3 {
            split.run_into(Tick(tick), &batch(&requests), &mut got);
            assert_eq!(got.len(), want.len());
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g, w,
                    "cut {split_rows}/{chunk_rows}, tick {tick}, request {k}"
                );
            }
        }
        assert!(got[2500].outcome.is_err());
        assert!(got[2600].outcome.is_ok());
        // A split ran on a second session, counted against the budget.
        let twin = if split_rows > 0 {
            policy_bytes(&whole)
        } else {
            0
        };
        assert_eq!(
            split.manager().used_bytes(),
            whole.manager().used_bytes() + twin,
            "cut {split_rows}/{chunk_rows}"
        );
    }
}

/// What the policy model counts against the budget (hunter is loaded too).
fn policy_bytes(b: &we_infer::OrtBackend) -> u64 {
    let all = b.manager().used_bytes();
    let mut alone = backend_splitting(0, 0);
    alone.run(Tick(0), &batch(&[policy_request(0, &[0.0; 16])]));
    assert!(alone.manager().used_bytes() < all);
    alone.manager().used_bytes()
}
