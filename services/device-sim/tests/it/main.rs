//! Integration tests: the simulator against the real local hub (in this process, or as the `hub`
//! binary where a test kills it), and the `device-sim` binary's handling of bad input.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod load;
mod restart;
mod sidecar;
mod support;
mod transports;
mod tutorial;
