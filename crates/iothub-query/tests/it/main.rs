//! Integration tests of iothub-query: the conformance data, the spec's tables, error positions,
//! route tables, property tests.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod condition_set;
mod conformance;
mod errors;
mod fuzz_corpus;
mod properties;
mod spec;
mod support;
