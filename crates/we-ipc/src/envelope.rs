//! Envelope headers as rkyv archives, and the zero-copy inbox reader.
//!
//! [`EnvelopeHeader`]'s archived form is, byte for byte, the encoding of a
//! `we_abi::MessageHeader` with the same values: rkyv 0.8 with its default
//! format (the crate's `big_endian` and `unaligned` features off, which is what
//! `rkyv = "0.8"` with default features gives) archives a struct of primitives
//! as `#[repr(C)]` little-endian fields in declaration order, and
//! `u32, u16, u16, u32, u32` has no padding. A test pins this; if another crate
//! in the workspace ever turned on `big_endian` or `unaligned` (features unify),
//! that test fails rather than inboxes going silently wrong.

use crate::{Error, Result};

/// The header of a message envelope as an rkyv type; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EnvelopeHeader {
    /// Sender id.
    pub sender: u32,
    /// we-abi message kind.
    pub kind: u16,
    /// Reserved flags.
    pub flags: u16,
    /// Topic or request tag.
    pub channel: u32,
    /// Payload length.
    pub len: u32,
}

/// Walks an inbox (we-abi message records), accessing each header zero-copy
/// through rkyv's validated (bytecheck) `access`. Yields `(header, payload)`;
/// stops after the first bad record, which is yielded as an error with its
/// offset.
///
/// The archived header has 4-byte alignment, so `inbox` must start at a 4-byte
/// aligned address; records are padded to 8 bytes inside it. Inboxes returned
/// by [`crate::Bus::inbox`] are heap buffers and meet this; a misaligned copy
/// gives an error, never a panic or an unaligned read.
pub fn read_envelopes(
    inbox: &[u8],
) -> impl Iterator<Item = Result<(&ArchivedEnvelopeHeader, &[u8])>> + '_ {
    let mut records = we_abi::Records::new(inbox);
    let mut failed = false;
    // Bounded by the records in `inbox`; `Records` ends at the first bad one.
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let offset = records.offset();
        let next = records.next()?;
        let item = next
            .map_err(|e| Error::BadRecord {
                offset,
                what: format!("{e:?}"),
            })
            .and_then(|(header, payload)| {
                rkyv::access::<ArchivedEnvelopeHeader, rkyv::rancor::Error>(header)
                    .map(|h| (h, payload))
                    .map_err(|e| Error::BadRecord {
                        offset,
                        what: e.to_string(),
                    })
            });
        failed = item.is_err();
        Some(item)
    })
}
