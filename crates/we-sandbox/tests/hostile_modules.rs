//! Hostile modules at load time: random bytes, every truncation of valid
//! modules, valid WebAssembly with bad imports or exports, a wrong ABI
//! version, refused proposals (threads, relaxed SIMD, memory64, multi-memory,
//! exceptions, tail calls), huge memories and tables, oversized sections and
//! looping or trapping start and probe code. Each is refused with the exact
//! [`Error`] variant and a message naming the module; nothing panics, and no
//! instance grows past the memory cap. Also: NaNs computed by guest
//! arithmetic come out canonical, whatever the host CPU would produce.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use we_core::{AgentCall, AgentId, AgentInstance, CallOutcome, Emitted, FaultKind, Tick};
use we_sandbox::{Error, Sandbox, SandboxConfig};

/// A sandbox with small limits, so hostile probes end quickly.
fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        fuel_per_call: 1_000_000,
        memory_pages_max: 64,
        ..SandboxConfig::default()
    })
}

/// Loads `bytes` as `name`; on error, checks that the message names the module.
fn load(name: &str, bytes: &[u8]) -> Result<usize, Error> {
    let result = sandbox().load_module(name, bytes);
    if let Err(e) = &result {
        assert!(
            e.to_string().contains(name),
            "error does not name {name}: {e}"
        );
    }
    result
}

/// Loads `wat` text, declaring every host function; on error, checks that the
/// message names the module.
fn load_wat(name: &str, wat: &str) -> Result<usize, Error> {
    load(name, &parse(wat))
}

/// Every host function of ABI v1, as a capability declaration.
const ALL_HOST: &str = "host = tick self_id rand_u64 emit log region_read region_len";

/// `bytes` with a `we.capabilities` custom section holding `text` appended.
fn with_capabilities(mut bytes: Vec<u8>, text: &str) -> Vec<u8> {
    let name = we_core::CAPABILITIES_SECTION.as_bytes();
    let mut contents = leb(name.len() as u32);
    contents.extend_from_slice(name);
    contents.extend_from_slice(text.as_bytes());
    bytes.push(0);
    bytes.extend(leb(contents.len() as u32));
    bytes.extend(contents);
    bytes
}

fn leb(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Module text to bytes, declaring every host function.
fn parse(wat: &str) -> Vec<u8> {
    with_capabilities(wat::parse_str(wat).expect("test module text"), ALL_HOST)
}

/// Parts of an agent module that tests replace.
struct Agent<'a> {
    imports: &'a str,
    memory: &'a str,
    version: &'a str,
    step: &'a str,
    extra: &'a str,
    omit_export: Option<&'a str>,
}

const AGENT: Agent<'static> = Agent {
    imports: r#"(import "we" "emit" (func $emit (param i32 i32) (result i32)))"#,
    memory: r#"(memory (export "memory") 1)"#,
    version: "i32.const 1",
    step: "i32.const 0",
    extra: "",
    omit_export: None,
};

impl Agent<'_> {
    /// The module text: every ABI export, with this agent's parts.
    fn wat(&self) -> String {
        let export = |name: &str| {
            if self.omit_export == Some(name) {
                String::new()
            } else {
                format!("(export \"{name}\")")
            }
        };
        format!(
            r#"(module
                {imports}
                {memory}
                (func {e_version} (result i32) {version})
                (func {e_buffer} (param i32) (result i32) i32.const 1024)
                (func {e_init} (param i32 i32) (result i32) i32.const 0)
                (func {e_receive} (param i32 i32) (result i32) i32.const 0)
                (func {e_step} (param i32 i32) (result i32) {step})
                (func {e_shutdown} (result i32) i32.const 0)
                {extra})"#,
            imports = self.imports,
            memory = self.memory,
            version = self.version,
            step = self.step,
            extra = self.extra,
            e_version = export("we_abi_version"),
            e_buffer = export("we_buffer"),
            e_init = export("agent_init"),
            e_receive = export("agent_receive"),
            e_step = export("agent_step"),
            e_shutdown = export("agent_shutdown"),
        )
    }

    fn bytes(&self) -> Vec<u8> {
        parse(&self.wat())
    }
}

fn invalid(result: Result<usize, Error>) -> String {
    match result {
        Err(Error::InvalidModule { reason, .. }) => reason,
        other => panic!("expected InvalidModule, got {other:?}"),
    }
}

fn instantiate_error(result: Result<usize, Error>) -> String {
    match result {
        Err(Error::Instantiate { reason, .. }) => reason,
        other => panic!("expected Instantiate, got {other:?}"),
    }
}

#[test]
fn the_template_agent_loads() {
    load("template.wasm", &AGENT.bytes()).unwrap();
}

#[test]
fn random_bytes_are_invalid_modules() {
    // xorshift64 with a fixed seed: a failure reproduces exactly.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let len = (next() % 512) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let with_preamble = round % 2 == 1 && len >= 8;
        if with_preamble {
            bytes[..8].copy_from_slice(b"\0asm\x01\0\0\0");
        }
        let result = load("random.wasm", &bytes);
        if with_preamble {
            assert!(result.is_err(), "round {round}: random bytes loaded");
        } else {
            invalid(result);
        }
    }
    invalid(load("empty.wasm", b""));
}

/// Byte offsets at which `bytes` (a valid module) has a section boundary.
fn section_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut out = vec![8];
    let mut pos = 8;
    while pos < bytes.len() {
        pos += 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let b = bytes[pos];
            pos += 1;
            size |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        pos += size;
        out.push(pos);
    }
    out
}

/// Loads prefixes of `bytes` (every `step`-th, the last 64 and every section
/// boundary): a prefix
/// that ends inside a section is an invalid module; one that ends on a
/// section boundary is a shorter module, which may load or be refused, but
/// always with an error naming the module.
fn check_truncations(name: &str, bytes: &[u8], step: usize) {
    let boundaries = section_boundaries(bytes);
    let mut counts = [0usize; 3];
    let lens: std::collections::BTreeSet<usize> = (0..bytes.len())
        .step_by(step)
        .chain(bytes.len().saturating_sub(64)..bytes.len())
        .chain(boundaries.iter().copied().filter(|&b| b < bytes.len()))
        .collect();
    for len in lens {
        let result = load(name, &bytes[..len]);
        if boundaries.contains(&len) {
            counts[if result.is_ok() { 0 } else { 1 }] += 1;
        } else {
            invalid(result);
            counts[2] += 1;
        }
    }
    eprintln!(
        "{name}: {} bytes; prefixes on section boundaries: {} loaded, {} refused; {} mid-section prefixes all invalid",
        bytes.len(),
        counts[0],
        counts[1],
        counts[2]
    );
}

#[test]
fn every_truncation_of_a_small_agent_is_refused() {
    check_truncations("small.wasm", &AGENT.bytes(), 1);
}

#[test]
fn truncations_of_ring_wasm_are_refused() {
    let dir = std::env::var_os("WE_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/agents"));
    let path = dir.join("ring.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `cargo xtask build-agents` (cargo xtask test does it)",
            path.display()
        )
    });
    load("ring.wasm", &bytes).unwrap();
    // Every prefix: about 20,000 loads.
    check_truncations("ring.wasm", &bytes, 1);
}

#[test]
fn unknown_imports_are_refused() {
    for (imports, import_module, name) in [
        (r#"(import "env" "abort" (func))"#, "env", "abort"),
        (r#"(import "we" "exec" (func))"#, "we", "exec"),
        (
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
            "wasi_snapshot_preview1",
            "fd_write",
        ),
        ("", "we", "memory"),
    ] {
        let bytes = if imports.is_empty() {
            // The module's only memory imported from the host.
            Agent {
                memory: r#"(memory (export "memory") (import "we" "memory") 1)"#,
                ..AGENT
            }
            .bytes()
        } else {
            Agent { imports, ..AGENT }.bytes()
        };
        match load("imports.wasm", &bytes) {
            Err(Error::UnknownImport {
                import_module: m,
                name: n,
                known,
                ..
            }) => {
                assert_eq!((m.as_str(), n.as_str()), (import_module, name));
                assert!(
                    known.contains("emit") && known.contains("rand_u64"),
                    "{known}"
                );
            }
            other => panic!("{import_module}.{name}: expected UnknownImport, got {other:?}"),
        }
    }
}

#[test]
fn mistyped_imports_are_refused() {
    for (imports, name) in [
        (r#"(import "we" "tick" (func (result i32)))"#, "tick"),
        (
            r#"(import "we" "emit" (func (param i64 i32) (result i32)))"#,
            "emit",
        ),
        (r#"(import "we" "log" (func (param i32 i32 i32)))"#, "log"),
        (r#"(import "we" "self_id" (global i32))"#, "self_id"),
    ] {
        let bytes = Agent { imports, ..AGENT }.bytes();
        match load("imports.wasm", &bytes) {
            Err(Error::ImportType {
                name: n, expected, ..
            }) => {
                assert_eq!(n, name);
                assert!(!expected.is_empty());
            }
            other => panic!("{name}: expected ImportType, got {other:?}"),
        }
    }
}

#[test]
fn missing_or_mistyped_exports_are_refused() {
    for export in [
        "we_abi_version",
        "we_buffer",
        "agent_init",
        "agent_receive",
        "agent_step",
        "agent_shutdown",
    ] {
        let bytes = Agent {
            omit_export: Some(export),
            ..AGENT
        }
        .bytes();
        match load("exports.wasm", &bytes) {
            Err(Error::MissingExport { export: e, .. }) => assert_eq!(e, export),
            other => panic!("{export}: expected MissingExport, got {other:?}"),
        }
    }
    // Present under the right name with the wrong type.
    let bytes = Agent {
        omit_export: Some("agent_step"),
        extra: r#"(func (export "agent_step") (param i32) (result i32) i32.const 0)"#,
        ..AGENT
    }
    .bytes();
    match load("exports.wasm", &bytes) {
        Err(Error::MissingExport {
            export, expected, ..
        }) => {
            assert_eq!(export, "agent_step");
            assert!(expected.to_lowercase().contains("i32"), "{expected}");
        }
        other => panic!("expected MissingExport, got {other:?}"),
    }
    // No exported memory.
    let bytes = Agent {
        memory: "(memory 1)",
        ..AGENT
    }
    .bytes();
    match load("exports.wasm", &bytes) {
        Err(Error::MissingExport { export, .. }) => assert_eq!(export, "memory"),
        other => panic!("expected MissingExport memory, got {other:?}"),
    }
}

#[test]
fn wrong_abi_versions_are_refused() {
    for (version, declared) in [
        ("i32.const 3", 3u32),
        ("i32.const 0", 0),
        ("i32.const -1", u32::MAX),
    ] {
        let bytes = Agent { version, ..AGENT }.bytes();
        match load("version.wasm", &bytes) {
            Err(Error::AbiMismatch {
                declared: d,
                min,
                max,
                ..
            }) => {
                assert_eq!(d, declared);
                assert_eq!(
                    (min, max),
                    (we_abi::ABI_VERSION_MIN, we_abi::ABI_VERSION_MAX)
                );
            }
            other => panic!("{version}: expected AbiMismatch, got {other:?}"),
        }
    }
}

#[test]
fn hostile_abi_probes_fault_precisely() {
    type FaultCheck = fn(&FaultKind) -> bool;
    let cases: [(&str, &str, FaultCheck); 3] = [
        ("unreachable", "trap", |f| {
            matches!(f, FaultKind::Trap { .. })
        }),
        ("(loop (br 0)) i32.const 1", "fuel", |f| {
            matches!(f, FaultKind::FuelExhausted)
        }),
        ("call $recurse", "stack", |f| {
            matches!(f, FaultKind::StackOverflow)
        }),
    ];
    for (version, what, check) in cases {
        let bytes = Agent {
            version,
            extra: "(func $recurse (result i32) call $recurse)",
            ..AGENT
        }
        .bytes();
        match load("probe.wasm", &bytes) {
            Err(Error::AbiProbe { fault, .. }) => assert!(check(&fault), "{what}: {fault}"),
            other => panic!("{what}: expected AbiProbe, got {other:?}"),
        }
    }
}

#[test]
fn start_functions_that_trap_or_loop_are_refused() {
    for (extra, what) in [
        ("(func $s unreachable) (start $s)", "trap"),
        ("(func $s (loop (br 0))) (start $s)", "infinite loop"),
    ] {
        let bytes = Agent { extra, ..AGENT }.bytes();
        let reason = instantiate_error(load("start.wasm", &bytes));
        assert!(!reason.is_empty(), "{what}");
    }
}

#[test]
fn refused_proposals_are_invalid_modules() {
    let cases = [
        (
            "threads: shared memory",
            r#"(memory (export "memory") 1 1 shared)"#,
            "",
        ),
        ("memory64", r#"(memory (export "memory") i64 1)"#, ""),
        (
            "multi-memory",
            r#"(memory (export "memory") 1) (memory $second 1)"#,
            "",
        ),
        (
            "relaxed SIMD",
            AGENT.memory,
            "(func (result v128) v128.const i64x2 0 0 v128.const i64x2 0 0 v128.const i64x2 0 0 f32x4.relaxed_madd)",
        ),
        (
            "threads: atomics",
            AGENT.memory,
            "(func (result i32) i32.const 0 i32.atomic.load)",
        ),
        ("exceptions", AGENT.memory, "(tag $t) (func (throw $t))"),
        (
            "tail calls",
            AGENT.memory,
            "(func $tc (result i32) return_call $tc)",
        ),
    ];
    for (what, memory, extra) in cases {
        let bytes = Agent {
            memory,
            extra,
            ..AGENT
        }
        .bytes();
        let reason = invalid(load("proposal.wasm", &bytes));
        assert!(!reason.is_empty(), "{what}");
        eprintln!("{what}: {reason}");
    }
}

#[test]
fn huge_memories_and_tables_are_refused() {
    // Within WebAssembly's limits but above the sandbox's cap: refused when
    // the probe instance is made, before any memory is committed.
    let reason = instantiate_error(load(
        "bigmem.wasm",
        &Agent {
            memory: r#"(memory (export "memory") 65536)"#,
            ..AGENT
        }
        .bytes(),
    ));
    assert!(
        reason.contains("65536") && reason.contains("64"),
        "{reason}"
    );
    let reason = instantiate_error(load(
        "bigtable.wasm",
        &Agent {
            extra: "(table 1000000 funcref)",
            ..AGENT
        }
        .bytes(),
    ));
    assert!(reason.contains("1000000"), "{reason}");
    // The largest table a module can declare: the same.
    let reason = instantiate_error(load(
        "bigtable.wasm",
        &Agent {
            extra: "(table 4294967295 funcref)",
            ..AGENT
        }
        .bytes(),
    ));
    assert!(reason.contains("4294967295"), "{reason}");
    // Beyond WebAssembly's limits: an invalid module.
    let memory_over = Agent {
        memory: r#"(memory (export "memory") 65537)"#,
        ..AGENT
    }
    .wat();
    invalid(load_wat("bigmem.wasm", &memory_over));
}

#[test]
fn oversized_sections_are_refused() {
    let good = AGENT.bytes();
    // A section that claims more bytes than the module has.
    let mut bytes = good.clone();
    bytes.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0x7f]);
    bytes.extend_from_slice(b"\x04name");
    invalid(load("oversized.wasm", &bytes));
    // A type section declaring four billion entries in a few bytes.
    let bytes = b"\0asm\x01\0\0\0\x01\x05\xff\xff\xff\xff\x0f".to_vec();
    invalid(load("counts.wasm", &bytes));
    // A section size with an overlong LEB128.
    let bytes = b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\xff\x01\x00".to_vec();
    invalid(load("leb.wasm", &bytes));
    // A valid 4 MiB data segment that does not fit the 1-page memory.
    let data = "\\00".repeat(4 << 20);
    let big = Agent {
        extra: &format!("(data (i32.const 0) \"{data}\")"),
        ..AGENT
    }
    .wat();
    instantiate_error(load_wat("bigdata.wasm", &big));
    // A 16 MiB custom section is only bytes: it loads, and costs no memory
    // beyond the bytes themselves.
    let mut bytes = good.clone();
    let size: u32 = 16 << 20;
    bytes.push(0);
    let mut v = size + 5;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            bytes.push(b);
            break;
        }
        bytes.push(b | 0x80);
    }
    bytes.extend_from_slice(b"\x04junk");
    bytes.resize(bytes.len() + size as usize, 0xAA);
    load("bigcustom.wasm", &bytes).unwrap();
}

/// Runs `agent_step` once on a fresh instance of `bytes`; returns the outcome
/// and what it emitted.
fn step(bytes: &[u8], config: SandboxConfig) -> (CallOutcome, Emitted, u64) {
    let mut sandbox = Sandbox::new(config);
    let module = sandbox.load_module("step.wasm", bytes).unwrap();
    let mut agent = sandbox
        .instantiate_agent(module, AgentId::new(0), 1)
        .unwrap();
    let mut out = Emitted::default();
    let outcome = agent.call(
        Tick(0),
        AgentCall::Step { context: &[0; 32] },
        None,
        &mut out,
    );
    (outcome, out, agent.memory_bytes())
}

#[test]
fn memory_grow_past_the_cap_fails_inside_the_guest() {
    // Grows by 1000 pages (past the 16-page cap), then by 15 (up to it), then
    // by 1 (past it); sends the three results.
    let step_body = r#"
        (i32.store16 (i32.const 0) (i32.const 1))
        (i32.store (i32.const 12) (i32.const 12))
        (i32.store (i32.const 16) (memory.grow (i32.const 1000)))
        (i32.store (i32.const 20) (memory.grow (i32.const 15)))
        (i32.store (i32.const 24) (memory.grow (i32.const 1)))
        (drop (call $emit (i32.const 0) (i32.const 32)))
        i32.const 0"#;
    let bytes = Agent {
        step: step_body,
        ..AGENT
    }
    .bytes();
    let config = SandboxConfig {
        memory_pages_max: 16,
        ..SandboxConfig::default()
    };
    let (outcome, out, memory_bytes) = step(&bytes, config);
    assert_eq!(outcome, CallOutcome::Ok);
    let results: Vec<i32> = out.effects[16..28]
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        results,
        [-1, 1, -1],
        "grow past the cap fails, up to it works"
    );
    assert_eq!(memory_bytes, 16 * 65536);
}

#[test]
fn nans_computed_by_arithmetic_are_canonical() {
    // `$zero` is 0.0 computed from the call's length argument (32 - 32), so
    // nothing is constant-folded. Each line stores the bits of one NaN: x86
    // would give 0xffc00000 for 0/0 and keep the payload of a signalling NaN
    // operand; canonicalisation gives 0x7fc00000 / 0x7ff8000000000000.
    let step_body = r#"
        (local $zero32 f32) (local $zero64 f64)
        (local.set $zero32 (f32.convert_i32_s (i32.sub (local.get 1) (i32.const 32))))
        (local.set $zero64 (f64.convert_i32_s (i32.sub (local.get 1) (i32.const 32))))
        (i32.store16 (i32.const 0) (i32.const 1))
        (i32.store (i32.const 12) (i32.const 48))
        (i32.store (i32.const 16) (i32.reinterpret_f32 (f32.div (local.get $zero32) (local.get $zero32))))
        (i32.store (i32.const 20) (i32.reinterpret_f32 (f32.sqrt (f32.sub (local.get $zero32) (f32.const 1)))))
        (i32.store (i32.const 24) (i32.reinterpret_f32 (f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (local.get $zero32))))
        (i32.store (i32.const 28) (i32.reinterpret_f32 (f32.mul (f32.reinterpret_i32 (i32.const 0xffc00123)) (local.get $zero32))))
        (i64.store (i32.const 32) (i64.reinterpret_f64 (f64.div (local.get $zero64) (local.get $zero64))))
        (i64.store (i32.const 40) (i64.reinterpret_f64 (f64.sqrt (f64.sub (local.get $zero64) (f64.const 1)))))
        (i64.store (i32.const 48) (i64.reinterpret_f64 (f64.add (f64.reinterpret_i64 (i64.const 0x7ff4000000000001)) (local.get $zero64))))
        (i64.store (i32.const 56) (i64.reinterpret_f64 (f64.mul (f64.reinterpret_i64 (i64.const 0xfff8000000000123)) (local.get $zero64))))
        (drop (call $emit (i32.const 0) (i32.const 64)))
        i32.const 0"#;
    let bytes = Agent {
        step: step_body,
        ..AGENT
    }
    .bytes();
    let (outcome, out, _) = step(&bytes, SandboxConfig::default());
    assert_eq!(outcome, CallOutcome::Ok);
    assert_eq!(out.effects.len(), 64);
    let payload = &out.effects[16..64];
    for (i, c) in payload[..16].chunks(4).enumerate() {
        let bits = u32::from_le_bytes(c.try_into().unwrap());
        assert_eq!(bits, 0x7fc0_0000, "f32 NaN {i}: {bits:#010x}");
    }
    for (i, c) in payload[16..].chunks(8).enumerate() {
        let bits = u64::from_le_bytes(c.try_into().unwrap());
        assert_eq!(bits, 0x7ff8_0000_0000_0000, "f64 NaN {i}: {bits:#018x}");
    }
}

#[test]
fn undeclared_host_imports_are_refused_at_load() {
    let raw = wat::parse_str(AGENT.wat()).unwrap();
    // No declaration at all: not even `emit` is linked.
    let e = load("bare.wasm", &raw).unwrap_err().to_string();
    assert!(
        e.contains("imports `we.emit`") && e.contains("(none)"),
        "{e}"
    );
    // A declaration without the import it needs.
    let e = load(
        "partial.wasm",
        &with_capabilities(raw.clone(), "host = log tick"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("imports `we.emit`") && e.contains("log tick"),
        "{e}"
    );
    // Declared: loads, and the declaration is in the module facts.
    let mut sb = sandbox();
    let m = sb
        .load_module(
            "declared.wasm",
            &with_capabilities(raw, "host = emit\nsend = 0-9\nmodels = policy"),
        )
        .unwrap();
    let info = we_core::AgentHost::module_info(&sb, m).unwrap();
    assert_eq!(info.capabilities.host, vec!["emit".to_string()]);
    assert!(info.capabilities.send.allows(9) && !info.capabilities.send.allows(10));
    assert!(info.capabilities.models.allows("policy"));
}

#[test]
fn malformed_capability_sections_are_refused() {
    let raw = wat::parse_str(AGENT.wat()).unwrap();
    for (text, needle) in [
        ("host = emit\nhost = emit", "declared twice"),
        ("host = emit fork", "unknown host function `fork`"),
        ("host = emit\nsend = 9-1", "range `9-1` is empty"),
        ("files = *", "unknown capability `files`"),
    ] {
        let e = load("caps.wasm", &with_capabilities(raw.clone(), text))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("we.capabilities") && e.contains(needle),
            "{text:?}: {e}"
        );
    }
    // Not UTF-8.
    let mut bad = with_capabilities(raw.clone(), "host = emit");
    let last = bad.len() - 1;
    bad[last] = 0xff;
    let e = load("utf8.wasm", &bad).unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
    // Two sections.
    let twice = with_capabilities(with_capabilities(raw, "host = emit"), "host = emit");
    let e = load("twice.wasm", &twice).unwrap_err().to_string();
    assert!(e.contains("more than one"), "{e}");
}

#[test]
fn table_growth_is_capped_inside_the_guest() {
    // `table.grow` by 2^20 entries at a time: the host refuses past its cap,
    // the guest sees -1 (no trap), and the agent returns that as its status.
    let bytes = Agent {
        extra: r#"(table $t 1 funcref)"#,
        step: "(local $r i32)
               (local.set $r (table.grow $t (ref.null func) (i32.const 1048576)))
               (if (result i32) (i32.eq (local.get $r) (i32.const -1))
                 (then (i32.const 7)) (else (i32.const 0)))",
        ..AGENT
    }
    .bytes();
    let (outcome, _, _) = step(&bytes, SandboxConfig::default());
    assert_eq!(outcome, CallOutcome::Fault(FaultKind::ErrorCode(7)));
}

#[test]
fn one_call_with_the_inbox_equals_receive_then_step() {
    // ABI v2 (the SDK's): `agent_step` with the inbox after the context gives
    // exactly the effects of v1's `agent_receive` then `agent_step`.
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/agents/ring.wasm"),
    )
    .unwrap();
    let mut sb = Sandbox::new(SandboxConfig::default());
    let m = sb.load_module("ring.wasm", &bytes).unwrap();
    let info = we_core::AgentHost::module_info(&sb, m).unwrap();
    assert_eq!(info.abi_version, we_abi::ABI_STEP_WITH_INBOX);
    let mut inbox = Vec::new();
    for (sender, v) in [(3u32, 41u64), (9, u64::MAX)] {
        let h = we_abi::MessageHeader {
            sender,
            kind: we_abi::msg_kind::DIRECT,
            flags: 0,
            len: 8,
            channel: 0,
        };
        we_abi::write_record(&mut inbox, h.encode(), &v.to_le_bytes());
    }
    let mut init = vec![0u8; 32];
    init[8..12].copy_from_slice(&4u32.to_le_bytes()); // agent_count
    let mut ctx = [0u8; 32];
    ctx[0..8].copy_from_slice(&5u64.to_le_bytes()); // tick 5
    ctx[16..20].copy_from_slice(&2u32.to_le_bytes()); // inbox_len
    let run = |one_call: bool| {
        let mut a = sb.instantiate_agent(m, AgentId::new(0), 1).unwrap();
        let mut out = Emitted::default();
        let ok = a.call(Tick(0), AgentCall::Init { context: &init }, None, &mut out);
        assert_eq!(ok, CallOutcome::Ok);
        out.clear();
        if one_call {
            let r = a.call(
                Tick(5),
                AgentCall::StepWithInbox {
                    context: &ctx,
                    inbox: &inbox,
                },
                None,
                &mut out,
            );
            assert_eq!(r, CallOutcome::Ok);
        } else {
            let r = a.call(
                Tick(5),
                AgentCall::Receive { inbox: &inbox },
                None,
                &mut out,
            );
            assert_eq!(r, CallOutcome::Ok);
            let r = a.call(Tick(5), AgentCall::Step { context: &ctx }, None, &mut out);
            assert_eq!(r, CallOutcome::Ok);
        }
        out.effects
    };
    let (v1, v2) = (run(false), run(true));
    assert_eq!(v1, v2);
    // Two sends (42 and 0 after wrapping) to agent 1.
    assert_eq!(v2.len(), 2 * 24);
}
