//! Shared helpers: random names, the harness each backend implements, draining a queue.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use queue::{Queue, QueueClient, QueueOptions, ReceivedMessage};

/// A name no other test (or test run) uses.
pub(crate) fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", fastrand::u64(..))
}

/// Logs to stderr when `TEST_LOG` is set; silent otherwise.
pub(crate) fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// What a backend can show; the suite checks only what it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Locks expire by themselves and can be renewed.
    pub(crate) lock_expiry: bool,
    /// `delivery_count` counts deliveries (otherwise only `redelivered` is set).
    pub(crate) delivery_count: bool,
    /// The dead-letter queue keeps the reason and description.
    pub(crate) dead_letter_reason: bool,
    /// `len`, `dead_letter_len` and `peek` work.
    pub(crate) counts: bool,
    /// Opening a missing queue fails at once (the in-process peer attaches any address).
    pub(crate) refuses_unknown_queues: bool,
}

/// One queue (and its dead-letter queue) made for one test.
pub(crate) struct Fixture {
    pub(crate) client: QueueClient,
    pub(crate) connection: String,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) dead_letters: Arc<dyn Queue>,
    pub(crate) name: String,
    /// Keeps the temp dir / broker queue alive until the test ends.
    pub(crate) _guard: Box<dyn std::any::Any + Send>,
}

/// A backend under test.
pub(crate) trait Harness {
    fn caps(&self) -> Caps;
    /// A fresh queue with these options; `lock_duration` is used where the backend has locks.
    async fn fixture(&self, options: QueueOptions) -> Fixture;
}

/// Receives until `count` messages came or nothing arrives within `idle`.
pub(crate) async fn receive_n(queue: &dyn Queue, count: usize, idle: Duration) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    while all.len() < count {
        let got = queue.receive(count - all.len(), idle).await.unwrap();
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    all
}

/// Receives and completes everything, returning the message ids seen.
pub(crate) async fn drain_ids(queue: &dyn Queue, idle: Duration) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let got = queue.receive(64, idle).await.unwrap();
        if got.is_empty() {
            return ids;
        }
        for m in got {
            ids.push(m.message.message_id.clone().unwrap_or_default());
            queue.complete(&m.lock_token).await.unwrap();
        }
    }
}

pub(crate) fn id_set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// A TCP proxy on 127.0.0.1 that can cut every connection through it: a broker "dropping" this
/// test's connections without touching anyone else's.
pub(crate) struct CutProxy {
    pub(crate) port: u16,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub(crate) async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (upstream, registry) = (upstream.to_owned(), Arc::clone(&tasks));
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            port,
            tasks,
            acceptor,
        }
    }

    /// Drops every connection made so far; new ones are proxied again.
    pub(crate) fn cut_all(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut_all();
        self.acceptor.abort();
    }
}
