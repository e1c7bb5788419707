//! `critical-handler serve`: builds the webhook and the renderer (a bad setting stops startup),
//! serves `/live`, `/ready` and `/metrics`, connects to the queue (retrying until it answers; `/ready`
//! is 503 until then) and runs the receive loop until shutdown.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use service_kit::config::ConfigError;
use service_kit::{Metrics, Readiness, ReadinessCheck, Shutdown};
use tokio::sync::Semaphore;

use crate::circuit::Circuit;
use crate::completer::Completer;
use crate::config::HandlerConfig;
use crate::consumer::{self, Context, LoopSettings};
use crate::lock::Keeper;
use crate::metrics::HandlerMetrics;
use crate::template::Renderer;
use crate::webhook::Webhook;

/// The queue name used when neither `queue.name` nor the connection string's `EntityPath` gives one.
pub const DEFAULT_QUEUE: &str = "critical";

/// Sockets bound before [`run`] (tests bind port 0 and read the address).
#[derive(Debug)]
pub struct Listeners {
    /// The admin server's socket.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds what `config` asks for.
    pub fn bind(config: &HandlerConfig) -> std::io::Result<Self> {
        let admin = match config.admin {
            Some(addr) => {
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            None => None,
        };
        Ok(Listeners { admin })
    }
}

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is unusable (exit 64).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The admin server could not start.
    #[error("admin server: {0}")]
    Admin(#[from] std::io::Error),
}

/// The renderer the configuration asks for (preset or custom template file).
pub fn renderer(config: &HandlerConfig) -> Result<Renderer, ConfigError> {
    let vars = config
        .webhook
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
        .collect();
    let renderer = match &config.webhook.template_file {
        Some(path) => Renderer::from_file(path, config.webhook.content_type.clone(), vars),
        None => Renderer::preset(config.webhook.preset, vars),
    };
    renderer.map_err(|e| ConfigError::new(format!("webhook template: {e}")))
}

/// Runs until `shutdown` fires, then drains within the grace period.
pub async fn run(config: HandlerConfig, listeners: Listeners, shutdown: Shutdown) -> Result<(), ServeError> {
    config.validate()?;
    let renderer = renderer(&config)?;
    let webhook =
        Webhook::new(&config, renderer.content_type()).map_err(|e| ConfigError::new(e.to_string()))?;
    let metrics = Metrics::new("critical-handler");
    let handler_metrics = HandlerMetrics::register(&metrics);
    let readiness = Readiness::default();
    let queue_check = readiness.check("queue");
    let admin = match listeners.admin {
        Some(listener) => Some(service_kit::admin::serve(
            listener,
            readiness.clone(),
            metrics.clone(),
            &shutdown,
            config.grace_period(),
        )?),
        None => None,
    };
    let admin = admin.map(|server| tokio::spawn(server));
    tracing::info!(
        webhook = %webhook.redacted_url(),
        concurrency = config.concurrency,
        "critical-handler starting"
    );
    if let Some(queue) = connect(&config, &queue_check, &shutdown).await {
        let locks = Keeper::start(Arc::clone(&queue), handler_metrics.clone());
        let completer = Completer::start(Arc::clone(&queue), handler_metrics.clone());
        let ctx = Arc::new(Context {
            queue,
            locks,
            completer,
            webhook,
            renderer,
            circuit: Circuit::new(config.circuit, handler_metrics.circuit_state.clone()),
            metrics: handler_metrics,
            ticket_settings: config.ticket_settings(),
            retry: config.retry,
            max_lock_renewal: Duration::from_secs(config.max_lock_renewal_secs),
            calling: Arc::new(Semaphore::new(config.concurrency)),
            stop: shutdown.clone(),
        });
        let settings = LoopSettings {
            held_limit: config.held_limit(),
            receive_batch: config.receive_batch(),
            receive_wait: Duration::from_millis(config.queue.receive_wait_ms),
            grace: config.grace_period(),
        };
        consumer::run(ctx, settings, queue_check).await;
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    tracing::info!("critical-handler stopped");
    Ok(())
}

/// Connects and opens the queue, retrying with backoff until it works or `shutdown` fires.
async fn connect(
    config: &HandlerConfig,
    check: &ReadinessCheck,
    shutdown: &Shutdown,
) -> Option<Arc<dyn queue::Queue>> {
    let mut delay = Duration::from_millis(250);
    loop {
        let attempt = async {
            let client = queue::QueueClient::connect(config.queue.connection_string.expose_secret()).await?;
            let name = config
                .queue
                .name
                .clone()
                .or_else(|| client.entity_path().map(str::to_owned))
                .unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
            let queue = client.queue(&name).await?;
            Ok::<_, queue::Error>((client.backend_name(), queue))
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = shutdown.wait() => return None,
        };
        match outcome {
            Ok((backend, queue)) => {
                tracing::info!(backend, queue = queue.name(), "queue connected");
                check.ready();
                return Some(queue);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "queue not reachable yet");
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
