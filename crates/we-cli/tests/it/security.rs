//! Signed modules and capabilities, end to end: what the runtime admits and
//! what it refuses, with the refusal naming the module and the reason.

use crate::{Group, agents_dir, dev_key, group, run, scenario};
use std::path::Path;
use we_runtime::{RunOptions, Scenario};

/// A one-group scenario around `module` (a path), trusting `keys`.
fn scenario_for(module: &Path, keys: &[&Path]) -> Scenario {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    let text = format!(
        "seed = 1\nticks = 3\n[security]\ntrusted_keys = [{}]\n[[agents]]\nname = \"ring\"\nmodule = {module:?}\ncount = 4\n",
        keys.join(", ")
    );
    Scenario::parse("security-test", text.as_bytes(), agents_dir()).unwrap()
}

fn build_err(s: Scenario, allow_unsigned: bool) -> String {
    match we_cli::build(
        s,
        RunOptions {
            allow_unsigned,
            ..RunOptions::default()
        },
    ) {
        Ok(_) => panic!("the runtime admitted the module"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn signed_tampered_unknown_key_and_unsigned_modules() {
    let dir = tempfile::tempdir().unwrap();
    let signed = std::fs::read(agents_dir().join("ring.wasm")).unwrap();
    let dev = dev_key();

    // The untampered, signed module loads and runs.
    let path = dir.path().join("ring.wasm");
    std::fs::write(&path, &signed).unwrap();
    let mut rt = we_cli::build(scenario_for(&path, &[&dev]), RunOptions::default()).unwrap();
    let summary = rt.run(|_| {}).unwrap();
    assert_eq!(summary.messages_delivered, 12);
    assert_eq!(summary.signed_modules.len(), 1);
    assert!(summary.unsigned_modules.is_empty());

    // One byte of the code changed: refused as tampered, naming the module.
    let mut tampered = signed.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    std::fs::write(&path, &tampered).unwrap();
    let e = build_err(scenario_for(&path, &[&dev]), false);
    assert!(e.contains("ring.wasm") && e.contains("tampered"), "{e}");

    // Re-signed with a key the scenario does not trust.
    let (stranger, _) = we_sign::generate_keypair().unwrap();
    let resigned = we_sign::sign_module("ring.wasm", &signed, &stranger).unwrap();
    std::fs::write(&path, &resigned).unwrap();
    let e = build_err(scenario_for(&path, &[&dev]), false);
    assert!(
        e.contains("ring.wasm") && e.contains(&stranger.key_id().to_string()),
        "{e}"
    );
    // Even the development flag does not wave an untrusted signature through.
    let e = build_err(scenario_for(&path, &[&dev]), true);
    assert!(e.contains("ring.wasm"), "{e}");

    // Unsigned: refused, unless the development flag is given, which the
    // summary and the trace header then say.
    let unsigned = &signed[..signed.len() - we_sign::module::SECTION_LEN];
    std::fs::write(&path, unsigned).unwrap();
    let e = build_err(scenario_for(&path, &[&dev]), false);
    assert!(e.contains("ring.wasm") && e.contains("unsigned"), "{e}");
    let mut rt = we_cli::build(
        scenario_for(&path, &[&dev]),
        RunOptions {
            allow_unsigned: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    let trace = dir.path().join("unsigned.trace");
    we_cli::record_to(&mut rt, &trace, we_replay::FsyncPolicy::Never).unwrap();
    let summary = rt.run(|_| {}).unwrap();
    assert_eq!(summary.unsigned_modules.len(), 1);
    let header = we_replay::TraceReader::open(&trace)
        .unwrap()
        .header()
        .clone();
    assert!(
        header
            .notes
            .iter()
            .any(|n| n.contains("UNSIGNED MODULES ALLOWED")),
        "{:?}",
        header.notes
    );
    // The replay honours what the header recorded.
    we_cli::verify_trace(&trace, we_cli::InferenceMode::Recorded, None, None, None).unwrap();
}

#[test]
fn malformed_trusted_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ring = agents_dir().join("ring.wasm");
    for (name, text, needle) in [
        ("garbage.pub", "not a key\n", "garbage.pub"),
        (
            "secret.pub",
            &std::fs::read_to_string(dev_key().with_extension("key")).unwrap()[..],
            "secret.pub",
        ),
        ("short.pub", "we-ed25519-public:abcd\n", "short.pub"),
    ] {
        let key = dir.path().join(name);
        std::fs::write(&key, text).unwrap();
        let e = build_err(scenario_for(&ring, &[&key]), false);
        assert!(e.contains("trusted_keys") && e.contains(needle), "{e}");
    }
    let missing = dir.path().join("missing.pub");
    let e = build_err(scenario_for(&ring, &[&missing]), false);
    assert!(e.contains("missing.pub"), "{e}");
}

#[test]
fn undeclared_effects_are_refused_and_counted() {
    const T: u64 = 5;
    let groups = [
        Group {
            module: "ring",
            count: 4,
            config_hex: "04000000",
        },
        group("hostile-overreach", 1),
    ];
    let mut seen = Vec::new();
    for workers in [1, 2] {
        let s = run(scenario(&groups, T, ""), workers, 0);
        seen.push((s.workload_digest, s.messages_delivered, s.messages_refused));
        // Five undeclared uses per step: a send, a publish, a join, a region
        // create and an inference request.
        assert_eq!(s.capability_refusals, 5 * T, "W={workers}");
        assert!(s.faults.is_empty(), "{:?}", s.faults);
        // Each tick: the ring's 4, one more per send to agent 0 so far (each
        // goes on around the ring), and the INFER_ERROR answer to the
        // malformed request: sum over t of (4 + (t + 1) + 1).
        let expected: u64 = (0..T).map(|t| 4 + (t + 1) + 1).sum();
        assert_eq!(s.messages_delivered, expected, "W={workers}");
    }
    // The split commit (W=2) refuses and delivers exactly what the serial
    // one (W=1) does.
    assert_eq!(seen[0], seen[1]);
}
