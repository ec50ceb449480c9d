//! Little-endian readers for payloads and config bytes, without panics.

/// The `u64` at `offset` (8 bytes, little-endian), if the bytes are there.
pub fn le_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let end = offset.checked_add(8)?;
    bytes
        .get(offset..end)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

/// The `u32` at `offset` (4 bytes, little-endian), if the bytes are there.
pub fn le_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    bytes
        .get(offset..end)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}
