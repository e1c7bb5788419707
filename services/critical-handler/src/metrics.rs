//! The handler's Prometheus metrics (`critical_handler_*`). Labels are bounded: outcomes, reasons
//! and status classes from fixed lists, never a device or message id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service_kit::Metrics;

/// A label holding one value from a fixed list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: &'static str,
}

/// The outcome of one webhook call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabel {
    /// `2xx`, `409`, `4xx`, `429`, `5xx`, `3xx`, `timeout`, `connect`, `error`.
    pub result: &'static str,
}

/// Every metric the handler keeps.
#[derive(Debug, Clone)]
pub struct HandlerMetrics {
    /// Messages received from the queue.
    pub received: Counter,
    /// Tickets created (the CRM answered 2xx).
    pub tickets_created: Counter,
    /// Calls the CRM answered 409: the ticket already existed.
    pub duplicates: Counter,
    /// Calls made again after a failure.
    pub retries: Counter,
    /// Messages given back to the queue, by reason.
    pub abandoned: Family<ReasonLabel, Counter>,
    /// Messages dead-lettered, by reason.
    pub dead_lettered: Family<ReasonLabel, Counter>,
    /// Messages being handled or waiting for a slot.
    pub in_flight: Gauge,
    /// Lock renewals done.
    pub lock_renewals: Counter,
    /// Locks lost (the message will be delivered again).
    pub locks_lost: Counter,
    /// Webhook call latency, by result.
    pub webhook_latency: Family<CallLabel, Histogram>,
    /// 0 closed, 1 half-open, 2 open.
    pub circuit_state: Gauge,
    /// Queue operations that failed (receive, settle), by operation.
    pub queue_errors: Family<ReasonLabel, Counter>,
}

impl HandlerMetrics {
    /// Creates the metrics and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let this = HandlerMetrics {
            received: Counter::default(),
            tickets_created: Counter::default(),
            duplicates: Counter::default(),
            retries: Counter::default(),
            abandoned: Family::default(),
            dead_lettered: Family::default(),
            in_flight: Gauge::default(),
            lock_renewals: Counter::default(),
            locks_lost: Counter::default(),
            webhook_latency: Family::new_with_constructor(|| {
                Histogram::new(service_kit::metrics::latency_buckets())
            }),
            circuit_state: Gauge::default(),
            queue_errors: Family::default(),
        };
        let m = this.clone();
        metrics.register(move |r| {
            r.register(
                "messages_received",
                "Messages received from the queue",
                m.received,
            );
            r.register(
                "tickets_created",
                "Tickets created (the CRM answered 2xx)",
                m.tickets_created,
            );
            r.register(
                "duplicates",
                "Calls answered 409: the ticket already existed",
                m.duplicates,
            );
            r.register("retries", "Webhook calls made again after a failure", m.retries);
            r.register(
                "abandoned",
                "Messages given back to the queue, by reason",
                m.abandoned,
            );
            r.register(
                "dead_lettered",
                "Messages dead-lettered, by reason",
                m.dead_lettered,
            );
            r.register(
                "in_flight",
                "Messages held: being handled or waiting for a slot",
                m.in_flight,
            );
            r.register("lock_renewals", "Message lock renewals", m.lock_renewals);
            r.register("locks_lost", "Message locks lost before settling", m.locks_lost);
            r.register_with_unit(
                "webhook_request_duration",
                "Webhook call latency, by result",
                prometheus_client::registry::Unit::Seconds,
                m.webhook_latency,
            );
            r.register(
                "circuit_state",
                "Webhook circuit: 0 closed, 1 half-open, 2 open",
                m.circuit_state,
            );
            r.register(
                "queue_errors",
                "Failed queue operations, by operation",
                m.queue_errors,
            );
        });
        this
    }

    /// Counts a message dead-lettered for `reason`.
    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_lettered.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a message abandoned for `reason`.
    pub fn abandon(&self, reason: &'static str) {
        self.abandoned.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a failed queue operation.
    pub fn queue_error(&self, operation: &'static str) {
        self.queue_errors
            .get_or_create(&ReasonLabel { reason: operation })
            .inc();
    }
}
