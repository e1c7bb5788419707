//! AMQP 1.0 backends. The link machinery (connection, sender, receiver task, conversions) is shared;
//! a [`Dialect`] says how a broker spells queues, outcomes and locks: [`rabbitmq`] here, Service Bus
//! in `crate::servicebus`.

pub(crate) mod connection;
pub(crate) mod convert;
pub(crate) mod queue;
mod rabbitmq;
pub(crate) mod receiver;
pub(crate) mod sender;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::link::receiver::TerminalDeliveryState;
use fe2o3_amqp::types::messaging::Accepted;

pub(crate) use self::connection::Connector;
pub(crate) use self::rabbitmq::AmqpBackend;
use self::receiver::AmqpDelivery;
use crate::{Error, PeekedMessage, Result};

/// What differs between AMQP 1.0 brokers.
#[async_trait::async_trait]
pub(crate) trait Dialect: Send + Sync + fmt::Debug + 'static {
    fn backend(&self) -> &'static str;
    /// The link address of a queue (or of `<queue>/$deadletterqueue`).
    fn address(&self, queue: &str) -> String;
    fn max_message_size(&self) -> usize;
    /// Most deliveries a receiver link holds at once.
    fn credit(&self) -> u32;
    /// Runs before links to `queue` are attached (Service Bus: CBS put-token for the entity).
    async fn authorize(&self, _connector: &Arc<Connector>, _queue: &str) -> Result<()> {
        Ok(())
    }
    fn complete_state(&self) -> TerminalDeliveryState {
        TerminalDeliveryState::Accepted(Accepted {})
    }
    fn abandon_state(&self) -> TerminalDeliveryState;
    fn dead_letter_state(&self, reason: &str, description: &str) -> TerminalDeliveryState;
    /// True if `header.delivery-count` counts deliveries (Service Bus); false where it stays 0 and only
    /// `first-acquirer` tells a redelivery (RabbitMQ).
    fn counts_deliveries(&self) -> bool;
    /// The broker's lock token and lock end for a delivery, where it has locks.
    fn lock_of(&self, _delivery: &AmqpDelivery) -> (Option<uuid::Uuid>, Option<SystemTime>) {
        (None, None)
    }
    async fn renew_lock(
        &self,
        connector: &Arc<Connector>,
        queue: &str,
        lock: Option<uuid::Uuid>,
    ) -> Result<SystemTime>;
    async fn peek(
        &self,
        _connector: &Arc<Connector>,
        _queue: &str,
        _max: usize,
    ) -> Result<Vec<PeekedMessage>> {
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "peek",
            reason: "the broker has no non-destructive browse over AMQP 1.0",
        })
    }
    async fn count(&self, _connector: &Arc<Connector>, _queue: &str) -> Result<u64> {
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "len",
            reason: "AMQP 1.0 has no message count; use the broker's management tools",
        })
    }
}
