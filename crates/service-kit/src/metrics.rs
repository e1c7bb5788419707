//! Prometheus metrics: a registry filled at startup, rendered as OpenMetrics text on `/metrics`.
//! Names follow `<service>_<noun>_<unit>[_total]`; label values are always bounded (never a device id).

use std::sync::{Arc, Mutex, PoisonError};

pub use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
pub use prometheus_client::registry::{Registry, Unit};

/// A registry shared between the code that registers metrics and the `/metrics` handler.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    /// A registry whose metric names all start with `<service>_`.
    pub fn new(service: &str) -> Self {
        Metrics {
            registry: Arc::new(Mutex::new(Registry::with_prefix(service.replace('-', "_")))),
        }
    }

    /// Registers metrics (call at startup, not per event).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Buckets for latencies in seconds, 100 µs to ~100 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 20)
}
