//! A trace cut at any byte: whole records before the cut survive recovery,
//! exactly; a cut header is a clear error; nothing panics.

use crate::common::*;
use we_replay::{Error, FsyncPolicy, RecoverAction, TraceReader, TraceWriter, recover};

#[test]
fn a_cut_at_every_offset_recovers_exactly_the_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.trace");
    let header = sample_header();
    let records = sample_records();
    let heads = write_trace(&good, &header, &records);
    let bytes = std::fs::read(&good).unwrap();
    let walk = layout(&bytes);
    let cut_path = dir.path().join("cut.trace");

    for cut in 0..=bytes.len() as u64 {
        std::fs::write(&cut_path, &bytes[..cut as usize]).unwrap();
        if cut < walk.header_end {
            let err = TraceReader::open(&cut_path).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { offset: 0, record: None, available, .. } if available == cut),
                "cut {cut}: {err}"
            );
            let err = recover(&cut_path, RecoverAction::Truncate).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { record: None, .. }),
                "cut {cut}: {err}"
            );
            continue;
        }
        let whole = walk.frames.iter().filter(|&&(_, end)| end <= cut).count();
        let boundary = walk
            .frames
            .get(whole.wrapping_sub(1))
            .map_or(walk.header_end, |f| f.1);
        let head = heads
            .get(whole.wrapping_sub(1))
            .copied()
            .unwrap_or(walk.header_hash);

        // Recovery mode reads exactly the whole records.
        let mut reader = TraceReader::open_recover(&cut_path).unwrap();
        let got: Vec<_> = reader.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(got, records[..whole], "cut {cut}");
        assert_eq!(reader.chain_head(), head, "cut {cut}");
        assert_eq!(reader.offset(), boundary, "cut {cut}");
        assert_eq!(
            reader.torn_tail().map(|t| t.offset),
            (cut != boundary).then_some(boundary)
        );

        // Strict mode reads the same records, then names the torn frame.
        let strict: Vec<_> = TraceReader::open(&cut_path).unwrap().collect();
        if cut == boundary {
            assert_eq!(strict.len(), whole, "cut {cut}");
            assert!(strict.iter().all(|r| r.is_ok()));
        } else {
            assert_eq!(strict.len(), whole + 1, "cut {cut}");
            let err = strict.last().unwrap().as_ref().unwrap_err();
            assert!(
                matches!(err, Error::Truncated { offset, record: Some(r), .. } if *offset == boundary && *r == whole as u64),
                "cut {cut}: {err}"
            );
        }

        // Recovery cuts the file there, and appending goes on from it: the
        // result is byte for byte the uncut trace.
        let report = recover(&cut_path, RecoverAction::Truncate).unwrap();
        assert_eq!(report.records, whole as u64);
        assert_eq!(report.valid_bytes, boundary);
        assert_eq!(report.file_bytes, cut);
        assert_eq!(report.truncated, cut != boundary);
        assert_eq!(report.chain_head, head);
        assert_eq!(std::fs::metadata(&cut_path).unwrap().len(), boundary);

        let mut w = TraceWriter::append_to(&cut_path, FsyncPolicy::Never).unwrap();
        w.write_header(&header).unwrap();
        for (r, h) in records[whole..].iter().zip(&heads[whole..]) {
            assert_eq!(w.write_record(r).unwrap(), *h);
        }
        w.close().unwrap();
        assert_eq!(std::fs::read(&cut_path).unwrap(), bytes, "cut {cut}");
    }
}

/// A torn tail filled with zeros (the file grew, its data never reached the
/// disk) is cut too.
#[test]
fn a_zero_filled_tail_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let records = sample_records();
    write_trace(&path, &sample_header(), &records);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(&[0u8; 300]);
    std::fs::write(&path, &bytes).unwrap();

    let err = read_all(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadFrameLength {
                len: 0,
                record: 4,
                ..
            }
        ),
        "{err}"
    );
    let report = recover(&path, RecoverAction::Report).unwrap();
    assert_eq!(report.records, 4);
    assert_eq!(report.torn.unwrap().offset, len);
    assert_eq!(
        report.torn.unwrap().reason,
        we_replay::TornReason::ZeroFilled
    );
    assert!(!report.truncated);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len + 300);

    // Zeros followed by something else are damage, not a torn tail.
    bytes.push(1);
    std::fs::write(&path, &bytes).unwrap();
    let err = recover(&path, RecoverAction::Truncate).unwrap_err();
    assert!(matches!(err, Error::BadFrameLength { len: 0, .. }), "{err}");
}
