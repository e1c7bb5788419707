//! One queue on an AMQP 1.0 broker: a lazily (re)attached sender, a receiver task, and settlement by
//! lock token. Broker differences (addresses, outcomes, locks, CBS) come from the [`Dialect`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fe2o3_amqp::link::delivery::DeliveryInfo;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Dialect;
use super::connection::Connector;
use super::convert::{annotation_long, annotation_time, from_amqp};
use super::receiver::{AmqpDelivery, ReceiverLink};
use super::sender::SenderSlot;
use crate::message::TokenKind;
use crate::{
    Error, LockToken, Message, PeekedMessage, Queue, ReceivedMessage, Result, check_sizes, next_issuer_id,
};

#[derive(Debug)]
pub(crate) struct AmqpQueue<D: Dialect> {
    dialect: Arc<D>,
    connector: Arc<Connector>,
    name: String,
    address: String,
    issuer: u64,
    sender: SenderSlot,
    receiver: Mutex<Option<ReceiverLink>>,
    next_link: AtomicU64,
    /// Lock ends of deliveries not yet settled, on brokers with locks: settling after the end is
    /// refused here, since a settle-mode-first disposition gets no answer from the broker.
    locks: std::sync::Mutex<HashMap<uuid::Uuid, SystemTime>>,
}

impl<D: Dialect> AmqpQueue<D> {
    /// Opens the queue, failing with [`Error::QueueNotFound`] if the broker does not have it.
    pub(crate) async fn open(dialect: Arc<D>, connector: Arc<Connector>, name: &str) -> Result<Arc<Self>> {
        let address = dialect.address(name);
        let queue = Arc::new(Self {
            sender: SenderSlot::new(address.clone(), name.to_owned()),
            dialect,
            connector,
            name: name.to_owned(),
            address,
            issuer: next_issuer_id(),
            receiver: Mutex::new(None),
            next_link: AtomicU64::new(1),
            locks: std::sync::Mutex::new(HashMap::new()),
        });
        // Attaching a receiver proves the queue exists (a sender would not: RabbitMQ accepts and drops
        // transfers to a missing queue). The probe link is closed again: an idle receiver link would
        // make some brokers set a message aside for it.
        queue.dialect.authorize(&queue.connector, &queue.name).await?;
        let probe = ReceiverLink::attach(&queue.connector, &queue.address, &queue.name, 0, 0).await?;
        drop(probe);
        Ok(queue)
    }

    async fn receiver_link(&self) -> Result<ReceiverLink> {
        let mut current = self.receiver.lock().await;
        if let Some(link) = current.as_ref().filter(|l| !l.is_closed()) {
            return Ok(link.clone());
        }
        self.dialect.authorize(&self.connector, &self.name).await?;
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let link = ReceiverLink::attach(
            &self.connector,
            &self.address,
            &self.name,
            id,
            self.dialect.credit(),
        )
        .await?;
        *current = Some(link.clone());
        Ok(link)
    }

    /// The link a token's delivery came on, if it is still the live one.
    async fn link_for(&self, token: &LockToken) -> Result<(ReceiverLink, DeliveryInfo, Option<uuid::Uuid>)> {
        let TokenKind::Amqp { link, info, lock } = &token.kind else {
            return Err(Error::ForeignLockToken {
                queue: self.name.clone(),
            });
        };
        if token.issuer != self.issuer {
            return Err(Error::ForeignLockToken {
                queue: self.name.clone(),
            });
        }
        match self.receiver.lock().await.as_ref() {
            Some(current) if current.id == *link && !current.is_closed() => {
                Ok((current.clone(), info.clone(), *lock))
            }
            _ => Err(Error::LockLost),
        }
    }

    fn received(&self, link: u64, delivery: AmqpDelivery) -> ReceivedMessage {
        let (lock, locked_until) = self.dialect.lock_of(&delivery);
        let annotations = delivery.message().message_annotations.as_ref();
        let enqueued_time = annotation_time(annotations, "x-opt-enqueued-time");
        let sequence_number = annotation_long(annotations, "x-opt-sequence-number");
        let (message, facts) = from_amqp(delivery.message());
        let info = DeliveryInfo::from(delivery);
        ReceivedMessage {
            message,
            enqueued_time,
            sequence_number,
            delivery_count: facts.failed_deliveries.saturating_add(1),
            redelivered: facts.failed_deliveries > 0
                || (facts.reacquired && !self.dialect.counts_deliveries()),
            locked_until,
            lock_token: LockToken {
                issuer: self.issuer,
                kind: TokenKind::Amqp { link, info, lock },
            },
        }
    }

    async fn settle(
        &self,
        token: &LockToken,
        state: fe2o3_amqp::link::receiver::TerminalDeliveryState,
    ) -> Result<()> {
        let (link, info, lock) = self.link_for(token).await?;
        if let Some(lock) = lock {
            let until = self.with_locks(|locks| locks.remove(&lock));
            if until.is_some_and(|until| until <= SystemTime::now()) {
                return Err(Error::LockLost);
            }
        }
        link.dispose(info, state).await
    }

    fn with_locks<T>(&self, f: impl FnOnce(&mut HashMap<uuid::Uuid, SystemTime>) -> T) -> T {
        match self.locks.lock() {
            Ok(mut locks) => f(&mut locks),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Converts deliveries, leaving out those whose lock ran out while they sat prefetched: the broker
    /// delivers them again, and handing them out would only make their settlement fail.
    async fn fresh(&self, link: &ReceiverLink, deliveries: Vec<AmqpDelivery>) -> Vec<ReceivedMessage> {
        let now = SystemTime::now();
        let mut fresh = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let message = self.received(link.id, delivery);
            match (message.locked_until, &message.lock_token.kind) {
                (Some(until), TokenKind::Amqp { info, .. }) if until <= now => {
                    tracing::debug!(queue = %self.name, "dropping a prefetched delivery whose lock expired");
                    // Clears it from the link's unsettled map; the broker already took the lock back.
                    let _ = link.dispose(info.clone(), self.dialect.abandon_state()).await;
                }
                _ => fresh.push(message),
            }
        }
        fresh
    }

    /// Remembers lock ends of new deliveries and forgets long-expired ones (never settled).
    fn track_locks(&self, received: &[ReceivedMessage]) {
        let now = SystemTime::now();
        self.with_locks(|locks| {
            locks.retain(|_, until| {
                now.duration_since(*until)
                    .map_or(true, |late| late < Duration::from_secs(600))
            });
            for m in received {
                if let (Some(lock), Some(until)) = (m.lock_token.lock_uuid(), m.locked_until) {
                    locks.insert(lock, until);
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Queue for AmqpQueue<D> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: Vec<Message>) -> Result<()> {
        check_sizes(&messages, self.dialect.max_message_size())?;
        if messages.is_empty() {
            return Ok(());
        }
        self.dialect.authorize(&self.connector, &self.name).await?;
        self.sender.send(&self.connector, &messages).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        let mut attempt = 0;
        loop {
            let link = self.receiver_link().await?;
            match link.receive(max, deadline).await {
                Ok(deliveries) => {
                    let received = self.fresh(&link, deliveries).await;
                    if received.is_empty() && Instant::now() < deadline {
                        continue; // all had waited out their locks in the prefetch buffer
                    }
                    self.track_locks(&received);
                    return Ok(received);
                }
                // The link died under us: one fresh link, if there is time left.
                Err(error) if attempt == 0 && Instant::now() < deadline => {
                    tracing::debug!(%error, queue = %self.name, "receive failed; reattaching");
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn complete(&self, token: &LockToken) -> Result<()> {
        self.settle(token, self.dialect.complete_state()).await
    }

    async fn abandon(&self, token: &LockToken) -> Result<()> {
        self.settle(token, self.dialect.abandon_state()).await
    }

    async fn dead_letter(&self, token: &LockToken, reason: &str, description: &str) -> Result<()> {
        self.settle(token, self.dialect.dead_letter_state(reason, description))
            .await
    }

    async fn renew_lock(&self, token: &LockToken) -> Result<SystemTime> {
        let (_, _, lock) = self.link_for(token).await?;
        let until = self.dialect.renew_lock(&self.connector, &self.name, lock).await?;
        if let Some(lock) = lock {
            self.with_locks(|locks| locks.insert(lock, until));
        }
        Ok(until)
    }

    async fn peek(&self, max: usize) -> Result<Vec<PeekedMessage>> {
        self.dialect.peek(&self.connector, &self.name, max).await
    }

    async fn len(&self) -> Result<u64> {
        self.dialect.count(&self.connector, &self.name).await
    }

    async fn dead_letter_len(&self) -> Result<u64> {
        let base = self
            .name
            .strip_suffix(crate::DEAD_LETTER_SUFFIX)
            .unwrap_or(&self.name);
        self.dialect
            .count(&self.connector, &crate::dead_letter_queue_name(base))
            .await
    }
}
