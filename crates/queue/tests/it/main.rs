//! Integration tests of the queue crate: one conformance suite run against every backend (SQLite
//! always, RabbitMQ's AMQP 1.0 plugin on 127.0.0.1:5672, real Service Bus when
//! `SERVICEBUS_CONNECTION_STRING` is set), Service Bus wire frames against an in-process AMQP peer,
//! `kill -9` durability, connection strings and bad input.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod cli;
mod conformance;
mod connection_strings;
mod fake_servicebus;
mod kill9;
mod rabbitmq;
mod servicebus_live;
mod servicebus_peer;
mod sqlite;
mod support;
