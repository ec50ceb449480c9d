//! Scenario files: what a run is made of, in TOML.
//!
//! ```toml
//! seed = 42
//! ticks = 1000
//! workers = 2                 # optional; the result never depends on it
//!
//! [scheduler]
//! policy = "fifo"             # or "priority"
//! max_tasks_per_tick = 0      # 0: no limit
//!
//! [limits]
//! fuel_per_call = 50000000
//! memory_pages = 256
//! mailbox_capacity = 4096
//! message_bytes_max = 65536
//! effect_bytes_max = 8388608
//!
//! [security]
//! trusted_keys = ["../keys/dev.pub"]           # relative to this file
//!
//! [[agents]]
//! name = "ring"
//! module = "../../build/agents/ring.wasm"   # relative to this file
//! count = 1000
//! priority = 0
//! pack = 1                                 # K > 1: K agents per instance (docs/ARCHITECTURE.md)
//! config = "text handed to agent_init"     # or config_hex = "01ff"
//! ```

use crate::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Scheduling policy names accepted in `[scheduler] policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// First in, first out, round-robin across agents.
    #[default]
    Fifo,
    /// Higher priority first, then FIFO.
    Priority,
}

/// `[scheduler]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// The policy.
    #[serde(default)]
    pub policy: PolicyName,
    /// Maximum tasks dispatched per tick; 0 means no limit.
    #[serde(default)]
    pub max_tasks_per_tick: u32,
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel per export call.
    pub fuel_per_call: u64,
    /// Linear memory cap per agent, in 64 KiB pages.
    pub memory_pages: u32,
    /// Messages a receiver's inbox may hold per tick.
    pub mailbox_capacity: u32,
    /// Largest message payload in bytes.
    pub message_bytes_max: u32,
    /// Effect bytes one export call may emit.
    pub effect_bytes_max: u32,
    /// Topics one agent may join.
    pub topics_per_agent_max: u32,
    /// Largest shared region in bytes.
    pub region_bytes_max: u32,
    /// Shared regions in the whole run.
    pub regions_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_call: 50_000_000,
            memory_pages: 256,
            mailbox_capacity: 4096,
            message_bytes_max: 64 << 10,
            effect_bytes_max: 8 << 20,
            topics_per_agent_max: 256,
            region_bytes_max: 1 << 20,
            regions_max: 4096,
        }
    }
}

fn one() -> u32 {
    1
}

/// One `[[agents]]` group.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGroup {
    /// Group name, for humans.
    pub name: String,
    /// Path of the `.wasm` module, relative to the scenario file.
    pub module: PathBuf,
    /// Number of agents in the group.
    pub count: u32,
    /// Scheduling priority of the group's tasks.
    #[serde(default)]
    pub priority: u8,
    /// Agents per instance: 1 (the default) gives each agent its own
    /// sandbox; K > 1 runs the group's agents K to an instance ("packs",
    /// see `docs/ARCHITECTURE.md`): one call steps many agents, at the cost
    /// of isolation between the agents of one pack (they share one memory,
    /// and a trap or fuel exhaustion faults the whole pack).
    #[serde(default = "one")]
    pub pack: u32,
    /// Init configuration as text.
    #[serde(default)]
    pub config: Option<String>,
    /// Init configuration as hex bytes.
    #[serde(default)]
    pub config_hex: Option<String>,
}

/// `[inference]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSection {
    /// Model registry file (TOML), relative to the scenario file.
    pub registry: Option<PathBuf>,
    /// Execution provider: "cpu" (default) or "cuda" (falls back to CPU).
    #[serde(default)]
    pub provider: Option<String>,
    /// Models to load before the first tick.
    #[serde(default)]
    pub preload: Vec<String>,
    /// Model cache budget in bytes.
    #[serde(default)]
    pub cache_bytes: Option<u64>,
    /// Per-model post-processing of results by the inference service:
    /// `"argmax"` turns the first f32 output into its argmax (lowest index on a
    /// tie), delivered as a `u64` payload (the `infer` workload's policy service).
    #[serde(default)]
    pub postprocess: std::collections::BTreeMap<String, String>,
}

/// `[security]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// Public key files (relative to the scenario file) whose signatures the
    /// run accepts. Every module must be signed by one of them, unless the
    /// run allows unsigned modules (development only).
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
}

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Run seed.
    pub seed: u64,
    /// Number of ticks to run.
    pub ticks: u64,
    /// Worker threads; `None` means the number of available cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// `[scheduler]`.
    #[serde(default)]
    pub scheduler: SchedulerSection,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// `[inference]`.
    #[serde(default)]
    pub inference: Option<InferenceSection>,
    /// `[security]`.
    #[serde(default)]
    pub security: SecuritySection,
    /// `[faults]`: the fault-injection plan.
    #[serde(default)]
    pub faults: crate::faults::FaultPlan,
    /// `[[supervision]]`: restart policies by group.
    #[serde(default)]
    pub supervision: Vec<crate::supervise::SupervisionRule>,
    /// `[[agents]]`.
    pub agents: Vec<AgentGroup>,
    /// Directory relative paths are resolved against (not part of the file).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file's bytes (not part of the file), recorded in traces.
    #[serde(skip)]
    pub source: Vec<u8>,
}

/// Upper bound on agents in one run.
pub const AGENTS_MAX: u64 = 1 << 22;

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::ScenarioIo {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&path.display().to_string(), &bytes, base)
    }

    /// Parses and validates scenario text; `name` is used in errors.
    pub fn parse(name: &str, bytes: &[u8], base_dir: PathBuf) -> Result<Self> {
        let invalid = |field: &str, problem: String| Error::Scenario {
            file: name.to_string(),
            field: field.to_string(),
            problem,
        };
        let text =
            std::str::from_utf8(bytes).map_err(|e| invalid("(file)", format!("not UTF-8: {e}")))?;
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .map(|s| {
                    // 1-based line of the span's start: newlines before it, plus one.
                    let before = text.get(..s.start).unwrap_or(text);
                    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "(file)".to_string());
            invalid(&field, e.message().to_string())
        })?;
        scenario.base_dir = base_dir;
        scenario.source = bytes.to_vec();
        if scenario.agents.is_empty() {
            return Err(invalid(
                "agents",
                "at least one [[agents]] group is required".into(),
            ));
        }
        let mut total = 0u64;
        for (i, g) in scenario.agents.iter().enumerate() {
            if g.count == 0 {
                return Err(invalid(
                    &format!("agents[{i}].count"),
                    "must be at least 1".into(),
                ));
            }
            if g.pack == 0 {
                return Err(invalid(
                    &format!("agents[{i}].pack"),
                    "must be at least 1 (1: each agent in its own instance)".into(),
                ));
            }
            if g.config.is_some() && g.config_hex.is_some() {
                return Err(invalid(
                    &format!("agents[{i}]"),
                    "give `config` or `config_hex`, not both".into(),
                ));
            }
            if let Some(hex) = &g.config_hex {
                decode_hex(hex).map_err(|p| invalid(&format!("agents[{i}].config_hex"), p))?;
            }
            total += g.count as u64;
        }
        if total > AGENTS_MAX {
            return Err(invalid(
                "agents",
                format!("{total} agents exceed the maximum of {AGENTS_MAX}"),
            ));
        }
        if scenario.workers == Some(0) {
            return Err(invalid("workers", "must be at least 1".into()));
        }
        let l = &scenario.limits;
        if l.fuel_per_call == 0 {
            return Err(invalid("limits.fuel_per_call", "must be at least 1".into()));
        }
        if l.memory_pages == 0 || l.memory_pages > 65_536 {
            return Err(invalid(
                "limits.memory_pages",
                "must be in 1..=65536".into(),
            ));
        }
        if l.mailbox_capacity == 0 {
            return Err(invalid(
                "limits.mailbox_capacity",
                "must be at least 1".into(),
            ));
        }
        // The fault plan and the supervision rules are checked here too, so a
        // bad one is named with the file before anything is loaded.
        crate::faults::Injector::new(&scenario.faults, scenario.seed)
            .map_err(|(field, problem)| invalid(&field, problem))?;
        let names: Vec<String> = scenario.agents.iter().map(|g| g.name.clone()).collect();
        crate::supervise::Supervisor::new(&scenario.supervision, &names, 0)
            .map_err(|(field, problem)| invalid(&field, problem))?;
        Ok(scenario)
    }

    /// Total number of agents.
    pub fn agent_count(&self) -> u32 {
        self.agents.iter().map(|g| g.count).sum()
    }

    /// The module path of group `i`, resolved against the scenario's directory.
    pub fn module_path(&self, group: usize) -> Option<PathBuf> {
        self.agents
            .get(group)
            .map(|g| self.base_dir.join(&g.module))
    }

    /// The init configuration bytes of group `i`.
    pub fn config_bytes(&self, group: usize) -> Vec<u8> {
        match self.agents.get(group) {
            Some(g) => match (&g.config, &g.config_hex) {
                (Some(text), _) => text.as_bytes().to_vec(),
                (None, Some(hex)) => decode_hex(hex).unwrap_or_default(),
                (None, None) => Vec::new(),
            },
            None => Vec::new(),
        }
    }
}

fn decode_hex(hex: &str) -> std::result::Result<Vec<u8>, String> {
    // A multi-byte character would otherwise be miscounted as digits.
    if let Some(c) = hex.chars().find(|c| !c.is_ascii()) {
        return Err(format!("`{c}` is not a hex digit"));
    }
    let clean: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !clean.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    clean
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("`{s}` is not a hex byte"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario> {
        Scenario::parse("test.toml", text.as_bytes(), PathBuf::new())
    }

    #[test]
    fn minimal_scenario_parses_with_defaults() {
        let s =
            parse("seed = 1\nticks = 5\n[[agents]]\nname='a'\nmodule='a.wasm'\ncount=3\n").unwrap();
        assert_eq!(s.agent_count(), 3);
        assert_eq!(s.agents[0].pack, 1, "each agent alone unless packed");
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.scheduler.policy, PolicyName::Fifo);
    }

    #[test]
    fn errors_name_file_field_and_problem() {
        let e = parse("seed = 1\nticks = 5\n[[agents]]\nname='a'\nmodule='a.wasm'\ncount=0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test.toml") && e.contains("agents[0].count"),
            "{e}"
        );
        let e =
            parse("seed = 1\nticks = 5\n[[agents]]\nname='a'\nmodule='a.wasm'\ncount=2\npack=0\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("agents[0].pack") && e.contains("at least 1"),
            "{e}"
        );
        let e = parse("seed = 'x'\nticks = 5\n").unwrap_err().to_string();
        assert!(e.contains("test.toml") && e.contains("line 1"), "{e}");
        let e =
            parse("seed = 1\nticks = 5\nbogus = 3\n[[agents]]\nname='a'\nmodule='a'\ncount=1\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e =
            parse("seed=1\nticks=1\n[[agents]]\nname='a'\nmodule='a'\ncount=1\nconfig_hex='0g'\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("config_hex") && e.contains("0g"), "{e}");
    }
}
