//! Trace mode: a finished (or cut-short) trace file, read once and scrubbed.
//!
//! [`TraceView::load`] reads and verifies every record with we-replay's reader
//! (a torn last record, as a killed run leaves, ends the trace cleanly) and keeps
//! a small summary of each tick; the page asks for the summary series once and
//! then for one tick at a time as the user scrubs.

use crate::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use we_observe::Fault;
use we_observe::wire::hex;
use we_replay::TraceReader;

/// Most records kept; a longer trace is shown up to here.
pub const MAX_TICKS: usize = 1 << 20;
/// Most bytes of the recorded scenario text shown.
const SCENARIO_SHOWN: usize = 16 << 10;

/// One tick of the trace, summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickEntry {
    /// The tick.
    pub tick: u64,
    /// Messages committed in it.
    pub messages: u64,
    /// Effects digest.
    pub effects_digest: [u8; 32],
    /// Workload digest after it.
    pub workload_digest: [u8; 32],
    /// Chain value after its record.
    pub chain: [u8; 32],
    /// Faults of the tick.
    pub faults: Vec<Fault>,
    /// Inference results delivered.
    pub inferences: u32,
    /// External inputs.
    pub inputs: u32,
}

/// A loaded trace.
#[derive(Debug)]
pub struct TraceView {
    path: PathBuf,
    header: HeaderView,
    ticks: Vec<TickEntry>,
    /// Why reading stopped early, if it did.
    stopped: Option<String>,
    torn_tail: bool,
}

#[derive(Clone, Debug, Serialize)]
struct HeaderView {
    runtime_version: String,
    seed: u64,
    agent_count: u32,
    modules: Vec<ModuleView>,
    notes: Vec<String>,
    scenario: String,
}

#[derive(Clone, Debug, Serialize)]
struct ModuleView {
    name: String,
    blake3: String,
}

impl TraceView {
    /// Reads and verifies the trace at `path`.
    pub fn load(path: &Path) -> Result<TraceView> {
        let mut reader = TraceReader::open_recover(path).map_err(|source| Error::Trace {
            path: path.to_path_buf(),
            source,
        })?;
        let h = reader.header();
        let scenario = String::from_utf8_lossy(&h.scenario);
        let scenario = match scenario.char_indices().nth(SCENARIO_SHOWN) {
            Some((cut, _)) => format!("{}\n...", &scenario[..cut]),
            None => scenario.into_owned(),
        };
        let header = HeaderView {
            runtime_version: h.runtime_version.clone(),
            seed: h.seed,
            agent_count: h.agent_count,
            modules: h
                .modules
                .iter()
                .map(|(name, hash)| ModuleView {
                    name: name.clone(),
                    blake3: hex(hash),
                })
                .collect(),
            notes: h.notes.clone(),
            scenario,
        };
        let mut ticks = Vec::new();
        let mut stopped = None;
        while let Some(entry) = reader.next_entry() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    stopped = Some(e.to_string());
                    break;
                }
            };
            if ticks.len() == MAX_TICKS {
                stopped = Some(format!("showing the first {MAX_TICKS} ticks only"));
                break;
            }
            let r = entry.record;
            ticks.push(TickEntry {
                tick: r.tick.0,
                messages: r.messages,
                effects_digest: r.effects_digest,
                workload_digest: r.workload_digest,
                chain: entry.chain,
                faults: r
                    .faults
                    .iter()
                    .map(|(id, kind)| Fault {
                        agent: id.index,
                        kind: kind.name().to_string(),
                        detail: kind.to_string(),
                    })
                    .collect(),
                inferences: u32::try_from(r.inference.len()).unwrap_or(u32::MAX),
                inputs: u32::try_from(r.inputs.len()).unwrap_or(u32::MAX),
            });
        }
        let torn_tail = reader.torn_tail().is_some();
        Ok(TraceView {
            path: path.to_path_buf(),
            header,
            ticks,
            stopped,
            torn_tail,
        })
    }

    /// The ticks read.
    pub fn ticks(&self) -> &[TickEntry] {
        &self.ticks
    }

    /// The JSON of `/api/trace`: header and per-tick series.
    pub fn summary(&self) -> serde_json::Value {
        let mut faulted_total = Vec::with_capacity(self.ticks.len());
        let mut total = 0u64;
        for t in &self.ticks {
            total += t.faults.len() as u64;
            faulted_total.push(total);
        }
        serde_json::json!({
            "mode": "trace",
            "path": self.path.display().to_string(),
            "header": self.header,
            "count": self.ticks.len(),
            "stopped": self.stopped,
            "torn_tail": self.torn_tail,
            "chain_head": self.ticks.last().map(|t| hex(&t.chain)),
            "series": {
                "tick": self.ticks.iter().map(|t| t.tick).collect::<Vec<_>>(),
                "messages": self.ticks.iter().map(|t| t.messages).collect::<Vec<_>>(),
                "faults": self.ticks.iter().map(|t| t.faults.len()).collect::<Vec<_>>(),
                "faulted_total": faulted_total,
            },
        })
    }

    /// The JSON of `/api/trace/tick?i=INDEX`: the tick at `index` (0-based
    /// record index) with every agent faulted up to and including it.
    pub fn tick(&self, index: usize) -> Option<serde_json::Value> {
        let entry = self.ticks.get(index)?;
        let mut faulted: Vec<serde_json::Value> = self.ticks[..=index]
            .iter()
            .flat_map(|t| {
                t.faults.iter().map(move |f| {
                    serde_json::json!({
                        "agent": f.agent, "kind": f.kind, "detail": f.detail, "tick": t.tick,
                    })
                })
            })
            .collect();
        faulted.sort_by_key(|f| f["agent"].as_u64());
        let messages_total: u64 = self.ticks[..=index].iter().map(|t| t.messages).sum();
        Some(serde_json::json!({
            "index": index,
            "tick": entry.tick,
            "agent_count": self.header.agent_count,
            "messages": entry.messages,
            "messages_total": messages_total,
            "effects_digest": hex(&entry.effects_digest),
            "workload_digest": hex(&entry.workload_digest),
            "chain": hex(&entry.chain),
            "faults": entry.faults,
            "faulted": faulted,
            "inferences": entry.inferences,
            "inputs": entry.inputs,
        }))
    }
}
