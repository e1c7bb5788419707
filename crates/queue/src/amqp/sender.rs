//! A sender link on its own session, attached on first use and replaced after a failure. Transfers
//! of a batch are pipelined; the call returns when the broker has settled every one.

use std::time::Duration;

use fe2o3_amqp::Sender;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::SenderSettleMode;
use fe2o3_amqp::types::messaging::Outcome;
use tokio::sync::Mutex;

use super::connection::{CONNECT_TIMEOUT, Connector, end_session};
use super::convert::to_amqp;
use super::receiver::attach_error;
use crate::error::{Error, Result};
use crate::message::Message;

/// How long the broker may take to settle a transfer.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Link {
    session: SessionHandle<()>,
    sender: Sender,
    /// The connection it was attached on.
    generation: u64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderLink")
    }
}

/// The (re)attachable sender of one queue.
#[derive(Debug)]
pub(crate) struct SenderSlot {
    address: String,
    queue: String,
    current: Mutex<Option<Link>>,
}

enum Failure {
    /// The link or connection broke: reattach and try again.
    Link(String),
    /// The broker answered: final.
    Final(Error),
}

impl SenderSlot {
    pub(crate) fn new(address: String, queue: String) -> Self {
        Self {
            address,
            queue,
            current: Mutex::new(None),
        }
    }

    /// Sends all messages. After a link failure the batch is sent again once on a new link, so a
    /// message may arrive twice (delivery is at least once).
    pub(crate) async fn send(&self, connector: &Connector, messages: &[Message]) -> Result<()> {
        let backend = connector.backend();
        let mut last = String::new();
        for _attempt in 0..2 {
            match self.try_send(connector, messages).await {
                Ok(()) => return Ok(()),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Link(reason)) => {
                    tracing::warn!(backend, error = %reason, "sender link failed; reattaching");
                    if let Some(link) = self.current.lock().await.take() {
                        end_session(link.session).await;
                    }
                    last = reason;
                }
            }
        }
        Err(Error::Rejected {
            backend,
            operation: "send",
            reason: last,
        })
    }

    async fn try_send(&self, connector: &Connector, messages: &[Message]) -> Result<(), Failure> {
        let backend = connector.backend();
        let mut pending = Vec::with_capacity(messages.len());
        let generation;
        {
            let mut current = self.current.lock().await;
            // A link on a dead or replaced connection would take transfers that never settle.
            let stale = match current.as_ref() {
                Some(link) => link.generation != connector.generation() || connector.is_down().await,
                None => false,
            };
            if stale && let Some(old) = current.take() {
                end_session(old.session).await;
            }
            if current.is_none() {
                *current = Some(self.attach(connector).await.map_err(|e| match e {
                    Error::Backend { .. } | Error::Timeout { .. } => Failure::Link(e.to_string()),
                    other => Failure::Final(other),
                })?);
            }
            let Some(link) = current.as_mut() else {
                return Err(Failure::Link("no link".to_owned()));
            };
            generation = link.generation;
            for m in messages {
                match link.sender.send_batchable(to_amqp(m)).await {
                    Ok(outcome) => pending.push(outcome),
                    Err(error) => return Err(Failure::Link(format!("{error:?}"))),
                }
            }
        }
        for outcome in pending {
            match self.outcome(connector, generation, outcome).await {
                Err(reason) => return Err(Failure::Link(reason)),
                Ok(Err(error)) => return Err(Failure::Link(format!("{error:?}"))),
                Ok(Ok(Outcome::Accepted(_))) => {}
                Ok(Ok(Outcome::Rejected(rejected))) => {
                    let reason = rejected
                        .error
                        .map(|e| format!("{:?}: {}", e.condition, e.description.unwrap_or_default()))
                        .unwrap_or_else(|| "rejected".to_owned());
                    return Err(Failure::Final(Error::Rejected {
                        backend,
                        operation: "send",
                        reason,
                    }));
                }
                Ok(Ok(other)) => {
                    return Err(Failure::Final(Error::Rejected {
                        backend,
                        operation: "send",
                        reason: format!("the broker did not take the message: {other:?}"),
                    }));
                }
            }
        }
        Ok(())
    }

    /// Waits for one transfer's outcome. A transfer taken just as the connection died may never get
    /// one, so the connection is checked while waiting.
    async fn outcome<F, T>(&self, connector: &Connector, generation: u64, outcome: F) -> Result<T, String>
    where
        F: std::future::Future<Output = T>,
    {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        tokio::pin!(outcome);
        loop {
            match tokio::time::timeout(Duration::from_millis(250), &mut outcome).await {
                Ok(result) => return Ok(result),
                Err(_) if connector.generation() != generation || connector.is_down().await => {
                    return Err("the connection closed before the broker settled the transfer".to_owned());
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("no outcome within {SETTLE_TIMEOUT:?}"));
                }
                Err(_) => {}
            }
        }
    }

    async fn attach(&self, connector: &Connector) -> Result<Link> {
        let backend = connector.backend();
        let mut session = connector.session().await?;
        let generation = connector.generation();
        let attach = Sender::builder()
            .name(format!("{}-sender-{}", self.queue, uuid::Uuid::new_v4()))
            .target(self.address.as_str())
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .attach(&mut session);
        match tokio::time::timeout(CONNECT_TIMEOUT, attach).await {
            Ok(Ok(sender)) => Ok(Link {
                session,
                sender,
                generation,
            }),
            Ok(Err(error)) => {
                end_session(session).await;
                Err(attach_error(backend, &self.queue, &error))
            }
            Err(_) => Err(Error::Timeout {
                operation: "attach sender",
                after: CONNECT_TIMEOUT,
            }),
        }
    }
}
