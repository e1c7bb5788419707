//! The MQTT device endpoint: listeners (TLS on 8883, optional plain TCP on loopback; WebSockets come
//! through the HTTPS listener), a connection limit, and one task per connection.

mod live;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use live::{Eviction, LiveConnections, Registration};
pub use session::serve as serve_connection;

use crate::state::Hub;

/// Accepts connections on `listener` until shutdown; `tls` wraps each in TLS.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    transport: &'static str,
    hub: Arc<Hub>,
) {
    let slots = Arc::new(Semaphore::new(hub.config.limits.max_connections));
    let handshake_timeout = Duration::from_secs(hub.config.limits.connect_timeout_secs.max(1));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = hub.shutdown.wait() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(%error, transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, transport, "connection limit reached; connection dropped");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let hub = Arc::clone(&hub);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => session::serve(stream, transport, hub).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => session::serve(stream, transport, hub).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}
