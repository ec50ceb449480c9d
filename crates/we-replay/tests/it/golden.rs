//! Golden files: the v3 bytes of a fixed trace and its dump. A change to
//! either is a format change: bump the version, or refresh the files on
//! purpose with `UPDATE_GOLDEN=1 cargo test -p we-replay`.

use crate::common::*;
use std::path::PathBuf;
use we_replay::{DumpFilter, TraceReader, dump_jsonl};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden")
}

/// Compares `actual` with the golden file `name`, or rewrites it when
/// `UPDATE_GOLDEN` is set.
fn check(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert!(
        expected == actual,
        "{} differs from what the writer produces now; if the format change is \
         intended, bump FORMAT_VERSION or rerun with UPDATE_GOLDEN=1\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// 32 bytes per line, offset first.
fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(32)
        .enumerate()
        .map(|(i, c)| {
            let hex: String = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:06x} {hex}\n", i * 32)
        })
        .collect()
}

fn from_hex_dump(text: &str) -> Vec<u8> {
    text.lines()
        .flat_map(|l| {
            let hex = l.split_once(' ').unwrap().1;
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn v3_bytes_and_dump_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &sample_records());
    let bytes = std::fs::read(&path).unwrap();
    check("v3.hex", &hex_dump(&bytes));

    let mut out = Vec::new();
    dump_jsonl(
        &mut TraceReader::open(&path).unwrap(),
        &mut out,
        DumpFilter::default(),
    )
    .unwrap();
    check("v3.jsonl", &String::from_utf8(out).unwrap());
}

/// The committed v3 file is read back by today's reader.
#[test]
fn the_committed_v3_trace_still_reads() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return;
    }
    let text = std::fs::read_to_string(golden_dir().join("v3.hex")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.trace");
    std::fs::write(&path, from_hex_dump(&text)).unwrap();
    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.header(), &sample_header());
    assert_eq!(read_all(&path).unwrap(), sample_records());
}
