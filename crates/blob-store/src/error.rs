//! [`BlobStoreError`]: why a container could not be opened. It never holds a secret: every message
//! is built once, with the account key scrubbed out, and underlying errors are not kept.

use std::error::Error as StdError;
use std::io;

use crate::connection::ConnectionStringError;

/// Why a blob container could not be opened. Never holds a secret.
///
/// Every variant is a configuration or environment problem found without talking to the store;
/// failures of the store's own operations are `object_store::Error`s, classified by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobStoreError {
    /// The connection string was refused.
    #[error(transparent)]
    Connection(#[from] ConnectionStringError),
    /// The container name breaks Azure's rules (see [`crate::check_container_name`]).
    #[error("container name `{container}` is invalid: {reason}")]
    InvalidContainer {
        /// The name.
        container: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A relative local directory could not be made absolute (the working directory is unusable).
    #[error("resolving the storage directory: {message}")]
    LocalDirectory {
        /// The I/O error's kind.
        kind: io::ErrorKind,
        /// The I/O error's text.
        message: String,
    },
    /// The local container directory is not a path `object_store` can address.
    #[error("the storage directory is not usable: {0}")]
    LocalPath(String),
    /// The TLS client configuration could not be built.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("HTTP client setup: {0}")]
    HttpClient(String),
    /// `object_store` refused the Azure settings: the whole message (`configuring Azure Blob
    /// storage: …`), on one line, at most 600 characters, with the account key scrubbed out.
    #[error("{0}")]
    Azure(String),
}

impl BlobStoreError {
    /// An `object_store` error during `operation`, described on one line without `secret`.
    pub(crate) fn azure(operation: &str, error: &object_store::Error, secret: &str) -> Self {
        BlobStoreError::Azure(tidy(&scrub(&format!("{operation}: {}", chain(error)), secret)))
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

/// The longest message kept from an underlying error.
const MAX_MESSAGE_CHARS: usize = 600;

/// One line of at most [`MAX_MESSAGE_CHARS`] characters: error responses carry multi-line XML.
fn tidy(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

/// `text` with every occurrence of `secret` replaced.
fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_one_scrubbed_line() {
        let error = object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: "bad key c2VjcmV0\n  <Error>\n</Error>".into(),
        };
        let error = BlobStoreError::azure("configuring Azure Blob storage", &error, "c2VjcmV0");
        let text = error.to_string();
        assert!(text.starts_with("configuring Azure Blob storage: "), "{text}");
        assert!(
            !text.contains("c2VjcmV0") && text.contains("<redacted>"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");

        let long = object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: "x".repeat(2000).into(),
        };
        let text = BlobStoreError::azure("op", &long, "").to_string();
        assert_eq!(text.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(text.ends_with('…'));
    }
}
