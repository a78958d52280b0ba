//! Helpers live in tests/main.rs.
