//! we-sign's tests: signing and verifying modules (every byte of a signed
//! module tampered with, re-signing with an untrusted key, unsigned and
//! malformed modules) and key files (round trips, every malformed case).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod keys;
mod modules;

use std::path::PathBuf;

/// Directory of the built agents; panics with the fix if they are missing.
pub fn agents_dir() -> PathBuf {
    let dir = std::env::var_os("WE_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/agents"));
    assert!(
        dir.join("ring.wasm").exists(),
        "guest agents not found in {}: run `cargo xtask build-agents` (cargo xtask test does it)",
        dir.display()
    );
    dir
}

/// Deterministic test keys: `key(n)` is the same pair in every run.
pub fn key(n: u8) -> (we_sign::SecretKey, we_sign::PublicKey) {
    let secret = we_sign::SecretKey::from_seed(&[n; 32]);
    let public = secret.public_key();
    (secret, public)
}

/// A small valid agent-shaped module (with a name section, so custom sections
/// before the signature are covered too).
pub fn small_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module $small
            (import "we" "tick" (func $tick (result i64)))
            (memory (export "memory") 1)
            (func (export "we_abi_version") (result i32) i32.const 1)
            (func (export "agent_step") (param i32 i32) (result i32)
              call $tick
              drop
              i32.const 0)
            (data (i32.const 16) "hello"))"#,
    )
    .unwrap()
}
