//! Integration tests of the UI: the observer, the UI process and a real
//! headless Chromium, all on 127.0.0.1.
//!
//! The runtime runs in the test process (`we_cli::build`) with a
//! [`we_observe::WsObserver`]; the UI is the `we-ui` binary, a separate process,
//! so a test can kill it; the browser is Debian's chromium driven by
//! playwright-core (`tests/node/browser.mjs`). The test setup installs what is
//! missing (chromium with apt-get, playwright-core with npm); the guest agents
//! come from `build/agents` (`cargo xtask build-agents`).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod browser;
mod process;
mod ui;

use std::path::PathBuf;
use we_runtime::{RunOptions, Runtime, Scenario};

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

/// Hex of a little-endian `u32`/`u64` config.
fn le_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A lively scenario: a ring of `ring` agents, a shared-region writer and two
/// readers that log every tick, and hostile agents that fault at known ticks
/// (a trap at tick 5, an error status at tick 9, fuel exhaustion at tick 14).
pub fn mixed_scenario(ring: u32, ticks: u64) -> Scenario {
    let mut text = format!(
        "seed = 11\nticks = {ticks}\n[limits]\nfuel_per_call = 2000000\nmailbox_capacity = {cap}\n",
        cap = ring.max(4096)
    );
    // `cargo xtask build-agents` signs the agents with the development key.
    let dev_key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keys/dev.pub");
    text.push_str(&format!("[security]\ntrusted_keys = [{:?}]\n", dev_key));
    let mut group = |name: &str, module: &str, count: u32, config: String| {
        text.push_str(&format!(
            "[[agents]]\nname = \"{name}\"\nmodule = \"{module}.wasm\"\ncount = {count}\n"
        ));
        if !config.is_empty() {
            text.push_str(&format!("config_hex = \"{config}\"\n"));
        }
    };
    group("ring", "ring", ring, le_hex(&ring.to_le_bytes()));
    group("writer", "region-writer", 1, String::new());
    group("reader", "region-reader", 2, String::new());
    let at = |mode: u8, tick: u64| {
        let mut c = vec![mode];
        c.extend_from_slice(&tick.to_le_bytes());
        le_hex(&c)
    };
    group("trap", "hostile-trap", 3, at(2, 5));
    group("error", "hostile-trap", 2, at(5, 9));
    group("spin", "hostile-loop", 2, le_hex(&14u64.to_le_bytes()));
    Scenario::parse("ui-test", text.as_bytes(), agents_dir()).expect("valid scenario")
}

/// Agents in [`mixed_scenario`] besides the ring.
pub const MIXED_EXTRA_AGENTS: u32 = 1 + 2 + 3 + 2 + 2;
/// Agents of [`mixed_scenario`] that have faulted once tick 14 has run.
pub const MIXED_FAULTS: usize = 3 + 2 + 2;

pub fn build(scenario: Scenario) -> Runtime {
    we_cli::build(
        scenario,
        RunOptions {
            workers: Some(2),
            log_tail_lines: 64,
            ..RunOptions::default()
        },
    )
    .expect("runtime builds")
}
