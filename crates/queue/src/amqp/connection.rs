//! One AMQP connection per client, opened by us (TCP_NODELAY, optional rustls) and reopened when it
//! dies. Every link gets a session of its own: on RabbitMQ a link error ends the whole session.

use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::{Connection, Session};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Connect, TLS and AMQP open must finish within this.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest wait for a broker's `end` (or `detach`) reply when closing.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Ends a session, waiting a bounded time for the broker's reply. fe2o3-amqp's session engine spins
/// while it waits for the remote `end` with all its links gone, so a broker that never answers must
/// not keep the handle (and the spinning task) alive: dropping the handle lets the engine wind down.
pub(crate) async fn end_session(mut session: SessionHandle<()>) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.end()).await;
}

/// Closes something (a link) with the same bound.
pub(crate) async fn bounded<F: std::future::Future>(close: F) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
}

/// How to reach and authenticate to a broker.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) backend: &'static str,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    /// `None` = SASL ANONYMOUS (Service Bus authenticates through CBS instead).
    pub(crate) plain: Option<(String, Secret)>,
    /// The open frame's hostname (`vhost:/` on RabbitMQ, the namespace on Service Bus).
    pub(crate) hostname: String,
}

/// Opens connections to one endpoint and hands out fresh sessions, reconnecting as needed.
#[derive(Debug)]
pub(crate) struct Connector {
    endpoint: Endpoint,
    current: Mutex<Option<ConnectionHandle<()>>>,
    /// Counts connections opened; CBS tokens are put once per connection.
    generation: std::sync::atomic::AtomicU64,
}

impl Connector {
    pub(crate) fn new(endpoint: Endpoint) -> Arc<Self> {
        Arc::new(Self {
            endpoint,
            current: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.endpoint.backend
    }

    /// Incremented at every new connection; lets callers notice a reconnect.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// True if there is no live connection (never opened, closed, or its transport died).
    pub(crate) async fn is_down(&self) -> bool {
        self.current
            .lock()
            .await
            .as_ref()
            .is_none_or(ConnectionHandle::is_closed)
    }

    /// Makes sure a connection is open (used at connect time to fail fast on bad endpoints).
    pub(crate) async fn ensure_open(&self) -> Result<()> {
        let mut current = self.current.lock().await;
        if current.as_ref().is_none_or(ConnectionHandle::is_closed) {
            *current = Some(self.open().await?);
        }
        Ok(())
    }

    /// A new session on the live connection; reopens the connection once if it is gone.
    pub(crate) async fn session(&self) -> Result<SessionHandle<()>> {
        let mut current = self.current.lock().await;
        for attempt in 0..2 {
            if current.as_ref().is_none_or(ConnectionHandle::is_closed) || attempt > 0 {
                if let Some(mut old) = current.take() {
                    let _ = old.close().await;
                }
                *current = Some(self.open().await?);
            }
            if let Some(conn) = current.as_mut() {
                match tokio::time::timeout(CONNECT_TIMEOUT, Session::begin(conn)).await {
                    Ok(Ok(session)) => return Ok(session),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, backend = self.backend(), "begin session failed")
                    }
                    Err(_) => tracing::warn!(backend = self.backend(), "begin session timed out"),
                }
            }
        }
        Err(Error::Rejected {
            backend: self.backend(),
            operation: "begin session",
            reason: "the broker refused a new session twice".to_owned(),
        })
    }

    pub(crate) async fn close(&self) {
        if let Some(mut conn) = self.current.lock().await.take() {
            let _ = conn.close().await;
        }
    }

    async fn open(&self) -> Result<ConnectionHandle<()>> {
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, self.open_inner())
            .await
            .map_err(|_| Error::Timeout {
                operation: "connect",
                after: CONNECT_TIMEOUT,
            })??;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        tracing::debug!(backend = self.backend(), host = %self.endpoint.host, port = self.endpoint.port, "amqp connection open");
        Ok(conn)
    }

    async fn open_inner(&self) -> Result<ConnectionHandle<()>> {
        let e = &self.endpoint;
        let stream = TcpStream::connect((e.host.as_str(), e.port))
            .await
            .map_err(|err| Error::backend(e.backend, "tcp connect", err))?;
        // fe2o3-amqp never sets it; without it receive+accept runs ~20x slower (Nagle + delayed ACK).
        stream
            .set_nodelay(true)
            .map_err(|err| Error::backend(e.backend, "set TCP_NODELAY", err))?;
        let container = format!("queue-{}", uuid::Uuid::new_v4());
        let sasl = match &e.plain {
            Some((user, password)) if !user.is_empty() => SaslProfile::Plain {
                username: user.clone(),
                password: password.expose().to_owned(),
            },
            _ => SaslProfile::Anonymous,
        };
        let builder = Connection::builder()
            .container_id(container)
            .hostname(e.hostname.as_str())
            .sasl_profile(sasl)
            .max_frame_size(65_536)
            .idle_time_out(60_000u32)
            .scheme("amqp");
        let opened = if e.tls {
            let server = ServerName::try_from(e.host.clone())
                .map_err(|err| Error::backend(e.backend, "tls server name", err))?;
            let tls = tls_connector(e.backend)?
                .connect(server, stream)
                .await
                .map_err(|err| Error::backend(e.backend, "tls handshake", err))?;
            builder.open_with_stream(tls).await
        } else {
            builder.open_with_stream(stream).await
        };
        opened.map_err(|err| open_error(e.backend, err))
    }
}

fn open_error(backend: &'static str, err: fe2o3_amqp::connection::OpenError) -> Error {
    use fe2o3_amqp::connection::OpenError;
    match err {
        OpenError::SaslError {
            code,
            additional_data,
        } => Error::Unauthorized {
            backend,
            reason: format!(
                "SASL outcome {code:?} {}",
                additional_data
                    .map(|d| String::from_utf8_lossy(&d).into_owned())
                    .unwrap_or_default()
            ),
        },
        other => Error::backend(backend, "amqp open", other),
    }
}

fn tls_connector(backend: &'static str) -> Result<TlsConnector> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::backend(backend, "tls configuration", err))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
