//! Project automation: `cargo xtask <command>`.
//!
//! - `test`: everything CI checks: fmt, clippy (warnings denied), guest agents
//!   (built, and their native tests),
//!   ONNX Runtime provisioning, every test, golden trace verification, and a
//!   10-second fuzz smoke run of each cheap fuzz target.
//! - `build-agents`: builds the guest agents in `agents/` for wasm32 and copies
//!   them to `build/agents/`.
//! - `provision-ort`: fetches the ONNX Runtime shared library from the PyPI
//!   `onnxruntime` wheel into `build/onnxruntime/`.
//! - `run <demo>`: builds what is missing and runs `fixtures/scenarios/<demo>.toml`;
//!   `run predator-prey [--ui]` also records a trace and verifies it by replay.
//! - `new-agent <name>`: scaffolds an agent crate in `agents/<name>/` from
//!   `xtask/templates/agent/`, with passing native tests (docs/guide/).
//! - `fuzz <target|all|smoke> [--seconds N]`: cargo-fuzz targets (see fuzz/README.md).
//! - `stress [--agents N] [--ticks T] [--soak-ticks S]`: load, fault storm
//!   with determinism check, and soak with resident memory sampled (see
//!   `stress.rs`, docs/FAULTS.md).
//! - `bench [--quick]`: criterion benches and the reference workloads; writes
//!   `docs/BENCHMARKS.md` (see `bench.rs`).
//! - `replay-verify`: re-executes every golden trace in `fixtures/golden/` and
//!   checks it tick by tick; `UPDATE_GOLDEN=1` re-records them and prints what
//!   changed.

mod bench;
mod flagship;
mod fuzz;
mod new_agent;
mod provision;
mod stress;
mod tidy;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("test") => test(&root),
        Some("build-agents") => build_agents(&root),
        Some("provision-ort") => {
            let lib = provision::ensure_onnxruntime(&root)?;
            println!("{}", lib.display());
            Ok(())
        }
        Some("run") => {
            let demo = args
                .get(1)
                .context("usage: cargo xtask run <demo> [we run args]")?;
            run_demo(&root, demo, &args[2..])
        }
        Some("replay-verify") => replay_verify(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("stress") => {
            // The ring needs no inference, so no ONNX Runtime either.
            build_agents(&root)?;
            let we = build_we(&root, Profile::Release)?;
            stress::run(&root, &we, &args[1..])
        }
        Some("new-agent") => new_agent::cli(&root, &args[1..]),
        Some("fuzz") => fuzz::cli(&root, &args[1..]),
        Some("we") => {
            // `cargo xtask we <args>`: the `we` binary with agents and ORT provisioned.
            prepare(&root)?;
            we(&root, &args[1..])
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <test | build-agents | provision-ort | run <demo> | new-agent <name> | replay-verify | bench [--quick] | stress | fuzz <target|all|smoke> [--seconds N] | we <args>>"
            );
            bail!("unknown or missing command")
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// The cargo target directory (`CARGO_TARGET_DIR`, relative to the root, or
/// `target/`).
fn target_dir(root: &Path) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    root.join(dir)
}

/// Which build of the `we` binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    Debug,
    Release,
}

/// Builds the `we` binary and returns its path.
fn build_we(root: &Path, profile: Profile) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--quiet", "--package", "we-cli", "--bin", "we"]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    run(cmd)?;
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    Ok(target_dir(root).join(dir).join("we"))
}

/// Runs a command, failing with its rendering if it fails.
fn run(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: $ {shown}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Builds the guest agents and copies them to `build/agents/`.
/// Adds the `wasm32-unknown-unknown` standard library through rustup when the
/// active toolchain lacks it. `rust-toolchain.toml` names the target, but
/// rustup installs it only when it installs the toolchain itself; a toolchain
/// that was already there (or linked in) may come without it.
fn ensure_wasm_target(agents: &Path) -> Result<()> {
    let libdir = Command::new("rustc")
        .current_dir(agents)
        .args([
            "--print",
            "target-libdir",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .output()
        .context("rustc --print target-libdir")?;
    let dir = String::from_utf8_lossy(&libdir.stdout).trim().to_string();
    let present = libdir.status.success()
        && std::fs::read_dir(&dir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
        });
    if present {
        return Ok(());
    }
    eprintln!("xtask: adding the wasm32-unknown-unknown target through rustup");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(agents)
        .args(["target", "add", "wasm32-unknown-unknown"]);
    run(cmd)
}

fn build_agents(root: &Path) -> Result<()> {
    // `WE_AGENTS_WORKSPACE` and `WE_AGENTS_DIR` point the build at another
    // agents workspace and output folder (the guide's test uses a copy).
    let agents = std::env::var_os("WE_AGENTS_WORKSPACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("agents"));
    // Reproducible modules: a module's blake3 is recorded in every trace, so the
    // same sources must give the same bytes wherever the checkout lives. Source
    // paths are remapped and symbols stripped (agents/Cargo.toml).
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|_| PathBuf::from("/nonexistent"));
    let rustflags = format!(
        "--remap-path-prefix={}=/wasm-engine --remap-path-prefix={}=/cargo",
        root.display(),
        cargo_home.display()
    );
    ensure_wasm_target(&agents)?;
    let mut cmd = cargo();
    cmd.current_dir(&agents)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        // The agents workspace has its own target dir; don't inherit ours.
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.replace(' ', "\x1f"));
    run(cmd)?;
    let out = std::env::var_os("WE_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build/agents"));
    std::fs::create_dir_all(&out)?;
    let built = agents.join("target/wasm32-unknown-unknown/release");
    // Every agent is signed; the fixture scenarios trust the development key.
    let key_path = std::env::var_os("WE_SIGNING_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("fixtures/keys/dev.key"));
    let key = we_sign::SecretKey::load(&key_path)
        .with_context(|| format!("signing key {}", key_path.display()))?;
    let mut count = 0;
    for entry in std::fs::read_dir(&built).with_context(|| built.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path
                .file_name()
                .context("file name")?
                .to_string_lossy()
                .replace('_', "-");
            let bytes = std::fs::read(&path)?;
            let signed = we_sign::sign_module(&name, &bytes, &key)?;
            std::fs::write(out.join(&name), signed)?;
            count += 1;
        }
    }
    eprintln!(
        "xtask: {count} agents in {}, signed with key {}",
        out.display(),
        key.key_id()
    );
    Ok(())
}

/// Builds agents and provisions ONNX Runtime; returns the library path.
fn prepare(root: &Path) -> Result<PathBuf> {
    build_agents(root)?;
    provision::ensure_onnxruntime(root)
}

fn we(root: &Path, args: &[String]) -> Result<()> {
    let lib = provision::ensure_onnxruntime(root)?;
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["run", "--quiet", "--package", "we-cli", "--bin", "we", "--"])
        .args(args)
        .env("ORT_DYLIB_PATH", lib);
    run(cmd)
}

fn run_demo(root: &Path, demo: &str, extra: &[String]) -> Result<()> {
    if demo == "predator-prey" {
        return flagship::run(root, extra);
    }
    let scenario = root.join("fixtures/scenarios").join(format!("{demo}.toml"));
    if !scenario.exists() {
        let mut known = Vec::new();
        for entry in std::fs::read_dir(root.join("fixtures/scenarios"))? {
            let path = entry?.path();
            if let Some(stem) = path.file_stem() {
                known.push(stem.to_string_lossy().to_string());
            }
        }
        known.sort();
        bail!("no demo `{demo}`: known demos are {}", known.join(", "));
    }
    prepare(root)?;
    let mut args = vec!["run".to_string(), scenario.display().to_string()];
    args.extend(extra.iter().cloned());
    we(root, &args)
}

/// Verifies (or with `UPDATE_GOLDEN=1` re-records) the golden traces: the
/// `golden` test of we-cli, so CI reuses the test build.
fn replay_verify(root: &Path) -> Result<()> {
    let lib = prepare(root)?;
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args([
            "test",
            "-p",
            "we-cli",
            "--test",
            "it",
            "golden",
            "--",
            "--nocapture",
        ])
        .env("ORT_DYLIB_PATH", &lib)
        .env("WE_AGENTS_DIR", root.join("build/agents"));
    run(cmd)
}

/// Everything CI checks.
fn test(root: &Path) -> Result<()> {
    let mut fmt = cargo();
    fmt.current_dir(root)
        .args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let lib = prepare(root)?;
    let mut clippy = cargo();
    clippy.current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    let mut agents_fmt = cargo();
    agents_fmt
        .current_dir(root.join("agents"))
        .args(["fmt", "--all", "--", "--check"]);
    run(agents_fmt)?;
    // The guest agents' native tests (their logic under the SDK's harness,
    // no wasm): the agents workspace has its own target dir.
    let mut agents_tests = cargo();
    agents_tests
        .current_dir(root.join("agents"))
        .args(["test", "--workspace"])
        .env_remove("CARGO_TARGET_DIR");
    run(agents_tests)?;
    let mut tests = cargo();
    tests
        .current_dir(root)
        .args(["test", "--workspace"])
        .env("ORT_DYLIB_PATH", &lib)
        .env("WE_AGENTS_DIR", root.join("build/agents"));
    run(tests)?;
    // The golden traces were verified by the tests above; run them once more
    // through the front door so its output is in the log.
    replay_verify(root)?;
    // A short libFuzzer run of every cheap fuzz target (fuzz/README.md).
    fuzz::smoke_all(root, 10)?;
    Ok(())
}
