//! The local IoT Hub. Today: the route tester (`hub route test`); the device endpoints, routing and
//! endpoint writers grow here as the `hub` service.

pub mod cli;
pub mod diagnostics;
pub mod route_test;
