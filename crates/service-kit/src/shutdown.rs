//! One shutdown signal for the whole service: fired by SIGTERM/SIGINT or by the program, observed by
//! the HTTP servers and every worker loop.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A cloneable shutdown token.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A token that has not fired.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// A shutdown observing `token` (for example a child token, to stop one task on its own).
    pub fn from_token(token: CancellationToken) -> Self {
        Shutdown { token }
    }

    /// Fires the token (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether it has fired.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the token fires.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// An owned future completing when the token fires (for APIs that want `'static`).
    pub fn wait_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    /// The underlying token, for `tokio::select!` and child tokens.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Fires this token on SIGTERM or SIGINT. Must be called inside a tokio runtime.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                () = shutdown.wait() => return,
            };
            tracing::info!(signal = name, "shutting down");
            shutdown.trigger();
        });
        Ok(())
    }
}

/// How long a service may take to drain after the shutdown signal. Keep it below the pod's
/// `terminationGracePeriodSeconds` (30 s by default).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(20);
