//! Claims-based security: put a SAS token for an entity on `$cbs` before attaching links to it, on
//! every new connection, and again before the token expires.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp_cbs::client::CbsClient;
use fe2o3_amqp_cbs::token::CbsToken;

use super::sas::sas_token;
use crate::amqp::Connector;
use crate::amqp::connection::{CONNECT_TIMEOUT, bounded, end_session};
use crate::amqp::convert::system_time_to_timestamp;
use crate::error::{Error, Result};
use crate::{ServiceBusAuth, ServiceBusConfig};

const BACKEND: &str = "servicebus";
const TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// Which (connection, audience) pairs hold a valid token, and which audiences have a renewer.
#[derive(Debug)]
pub(crate) struct Cbs {
    host: String,
    auth: ServiceBusAuth,
    lifetime: Duration,
    state: std::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    authorized: HashSet<(u64, String)>,
    renewing: HashSet<String>,
}

impl Cbs {
    pub(crate) fn new(config: &ServiceBusConfig) -> Arc<Self> {
        Arc::new(Self {
            host: config.host.clone(),
            auth: config.auth.clone(),
            lifetime: config.token_lifetime,
            state: std::sync::Mutex::new(State::default()),
        })
    }

    /// The token audience of a queue: its base entity (sub-queues and `$management` are covered).
    pub(crate) fn audience(&self, queue: &str) -> String {
        let entity = queue.split('/').next().unwrap_or(queue);
        format!("sb://{}/{entity}", self.host)
    }

    /// Puts a token for `queue` on the current connection unless one is already there.
    pub(crate) async fn authorize(self: &Arc<Self>, connector: &Arc<Connector>, queue: &str) -> Result<()> {
        let audience = self.audience(queue);
        let generation = connector.generation();
        if self.with_state(|s| s.authorized.contains(&(generation, audience.clone()))) {
            return Ok(());
        }
        connector.ensure_open().await?;
        let generation = connector.generation();
        self.put(connector, &audience).await?;
        let start_renewer = self.with_state(|s| {
            s.authorized.insert((generation, audience.clone()));
            s.renewing.insert(audience.clone())
        });
        if start_renewer && matches!(self.auth, ServiceBusAuth::Key { .. }) {
            tokio::spawn(renew(Arc::downgrade(self), Arc::downgrade(connector), audience));
        }
        Ok(())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    async fn put(&self, connector: &Connector, audience: &str) -> Result<()> {
        let expiry = SystemTime::now() + self.lifetime;
        let token = match &self.auth {
            ServiceBusAuth::Key { key_name, key } => {
                let se = expiry.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                sas_token(audience, key_name, key.expose(), se)
            }
            ServiceBusAuth::Token(token) => token.expose().to_owned(),
        };
        let mut session = connector.session().await?;
        let attempt = async {
            let mut cbs = CbsClient::attach(&mut session)
                .await
                .map_err(|e| Error::backend(BACKEND, "attach $cbs", e))?;
            let put = cbs
                .put_token(
                    audience.to_owned(),
                    CbsToken::new(token, TOKEN_TYPE, system_time_to_timestamp(expiry)),
                )
                .await;
            bounded(cbs.close()).await;
            put.map_err(|e| Error::Unauthorized {
                backend: BACKEND,
                reason: format!("CBS put-token refused: {e}"),
            })
        };
        let result = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .unwrap_or(Err(Error::Timeout {
                operation: "cbs put-token",
                after: CONNECT_TIMEOUT,
            }));
        end_session(session).await;
        if result.is_ok() {
            tracing::debug!(audience, "cbs token put");
        }
        result
    }
}

/// Puts the token again after 4/5 of its lifetime, for as long as the client lives.
async fn renew(cbs: Weak<Cbs>, connector: Weak<Connector>, audience: String) {
    loop {
        let Some(lifetime) = cbs.upgrade().map(|c| c.lifetime) else {
            return;
        };
        tokio::time::sleep(lifetime.mul_f64(0.8)).await;
        let (Some(cbs), Some(connector)) = (cbs.upgrade(), connector.upgrade()) else {
            return;
        };
        let generation = connector.generation();
        match cbs.put(&connector, &audience).await {
            Ok(()) => {
                cbs.with_state(|s| s.authorized.insert((generation, audience.clone())));
            }
            Err(error) => {
                // Links keep working until the old token expires; the next attach re-authorizes.
                tracing::warn!(%error, audience, "cbs token renewal failed");
                cbs.with_state(|s| s.authorized.retain(|(_, a)| a != &audience));
            }
        }
    }
}
