//! The local IoT Hub: devices connect over MQTT (TLS, TCP, WebSockets) or HTTPS with SAS tokens;
//! messages are stamped, made durable and acknowledged; the built-in `events` stream keeps them for
//! readers; a registry API and a CLI manage devices. `hub route test` evaluates route conditions.
//!
//! `main` is [`cli::main`]; `hub serve` builds the [`state::Hub`] and runs [`serve::run`].

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod delivery;
pub mod devices;
pub mod diagnostics;
pub mod endpoints;
pub mod events;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod monitor;
pub mod mqtt;
pub mod notifications;
pub mod policies;
pub mod registry;
pub mod route_test;
pub mod routes;
pub mod routing;
pub mod serve;
pub mod state;
pub mod tls;
