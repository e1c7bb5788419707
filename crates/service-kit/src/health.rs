//! Readiness: each dependency of a service reports whether it is reachable; `/ready` is 200 only
//! when all of them are.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Status {
    ready: bool,
    detail: Option<String>,
}

/// The readiness of a whole service; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<String, Status>>>,
}

/// One named check, as a dependency reports it.
#[derive(Debug, Clone)]
pub struct ReadinessCheck {
    name: String,
    checks: Arc<Mutex<BTreeMap<String, Status>>>,
}

/// One line of the `/ready` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The check's name, e.g. `queue`.
    pub name: String,
    /// Whether it is ready.
    pub ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The `/ready` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessReport {
    /// True when every check is ready.
    pub ready: bool,
    /// Every check, by name.
    pub checks: Vec<CheckReport>,
}

impl Readiness {
    /// A new check named `name`, not ready until it says so.
    pub fn check(&self, name: &str) -> ReadinessCheck {
        self.lock().insert(
            name.to_owned(),
            Status {
                ready: false,
                detail: Some("starting".to_owned()),
            },
        );
        ReadinessCheck {
            name: name.to_owned(),
            checks: Arc::clone(&self.checks),
        }
    }

    /// The state of every check.
    pub fn report(&self) -> ReadinessReport {
        let checks: Vec<CheckReport> = self
            .lock()
            .iter()
            .map(|(name, s)| CheckReport {
                name: name.clone(),
                ready: s.ready,
                detail: s.detail.clone(),
            })
            .collect();
        ReadinessReport {
            ready: checks.iter().all(|c| c.ready),
            checks,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Status>> {
        // A panic elsewhere cannot corrupt a map of flags: keep serving.
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReadinessCheck {
    /// The dependency is reachable.
    pub fn ready(&self) {
        self.set(Status {
            ready: true,
            detail: None,
        });
    }

    /// The dependency is not reachable, and why (shown on `/ready`; keep secrets out of it).
    pub fn not_ready(&self, detail: impl Into<String>) {
        self.set(Status {
            ready: false,
            detail: Some(detail.into()),
        });
    }

    fn set(&self, status: Status) {
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks.insert(self.name.clone(), status);
    }
}
