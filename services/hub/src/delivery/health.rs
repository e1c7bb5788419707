//! Endpoint health as IoT Hub reports it (`GET .../routingEndpointsHealth`): `healthy`, `unhealthy`,
//! `degraded`, `dead` or `unknown`, with the last error and the times of the last attempts.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use iothub_protocol::Timestamp;
use serde::Serialize;

/// IoT Hub's health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Nothing was sent yet.
    Unknown,
    /// The last attempt succeeded.
    Healthy,
    /// Delivering again after failures, or falling behind.
    Degraded,
    /// The last attempt failed; retrying.
    Unhealthy,
    /// Failing for longer than the dead threshold; still retrying, nothing is dropped.
    Dead,
}

impl HealthStatus {
    /// The status as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unknown => "unknown",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Dead => "dead",
        }
    }
}

/// One endpoint's health, in ARM's `EndpointHealthData` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealthData {
    /// The endpoint's name.
    pub endpoint_id: String,
    /// Its status.
    pub health_status: HealthStatus,
    /// The last error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known_error: Option<String>,
    /// When it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known_error_time: Option<String>,
    /// The last successful send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_successful_send_attempt_time: Option<String>,
    /// The last send attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_send_attempt_time: Option<String>,
    /// Messages waiting for this endpoint (our addition to IoT Hub's shape).
    pub backlog: u64,
}

#[derive(Debug, Default)]
struct State {
    last_error: Option<(String, Timestamp)>,
    last_success: Option<Timestamp>,
    last_attempt: Option<Timestamp>,
    failing_since: Option<Instant>,
    recovered_at: Option<Instant>,
}

/// The health of one endpoint, updated by its dispatcher.
#[derive(Debug)]
pub struct EndpointHealth {
    name: String,
    dead_after: Duration,
    state: Mutex<State>,
}

/// How long after recovering an endpoint still shows `degraded`.
const RECOVERY: Duration = Duration::from_secs(60);

impl EndpointHealth {
    /// A new, `unknown` endpoint; `dead_after` is how long continuous failure takes to become `dead`.
    pub fn new(name: &str, dead_after: Duration) -> Self {
        EndpointHealth {
            name: name.to_owned(),
            dead_after,
            state: Mutex::new(State::default()),
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A delivery succeeded.
    pub fn success(&self) {
        let now = Timestamp::now();
        let mut state = self.lock();
        state.last_success = Some(now);
        state.last_attempt = Some(now);
        if state.failing_since.take().is_some() {
            state.recovered_at = Some(Instant::now());
        }
    }

    /// A delivery (or connection) failed with `error` (keep secrets out of it).
    pub fn failure(&self, error: &str) {
        let now = Timestamp::now();
        let mut state = self.lock();
        state.last_error = Some((error.to_owned(), now));
        state.last_attempt = Some(now);
        state.failing_since.get_or_insert_with(Instant::now);
    }

    /// The current status.
    pub fn status(&self) -> HealthStatus {
        let state = self.lock();
        match (&state.failing_since, &state.last_attempt) {
            (_, None) => HealthStatus::Unknown,
            (Some(since), _) if since.elapsed() >= self.dead_after => HealthStatus::Dead,
            (Some(_), _) => HealthStatus::Unhealthy,
            (None, _) if state.recovered_at.is_some_and(|t| t.elapsed() < RECOVERY) => HealthStatus::Degraded,
            (None, _) => HealthStatus::Healthy,
        }
    }

    /// The report, with the endpoint's current `backlog`.
    pub fn report(&self, backlog: u64) -> EndpointHealthData {
        let status = self.status();
        let state = self.lock();
        EndpointHealthData {
            endpoint_id: self.name.clone(),
            health_status: status,
            last_known_error: state.last_error.as_ref().map(|(e, _)| e.clone()),
            last_known_error_time: state.last_error.as_ref().map(|(_, t)| t.as_str().to_owned()),
            last_successful_send_attempt_time: state.last_success.map(|t| t.as_str().to_owned()),
            last_send_attempt_time: state.last_attempt.map(|t| t.as_str().to_owned()),
            backlog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_attempts() {
        let health = EndpointHealth::new("q", Duration::from_secs(3600));
        assert_eq!(health.status(), HealthStatus::Unknown);
        health.success();
        assert_eq!(health.status(), HealthStatus::Healthy);
        health.failure("connection refused");
        assert_eq!(health.status(), HealthStatus::Unhealthy);
        assert_eq!(
            health.report(3).last_known_error.as_deref(),
            Some("connection refused")
        );
        health.success();
        assert_eq!(health.status(), HealthStatus::Degraded);
        let dead = EndpointHealth::new("d", Duration::ZERO);
        dead.failure("x");
        assert_eq!(dead.status(), HealthStatus::Dead);
    }
}
