//! Integration tests of the hub: the real hub on random loopback ports (see `support`), real MQTT
//! and HTTP clients, and the `hub` binary itself where a test must kill it or read its output.

// Test helpers may panic: a panic is a failed test. rumqttc's event loop is a large future once the
// workspace enables its WebSocket transport (device-sim does); boxing every test client would only
// add noise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::large_futures
)]

mod admin;
mod bad_input;
mod console_api;
mod crash;
mod https_telemetry;
mod mqtt_connect;
mod mqtt_publish;
mod mqtt_session;
mod registry_api;
mod route_test;
mod routing_backends;
mod routing_bad_config;
mod routing_cli;
mod routing_config;
mod routing_crash;
mod routing_outage;
mod routing_router;
mod routing_sources;
mod routing_tutorial;
mod storage_endpoint;
mod support;
