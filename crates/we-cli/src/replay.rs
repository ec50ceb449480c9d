//! Replay verification and the determinism self-check.
//!
//! `verify_trace` re-executes the scenario recorded in a trace, tick by tick,
//! and compares each committed tick with its record; the first difference stops
//! it with the tick, the agent (located by the per-agent digests) and what
//! differs. Inference results are either fed back from the trace (`Recorded`,
//! works on any machine) or recomputed and compared bitwise (`Recompute`).

use crate::{build, hex, sandbox_config};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use we_core::{InferenceBackend, InferenceResult, Postprocess, Requests, Tick, TickRecord};
use we_replay::{Chain, TraceReader};
use we_runtime::{RunOptions, Runtime, Scenario};

/// How a replay gets inference results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferenceMode {
    /// Feed back the recorded results (works on any machine).
    Recorded,
    /// Recompute with ONNX Runtime and compare bitwise with the recording.
    Recompute,
}

/// What a successful verification found.
#[derive(Clone, Debug)]
pub struct VerifyOutcome {
    /// Ticks verified.
    pub ticks: u64,
    /// Chain head of the replay (equal to the recording's).
    pub chain_head: [u8; 32],
    /// Workload digest after the last tick.
    pub workload_digest: [u8; 32],
    /// Wall time of the replay's tick loop, seconds.
    pub wall_s: f64,
    /// `(offset, bytes)` of an incomplete last frame (a run killed mid-write),
    /// which was not verified.
    pub torn_tail: Option<(u64, u64)>,
}

/// Serves inference from the results recorded in a trace.
struct RecordedInference {
    by_tick: HashMap<u64, Vec<InferenceResult>>,
}

impl InferenceBackend for RecordedInference {
    fn run_into(&mut self, tick: Tick, requests: &Requests, results: &mut Vec<InferenceResult>) {
        let recorded = self.by_tick.remove(&tick.0).unwrap_or_default();
        results.clear();
        results.extend(requests.iter().enumerate().map(|(i, r)| match recorded.get(i) {
            Some(res) if res.agent == r.agent && res.tag == r.tag => res.clone(),
            _ => InferenceResult {
                agent: r.agent,
                tag: r.tag,
                outcome: Err(format!(
                    "replay: no recorded result for request {i} of tick {} (agent {}, tag {})",
                    tick.0, r.agent.index, r.tag
                )),
            },
        }));
    }

    fn describe(&self) -> String {
        "recorded (results fed back from the trace)".to_string()
    }

    /// The trace holds the payloads as delivered, post-processing done.
    fn postprocess(&mut self, _model: &str, _post: Postprocess) -> bool {
        true
    }
}

/// Reads the scenario a trace recorded; modules resolve against `modules_dir`,
/// else the `scenario_dir` noted in the header, else the trace's directory.
fn recorded_scenario(
    reader: &TraceReader,
    trace: &Path,
    modules_dir: Option<&Path>,
) -> Result<Scenario> {
    let header = reader.header();
    let noted = header
        .notes
        .iter()
        .find_map(|n| n.strip_prefix("scenario_dir="))
        .map(PathBuf::from);
    let trace_dir = trace.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = modules_dir
        .map(Path::to_path_buf)
        .or(noted.map(|rel| trace_dir.join(rel)).filter(|d| d.exists()))
        .unwrap_or(trace_dir);
    let scenario = Scenario::parse(
        &format!("{} (recorded scenario)", trace.display()),
        &header.scenario,
        base,
    )?;
    // The modules must be the ones recorded.
    for (g, (name, expected)) in header.modules.iter().enumerate() {
        let Some(path) = scenario.module_path(g) else {
            bail!(
                "trace {}: header lists module {name} that the scenario lacks",
                trace.display()
            );
        };
        let bytes = std::fs::read(&path)
            .with_context(|| format!("module {} of the recorded scenario", path.display()))?;
        let actual = *blake3::hash(&bytes).as_bytes();
        if &actual != expected {
            bail!(
                "module {}: blake3 {} differs from the recorded {} (module {name})",
                path.display(),
                hex(&actual),
                hex(expected)
            );
        }
    }
    Ok(scenario)
}

/// Compares a replayed tick with its record; `Err` names what differs.
fn compare(expected: &TickRecord, actual: &TickRecord) -> Result<(), (Option<u32>, String)> {
    if expected.tick != actual.tick {
        return Err((
            None,
            format!(
                "tick number: expected {}, got {}",
                expected.tick, actual.tick
            ),
        ));
    }
    if expected.agent_digests.len() == actual.agent_digests.len()
        && let Some(i) = expected
            .agent_digests
            .iter()
            .zip(&actual.agent_digests)
            .position(|(e, a)| e != a)
    {
        return Err((
            Some(i as u32),
            format!(
                "effects digest of the agent: expected {:016x}, got {:016x}",
                expected.agent_digests[i], actual.agent_digests[i]
            ),
        ));
    }
    if expected.faults != actual.faults {
        let agent = expected
            .faults
            .iter()
            .zip(&actual.faults)
            .find(|(e, a)| e != a)
            .map(|(e, _)| e.0.index)
            .or_else(|| actual.faults.first().map(|f| f.0.index))
            .or_else(|| expected.faults.first().map(|f| f.0.index));
        return Err((
            agent,
            format!(
                "faults: expected {:?}, got {:?}",
                expected.faults, actual.faults
            ),
        ));
    }
    if expected.inference != actual.inference {
        let position = expected
            .inference
            .iter()
            .zip(&actual.inference)
            .position(|(e, a)| e != a)
            .unwrap_or(expected.inference.len().min(actual.inference.len()));
        let agent = expected
            .inference
            .get(position)
            .or(actual.inference.get(position))
            .map(|r| r.agent.index);
        return Err((
            agent,
            format!(
                "inference result {position} differs bitwise (expected {} results, got {})",
                expected.inference.len(),
                actual.inference.len()
            ),
        ));
    }
    if expected.effects_digest != actual.effects_digest {
        return Err((
            None,
            format!(
                "effects digest: expected {}, got {}",
                hex(&expected.effects_digest),
                hex(&actual.effects_digest)
            ),
        ));
    }
    if expected.workload_digest != actual.workload_digest || expected.messages != actual.messages {
        return Err((
            None,
            format!(
                "messages: expected {} (digest {}), got {} (digest {})",
                expected.messages,
                hex(&expected.workload_digest),
                actual.messages,
                hex(&actual.workload_digest)
            ),
        ));
    }
    Ok(())
}

/// Re-executes the run recorded in `trace` and compares it tick by tick.
/// `scenario_override` replays a different scenario against the recording (to
/// test the divergence finder, or to check a changed agent against an old run).
pub fn verify_trace(
    trace: &Path,
    mode: InferenceMode,
    workers: Option<usize>,
    modules_dir: Option<&Path>,
    scenario_override: Option<Scenario>,
) -> Result<VerifyOutcome> {
    // A run killed mid-tick leaves a torn last frame: it is verified up to the
    // last whole record and the torn bytes are reported.
    let mut reader = TraceReader::open_recover(trace)
        .with_context(|| format!("opening trace {}", trace.display()))?;
    let scenario = match scenario_override {
        Some(s) => s,
        None => recorded_scenario(&reader, trace, modules_dir)?,
    };
    // A run recorded with unsigned modules replays under the same allowance
    // (its header says so); signatures are otherwise checked as in the run.
    let allow_unsigned = reader
        .header()
        .notes
        .iter()
        .any(|n| n.starts_with("security=UNSIGNED"));
    let mut runtime = match mode {
        InferenceMode::Recompute => build(
            scenario,
            RunOptions {
                workers,
                allow_unsigned,
                ..RunOptions::default()
            },
        )?,
        InferenceMode::Recorded => {
            // Read every recorded result up front; the records are read again
            // below for the comparison.
            let mut by_tick: HashMap<u64, Vec<InferenceResult>> = HashMap::new();
            let mut pre = TraceReader::open_recover(trace)?;
            for record in pre.by_ref() {
                let record = record.with_context(|| format!("reading {}", trace.display()))?;
                if !record.inference.is_empty() {
                    by_tick.insert(record.tick.0, record.inference);
                }
            }
            let sandbox = we_sandbox::Sandbox::new(sandbox_config(&scenario));
            let mut rt = Runtime::new(
                scenario,
                Box::new(sandbox),
                RunOptions {
                    workers,
                    allow_unsigned,
                    ..RunOptions::default()
                },
            )?;
            rt.set_inference(Box::new(RecordedInference { by_tick }));
            rt
        }
    };
    let header = reader.header().clone();
    let mut chain = Chain::start(&header)?;
    runtime.start()?;
    let began = std::time::Instant::now();
    let mut ticks = 0;
    for expected in reader.by_ref() {
        let expected = expected.with_context(|| format!("reading {}", trace.display()))?;
        if runtime.finished() {
            bail!(
                "diverged at tick {}: the trace has more ticks than the scenario runs",
                expected.tick
            );
        }
        runtime.step()?;
        let actual = runtime.last_record();
        if let Err((agent, what)) = compare(&expected, actual) {
            let divergence = we_core::Divergence {
                tick: expected.tick.0,
                agent,
                what,
            };
            let mut text = divergence.to_string();
            if let Some(agent) = agent {
                text.push_str(&format!(
                    "\n  actual effects of agent {agent} in tick {}:\n{}",
                    expected.tick.0,
                    runtime.describe_effects(agent)
                ));
            }
            bail!(text);
        }
        chain.push(actual)?;
        ticks += 1;
    }
    let wall_s = began.elapsed().as_secs_f64();
    if chain.head() != reader.chain_head() {
        bail!(
            "replay chain head {} differs from the recording's {}",
            hex(&chain.head()),
            hex(&reader.chain_head())
        );
    }
    Ok(VerifyOutcome {
        ticks,
        chain_head: chain.head(),
        workload_digest: runtime.summary().workload_digest,
        wall_s,
        torn_tail: reader.torn_tail().map(|t| (t.offset, t.bytes)),
    })
}

/// Runs the scenario twice, with 1 worker and with `workers`, and compares the
/// chain after every tick; `Ok(ticks)` when identical, else the first
/// divergent tick in the error.
pub fn check_determinism(scenario: &Scenario, workers: usize, allow_unsigned: bool) -> Result<u64> {
    let mut runs = Vec::new();
    for w in [1, workers.max(2)] {
        let mut runtime = build(
            scenario.clone(),
            RunOptions {
                workers: Some(w),
                allow_unsigned,
                ..RunOptions::default()
            },
        )?;
        runtime.start()?;
        let mut records = Vec::new();
        while !runtime.finished() {
            runtime.step()?;
            records.push(runtime.last_record().clone());
        }
        runtime.shutdown()?;
        runs.push((w, records));
    }
    let (w1, a) = &runs[0];
    let (w2, b) = &runs[1];
    for (x, y) in a.iter().zip(b) {
        if let Err((agent, what)) = compare(x, y) {
            bail!(
                "not deterministic: W={w1} and W={w2} diverge at tick {}{}: {what}",
                x.tick,
                agent.map(|a| format!(", agent {a}")).unwrap_or_default()
            );
        }
    }
    Ok(a.len() as u64)
}
