//! Running compiled agents (`.wasm`) under the real runtime inside a test:
//! the wasmer sandbox, the tick loop, ONNX Runtime inference and the trace,
//! wired exactly as the `we` command wires them (through the we-cli library).
//!
//! ```no_run
//! use we_testkit::wasm::{WasmScenario, module};
//!
//! let run = WasmScenario::new(10)
//!     .group("ring", module("ring")?, 100)
//!     .run(2)?;
//! assert!(run.summary.faults.is_empty());
//! assert_eq!(run.summary.messages_delivered, 100 * 10);
//! # Ok::<(), we_testkit::Error>(())
//! ```
//!
//! Modules come from `build/agents/` (built by `cargo xtask build-agents`), or
//! from `$WE_AGENTS_DIR`. Inference needs ONNX Runtime: `ORT_DYLIB_PATH` names
//! the library (`cargo xtask provision-ort` prints it).

use crate::Error;
use std::path::{Path, PathBuf};
use we_cli::InferenceMode;
use we_replay::FsyncPolicy;
use we_runtime::{RunOptions, RunSummary, Scenario};

/// The directory of the built agents: `$WE_AGENTS_DIR`, else the repository's
/// `build/agents`.
pub fn agents_dir() -> PathBuf {
    std::env::var_os("WE_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/agents"))
}

/// The path of built agent `name` (`build/agents/<name>.wasm`).
pub fn module(name: &str) -> Result<PathBuf, Error> {
    let path = agents_dir().join(format!("{name}.wasm"));
    std::fs::canonicalize(&path).map_err(|_| Error::ModuleNotFound { path })
}

/// The repository's model registry, `fixtures/models/models.toml`.
pub fn models_registry() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/models.toml")
}

/// The repository's development public key, `fixtures/keys/dev.pub`.
pub fn dev_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keys/dev.pub")
}

/// What a run under the real runtime gave.
#[derive(Debug)]
pub struct WasmRun {
    /// The runtime's summary (digest, chain head, messages, faults, ...).
    pub summary: RunSummary,
    /// The agents' log lines (the newest 4,096), `t=T agent=I: text`.
    pub log: Vec<String>,
    /// With [`WasmScenario::run_traced`]: the chain head the replay of the
    /// trace ended on (equal to `summary.chain_head`).
    pub verified_chain_head: Option<[u8; 32]>,
}

impl WasmRun {
    /// The workload digest as lower-case hex.
    pub fn digest_hex(&self) -> String {
        hex(&self.summary.workload_digest)
    }

    /// The trace chain head as lower-case hex (zeros without a trace).
    pub fn chain_head_hex(&self) -> String {
        hex(&self.summary.chain_head)
    }
}

/// A run error with its whole chain of causes.
fn run_err(e: impl std::fmt::Display) -> Error {
    Error::Run {
        message: format!("{e:#}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Debug)]
struct Group {
    name: String,
    module: PathBuf,
    count: u32,
    config: Option<String>,
}

/// A scenario assembled in code, run under the real runtime.
#[derive(Clone, Debug)]
pub struct WasmScenario {
    seed: u64,
    ticks: u64,
    groups: Vec<Group>,
    inference: Option<(PathBuf, Vec<String>, Vec<String>)>,
    extra: String,
    trusted_keys: Vec<PathBuf>,
    allow_unsigned: bool,
}

impl WasmScenario {
    /// A scenario of `ticks` ticks, seed 7, no agents yet.
    pub fn new(ticks: u64) -> WasmScenario {
        WasmScenario {
            seed: 7,
            ticks,
            groups: Vec::new(),
            inference: None,
            extra: String::new(),
            trusted_keys: vec![dev_key()],
            allow_unsigned: false,
        }
    }

    /// Trusts the public key in `path` too (by default only the repository's
    /// development key, `fixtures/keys/dev.pub`, which `cargo xtask
    /// build-agents` signs with).
    pub fn trust(mut self, path: impl Into<PathBuf>) -> Self {
        self.trusted_keys.push(path.into());
        self
    }

    /// Whether modules without a signature may run (default: no; yes is
    /// `we run --allow-unsigned`). A module that carries a signature must
    /// verify either way.
    pub fn allow_unsigned(mut self, allow: bool) -> Self {
        self.allow_unsigned = allow;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a group of `count` agents running `module`.
    pub fn group(mut self, name: &str, module: impl Into<PathBuf>, count: u32) -> Self {
        self.groups.push(Group {
            name: name.to_string(),
            module: module.into(),
            count,
            config: None,
        });
        self
    }

    /// Adds a group whose agents get `config` (text) in `init`.
    pub fn group_with_config(
        mut self,
        name: &str,
        module: impl Into<PathBuf>,
        count: u32,
        config: &str,
    ) -> Self {
        self.groups.push(Group {
            name: name.to_string(),
            module: module.into(),
            count,
            config: Some(config.to_string()),
        });
        self
    }

    /// Serves inference from `registry`, preloading `models`; those in
    /// `argmax` answer with the argmax of their first output.
    pub fn inference(
        mut self,
        registry: impl Into<PathBuf>,
        models: &[&str],
        argmax: &[&str],
    ) -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        self.inference = Some((registry.into(), owned(models), owned(argmax)));
        self
    }

    /// Appends raw top-level TOML (e.g. a `[limits]` table).
    pub fn toml(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }

    /// The scenario file this builder stands for.
    pub fn to_toml(&self) -> String {
        let mut text = format!(
            "seed = {}\nticks = {}\n{}\n",
            self.seed, self.ticks, self.extra
        );
        if !self.trusted_keys.is_empty() {
            let keys: Vec<String> = self
                .trusted_keys
                .iter()
                .map(|k| format!("{:?}", k.display().to_string()))
                .collect();
            text.push_str(&format!(
                "[security]\ntrusted_keys = [{}]\n",
                keys.join(", ")
            ));
        }
        if let Some((registry, preload, argmax)) = &self.inference {
            text.push_str(&format!(
                "[inference]\nregistry = {:?}\npreload = {preload:?}\n",
                registry.display().to_string()
            ));
            if !argmax.is_empty() {
                text.push_str("[inference.postprocess]\n");
                for m in argmax {
                    text.push_str(&format!("{m:?} = \"argmax\"\n"));
                }
            }
        }
        for g in &self.groups {
            text.push_str(&format!(
                "[[agents]]\nname = {:?}\nmodule = {:?}\ncount = {}\n",
                g.name,
                g.module.display().to_string(),
                g.count
            ));
            if let Some(c) = &g.config {
                text.push_str(&format!("config = {c:?}\n"));
            }
        }
        text
    }

    fn scenario(&self) -> Result<Scenario, Error> {
        for g in &self.groups {
            if !g.module.exists() {
                return Err(Error::ModuleNotFound {
                    path: g.module.clone(),
                });
            }
        }
        let base = std::env::current_dir().unwrap_or_default();
        Scenario::parse("we-testkit scenario", self.to_toml().as_bytes(), base).map_err(|e| {
            Error::Scenario {
                message: format!("{e:#}"),
            }
        })
    }

    /// Runs with `workers` worker threads.
    pub fn run(&self, workers: usize) -> Result<WasmRun, Error> {
        run_scenario(self.scenario()?, workers, None, self.allow_unsigned)
    }

    /// Runs with a trace recorded into `trace`, then re-executes the trace
    /// with the replay verifier (recorded inference results) and checks that
    /// it ends on the run's chain head.
    pub fn run_traced(&self, workers: usize, trace: &Path) -> Result<WasmRun, Error> {
        run_scenario(self.scenario()?, workers, Some(trace), self.allow_unsigned)
    }
}

/// Runs a scenario file with `workers` worker threads (its `[security]`
/// section says which keys it trusts).
pub fn run_file(path: &Path, workers: usize) -> Result<WasmRun, Error> {
    let scenario = Scenario::load(path).map_err(|e| Error::Scenario {
        message: format!("{}: {e:#}", path.display()),
    })?;
    run_scenario(scenario, workers, None, false)
}

/// Runs `scenario`, optionally traced into `trace` and verified by replay.
pub fn run_scenario(
    scenario: Scenario,
    workers: usize,
    trace: Option<&Path>,
    allow_unsigned: bool,
) -> Result<WasmRun, Error> {
    let options = RunOptions {
        workers: Some(workers),
        log_tail_lines: 4096,
        allow_unsigned,
        ..RunOptions::default()
    };
    let mut runtime = we_cli::build(scenario, options).map_err(run_err)?;
    if let Some(trace) = trace {
        we_cli::record_to(&mut runtime, trace, FsyncPolicy::Never).map_err(run_err)?;
    }
    let summary = runtime.run(|_| {}).map_err(run_err)?;
    let log = runtime.log_tail().map(String::from).collect();
    drop(runtime);
    let mut verified_chain_head = None;
    if let Some(trace) = trace {
        let out = we_cli::verify_trace(trace, InferenceMode::Recorded, Some(workers), None, None)
            .map_err(|e| Error::Replay {
            trace: trace.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        if out.chain_head != summary.chain_head {
            return Err(Error::ChainMismatch {
                run: hex(&summary.chain_head),
                replay: hex(&out.chain_head),
            });
        }
        verified_chain_head = Some(out.chain_head);
    }
    Ok(WasmRun {
        summary,
        log,
        verified_chain_head,
    })
}
