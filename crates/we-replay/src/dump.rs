//! A JSON-lines dump of a trace for humans (R8: "a human-readable dump").
//!
//! One line for the header (`"type":"header"`), then one line per record
//! (`"type":"tick"`). Digests and byte strings are lowercase hex; per-agent
//! digests are the `u64` as 16 hex digits. Inference results that hold a
//! we-abi result payload show their tensors decoded: `f32` values are JSON
//! numbers printed with exactly six decimals (`{:.6}`, so two machines print
//! the same text for the same bits), non-finite ones as the strings `"NaN"`,
//! `"inf"`, `"-inf"`; `i64` values as integers. A payload that does not parse
//! is shown as hex with the reason.

use crate::reader::TraceReader;
use crate::{Error, FORMAT_VERSION, Result};
use serde::{Serialize, Serializer};
use std::io::Write;
use std::ops::RangeInclusive;
use we_abi::tensor::{self, Tensors};
use we_core::{AgentId, InferenceResult, TickRecord};

/// Which records and agents [`dump_jsonl`] shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// Only records whose tick is in this range (all when `None`). The dump
    /// stops reading at the first record past the range's end.
    pub ticks: Option<RangeInclusive<u64>>,
    /// Only the faults, inference results and per-agent digests of these agent
    /// indices (all when `None`).
    pub agents: Option<Vec<u32>>,
}

/// Writes the header line and one line per selected record to `out`.
///
/// Every record read is verified as by [`TraceReader`]; the first error stops
/// the dump and is returned (the lines before it are already written).
pub fn dump_jsonl(
    reader: &mut TraceReader,
    out: &mut impl Write,
    filter: DumpFilter,
) -> Result<()> {
    let mut agents = filter.agents;
    if let Some(a) = &mut agents {
        a.sort_unstable();
        a.dedup();
    }
    let shows = |agent: u32| {
        agents
            .as_ref()
            .is_none_or(|a| a.binary_search(&agent).is_ok())
    };

    let header = reader.header();
    let scenario_text = std::str::from_utf8(&header.scenario).ok();
    let line = HeaderLine {
        r#type: "header",
        format_version: FORMAT_VERSION,
        header_hash: hex(&reader.header_hash()),
        runtime_version: &header.runtime_version,
        scenario_digest: hex(&header.scenario_digest),
        config_digest: hex(&header.config_digest),
        seed: header.seed,
        agent_count: header.agent_count,
        modules: header
            .modules
            .iter()
            .map(|(name, hash)| ModuleLine {
                name,
                blake3: hex(hash),
            })
            .collect(),
        notes: &header.notes,
        scenario_bytes: header.scenario.len(),
        scenario: scenario_text,
        scenario_hex: match scenario_text {
            Some(_) => None,
            None => Some(hex(&header.scenario)),
        },
    };
    write_line(out, &line)?;

    // Bounded by the file length: each step consumes a frame.
    while let Some(entry) = reader.next_entry() {
        let entry = entry?;
        let tick = entry.record.tick.0;
        if let Some(range) = &filter.ticks {
            if tick > *range.end() {
                break;
            }
            if !range.contains(&tick) {
                continue;
            }
        }
        let line = tick_line(&entry.record, entry.offset, &entry.chain, &shows);
        write_line(out, &line)?;
    }
    Ok(())
}

fn write_line(out: &mut impl Write, line: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(|source| Error::Json { source })?;
    bytes.push(b'\n');
    out.write_all(&bytes)
        .map_err(|source| Error::Output { source })
}

fn tick_line<'a>(
    record: &'a TickRecord,
    offset: u64,
    chain: &[u8; 32],
    shows: &dyn Fn(u32) -> bool,
) -> TickLine<'a> {
    TickLine {
        r#type: "tick",
        tick: record.tick.0,
        offset,
        chain: hex(chain),
        effects_digest: hex(&record.effects_digest),
        workload_digest: hex(&record.workload_digest),
        messages: record.messages,
        agent_digests: record
            .agent_digests
            .iter()
            .zip(0u32..)
            .filter(|(_, agent)| shows(*agent))
            .map(|(digest, agent)| AgentDigestLine {
                agent,
                digest: format!("{digest:016x}"),
            })
            .collect(),
        faults: record
            .faults
            .iter()
            .filter(|(agent, _)| shows(agent.index))
            .map(|(agent, kind)| FaultLine {
                agent: agent.index,
                generation: agent.generation,
                kind: kind.name(),
                detail: kind.to_string(),
            })
            .collect(),
        inference: record
            .inference
            .iter()
            .filter(|r| shows(r.agent.index))
            .map(inference_line)
            .collect(),
        inputs: record.inputs.iter().map(|i| hex(i)).collect(),
        events: &record.events,
    }
}

fn inference_line(result: &InferenceResult) -> InferenceLine<'_> {
    let AgentId { index, generation } = result.agent;
    let mut line = InferenceLine {
        agent: index,
        generation,
        tag: result.tag,
        error: None,
        tensors: None,
        payload_hex: None,
        payload_error: None,
    };
    match &result.outcome {
        Err(text) => line.error = Some(text),
        Ok(payload) => match decode_tensors(payload) {
            Ok(tensors) => line.tensors = Some(tensors),
            Err(why) => {
                line.payload_hex = Some(hex(payload));
                line.payload_error = Some(why);
            }
        },
    }
    line
}

/// Decodes a we-abi result payload: result header, then tensors.
fn decode_tensors(payload: &[u8]) -> Result<Vec<TensorLine>, String> {
    let (count, bytes) = tensor::read_result_header(payload).map_err(|e| format!("{e:?}"))?;
    let mut tensors = Vec::new();
    // Bounded: each tensor consumes at least its 8-byte header of the payload.
    for view in Tensors::new(bytes) {
        let view = view.map_err(|e| format!("{e:?}"))?;
        let dims = (0..view.rank()).map(|i| view.dim(i)).collect();
        let (dtype, values) = match view.dtype {
            tensor::DTYPE_F32 => (
                "f32",
                Values::F32(
                    view.data
                        .chunks_exact(4)
                        .map(|c| Fixed(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                ),
            ),
            tensor::DTYPE_I64 => (
                "i64",
                Values::I64(
                    view.data
                        .chunks_exact(8)
                        .map(|c| {
                            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                ),
            ),
            other => return Err(format!("unknown dtype {other}")),
        };
        tensors.push(TensorLine {
            name: String::from_utf8_lossy(view.name).into_owned(),
            dtype,
            dims,
            values,
        });
    }
    if tensors.len() != usize::from(count) {
        return Err(format!(
            "result header declares {count} tensors, payload holds {}",
            tensors.len()
        ));
    }
    Ok(tensors)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    r#type: &'static str,
    format_version: u32,
    header_hash: String,
    runtime_version: &'a str,
    scenario_digest: String,
    config_digest: String,
    seed: u64,
    agent_count: u32,
    modules: Vec<ModuleLine<'a>>,
    notes: &'a [String],
    scenario_bytes: usize,
    /// The scenario text when it is UTF-8 (it usually is: TOML).
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario_hex: Option<String>,
}

#[derive(Serialize)]
struct ModuleLine<'a> {
    name: &'a str,
    blake3: String,
}

#[derive(Serialize)]
struct TickLine<'a> {
    r#type: &'static str,
    tick: u64,
    offset: u64,
    chain: String,
    effects_digest: String,
    workload_digest: String,
    messages: u64,
    agent_digests: Vec<AgentDigestLine>,
    faults: Vec<FaultLine>,
    inference: Vec<InferenceLine<'a>>,
    inputs: Vec<String>,
    events: &'a [String],
}

#[derive(Serialize)]
struct AgentDigestLine {
    agent: u32,
    digest: String,
}

#[derive(Serialize)]
struct FaultLine {
    agent: u32,
    generation: u32,
    kind: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct InferenceLine<'a> {
    agent: u32,
    generation: u32,
    tag: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensors: Option<Vec<TensorLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_error: Option<String>,
}

#[derive(Serialize)]
struct TensorLine {
    name: String,
    dtype: &'static str,
    dims: Vec<u64>,
    values: Values,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Values {
    F32(Vec<Fixed>),
    I64(Vec<i64>),
}

/// An `f32` serialized as a JSON number with exactly six decimals.
struct Fixed(f32);

impl Serialize for Fixed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            return s.serialize_str("NaN");
        }
        if v.is_infinite() {
            return s.serialize_str(if v > 0.0 { "inf" } else { "-inf" });
        }
        let raw = serde_json::value::RawValue::from_string(format!("{v:.6}"))
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}
