//! Dead-letter tools: list, show and replay the messages of `<queue>/$deadletterqueue`.
//!
//! Listing peeks where the backend can (SQLite, Service Bus); on a broker without peek (RabbitMQ) it
//! receives the messages and gives them back. Replay sends a copy of each chosen message to the queue,
//! without its dead-letter reason, and only then completes it in the dead-letter queue: a crash in
//! between leaves the message in both, and the handler's idempotency key keeps the ticket single.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use iothub_protocol::timestamp::Timestamp;
use queue::{DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, Message, Queue, QueueClient};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::config::QueueSettings;
use crate::serve::DEFAULT_QUEUE;

/// How long a receive waits for dead-lettered messages before the queue is taken as drained.
const RECEIVE_WAIT: Duration = Duration::from_secs(2);
/// Messages per receive.
const BATCH: usize = 100;

/// The queue and its dead-letter queue.
#[derive(Debug)]
pub struct Queues {
    /// The queue replayed messages go back to.
    pub queue: Arc<dyn Queue>,
    /// Its dead-letter queue.
    pub dead_letters: Arc<dyn Queue>,
    _client: QueueClient,
}

/// Which dead-lettered messages to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// All of them.
    All,
    /// Those with one of these message ids.
    Ids(Vec<String>),
}

impl Selection {
    fn matches(&self, message: &Message) -> bool {
        match self {
            Selection::All => true,
            Selection::Ids(ids) => message.message_id.as_ref().is_some_and(|id| ids.contains(id)),
        }
    }
}

/// A dead-lettered message as listed.
#[derive(Debug, Clone)]
struct Entry {
    message: Message,
    enqueued_time: Option<SystemTime>,
    delivery_count: u32,
}

impl Queues {
    /// Opens the configured queue and its dead-letter queue.
    pub async fn open(settings: &QueueSettings) -> anyhow::Result<Self> {
        let connection = settings.connection_string.expose_secret();
        anyhow::ensure!(!connection.trim().is_empty(), "queue.connection_string: required");
        let client = QueueClient::connect(connection).await?;
        let name = settings
            .name
            .clone()
            .or_else(|| client.entity_path().map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        let queue = client.queue(&name).await?;
        let dead_letters = client
            .queue(&queue::dead_letter_queue_name(&name))
            .await
            .with_context(|| format!("opening the dead-letter queue of {name:?}"))?;
        Ok(Queues {
            queue,
            dead_letters,
            _client: client,
        })
    }
}

/// Prints up to `max` dead-lettered messages, oldest first.
pub async fn list(queues: &Queues, max: usize, as_json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let entries = entries(queues, max).await?;
    if as_json {
        for entry in &entries {
            writeln!(out, "{}", summary(entry))?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<30} {:<36} {:<20} {:>5}  {:<26} DESCRIPTION",
        "ENQUEUED", "MESSAGE ID", "DEVICE", "DELIV", "REASON"
    )?;
    for entry in &entries {
        let m = &entry.message;
        writeln!(
            out,
            "{:<30} {:<36} {:<20} {:>5}  {:<26} {}",
            entry.enqueued_time.map(format_time).unwrap_or_default(),
            clip(m.message_id.as_deref().unwrap_or("-"), 36),
            clip(device(m), 20),
            entry.delivery_count,
            clip(m.dead_letter_reason().unwrap_or("-"), 26),
            clip(m.dead_letter_description().unwrap_or(""), 80),
        )?;
    }
    writeln!(out, "{} message(s)", entries.len())?;
    Ok(())
}

/// Prints every dead-lettered message with this id, whole, as JSON.
pub async fn show(queues: &Queues, message_id: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let found: Vec<Entry> = entries(queues, usize::MAX)
        .await?
        .into_iter()
        .filter(|e| e.message.message_id.as_deref() == Some(message_id))
        .collect();
    anyhow::ensure!(
        !found.is_empty(),
        "no dead-lettered message has id {message_id:?}"
    );
    for entry in &found {
        let m = &entry.message;
        let body = match std::str::from_utf8(&m.body) {
            Ok(text) => json!({"text": text}),
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(&m.body)}),
        };
        let mut whole = summary(entry);
        whole["correlation_id"] = json!(m.correlation_id);
        whole["content_type"] = json!(m.content_type);
        whole["content_encoding"] = json!(m.content_encoding);
        whole["properties"] = json!(m.application_properties);
        whole["body"] = body;
        writeln!(out, "{}", serde_json::to_string_pretty(&whole)?)?;
    }
    Ok(())
}

/// Sends the chosen dead-lettered messages back to the queue and removes them from the dead-letter
/// queue; prints how many.
pub async fn replay(queues: &Queues, selection: &Selection, out: &mut impl Write) -> anyhow::Result<()> {
    let mut replayed = 0usize;
    let mut others = Vec::new();
    let result = async {
        loop {
            let batch = queues.dead_letters.receive(BATCH, RECEIVE_WAIT).await?;
            if batch.is_empty() {
                return Ok::<_, anyhow::Error>(());
            }
            for received in batch {
                if !selection.matches(&received.message) {
                    others.push(received);
                    continue;
                }
                let mut copy = received.message.clone();
                copy.application_properties.remove(DEAD_LETTER_REASON);
                copy.application_properties.remove(DEAD_LETTER_DESCRIPTION);
                queues.queue.send(copy).await.context("sending to the queue")?;
                queues
                    .dead_letters
                    .complete(&received.lock_token)
                    .await
                    .context("removing from the dead-letter queue")?;
                replayed += 1;
            }
        }
    }
    .await;
    // Messages not chosen go back as they were, whatever happened.
    for received in &others {
        let _ = queues.dead_letters.abandon(&received.lock_token).await;
    }
    result?;
    writeln!(
        out,
        "replayed {replayed} message(s); {} left dead-lettered",
        others.len()
    )?;
    if let Selection::Ids(ids) = selection
        && replayed == 0
    {
        anyhow::bail!("no dead-lettered message has any of the ids {ids:?}");
    }
    Ok(())
}

/// Up to `max` dead-lettered messages: peeked, or received and given back where peek is missing.
async fn entries(queues: &Queues, max: usize) -> anyhow::Result<Vec<Entry>> {
    match queues.dead_letters.peek(max.min(10_000)).await {
        Ok(peeked) => Ok(peeked
            .into_iter()
            .map(|p| Entry {
                message: p.message,
                enqueued_time: p.enqueued_time,
                delivery_count: p.delivery_count,
            })
            .collect()),
        Err(queue::Error::Unsupported { .. }) => {
            let mut held = Vec::new();
            while held.len() < max {
                let batch = queues
                    .dead_letters
                    .receive(BATCH.min(max - held.len()), RECEIVE_WAIT)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                held.extend(batch);
            }
            for received in &held {
                let _ = queues.dead_letters.abandon(&received.lock_token).await;
            }
            Ok(held
                .into_iter()
                .map(|r| Entry {
                    message: r.message,
                    enqueued_time: r.enqueued_time,
                    delivery_count: r.delivery_count,
                })
                .collect())
        }
        Err(e) => Err(e.into()),
    }
}

fn summary(entry: &Entry) -> serde_json::Value {
    let m = &entry.message;
    json!({
        "message_id": m.message_id,
        "device_id": m.application_properties.get("iothub-connection-device-id"),
        "enqueued_time": entry.enqueued_time.map(format_time),
        "delivery_count": entry.delivery_count,
        "reason": m.dead_letter_reason(),
        "description": m.dead_letter_description(),
    })
}

fn device(message: &Message) -> &str {
    message
        .application_properties
        .get("iothub-connection-device-id")
        .map_or("-", String::as_str)
}

fn format_time(time: SystemTime) -> String {
    Timestamp::from_system_time(time).map_or_else(|_| "-".to_owned(), |t| t.as_str().to_owned())
}

/// `text` cut to `width` characters (with `…`), control characters removed: a device chose it.
fn clip(text: &str, width: usize) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= width {
        return clean;
    }
    let mut cut: String = clean.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
