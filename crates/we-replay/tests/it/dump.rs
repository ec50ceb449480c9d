//! The JSON-lines dump.

use crate::common::*;
use serde_json::Value;
use we_replay::{DumpFilter, TraceReader, dump_jsonl};

fn dump(path: &std::path::Path, filter: DumpFilter) -> (String, Vec<Value>) {
    let mut reader = TraceReader::open(path).unwrap();
    let mut out = Vec::new();
    dump_jsonl(&mut reader, &mut out, filter).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, lines)
}

#[test]
fn the_dump_shows_every_record_with_fixed_precision_floats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let heads = write_trace(&path, &sample_header(), &sample_records());
    let (text, lines) = dump(&path, DumpFilter::default());
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["seed"], 0xDEAD_BEEFu64);
    assert_eq!(lines[0]["scenario"], "[run]\nticks = 4\n");
    assert_eq!(lines[0]["modules"][0]["blake3"], "33".repeat(32));
    let ticks: Vec<_> = lines[1..]
        .iter()
        .map(|l| l["tick"].as_u64().unwrap())
        .collect();
    assert_eq!(ticks, [1, 2, 4, 7]);
    assert_eq!(lines[4]["chain"], hex(&heads[3]));
    assert_eq!(lines[1]["inputs"][0], "68656c6c6f");
    assert_eq!(lines[2]["faults"][0]["kind"], "trap");
    assert_eq!(lines[2]["faults"][0]["detail"], "trap: unreachable");
    assert_eq!(lines[4]["faults"][1]["generation"], 1);
    assert_eq!(lines[1]["agent_digests"][2]["digest"], "fffffffffffffffe");

    let inference = &lines[3]["inference"];
    assert_eq!(inference[0]["tensors"][0]["name"], "logits");
    assert_eq!(
        inference[0]["tensors"][0]["dims"],
        serde_json::json!([2, 2])
    );
    assert_eq!(inference[1]["error"], "model not found: tiny");
    // The text itself carries six decimals, whatever the value.
    assert!(
        text.contains(r#""values":[0.500000,-1.250000,0.333333,2.000000]"#),
        "{text}"
    );
}

#[test]
fn the_dump_filters_ticks_and_agents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &sample_records());
    let (_, lines) = dump(
        &path,
        DumpFilter {
            ticks: Some(2..=4),
            agents: Some(vec![2]),
        },
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["tick"], 2);
    assert_eq!(lines[2]["tick"], 4);
    // Agent 1's trap at tick 2 is filtered out; only agent 2's digest stays.
    assert_eq!(lines[1]["faults"], serde_json::json!([]));
    assert_eq!(lines[1]["agent_digests"].as_array().unwrap().len(), 1);
    assert_eq!(lines[1]["agent_digests"][0]["agent"], 2);
    let inference = lines[2]["inference"].as_array().unwrap();
    assert_eq!(inference.len(), 1);
    assert_eq!(inference[0]["agent"], 2);
}

#[test]
fn an_unparsable_payload_is_shown_as_hex() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let mut records = sample_records();
    records[2].inference[0].outcome = Ok(vec![1, 0, 0, 0, 9, 9]);
    write_trace(&path, &sample_header(), &records);
    let (_, lines) = dump(&path, DumpFilter::default());
    let result = &lines[3]["inference"][0];
    assert_eq!(result["payload_hex"], "010000000909");
    assert!(result["payload_error"].is_string());
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Whatever an inference payload holds, the dump prints a line for it
    /// and does not panic.
    #[test]
    fn any_payload_dumps(
        tensors in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48), 0..4),
        count in 0u16..5,
    ) {
        let mut payload = Vec::new();
        we_abi::tensor::write_result_header(&mut payload, count);
        for t in &tensors {
            payload.extend_from_slice(t);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let mut records = sample_records();
        records[2].inference[0].outcome = Ok(payload);
        write_trace(&path, &sample_header(), &records);
        let (_, lines) = dump(&path, DumpFilter::default());
        proptest::prop_assert_eq!(lines.len(), 5);
        let result = &lines[3]["inference"][0];
        proptest::prop_assert!(result["tensors"].is_array() || result["payload_hex"].is_string());
    }
}
