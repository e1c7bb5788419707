//! A receiver link run by one task: it owns the link, grants credit for what callers ask, buffers
//! deliveries and settles them, so dispositions flow while another caller waits in `receive`.
//! When the link or its session fails, the task ends; the queue attaches a new one on the next call.

use std::collections::VecDeque;
use std::fmt;

use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::link::receiver::{CreditMode, TerminalDeliveryState};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::connection::{CONNECT_TIMEOUT, Connector, bounded, end_session};
use crate::error::{Error, Result};

pub(crate) type AmqpDelivery = Delivery<Body<Value>>;

enum Command {
    Receive {
        max: usize,
        deadline: Instant,
        reply: oneshot::Sender<Result<Vec<AmqpDelivery>>>,
    },
    Dispose {
        info: DeliveryInfo,
        state: TerminalDeliveryState,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Handle to a running receiver link.
#[derive(Clone)]
pub(crate) struct ReceiverLink {
    /// Distinguishes incarnations: a lock token names the link its delivery came on.
    pub(crate) id: u64,
    backend: &'static str,
    commands: mpsc::Sender<Command>,
}

impl fmt::Debug for ReceiverLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverLink")
            .field("id", &self.id)
            .field("closed", &self.commands.is_closed())
            .finish()
    }
}

impl ReceiverLink {
    /// Attaches a peek-lock receiver (unsettled deliveries, settle mode first) on its own session.
    pub(crate) async fn attach(
        connector: &Connector,
        address: &str,
        queue: &str,
        id: u64,
        max_credit: u32,
    ) -> Result<Self> {
        let backend = connector.backend();
        let mut session = connector.session().await?;
        let name = format!("{queue}-receiver-{}", uuid::Uuid::new_v4());
        let attach = Receiver::builder()
            .name(name)
            .source(address)
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .credit_mode(CreditMode::Manual)
            .attach(&mut session);
        let receiver = match tokio::time::timeout(CONNECT_TIMEOUT, attach).await {
            Ok(Ok(receiver)) => receiver,
            Ok(Err(error)) => {
                end_session(session).await;
                return Err(attach_error(backend, queue, &error));
            }
            Err(_) => {
                return Err(Error::Timeout {
                    operation: "attach receiver",
                    after: CONNECT_TIMEOUT,
                });
            }
        };
        let (commands, rx) = mpsc::channel(256);
        tokio::spawn(run(session, receiver, rx, max_credit, backend));
        Ok(Self {
            id,
            backend,
            commands,
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Up to `max` deliveries, waiting until `deadline` for the first.
    pub(crate) async fn receive(&self, max: usize, deadline: Instant) -> Result<Vec<AmqpDelivery>> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Receive { max, deadline, reply })
            .await
            .map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    pub(crate) async fn dispose(&self, info: DeliveryInfo, state: TerminalDeliveryState) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        // The link that delivered it is gone: so is the lock.
        self.commands
            .send(Command::Dispose { info, state, reply })
            .await
            .map_err(|_| Error::LockLost)?;
        answer.await.map_err(|_| Error::LockLost)?
    }

    fn gone(&self) -> Error {
        Error::Rejected {
            backend: self.backend,
            operation: "receive",
            reason: "the receiver link closed".to_owned(),
        }
    }
}

/// Maps an attach refusal; `amqp:not-found` means the queue does not exist.
pub(crate) fn attach_error(backend: &'static str, queue: &str, error: &dyn fmt::Debug) -> Error {
    let text = format!("{error:?}");
    if text.contains("NotFound") || text.contains("not-found") || text.contains("NOT_FOUND") {
        return Error::QueueNotFound {
            queue: queue.to_owned(),
        };
    }
    if text.contains("UnauthorizedAccess") || text.contains("unauthorized-access") {
        return Error::Unauthorized {
            backend,
            reason: text,
        };
    }
    Error::Rejected {
        backend,
        operation: "attach",
        reason: text,
    }
}

struct Waiter {
    max: usize,
    deadline: Instant,
    reply: oneshot::Sender<Result<Vec<AmqpDelivery>>>,
}

async fn run(
    session: SessionHandle<()>,
    mut receiver: Receiver,
    mut commands: mpsc::Receiver<Command>,
    max_credit: u32,
    backend: &'static str,
) {
    let mut buffer: VecDeque<AmqpDelivery> = VecDeque::new();
    let mut waiting: VecDeque<Waiter> = VecDeque::new();
    let mut outstanding: u32 = 0;
    let failure = loop {
        serve(&mut buffer, &mut waiting);
        let demand = waiting
            .iter()
            .map(|w| w.max)
            .sum::<usize>()
            .saturating_sub(buffer.len());
        let demand = u32::try_from(demand).unwrap_or(u32::MAX).min(max_credit);
        // Credit is only topped up once the last grant is used up: RabbitMQ's AMQP 1.0 plugin
        // overruns a grant that is raised while transfers are in flight (TransferLimitExceeded).
        if outstanding == 0 && demand > 0 {
            if let Err(error) = receiver.set_credit(demand).await {
                break format!("{error:?}");
            }
            outstanding = demand;
        }
        let next_deadline = waiting.iter().map(|w| w.deadline).min();
        tokio::select! {
            command = commands.recv() => match command {
                None => break String::new(),
                Some(Command::Receive { max, deadline, reply }) => waiting.push_back(Waiter { max, deadline, reply }),
                Some(Command::Dispose { info, state, reply }) => {
                    let result = receiver.dispose(info, state).await.map_err(|e| Error::backend(backend, "settle", e));
                    let _ = reply.send(result);
                }
            },
            delivery = receiver.recv::<Body<Value>>() => match delivery {
                Ok(delivery) => {
                    outstanding = outstanding.saturating_sub(1);
                    buffer.push_back(delivery);
                }
                Err(error) => break format!("{error:?}"),
            },
            () = sleep_until(next_deadline) => {
                let now = Instant::now();
                while let Some(position) = waiting.iter().position(|w| w.deadline <= now) {
                    if let Some(w) = waiting.remove(position) {
                        let _ = w.reply.send(Ok(Vec::new()));
                    }
                }
            }
        }
    };
    if !failure.is_empty() {
        tracing::warn!(backend, error = %failure, "receiver link failed; it is reattached on the next call");
    }
    for w in waiting {
        let _ = w.reply.send(Err(Error::Rejected {
            backend,
            operation: "receive",
            reason: format!("the receiver link failed: {failure}"),
        }));
    }
    // Unsettled deliveries go back to the queue when the link closes.
    bounded(receiver.close()).await;
    end_session(session).await;
}

fn serve(buffer: &mut VecDeque<AmqpDelivery>, waiting: &mut VecDeque<Waiter>) {
    while !buffer.is_empty() {
        let Some(w) = waiting.pop_front() else { return };
        let take = w.max.min(buffer.len());
        let batch: Vec<_> = buffer.drain(..take).collect();
        if let Err(Ok(batch)) = w.reply.send(Ok(batch)) {
            // That caller gave up: keep its deliveries for the next one, in order.
            for d in batch.into_iter().rev() {
                buffer.push_front(d);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
