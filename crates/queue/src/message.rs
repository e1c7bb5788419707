//! Messages: what a sender builds, what a receiver gets (with its lock), and the lock token.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// Application property that Service Bus (and the SQLite backend) set on a dead-lettered message.
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";
/// Application property with the dead-letter description.
pub const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";
/// The reason given when a message is dead-lettered for too many deliveries (as Service Bus does).
pub const MAX_DELIVERY_COUNT_EXCEEDED: &str = "MaxDeliveryCountExceeded";

/// A message to send, and the content of a received one.
///
/// Application properties are strings, as IoT Hub routes them; a non-string AMQP property received
/// from another client is turned into its text form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The payload, as bytes.
    pub body: Vec<u8>,
    /// `message-id`; consumers use it as the idempotency key.
    pub message_id: Option<String>,
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `content-type`, e.g. `application/json`.
    pub content_type: Option<String>,
    /// `content-encoding`, e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Application properties.
    pub application_properties: BTreeMap<String, String>,
}

impl Message {
    /// A message with this body and nothing else.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// Sets the message id.
    #[must_use]
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the content type.
    #[must_use]
    pub fn with_content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    /// Sets the content encoding.
    #[must_use]
    pub fn with_content_encoding(mut self, value: impl Into<String>) -> Self {
        self.content_encoding = Some(value.into());
        self
    }

    /// Adds an application property.
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.application_properties.insert(key.into(), value.into());
        self
    }

    /// The size counted against a queue's message size limit: body, ids and properties.
    pub fn size(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.body.len()
            + text(&self.message_id)
            + text(&self.correlation_id)
            + text(&self.content_type)
            + text(&self.content_encoding)
            + self
                .application_properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// The dead-letter reason, on a message received from a dead-letter queue.
    pub fn dead_letter_reason(&self) -> Option<&str> {
        self.application_properties
            .get(DEAD_LETTER_REASON)
            .map(String::as_str)
    }

    /// The dead-letter description, on a message received from a dead-letter queue.
    pub fn dead_letter_description(&self) -> Option<&str> {
        self.application_properties
            .get(DEAD_LETTER_DESCRIPTION)
            .map(String::as_str)
    }
}

/// A message taken with peek-lock: settle it with its [`LockToken`] before `locked_until`.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The content.
    pub message: Message,
    /// When the queue accepted the message, where the backend records it.
    pub enqueued_time: Option<SystemTime>,
    /// The queue's sequence number for the message, where the backend has one.
    pub sequence_number: Option<i64>,
    /// How many times the message has been delivered, this delivery included (1 on the first).
    /// A broker that keeps no count (RabbitMQ) reports 1 and sets `redelivered` instead.
    pub delivery_count: u32,
    /// True if the message was delivered before (count > 1, or the broker's first-acquirer flag).
    pub redelivered: bool,
    /// Until when the lock holds, on brokers with lock expiry; `None` where the lock lasts until
    /// the link closes (RabbitMQ).
    pub locked_until: Option<SystemTime>,
    /// The token to complete, abandon, dead-letter or renew this delivery with.
    pub lock_token: LockToken,
}

/// A message looked at without locking it.
#[derive(Debug, Clone)]
pub struct PeekedMessage {
    /// The content.
    pub message: Message,
    /// When the queue accepted the message.
    pub enqueued_time: Option<SystemTime>,
    /// The queue's sequence number.
    pub sequence_number: Option<i64>,
    /// Deliveries so far.
    pub delivery_count: u32,
    /// Locked by a receiver right now, and until when.
    pub locked_until: Option<SystemTime>,
}

/// Identifies one locked delivery. Only the queue handle that issued it can settle it.
#[derive(Clone)]
pub struct LockToken {
    pub(crate) issuer: u64,
    pub(crate) kind: TokenKind,
}

#[derive(Clone)]
pub(crate) enum TokenKind {
    /// SQLite: the row and the delivery that locked it; a later delivery makes the token stale.
    Sqlite { seq: i64, delivery: u32 },
    /// AMQP: the delivery on one incarnation of a receiver link, and the broker's lock token if any.
    Amqp {
        link: u64,
        info: fe2o3_amqp::link::delivery::DeliveryInfo,
        lock: Option<uuid::Uuid>,
    },
}

impl LockToken {
    /// The broker's lock token (Service Bus), if there is one.
    pub fn lock_uuid(&self) -> Option<uuid::Uuid> {
        match &self.kind {
            TokenKind::Amqp { lock, .. } => *lock,
            TokenKind::Sqlite { .. } => None,
        }
    }
}

impl fmt::Display for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TokenKind::Sqlite { seq, delivery } => write!(f, "{seq}.{delivery}"),
            TokenKind::Amqp { lock: Some(lock), .. } => write!(f, "{lock}"),
            TokenKind::Amqp {
                link,
                info,
                lock: None,
            } => write!(f, "{link}.{}", info.delivery_id()),
        }
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockToken({self})")
    }
}
