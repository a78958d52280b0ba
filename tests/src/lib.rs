//! The end-to-end test crate has no library code: its helpers live with the tests, in
//! `tests/tests/harness.rs` and `tests/tests/natlab.rs` (the `main` test target).
