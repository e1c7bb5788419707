//! Delivery to a queue endpoint (Service Bus, the embedded SQLite queue, or an AMQP 1.0 broker):
//! the endpoint's outbox rows, oldest first, sent in batches with the properties IoT Hub puts on
//! Service Bus messages; settled only once the queue has them. On failure the rows stay and the
//! dispatcher retries with backoff, reconnecting as needed; nothing acknowledged is dropped.

use std::sync::Arc;

use iothub_protocol::Message;

use super::Outcome;
use crate::events::OutboxRow;

/// Most messages and bytes per `send_batch` (Service Bus Standard takes 256 KB per batch).
const MAX_BATCH_MESSAGES: usize = 100;
const MAX_BATCH_BYTES: usize = 200 * 1024;

/// A queue endpoint's target: a connection string and a queue name.
#[derive(Debug, Clone)]
pub struct QueueTarget {
    /// `Endpoint=sb://...`, `sqlite://...` or `amqp://...`.
    pub connection_string: String,
    /// The queue (Service Bus `EntityPath`).
    pub queue: String,
}

/// The Service Bus message IoT Hub sends for a device message: body unchanged, message id,
/// correlation id, content type and encoding as broker properties, the connection stamps and the
/// application properties (enrichments included) as application properties.
pub fn to_queue_message(message: &Message) -> queue::Message {
    let properties = message.service_bus_properties();
    let mut out = queue::Message::new(message.body.clone());
    out.message_id = properties.message_id.map(str::to_owned);
    out.correlation_id = properties.correlation_id.map(str::to_owned);
    out.content_type = properties.content_type.map(str::to_owned);
    out.content_encoding = properties.content_encoding.map(str::to_owned);
    if let Some(user_id) = properties.user_id {
        out.application_properties
            .insert("UserId".to_owned(), user_id.to_owned());
    }
    for (name, value) in properties.application {
        // AMQP application properties here are strings: a property present without a value is "".
        out.application_properties
            .insert(name.to_owned(), value.unwrap_or_default().to_owned());
    }
    out
}

/// Sends outbox rows to one queue.
#[derive(Debug)]
pub struct QueueDispatch {
    target: QueueTarget,
    queue: Option<Arc<dyn queue::Queue>>,
}

impl QueueDispatch {
    /// A dispatch that connects on first use.
    pub fn new(target: QueueTarget) -> Self {
        QueueDispatch { target, queue: None }
    }

    async fn connected(&mut self) -> Result<Arc<dyn queue::Queue>, String> {
        if let Some(queue) = &self.queue {
            return Ok(Arc::clone(queue));
        }
        let client = queue::QueueClient::connect(&self.target.connection_string)
            .await
            .map_err(|e| e.to_string())?;
        let opened = client
            .queue(&self.target.queue)
            .await
            .map_err(|e| e.to_string())?;
        self.queue = Some(Arc::clone(&opened));
        Ok(opened)
    }
}

impl QueueDispatch {
    /// Rows read per batch.
    pub const BATCH: usize = MAX_BATCH_MESSAGES;

    /// Sends the longest prefix of `rows` that fits one batch.
    pub async fn deliver(&mut self, rows: &[OutboxRow]) -> Outcome {
        let queue = match self.connected().await {
            Ok(queue) => queue,
            Err(error) => return Outcome::Failed(error),
        };
        // Cut at the byte limit: the first rows that fit go now, the rest next time.
        let mut messages = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        let mut last = None;
        for row in rows {
            let message = match serde_json::from_slice::<Message>(&row.payload) {
                Ok(message) => to_queue_message(&message),
                Err(error) => {
                    // The hub wrote this row itself; if it does not read back, nothing ever will.
                    tracing::error!(%error, id = row.id, "outbox row unreadable; skipped");
                    last = Some(row.id);
                    continue;
                }
            };
            if !messages.is_empty() && bytes + message.size() > MAX_BATCH_BYTES {
                break;
            }
            bytes += message.size();
            messages.push(message);
            last = Some(row.id);
        }
        let Some(last) = last else {
            return Outcome::Delivered { up_to: 0, count: 0 };
        };
        let count = messages.len();
        if messages.is_empty() {
            return Outcome::Delivered { up_to: last, count };
        }
        match queue.send_batch(messages).await {
            Ok(()) => Outcome::Delivered { up_to: last, count },
            Err(error) => {
                // Reconnect next time: the broker may have restarted, the queue been re-created.
                self.queue = None;
                Outcome::Failed(error.to_string())
            }
        }
    }

    /// Checks the queue can be opened (opening proves it exists on every backend; counts are not
    /// available on brokers).
    pub async fn probe(&mut self) -> Result<(), String> {
        self.connected().await.map(|_| ())
    }
}
