//! The circuit breaker on the webhook. When calls fail for everyone (`failure_threshold` failures in a
//! row, across messages), the circuit opens: no new message is received and held messages wait
//! instead of spending their attempts (and, once abandoned, their delivery counts). After `open_secs`
//! one probe call goes through (half-open); its success closes the circuit, its failure opens it
//! again for twice as long, up to `max_open_secs`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::CircuitSettings;

/// The circuit's state, as `/metrics` shows it (`circuit_state`: 0 closed, 1 half-open, 2 open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// One probe call is allowed.
    HalfOpen,
    /// No calls until the open period ends.
    Open,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, period: Duration },
    HalfOpen { probing: bool, period: Duration },
}

/// Shared by every handling task.
#[derive(Debug)]
pub struct Circuit {
    settings: CircuitSettings,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    gauge: Gauge,
}

/// Permission to make one call; report its result with [`Admission::record`]. Dropped without a
/// result (the call was cancelled), a probe lets another caller probe.
#[derive(Debug)]
pub struct Admission {
    circuit: Arc<Circuit>,
    probe: bool,
    recorded: bool,
}

impl Circuit {
    /// A closed circuit; `gauge` follows its state.
    pub fn new(settings: CircuitSettings, gauge: Gauge) -> Arc<Self> {
        gauge.set(0);
        Arc::new(Circuit {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
            changes: watch::channel(0).0,
            gauge,
        })
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
            State::Open { .. } => CircuitState::Open,
        }
    }

    /// A receiver that sees every state change (for loops that wait on the circuit).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Waits until a call may be made: at once when closed; after the open period when open; one
    /// caller at a time when half-open.
    pub async fn admit(self: &Arc<Self>) -> Admission {
        loop {
            let mut changes = self.changes.subscribe();
            let wait_until = {
                let mut state = self.lock();
                match *state {
                    State::Closed { .. } => return self.admission(false),
                    State::Open { until, period } if Instant::now() >= until => {
                        *state = State::HalfOpen {
                            probing: true,
                            period,
                        };
                        drop(state);
                        self.changed(CircuitState::HalfOpen);
                        return self.admission(true);
                    }
                    State::HalfOpen {
                        probing: false,
                        period,
                    } => {
                        *state = State::HalfOpen {
                            probing: true,
                            period,
                        };
                        return self.admission(true);
                    }
                    State::Open { until, .. } => Some(until),
                    State::HalfOpen { probing: true, .. } => None,
                }
            };
            match wait_until {
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        _ = changes.changed() => {}
                    }
                }
                None => {
                    let _ = changes.changed().await;
                }
            }
        }
    }

    fn admission(self: &Arc<Self>, probe: bool) -> Admission {
        Admission {
            circuit: Arc::clone(self),
            probe,
            recorded: false,
        }
    }

    fn record(&self, probe: bool, success: bool) {
        let mut state = self.lock();
        let next = match (*state, success) {
            (State::Closed { failures: 0 }, true) => return,
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 >= self.settings.failure_threshold => {
                let period = Duration::from_secs(self.settings.open_secs);
                tracing::warn!(
                    failures = failures + 1,
                    open_for = ?period,
                    "webhook failing for every message: circuit open, receiving paused"
                );
                State::Open {
                    until: Instant::now() + period,
                    period,
                }
            }
            (State::Closed { failures }, false) => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                return;
            }
            (State::HalfOpen { period, .. }, false) if probe => {
                let period = (period * 2).min(Duration::from_secs(self.settings.max_open_secs));
                tracing::warn!(open_for = ?period, "probe call failed: circuit open again");
                State::Open {
                    until: Instant::now() + period,
                    period,
                }
            }
            // A call admitted before the circuit opened failed too: nothing new.
            (State::HalfOpen { .. } | State::Open { .. }, false) => return,
        };
        let was_open = !matches!(*state, State::Closed { .. });
        *state = next;
        drop(state);
        let now = match next {
            State::Closed { .. } => {
                if was_open {
                    tracing::info!("webhook answered: circuit closed, receiving resumed");
                }
                CircuitState::Closed
            }
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        };
        self.changed(now);
    }

    fn release_probe(&self) {
        let mut state = self.lock();
        if let State::HalfOpen {
            probing: true,
            period,
        } = *state
        {
            *state = State::HalfOpen {
                probing: false,
                period,
            };
            drop(state);
            self.changed(CircuitState::HalfOpen);
        }
    }

    fn changed(&self, state: CircuitState) {
        self.gauge.set(match state {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        });
        self.changes.send_modify(|generation| *generation += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a small Copy value, always whole: a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Admission {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports the call's result: `true` when the webhook answered in a way that shows it works
    /// (2xx, 409, or a 4xx about this message), `false` for failures that would hit any message.
    pub fn record(mut self, success: bool) {
        self.recorded = true;
        self.circuit.record(self.probe, success);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.circuit.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit(threshold: u32) -> Arc<Circuit> {
        Circuit::new(
            CircuitSettings {
                failure_threshold: threshold,
                open_secs: 1,
                max_open_secs: 4,
            },
            Gauge::default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let c = circuit(3);
        c.admit().await.record(false);
        c.admit().await.record(false);
        c.admit().await.record(true);
        c.admit().await.record(false);
        c.admit().await.record(false);
        assert_eq!(c.state(), CircuitState::Closed);
        c.admit().await.record(false);
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.gauge.get(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_open_period_and_its_success_closes() {
        let c = circuit(1);
        c.admit().await.record(false);
        let started = Instant::now();
        let probe = c.admit().await;
        assert!(probe.is_probe());
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(c.state(), CircuitState::HalfOpen);
        // A second caller waits for the probe's result.
        let waiter = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.admit().await.is_probe() }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiter.is_finished());
        probe.record(true);
        assert!(
            !waiter.await.unwrap(),
            "after the circuit closed, calls are ordinary"
        );
        assert_eq!(c.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_open_period_up_to_the_maximum() {
        let c = circuit(1);
        c.admit().await.record(false);
        let mut periods = Vec::new();
        for _ in 0..4 {
            let started = Instant::now();
            let probe = c.admit().await;
            periods.push(started.elapsed().as_secs());
            probe.record(false);
        }
        assert_eq!(periods, [1, 2, 4, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_lets_another_caller_probe() {
        let c = circuit(1);
        c.admit().await.record(false);
        let probe = c.admit().await;
        drop(probe);
        let next = tokio::time::timeout(Duration::from_millis(10), c.admit()).await;
        assert!(next.unwrap().is_probe());
    }
}
