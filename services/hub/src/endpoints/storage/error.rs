//! [`SinkError`]: what went wrong with a storage endpoint, as a bounded [`SinkErrorKind`] for
//! metrics, health and retry decisions, plus a message for people that never contains the key.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use blob_store::BlobStoreError;
use object_store::client::{HttpError, HttpErrorKind};

use super::connection::ConnectionStringError;
use super::encode::EncodeError;
use super::naming::FileNameFormatError;

/// The class of a storage failure. `as_str` values are stable metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkErrorKind {
    /// The store did not answer: connection refused or reset, DNS, timeout. Retry with backoff.
    Unreachable,
    /// The store refused the credentials or the operation (HTTP 401/403, local permission denied).
    /// Retrying will not help until the configuration or the account changes.
    Unauthorized,
    /// The container (or local directory) does not exist and could not be created.
    NotFound,
    /// Bad configuration or input: connection string, `fileNameFormat`, hub name, a message the
    /// hub did not stamp. Retrying will not help.
    Invalid,
    /// Every candidate name (the name and its suffixes) is taken by other blobs.
    Conflict,
    /// The store answered with an error it should not have (HTTP 5xx, an unexpected status).
    Service,
    /// A local file system error other than the above (disk full, I/O error).
    Io,
}

impl SinkErrorKind {
    /// A stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkErrorKind::Unreachable => "unreachable",
            SinkErrorKind::Unauthorized => "unauthorized",
            SinkErrorKind::NotFound => "not_found",
            SinkErrorKind::Invalid => "invalid",
            SinkErrorKind::Conflict => "conflict",
            SinkErrorKind::Service => "service",
            SinkErrorKind::Io => "io",
        }
    }

    /// Whether the same call may succeed later without a configuration change.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            SinkErrorKind::Unreachable | SinkErrorKind::Service | SinkErrorKind::Io | SinkErrorKind::NotFound
        )
    }
}

impl fmt::Display for SinkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage endpoint failure: a kind and a message. The message is built once, with the account
/// key scrubbed out, and the underlying error is not kept (its text could hold request details).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    kind: SinkErrorKind,
    message: String,
}

impl SinkError {
    /// A new error.
    pub fn new(kind: SinkErrorKind, message: impl Into<String>) -> Self {
        SinkError {
            kind,
            message: message.into(),
        }
    }

    /// The class, for metrics, health and retries.
    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }

    /// The message alone.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An object store error during `operation`, classified and with `secret` scrubbed out.
    pub(crate) fn from_store(operation: &str, error: &object_store::Error, secret: Option<&str>) -> Self {
        let kind = classify(error);
        let message = tidy(&scrub(&format!("{operation}: {}", chain(error)), secret));
        SinkError { kind, message }
    }

    /// A local I/O error during `operation`.
    pub(crate) fn from_io(operation: &str, error: &io::Error) -> Self {
        SinkError {
            kind: io_kind(error.kind()),
            message: format!("{operation}: {error}"),
        }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl StdError for SinkError {}

impl From<ConnectionStringError> for SinkError {
    fn from(error: ConnectionStringError) -> Self {
        SinkError::new(SinkErrorKind::Invalid, error.to_string())
    }
}

impl From<BlobStoreError> for SinkError {
    fn from(error: BlobStoreError) -> Self {
        let kind = match &error {
            BlobStoreError::LocalDirectory { kind, .. } => io_kind(*kind),
            // `object_store`'s builder errors carry no transport or I/O cause, so classifying them
            // as a store error (`from_store`) has always given `Service`.
            BlobStoreError::Azure(_) => SinkErrorKind::Service,
            _ => SinkErrorKind::Invalid,
        };
        let message = match error {
            // Named as the endpoint's setting, as `StorageSinkConfig::new` does.
            BlobStoreError::InvalidContainer { container, reason } => {
                format!("containerName `{container}` is invalid: {reason}")
            }
            other => other.to_string(),
        };
        SinkError::new(kind, message)
    }
}

impl From<FileNameFormatError> for SinkError {
    fn from(error: FileNameFormatError) -> Self {
        SinkError::new(SinkErrorKind::Invalid, error.to_string())
    }
}

impl From<EncodeError> for SinkError {
    fn from(error: EncodeError) -> Self {
        SinkError::new(SinkErrorKind::Invalid, error.to_string())
    }
}

fn classify(error: &object_store::Error) -> SinkErrorKind {
    use object_store::Error as E;
    match error {
        E::NotFound { .. } => SinkErrorKind::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } => SinkErrorKind::Conflict,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => SinkErrorKind::Unauthorized,
        E::InvalidPath { .. } | E::NotSupported { .. } | E::NotImplemented { .. } => SinkErrorKind::Invalid,
        _ => classify_sources(error),
    }
}

/// Looks through the source chain for the transport or I/O error underneath.
fn classify_sources(error: &(dyn StdError + 'static)) -> SinkErrorKind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(http) = error.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted => SinkErrorKind::Unreachable,
                _ => SinkErrorKind::Service,
            };
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return io_kind(io.kind());
        }
        current = error.source();
    }
    SinkErrorKind::Service
}

fn io_kind(kind: io::ErrorKind) -> SinkErrorKind {
    use io::ErrorKind as K;
    match kind {
        K::NotFound => SinkErrorKind::NotFound,
        K::PermissionDenied | K::ReadOnlyFilesystem => SinkErrorKind::Unauthorized,
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::TimedOut
        | K::HostUnreachable
        | K::NetworkUnreachable => SinkErrorKind::Unreachable,
        _ => SinkErrorKind::Io,
    }
}

/// `error: source: source…`, each text once (wrappers often repeat their source's text).
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let part = source.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = source.source();
    }
    text
}

/// One line of at most [`MAX_MESSAGE_CHARS`] characters: error responses carry multi-line XML.
fn tidy(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

/// The longest message kept from an underlying error.
const MAX_MESSAGE_CHARS: usize = 600;

/// `text` with every occurrence of `secret` replaced.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "<redacted>"),
        _ => text.to_owned(),
    }
}
