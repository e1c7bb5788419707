//! The HTTP client for Azure Blob Storage: rustls with the ring provider (no aws-lc) and the
//! webpki roots, and the [`Connector`] that hands it to `object_store`.

use std::sync::Arc;
use std::time::Duration;

use object_store::ClientOptions;
use object_store::client::{HttpClient, HttpConnector};

use crate::error::BlobStoreError;

/// How long [`http_client`] waits for a TCP/TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request of [`http_client`] may take: a blob can be hundreds of megabytes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A new HTTP client for Azure: rustls with the ring provider and the webpki roots; 5 s to
/// connect, 300 s per request (a blob can be hundreds of megabytes). Clone it to share its
/// connection pool.
///
/// ```
/// let client = blob_store::http_client()?;
/// # let _ = client;
/// # Ok::<(), blob_store::BlobStoreError>(())
/// ```
pub fn http_client() -> Result<reqwest::Client, BlobStoreError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| BlobStoreError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| BlobStoreError::HttpClient(error.to_string()))
}

/// Hands `object_store` a ready [`reqwest::Client`] instead of letting it build one (which would
/// need its default TLS provider): `builder.with_http_connector(Connector::new(client))`.
/// [`crate::open_with`] does this for you.
#[derive(Debug, Clone)]
pub struct Connector(reqwest::Client);

impl Connector {
    /// A connector that always hands out `client` (a clone shares its connection pool).
    pub fn new(client: reqwest::Client) -> Self {
        Connector(client)
    }
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}
