//! Fuzz target: inbox and outbox decoding: `we_ipc::read_envelopes` (rkyv
//! checked access), `we_abi::Records`, message and effect headers, and
//! inference tensor payloads. Arbitrary bytes give records or errors, never a
//! panic or an out-of-bounds read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkyv::util::AlignedVec;
use we_abi::{EffectHeader, MessageHeader, Records, tensor};

fn tensors(body: &[u8]) {
    // Bounded: each tensor consumes at least its 8-byte header.
    for t in tensor::Tensors::new(body).take(body.len() / 8 + 1) {
        let Ok(t) = t else { return };
        let _ = (
            t.rank(),
            t.element_count(),
            t.dtype,
            t.name.len(),
            t.data.len(),
        );
        for i in 0..t.rank() {
            let _ = t.dim(i);
        }
    }
}

fn payload(p: &[u8]) {
    if let Ok((_name, _count, body)) = tensor::read_request_header(p) {
        tensors(body);
    }
    if let Ok((_count, body)) = tensor::read_result_header(p) {
        tensors(body);
    }
}

fuzz_target!(|data: &[u8]| {
    // An aligned copy (the documented precondition of read_envelopes), and the
    // same bytes one byte off alignment (must be an error, not UB).
    let mut aligned: AlignedVec<16> = AlignedVec::with_capacity(data.len() + 1);
    aligned.extend_from_slice(data);
    let mut shifted: AlignedVec<16> = AlignedVec::with_capacity(data.len() + 1);
    shifted.push(0);
    shifted.extend_from_slice(data);
    for inbox in [&aligned[..], &shifted[1..]] {
        let mut count = 0usize;
        for item in we_ipc::read_envelopes(inbox) {
            let Ok((h, p)) = item else { break };
            let _ = (h.sender, h.kind, h.flags, h.channel, h.len);
            assert_eq!(h.len.to_native() as usize, p.len());
            payload(p);
            count += 1;
            assert!(count <= inbox.len() / 16, "more records than bytes allow");
        }
    }
    for record in Records::new(data).take(data.len() / 16 + 1) {
        let Ok((header, p)) = record else { break };
        if let Some(m) = MessageHeader::decode(header) {
            let _ = m.record_size();
        }
        if let Some(e) = EffectHeader::decode(header) {
            let _ = e.record_size();
        }
        payload(p);
    }
    payload(data);
    tensors(data);
});
