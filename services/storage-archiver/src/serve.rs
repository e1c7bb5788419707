//! `storage-archiver serve`: opens the index and the container (retrying until both answer; `/ready`
//! is 503 until then), then runs discovery, the indexing workers and the query API until shutdown.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret as _;
use service_kit::config::ConfigError;
use service_kit::{Metrics, Readiness, ReadinessCheck, Shutdown};
use tokio::task::JoinSet;

use crate::api::{self, ApiState};
use crate::config::ArchiverConfig;
use crate::discovery::Discovery;
use crate::indexer::{IndexSettings, Indexer};
use crate::metrics::ArchiverMetrics;
use crate::notifications::Notifications;
use crate::store::Store;

/// Sockets bound before [`run`].
#[derive(Debug)]
pub struct Listeners {
    /// The query API.
    pub api: Option<TcpListener>,
    /// `/live`, `/ready`, `/metrics`.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds what `config` asks for.
    pub fn bind(config: &ArchiverConfig) -> std::io::Result<Self> {
        let bind = |addr: Option<std::net::SocketAddr>| -> std::io::Result<Option<TcpListener>> {
            addr.map(|addr| {
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .transpose()
        };
        Ok(Listeners {
            api: bind(config.api)?,
            admin: bind(config.admin)?,
        })
    }
}

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is unusable (exit 64).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A server could not start.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The `from` setting as a time.
fn from_time(config: &ArchiverConfig) -> Option<SystemTime> {
    match config.from.as_deref() {
        None => None,
        Some("now") => Some(SystemTime::now()),
        Some(text) => time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(SystemTime::from),
    }
}

/// Runs until `shutdown` fires.
pub async fn run(config: ArchiverConfig, listeners: Listeners, shutdown: Shutdown) -> Result<(), ServeError> {
    config.validate()?;
    let connection = blob_store::StorageConnection::parse(config.container.connection_string.expose_secret())
        .map_err(|e| ConfigError::new(format!("container.connection_string: {e}")))?;
    let metrics = Metrics::new("storage-archiver");
    let archiver_metrics = ArchiverMetrics::register(&metrics);
    let readiness = Readiness::default();
    let index_check = readiness.check("index");
    let container_check = readiness.check("container");
    let mut servers = JoinSet::new();
    if let Some(listener) = listeners.admin {
        servers.spawn(service_kit::admin::serve(
            listener,
            readiness.clone(),
            metrics.clone(),
            &shutdown,
            config.grace_period(),
        )?);
    }
    let Some(index) = open_index(&config, &index_check, &shutdown).await else {
        return Ok(());
    };
    if let Some(listener) = listeners.api {
        let state = ApiState {
            index: Arc::clone(&index),
            metrics: archiver_metrics.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|error, _| api::invalid_parameter(&error.to_string()).into()),
                )
                .configure(api::configure)
        })
        .workers(2)
        .disable_signals()
        .shutdown_signal(shutdown.wait_owned())
        .shutdown_timeout(config.grace_period_secs.max(1))
        .listen(listener)?
        .run();
        servers.spawn(server);
    }
    let container = loop {
        match blob_store::open(&connection, &config.container.name) {
            Ok(store) => break store,
            Err(e) => {
                container_check.not_ready(e.to_string());
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    () = shutdown.wait() => return Ok(()),
                }
            }
        }
    };
    let discovery = Discovery::new(
        Arc::clone(&container),
        Arc::clone(&index),
        &config.container.name,
        &config.container.prefix,
        config.container.group_depth,
        Duration::from_secs(config.container.settle_minutes * 60),
        from_time(&config),
    );
    let indexer = Indexer {
        container,
        index,
        settings: IndexSettings {
            worker: config.worker_name(),
            lease: config.lease(),
            max_attempts: config.max_attempts,
            batch_records: config.batch_records,
            max_record_bytes: config.max_record_bytes,
            max_body_bytes: config.max_body_bytes,
        },
        metrics: archiver_metrics.clone(),
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let mut work = JoinSet::new();
    if let Some(settings) = config.notifications.clone() {
        // Its own task: listing starts at once, whether or not the queue is reachable yet.
        let (wake, seen) = (Arc::clone(&wake), indexer.metrics.blobs_seen.clone());
        let (indexer, config, shutdown) = (indexer.clone(), config.clone(), shutdown.clone());
        work.spawn(async move {
            if let Some(notifications) = open_notifications(&settings, &indexer, &config, &shutdown).await {
                let recorded = move |new| {
                    seen.inc_by(new);
                    wake.notify_waiters();
                };
                notifications.run(recorded, shutdown).await;
            }
        });
    }
    work.spawn(discover(
        discovery,
        Duration::from_millis(config.poll_interval_ms),
        container_check,
        archiver_metrics,
        Arc::clone(&wake),
        shutdown.clone(),
    ));
    for _ in 0..config.workers {
        work.spawn(index_loop(indexer.clone(), Arc::clone(&wake), shutdown.clone()));
    }
    shutdown.wait().await;
    // Workers stop between batches; a blob cut short is finished by whoever claims it next.
    let grace = config.grace_period();
    if tokio::time::timeout(grace, async { while work.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        work.abort_all();
    }
    while servers.join_next().await.is_some() {}
    Ok(())
}

/// The notification queue, retried until it opens or the archiver stops (listing runs meanwhile).
async fn open_notifications(
    settings: &crate::config::NotificationSettings,
    indexer: &Indexer,
    config: &ArchiverConfig,
    shutdown: &Shutdown,
) -> Option<Notifications> {
    let mut delay = Duration::from_millis(250);
    loop {
        let opened = async {
            let client = queue::QueueClient::connect(settings.connection_string.expose_secret()).await?;
            client.queue(&settings.queue).await
        };
        let opened = tokio::select! {
            opened = opened => opened,
            () = shutdown.wait() => return None,
        };
        match opened {
            Ok(queue) => {
                return Some(Notifications {
                    queue,
                    container_store: Arc::clone(&indexer.container),
                    index: Arc::clone(&indexer.index),
                    container: config.container.name.clone(),
                    prefix: config.container.prefix.clone(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, queue = %settings.queue, "notification queue not reachable yet; listing still runs");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.wait() => return None,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn open_index(
    config: &ArchiverConfig,
    check: &ReadinessCheck,
    shutdown: &Shutdown,
) -> Option<Arc<dyn Store>> {
    let mut delay = Duration::from_millis(250);
    loop {
        let opened = tokio::select! {
            opened = crate::store::open(config.index.expose_secret()) => opened,
            () = shutdown.wait() => return None,
        };
        match opened {
            Ok(index) => {
                check.ready();
                return Some(index);
            }
            Err(e) => {
                tracing::warn!(error = %e, "index not reachable yet");
                check.not_ready(e.to_string());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.wait() => return None,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn discover(
    discovery: Discovery,
    interval: Duration,
    check: ReadinessCheck,
    metrics: ArchiverMetrics,
    wake: Arc<tokio::sync::Notify>,
    shutdown: Shutdown,
) {
    loop {
        match discovery.poll().await {
            Ok(outcome) => {
                check.ready();
                metrics.blobs_seen.inc_by(outcome.new);
                if outcome.new > 0 {
                    wake.notify_waiters();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery failed");
                check.not_ready(e.to_string());
            }
        }
        metrics.refresh_lag();
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.wait() => return,
        }
    }
}

async fn index_loop(indexer: Indexer, wake: Arc<tokio::sync::Notify>, shutdown: Shutdown) {
    let mut failures = 0u32;
    while !shutdown.is_triggered() {
        let idle = match indexer.index_one().await {
            Ok(worked) => {
                failures = 0;
                !worked
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "indexing failed");
                true
            }
        };
        if idle {
            let pause = Duration::from_millis(500u64 << failures.min(5));
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}
