//! Fuzz target: trace reading. The header and record body decoders on
//! arbitrary bytes, and `TraceReader` (plain and recovering, plus the JSON
//! dump) on the bytes as a file: as given, or (mostly) with every hash of the
//! chain recomputed, so mutations get past the blake3 checks and reach the
//! framing and body decoders behind them. Errors, never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use we_replay::{
    DumpFilter, FILE_PREFIX_LEN, HASH_LEN, TraceReader, chain_next, decode_header_body,
    decode_record_body, dump_jsonl,
};

/// The file this process fuzzes through (on tmpfs when there is one).
fn scratch_path() -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("we-fuzz-trace-{}.trace", std::process::id()))
}

/// Overwrites the stored hashes with the right ones, as far as the framing
/// can be followed. Bounded: each frame advances by at least 36 bytes.
fn fix_chain(bytes: &mut [u8]) {
    let le32 = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let Some(header_len) = le32(bytes, 12) else {
        return;
    };
    let body_start = FILE_PREFIX_LEN as usize;
    let Some(body_end) = body_start.checked_add(header_len as usize) else {
        return;
    };
    if body_end + HASH_LEN > bytes.len() {
        return;
    }
    let mut chain = *blake3::hash(&bytes[body_start..body_end]).as_bytes();
    bytes[body_end..body_end + HASH_LEN].copy_from_slice(&chain);
    let mut at = body_end + HASH_LEN;
    while let Some(len) = le32(bytes, at) {
        let start = at + 4;
        let end = start + len as usize;
        if end + HASH_LEN > bytes.len() {
            return;
        }
        chain = chain_next(&chain, &bytes[start..end]);
        bytes[end..end + HASH_LEN].copy_from_slice(&chain);
        at = end + HASH_LEN;
    }
}

/// Reads `bytes` as a trace file one of four ways, picked by `mode`.
fn read_file(path: &PathBuf, bytes: &[u8], mode: u8) {
    if std::fs::write(path, bytes).is_err() {
        return;
    }
    match mode % 3 {
        0 => {
            if let Ok(reader) = TraceReader::open(path) {
                let _ = reader.header_hash();
                // Bounded by the file: each record consumes a frame.
                for record in reader {
                    if record.is_err() {
                        break;
                    }
                }
            }
        }
        1 => {
            if let Ok(reader) = TraceReader::open_recover(path) {
                let _ = reader.summarize();
            }
        }
        _ => {
            if let Ok(mut reader) = TraceReader::open(path) {
                let _ = dump_jsonl(&mut reader, &mut std::io::sink(), DumpFilter::default());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_header_body(data);
    let _ = decode_record_body(data);
    // The last byte picks the reader and whether the chain is fixed up: it
    // lies in the last stored hash of a whole trace, which fixing overwrites.
    let mode = data.last().copied().unwrap_or(0);
    let path = scratch_path();
    if mode & 0x80 == 0 {
        let mut fixed = data.to_vec();
        fix_chain(&mut fixed);
        read_file(&path, &fixed, mode);
    } else {
        read_file(&path, data, mode);
    }
    let _ = std::fs::remove_file(&path);
});
