//! Delivery from the outbox to custom endpoints: one dispatcher task per endpoint, independent of
//! the others, reading its outbox rows in order, delivering, and settling them only once delivered.
//! Failures keep the rows and retry with backoff; health and backlog are reported per endpoint.

mod backoff;
mod health;
mod queue;
mod storage;

use std::sync::Arc;
use std::time::Duration;

use iothub_protocol::Timestamp;
use service_kit::Shutdown;

pub use backoff::Backoff;
pub use health::{EndpointHealth, EndpointHealthData, HealthStatus};
pub use queue::{QueueBatch, QueueDispatch, QueueTarget, batches, run_queue_dispatcher, to_queue_message};
pub use storage::{run_storage_dispatcher, storage_encoding};

use crate::events::{AppendError, Journal, OutboxReader, OutboxRow};
use crate::metrics::{EndpointHealthLabel, EndpointLabel, RoutingMetrics};

/// Everything a dispatcher needs besides its endpoint.
#[derive(Debug, Clone)]
pub struct DispatchContext {
    /// The endpoint's name.
    pub endpoint: Arc<str>,
    /// Where its rows are settled.
    pub journal: Journal,
    /// Its health.
    pub health: Arc<EndpointHealth>,
    /// Delivery metrics.
    pub metrics: RoutingMetrics,
    /// Stops the dispatcher (after the batch in flight).
    pub shutdown: Shutdown,
}

impl DispatchContext {
    fn label(&self) -> EndpointLabel {
        EndpointLabel {
            endpoint: self.endpoint.to_string(),
        }
    }

    /// Reads up to `limit` rows after `after`, off the async threads. The reader is opened lazily
    /// and kept between calls.
    pub async fn read(
        &self,
        reader: &mut Option<OutboxReader>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, String> {
        let current = match reader.take() {
            Some(current) => current,
            None => OutboxReader::open(self.journal.path()).map_err(|e| e.to_string())?,
        };
        let endpoint = Arc::clone(&self.endpoint);
        let (current, rows) = tokio::task::spawn_blocking(move || {
            let rows = current.read(&endpoint, after, limit);
            (current, rows)
        })
        .await
        .map_err(|e| e.to_string())?;
        *reader = Some(current);
        rows.map_err(|e| e.to_string())
    }

    /// Records a successful delivery of `count` rows whose oldest was accepted at `oldest_ms`.
    pub fn delivered(&self, count: usize, rows: &[OutboxRow]) {
        self.health.success();
        let label = self.label();
        self.metrics.delivered.get_or_create(&label).inc_by(count as u64);
        let now = Timestamp::now().unix_millis();
        let latency = self.metrics.delivery_latency.get_or_create(&label);
        for row in rows {
            latency.observe(((now - row.enqueued_ms).max(0) as f64) / 1000.0);
        }
        self.publish_state();
    }

    /// Records a failed attempt.
    pub fn failed(&self, error: &str) {
        tracing::warn!(endpoint = %self.endpoint, %error, "delivery failed; will retry");
        self.health.failure(error);
        self.metrics.delivery_failures.get_or_create(&self.label()).inc();
        self.publish_state();
    }

    /// Updates the backlog and health gauges.
    pub fn publish_state(&self) {
        let backlog = self.journal.outboxes().signal(&self.endpoint).backlog();
        self.metrics
            .backlog
            .get_or_create(&self.label())
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let current = self.health.status();
        for status in [
            HealthStatus::Unknown,
            HealthStatus::Healthy,
            HealthStatus::Degraded,
            HealthStatus::Unhealthy,
            HealthStatus::Dead,
        ] {
            let label = EndpointHealthLabel {
                endpoint: self.endpoint.to_string(),
                status: status.as_str(),
            };
            self.metrics
                .health
                .get_or_create(&label)
                .set(i64::from(status == current));
        }
    }

    /// Waits up to `delay` unless shutdown comes first; returns false on shutdown.
    pub async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.shutdown.wait() => false,
        }
    }
}
