//! Integration tests: the handler against a real HTTP server playing the CRM, on the SQLite queue
//! and on RabbitMQ (AMQP 1.0).

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod circuit;
mod cli;
mod crm;
mod kill9;
mod outcomes;
mod renewal;
mod support;
mod tickets;
