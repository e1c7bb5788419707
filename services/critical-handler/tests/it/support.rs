//! Test plumbing: a queue on each backend (a temp SQLite file, or a RabbitMQ queue with a random
//! name), messages shaped as the hub sends them, and the handler run in-process or as a process.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use critical_handler::config::HandlerConfig;
use critical_handler::serve::{self, Listeners};
use queue::{Message, Queue, QueueClient, QueueOptions, ReceivedMessage};
use secrecy::SecretString;
use service_kit::Shutdown;

use crate::crm::{Crm, SECRET};

/// RabbitMQ with the AMQP 1.0 plugin (started by `scripts/services/rabbitmq`).
pub(crate) const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672";

/// Which queue backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    RabbitMq,
}

/// A queue made for one test, removed when dropped.
pub(crate) struct TestQueue {
    pub(crate) kind: Kind,
    pub(crate) connection: String,
    pub(crate) name: String,
    _client: QueueClient,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) dead_letters: Arc<dyn Queue>,
    _dir: Option<tempfile::TempDir>,
}

fn rabbitmq_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/rabbitmq")
}

pub(crate) fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", fastrand::u64(..))
}

impl TestQueue {
    /// A fresh queue: lock duration and max deliveries apply where the backend has them.
    pub(crate) async fn new(kind: Kind, options: QueueOptions) -> TestQueue {
        let name = unique_name("critical");
        let (connection, dir) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (
                    format!("sqlite://{}", dir.path().join("queues.db").display()),
                    Some(dir),
                )
            }
            Kind::RabbitMq => {
                let status = Command::new(rabbitmq_script())
                    .args(["declare", &name, &options.max_delivery_count.to_string()])
                    .status()
                    .unwrap();
                assert!(
                    status.success(),
                    "declaring {name}: is RabbitMQ up (scripts/services/rabbitmq)?"
                );
                (RABBITMQ.to_owned(), None)
            }
        };
        let client = QueueClient::connect(&connection).await.unwrap();
        if kind == Kind::Sqlite {
            client.create_queue(&name, &options).await.unwrap();
        }
        let queue = client.queue(&name).await.unwrap();
        let dead_letters = client.queue(&queue::dead_letter_queue_name(&name)).await.unwrap();
        TestQueue {
            kind,
            connection,
            name,
            _client: client,
            queue,
            dead_letters,
            _dir: dir,
        }
    }

    /// Sends `count` critical messages as the hub would, ids `<prefix>-<n>`.
    pub(crate) async fn send_critical(&self, prefix: &str, count: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<Message> = chunk
                .iter()
                .map(|n| {
                    let id = format!("{prefix}-{n}");
                    ids.push(id.clone());
                    critical_message(
                        &id,
                        "turbine-7",
                        &format!("{{\"deviceId\":\"turbine-7\",\"windSpeed\":{n}}}"),
                    )
                })
                .collect();
            self.queue.send_batch(batch).await.unwrap();
        }
        ids
    }

    /// Receives everything in the dead-letter queue (settling nothing: locks lapse with the test).
    pub(crate) async fn dead_lettered(&self, wait: Duration) -> Vec<ReceivedMessage> {
        let mut all = Vec::new();
        loop {
            let batch = self.dead_letters.receive(100, wait).await.unwrap();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        if self.kind == Kind::RabbitMq {
            let _ = Command::new(rabbitmq_script())
                .args(["delete", &self.name])
                .status();
        }
    }
}

/// A message as the hub puts it on a Service Bus queue for the tutorial's critical route.
pub(crate) fn critical_message(id: &str, device: &str, body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
        .with_message_id(id)
        .with_correlation_id(format!("correlation-{id}"))
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_property("level", "critical")
        .with_property("iothub-connection-device-id", device)
        .with_property(
            "iothub-connection-auth-method",
            r#"{"scope":"device","type":"sas","issuer":"iothub"}"#,
        )
        .with_property(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
}

/// A configuration for `queue` and `crm` with fast retries and a short circuit period.
pub(crate) fn config(queue: &TestQueue, crm: &Crm) -> HandlerConfig {
    let mut config = HandlerConfig::default();
    config.queue.connection_string = SecretString::from(queue.connection.clone());
    config.queue.name = Some(queue.name.clone());
    config.queue.receive_wait_ms = 200;
    config.webhook.url = crm.url();
    config.webhook.signing_secret = SecretString::from(SECRET);
    config.webhook.timeout_secs = 2;
    config.retry.base_delay_ms = 50;
    config.retry.max_delay_ms = 500;
    config.admin = Some("127.0.0.1:0".parse().unwrap());
    config.grace_period_secs = 5;
    config
}

/// The handler running in this process.
pub(crate) struct Running {
    pub(crate) admin: std::net::SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
}

impl Running {
    pub(crate) fn start(config: HandlerConfig) -> Running {
        let listeners = Listeners::bind(&config).unwrap();
        let admin = listeners.admin.as_ref().unwrap().local_addr().unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve::run(config, listeners, shutdown.clone()));
        Running {
            admin,
            shutdown,
            task,
        }
    }

    /// `/metrics` as text.
    pub(crate) async fn metrics(&self) -> String {
        http_client()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One sample's value from `/metrics` (the first line starting with `prefix`).
    pub(crate) async fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.metrics().await, prefix)
    }

    /// Stops the handler and waits for it to exit.
    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the handler stops within its grace period")
            .unwrap()
            .unwrap();
    }
}

/// The value of the first sample line starting with `prefix` (0 when absent).
pub(crate) fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Waits until `condition` holds, polling; panics with `what` after `limit`.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs to stderr when `TEST_LOG` is set.
pub(crate) fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
