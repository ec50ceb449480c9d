//! Guest SDK for wasm-engine agents: the Agent trait, export macro, typed host calls.
