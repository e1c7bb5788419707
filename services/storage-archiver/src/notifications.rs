//! Push mode: `Microsoft.Storage.BlobCreated` notifications, as Event Grid delivers them to a
//! Service Bus queue (or any queue `crates/queue` reads), record the new blob at once instead of at
//! the next listing. Listing keeps running as the fallback for a notification that never comes.
//!
//! Both of Event Grid's schemas are read: the Event Grid schema (`eventType`, `subject`, `data`,
//! one event or an array) and CloudEvents 1.0 (`type`, `subject`, `data`). The blob's name comes from
//! `subject` (`/blobServices/default/containers/{container}/blobs/{name}`), its version from
//! `data.eTag`. Events of other types, containers or prefixes are completed and ignored; a message
//! that is not such an event is dead-lettered with the reason. The blob is then looked up (HEAD), so
//! the receipt records its current version with the ETag exactly as listing would (Event Grid writes
//! it unquoted), and a blob deleted since is skipped. Recording is idempotent (name + ETag), so a
//! redelivered notification or one for a blob the listing already found changes nothing.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use queue::{Queue, ReceivedMessage};
use serde::Deserialize;
use service_kit::Shutdown;

use crate::store::Store;

/// The event type that announces a new blob (or a new version of one).
pub const BLOB_CREATED: &str = "Microsoft.Storage.BlobCreated";

/// A new blob version announced by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobCreated {
    /// The blob name within its container.
    pub name: String,
    /// Its ETag (the version).
    pub etag: String,
    /// Its size in bytes, when the event says.
    pub size: Option<u64>,
}

/// Why a message is not a notification we can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotificationError {
    /// Not JSON, or not an event in either schema.
    #[error("not an Event Grid or CloudEvents event: {0}")]
    NotAnEvent(String),
    /// A BlobCreated event without what is needed to find the blob.
    #[error("BlobCreated event without {0}")]
    Incomplete(&'static str),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Events {
    Many(Vec<Event>),
    One(Event),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    /// Event Grid schema.
    event_type: Option<String>,
    /// CloudEvents 1.0.
    #[serde(rename = "type")]
    cloud_type: Option<String>,
    subject: Option<String>,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventData {
    e_tag: Option<String>,
    content_length: Option<u64>,
}

/// The blobs of `container` under `prefix` that `body` announces (none for other events).
pub fn blobs_created(
    body: &[u8],
    container: &str,
    prefix: &str,
) -> Result<Vec<BlobCreated>, NotificationError> {
    let events: Events =
        serde_json::from_slice(body).map_err(|e| NotificationError::NotAnEvent(e.to_string()))?;
    let events = match events {
        Events::Many(events) => events,
        Events::One(event) => vec![event],
    };
    let wanted = format!("/blobServices/default/containers/{container}/blobs/");
    let mut blobs = Vec::new();
    for event in events {
        let kind = event.event_type.as_deref().or(event.cloud_type.as_deref());
        match kind {
            None => return Err(NotificationError::NotAnEvent("no eventType or type".to_owned())),
            Some(BLOB_CREATED) => {}
            Some(_) => continue,
        }
        let subject = event.subject.ok_or(NotificationError::Incomplete("subject"))?;
        let Some(name) = subject.strip_prefix(&wanted) else {
            continue; // another container
        };
        if name.is_empty() {
            return Err(NotificationError::Incomplete("a blob name in subject"));
        }
        if !name.starts_with(prefix.trim_start_matches('/')) {
            continue;
        }
        let data = event.data.ok_or(NotificationError::Incomplete("data"))?;
        let etag = data.e_tag.ok_or(NotificationError::Incomplete("data.eTag"))?;
        blobs.push(BlobCreated {
            name: name.to_owned(),
            etag,
            size: data.content_length,
        });
    }
    Ok(blobs)
}

/// Where notifications come from, and which blobs they are about.
#[derive(Debug, Clone)]
pub struct Notifications {
    /// The queue Event Grid delivers to.
    pub queue: Arc<dyn Queue>,
    /// The container, to look each announced blob up.
    pub container_store: Arc<dyn ObjectStore>,
    /// The index that records blob versions.
    pub index: Arc<dyn Store>,
    /// The container's name.
    pub container: String,
    /// Only blobs under this prefix.
    pub prefix: String,
}

/// What one message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// This many new blob versions recorded (0: known already, or not ours).
    Recorded(u64),
    /// Not a notification: dead-lettered.
    DeadLettered,
}

impl Notifications {
    /// Records what one message announces and settles it. A failure of the index leaves the
    /// message to come back (its lock expires) rather than losing the notification.
    pub async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, String> {
        let blobs = match blobs_created(&message.message.body, &self.container, &self.prefix) {
            Ok(blobs) => blobs,
            Err(error) => {
                tracing::warn!(%error, "unreadable notification; dead-lettered");
                self.queue
                    .dead_letter(&message.lock_token, "not_blob_created_event", &error.to_string())
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Handled::DeadLettered);
            }
        };
        let mut new = 0;
        for blob in blobs {
            let meta = match self
                .container_store
                .head(&StorePath::from(blob.name.as_str()))
                .await
            {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => {
                    tracing::debug!(blob = %blob.name, "announced blob is gone; skipped");
                    continue;
                }
                Err(e) => return Err(format!("looking up {}: {e}", blob.name)),
            };
            let version = crate::discovery::version(&meta);
            if self
                .index
                .upsert_blob(&blob.name, &version, meta.size)
                .await
                .map_err(|e| e.to_string())?
            {
                new += 1;
            }
        }
        self.queue
            .complete(&message.lock_token)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Handled::Recorded(new))
    }

    /// Receives and handles notifications until shutdown; `recorded` is called with each count of
    /// new blob versions so the indexers can be woken.
    pub async fn run(self, recorded: impl Fn(u64) + Send, shutdown: Shutdown) {
        let mut delay = Duration::from_millis(500);
        loop {
            let received = tokio::select! {
                received = self.queue.receive(32, Duration::from_secs(5)) => received,
                () = shutdown.wait() => return,
            };
            match received {
                Ok(messages) => {
                    delay = Duration::from_millis(500);
                    for message in &messages {
                        match self.handle(message).await {
                            Ok(Handled::Recorded(new)) if new > 0 => recorded(new),
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "notification not handled; it will come back")
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "notification queue unreachable; listing still runs");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.wait() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "notifications_tests.rs"]
mod tests;
