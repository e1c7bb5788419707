//! Integration tests: the archiver over a container of IoT Hub blobs (a local directory), into SQLite
//! and PostgreSQL, queried through its HTTP API.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod hub_blobs;
mod indexing;
mod poison;
mod push;
mod replicas;
mod support;
