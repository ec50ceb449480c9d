//! Damage is detected, located, and never cut away by recovery.

use crate::common::*;
use we_core::{Tick, TickRecord};
use we_replay::{Error, RecoverAction, TraceReader, chain_next, encode_record_body, recover};

/// Opens and reads a whole trace, in strict or recovery mode.
fn verify(path: &std::path::Path, recovering: bool) -> we_replay::Result<u64> {
    let mut reader = if recovering {
        TraceReader::open_recover(path)?
    } else {
        TraceReader::open(path)?
    };
    while let Some(entry) = reader.next_entry() {
        entry?;
    }
    Ok(reader.record_count())
}

/// Flips every byte of a small trace, one at a time and with three masks
/// (low bit, high bit, all bits), and checks that strict reading and recovery both fail, naming the
/// header for a header byte and exactly the frame that holds the byte
/// otherwise.
#[test]
fn every_single_byte_flip_is_detected_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.trace");
    write_trace(&good, &sample_header(), &sample_records());
    let bytes = std::fs::read(&good).unwrap();
    let walk = layout(&bytes);
    let bad = dir.path().join("bad.trace");

    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            std::fs::write(&bad, &damaged).unwrap();
            for recovering in [false, true] {
                let err = match verify(&bad, recovering) {
                    Ok(n) => panic!(
                        "flip {mask:#04x} at byte {at} not detected (recovering: {recovering}, {n} records)"
                    ),
                    Err(e) => e,
                };
                let offset = err.offset().unwrap_or_else(|| panic!("no offset in {err}"));
                if (at as u64) < walk.header_end {
                    assert_eq!(err.record(), None, "byte {at}: {err}");
                    assert!(offset < walk.header_end, "byte {at}: {err}");
                } else {
                    let k = walk
                        .frames
                        .iter()
                        .position(|&(s, e)| (s..e).contains(&(at as u64)))
                        .unwrap();
                    assert_eq!(err.record(), Some(k as u64), "byte {at}: {err}");
                    assert_eq!(offset, walk.frames[k].0, "byte {at}: {err}");
                }
            }
        }
    }
}

/// Recovery refuses a chain mismatch in the middle and leaves the file as it
/// was.
#[test]
fn recovery_does_not_cut_a_damaged_middle_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &sample_records());
    let mut bytes = std::fs::read(&path).unwrap();
    let walk = layout(&bytes);
    let (start, _) = walk.frames[1];
    bytes[start as usize + 20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = recover(&path, RecoverAction::Truncate).unwrap_err();
    assert!(
        matches!(err, Error::ChainMismatch { offset, record: 1, .. } if offset == start),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

/// A damaged length prefix on the last frame makes it look torn; recovery
/// sees the whole record behind it and refuses to cut it.
#[test]
fn a_lengthened_last_frame_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &sample_records());
    let mut bytes = std::fs::read(&path).unwrap();
    let walk = layout(&bytes);
    let (start, end) = *walk.frames.last().unwrap();
    let s = start as usize;
    let len = u32::from_le_bytes(bytes[s..s + 4].try_into().unwrap());
    bytes[s..s + 4].copy_from_slice(&(len + 100).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = recover(&path, RecoverAction::Truncate).unwrap_err();
    match err {
        Error::CorruptLength {
            offset,
            record,
            claimed,
            actual,
        } => {
            assert_eq!((offset, record), (start, 3));
            assert_eq!((claimed, actual), (len + 100, len));
        }
        other => panic!("{other}"),
    }
    assert_eq!(std::fs::read(&path).unwrap().len() as u64, end);
}

/// Writes a trace by hand whose frames carry valid chain hashes over the
/// given bodies, so only the decoder and the tick check can object.
fn hand_made(path: &std::path::Path, bodies: &[Vec<u8>]) -> Vec<u64> {
    let mut bytes = Vec::new();
    let mut header_body = Vec::new();
    we_replay::encode_header_body(&sample_header(), &mut header_body).unwrap();
    bytes.extend_from_slice(b"WETRACE\0");
    bytes.extend_from_slice(&we_replay::FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header_body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header_body);
    let mut head = *blake3::hash(&header_body).as_bytes();
    bytes.extend_from_slice(&head);
    let mut offsets = Vec::new();
    for body in bodies {
        offsets.push(bytes.len() as u64);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(body);
        head = chain_next(&head, body);
        bytes.extend_from_slice(&head);
    }
    std::fs::write(path, bytes).unwrap();
    offsets
}

fn body(tick: u64) -> Vec<u8> {
    let mut b = Vec::new();
    let r = TickRecord {
        tick: Tick(tick),
        ..TickRecord::default()
    };
    encode_record_body(&r, &mut b).unwrap();
    b
}

#[test]
fn a_tick_that_does_not_follow_is_an_error_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let offsets = hand_made(&path, &[body(5), body(6), body(6)]);
    let err = read_all(&path).unwrap_err();
    assert!(
        matches!(err, Error::TickOrder { offset, record: 2, tick: 6, previous: 6 } if offset == offsets[2]),
        "{err}"
    );
    let offsets = hand_made(&path, &[body(5), body(3)]);
    let err = read_all(&path).unwrap_err();
    assert!(
        matches!(err, Error::TickOrder { offset, record: 1, tick: 3, previous: 5 } if offset == offsets[1]),
        "{err}"
    );
}

#[test]
fn a_verified_body_that_does_not_decode_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let mut trailing = body(9);
    trailing.push(0);
    let mut bad_tag = body(9);
    // One fault with an unknown kind tag; the fault count is at byte 84.
    bad_tag[84..88].copy_from_slice(&1u32.to_le_bytes());
    bad_tag.splice(88..88, [0, 0, 0, 0, 0, 0, 0, 0, 77]);
    for bad in [trailing, bad_tag] {
        let offsets = hand_made(&path, &[body(1), bad]);
        let err = read_all(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Decode { offset, record: Some(1), tick: Some(9), .. } if *offset == offsets[1]),
            "{err}"
        );
    }
}

#[test]
fn absurd_lengths_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &sample_records()[..1]);
    let mut bytes = std::fs::read(&path).unwrap();
    let walk = layout(&bytes);
    let s = walk.frames[0].0 as usize;
    bytes[s..s + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = read_all(&path).unwrap_err();
    assert!(
        matches!(err, Error::BadFrameLength { len: u32::MAX, .. }),
        "{err}"
    );

    let mut bytes = std::fs::read(&path).unwrap();
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = TraceReader::open(&path).unwrap_err();
    assert!(matches!(err, Error::HeaderTooLarge { .. }), "{err}");
}

#[test]
fn bad_magic_and_version_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &[]);
    let good = std::fs::read(&path).unwrap();

    let mut bytes = good.clone();
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    let err = TraceReader::open(&path).unwrap_err();
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");

    let mut bytes = good;
    // Version 2 recorded inference results before post-processing.
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = TraceReader::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 2,
                supported: 3
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "trace format version 2 is not supported (this reader supports 3)"
    );
}
