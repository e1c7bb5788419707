//! What every iot-routing service shares: layered configuration, logs and traces, Prometheus
//! metrics, the admin server (`/live`, `/ready`, `/metrics`) and the shutdown signal.
//!
//! A service's `main` loads its config with [`config::load`] (exit 64 on error), calls
//! [`telemetry::init`], creates a [`Shutdown`] with [`Shutdown::on_signals`], binds its listeners and
//! calls its library's `run`, which serves [`admin::serve`] beside its own work.

pub mod admin;
pub mod cli;
pub mod config;
pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use health::{Readiness, ReadinessCheck};
pub use metrics::Metrics;
pub use shutdown::Shutdown;

/// Exit code for an invalid configuration or command line (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
