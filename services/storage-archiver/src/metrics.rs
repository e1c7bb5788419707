//! The archiver's Prometheus metrics (`storage_archiver_*`); labels are bounded (endpoint names).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service_kit::Metrics;

/// The API endpoint of a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabel {
    /// `messages`, `message`, `devices`, `blobs`, `stats`.
    pub endpoint: &'static str,
}

/// Every metric the archiver keeps.
#[derive(Debug, Clone)]
pub struct ArchiverMetrics {
    /// New blob versions found by listing.
    pub blobs_seen: Counter,
    /// Blobs indexed completely.
    pub blobs_indexed: Counter,
    /// Blobs failed for good (poison).
    pub blobs_failed: Counter,
    /// Records written to the index.
    pub records_indexed: Counter,
    /// Seconds between now and the newest indexed record's enqueued time.
    pub lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Query latency, by endpoint.
    pub query_latency: Family<EndpointLabel, Histogram>,
    newest_ms: Arc<AtomicI64>,
}

impl ArchiverMetrics {
    /// Creates the metrics and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let this = ArchiverMetrics {
            blobs_seen: Counter::default(),
            blobs_indexed: Counter::default(),
            blobs_failed: Counter::default(),
            records_indexed: Counter::default(),
            lag: Gauge::default(),
            query_latency: Family::new_with_constructor(|| {
                Histogram::new(service_kit::metrics::latency_buckets())
            }),
            newest_ms: Arc::new(AtomicI64::new(0)),
        };
        let m = this.clone();
        metrics.register(move |r| {
            r.register(
                "blobs_seen",
                "New blob versions found by listing or notifications",
                m.blobs_seen,
            );
            r.register("blobs_indexed", "Blobs indexed completely", m.blobs_indexed);
            r.register("blobs_failed", "Blobs failed for good (poison)", m.blobs_failed);
            r.register(
                "records_indexed",
                "Records written to the index",
                m.records_indexed,
            );
            r.register_with_unit(
                "lag",
                "Now minus the newest indexed record's enqueued time",
                prometheus_client::registry::Unit::Seconds,
                m.lag,
            );
            r.register_with_unit(
                "query_duration",
                "Query API latency, by endpoint",
                prometheus_client::registry::Unit::Seconds,
                m.query_latency,
            );
        });
        this
    }

    /// Notes the newest enqueued time indexed so far and updates the lag.
    pub fn saw_enqueued(&self, enqueued_ms: i64) {
        let newest = self
            .newest_ms
            .fetch_max(enqueued_ms, Ordering::Relaxed)
            .max(enqueued_ms);
        self.update_lag(newest);
    }

    /// Recomputes the lag from the newest enqueued time (call periodically).
    pub fn refresh_lag(&self) {
        let newest = self.newest_ms.load(Ordering::Relaxed);
        if newest > 0 {
            self.update_lag(newest);
        }
    }

    fn update_lag(&self, newest_ms: i64) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.lag.set((now_ms - newest_ms).max(0) as f64 / 1000.0);
    }
}
