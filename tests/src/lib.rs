//! Harness for integration tests.
