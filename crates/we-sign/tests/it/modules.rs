//! Signing and verification of modules.

use crate::{agents_dir, key, small_module};
use we_sign::{Error, Verdict, check_module, sign_module, signature_key_id, verify_module};

/// Asserts that `bytes` fails verification against `trusted` and that the
/// error names the module; returns the error.
fn refused(name: &str, bytes: &[u8], trusted: &[we_sign::PublicKey]) -> Error {
    let err = verify_module(name, bytes, trusted).expect_err("verification must fail");
    assert_eq!(err.module(), Some(name), "{err}");
    assert!(err.to_string().contains(name), "{err}");
    err
}

#[test]
fn a_signed_module_verifies_and_strips_to_the_original() {
    let (secret, public) = key(1);
    let original = small_module();
    let signed = sign_module("small", &original, &secret).unwrap();
    assert_eq!(signed.len(), original.len() + we_sign::module::SECTION_LEN);
    let verified = verify_module("small", &signed, &[public]).unwrap();
    assert_eq!(verified.key_id, public.key_id());
    assert_eq!(verified.module, &original[..]);
    assert_eq!(
        signature_key_id("small", &signed).unwrap(),
        Some(public.key_id())
    );
    // A signed module is still a valid module: custom sections are ignored.
    wat::parse_bytes(&signed).unwrap();
    // Several trusted keys: the right one is picked by id.
    let (_, other) = key(2);
    verify_module("small", &signed, &[other, public]).unwrap();
}

#[test]
fn signing_is_deterministic() {
    let (secret, _) = key(1);
    let a = sign_module("small", &small_module(), &secret).unwrap();
    let b = sign_module("small", &small_module(), &secret).unwrap();
    assert_eq!(a, b, "ed25519 signatures are deterministic");
}

/// Flips `mask` into byte `i` of `signed` and checks that verification fails.
fn check_every_byte(name: &str, signed: &[u8], trusted: &[we_sign::PublicKey], masks: &[u8]) {
    let mut kinds = std::collections::BTreeMap::<&'static str, usize>::new();
    let mut tampered = signed.to_vec();
    for i in 0..signed.len() {
        for &mask in masks {
            tampered[i] ^= mask;
            let err = match verify_module(name, &tampered, trusted) {
                Ok(_) => panic!("byte {i} ^ {mask:#04x} of {name}: still verifies"),
                Err(e) => e,
            };
            assert_eq!(err.module(), Some(name), "byte {i}: {err}");
            let kind = match err {
                Error::Tampered { .. } => "tampered",
                Error::UnknownKey { .. } => "unknown_key",
                Error::BadSignatureSection { .. } => "bad_signature_section",
                Error::Malformed { .. } => "malformed",
                Error::NotWasm { .. } => "not_wasm",
                Error::Unsigned { .. } => "unsigned",
                other => panic!("byte {i}: unexpected error {other}"),
            };
            *kinds.entry(kind).or_default() += 1;
            tampered[i] ^= mask;
        }
    }
    assert_eq!(tampered, signed);
    eprintln!(
        "{name}: {} bytes x {} flips, all refused: {kinds:?}",
        signed.len(),
        masks.len()
    );
    // Most positions are in the signed bytes, where only the signature notices.
    assert!(kinds.get("tampered").copied().unwrap_or(0) > signed.len() / 2);
    assert_eq!(
        kinds.get("unsigned"),
        None,
        "a damaged signature reads as unsigned"
    );
}

#[test]
fn tampering_with_any_byte_of_a_small_signed_module_fails() {
    let (secret, public) = key(1);
    let signed = sign_module("small", &small_module(), &secret).unwrap();
    check_every_byte("small", &signed, &[public], &[0x01, 0x80, 0xff]);
}

#[test]
fn tampering_with_any_byte_of_signed_ring_wasm_fails() {
    let bytes = std::fs::read(agents_dir().join("ring.wasm")).unwrap();
    let (secret, public) = key(1);
    let signed = sign_module("ring.wasm", &bytes, &secret).unwrap();
    verify_module("ring.wasm", &signed, &[public]).unwrap();
    // Every one of its ~20,000 bytes, not a sample.
    check_every_byte("ring.wasm", &signed, &[public], &[0x01]);
}

#[test]
fn resigned_with_an_untrusted_key_is_unknown_key() {
    let (trusted_secret, trusted) = key(1);
    let (untrusted_secret, untrusted) = key(9);
    let signed = sign_module("small", &small_module(), &trusted_secret).unwrap();
    let resigned = sign_module("small", &signed, &untrusted_secret).unwrap();
    // Re-signing replaces the signature rather than stacking a second one.
    assert_eq!(resigned.len(), signed.len());
    match refused("small", &resigned, &[trusted]) {
        Error::UnknownKey {
            key_id, trusted: n, ..
        } => {
            assert_eq!(key_id, untrusted.key_id());
            assert_eq!(n, 1);
        }
        other => panic!("expected UnknownKey, got {other}"),
    }
    let msg = refused("small", &resigned, &[trusted]).to_string();
    assert!(msg.contains(&untrusted.key_id().to_string()), "{msg}");
    assert!(msg.contains(&trusted.key_id().to_string()), "{msg}");
    // No trusted keys at all: every signed module is from an unknown key.
    assert!(matches!(
        refused("small", &signed, &[]),
        Error::UnknownKey { trusted: 0, .. }
    ));
}

#[test]
fn a_key_id_swapped_for_a_trusted_one_is_tampered() {
    // The signature by an untrusted key, relabelled with a trusted key's id:
    // the id is found, the signature does not verify under that key.
    let (_, trusted) = key(1);
    let (untrusted_secret, _) = key(9);
    let mut signed = sign_module("small", &small_module(), &untrusted_secret).unwrap();
    let id_at = signed.len() - 64 - 8;
    signed[id_at..id_at + 8].copy_from_slice(&trusted.key_id().0);
    assert!(matches!(
        refused("small", &signed, &[trusted]),
        Error::Tampered { .. }
    ));
}

#[test]
fn unsigned_modules_are_refused_unless_allowed() {
    let (_, public) = key(1);
    let module = small_module();
    let err = refused("small.wasm", &module, &[public]);
    assert!(matches!(err, Error::Unsigned { .. }), "{err}");
    assert!(err.to_string().contains("unsigned"), "{err}");
    assert_eq!(signature_key_id("small.wasm", &module).unwrap(), None);
    // The development switch lets unsigned modules through...
    assert_eq!(
        check_module("small.wasm", &module, &[public], true).unwrap(),
        Verdict::UnsignedAllowed
    );
    assert!(check_module("small.wasm", &module, &[public], false).is_err());
    // ...but never a bad or unknown signature.
    let (other_secret, _) = key(2);
    let foreign = sign_module("small.wasm", &module, &other_secret).unwrap();
    assert!(matches!(
        check_module("small.wasm", &foreign, &[public], true),
        Err(Error::UnknownKey { .. })
    ));
    let (secret, _) = key(1);
    let mut signed = sign_module("small.wasm", &module, &secret).unwrap();
    signed[10] ^= 1;
    assert!(matches!(
        check_module("small.wasm", &signed, &[public], true),
        Err(Error::Tampered { .. })
    ));
}

#[test]
fn bytes_after_the_signature_are_refused() {
    let (secret, public) = key(1);
    let mut signed = sign_module("small", &small_module(), &secret).unwrap();
    // A well-formed custom section appended after the signature.
    signed.extend_from_slice(&[0, 3, 2, b'h', b'i']);
    let err = refused("small", &signed, &[public]);
    assert!(
        matches!(err, Error::BadSignatureSection { .. }) && err.to_string().contains("last"),
        "{err}"
    );
    // Signing such a module is refused too: it would leave the old signature inside.
    assert!(matches!(
        sign_module("small", &signed, &secret),
        Err(Error::BadSignatureSection { .. })
    ));
}

#[test]
fn every_truncation_of_a_signed_module_is_refused() {
    let (secret, public) = key(1);
    let signed = sign_module("small", &small_module(), &secret).unwrap();
    for len in 0..signed.len() {
        refused("small", &signed[..len], &[public]);
    }
}

#[test]
fn non_modules_are_refused_precisely() {
    let (secret, public) = key(1);
    for (bytes, expect) in [
        (&b""[..], "0 bytes"),
        (&b"\x7fELF\x02\x01\x01\x00"[..], "7f 45 4c 46"),
        (&b"\0asm\x0d\0\x01\0"[..], "version 0d 00 01 00"),
    ] {
        let err = refused("x.wasm", bytes, &[public]);
        assert!(matches!(err, Error::NotWasm { .. }), "{err}");
        assert!(err.to_string().contains(expect), "{err}");
        assert!(sign_module("x.wasm", bytes, &secret).is_err());
    }
    // A section claiming more bytes than there are.
    let err = refused("x.wasm", b"\0asm\x01\0\0\0\x01\x7f\x00", &[public]);
    assert!(
        matches!(err, Error::Malformed { offset: 8, .. }) && err.to_string().contains("127"),
        "{err}"
    );
    // An overlong size.
    let err = refused(
        "x.wasm",
        b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\xff",
        &[public],
    );
    assert!(matches!(err, Error::Malformed { offset: 9, .. }), "{err}");
    // An unknown section id.
    let err = refused("x.wasm", b"\0asm\x01\0\0\0\x40\x00", &[public]);
    assert!(err.to_string().contains("unknown section id 64"), "{err}");
}

#[test]
fn random_bytes_never_panic() {
    // A fixed-seed xorshift: the failing seed is the constant below.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let (_, public) = key(1);
    for round in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 300) as usize;
        let mut bytes: Vec<u8> = (0..len)
            .map(|i| (state.rotate_left(i as u32 % 64) >> 3) as u8)
            .collect();
        if round % 2 == 0 && len >= 8 {
            bytes[..8].copy_from_slice(b"\0asm\x01\0\0\0");
        }
        let _ = verify_module("random", &bytes, &[public]);
        let _ = signature_key_id("random", &bytes);
    }
}
