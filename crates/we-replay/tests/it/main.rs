//! Integration tests of we-replay, one binary with a module per concern.
//!
//! Property tests print the seed of a failing case; proptest keeps it in a
//! `*.proptest-regressions` file beside the module so it is rerun first.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod corruption;
mod dump;
mod golden;
mod roundtrip;
mod truncation;
mod writer;
