//! Fuzz target: signature verification and key file parsing (we-sign) on
//! arbitrary bytes: the checks that run on every module before the sandbox
//! sees it must never panic, and must never accept what they did not sign.

#![no_main]

use libfuzzer_sys::fuzz_target;
use we_sign::{PublicKey, SecretKey, check_module, sign_module, signature_key_id, verify_module};

fuzz_target!(|data: &[u8]| {
    let secret = SecretKey::from_seed(&[7; 32]);
    let public = secret.public_key();
    let trusted = [public];
    match verify_module("fuzz.wasm", data, &trusted) {
        // Only bytes that really carry our signature verify.
        Ok(v) => assert!(data.starts_with(v.module) && v.key_id == public.key_id()),
        Err(e) => assert_eq!(e.module(), Some("fuzz.wasm"), "{e}"),
    }
    let _ = check_module("fuzz.wasm", data, &trusted, true);
    let _ = signature_key_id("fuzz.wasm", data);
    // Whatever signs must verify, and must verify to exactly the input bytes
    // less any signature it already had.
    if let Ok(signed) = sign_module("fuzz.wasm", data, &secret) {
        let v = verify_module("fuzz.wasm", &signed, &trusted);
        assert!(v.is_ok(), "a freshly signed module does not verify: {v:?}");
    }
    let text = String::from_utf8_lossy(data);
    let _ = PublicKey::from_text("fuzz.pub", &text);
    let _ = SecretKey::from_text("fuzz.key", &text);
});
