//! The crate's one error type: what a caller can act on, with the backend's own error as the source.

use std::time::Duration;

/// A boxed error from a backend library (rusqlite, fe2o3-amqp, rustls, io).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string could not be used; `key` names the offending part.
    #[error("invalid connection string: `{key}`: {reason}")]
    ConnectionString {
        /// The key (or URL part) at fault, e.g. `SharedAccessKey`, `lock_duration`, `scheme`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The queue name is not usable on this backend.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The queue does not exist (it is never created implicitly).
    #[error("queue {queue:?} does not exist")]
    QueueNotFound {
        /// The queue name as given.
        queue: String,
    },
    /// A message is larger than the queue accepts; nothing of the batch was sent.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Encoded size of the message (body + properties), in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The lock behind a token expired, was already settled, or belongs to a link that is gone.
    /// The message will be (or was) delivered again.
    #[error("the message lock was lost: it expired, was already settled, or its link closed")]
    LockLost,
    /// The token was issued by another queue or backend.
    #[error("the lock token does not belong to queue {queue:?}")]
    ForeignLockToken {
        /// The queue the token was presented to.
        queue: String,
    },
    /// The backend cannot do this operation at all.
    #[error("{operation} is not supported by the {backend} backend: {reason}")]
    Unsupported {
        /// Backend name: `sqlite`, `servicebus`, `amqp`.
        backend: &'static str,
        /// The operation asked for.
        operation: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// The broker refused the credentials or the token.
    #[error("{backend}: not authorized: {reason}")]
    Unauthorized {
        /// Backend name.
        backend: &'static str,
        /// The broker's description.
        reason: String,
    },
    /// An operation did not finish in time (connect, attach, management call).
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The broker refused or dropped an operation; the message says what it said.
    #[error("{backend}: {operation} failed: {reason}")]
    Rejected {
        /// Backend name.
        backend: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The broker's condition and description.
        reason: String,
    },
    /// A failure in the backend library or the transport.
    #[error("{backend}: {operation} failed")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The queue client was closed.
    #[error("the queue client is closed")]
    Closed,
}

impl Error {
    pub(crate) fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Backend {
            backend,
            operation,
            source: source.into(),
        }
    }

    pub(crate) fn connection_string(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::ConnectionString {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// True when retrying the same call later may succeed (transport, timeout, broker trouble).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Backend { .. })
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
