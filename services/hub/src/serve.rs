//! `hub serve`: builds the hub from its configuration and runs every listener until shutdown.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use service_kit::{Metrics, Readiness, Shutdown, admin};

use crate::auth::Authenticator;
use crate::config::HubConfig;
use crate::events::{Journal, JournalConfig};
use crate::ingest::Ingest;
use crate::metrics::{HubMetrics, RoutingMetrics};
use crate::mqtt::{self, LiveConnections};
use crate::policies::Policies;
use crate::registry::Registry;
use crate::routes::{self, LiveRouting};
use crate::state::Hub;
use crate::{http, tls};

/// Bound sockets, one per configured listener (tests bind port 0 and read the real ports here).
#[derive(Debug, Default)]
pub struct Listeners {
    /// MQTT over TLS.
    pub mqtt_tls: Option<TcpListener>,
    /// MQTT over plain TCP.
    pub mqtt_tcp: Option<TcpListener>,
    /// HTTPS API.
    pub https: Option<TcpListener>,
    /// Plain HTTP API.
    pub http: Option<TcpListener>,
    /// Admin server.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds every listener the configuration names.
    pub fn bind(config: &HubConfig) -> anyhow::Result<Self> {
        let bind = |name: &str, addr: Option<SocketAddr>| -> anyhow::Result<Option<TcpListener>> {
            addr.map(|addr| {
                let listener = TcpListener::bind(addr)
                    .with_context(|| format!("listeners.{name}: cannot bind {addr}"))?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .transpose()
        };
        let l = &config.listeners;
        Ok(Listeners {
            mqtt_tls: bind("mqtt_tls", l.mqtt_tls)?,
            mqtt_tcp: bind("mqtt_tcp", l.mqtt_tcp)?,
            https: bind("https", l.https)?,
            http: bind("http", l.http)?,
            admin: bind("admin", l.admin)?,
        })
    }
}

/// Runs the hub until `shutdown` fires, then drains within the grace period.
pub async fn run(config: HubConfig, listeners: Listeners, shutdown: Shutdown) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;
    let grace = Duration::from_secs(config.grace_period_secs);
    let metrics_registry = Metrics::new("hub");
    let metrics = HubMetrics::new(&metrics_registry);
    let routing_metrics = RoutingMetrics::new(&metrics_registry);
    let routing =
        routes::load(&config).map_err(|problems| anyhow::anyhow!("routing: {}", problems.join("; ")))?;
    let readiness = Readiness::default();
    let store_check = readiness.check("store");

    let registry =
        Arc::new(Registry::open(&config.data_dir.join("registry.db")).context("the device registry")?);
    let policies =
        Arc::new(Policies::load(&config.policies, &registry).context("the shared access policies")?);
    let (journal, journal_thread) = Journal::start(JournalConfig {
        path: config.data_dir.join("events.db"),
        sync: config.events.sync,
        retention: Duration::from_secs(config.events.retention_secs),
        max_bytes: config.events.max_bytes,
        queue_capacity: 16 * 1024,
        max_batch: 1024,
        wal_restart_frames: 4096,
    })
    .context("the events store")?;
    store_check.ready();
    let live_routing = LiveRouting::start(
        routing,
        journal.clone(),
        routing_metrics.clone(),
        shutdown.clone(),
        Duration::from_secs(config.routing.dead_after_secs),
    );

    let identity = if listeners.mqtt_tls.is_some() || listeners.https.is_some() {
        Some(tls::server_identity(&config).context("TLS")?)
    } else {
        None
    };
    if let Some(ca) = identity.as_ref().and_then(|i| i.ca_file.as_ref()) {
        tracing::info!(ca = %ca.display(), "devices must trust this development CA");
    }

    let hub = Arc::new(Hub {
        auth: Authenticator::new(
            config.host_names.clone(),
            Arc::clone(&registry),
            Arc::clone(&policies),
        ),
        ingest: Ingest::new(
            journal.clone(),
            Arc::clone(&live_routing),
            metrics.clone(),
            routing_metrics,
            config.limits.max_message_bytes,
            config.routing.max_backlog,
        ),
        routing: Arc::clone(&live_routing),
        journal,
        registry,
        policies,
        live: Arc::new(LiveConnections::default()),
        metrics,
        shutdown: shutdown.clone(),
        config,
    });

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(routes::watch(live_routing, hub.config.clone()));
    if let Some(listener) = listeners.mqtt_tls {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config(identity.as_ref(), &[])?);
        let listener = tokio::net::TcpListener::from_std(listener)?;
        log_listener("mqtt_tls", &listener);
        tasks.spawn(mqtt::accept_loop(
            listener,
            Some(acceptor),
            "mqtt_tls",
            Arc::clone(&hub),
        ));
    }
    if let Some(listener) = listeners.mqtt_tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        log_listener("mqtt_tcp", &listener);
        tasks.spawn(mqtt::accept_loop(listener, None, "mqtt_tcp", Arc::clone(&hub)));
    }
    if let Some(listener) = listeners.https {
        tracing::info!(address = %listener.local_addr()?, listener = "https", "listening");
        let config = Arc::unwrap_or_clone(tls_config(identity.as_ref(), &[])?);
        let server = http::serve(listener, Some(config), Arc::clone(&hub), grace)?;
        tasks.spawn(async move { log_end("https", server.await) });
    }
    if let Some(listener) = listeners.http {
        tracing::info!(address = %listener.local_addr()?, listener = "http", "listening");
        let server = http::serve(listener, None, Arc::clone(&hub), grace)?;
        tasks.spawn(async move { log_end("http", server.await) });
    }
    if let Some(listener) = listeners.admin {
        tracing::info!(address = %listener.local_addr()?, listener = "admin", "listening");
        let server = admin::serve(listener, readiness.clone(), metrics_registry, &shutdown, grace)?;
        tasks.spawn(async move { log_end("admin", server.await) });
    }
    readiness.check("listeners").ready();
    tracing::info!(hub = %hub.config.hub_name, devices = hub.registry.len(), "hub started");

    shutdown.wait().await;
    tracing::info!(grace_secs = grace.as_secs(), "draining");
    if tokio::time::timeout(grace + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("listeners did not stop within the grace period");
        tasks.abort_all();
    }
    // Connections are gone; once the last journal handle drops, its thread commits and exits.
    drop(hub);
    tokio::task::spawn_blocking(move || journal_thread.join())
        .await
        .ok();
    tracing::info!("hub stopped");
    Ok(())
}

fn tls_config(
    identity: Option<&tls::ServerIdentity>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let identity = identity.context("TLS listener without a certificate")?;
    Ok(identity.server_config(alpn)?)
}

fn log_listener(name: &str, listener: &tokio::net::TcpListener) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, listener = name, "listening");
    }
}

fn log_end(name: &'static str, result: std::io::Result<()>) {
    if let Err(error) = result {
        tracing::error!(%error, server = name, "server failed");
    }
}
