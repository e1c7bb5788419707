//! What every device of a fleet shares: its settings, the fleet-wide rate cap, and the slowdown a
//! device applies to itself when the hub throttles it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::stats::Stats;

/// How a device's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEnd {
    /// It stopped when asked, or after its messages.
    Done,
    /// It stopped for good: the reason (e.g. the hub refused its credentials).
    Failed(String),
}

/// Settings shared by every device of a run.
#[derive(Debug)]
pub struct DeviceSettings {
    /// Where to connect instead of the connection string's host.
    pub connect_host: Option<String>,
    /// MQTT over TLS (or plain TCP) port.
    pub mqtt_port: u16,
    /// HTTPS and WebSocket port.
    pub https_port: u16,
    /// MQTT, MQTT over WebSockets, or HTTPS.
    pub transport: crate::config::Transport,
    /// The fleet's HTTP client (HTTPS transport only): one connection pool for every device.
    pub https_client: Option<reqwest::Client>,
    /// TLS client configuration; `None` = plain TCP / HTTP (loopback only).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Telemetry QoS (0 or 1).
    pub qos: u8,
    /// Unacknowledged messages per device.
    pub max_in_flight: u16,
    /// SAS token lifetime.
    pub token_ttl: Duration,
    /// Connect and request timeout.
    pub timeout: Duration,
    /// Time between one device's messages.
    pub interval: Duration,
    /// ± fraction of the interval.
    pub jitter: f64,
    /// Messages per device, if bounded.
    pub messages: Option<u64>,
    /// Time to wait for acknowledgements on stop.
    pub grace: Duration,
    /// The fleet's rate cap.
    pub pacer: Pacer,
    /// Counters.
    pub stats: Stats,
}

impl DeviceSettings {
    /// When to send the message after one due at `due`: a fixed schedule (timer lateness does not
    /// add up), except that a device more than one interval behind starts again from now instead
    /// of bursting to catch up.
    pub fn next_send(&self, due: std::time::Instant, slowdown: &Slowdown) -> std::time::Instant {
        let next = due + self.next_interval(slowdown);
        let now = std::time::Instant::now();
        if next + self.interval < now { now } else { next }
    }

    /// The wait before a device's next message: the interval with jitter, times its slowdown.
    pub fn next_interval(&self, slowdown: &Slowdown) -> Duration {
        let jitter = if self.jitter > 0.0 {
            1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0)
        } else {
            1.0
        };
        self.interval.mul_f64(jitter * f64::from(slowdown.factor()))
    }
}

/// A device's own slowdown: doubles (up to 16×) each time the hub throttles it or drops the
/// connection, and halves again with each acknowledgement after that.
#[derive(Debug, Clone, Default)]
pub struct Slowdown {
    factor: Arc<AtomicU32>,
}

impl Slowdown {
    /// The interval multiplier, 1 to 16.
    pub fn factor(&self) -> u32 {
        self.factor.load(Ordering::Relaxed).max(1)
    }

    /// The hub throttled the device (HTTP 429/503, CONNACK "server unavailable", a dropped connection).
    pub fn throttled(&self) {
        let next = (self.factor() * 2).min(16);
        self.factor.store(next, Ordering::Relaxed);
    }

    /// A message went through.
    pub fn recovered(&self) {
        let factor = self.factor();
        if factor > 1 {
            self.factor.store(factor / 2, Ordering::Relaxed);
        }
    }
}

/// The fleet-wide rate cap: each message takes the next free slot of `1 / rate` seconds.
#[derive(Debug)]
pub struct Pacer {
    gap: Option<Duration>,
    next: Mutex<tokio::time::Instant>,
}

impl Pacer {
    /// A pacer for `rate` messages per second; `None` = no cap.
    pub fn new(rate: Option<f64>) -> Self {
        Pacer {
            gap: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for this message's slot.
    pub async fn wait(&self) {
        let Some(gap) = self.gap else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            // No credit for idle time beyond one second: a stalled fleet does not burst.
            let now = tokio::time::Instant::now();
            let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
            let slot = (*next).max(floor);
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowdown_doubles_to_sixteen_and_recovers() {
        let s = Slowdown::default();
        assert_eq!(s.factor(), 1);
        for _ in 0..10 {
            s.throttled();
        }
        assert_eq!(s.factor(), 16);
        s.recovered();
        assert_eq!(s.factor(), 8);
        for _ in 0..10 {
            s.recovered();
        }
        assert_eq!(s.factor(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_messages() {
        let pacer = Pacer::new(Some(100.0));
        let started = tokio::time::Instant::now();
        for _ in 0..101 {
            pacer.wait().await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(990), "{elapsed:?}");
    }
}
