//! Round trips: what is written is read back equal, and the chain head is the
//! one an independent walk of the bytes computes.

use crate::common::*;
use proptest::prelude::*;
use we_core::TraceSink;
use we_replay::{
    Chain, TraceReader, decode_header_body, decode_record_body, encode_header_body,
    encode_record_body,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random traces: records read back equal, chain heads agree between the
    /// writer, the reader, an in-memory `Chain`, and a walk of the raw bytes.
    #[test]
    fn random_traces_round_trip(header in arb_header(), records in arb_records(12)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let heads = write_trace(&path, &header, &records);

        let bytes = std::fs::read(&path).unwrap();
        let walk = layout(&bytes);
        prop_assert_eq!(&walk.chain, &heads);
        prop_assert_eq!(walk.frames.len(), records.len());

        let mut reader = TraceReader::open(&path).unwrap();
        prop_assert_eq!(reader.header(), &header);
        prop_assert_eq!(reader.header_hash(), walk.header_hash);
        let mut back = Vec::new();
        while let Some(entry) = reader.next_entry() {
            let entry = entry.unwrap();
            prop_assert_eq!(entry.offset, walk.frames[back.len()].0);
            prop_assert_eq!(entry.chain, heads[back.len()]);
            back.push(entry.record);
        }
        prop_assert_eq!(&back, &records);
        let expected_head = walk.chain.last().copied().unwrap_or(walk.header_hash);
        prop_assert_eq!(reader.chain_head(), expected_head);
        prop_assert_eq!(reader.record_count(), records.len() as u64);

        let mut chain = Chain::default();
        chain.begin(&header).unwrap();
        for r in &records {
            chain.record(r).unwrap();
        }
        prop_assert_eq!(chain.head(), expected_head);
        prop_assert_eq!(chain.bytes(), bytes.len() as u64);

        let summary = TraceReader::open(&path).unwrap().summarize().unwrap();
        prop_assert_eq!(summary.ticks, records.len() as u64);
        prop_assert_eq!(summary.first_tick, records.first().map(|r| r.tick.0));
        prop_assert_eq!(summary.last_tick, records.last().map(|r| r.tick.0));
        prop_assert_eq!(summary.chain_head, expected_head);
        prop_assert_eq!(summary.bytes, bytes.len() as u64);
        prop_assert_eq!(summary.header, header);
    }

    /// The body codec is a bijection on what it produces.
    #[test]
    fn bodies_are_canonical(header in arb_header(), records in arb_records(4)) {
        for r in &records {
            let mut body = Vec::new();
            encode_record_body(r, &mut body).unwrap();
            prop_assert_eq!(body.len() as u64, we_replay::encoded_record_body_len(r).unwrap());
            let back = decode_record_body(&body).unwrap();
            prop_assert_eq!(&back, r);
            let mut again = Vec::new();
            encode_record_body(&back, &mut again).unwrap();
            prop_assert_eq!(again, body);
        }
        let mut body = Vec::new();
        encode_header_body(&header, &mut body).unwrap();
        prop_assert_eq!(decode_header_body(&body).unwrap(), header);
    }

    /// Arbitrary bytes never panic the decoders, and whatever decodes
    /// re-encodes to the same bytes (the decoder accepts only canonical input).
    #[test]
    fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(r) = decode_record_body(&bytes) {
            let mut again = Vec::new();
            encode_record_body(&r, &mut again).unwrap();
            prop_assert_eq!(again, bytes.clone());
        }
        if let Ok(h) = decode_header_body(&bytes) {
            let mut again = Vec::new();
            encode_header_body(&h, &mut again).unwrap();
            prop_assert_eq!(again, bytes);
        }
    }

    /// Mutating a valid body (with a fixed-up chain, so only the decoder sees
    /// it) never panics, and what decodes is canonical.
    #[test]
    fn mutated_bodies_never_panic(
        records in arb_records(2),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        for r in &records {
            let mut body = Vec::new();
            encode_record_body(r, &mut body).unwrap();
            for (i, b) in &edits {
                let at = i.index(body.len());
                body[at] = *b;
            }
            if let Ok(back) = decode_record_body(&body) {
                let mut again = Vec::new();
                encode_record_body(&back, &mut again).unwrap();
                prop_assert_eq!(again, body);
            }
        }
    }
}

#[test]
fn empty_trace_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    write_trace(&path, &sample_header(), &[]);
    let reader = TraceReader::open(&path).unwrap();
    let hash = reader.header_hash();
    let summary = reader.summarize().unwrap();
    assert_eq!(summary.ticks, 0);
    assert_eq!(summary.first_tick, None);
    assert_eq!(summary.chain_head, hash);
    assert_eq!(hash, we_replay::header_hash(&sample_header()).unwrap());
}

/// A record with 10,000 agent digests (the bench's record) round-trips, and
/// its size is the documented 96 + 8 * n bytes.
#[test]
fn large_record_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let mut record = sample_records().remove(0);
    record.agent_digests = (0..10_000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    record.inputs.clear();
    write_trace(&path, &sample_header(), std::slice::from_ref(&record));
    assert_eq!(read_all(&path).unwrap(), vec![record.clone()]);
    assert_eq!(
        we_replay::encoded_record_body_len(&record).unwrap(),
        100 + 8 * 10_000
    );
}
