//! Fuzz target: scenario parsing (`we_runtime::Scenario::parse`): arbitrary
//! bytes give a scenario or an error naming the file and the field, never a
//! panic; what parses can be queried without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use we_runtime::Scenario;

fuzz_target!(|data: &[u8]| {
    match Scenario::parse("fuzz.toml", data, PathBuf::from("base")) {
        Ok(s) => {
            let _ = s.agent_count();
            for g in 0..s.agents.len() {
                let _ = s.module_path(g);
                let _ = s.config_bytes(g);
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("fuzz.toml"),
                "error does not name the file: {text}"
            );
        }
    }
});
