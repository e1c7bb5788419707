//! Delivery to a queue endpoint (Service Bus, the embedded SQLite queue, or an AMQP 1.0 broker):
//! the endpoint's outbox rows, oldest first, sent in batches with the properties IoT Hub puts on
//! Service Bus messages; settled only once the queue has them. On failure the batch is kept and
//! retried with backoff, reconnecting as needed; nothing acknowledged is dropped.
//!
//! Two tasks per endpoint, so reading and sending overlap: a reader turns outbox rows into batches
//! a few ahead, and the sender sends them in order, one at a time, settling each in the background
//! while it sends the next.

use std::sync::Arc;
use std::time::Duration;

use iothub_protocol::Message;
use tokio::sync::mpsc;

use super::{AppendError, Backoff, DispatchContext};
use crate::events::OutboxRow;

/// Most messages and bytes per `send_batch`. `crates/queue` sends each message as its own AMQP
/// transfer (Service Bus, RabbitMQ) or row (SQLite), so Service Bus's 256 KB limit on a *batched*
/// message does not apply; the bytes bound memory and the size of a retry. (At 200 KB, batches of
/// IoT Hub-sized messages cut the SQLite queue's commits to ~500 messages and the routed rate by ~10%.)
const MAX_BATCH_MESSAGES: usize = 1000;
const MAX_BATCH_BYTES: usize = 1024 * 1024;

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

/// Outbox rows read at a time.
const READ_ROWS: usize = 2 * MAX_BATCH_MESSAGES;

/// Batches the reader may prepare ahead of the sender.
const READ_AHEAD: usize = 4;

/// Rows ready to send as one `send_batch`.
#[derive(Debug)]
pub struct QueueBatch {
    /// The rows, kept to rebuild the messages for a retry (a failed send consumes them).
    rows: Vec<OutboxRow>,
    /// The messages for the next attempt, when already built.
    messages: Option<Vec<queue::Message>>,
    /// The last row's outbox id.
    up_to: u64,
}

impl QueueBatch {
    /// The last outbox id in the batch: settling up to it settles the batch.
    pub fn up_to(&self) -> u64 {
        self.up_to
    }

    /// The messages, building them again if a failed attempt used them.
    fn take_messages(&mut self) -> Vec<queue::Message> {
        match self.messages.take() {
            Some(messages) => messages,
            None => self.rows.iter().filter_map(convert).collect(),
        }
    }
}

/// The queue message for one outbox row; `None` (logged) if the row does not read back.
fn convert(row: &OutboxRow) -> Option<queue::Message> {
    match crate::events::payload::decode(&row.payload) {
        Ok(message) => Some(to_queue_message(&message)),
        Err(error) => {
            // The hub wrote this row itself; if it does not read back, nothing ever will.
            tracing::error!(%error, id = row.id, "outbox row unreadable; skipped");
            None
        }
    }
}

/// Cuts rows (in outbox order) into batches of at most [`MAX_BATCH_MESSAGES`] messages and
/// [`MAX_BATCH_BYTES`] bytes; a single larger message goes alone. Unreadable rows ride along in
/// a batch, so they are settled with it.
pub fn batches(rows: Vec<OutboxRow>) -> Vec<QueueBatch> {
    let mut out = Vec::new();
    let mut current = QueueBatch {
        rows: Vec::new(),
        messages: Some(Vec::new()),
        up_to: 0,
    };
    let mut bytes = 0;
    for row in rows {
        let message = convert(&row);
        let size = message.as_ref().map_or(0, queue::Message::size);
        let count = current.messages.as_ref().map_or(0, Vec::len);
        if count > 0 && (count >= MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES) {
            out.push(std::mem::replace(
                &mut current,
                QueueBatch {
                    rows: Vec::new(),
                    messages: Some(Vec::new()),
                    up_to: 0,
                },
            ));
            bytes = 0;
        }
        bytes += size;
        current.up_to = row.id;
        if let (Some(message), Some(messages)) = (message, current.messages.as_mut()) {
            messages.push(message);
        }
        current.rows.push(row);
    }
    if !current.rows.is_empty() {
        out.push(current);
    }
    out
}

/// Sends batches to one queue.
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

    /// Sends `batch` in one `send_batch`; returns how many messages went. On failure the batch
    /// can be sent again.
    pub async fn send(&mut self, batch: &mut QueueBatch) -> Result<usize, String> {
        let queue = self.connected().await?;
        let messages = batch.take_messages();
        let count = messages.len();
        if count == 0 {
            return Ok(0);
        }
        queue.send_batch(messages).await.map_err(|error| {
            // Reconnect next time: the broker may have restarted, the queue been re-created.
            self.queue = None;
            error.to_string()
        })?;
        Ok(count)
    }

    /// Checks the queue can be opened (opening proves it exists on every backend; counts are not
    /// available on brokers).
    pub async fn probe(&mut self) -> Result<(), String> {
        self.connected().await.map(|_| ())
    }
}

/// Delivers a queue endpoint's outbox until shutdown.
pub async fn run_queue_dispatcher(context: DispatchContext, target: QueueTarget) {
    let (ready, mut batches) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(read_batches(context.clone(), ready));
    let mut dispatch = QueueDispatch::new(target);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let mut settling = None;
    context.publish_state();
    // Say early whether the queue is reachable, rather than at the first message.
    match dispatch.probe().await {
        Ok(()) => context.health.success(),
        Err(error) => context.failed(&error),
    }
    'batches: while let Some(mut batch) = tokio::select! {
        batch = batches.recv() => batch,
        () = context.shutdown.wait() => None,
    } {
        loop {
            match dispatch.send(&mut batch).await {
                Ok(count) => {
                    // Settle in the background while the next batch goes: the journal applies
                    // settlements in order, and one is in flight at a time.
                    if !settled(&mut settling, &context).await {
                        break 'batches;
                    }
                    let (after, up_to) = (context.clone(), batch.up_to());
                    settling = Some(tokio::spawn(async move {
                        let settled = after
                            .journal
                            .settle(Arc::clone(&after.endpoint), up_to, None)
                            .await;
                        // The backlog shrinks only now.
                        after.publish_state();
                        settled
                    }));
                    backoff.reset();
                    context.delivered(count, &batch.rows);
                    break;
                }
                Err(error) => {
                    context.failed(&error);
                    if !context.pause(backoff.next_delay()).await {
                        break 'batches;
                    }
                }
            }
        }
    }
    settled(&mut settling, &context).await;
    reader.abort();
}

/// Reads the outbox in order and hands batches to the sender, a few ahead, until shutdown.
async fn read_batches(context: DispatchContext, ready: mpsc::Sender<QueueBatch>) {
    let signal = context.journal.outboxes().signal(&context.endpoint);
    let mut newest = signal.newest.subscribe();
    let mut reader = None;
    let mut cursor = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    while !context.shutdown.is_triggered() {
        let _ = newest.borrow_and_update();
        let rows = match context.read(&mut reader, cursor, READ_ROWS).await {
            Ok(rows) => rows,
            Err(error) => {
                context.failed(&format!("reading the outbox: {error}"));
                if !context.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        let Some(last) = rows.last() else {
            tokio::select! {
                changed = newest.changed() => if changed.is_err() { return },
                () = context.shutdown.wait() => return,
            }
            continue;
        };
        cursor = last.id;
        backoff.reset();
        for batch in batches(rows) {
            if ready.send(batch).await.is_err() {
                return;
            }
        }
    }
}

/// Waits for the settlement in flight, if any; false when it failed (the dispatcher then stops,
/// and the unsettled rows are delivered again after a restart: at least once).
async fn settled(
    settling: &mut Option<tokio::task::JoinHandle<Result<(), AppendError>>>,
    context: &DispatchContext,
) -> bool {
    let Some(handle) = settling.take() else {
        return true;
    };
    let error = match handle.await {
        Ok(Ok(())) => return true,
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    tracing::warn!(endpoint = %context.endpoint, %error, "could not settle delivered messages");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, body_bytes: usize) -> OutboxRow {
        let message = Message {
            body: vec![b'x'; body_bytes],
            ..Message::default()
        };
        OutboxRow {
            id,
            enqueued_ms: 0,
            payload: serde_json::to_vec(&message).unwrap_or_default(),
        }
    }

    fn shape(batches: &[QueueBatch]) -> Vec<(u64, usize, usize)> {
        batches
            .iter()
            .map(|b| (b.up_to, b.rows.len(), b.messages.as_ref().map_or(0, Vec::len)))
            .collect()
    }

    #[test]
    fn batches_are_cut_at_the_message_count() {
        let rows = (1..=2_500).map(|id| row(id, 10)).collect();
        assert_eq!(
            shape(&batches(rows)),
            [(1000, 1000, 1000), (2000, 1000, 1000), (2500, 500, 500)]
        );
    }

    #[test]
    fn batches_are_cut_at_the_byte_limit_and_a_big_message_goes_alone() {
        let (most, big) = (MAX_BATCH_BYTES * 3 / 5, MAX_BATCH_BYTES + 1);
        let rows = vec![row(1, most), row(2, most), row(3, big), row(4, 10)];
        assert_eq!(
            shape(&batches(rows)),
            [(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 1)]
        );
    }

    #[test]
    fn an_unreadable_row_rides_in_a_batch_so_it_is_settled() {
        let mut rows: Vec<OutboxRow> = (1..=3).map(|id| row(id, 10)).collect();
        if let Some(bad) = rows.get_mut(1) {
            bad.payload = b"not json".to_vec();
        }
        let mut cut = batches(rows);
        assert_eq!(shape(&cut), [(3, 3, 2)]);
        // A retry rebuilds the same messages from the rows.
        if let Some(batch) = cut.first_mut() {
            assert_eq!(batch.take_messages().len(), 2);
            assert_eq!(batch.take_messages().len(), 2);
        }
    }

    #[test]
    fn no_rows_make_no_batch() {
        assert!(batches(Vec::new()).is_empty());
    }
}
