//! Integration tests of service-kit: configuration layering and the admin server over real HTTP.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod config;
