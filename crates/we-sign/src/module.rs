//! Signing and verifying modules: the `we.signature` custom section.
//!
//! Layout of a signed module (all offsets in the appended bytes):
//!
//! ```text
//! <the module as it was, byte for byte>          signed, length N
//! 0x00                                           section id: custom
//! 0x56                                           section size: 86 (LEB128)
//! 0x0c "we.signature"                            section name
//! 0x01                                           format version
//! <8 bytes>                                      key id (blake3 of the public key, first 8 bytes)
//! <64 bytes>                                     ed25519 signature
//! ```
//!
//! The signature is over `DOMAIN || key id || module[..N]`: the domain string
//! keeps a module signature from ever being valid for anything else signed
//! with the same key, and the key id is bound so it cannot be swapped.
//! Verification is strict (`verify_strict`: canonical signatures, no weak
//! keys).

use crate::keys::{KeyId, PublicKey, SecretKey};
use crate::{Error, Result};
use ed25519_dalek::{Signature, Signer};

/// Name of the signature's custom section.
pub const SECTION_NAME: &str = "we.signature";
/// Format version of the section's contents.
pub const FORMAT_VERSION: u8 = 1;
/// Domain separation prefix of the signed message.
pub const DOMAIN: &[u8] = b"wasm-engine module signature v1\0";

/// Bytes of the section's contents: name length, name, version, key id, signature.
const CONTENTS_LEN: usize = 1 + SECTION_NAME.len() + 1 + 8 + 64;
/// Bytes of the whole section: id, one-byte size, contents.
pub const SECTION_LEN: usize = 2 + CONTENTS_LEN;
/// The core module preamble: magic and version 1.
const PREAMBLE: [u8; 8] = *b"\0asm\x01\0\0\0";

// The size fits one LEB128 byte; the layout above depends on it.
const _: () = assert!(CONTENTS_LEN < 0x80);

/// A module whose signature verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The trusted key that signed it.
    pub key_id: KeyId,
    /// The module without its signature section: exactly the bytes that were
    /// signed, a valid module on its own.
    pub module: &'a [u8],
}

/// What [`check_module`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Signed by a trusted key.
    Signed(Verified<'a>),
    /// Unsigned, and unsigned modules are allowed (development only).
    UnsignedAllowed,
}

/// One section of a module, as located by [`sections`].
#[derive(Clone, Copy, Debug)]
struct Section<'a> {
    id: u8,
    /// Offset of the id byte.
    start: usize,
    contents: &'a [u8],
}

/// Signs `bytes` with `key`: returns the module with a `we.signature` section
/// appended. A signature the module already carries is replaced, so re-signing
/// with another key gives a module signed by that key alone.
pub fn sign_module(name: &str, bytes: &[u8], key: &SecretKey) -> Result<Vec<u8>> {
    let sections = sections(name, bytes)?;
    let unsigned = match sections.last() {
        Some(last) if is_signature_section(last) => {
            check_signature_is_last(name, bytes, &sections[..sections.len() - 1])?;
            &bytes[..last.start]
        }
        _ => {
            check_signature_is_last(name, bytes, &sections)?;
            bytes
        }
    };
    let key_id = key.key_id();
    let signature = key.signing_key().sign(&message(&key_id, unsigned));
    let mut out = Vec::with_capacity(unsigned.len() + SECTION_LEN);
    out.extend_from_slice(unsigned);
    out.push(0);
    out.push(CONTENTS_LEN as u8);
    out.push(SECTION_NAME.len() as u8);
    out.extend_from_slice(SECTION_NAME.as_bytes());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&key_id.0);
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// Verifies that `bytes` (named `name` in errors) carries a valid signature by
/// one of `trusted`. Refuses, naming the module and the reason: bytes that are
/// not a module ([`Error::NotWasm`], [`Error::Malformed`]), a module with no
/// signature ([`Error::Unsigned`]), a damaged or misplaced signature section
/// ([`Error::BadSignatureSection`]), a signature by a key not in `trusted`
/// ([`Error::UnknownKey`]), and a signature that does not match the bytes
/// ([`Error::Tampered`]).
pub fn verify_module<'a>(
    name: &str,
    bytes: &'a [u8],
    trusted: &[PublicKey],
) -> Result<Verified<'a>> {
    let sections = sections(name, bytes)?;
    let bad = |reason: String| Error::BadSignatureSection {
        module: name.to_string(),
        reason,
    };
    let Some(last) = sections.last().filter(|s| is_signature_section(s)) else {
        check_signature_is_last(name, bytes, &sections)?;
        if let Some(last) = sections.last().filter(|s| looks_like_signature(s)) {
            return Err(bad(format!(
                "the last section (at byte {}) has the shape of a `{SECTION_NAME}` section but is damaged (id {}, {} bytes)",
                last.start,
                last.id,
                last.contents.len()
            )));
        }
        return Err(Error::Unsigned {
            module: name.to_string(),
        });
    };
    check_signature_is_last(name, bytes, &sections[..sections.len() - 1])?;
    let signed = &bytes[..last.start];
    let payload = &last.contents[1 + SECTION_NAME.len()..];
    if payload.len() != 1 + 8 + 64 {
        return Err(bad(format!(
            "contents are {} bytes after the name, expected {}",
            payload.len(),
            1 + 8 + 64
        )));
    }
    if payload[0] != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {}, this runtime reads version {FORMAT_VERSION}",
            payload[0]
        )));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&payload[1..9]);
    let key_id = KeyId(id);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&payload[9..73]);
    let Some(key) = trusted.iter().find(|k| k.key_id() == key_id) else {
        let ids: Vec<String> = trusted.iter().map(|k| k.key_id().to_string()).collect();
        return Err(Error::UnknownKey {
            module: name.to_string(),
            key_id,
            trusted: trusted.len(),
            trusted_ids: ids.join(", "),
        });
    };
    let signature = Signature::from_bytes(&sig);
    key.verifying_key()
        .verify_strict(&message(&key_id, signed), &signature)
        .map_err(|_| Error::Tampered {
            module: name.to_string(),
            key_id,
            signed_len: signed.len(),
        })?;
    Ok(Verified {
        key_id,
        module: signed,
    })
}

/// The runtime's admission check: [`verify_module`], except that with
/// `allow_unsigned` (the development flag) a module with no signature at all
/// is let through as [`Verdict::UnsignedAllowed`]. A module that does carry a
/// signature must still verify: a bad or unknown signature is never ignored.
pub fn check_module<'a>(
    name: &str,
    bytes: &'a [u8],
    trusted: &[PublicKey],
    allow_unsigned: bool,
) -> Result<Verdict<'a>> {
    match verify_module(name, bytes, trusted) {
        Ok(verified) => Ok(Verdict::Signed(verified)),
        Err(Error::Unsigned { .. }) if allow_unsigned => Ok(Verdict::UnsignedAllowed),
        Err(e) => Err(e),
    }
}

/// The payloads (after the name) of every custom section called `wanted`,
/// in module order, with the section framing checked as [`verify_module`]
/// checks it. The sandbox reads the `we.capabilities` declaration with it.
pub fn custom_sections<'a>(name: &str, bytes: &'a [u8], wanted: &str) -> Result<Vec<&'a [u8]>> {
    let mut out = Vec::new();
    for s in sections(name, bytes)? {
        if s.id != 0 {
            continue;
        }
        let Some((len, used)) = read_u32_leb(s.contents) else {
            return Err(Error::Malformed {
                module: name.to_string(),
                offset: s.start,
                reason: "custom section: truncated or overlong name length".into(),
            });
        };
        let payload_start = used.saturating_add(len as usize);
        if s.contents.get(used..payload_start) == Some(wanted.as_bytes()) {
            out.push(&s.contents[payload_start..]);
        }
    }
    Ok(out)
}

/// The contents of every section with id `id` (1 to 13; custom sections are
/// read with [`custom_sections`]), in module order, with the framing checked
/// as [`verify_module`] checks it.
pub fn sections_with_id<'a>(name: &str, bytes: &'a [u8], id: u8) -> Result<Vec<&'a [u8]>> {
    Ok(sections(name, bytes)?
        .into_iter()
        .filter(|s| s.id == id)
        .map(|s| s.contents)
        .collect())
}

/// The key id a module's signature section names, without verifying it
/// (for `inspect`-style tools). `Ok(None)` when the module is unsigned.
pub fn signature_key_id(name: &str, bytes: &[u8]) -> Result<Option<KeyId>> {
    let sections = sections(name, bytes)?;
    let Some(last) = sections.last().filter(|s| is_signature_section(s)) else {
        return Ok(None);
    };
    let payload = &last.contents[1 + SECTION_NAME.len()..];
    match payload.get(1..9) {
        Some(id) if payload.len() == 73 => {
            let mut out = [0u8; 8];
            out.copy_from_slice(id);
            Ok(Some(KeyId(out)))
        }
        _ => Err(Error::BadSignatureSection {
            module: name.to_string(),
            reason: format!("contents are {} bytes after the name", payload.len()),
        }),
    }
}

fn message(key_id: &KeyId, signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 8 + signed.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&key_id.0);
    m.extend_from_slice(signed);
    m
}

/// A custom section whose name is [`SECTION_NAME`].
fn is_signature_section(s: &Section<'_>) -> bool {
    s.id == 0
        && s.contents.first() == Some(&(SECTION_NAME.len() as u8))
        && s.contents.get(1..1 + SECTION_NAME.len()) == Some(SECTION_NAME.as_bytes())
}

/// A section that is probably a damaged signature section: its name at the
/// start of any section kind, or a custom section of the signature's exact
/// size with a name of the same length.
fn looks_like_signature(s: &Section<'_>) -> bool {
    s.contents.get(1..1 + SECTION_NAME.len()) == Some(SECTION_NAME.as_bytes())
        || (s.id == 0
            && s.contents.len() == CONTENTS_LEN
            && s.contents.first() == Some(&(SECTION_NAME.len() as u8)))
}

/// Refuses a signature section anywhere among `sections` (which exclude a
/// final one): a signature must cover everything before it and be last.
fn check_signature_is_last(name: &str, bytes: &[u8], sections: &[Section<'_>]) -> Result<()> {
    match sections.iter().find(|s| is_signature_section(s)) {
        Some(s) => Err(Error::BadSignatureSection {
            module: name.to_string(),
            reason: format!(
                "a `{SECTION_NAME}` section at byte {} is followed by {} more bytes; the signature must be the last section",
                s.start,
                bytes.len() - (s.start + 2 + s.contents.len()).min(bytes.len())
            ),
        }),
        None => Ok(()),
    }
}

/// Splits a module into its sections, checking only the framing (preamble,
/// section ids and sizes), which is all the signature needs; the sandbox
/// validates the contents. Bounded: every iteration consumes at least two bytes.
fn sections<'a>(name: &str, bytes: &'a [u8]) -> Result<Vec<Section<'a>>> {
    let malformed = |offset: usize, reason: String| Error::Malformed {
        module: name.to_string(),
        offset,
        reason,
    };
    if bytes.len() < PREAMBLE.len() || bytes[..4] != PREAMBLE[..4] {
        let shown: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(Error::NotWasm {
            module: name.to_string(),
            reason: format!(
                "expected the magic bytes 00 61 73 6d and a version, found [{}] ({} bytes in all)",
                shown.join(" "),
                bytes.len()
            ),
        });
    }
    if bytes[4..8] != PREAMBLE[4..8] {
        return Err(Error::NotWasm {
            module: name.to_string(),
            reason: format!(
                "binary format version {:02x} {:02x} {:02x} {:02x}; only core modules of version 1 are accepted",
                bytes[4], bytes[5], bytes[6], bytes[7]
            ),
        });
    }
    let mut out = Vec::new();
    let mut pos = PREAMBLE.len();
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        // 0..=12 are the core sections, 13 the exception-handling tag section.
        if id > 13 {
            return Err(malformed(start, format!("unknown section id {id}")));
        }
        pos += 1;
        let (size, used) = read_u32_leb(&bytes[pos..]).ok_or_else(|| {
            malformed(
                pos,
                format!("section {id}: truncated or overlong size (LEB128 u32)"),
            )
        })?;
        pos += used;
        let size = size as usize;
        let remaining = bytes.len() - pos;
        if size > remaining {
            return Err(malformed(
                start,
                format!("section {id} declares {size} bytes but only {remaining} remain"),
            ));
        }
        out.push(Section {
            id,
            start,
            contents: &bytes[pos..pos + size],
        });
        pos += size;
    }
    Ok(out)
}

/// Decodes an unsigned LEB128 u32; returns it and the bytes used (`None`
/// when truncated or over 32 bits).
pub fn read_u32_leb(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        let low = (b & 0x7f) as u32;
        if i == 4 && low > 0x0f {
            return None;
        }
        value |= low << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_decodes_bounds() {
        assert_eq!(read_u32_leb(&[0x56]), Some((0x56, 1)));
        assert_eq!(read_u32_leb(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(
            read_u32_leb(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some((u32::MAX, 5))
        );
        assert_eq!(read_u32_leb(&[0xff, 0xff, 0xff, 0xff, 0x1f]), None);
        assert_eq!(read_u32_leb(&[0x80, 0x80]), None);
        assert_eq!(read_u32_leb(&[]), None);
    }

    #[test]
    fn section_layout_is_as_documented() {
        assert_eq!(CONTENTS_LEN, 0x56);
        assert_eq!(SECTION_LEN, 88);
    }
}
