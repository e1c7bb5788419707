//! The hub's shared state: everything a connection or a request handler needs, built once at start.

use std::sync::Arc;

use service_kit::Shutdown;

use crate::auth::Authenticator;
use crate::config::HubConfig;
use crate::events::Journal;
use crate::ingest::Ingest;
use crate::metrics::HubMetrics;
use crate::mqtt::LiveConnections;
use crate::policies::Policies;
use crate::registry::Registry;
use crate::routes::LiveRouting;

/// Shared by every listener, connection and handler.
#[derive(Debug)]
pub struct Hub {
    /// The configuration it runs with.
    pub config: HubConfig,
    /// Devices.
    pub registry: Arc<Registry>,
    /// Shared access policies.
    pub policies: Arc<Policies>,
    /// Token checks.
    pub auth: Authenticator,
    /// Live MQTT connections.
    pub live: Arc<LiveConnections>,
    /// Where device messages go.
    pub ingest: Ingest,
    /// The built-in events stream and the endpoints' outboxes.
    pub journal: Journal,
    /// The routing in force and its dispatchers.
    pub routing: Arc<LiveRouting>,
    /// Metrics.
    pub metrics: HubMetrics,
    /// Fires on SIGTERM.
    pub shutdown: Shutdown,
}
