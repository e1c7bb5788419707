//! The real backends behind routing endpoints, one private instance per test: the embedded SQLite
//! queue, a RabbitMQ queue (random name, declared and deleted with `scripts/services/rabbitmq`), a
//! local directory, a private Azurite (`scripts/services/azurite`), and a TCP proxy a test can cut
//! to make one backend unreachable for its hub only. Readers take back what arrived: queue messages
//! and whole blobs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub::endpoints::storage::connection::DEV_ACCOUNT_KEY;
use hub::endpoints::storage::{Encoding, SinkErrorKind, StorageSink, StorageSinkConfig};
use queue::{QueueClient, QueueOptions};

use super::within;

/// RabbitMQ's AMQP 1.0 listener (the shared broker; see `scripts/services/rabbitmq`).
pub(crate) const RABBITMQ: &str = "127.0.0.1:5672";
/// The container (for a local directory, the subdirectory) storage endpoints write to.
pub(crate) const CONTAINER: &str = "telemetry";
/// IoT Hub's default blob names.
pub(crate) const FILE_NAME_FORMAT: &str = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}";

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/services")
        .join(name)
}

/// A name no other test uses.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// A RabbitMQ queue declared for one test and deleted (with its `.dlq`) when dropped.
#[derive(Debug)]
struct BrokerQueue(String);

impl BrokerQueue {
    fn declare(name: &str) -> Self {
        let status = Command::new(script("rabbitmq"))
            .args(["declare", name])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "declaring {name} failed; is RabbitMQ up (scripts/services/rabbitmq)?"
        );
        BrokerQueue(name.to_owned())
    }
}

impl Drop for BrokerQueue {
    fn drop(&mut self) {
        let _ = Command::new(script("rabbitmq"))
            .args(["delete", &self.0])
            .status();
    }
}

/// The queue behind a queue endpoint.
#[derive(Debug)]
pub(crate) struct QueueEndpoint {
    /// What the hub connects with (through a proxy, if the test put one in between).
    pub(crate) connection_string: String,
    /// The queue (the endpoint's `entityPath`).
    pub(crate) queue: String,
    /// What the test reads with: straight to the backend.
    read_connection: String,
    _declared: Option<BrokerQueue>,
}

impl QueueEndpoint {
    /// An embedded SQLite queue in `dir`, created (the hub never creates queues).
    pub(crate) async fn sqlite(dir: &Path) -> Self {
        let endpoint = QueueEndpoint::sqlite_missing(dir);
        endpoint.create().await;
        endpoint
    }

    /// An embedded SQLite queue in `dir` that does not exist yet: the endpoint is down until
    /// [`create`](Self::create).
    pub(crate) fn sqlite_missing(dir: &Path) -> Self {
        let connection_string = format!("sqlite://{}", dir.join("queues.db").display());
        QueueEndpoint {
            read_connection: connection_string.clone(),
            connection_string,
            queue: unique("critical"),
            _declared: None,
        }
    }

    /// A queue the test created itself at `connection_string`.
    pub(crate) fn existing(connection_string: &str, queue: &str) -> Self {
        QueueEndpoint {
            connection_string: connection_string.to_owned(),
            queue: queue.to_owned(),
            read_connection: connection_string.to_owned(),
            _declared: None,
        }
    }

    /// Creates the SQLite queue.
    pub(crate) async fn create(&self) {
        QueueClient::connect(&self.read_connection)
            .await
            .unwrap()
            .create_queue(&self.queue, &QueueOptions::default())
            .await
            .unwrap();
    }

    /// A RabbitMQ queue with a random name, deleted when this is dropped.
    pub(crate) fn rabbitmq() -> Self {
        QueueEndpoint::rabbitmq_at(RABBITMQ)
    }

    /// A RabbitMQ queue the hub reaches through `proxy` (the test still reads it directly).
    pub(crate) fn rabbitmq_via(proxy: &TcpProxy) -> Self {
        QueueEndpoint::rabbitmq_at(&format!("127.0.0.1:{}", proxy.port))
    }

    fn rabbitmq_at(address: &str) -> Self {
        let queue = unique("critical");
        let declared = BrokerQueue::declare(&queue);
        QueueEndpoint {
            connection_string: format!("amqp://guest:guest@{address}"),
            queue,
            read_connection: format!("amqp://guest:guest@{RABBITMQ}"),
            _declared: Some(declared),
        }
    }

    /// Receives (and completes) messages in queue order until `stop` says so; returns them all,
    /// the one that stopped it last.
    pub(crate) async fn receive_until(
        &self,
        mut stop: impl FnMut(&queue::ReceivedMessage) -> bool,
    ) -> Vec<queue::ReceivedMessage> {
        let client = QueueClient::connect(&self.read_connection).await.unwrap();
        let queue = client.queue(&self.queue).await.unwrap();
        let mut received = Vec::new();
        within(&format!("messages in queue {}", self.queue), async {
            loop {
                for message in queue.receive(100, Duration::from_secs(1)).await.unwrap() {
                    queue.complete(&message.lock_token).await.unwrap();
                    let done = stop(&message);
                    received.push(message);
                    if done {
                        return;
                    }
                }
            }
        })
        .await;
        client.close().await;
        received
    }

    /// Receives until a message with id `marker` came; returns everything before and including it.
    pub(crate) async fn receive_until_marker(&self, marker: &str) -> Vec<queue::ReceivedMessage> {
        self.receive_until(|m| m.message.message_id.as_deref() == Some(marker))
            .await
    }

    /// Drains an embedded (SQLite) queue: every message in it, in order.
    pub(crate) async fn drain_sqlite(&self) -> Vec<queue::ReceivedMessage> {
        let client = QueueClient::connect(&self.read_connection).await.unwrap();
        let queue = client.queue(&self.queue).await.unwrap();
        let mut received = Vec::new();
        while queue.len().await.unwrap() > 0 {
            for message in queue.receive(500, Duration::ZERO).await.unwrap() {
                queue.complete(&message.lock_token).await.unwrap();
                received.push(message);
            }
        }
        received
    }
}

/// One Azurite blob service, stopped when dropped (and by the script's owner watch should this
/// test process die first). Each test has its own, so stopping it affects no other test.
#[derive(Debug)]
pub(crate) struct Azurite {
    port: u16,
    pid: Option<u32>,
    location: PathBuf,
    _data: tempfile::TempDir,
}

impl Azurite {
    /// Installs Azurite if needed (npm, once per machine) and starts an instance on a free port.
    pub(crate) fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let location = data.path().to_owned();
        let (port, pid) = launch_azurite(None, &location);
        Azurite {
            port,
            pid: Some(pid),
            location,
            _data: data,
        }
    }

    /// Stops the instance; its blobs stay on disk.
    pub(crate) fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let status = Command::new(script("azurite"))
                .arg("stop")
                .arg(pid.to_string())
                .status()
                .unwrap();
            assert!(status.success(), "stopping azurite {pid}");
        }
    }

    /// Starts it again on the same port with the same blobs.
    pub(crate) fn restart(&mut self) {
        assert!(self.pid.is_none(), "restart after stop");
        let (_, pid) = launch_azurite(Some(self.port), &self.location);
        self.pid = Some(pid);
    }

    /// The connection string of this instance (the well-known development account).
    pub(crate) fn connection_string(&self) -> String {
        self.connection_string_with_key(DEV_ACCOUNT_KEY)
    }

    /// The explicit connection string for this instance with `key` (a wrong one to test refusals).
    pub(crate) fn connection_string_with_key(&self, key: &str) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};\
             BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new(script("azurite"))
                .arg("stop")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// Runs the script's `start`; returns (port, pid).
fn launch_azurite(port: Option<u16>, location: &Path) -> (u16, u32) {
    let mut command = Command::new(script("azurite"));
    command
        .arg("start")
        .arg("--location")
        .arg(location)
        .arg("--owner")
        .arg(std::process::id().to_string());
    if let Some(port) = port {
        command.arg("--port").arg(port.to_string());
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "azurite start failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
            .to_owned()
    };
    (
        value("AZURITE_BLOB_PORT").parse().unwrap(),
        value("AZURITE_PID").parse().unwrap(),
    )
}

/// The blob store behind a storage endpoint.
#[derive(Debug)]
pub(crate) enum StorageEndpoint {
    /// `file://<root>`; blobs are files under `<root>/<container>`.
    Local(tempfile::TempDir),
    /// A private Azurite.
    Azurite(Azurite),
}

/// A blob as written: its name and bytes.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    /// `testhub/0/2025/01/31/12/59`, `..._1`, ...
    pub(crate) name: String,
    /// Its content.
    pub(crate) bytes: Vec<u8>,
}

impl StorageEndpoint {
    /// A new, empty local directory.
    pub(crate) fn local() -> Self {
        StorageEndpoint::Local(tempfile::tempdir().unwrap())
    }

    /// A new private Azurite.
    pub(crate) fn azurite() -> Self {
        StorageEndpoint::Azurite(Azurite::start())
    }

    /// The connection string the hub writes with.
    pub(crate) fn connection_string(&self) -> String {
        match self {
            StorageEndpoint::Local(root) => format!("file://{}", root.path().display()),
            StorageEndpoint::Azurite(azurite) => azurite.connection_string(),
        }
    }

    /// The Azurite instance (panics for a local directory).
    pub(crate) fn azurite_mut(&mut self) -> &mut Azurite {
        match self {
            StorageEndpoint::Azurite(azurite) => azurite,
            StorageEndpoint::Local(_) => panic!("not an Azurite endpoint"),
        }
    }

    /// Every blob in the container, by name (staging files of the local backend excluded).
    pub(crate) async fn blobs(&self, hub_name: &str) -> Vec<Blob> {
        match self {
            StorageEndpoint::Local(root) => local_blobs(&root.path().join(CONTAINER)),
            StorageEndpoint::Azurite(azurite) => {
                let config = StorageSinkConfig::new(
                    &azurite.connection_string(),
                    CONTAINER,
                    hub_name,
                    FILE_NAME_FORMAT,
                    Encoding::Json,
                )
                .unwrap();
                let sink = StorageSink::new(config).unwrap();
                let listed = match sink.list_blobs().await {
                    Ok(listed) => listed,
                    Err(error) if error.kind() == SinkErrorKind::NotFound => return Vec::new(),
                    Err(error) => panic!("listing blobs: {error}"),
                };
                let mut blobs = Vec::new();
                for info in listed {
                    let bytes = sink.read_blob(&info.name).await.unwrap();
                    blobs.push(Blob {
                        name: info.name,
                        bytes,
                    });
                }
                blobs
            }
        }
    }
}

/// Whether `path` is a staging file of the local backend (`<name>#<digits>`), written before it is
/// linked to its name and left behind by a kill mid-write.
pub(crate) fn is_staging(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every file under `dir`, recursively, as paths relative to `dir` with `/` separators.
pub(crate) fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, prefix: &str, found: &mut Vec<(String, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if path.is_dir() {
                walk(&path, &relative, found);
            } else {
                found.push((relative, path));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, "", &mut found);
    found.sort();
    found
}

/// The blobs of a local container directory, staging files excluded.
pub(crate) fn local_blobs(container: &Path) -> Vec<Blob> {
    files_under(container)
        .into_iter()
        .filter(|(_, path)| !is_staging(path))
        .map(|(name, path)| Blob {
            name,
            bytes: std::fs::read(path).unwrap(),
        })
        .collect()
}

/// A TCP proxy in front of one backend, so a test can make that backend unreachable for its own
/// hub only (stopping a shared broker would break every other test using it).
#[derive(Debug)]
pub(crate) struct TcpProxy {
    /// The port the hub connects to.
    pub(crate) port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Proxies 127.0.0.1:<random port> to `upstream`, on the calling runtime.
    pub(crate) async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (upstream, is_up, registry) = (upstream.to_owned(), Arc::clone(&up), Arc::clone(&connections));
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // Checked and registered under the lock `cut` takes: no connection slips through.
                let mut open = registry.lock().unwrap();
                if !is_up.load(Ordering::SeqCst) {
                    // Unreachable: the connection closes at once, as if nothing listened.
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.push(task.abort_handle());
            }
        });
        TcpProxy {
            port,
            up,
            connections,
            acceptor,
        }
    }

    /// The backend becomes unreachable: open connections are dropped, new ones closed at once.
    pub(crate) fn cut(&self) {
        let mut open = self.connections.lock().unwrap();
        self.up.store(false, Ordering::SeqCst);
        for connection in open.drain(..) {
            connection.abort();
        }
    }

    /// The backend is reachable again.
    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.acceptor.abort();
    }
}
