//! Fuzz target: the sandbox's module loading (validation, import and export
//! checks, the ABI probe) on arbitrary bytes must return `Ok` or a precise
//! `Err`, never panic, hang or grow memory past the configured cap.

#![no_main]

use libfuzzer_sys::fuzz_target;
use we_sandbox::{Sandbox, SandboxConfig};

fuzz_target!(|data: &[u8]| {
    let config = SandboxConfig {
        // The ABI probe runs guest code: keep each input quick.
        fuel_per_call: 100_000,
        memory_pages_max: 16,
        ..SandboxConfig::default()
    };
    let mut sandbox = Sandbox::new(config);
    if let Err(e) = sandbox.load_module("fuzz.wasm", data) {
        // Every error names the module.
        let text = e.to_string();
        assert!(
            text.contains("fuzz.wasm"),
            "error does not name the module: {text}"
        );
    }
});
