//! Integration tests of iothub-protocol: the spec's worked examples as known-answer tests, one
//! table-driven `check` per feature, property tests.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_method;
mod connection_string;
mod https;
mod message;
mod monitor;
mod mqtt_topic;
mod mqtt_username;
mod properties;
mod property_bag;
mod sas;
mod storage_record;
mod timestamp;

/// The spec's test key: bytes 0x00..0x1f (spec §3 worked example).
pub(crate) const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
