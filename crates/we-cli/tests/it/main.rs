//! End-to-end tests of the runtime with real wasm agents: reference workload
//! digests, determinism across worker counts, hostile agents contained.
//!
//! The agents come from `build/agents` (or `$WE_AGENTS_DIR`), built by
//! `cargo xtask build-agents`; `cargo xtask test` builds them first.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod faults;
mod golden;
mod hostile;
mod infer;
mod packs;
mod predator_prey;
mod recording;
mod reference;
mod regions;
mod replay;
mod security;
mod workloads;

use std::path::PathBuf;
use we_runtime::{RunOptions, RunSummary, Scenario};

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

/// The development public key `cargo xtask build-agents` signs agents with.
pub fn dev_key() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keys/dev.pub")
}

/// One agent group of a test scenario.
pub struct Group<'a> {
    pub module: &'a str,
    pub count: u32,
    pub config_hex: &'a str,
}

pub fn group(module: &str, count: u32) -> Group<'_> {
    Group {
        module,
        count,
        config_hex: "",
    }
}

/// Builds scenario text for `groups`, with extra top-level TOML in `extra`
/// (placed before the groups, e.g. a `[limits]` table).
pub fn scenario(groups: &[Group<'_>], ticks: u64, extra: &str) -> Scenario {
    scenario_packed(groups, ticks, extra, 1)
}

/// As [`scenario`], every group with `pack = pack` (agents per instance).
pub fn scenario_packed(groups: &[Group<'_>], ticks: u64, extra: &str, pack: u32) -> Scenario {
    let mut text = format!("seed = 7\nticks = {ticks}\n{extra}\n");
    if !extra.contains("[security]") {
        text.push_str(&format!("[security]\ntrusted_keys = [{:?}]\n", dev_key()));
    }
    for g in groups {
        text.push_str(&format!(
            "[[agents]]\nname = \"{m}\"\nmodule = \"{m}.wasm\"\ncount = {c}\n",
            m = g.module,
            c = g.count
        ));
        if !g.config_hex.is_empty() {
            text.push_str(&format!("config_hex = \"{}\"\n", g.config_hex));
        }
        if pack > 1 {
            text.push_str(&format!("pack = {pack}\n"));
        }
    }
    Scenario::parse("test-scenario", text.as_bytes(), agents_dir()).expect("valid scenario")
}

/// Runs `s` on `workers` workers. With two or more, every commit is split
/// over two threads (`split_commit_min = 0`), so comparisons with one worker
/// check the split commit against the serial one.
pub fn run(s: Scenario, workers: usize, perturb_us: u32) -> RunSummary {
    let options = RunOptions {
        workers: Some(workers),
        perturb_us,
        log_tail_lines: 64,
        split_commit_min: Some(0),
        ..RunOptions::default()
    };
    let mut runtime = we_cli::build(s, options).expect("runtime builds");
    runtime.run(|_| {}).expect("run completes")
}
