//! The routing in force: loaded from the routing file with the hub's local overrides, swapped
//! atomically on reload (SIGHUP or a changed file) without dropping connections, and one dispatcher
//! per custom endpoint kept in step with it. A reload that does not validate keeps the old routing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use secrecy::ExposeSecret as _;
use service_kit::Shutdown;
use tokio_util::sync::CancellationToken;

use crate::config::HubConfig;
use crate::delivery::{self, DispatchContext, EndpointHealth, EndpointHealthData, QueueTarget};
use crate::endpoints::storage::StorageSinkConfig;
use crate::events::Journal;
use crate::metrics::RoutingMetrics;
use crate::routing::{BuildOptions, Endpoint, EndpointKind, Routing, RoutingConfig};

/// Loads and validates the routing named by `config` (no file: every message goes to `events`).
/// The error is one line per problem.
pub fn load(config: &HubConfig) -> Result<Routing, Vec<String>> {
    let Some(file) = &config.routing.file else {
        return Ok(Routing::without_routes(&config.hub_name));
    };
    let parsed = RoutingConfig::from_path(file).map_err(|e| vec![e.to_string()])?;
    let names: Vec<&str> = parsed
        .endpoints
        .service_bus_queues
        .iter()
        .map(|e| e.name.as_str())
        .chain(
            parsed
                .endpoints
                .storage_containers
                .iter()
                .map(|e| e.name.as_str()),
        )
        .collect();
    let mut options =
        BuildOptions::new(&config.hub_name).with_short_batches(config.routing.allow_short_batches);
    for (key, connection) in &config.routing.endpoint_overrides {
        // Configuration layers may lower-case map keys: match endpoint names ignoring case.
        let name = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(key))
            .map_or_else(|| key.clone(), |n| (*n).to_owned());
        options = options.with_override(name, connection.expose_secret());
    }
    let routing = parsed.build(&options).map_err(|e| e.lines())?;
    check_endpoints(&routing)?;
    Ok(routing)
}

/// Builds each endpoint's client configuration as delivery will, so anything the routing validation
/// (which already parses connection strings) did not catch stops the hub at start (or a reload)
/// rather than at first delivery.
fn check_endpoints(routing: &Routing) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for endpoint in routing.endpoints() {
        let connection = endpoint
            .connection_string()
            .map(|c| c.expose_secret().to_owned())
            .unwrap_or_default();
        let checked = match endpoint.kind() {
            EndpointKind::Queue(_) => queue::ConnectionConfig::parse(&connection)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            EndpointKind::Storage(_) => match endpoint.storage() {
                Some(settings) => StorageSinkConfig::new(
                    &connection,
                    &settings.container_name,
                    routing.hub_name(),
                    &settings.file_name_format,
                    crate::delivery::storage_encoding(settings.encoding),
                )
                .map(|_| ())
                .map_err(|e| e.to_string()),
                None => Ok(()),
            },
            EndpointKind::Events => Ok(()),
        };
        if let Err(reason) = checked {
            problems.push(format!("endpoint \"{}\": {reason}", endpoint.name()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What identifies a dispatcher: restart it when any of this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DispatcherKey {
    kind: EndpointKind,
    connection: String,
    target: String,
}

fn key(endpoint: &Endpoint) -> DispatcherKey {
    DispatcherKey {
        kind: endpoint.kind(),
        connection: endpoint
            .connection_string()
            .map(|c| c.expose_secret().to_owned())
            .unwrap_or_default(),
        target: format!("{:?}{:?}", endpoint.queue_name(), endpoint.storage()),
    }
}

struct Running {
    key: DispatcherKey,
    stop: CancellationToken,
    health: Arc<EndpointHealth>,
}

/// The live routing and the dispatchers of its endpoints.
#[derive(Debug)]
pub struct LiveRouting {
    current: ArcSwap<Routing>,
    dispatchers: Mutex<BTreeMap<String, Running>>,
    journal: Journal,
    metrics: RoutingMetrics,
    shutdown: Shutdown,
    dead_after: Duration,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("endpoint", &self.health.name())
            .finish_non_exhaustive()
    }
}

impl LiveRouting {
    /// Starts with `routing` and its dispatchers.
    pub fn start(
        routing: Routing,
        journal: Journal,
        metrics: RoutingMetrics,
        shutdown: Shutdown,
        dead_after: Duration,
    ) -> Arc<Self> {
        let live = Arc::new(LiveRouting {
            current: ArcSwap::from_pointee(routing),
            dispatchers: Mutex::new(BTreeMap::new()),
            journal,
            metrics,
            shutdown,
            dead_after,
        });
        live.sync_dispatchers();
        live
    }

    /// The routing in force (cheap; take it once per message).
    pub fn current(&self) -> Arc<Routing> {
        self.current.load_full()
    }

    /// Route and delivery counters (the console reads them).
    pub fn metrics(&self) -> &RoutingMetrics {
        &self.metrics
    }

    /// The hub's shutdown, which also stops the dispatchers.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Replaces the routing, then starts, stops or restarts dispatchers to match its endpoints.
    pub fn replace(&self, routing: Routing) {
        self.current.store(Arc::new(routing));
        self.sync_dispatchers();
    }

    /// Health of every custom endpoint, with backlogs.
    pub fn health(&self) -> Vec<EndpointHealthData> {
        let dispatchers = self.dispatchers.lock().unwrap_or_else(PoisonError::into_inner);
        dispatchers
            .iter()
            .map(|(name, running)| {
                running
                    .health
                    .report(self.journal.outboxes().signal(name).backlog())
            })
            .collect()
    }

    fn sync_dispatchers(&self) {
        let routing = self.current();
        let mut dispatchers = self.dispatchers.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: BTreeMap<String, &Endpoint> = routing
            .endpoints()
            .iter()
            .filter(|e| !matches!(e.kind(), EndpointKind::Events))
            .map(|e| (e.name().to_owned(), e))
            .collect();
        dispatchers.retain(|name, running| {
            let keep = wanted.get(name).is_some_and(|e| key(e) == running.key);
            if !keep {
                let backlog = self.journal.outboxes().signal(name).backlog();
                tracing::info!(endpoint = %name, backlog, "endpoint dispatcher stopped (removed or changed)");
                running.stop.cancel();
            }
            keep
        });
        for (name, endpoint) in wanted {
            if dispatchers.contains_key(&name) {
                continue;
            }
            let stop = self.shutdown.token().child_token();
            let health = Arc::new(EndpointHealth::new(&name, self.dead_after));
            let context = DispatchContext {
                endpoint: Arc::from(name.as_str()),
                journal: self.journal.clone(),
                health: Arc::clone(&health),
                metrics: self.metrics.clone(),
                shutdown: Shutdown::from_token(stop.clone()),
            };
            spawn_dispatcher(context, endpoint, routing.hub_name());
            dispatchers.insert(
                name,
                Running {
                    key: key(endpoint),
                    stop,
                    health,
                },
            );
        }
    }
}

fn spawn_dispatcher(context: DispatchContext, endpoint: &Endpoint, hub_name: &str) {
    let connection_string = endpoint
        .connection_string()
        .map(|c| c.expose_secret().to_owned())
        .unwrap_or_default();
    match endpoint.kind() {
        EndpointKind::Queue(_) => {
            let queue = endpoint.queue_name().unwrap_or(endpoint.name()).to_owned();
            tokio::spawn(delivery::run_queue_dispatcher(
                context,
                QueueTarget {
                    connection_string,
                    queue,
                },
            ));
        }
        EndpointKind::Storage(_) => {
            let Some(settings) = endpoint.storage().cloned() else {
                return;
            };
            tokio::spawn(delivery::run_storage_dispatcher(
                context,
                connection_string,
                settings,
                hub_name.to_owned(),
            ));
        }
        EndpointKind::Events => {}
    }
}

/// Reloads on SIGHUP and when the routing file changes, until shutdown. The SIGHUP handler is
/// installed by this call, before the returned task first runs, so a SIGHUP right after start-up
/// cannot take SIGHUP's default action (ending the hub). Call it within the runtime.
pub fn watch(
    live: Arc<LiveRouting>,
    config: HubConfig,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen for SIGHUP even without a routing file: its default action would end the hub.
    let hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; the routing file is only watched");
            None
        }
    };
    watch_with(live, config, hangup)
}

async fn watch_with(
    live: Arc<LiveRouting>,
    config: HubConfig,
    mut hangup: Option<tokio::signal::unix::Signal>,
) {
    let Some(file) = config.routing.file.clone() else {
        let Some(mut hangup) = hangup else { return };
        loop {
            tokio::select! {
                () = live.shutdown.wait() => return,
                received = hangup.recv() => match received {
                    Some(()) => tracing::info!(reason = "SIGHUP", "no routing file to reload"),
                    None => return,
                },
            }
        }
    };
    let interval = Duration::from_secs(config.routing.watch_interval_secs);
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = modified(&file);
    loop {
        let poll = async {
            if interval.is_zero() {
                std::future::pending::<()>().await;
            } else {
                tokio::time::sleep(interval).await;
            }
        };
        let reason = tokio::select! {
            () = live.shutdown.wait() => return,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            () = poll => {
                let now = modified(&file);
                if now == seen { continue }
                seen = now;
                "file changed"
            }
        };
        match load(&config) {
            Ok(routing) => {
                tracing::info!(
                    reason,
                    routes = routing.routes().len(),
                    endpoints = routing.endpoints().len(),
                    "routing reloaded"
                );
                live.replace(routing);
            }
            Err(problems) => {
                for problem in &problems {
                    tracing::error!(reason, %problem, "routing not reloaded; the previous routing stays");
                }
            }
        }
    }
}
