//! Peek-lock queues behind one async API, with three backends chosen by connection string:
//!
//! | backend | connection string | what it is for |
//! |---|---|---|
//! | `sqlite` | `sqlite://data/queues.db` | one host, nothing to install; several processes share the file (WAL) |
//! | `servicebus` | `Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..` | Azure Service Bus over AMQP 1.0 (CBS + SAS), or its emulator with `UseDevelopmentEmulator=true` |
//! | `amqp` | `amqp://guest:guest@127.0.0.1:5672` | any AMQP 1.0 broker; the default profile is RabbitMQ's `rabbitmq_amqp1_0` plugin |
//!
//! Peek-lock: [`Queue::receive`] locks messages for the queue's lock duration; the receiver then
//! [`complete`](Queue::complete)s, [`abandon`](Queue::abandon)s or
//! [`dead_letter`](Queue::dead_letter)s each by its [`LockToken`]. A lock that expires (or a receiver
//! that dies) returns the message to the queue with its delivery count raised; past the queue's maximum
//! delivery count it moves to the dead-letter sub-queue `<queue>/$deadletterqueue`, which is opened like
//! any queue ([`dead_letter_queue_name`]). Delivery is at least once: consumers must be idempotent.
//!
//! ```no_run
//! # async fn demo() -> Result<(), queue::Error> {
//! use std::time::Duration;
//! use queue::Queue as _;
//! let client = queue::QueueClient::connect("sqlite://data/queues.db").await?;
//! client.create_queue("critical", &queue::QueueOptions::default()).await?;
//! let critical = client.queue("critical").await?;
//! critical.send(queue::Message::new(b"{\"windSpeed\":12}".to_vec()).with_message_id("m-1")).await?;
//! for received in critical.receive(16, Duration::from_secs(5)).await? {
//!     // ... act on received.message, idempotently ...
//!     critical.complete(&received.lock_token).await?;
//! }
//! # Ok(()) }
//! ```

mod amqp;
mod connection_string;
mod error;
mod message;
mod secret;
mod servicebus;
mod sqlite;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

pub use connection_string::{
    AmqpConfig, AmqpProfile, ConnectionConfig, DEFAULT_MAX_MESSAGE_SIZE, ServiceBusAuth, ServiceBusConfig,
    SqliteConfig, Synchronous,
};
pub use error::{BoxError, Error, Result};
pub use message::{
    DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, LockToken, MAX_DELIVERY_COUNT_EXCEEDED, Message,
    PeekedMessage, ReceivedMessage,
};
pub use secret::Secret;
pub use servicebus::sas::sas_token;

/// Suffix of a queue's dead-letter sub-queue, as Service Bus names it.
pub const DEAD_LETTER_SUFFIX: &str = "/$deadletterqueue";

/// The name of `queue`'s dead-letter sub-queue: `<queue>/$deadletterqueue`.
pub fn dead_letter_queue_name(queue: &str) -> String {
    format!("{queue}{DEAD_LETTER_SUFFIX}")
}

/// One queue, opened from a [`QueueClient`]. Cheap to share (`Arc`); every method may be called
/// from many tasks at once.
#[async_trait::async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// The queue's name as opened (a dead-letter queue ends in `/$deadletterqueue`).
    fn name(&self) -> &str;

    /// Sends one message; returns once the queue has it durably.
    async fn send(&self, message: Message) -> Result<()> {
        self.send_batch(vec![message]).await
    }

    /// Sends several messages: all or none (one transaction on SQLite). Messages over the size limit
    /// refuse the whole batch before anything is sent.
    async fn send_batch(&self, messages: Vec<Message>) -> Result<()>;

    /// Receives up to `max` messages, each locked; waits at most `wait` for the first one and returns
    /// an empty list if none came.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>>;

    /// Removes a locked message for good.
    async fn complete(&self, token: &LockToken) -> Result<()>;

    /// Completes several locked messages: one result per token, in the tokens' order, each as
    /// [`Queue::complete`] would give it. SQLite completes them all in one writer job (one
    /// transaction); the other backends complete them concurrently.
    async fn complete_many(&self, tokens: &[LockToken]) -> Vec<Result<()>> {
        futures_util::future::join_all(tokens.iter().map(|token| self.complete(token))).await
    }

    /// Gives a locked message back to the queue for another delivery (or to the dead-letter queue if
    /// it has used up its deliveries).
    async fn abandon(&self, token: &LockToken) -> Result<()>;

    /// Moves a locked message to the dead-letter queue with a reason and a description.
    async fn dead_letter(&self, token: &LockToken, reason: &str, description: &str) -> Result<()>;

    /// Extends a lock by the queue's lock duration; returns the new locked-until time.
    async fn renew_lock(&self, token: &LockToken) -> Result<SystemTime>;

    /// Looks at up to `max` messages from the head of the queue without locking them.
    async fn peek(&self, max: usize) -> Result<Vec<PeekedMessage>>;

    /// Messages in the queue, locked ones included.
    async fn len(&self) -> Result<u64>;

    /// True when the queue holds no message (locked ones count).
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Messages in the queue's dead-letter sub-queue.
    async fn dead_letter_len(&self) -> Result<u64>;
}

/// Properties of a queue created through [`QueueClient::create_queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// How long a received message stays locked (Service Bus `LockDuration`, default 60 s).
    pub lock_duration: Duration,
    /// Deliveries before a message is dead-lettered (Service Bus `MaxDeliveryCount`, default 10).
    pub max_delivery_count: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            lock_duration: Duration::from_secs(60),
            max_delivery_count: 10,
        }
    }
}

#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    fn name(&self) -> &'static str;
    async fn queue(&self, name: &str) -> Result<Arc<dyn Queue>>;
    async fn create_queue(&self, name: &str, options: &QueueOptions) -> Result<()>;
    async fn close(&self);
}

/// A connection to one queue store or broker namespace.
#[derive(Debug, Clone)]
pub struct QueueClient {
    backend: Arc<dyn Backend>,
    entity_path: Option<String>,
}

impl QueueClient {
    /// Connects with a connection string (see [`ConnectionConfig::parse`] for the shapes).
    pub async fn connect(connection_string: &str) -> Result<Self> {
        Self::from_config(ConnectionConfig::parse(connection_string)?).await
    }

    /// Connects with a parsed configuration.
    pub async fn from_config(config: ConnectionConfig) -> Result<Self> {
        let (backend, entity_path): (Arc<dyn Backend>, _) = match config {
            ConnectionConfig::Sqlite(config) => (Arc::new(sqlite::SqliteBackend::open(config).await?), None),
            ConnectionConfig::Amqp(config) => (Arc::new(amqp::AmqpBackend::connect(config).await?), None),
            ConnectionConfig::ServiceBus(config) => {
                let entity = config.entity_path.clone();
                (Arc::new(servicebus::connect(config).await?), entity)
            }
        };
        Ok(Self { backend, entity_path })
    }

    /// The backend's name: `sqlite`, `amqp` or `servicebus`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The queue named by the connection string's `EntityPath`, if it had one.
    pub fn entity_path(&self) -> Option<&str> {
        self.entity_path.as_deref()
    }

    /// Opens a queue (or `<queue>/$deadletterqueue`). Fails with [`Error::QueueNotFound`] if it does
    /// not exist: queues are never created implicitly.
    pub async fn queue(&self, name: &str) -> Result<Arc<dyn Queue>> {
        validate_queue_name(name)?;
        self.backend.queue(name).await
    }

    /// Creates a queue if it does not exist (SQLite). Brokers' queues are declared by their operators:
    /// [`Error::Unsupported`] there.
    pub async fn create_queue(&self, name: &str, options: &QueueOptions) -> Result<()> {
        validate_queue_name(name)?;
        if name.ends_with(DEAD_LETTER_SUFFIX) {
            return Err(Error::InvalidQueueName {
                name: name.to_owned(),
                reason: "a dead-letter queue exists with its queue and cannot be created",
            });
        }
        self.backend.create_queue(name, options).await
    }

    /// Closes the broker connection (AMQP backends); queues opened from this client then reconnect on
    /// their next call. A no-op on SQLite, whose store closes when the last handle is dropped.
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

fn validate_queue_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidQueueName {
            name: name.to_owned(),
            reason,
        })
    };
    let base = name.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(name);
    if base.is_empty() {
        return invalid("empty");
    }
    if base.len() > 260 {
        return invalid("longer than 260 characters");
    }
    if !base
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    {
        return invalid("only letters, digits, '-', '_', '.' and '~' are allowed");
    }
    Ok(())
}

/// A process-unique id for each opened queue handle, carried by its lock tokens.
pub(crate) fn next_issuer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Refuses a batch if any message is over `limit`.
pub(crate) fn check_sizes(messages: &[Message], limit: usize) -> Result<()> {
    match messages.iter().map(Message::size).find(|size| *size > limit) {
        Some(size) => Err(Error::MessageTooLarge { size, limit }),
        None => Ok(()),
    }
}
