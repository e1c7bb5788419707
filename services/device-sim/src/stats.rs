//! What the fleet did: counters and the acknowledgement-latency histogram, shared by every device,
//! exported on `/metrics`, printed as a progress line, and summed up in the closing [`Report`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram as PromHistogram;
use serde::Serialize;
use service_kit::Metrics;

/// Why a message failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailLabel {
    /// `unauthorized`, `rejected`, `unacknowledged`, `throttled`, `scenario`.
    pub reason: &'static str,
}

/// Shared by every device of a run.
#[derive(Debug, Clone)]
pub struct Stats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    sent: AtomicU64,
    acked: AtomicU64,
    /// `None` only if hdrhistogram refused its bounds (it does not for these).
    latency: Mutex<Option<Histogram<u64>>>,
    failed: Mutex<BTreeMap<&'static str, u64>>,
    metrics: SimMetrics,
}

#[derive(Debug, Clone)]
struct SimMetrics {
    sent: Counter,
    acked: Counter,
    failed: Family<FailLabel, Counter>,
    connected: Gauge,
    reconnects: Counter,
    ack_latency: PromHistogram,
}

/// The closing summary (also written as JSON with `--report`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Devices simulated.
    pub devices: usize,
    /// Seconds from start to stop.
    pub duration_secs: f64,
    /// Messages handed to the transport.
    pub sent: u64,
    /// Messages the hub acknowledged (QoS 1 PUBACK, HTTPS 2xx; QoS 0: written).
    pub acked: u64,
    /// Messages that failed, by reason (`unacknowledged`: sent, no acknowledgement by the end).
    pub failed: BTreeMap<String, u64>,
    /// Acknowledged messages per second over the run.
    pub achieved_rate: f64,
    /// Acknowledgement latency in milliseconds (send → PUBACK or HTTP answer).
    pub ack_latency_ms: Latency,
    /// Devices that stopped for good, and why (e.g. refused credentials).
    pub device_errors: BTreeMap<String, String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// Fresh counters; registered in `metrics` when given (the sidecar's `/metrics`).
    pub fn new(metrics: Option<&Metrics>) -> Self {
        let sim = SimMetrics {
            sent: Counter::default(),
            acked: Counter::default(),
            failed: Family::default(),
            connected: Gauge::default(),
            reconnects: Counter::default(),
            ack_latency: PromHistogram::new(service_kit::metrics::latency_buckets()),
        };
        if let Some(metrics) = metrics {
            let m = sim.clone();
            metrics.register(move |r| {
                r.register("messages_sent", "Messages handed to the transport", m.sent);
                r.register("messages_acknowledged", "Messages the hub acknowledged", m.acked);
                r.register("messages_failed", "Messages that failed, by reason", m.failed);
                r.register("devices_connected", "Devices connected now", m.connected);
                r.register("reconnects", "Connections made again after a loss", m.reconnects);
                r.register_with_unit(
                    "ack_latency",
                    "Send to acknowledgement",
                    prometheus_client::registry::Unit::Seconds,
                    m.ack_latency,
                );
            });
        }
        // Three significant digits from 1 µs to an hour.
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 3).ok();
        Stats {
            inner: Arc::new(Inner {
                started: Instant::now(),
                sent: AtomicU64::new(0),
                acked: AtomicU64::new(0),
                latency: Mutex::new(latency),
                failed: Mutex::new(BTreeMap::new()),
                metrics: sim,
            }),
        }
    }

    /// A message was handed to the transport.
    pub fn sent(&self) {
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.sent.inc();
    }

    /// A message was acknowledged after `latency`.
    pub fn acked(&self, latency: Duration) {
        self.inner.acked.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.acked.inc();
        self.inner.metrics.ack_latency.observe(latency.as_secs_f64());
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Some(histogram) = self
            .inner
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let _ = histogram.record(micros.min(3_600_000_000));
        }
    }

    /// `count` messages failed for `reason`.
    pub fn failed(&self, reason: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        *self
            .inner
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += count;
        self.inner
            .metrics
            .failed
            .get_or_create(&FailLabel { reason })
            .inc_by(count);
    }

    /// A device connected (`true`) or lost its connection (`false`).
    pub fn connected(&self, up: bool) {
        if up {
            self.inner.metrics.connected.inc();
        } else {
            self.inner.metrics.connected.dec();
        }
    }

    /// A device connected again after losing its connection.
    pub fn reconnected(&self) {
        self.inner.metrics.reconnects.inc();
    }

    /// Devices connected now.
    pub fn connected_now(&self) -> i64 {
        self.inner.metrics.connected.get()
    }

    /// Messages sent so far.
    pub fn sent_count(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Messages acknowledged so far.
    pub fn acked_count(&self) -> u64 {
        self.inner.acked.load(Ordering::Relaxed)
    }

    /// Failures so far.
    pub fn failed_count(&self) -> u64 {
        self.inner
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The summary of the run so far.
    pub fn report(&self, devices: usize, device_errors: BTreeMap<String, String>) -> Report {
        let elapsed = self.elapsed().as_secs_f64();
        let acked = self.acked_count();
        let latency = self.inner.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let ms = |q: f64| {
            latency
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        Report {
            devices,
            duration_secs: elapsed,
            sent: self.sent_count(),
            acked,
            failed: self
                .inner
                .failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            achieved_rate: if elapsed > 0.0 {
                acked as f64 / elapsed
            } else {
                0.0
            },
            ack_latency_ms: Latency {
                p50: ms(0.5),
                p95: ms(0.95),
                p99: ms(0.99),
                max: latency.as_ref().map_or(0.0, |h| h.max() as f64 / 1000.0),
            },
            device_errors,
        }
    }

    /// One progress line: elapsed, rate over the last interval, counts, connections.
    pub fn progress_line(&self, devices: usize, rate: f64) -> String {
        format!(
            "{:>7.1}s  {:>8.0} msg/s  sent {}  acked {}  errors {}  connected {}/{}",
            self.elapsed().as_secs_f64(),
            rate,
            self.sent_count(),
            self.acked_count(),
            self.failed_count(),
            self.connected_now(),
            devices,
        )
    }
}
